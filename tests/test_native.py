"""The native scanner (``kvverify/evidence/_scan.c``) changes how fast the parser is, never what
it finds: the same events, event for event, as the pure-Python reference, on every golden log at
every chunk size, on generated logs and on fuzzed bytes.

Where the native scanner can be built (a C compiler and Python's headers are present) it must
have been: these tests then fail, not skip, without it. ``KVVERIFY_NATIVE=0`` in the environment
turns it off and skips them. ``KVVERIFY_FUZZ_EXAMPLES=N`` runs the fuzz tests with N examples
each (the suite's default keeps it fast).
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from logmaker import seed_log

from kvverify.evidence import patterns as p
from kvverify.evidence.events import AddSequence, BlockLookups, Event
from kvverify.evidence.parse import (
    HANDLERS,
    MAX_LINE,
    Scanner,
    engine_name,
    iter_events,
    iter_events_threaded,
    native_available,
)

GOLDEN = Path(__file__).resolve().parent.parent / "golden_logs"


def _can_build() -> bool:
    """A C compiler and Python's headers: ``pip install`` builds the scanner here."""
    cc = (sysconfig.get_config_var("CC") or "cc").split()[0]
    headers = Path(sysconfig.get_paths()["include"]) / "Python.h"
    return shutil.which(cc) is not None and headers.exists()


if not native_available():
    if os.environ.get("KVVERIFY_NATIVE", "1") != "0" and _can_build():
        pytest.fail(
            "the native scanner was not built although a C compiler is present: "
            "reinstall (pip install -e .) and read the build output",
            pytrace=False,
        )
    pytest.skip("no native scanner here (pure-Python parser)", allow_module_level=True)

FUZZ = int(os.environ.get("KVVERIFY_FUZZ_EXAMPLES", "0")) or None


def events(
    data: bytes, *, native: bool, cut: int | None = None, max_line: int = MAX_LINE
) -> list[Event]:
    scanner = Scanner(native=native, max_line=max_line)
    out: list[Event] = []
    step = cut or max(1, len(data))
    for i in range(0, len(data), step):
        out += scanner.feed(data[i : i + step])
    return out + scanner.close()


def same(data: bytes, cut: int | None = None, *, max_line: int = MAX_LINE) -> list[Event]:
    """Native events at chunk size ``cut`` equal the reference's: its whole-log events (which
    no chunking changes), or its events at the same chunk size when a line is longer than
    ``max_line`` (such a line is scanned in pieces where the chunks fall)."""
    long = max(map(len, data.split(b"\n"))) > max_line
    reference = events(data, native=False, cut=cut if long else None, max_line=max_line)
    native = events(data, native=True, cut=cut, max_line=max_line)
    assert [repr(e) for e in native] == [repr(e) for e in reference], f"cut={cut}"
    return reference


# -- the dispatch tables ---------------------------------------------------------------------


def test_every_kind_has_a_handler_and_every_handler_a_kind() -> None:
    assert set(HANDLERS) == p.KINDS


def test_every_native_recognizer_is_in_use() -> None:
    """Each hot alternative the C code recognises was configured with the lead patterns.py
    has for it (else its lines would all go back to Python, silently slow)."""
    from kvverify.evidence import _scan  # type: ignore[attr-defined]

    tables = [p.SPACE_LEADS, p.TAIL_LEADS, p.LINE_START_LEADS]
    hot = _scan.hot_kinds()
    assert {kind for kind, _, _ in hot} == {
        "lookup",
        "bare_lookup",
        "copy",
        "addseq",
        "addseqw",
        "bare_addseqw",
        "release",
        "bare_release",
        "prepop",
    }
    for kind, table, lead in hot:
        assert (lead, kind) in tables[table], kind
        assert kind.removeprefix("bare_") in p.KINDS


