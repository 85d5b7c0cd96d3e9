"""Attribution: which manager, rank and window each summary and request belongs to."""

from __future__ import annotations

from pathlib import Path

import pytest
from logmaker import WINDOW, Manager, Req, counters_of, seed_log, seed_requests, write_manager

from kvverify.engines.sim.dialects import DIALECTS, LogWriter
from kvverify.evidence.attribute import Evidence, attribute
from kvverify.evidence.parse import parse_bytes

GOLDEN = Path(__file__).resolve().parent.parent / "golden_logs"


def evidence(text: str) -> Evidence:
    return attribute(parse_bytes(text.encode()))


def test_estimation_summary_printed_late_still_goes_to_the_estimation_manager() -> None:
    ev = evidence(seed_log("1.2"))
    first, final = ev.segments
    assert [b.values["missed_blocks"] for b in first.summaries] == [16]  # the dummy's blocks
    assert [b.values["reused_blocks"] for b in final.summaries] == [4]
    assert ev.final_segment() is final
    assert [r.request_id for r in final.requests] == [1, 2, 3, 4]
    assert [r.request_id for r in first.requests] == [1]  # same ids, other manager


def test_final_manager_without_summary_is_never_replaced_by_an_earlier_one() -> None:
    ev = evidence(seed_log("1.2", summary=False))
    final = ev.final_segment()
    assert final is not None
    assert final.index == 1
    assert final.summaries == []
    assert len(final.requests) == 4


def test_per_request_lookups_copies_and_prepopulated_length() -> None:
    final = evidence(seed_log("1.2")).final_segment()
    assert final is not None
    third = final.request(3)
    assert third is not None
    assert (third.matched, third.copied, third.missed, third.onboard_copies) == (1, 1, 0, 2)
    assert third.reused_tokens == 26
    assert third.stored_blocks == 16
    assert final.tokens_per_block == 16
    assert final.primary_blocks == {WINDOW: 16}
    assert final.secondary_blocks == {WINDOW: 455}


def test_appended_runs_are_separated_by_the_banner() -> None:
    # A first run killed before shutdown, then a complete second run, in one file.
    ev = evidence(seed_log("1.2", summary=False, estimation=False) + seed_log("1.2", reuse=False))
    assert ev.runs == 2
    final = ev.final_segment()
    assert final is not None
    assert final.run == 1
    assert [b.values["reused_blocks"] for b in final.summaries] == [0]
    crashed = [s for s in ev.segments if s.run == 0]
    assert all(s.summaries == [] for s in crashed)  # the second run's summaries stay there


def test_ranks_have_their_own_managers() -> None:
    lines: list[str] = []
    writers = [LogWriter(DIALECTS["2026"], lines.append, rank=r) for r in (0, 1)]
    for w in writers:
        w.banner()
    for w in writers:
        write_manager(w, Manager(requests=seed_requests(True)), summary=False)
    for w in writers:
        w.summary(WINDOW, counters_of(seed_requests(True)))
    ev = evidence("".join(lines))
    # The Python pool lines carry no rank: a rank-less segment that never works is no rank.
    assert ev.ranks() == [0, 1]
    ranked = [s for s in ev.segments if s.rank is not None]
    assert [len(s.summaries) for s in ranked] == [1, 1]
    assert {s.rank: s.index for s in ranked} == {0: 0, 1: 0}
    assert all(not s.used for s in ev.segments if s.rank is None)


def test_a_log_of_summaries_only() -> None:
    lines: list[str] = []
    w = LogWriter(DIALECTS["1.2"], lines.append)
    reqs = [Req(1, 33, ["missed", "missed", "missed"], 0)]
    w.summary(WINDOW, counters_of(reqs))
    w.summary(WINDOW, counters_of(seed_requests(True)))
    ev = evidence("".join(lines))
    assert len(ev.segments) == 2
    final = ev.final_segment()
    assert final is not None
    assert final.summaries[0].values["reused_blocks"] == 4


def test_several_windows_of_one_manager() -> None:
    lines: list[str] = []
    w = LogWriter(DIALECTS["1.2"], lines.append)
    w.construct_windows({128: (16, 0), 4096: (16, 0)}, 16)
    for window in (128, 4096):
        w.lookup("matched", 1, 9, window)
        w.add_sequence(9, 40, 16 if window == 128 else 32, window)
    for window in (128, 4096):
        w.summary(window, counters_of(seed_requests(True)))
    ev = evidence("".join(lines))
    (seg,) = ev.segments
    assert sorted(b.window for b in seg.summaries) == [128, 4096]
    (req,) = seg.requests  # one request, printed once per window
    assert req.matched == 2  # each window's per-block line (1.2 prints no window on them)
    assert req.reused_tokens == 32  # 1.2 prints the pre-populated length per window: last wins


def test_a_last_run_without_a_working_engine_has_no_final_manager() -> None:
    # A complete run, then a second one appended that died at model load: the checks must not
    # read the first run's summary as if it were the second's.
    lines: list[str] = []
    w = LogWriter(DIALECTS["1.2"], lines.append)
    w.banner()
    w.line("INFO", "Number of tokens per block: %d.", 16)
    w.raw("Traceback (most recent call last):")
    w.raw("RuntimeError: CUDA out of memory")
    ev = evidence(seed_log("1.2") + "".join(lines))
    assert ev.runs == 2
    assert ev.final_segment() is None
    assert [len(s.summaries) for s in ev.segments if s.run == 0] == [1, 1]


