"""The parser against every format family of docs/trtllm-logs.md, each fed whole, in small
chunks and with a truncated last line (the h11 way)."""

from __future__ import annotations

import json
import math
from itertools import zip_longest

import pytest
from logmaker import seed_log

from kvverify.engines.sim.dialects import DIALECTS, LogWriter, printf
from kvverify.evidence.events import (
    AddSequence,
    Banner,
    BlockCopies,
    BlockLookups,
    CacheLevelEvents,
    ErrorLine,
    Event,
    IterationStats,
    LevelSeen,
    LogShape,
    ManagerV2,
    Marker,
    PoolSize,
    PrepopulatedLength,
    ReleaseBlocks,
    ReuseSetting,
    SummaryLine,
    TokensPerBlock,
)
from kvverify.evidence.parse import (
    MAX_TEXT,
    Scanner,
    iter_events,
    parse_bytes,
)

pytestmark = pytest.mark.usefixtures("each_parser")  # both parser paths


def _key(events: list[Event]) -> list[str]:
    """Comparable form (nan != nan, so compare reprs)."""
    return [repr(e) for e in events]


def feed_in(data: bytes, size: int) -> list[Event]:
    return list(iter_events(data[i : i + size] for i in range(0, len(data), size)))


def of(events: list[Event], kind: type) -> list:  # type: ignore[type-arg]
    return [e for e in events if isinstance(e, kind)]


ALL_DIALECTS = sorted(DIALECTS)


@pytest.mark.parametrize("dialect", ALL_DIALECTS)
def test_every_era_whole_chunked_and_truncated_give_the_same_events(dialect: str) -> None:
    data = seed_log(dialect).encode()
    whole = parse_bytes(data)
    for size in (1, 3, 64, 4096):
        assert _key(feed_in(data, size)) == _key(whole), f"chunk size {size}"
    truncated = parse_bytes(data.rstrip(b"\n"))
    assert _key(truncated[:-1]) == _key(whole[:-1])  # all but LogShape
    assert truncated[-1] == LogShape(whole[-1].lines, True, 0)  # type: ignore[union-attr]


@pytest.mark.parametrize("dialect", ALL_DIALECTS)
def test_every_era_summary_values(dialect: str) -> None:
    events = parse_bytes(seed_log(dialect, estimation=False).encode())
    lines = of(events, SummaryLine)
    d = DIALECTS[dialect]
    assert [e.metric for e in lines] == list(d.summary_metrics)
    values = {e.metric: e.value for e in lines}
    # A, B, A, B with reuse: 4 lookups missed, 4 reused (seed_requests)
    assert values["allocated_total_blocks"] == 8
    assert values["reused_blocks"] == 4
    if "cache_hit_rate" in values:
        assert values["cache_hit_rate"] == 0.5
        assert values["missed_blocks"] == 4
    if "reused_tokens" in values:
        assert values["reused_tokens"] == 50
    assert {e.window for e in lines} == ({256} if d.windowed else {None})


@pytest.mark.parametrize("dialect", ALL_DIALECTS)
def test_every_era_requests_lookups_and_copies(dialect: str) -> None:
    events = parse_bytes(seed_log(dialect, estimation=False).encode())
    adds = of(events, AddSequence)
    assert [(a.request_id, a.input_length, a.prepopulated) for a in adds] == [
        (1, 27, 0),
        (2, 25, 0),
        (3, 27, 26),
        (4, 25, 24),
    ]
    d = DIALECTS[dialect]
    if d.add_sequence.startswith("%s"):
        assert {a.window for a in adds} == {256}
    lookups = of(events, BlockLookups)
    assert sum(e.missed for e in lookups) == 4
    assert sum(e.matched for e in lookups) == 2
    # 2024 eras print a copy as "Matched partially filled" (a partial reuse)
    if "copied" in d.lookups:
        assert sum(e.copied for e in lookups) == 2
    else:
        assert sum(e.partial for e in lookups) == 2
    # copies among a rank's lookups are counted in the lookups' run
    copies = of(events, BlockCopies) + lookups
    assert sum(c.onboards for c in copies) == (4 if d.copies else 0)
    assert len(of(events, ReleaseBlocks)) == (4 if d.release else 0)
    prepop = of(events, PrepopulatedLength)
    assert [(p.request_id, p.length, p.prompt_len) for p in prepop] == (
        [(1, 0, 27), (2, 0, 25), (3, 26, 27), (4, 24, 25)] if d.prepopulated else []
    )