def test_the_path_is_reported_and_can_be_turned_off() -> None:
    assert engine_name() in ("native", "python")
    code = "from kvverify.evidence.parse import engine_name; print(engine_name())"
    for value, expected in (("0", "python"), ("1", "native")):
        out = subprocess.run(
            [sys.executable, "-c", code],
            env={**os.environ, "KVVERIFY_NATIVE": value},
            capture_output=True,
            text=True,
            check=True,
        )
        assert out.stdout.strip() == expected


def test_native_events_are_the_dataclasses_they_claim_to_be() -> None:
    data = seed_log("2026", rank=1).encode()
    native = events(data, native=True)
    for e in native:
        assert dataclasses.is_dataclass(e)
        assert type(e).__init__ is not None
        assert hash(e) == hash(dataclasses.replace(e))  # type: ignore[type-var]
    lookups = [e for e in native if isinstance(e, BlockLookups)]
    assert lookups
    with pytest.raises(dataclasses.FrozenInstanceError):
        lookups[0].matched = 3  # type: ignore[misc]
    rebuilt = BlockLookups(*dataclasses.astuple(lookups[0]))
    assert rebuilt == lookups[0]
    assert repr(rebuilt) == repr(lookups[0])


# -- golden and generated logs ---------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(q.name for q in GOLDEN.glob("*.log")))
def test_golden_logs_give_the_same_events_at_every_chunk_size(name: str) -> None:
    data = (GOLDEN / name).read_bytes()
    for cut in (None, 1, 2, 7, 97, 4096):
        assert len(same(data, cut)) > 2  # the log holds evidence: the comparison compares something


@pytest.mark.parametrize("dialect", ["2024a", "2024b", "2025mid", "1.2", "1.2-timestamp", "2026"])
def test_long_runs_give_the_same_events(dialect: str) -> None:
    data = "".join(seed_log(dialect, rank=r) for r in (None, 0, 1) * 10).encode()
    for cut in (None, 1 << 14, 333):
        same(data, cut)


@pytest.mark.parametrize("dialect", ["1.2", "1.2-timestamp", "2026"])
def test_interleaved_ranks_give_the_same_events(dialect: str) -> None:
    # Runs of lookup lines alternate between ranks: each line's rank must be read, not assumed.
    ranks = [seed_log(dialect, rank=r).splitlines(keepends=True) for r in (0, 1, 12)]
    mixed = "".join(line for group in zip(*ranks, strict=False) for line in group).encode()
    same(mixed, 1 << 12)
    same(mixed, 61)


def _dense_lines(n: int) -> bytes:
    """Lookups, copies and request lines as a busy offloading server prints them."""
    out = [b"[TensorRT-LLM][DEBUG] KV cache block reuse is enabled\n"]
    bm = b"[TensorRT-LLM][DEBUG] BlockManager[windowSize=4096]"
    for r in range(n):
        for b in range(5):
            if b % 3 == 0:
                out.append(
                    b"[TensorRT-LLM][DEBUG] copyBlock entered: srcId=%d, dstId=%d, "
                    b"isOffload=true, mode=0\n" % (b, b + 1)
                )
            out.append(bm + b"::getFreeBlock - Block %d is now acquired by sequence %d\n" % (b, r))
            outcome = b"Matched full block 3" if b < 2 else b"No match, allocated new block 4"
            out.append(bm + b"::loadOrAllocateBlocks - " + outcome + b"\n")
        out.append(
            b"[TensorRT-LLM][DEBUG] Setting pre-populated prompt length for request "
            b"%d to 64 (promptLen=130).\n" % r
        )
        out.append(
            b"[TensorRT-LLM][DEBUG] addSequence: Request %d, inputLength 130, "
            b"prepopulatedPromptLen 64, numConnectorMatchedTokens 0\n" % r
        )
        out.append(bm + b"::releaseBlocks Request %d, 5 blocks stored for reuse\n" % r)
    return b"".join(out)