def test_the_2026_estimation_manager_is_one_segment() -> None:
    # PyTorch prints "... for estimation dry run" and then "blocks_per_window" for the same
    # pools: one manager, flagged as the estimation; the real one is the next segment.
    ev = evidence(seed_log("2026"))
    est, final = ev.segments
    assert est.estimation
    assert not final.estimation
    assert ev.final_segment() is final
    assert [b.values["reused_blocks"] for b in final.summaries] == [4]


def test_a_manager_with_several_pools_is_one_segment() -> None:
    # allocatePools logs one line per pool (kv-head groups, block-scale pools): same numbers.
    lines: list[str] = []
    w = LogWriter(DIALECTS["1.2"], lines.append)
    write_manager(w, Manager(requests=seed_requests(True)), summary=False)
    text = "".join(lines)
    pool = next(line for line in text.splitlines(keepends=True) if "Allocating primary" in line)
    text = text.replace(pool, pool * 3, 1)
    w2: list[str] = []
    LogWriter(DIALECTS["1.2"], w2.append).summary(WINDOW, counters_of(seed_requests(True)))
    ev = evidence(text + "".join(w2))
    (seg,) = ev.segments
    assert seg.primary_blocks == {WINDOW: 16}
    assert [b.values["reused_blocks"] for b in seg.summaries] == [4]


def test_requests_after_a_summary_belong_to_a_newer_manager_without_construction_lines() -> None:
    # A capture that starts late, or lines filtered by level: the first manager's summary, then
    # a second manager's requests with none of its construction lines. The summary is printed
    # when a manager is destroyed, so the requests cannot be the dead manager's.
    lines: list[str] = []
    w = LogWriter(DIALECTS["1.2"], lines.append)
    write_manager(w, Manager(requests=seed_requests(reuse=False)))
    dead = len(lines)
    write_manager(w, Manager(requests=seed_requests(reuse=True)))
    second = [ln for ln in lines[dead:] if "Allocating" not in ln and "tokens per block" not in ln]
    second = [ln for ln in second if "KV cache block reuse" not in ln and "Max KV" not in ln]
    ev = evidence("".join(lines[:dead] + second))
    first, final = ev.segments
    assert [r.request_id for r in first.requests] == [1, 2, 3, 4]
    assert [r.request_id for r in final.requests] == [1, 2, 3, 4]
    assert ev.final_segment() is final
    assert [b.values["reused_blocks"] for b in final.summaries] == [4]
    third = final.request(3)
    assert third is not None
    assert third.reused_tokens == 26


@pytest.mark.parametrize("name", ["abab-2026-offload_on.log", "tp2-2026.log", "appended-runs.log"])
def test_packing_requests_changes_no_number(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # Requests no longer in flight are packed into arrays (memory that stays small on logs
    # with millions of requests); unpacked, they say exactly what they said as objects.
    import json

    from kvverify.check import Inputs, check_events, report
    from kvverify.evidence import attribute as attribution
    from kvverify.report import to_json

    text = (GOLDEN / name).read_bytes() * 3  # more requests than the limit below, several runs

    def as_json() -> str:
        log = check_events(parse_bytes(text), name, Inputs())
        return json.dumps(json.loads(to_json(report([log])))["logs"])

    unpacked = as_json()
    monkeypatch.setattr(attribution, "OPEN_LIMIT", 1)
    assert as_json() == unpacked
    assert '"request_id"' in unpacked


@pytest.mark.parametrize("block", [1, 3, 4096])
def test_a_sealed_table_reads_back_every_request_as_it_was(
    monkeypatch: pytest.MonkeyPatch, block: int
) -> None:
    """Packed and read back a block of rows at a time, each request says what it said as an
    object: its numbers, and None (not 0) for what the log did not show; a number too wide for
    32 bits (an id near 2**64, a huge count) widens the table and loses nothing packed before."""
    import dataclasses

    from kvverify.evidence import attribute as attribution

    monkeypatch.setattr(attribution, "_ITER_BLOCK", block)
    monkeypatch.setattr(attribution, "OPEN_LIMIT", 2)  # packed as they come
    table = attribution.RequestTable(segment=2, rank=1)
    made = []
    for i in range(10):
        req = attribution.Request(
            seq=i, request_id=2**64 - 1 - i if i > 6 else 100 + i % 4, segment=2, rank=1,
            line=10 * i, input_length=40 + i,
            reused_tokens=i * 3, matched=None if i % 3 else i, partial=i % 2, copied=None,
            missed=7 if i % 2 else None, onboard_copies=i, offload_copies=None if i == 4 else 0,
            stored_blocks=2**40 + i if i == 5 else None if i % 3 else i,
        )  # fmt: skip
        table.add(req)
        made.append(dataclasses.replace(req, windows=[]))
    table.seal()
    assert list(table) == made
    assert [table.at(i) for i in range(len(made))] == made