@pytest.mark.parametrize("dialect", ALL_DIALECTS)
def test_every_era_configuration_lines(dialect: str) -> None:
    events = parse_bytes(seed_log(dialect, estimation=False).encode())
    d = DIALECTS[dialect]
    line = (3 if d.reuse_line else 2) + d.python_pools  # 2026: PyTorch's own pool line first
    assert of(events, TokensPerBlock) == [TokensPerBlock(line, None, 16)]
    pools = of(events, PoolSize)
    assert any(p.primary == 16 for p in pools)
    assert any(p.secondary == 455 for p in pools)
    reuse = [ReuseSetting(line - 1, None, True)] if d.reuse_line else []
    assert of(events, ReuseSetting) == reuse
    assert [b.version for b in of(events, Banner)] == [d.version]
    levels = [e.level for e in of(events, LevelSeen)]
    assert "debug" in levels


def test_rank_prefixes_of_every_era() -> None:
    for dialect in ("1.2", "1.2-timestamp", "2026"):
        events = parse_bytes(seed_log(dialect, rank=3).encode())
        ranked = [e for e in events if hasattr(e, "rank")]
        assert ranked, dialect
        # 2026's Python pool lines carry no rank (its logger prints one only after set_rank).
        unranked = [e for e in ranked if e.rank is None]  # type: ignore[attr-defined]
        assert all(isinstance(e, PoolSize) for e in unranked), dialect
        assert len(unranked) == (3 if dialect == "2026" else 0), dialect
        assert {e.rank for e in ranked} - {None} == {3}, dialect  # type: ignore[attr-defined]


def test_interleaved_ranks_keep_their_counts() -> None:
    rank0 = seed_log("2026", rank=0, estimation=False).splitlines(keepends=True)
    rank1 = seed_log("2026", rank=1, estimation=False, reuse=False).splitlines(keepends=True)
    mixed = [line for pair in zip_longest(rank0, rank1, fillvalue="") for line in pair]
    events = parse_bytes("".join(mixed).encode())
    for rank, reused in ((0, 4), (1, 0)):
        summary = [e for e in of(events, SummaryLine) if e.rank == rank]
        assert {e.metric: e.value for e in summary}["reused_blocks"] == reused
        matched = sum(e.matched for e in of(events, BlockLookups) if e.rank == rank)
        assert matched == (2 if reused else 0)


def test_summary_values_nan_minus_nan_and_inf() -> None:
    text = (
        "\n".join(
            "[TensorRT-LLM][DEBUG] "
            + printf("%s - reused tokens percentage (%%):        %.2f ", "BlockManager", v)
            for v in (float("nan"), -float("nan"), float("inf"))
        )
        + "\n[TensorRT-LLM][DEBUG] BlockManager - reused unique blocks percentage (%): inf \n"
    )
    values = [e.value for e in of(parse_bytes(text.encode()), SummaryLine)]
    assert math.isnan(values[0])
    assert math.isnan(values[1])
    assert values[2:] == [math.inf, math.inf]
    assert "-nan" in text


def test_python_logger_lines_of_every_era() -> None:
    lines = [
        # 2023 (MPI rank), 2024, 2025 (RANK), 2026 (module) Python logger formats, §1.2
        "[04/02/2024-10:00:00] [TRT-LLM] [MPI_Rank 1] [E] engine failed to start",
        "[04/02/2024-10:00:00] [TRT-LLM] [E] plain 2024 error",
        "[10/21/2025-23:23:13] [TRT-LLM] [RANK 0] [E] rank zero error",
        "[05/14/2026-07:06:30] [TRT-LLM] [E] [llmapi] module error",
        "[05/14/2026-07:06:30] [TRT-LLM] [I] [llmapi] "
        + printf("Resolved use_kv_cache_manager_v2='auto' to %s for %s", "%s", "%s")
        + " True LlamaForCausalLM",
        "[10/21/2025-23:23:13] [TRT-LLM] [RANK 0] [I] Resolved use_kv_cache_manager_v2='auto' "
        "to False for Qwen3ForCausalLM",
    ]
    events = parse_bytes(("\n".join(lines) + "\n").encode())
    errors = of(events, ErrorLine)
    assert [(e.rank, e.text) for e in errors] == [
        (1, "engine failed to start"),
        (None, "plain 2024 error"),
        (0, "rank zero error"),
        (None, "[llmapi] module error"),
    ]
    v2 = of(events, ManagerV2)
    assert [m.selected for m in v2] == [True, False]