def test_a_dense_log_gives_the_same_events() -> None:
    data = _dense_lines(300)
    for cut in (None, 4096, 1000, 13):
        same(data, cut)


# -- lines the C code must hand back or read exactly -----------------------------------------

_HOT_LINES = [
    # every hot alternative, in every era's prefix, with the fields at their edges
    b"[TensorRT-LLM][DEBUG] BlockManager[windowSize=256]::loadOrAllocateBlocks - Matched full "
    b"block 1",
    b"[TensorRT-LLM][DEBUG][3] BlockManager[windowSize=256]::loadOrAllocateBlocks - No match, "
    b"allocated new block 4 for sequence 2",
    b"[TRT-LLM] [D] [batchmgr] [RANK 12] BlockManager[windowSize=4096]::loadOrAllocateBlocks "
    b"for request 7 - Reused partially filled block 5",
    b"01-15-2026 12:34:56.123456 [TRT-LLM] [D] [1] BlockManager[windowSize=32]::"
    b"loadOrAllocateBlocks - Copied partially filled block 9",
    b"[TensorRT-LLM][DEBUG] BlockManager::loadOrAllocateBlocks - Matched partially filled block 2",
    b"[TensorRT-LLM][DEBUG][5] BlockManager::loadOrAllocateBlocks - Matched full block 2",
    b"[TensorRT-LLM][DEBUG] BlockManager[windowSize=256]::loadOrAllocateBlocks - Beam 0. "
    b"Allocated non-shared block 3 for bi 0",
    b"[TensorRT-LLM][DEBUG] BlockManager[windowSize=256]::loadOrAllocateBlocks for request x - "
    b"Matched full block 1",
    b"[TensorRT-LLM][DEBUG] Foo[windowSize=256]::loadOrAllocateBlocks - Matched full block 1",
    b"[TensorRT-LLM][DEBUG] [windowSize=7]::loadOrAllocateBlocks - No match",
    b"[TensorRT-LLM][DEBUG][2] copyBlock entered: srcId=-1, dstId=20, isOffload=true, mode=0",
    b"[TRT-LLM] [D] [batchmgr] [RANK 3] copyBlock entered: srcId=1, dstId=2, isOffload=false, "
    b"mode=1",
    b"[TensorRT-LLM][DEBUG] copyBlock entered: srcId=1, dstId=2, isOffload=maybe, mode=1",
    b"[TensorRT-LLM][DEBUG] copyBlock entered: srcId=99999999999999999999999, dstId=2, "
    b"isOffload=true",
    b"[TensorRT-LLM][DEBUG] addSequence: Request 18446744073709551615, inputLength 1, "
    b"prepopulatedPromptLen 0",
    b"[TensorRT-LLM][DEBUG] addSequence: Request 18446744073709551616, inputLength 1, "
    b"prepopulatedPromptLen 0",
    b"[TensorRT-LLM][DEBUG] addSequence: Request 1, inputLength 2, prepopulatedPromptLen "
    b"-9223372036854775808",
    b"[TensorRT-LLM][DEBUG] addSequence: Request 1, inputLength 2, prepopulatedPromptLen -7, "
    b"numConnectorMatchedTokens 99999999999999999999",
    b"[TensorRT-LLM][DEBUG] addSequence: Request 1, inputLength 2, prepopulatedPromptLen 3, "
    b"numConnectorMatchedTokens x",
    b"[TensorRT-LLM][DEBUG] addSequence: Request 1, inputLength 2, prepopulatedPromptLen -",
    b"[TRT-LLM] [D] [batchmgr] [RANK 0] BlockManager[windowSize=256]::addSequence: Request 4, "
    b"inputLength 25, prepopulatedPromptLen 24, numConnectorMatchedTokens 0",
    b"[TensorRT-LLM][DEBUG] BlockManager::addSequence: Request 4, inputLength 25, "
    b"prepopulatedPromptLen 24",
    b"[TRT-LLM] [D] [RANK 99999999999999999999] BlockManager[windowSize=256]::addSequence: "
    b"Request 4, inputLength 25, prepopulatedPromptLen 24",
    b"[TRT-LLM] [MPI_Rank 4] [D] addSequence: Request 4, inputLength 25, prepopulatedPromptLen 0",
    b"[TensorRT-LLM][DEBUG] [windowSize=77] addSequence: Request 4, inputLength 25, "
    b"prepopulatedPromptLen 0",
    b"[TensorRT-LLM][DEBUG] BlockManager[windowSize=256]::releaseBlocks Request 3, 16 blocks "
    b"stored for reuse",
    b"[TensorRT-LLM][DEBUG] BlockManager::releaseBlocks Request 3, 16 blocks stored for reuse",
    b"[TensorRT-LLM][DEBUG] BlockManager[windowSize=256]::releaseBlocks Request 3, x blocks",
    b"[TensorRT-LLM][DEBUG][1] Setting pre-populated prompt length for request 9 to -1 "
    b"(promptLen=27).",
    b"[TensorRT-LLM][DEBUG] Setting pre-populated prompt length for request 9 to 26 (promptLen=",
    # crowded: the first match on a line wins, a line-start body beats everything after a "]"
    b"[TensorRT-LLM][DEBUG] BlockManager[windowSize=4]::loadOrAllocateBlocks - Matched full "
    b'block 1] {"iterOffloadBlocks": 9}',
    b"[TRT-LLM] [E] ] copyBlock entered: srcId=1, dstId=2, isOffload=true, mode=0",
    b"[TRT-LLM] [W] ] copyBlock entered: srcId=1, dstId=2, isOffload=true, mode=0",
    b"[TensorRT-LLM][ERROR][3] ] addSequence: Request 1, inputLength 9, prepopulatedPromptLen 0",
    b"[TensorRT-LLM][DEBUG] BlockManager[windowSize=4]::loadOrAllocateBlocks - Nope] "
    b"copyBlock entered: srcId=1, dstId=2, isOffload=false, mode=0",
    b'addSequence: Request 1, inputLength 9, prepopulatedPromptLen 0 ] [{"a": 1}]',
    b"BlockManager[windowSize=256]::loadOrAllocateBlocks - Matched full block 1",
    b"\x1b[32m[TRT-LLM] [D] copyBlock entered: srcId=1, dstId=2, isOffload=true\x1b[0m",
    b"\x1b[32mcopyBlock entered: srcId=1, dstId=2, isOffload=true\x1b[0m",
    b"RuntimeError: x] copyBlock entered: srcId=1, dstId=2, isOffload=true",
    b"Error: x] copyBlock entered: srcId=1, dstId=2, isOffload=true",
    b"a.b.RuntimeError: x] copyBlock entered: srcId=1, dstId=2, isOffload=true",
    b"a..bError: x] copyBlock entered: srcId=1, dstId=2, isOffload=true",
    b"[TensorRT-LLM][DEBUG] BlockManager[windowSize=256] - reused blocks: 4  ] copyBlock "
    b"entered: srcId=1, dstId=2, isOffload=true",
    b"[kvverify] ] copyBlock entered: srcId=1, dstId=2, isOffload=true",
    b"[x] - nothing] copyBlock entered: srcId=1, dstId=2, isOffload=true",
    b"R][7] copyBlock entered: srcId=1, dstId=2, isOffload=true",
    b"R][77] copyBlock entered: srcId=1, dstId=2, isOffload=true",
    b"x][7] copyBlock entered: srcId=1, dstId=2, isOffload=true",
    b"\x00\xff] copyBlock entered: srcId=1, dstId=2, isOffload=true\r",
    b"R][77] x] copyBlock entered: srcId=1, dstId=2, isOffload=true",
    b"[ERROR][3] x] copyBlock entered: srcId=1, dstId=2, isOffload=true",
    b"[TRT-LLM] [E] x] copyBlock entered: srcId=1, dstId=2, isOffload=true",
    *(
        b"[%s] copyBlock entered: srcId=1, dstId=2, isOffload=true" % rank
        for rank in (b"1234567890123", b"12345678901234", b"RANK 12345678", b"RANK 123456789")
    ),
    *(
        b"[%s] BlockManager[windowSize=8]::loadOrAllocateBlocks - No match" % rank
        for rank in (b"1234567890123", b"12345678901234", b"RANK 12345678", b"RANK 123456789")
    ),
    # windows of every width up to where the look-back ends
    *(
        b"[TensorRT-LLM][DEBUG][1] BlockManager[windowSize=%s]%s" % (b"9" * width, tail)
        for width in (9, 10, 11, 12, 13)
        for tail in (
            b"::loadOrAllocateBlocks - No match",
            b"::addSequence: Request 1, inputLength 2, prepopulatedPromptLen 0",
            b"::releaseBlocks Request 1, 2 blocks stored",
        )
    ),
    b"[TensorRT-LLM][DEBUG] BlockManager[windowSize=8]::loadOrAllocateBlocks for request  - "
    b"Matched full block 1",
    b"[TensorRT-LLM][DEBUG] BlockManager[windowSize=8]::loadOrAllocateBlocks for request 7 "
    b"- Matched full block 1",
    b"[TensorRT-LLM][DEBUG] BlockManager[windowSize=8]::loadOrAllocateBlocks for request 7- "
    b"Matched full block 1",
    b"[TensorRT-LLM][DEBUG] BlockManager[windowSize=256]::loadOrAllocateBlocks - Matched full\r",
]


