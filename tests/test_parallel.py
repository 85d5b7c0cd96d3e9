"""Scanning on several processes gives the numbers of a single scan."""

from __future__ import annotations

import gzip
from pathlib import Path

from logmaker import seed_log

from kvverify.evidence import parallel
from kvverify.evidence.attribute import attribute
from kvverify.evidence.events import BlockLookups, LevelSeen, LogShape
from kvverify.evidence.parse import parse_bytes
from kvverify.evidence.sources import LogSource


def _numbers(events: list) -> tuple:  # type: ignore[type-arg]
    ev = attribute(events)
    return (
        [
            (
                s.rank,
                s.index,
                s.lookups,
                s.offload_copies,
                s.onboard_copies,
                [(b.line, b.window, sorted(b.values.items())) for b in s.summaries],
                [
                    (r.line, r.request_id, r.reused_tokens, r.matched, r.missed, r.stored_blocks)
                    for r in s.requests
                ],
            )
            for s in ev.segments
        ],
        ev.runs,
        ev.levels,
        ev.shape,
    )


def test_pieces_give_the_numbers_of_one_scan(tmp_path: Path) -> None:
    text = "".join(seed_log(d) for d in ("2024a", "1.2", "2026")) + "last line, no newline"
    path = tmp_path / "big.log"
    path.write_text(text)
    single = parse_bytes(text.encode())
    pieces = parallel._cuts(str(path), path.stat().st_size, 700)
    assert len(pieces) > 10
    assert all(text.encode()[end - 1 : end] == b"\n" for _, end in pieces[:-1])
    many = list(parallel.events_of(LogSource(str(path)), jobs=2, piece=700))
    assert _numbers(many) == _numbers(single)
    assert many[-1] == single[-1] == LogShape(single[-1].lines, True, 0)  # type: ignore[union-attr]
    assert [e for e in many if isinstance(e, LevelSeen)] == [
        e for e in single if isinstance(e, LevelSeen)
    ]
    # a run of per-block lines cut at a piece boundary arrives in two parts, same counts
    assert sum(e.missed for e in many if isinstance(e, BlockLookups)) == sum(
        e.missed for e in single if isinstance(e, BlockLookups)
    )


def test_compressed_stdin_and_small_logs_are_scanned_in_one_process(tmp_path: Path) -> None:
    path = tmp_path / "run.log"
    path.write_bytes(gzip.compress(seed_log("1.2").encode() * 50))
    events = list(parallel.events_of(LogSource(str(path)), jobs=4, piece=100))
    assert _numbers(events) == _numbers(parse_bytes(seed_log("1.2").encode() * 50))