def test_cpp_error_and_warning_lines() -> None:
    text = (
        "[TensorRT-LLM][ERROR] CUDA runtime error in cudaMemcpyAsync: an illegal memory access\n"
        "[TensorRT-LLM][ERROR][2] Assertion failed: blocks\n"
        "01-15-2026 12:34:56.123456 [TRT-LLM] [E] [1] timestamped error\n"
        "[TRT-LLM] [E] [batchmgr] [RANK 0] module error\n"
        "[TensorRT-LLM][WARNING] [kv cache manager] storeContextBlocks: Can not find sequence "
        "for request 7\n"
        "[TensorRT-LLM][INFO] [ERR] not an error: a tag that only ends in R]\n"
        "Traceback (most recent call last):\n"
        '  File "x.py", line 1, in <module>\n'
        "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB\n"
        "RuntimeError: Executor worker died\n"
    )
    errors = of(parse_bytes(text.encode()), ErrorLine)
    assert [(e.line, e.rank, e.kind) for e in errors] == [
        (1, None, "cuda"),
        (2, 2, "error"),
        (3, 1, "error"),
        (4, 0, "error"),
        (5, None, "missing-sequence"),
        (7, None, "traceback"),
        (9, None, "cuda"),
        (10, None, "exception"),
    ]


def test_markers_and_json_offload_evidence() -> None:
    text = (
        '[kvverify] {"v":1,"t":"step_end","step":3,"request_id":4}\n'
        "[kvverify] {not json\n"
        "[{'iter': 7, 'kvCacheIterationStats': {'256': {'iterOffloadBlocks': 3, "
        "'iterOnboardBlocks': 2}}}]\n"
        '[TRT-LLM] [I] {"event_id": 5, "data": {"type": "updated", "block_hash": 1, '
        '"cache_level": {"type": "event_diff", "new_value": 1, "old_value": 0}, '
        '"priority": null}}\n'
        '{"event_id": 6, "data": {"type": "updated", "block_hash": 1, "cache_level": {"type": '
        '"event_diff", "new_value": 0, "old_value": 1}}}\n'
    )
    events = parse_bytes(text.encode())
    markers = of(events, Marker)
    assert markers[0].data == {"v": 1, "t": "step_end", "step": 3, "request_id": 4}
    assert markers[1].data is None
    assert of(events, IterationStats) == [IterationStats(3, 3, 2)]
    assert of(events, CacheLevelEvents) == [CacheLevelEvents(4, 1, 0), CacheLevelEvents(5, 0, 1)]


def test_long_markers_are_read_whole() -> None:
    payload = {"v": 1, "t": "ready", "predicted": {"steps": {str(i): i for i in range(500)}}}
    text = "[kvverify] " + json.dumps(payload) + "\n"
    assert len(text) > 4 * MAX_TEXT
    (marker,) = of(parse_bytes(text.encode()), Marker)
    assert marker.data == payload
    assert len(marker.raw) <= MAX_TEXT  # only what is shown is cut


def test_unprefixed_crlf_ansi_and_invalid_utf8() -> None:
    data = (
        b"BlockManager[windowSize=64] - reused blocks:                       7  \r\n"
        b"\x1b[32m[TRT-LLM] [I] colour\x1b[0m\r\n"
        b"\x1b[1;31maddSequence: Request 9, inputLength 33, prepopulatedPromptLen 16\x1b[0m\r\n"
        b"\xff\xfe garbage \xc3\x28 [TensorRT-LLM][ERROR] bad \xff bytes\r\n"
        b"Processed requests:  50%|##| 1/2 [TensorRT-LLM][DEBUG] KV cache block reuse is enabled\n"
    )
    events = parse_bytes(data)
    assert of(events, SummaryLine) == [SummaryLine(1, None, 64, "reused_blocks", 7.0)]
    assert of(events, AddSequence) == [AddSequence(3, None, None, 9, 33, 16, None)]
    assert of(events, ErrorLine) == [ErrorLine(4, None, "error", "bad \ufffd bytes")]
    assert of(events, ReuseSetting) == [ReuseSetting(5, None, True)]