@pytest.mark.parametrize("line", _HOT_LINES)
def test_hot_lines_alone_repeated_and_mixed(line: bytes) -> None:
    head = b"[TensorRT-LLM][DEBUG] KV cache block reuse is enabled\n"
    for data in (head + line + b"\n", head + (line + b"\n") * 3, head + line, line + b"\n"):
        for cut in (None, 1, 5, 64):
            same(data, cut)
    mixed = b"".join(x + b"\r\n" for x in _HOT_LINES)
    same(head + mixed, 211)


def test_lines_at_and_over_the_line_limit() -> None:
    body = b"[TensorRT-LLM][DEBUG] BlockManager[windowSize=8]::loadOrAllocateBlocks - No match"
    for width in (1023, 1024, 1025, 2048, 3000):
        line = body + b"x" * (width - len(body))
        data = b"[TensorRT-LLM][DEBUG] go\n" + (line + b"\n") * 3 + line
        for cut in (None, 100, 1024, 700):
            same(data, cut, max_line=1024)


def test_the_path_taken_does_not_depend_on_where_debug_shows() -> None:
    lookup = (
        b"[TensorRT-LLM][DEBUG][1] BlockManager[windowSize=8]::loadOrAllocateBlocks - No match\n"
    )
    for before in (b"", b"[TensorRT-LLM][INFO] hello\n" * 50, b"no level at all\n" * 50):
        same(before + lookup * 40, 97)
        same(before + lookup * 40)
    # a log with no DEBUG tag at all: levels from the lines themselves
    untagged = b"BlockManager[windowSize=8]::loadOrAllocateBlocks - No match\n"
    same(untagged * 40, 50)


