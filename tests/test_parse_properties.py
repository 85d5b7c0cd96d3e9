"""Properties of the parser: it never crashes on any bytes, its events do not depend on how the
bytes are chunked, and lines that are not evidence never change the numbers."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from logmaker import seed_log

from kvverify.evidence.attribute import Evidence, attribute
from kvverify.evidence.events import LevelSeen, LogShape
from kvverify.evidence.parse import iter_events, parse_bytes

pytestmark = pytest.mark.usefixtures("each_parser")  # both parser paths


# Bytes that look like TensorRT-LLM output: prefixes, brackets, digits, keywords' pieces.
_PIECES = [
    b"[TensorRT-LLM][DEBUG] ",
    b"[TRT-LLM] [D] ",
    b"[RANK 1] ",
    b"] ",
    b"]",
    b"[",
    b"\n",
    b"\r",
    b"\x1b[0m",
    b"BlockManager",
    b"[windowSize=256]",
    b"::",
    b" - ",
    b"reused blocks:",
    b" 12 ",
    b"nan",
    b"addSequence: Request ",
    b"loadOrAllocateBlocks",
    b"copyBlock entered",
    b"{",
    b"}",
    b"[kvverify] ",
    b"Traceback",
    b"Error: ",
    b"\xff",
    b"\xc3",
    b"0",
    b"9",
]
noisy_bytes = st.lists(
    st.one_of(st.sampled_from(_PIECES), st.binary(max_size=12)), max_size=60
).map(b"".join)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(data=noisy_bytes, cut=st.integers(min_value=1, max_value=17))
def test_never_crashes_and_chunking_never_matters(data: bytes, cut: int) -> None:
    whole = parse_bytes(data)
    chunked = list(iter_events(data[i : i + cut] for i in range(0, len(data), cut)))
    assert [repr(e) for e in chunked] == [repr(e) for e in whole]
    assert isinstance(whole[-1], LogShape)
    assert whole[-1].lines == data.count(b"\n") + (0 if data.endswith(b"\n") or not data else 1)


def _is_unrelated(line: bytes) -> bool:
    return all(isinstance(e, LevelSeen | LogShape) for e in parse_bytes(line + b"\n"))


# Lines a real log has between the evidence: other KV-cache-manager lines, Python logger
# lines, progress bars, arbitrary text.
_NOISE = [
    b"[TensorRT-LLM][DEBUG] BlockManager[windowSize=256]::getFreeBlock - Block 3 is now "
    b"acquired by sequence 2",
    b"[TensorRT-LLM][DEBUG] BlockManager[windowSize=256]::storeBlocks - Searching match for "
    b"block 1",
    b"[TensorRT-LLM][DEBUG] BlockManager[windowSize=256]::storeNewBlock - no need to store",
    b"[TensorRT-LLM][INFO] [MemUsageChange] Allocated 1.00 GiB for max tokens in paged KV cache",
    b"[11/29/2026-10:00:00] [TRT-LLM] [I] Using LLM with PyTorch backend",
    b"Processed requests: 100%|##########| 4/4 [00:03<00:00,  1.2it/s]",
    b"Prompt: 'Returns the per-iterations statistics', Generated text: ' ok'",
]
unrelated_line = st.one_of(
    st.sampled_from(_NOISE),
    st.binary(max_size=80).map(lambda b: b.replace(b"\n", b" ")),
    st.text(max_size=80).map(lambda t: t.replace("\n", " ").encode()),
).filter(_is_unrelated)


def _numbers(ev: Evidence) -> Any:
    """Everything a check can read, without line numbers."""
    return [
        (
            s.rank,
            s.index,
            s.reuse_enabled,
            s.tokens_per_block,
            sorted(s.primary_blocks.items(), key=repr),
            sorted(s.secondary_blocks.items(), key=repr),
            s.lookups,
            s.offload_copies,
            s.onboard_copies,
            [(b.window, sorted(b.values.items())) for b in s.summaries],
            [
                (
                    r.request_id,
                    r.input_length,
                    r.reused_tokens,
                    r.matched,
                    r.partial,
                    r.copied,
                    r.missed,
                    r.onboard_copies,
                    r.stored_blocks,
                )
                for r in s.requests
            ],
        )
        for s in ev.segments
    ] + [ev.runs, ev.error_count, ev.prints_copies]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    dialect=st.sampled_from(["2024a", "2025mid", "1.2", "1.2-timestamp", "2026"]),
    inserts=st.lists(st.tuples(st.integers(min_value=0), unrelated_line), max_size=25),
)
def test_unrelated_lines_never_change_the_numbers(
    dialect: str, inserts: list[tuple[int, bytes]]
) -> None:
    lines = seed_log(dialect, rank=0 if dialect == "2026" else None).encode().splitlines()
    base = _numbers(attribute(parse_bytes(b"\n".join(lines) + b"\n")))
    for position, extra in inserts:
        lines.insert(position % (len(lines) + 1), extra)
    mixed = _numbers(attribute(parse_bytes(b"\n".join(lines) + b"\n")))
    assert mixed == base