def test_empty_input_and_blank_lines() -> None:
    assert parse_bytes(b"") == [LogShape(0, False, 0)]
    assert parse_bytes(b"\n\n\n") == [LogShape(3, False, 0)]


def test_a_line_longer_than_the_limit_is_scanned_in_pieces() -> None:
    long = b"x" * 5000 + b" [TensorRT-LLM][ERROR] boom " + b"y" * 5000
    data = b"first\n" + long + b"\n[TensorRT-LLM][DEBUG] KV cache block reuse is disabled\n"
    scanner = Scanner(max_line=1024)
    events: list[Event] = []
    for i in range(0, len(data), 700):
        events += scanner.feed(data[i : i + 700])
    events += scanner.close()
    assert ReuseSetting(3, None, False) in events
    assert events[-1] == LogShape(3, False, 1)
    texts = [e.text for e in of(events, ErrorLine)]
    assert texts
    assert texts[0].startswith("boom")
    assert all(len(t) <= MAX_TEXT for t in texts)


def test_lines_are_numbered_from_one_across_chunks() -> None:
    data = b"a\nb\n[TensorRT-LLM][DEBUG] KV cache block reuse is enabled\nc\n"
    for size in (1, 2, 5, 100):
        assert ReuseSetting(3, None, True) in feed_in(data, size)


def test_feed_after_close_is_an_error() -> None:
    s = Scanner()
    s.close()
    with pytest.raises(RuntimeError):
        s.feed(b"x")


def test_the_writer_writes_what_the_reference_prints() -> None:
    lines: list[str] = []
    LogWriter(DIALECTS["2026"], lines.append, rank=0).lookup("matched", 12, 7, 4096)
    # The derived example of docs/trtllm-logs.md §10 / kv-log-order, character for character
    assert lines == [
        "[TRT-LLM] [D] [batchmgr] [RANK 0] BlockManager[windowSize=4096]::loadOrAllocateBlocks "
        "for request 7 - Matched full block 12\n"
    ]


SPECIAL = {
    "python logger": (
        "[04/02/2024-10:00:00] [TRT-LLM] [MPI_Rank 1] [E] engine failed to start\n"
        "[10/21/2025-23:23:13] [TRT-LLM] [RANK 0] [I] Resolved use_kv_cache_manager_v2='auto' "
        "to False for Qwen3ForCausalLM\n"
        "[05/14/2026-07:06:30] [TRT-LLM] [E] [llmapi] module error\n"
    ),
    "errors": (
        "[TensorRT-LLM][ERROR][2] Assertion failed: blocks\n"
        "01-15-2026 12:34:56.123456 [TRT-LLM] [E] [1] timestamped error\n"
        'Traceback (most recent call last):\n  File "x.py", line 1\n'
        "torch.OutOfMemoryError: CUDA out of memory.\n"
    ),
    "markers and json": (
        '[kvverify] {"v":1,"t":"step_end","step":3,"request_id":4}\n'
        "[{'iter': 7, 'kvCacheIterationStats': {'256': {'iterOffloadBlocks': 3}}}]\n"
        '{"event_id": 6, "data": {"type": "updated", "cache_level": {"type": "event_diff", '
        '"new_value": 0, "old_value": 1}}}\n'
    ),
    "crlf ansi utf8": (
        "BlockManager[windowSize=64] - reused blocks:                       7  \r\n"
        "\x1b[1;31maddSequence: Request 9, inputLength 33, prepopulatedPromptLen 16\x1b[0m\r\n"
        "\udcff garbage [TensorRT-LLM][ERROR] bad bytes\r\n"
    ),
    "capacity": (
        "[TensorRT-LLM][INFO] Number of blocks in KV cache primary pool for windowSize 256: 16\n"
        "[TensorRT-LLM][INFO] Number of blocks in KV cache secondary pool: 455, onboard blocks to "
        "primary memory before reuse: true\n"
        "[TensorRT-LLM][INFO] [windowSize=256] {.primaryBlocks=16, .secondayBlocks=455}\n"
        "[05/14/2026-07:06:30] [TRT-LLM] [I] [pyexec] [KVCacheManager] blocks_per_window: "
        "{256: (16, 455)}\n"
        "[05/14/2026-07:06:30] [TRT-LLM] [I] [pyexec] [kv cache manager] Primary/secondary "
        "blocks for window sizes set to {256: (17, 0)} for estimation dry run\n"
    ),
}