def test_deferred_lines_close_together_go_back_as_one_stretch() -> None:
    from kvverify.evidence import _scan  # type: ignore[attr-defined]

    hot = b"[TensorRT-LLM][DEBUG] BlockManager[windowSize=8]::loadOrAllocateBlocks - No match\n"
    for deferred in (b"{\n", b"{\nx\n", b"] {}\n" + b"-" * 300 + b"\n", b"] {\n" + hot):
        data = b"[TensorRT-LLM][DEBUG] x\n" + deferred * 500
        same(data, 4096)
        records = _scan.prepare(data, 0, len(data), True).records
        # bounded by the bytes, not by the number of short lines
        assert records <= 2 * deferred.count(b"]::") * 500 + len(data) // 256 + 2, deferred


# -- fuzzing ---------------------------------------------------------------------------------

# Pieces of evidence lines: every lead, with and without what must follow it, prefixes of every
# era, the bytes the C code branches on, and bytes that break lines in odd places.
_LEADS = sorted({lead for table in (p.SPACE_LEADS, p.TAIL_LEADS) for lead, _ in table})
_PIECES = [
    *(b"] " + lead for lead in _LEADS),
    *(b"]" + lead for lead, _ in p.TAIL_LEADS),
    *(b"\n" + lead for lead, _ in p.LINE_START_LEADS),
    b"::loadOrAllocateBlocks - ",
    b"::loadOrAllocateBlocks for request 7 - ",
    b"Matched full block 3",
    b"No match, allocated new block 4 for sequence 2",
    b"Reused partially filled block 5",
    b"Copied partially",
    b"Matched partially",
    b"srcId=1, dstId=2, isOffload=true, mode=0",
    b"srcId=-1, dstId=-2, isOffload=false",
    b"12, inputLength 40, prepopulatedPromptLen 16",
    b", numConnectorMatchedTokens 3",
    b"9 to 26 (promptLen=27).",
    b"3, 16 blocks stored",
    b"[TensorRT-LLM][DEBUG] ",
    b"[TensorRT-LLM][ERROR] ",
    b"[TensorRT-LLM][ERROR][3] ",
    b"[TensorRT-LLM][DEBUG][12] ",
    b"[TRT-LLM] [E] ",
    b"[TRT-LLM] [D] [batchmgr] [RANK 1] ",
    b"[RANK 99999999999999999999] ",
    b"[MPI_Rank 2] ",
    b"01-15-2026 12:34:56.123456 [TRT-LLM] [D] [3] ",
    b"[10/21/2025-23:23:13] [TRT-LLM] [I] ",
    b"BlockManager[windowSize=256]",
    b"BlockManager",
    b"[windowSize=",
    b" - reused blocks:  4",
    b" - cache hit rate: 0.50",
    b'{"iterOffloadBlocks": 3}',
    b"RuntimeError: boom",
    b"a.b.FooException: ",
    b"CUDA error: out of memory",
    b"18446744073709551615",
    b"18446744073709551616",
    b"-9223372036854775808",
    b"\n",
    b"\r\n",
    b"\x1b[31m",
    b"\x00",
    b"\xff\xfe",
    b"]",
    b"] ",
    b"]:",
    b"[",
    b" ",
    b"R]",
    b"E]",
    b"7",
]
log_like = st.lists(st.one_of(st.sampled_from(_PIECES), st.binary(max_size=6)), max_size=80).map(
    b"".join
)
# Most fuzzed logs start with a DEBUG line, so that the native path (which needs the level
# known) walks them; the others exercise the hand-over before the level is known.
with_debug = st.one_of(log_like.map(lambda b: b"[TensorRT-LLM][DEBUG] x\n" + b), log_like, log_like)


