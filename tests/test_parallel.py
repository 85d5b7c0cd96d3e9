"""Scanning on several threads (native) or processes (pure Python) gives the numbers of a single
scan."""

from __future__ import annotations

import gzip
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import use_parser
from logmaker import seed_log

from kvverify.evidence import parallel
from kvverify.evidence.attribute import attribute
from kvverify.evidence.events import BlockLookups, LevelSeen, LogShape
from kvverify.evidence.parse import native_available, parse_bytes
from kvverify.evidence.sources import LogSource


@pytest.fixture(params=["native", "python"])
def engine(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The parser path the test runs on: native takes threads, pure Python processes."""
    use_parser(monkeypatch, request.param)
    return str(request.param)


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


def test_pieces_give_the_numbers_of_one_scan(tmp_path: Path, engine: str) -> None:
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


def test_compressed_stdin_and_small_logs_give_the_numbers_of_one_scan(
    tmp_path: Path, engine: str
) -> None:
    path = tmp_path / "run.log"
    path.write_bytes(gzip.compress(seed_log("1.2").encode() * 50))
    events = list(parallel.events_of(LogSource(str(path)), jobs=4, piece=100))
    assert _numbers(events) == _numbers(parse_bytes(seed_log("1.2").encode() * 50))


def test_threads_give_the_events_of_one_scan(tmp_path: Path) -> None:
    if not native_available():
        pytest.skip("the native scanner is not built here")
    text = "".join(seed_log(d, rank=r) for d in ("2024a", "1.2", "2026") for r in (None, 3))
    path = tmp_path / "run.log"
    path.write_bytes(gzip.compress(text.encode()))  # any source, compressed too
    single = parse_bytes(text.encode())
    assert list(parallel.events_of(LogSource(str(path)), jobs=3)) == single


def _lines(path: Path, blocks: int) -> Iterator[bytes]:
    yield b"first\n"
    for _ in range(blocks):
        yield b"x" * (1 << 20)
    yield b"\nlast\n"


def test_cutting_a_file_never_holds_a_long_line(tmp_path: Path) -> None:
    path = tmp_path / "blob.log"
    with path.open("wb") as f:
        for block in _lines(path, 24):
            f.write(block)
    size = path.stat().st_size
    tracemalloc.start()
    try:
        pieces = parallel._cuts(str(path), size, 1 << 20)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert pieces == [(0, size - 5), (size - 5, size)]
    assert peak < 4 << 20