@pytest.mark.parametrize("name", sorted(SPECIAL))
def test_special_lines_whole_chunked_and_truncated(name: str) -> None:
    data = SPECIAL[name].encode("utf-8", "surrogateescape")
    whole = parse_bytes(data)
    assert len(whole) > 2, whole  # the lines are evidence
    for size in (1, 2, 5, 33):
        assert _key(feed_in(data, size)) == _key(whole), f"chunk size {size}"
    truncated = parse_bytes(data.rstrip(b"\n"))
    assert _key(truncated[:-1]) == _key(whole[:-1])


def test_capacity_lines() -> None:
    pools = of(parse_bytes(SPECIAL["capacity"].encode()), PoolSize)
    assert [(p.window, p.primary, p.secondary, p.estimation) for p in pools] == [
        (256, 16, None, False),
        (None, None, 455, False),
        (256, 16, 455, False),
        (256, 16, 455, False),
        (256, 17, 0, True),
    ]


def test_rank_and_window_are_read_from_the_line_itself() -> None:
    """Nothing of the line before counts, so no chunking changes them: a "]" that starts a line
    takes no window from a previous line ending in "[windowSize=5", and the rank in front of a
    window manager is read only when the manager's name is there."""
    head = b"[TensorRT-LLM][DEBUG] x\n"
    window = head + b"foo[windowSize=5\n]::releaseBlocks Request 3, 4 blocks stored\n"
    rank = head + b"[7]abcdefghi\nABC[windowSize=9]::loadOrAllocateBlocks - No match\n"
    for data, expected in (
        (window, ReleaseBlocks(3, None, None, 3, 4)),
        (rank, BlockLookups(3, None, None, 0, 0, 0, 1)),
    ):
        for size in (len(data), data.index(b"\n", len(head)) + 1, 1, 7):
            assert feed_in(data, size)[1] == expected, size
    named = head + b"[7] BlockManager[windowSize=9]::loadOrAllocateBlocks - No match\n"
    assert parse_bytes(named)[1] == BlockLookups(2, 7, 9, 0, 0, 0, 1)


def test_copies_among_lookups_of_their_rank_are_counted_in_the_lookup_run() -> None:
    """A busy offloading server prints a copyBlock line for about every third block, between
    the lookup lines of the same request: they are counted in the lookups' run, which goes on;
    copies of another rank end it, and a lookup of their rank takes them over."""
    p = "[TRT-LLM] [D] [batchmgr] [RANK %d] "
    look = "BlockManager[windowSize=%d]::loadOrAllocateBlocks - No match, allocated new block 1"
    copy = "copyBlock entered: srcId=1, dstId=2, isOffload=%s, mode=0"
    lines = [
        (p % 0) + "Start",
        (p % 0) + look % 9 + " for sequence 3",  # 2: a run of rank 0, window 9
        (p % 0) + copy % "true",  # counted in it
        (p % 0) + look % 9 + " for sequence 3",
        (p % 1) + copy % "false",  # 5: another rank ends it; copies of rank 1
        (p % 1) + look % 9 + " for sequence 4",  # taken over by the lookups of rank 1
        (p % 1) + look % 5 + " for sequence 4",  # 7: another window: a new run
        (p % 0) + copy % "true",  # 8: copies of rank 0, alone
        (p % 0) + "addSequence: Request 3, inputLength 40, prepopulatedPromptLen 0",
    ]
    data = ("\n".join(lines) + "\n").encode()
    expected = [
        BlockLookups(2, 0, 9, 0, 0, 0, 2, offloads=1, onboards=0),
        BlockLookups(5, 1, 9, 0, 0, 0, 1, offloads=0, onboards=1),
        BlockLookups(7, 1, 5, 0, 0, 0, 1),
        BlockCopies(8, 0, offloads=1, onboards=0),
    ]
    for size in (len(data), 1, 7, 64):
        runs = [e for e in feed_in(data, size) if isinstance(e, BlockLookups | BlockCopies)]
        assert runs == expected, size