@settings(max_examples=FUZZ or 600, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=with_debug, cut=st.one_of(st.none(), st.integers(min_value=1, max_value=64)))
def test_any_bytes_give_the_same_events(data: bytes, cut: int | None) -> None:
    same(data, cut)


# Whole lines, shuffled: every hot line, its broken variants and the golden logs' lines.
_GOLDEN_LINES = sorted(
    {line for q in sorted(GOLDEN.glob("*.log")) for line in q.read_bytes().splitlines()}
)
_LINES = [*_HOT_LINES, *_GOLDEN_LINES]


@settings(max_examples=FUZZ or 300, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    lines=st.lists(st.sampled_from(_LINES), max_size=60),
    newline=st.sampled_from([b"\n", b"\r\n"]),
    cut=st.one_of(st.none(), st.integers(min_value=1, max_value=300)),
    max_line=st.sampled_from([MAX_LINE, 64, 200]),
)
def test_any_mix_of_real_lines_gives_the_same_events(
    lines: list[bytes], newline: bytes, cut: int | None, max_line: int
) -> None:
    data = b"[TensorRT-LLM][DEBUG] x\n" + newline.join(lines)
    same(data, cut, max_line=max_line)


# Structured lines: an era's prefix (ranks of every width), maybe bracketed junk, a body (hot or
# not, numbers at the edges of 64 bits), maybe damaged by a deletion or an insertion.
_PREFIXES = [
    b"",
    b"[TensorRT-LLM][DEBUG] ",
    b"[TensorRT-LLM][DEBUG][%d] ",
    b"[TensorRT-LLM][ERROR] ",
    b"[TensorRT-LLM][ERROR][%d] ",
    b"[TensorRT-LLM][WARNING] ",
    b"[TRT-LLM] [D] ",
    b"[TRT-LLM] [E] ",
    b"[TRT-LLM] [D] [batchmgr] [RANK %d] ",
    b"[TRT-LLM] [E] [batchmgr] [RANK %d] ",
    b"01-15-2026 12:34:56.123456 [TRT-LLM] [D] [%d] ",
    b"[10/21/2025-23:23:13] [TRT-LLM] [RANK %d] [I] ",
    b"[04/02/2024-10:00:00] [TRT-LLM] [MPI_Rank %d] [E] ",
    b"R][%d] ",
    b"[RANK %d] ",
    b"[%d] ",
    b"\x1b[32m",
]
_JUNK = [b"", b"", b"[abc] ", b"x] ", b"[%d] ", b"] ", b"[RANK %d]", b"ER] ", b"]] ", b"[[", b"]:"]
_BODIES = [
    b"BlockManager[windowSize=%d]::loadOrAllocateBlocks - Matched full block %d",
    b"BlockManager[windowSize=%d]::loadOrAllocateBlocks for request %d - Reused partially",
    b"BlockManager[windowSize=%d]::loadOrAllocateBlocks - No match, allocated new block %d",
    b"BlockManager::loadOrAllocateBlocks - Matched partially filled block %d",
    b"BlockManager[windowSize=%d]::getFreeBlock - Block %d is now acquired by sequence %d",
    b"copyBlock entered: srcId=%d, dstId=-%d, isOffload=true, mode=0",
    b"copyBlock entered: srcId=%d, dstId=%d, isOffload=false, mode=1",
    b"addSequence: Request %d, inputLength %d, prepopulatedPromptLen -%d",
    b"BlockManager[windowSize=%d]::addSequence: Request %d, inputLength %d, "
    b"prepopulatedPromptLen %d, numConnectorMatchedTokens %d",
    b"BlockManager::addSequence: Request %d, inputLength %d, prepopulatedPromptLen %d",
    b"BlockManager[windowSize=%d]::releaseBlocks Request %d, %d blocks stored for reuse",
    b"BlockManager::releaseBlocks Request %d, %d blocks stored for reuse",
    b"Setting pre-populated prompt length for request %d to %d (promptLen=%d).",
    b"BlockManager[windowSize=%d] - reused blocks:                       %d  ",
    b"KV cache block reuse is enabled",
    b"[kvverify] {%d}",
    b"{'iterOffloadBlocks': %d}",
    b"RuntimeError: %d",
    b"Traceback (most recent call last):",
    # bodies that start with "[": after a prefix and at the start of a line
    b"[kv cache manager] storeContextBlocks: Can not find sequence for request %d",
    b"[kv cache manager] Primary/secondary blocks for window sizes set to {%d: (1, 2)} for "
    b"estimation dry run",
    b"[KVCacheManager] blocks_per_window: {%d: (16, 455)}",
    b"[BlockManager[windowSize=%d]] Allocating primary pool with %d blocks for 2 layers",
    b"[windowSize=%d] {.primaryBlocks=%d, .secondayBlocks=%d}",
    b"[{'iterOffloadBlocks': %d}]",
    b"CUDA error: %d",
    b"TensorRT-LLM version: 1.%d",
    b"Max KV cache blocks per sequence: %d [window size=%d], tokens per block=%d, primary "
    b"blocks=%d, secondary blocks=%d",
]
_NUMBERS = [0, 1, 7, 12, 99, 4096, 12345678, 1234567890123, 2**63 - 1, 2**63, 2**64 - 1, 2**64]


def _fill(template: bytes, numbers: list[int]) -> bytes:
    out = template
    for n in numbers[: template.count(b"%d")]:
        out = out.replace(b"%d", str(n).encode(), 1)
    return out.replace(b"%d", b"3")


@st.composite
def structured_line(draw: st.DrawFn) -> bytes:
    numbers = draw(
        st.lists(
            st.one_of(st.sampled_from(_NUMBERS), st.integers(0, 10**14)), min_size=6, max_size=6
        )
    )
    parts = [draw(st.sampled_from(_PREFIXES))]
    parts += draw(st.lists(st.sampled_from(_JUNK), max_size=2))
    parts.append(draw(st.sampled_from(_BODIES)))
    if draw(st.booleans()):
        parts += [b"] ", draw(st.sampled_from(_BODIES))]  # crowded
    line = _fill(b"".join(parts), numbers)
    edit = draw(st.sampled_from(["none", "none", "delete", "insert"]))
    if edit != "none" and line:
        at = draw(st.integers(0, len(line) - 1))
        if edit == "delete":
            line = line[:at] + line[at + draw(st.integers(1, 4)) :]
        else:
            extra = draw(st.sampled_from([b" ", b"]", b"[", b"-", b"9", b"\r"]))
            line = line[:at] + extra + line[at:]
    return line


@settings(max_examples=FUZZ or 400, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    lines=st.lists(structured_line(), min_size=1, max_size=30),
    cut=st.one_of(st.none(), st.integers(min_value=1, max_value=200)),
)
def test_any_structured_lines_give_the_same_events(lines: list[bytes], cut: int | None) -> None:
    same(b"[TensorRT-LLM][DEBUG] x\n" + b"\n".join(lines), cut)


# -- the threaded pipeline -------------------------------------------------------------------


def _chunks(data: bytes, size: int) -> Iterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


@pytest.mark.parametrize("threads", [1, 3])
def test_threads_give_the_events_of_one(threads: int) -> None:
    data = b"".join(
        [_dense_lines(200), *(q.read_bytes() for q in sorted(GOLDEN.glob("*.log"))[:6])]
    )
    plain = list(iter_events(_chunks(data, 4096)))
    for size in (1 << 16, 4096, 333):
        assert list(iter_events_threaded(_chunks(data, size), threads)) == plain


def test_threads_pass_on_the_readers_error_and_stop_early() -> None:
    def broken() -> Iterator[bytes]:
        yield _dense_lines(20)
        raise OSError("disk gone")

    with pytest.raises(OSError, match="disk gone"):
        list(iter_events_threaded(broken()))
    # a consumer that stops early leaves nothing behind that blocks
    endless = (_dense_lines(5) for _ in iter(int, 1))
    it = iter_events_threaded(endless)
    assert isinstance(next(it), Event.__args__)  # type: ignore[attr-defined]
    it.close()


def test_a_request_id_beyond_64_bits_is_read_in_python() -> None:
    line = (
        b"[TensorRT-LLM][DEBUG] addSequence: Request %d, inputLength 1, prepopulatedPromptLen 0\n"
    )
    for rid in (2**64 - 1, 2**64, 10**30):
        (add,) = [e for e in events(line % rid, native=True) if isinstance(e, AddSequence)]
        assert add.request_id == rid
