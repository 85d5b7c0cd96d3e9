"""TensorRT-LLM's KV-cache log lines in each format era, rendered from the C format strings
quoted in ``docs/trtllm-logs.md`` (section numbers below). A test checks that every format
string here appears verbatim in that document, so the reference model writes exactly what the
reference says TensorRT-LLM prints, and the parser's tests are held to the same text.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from kvverify import __version__, markers
from kvverify.evidence.events import SUMMARY_METRICS
from kvverify.metrics import hit_rate

Level = str  # "DEBUG" | "INFO" | "WARNING" | "ERROR"

_SPEC = re.compile(
    r"%(?P<flags>[-0 +#]*)(?P<width>\*|\d+)?(?:\.(?P<prec>\*|\d+))?"
    r"(?P<len>hh|h|ll|l|z|j|t)?(?P<conv>[diouxXfFeEgGsc%])"
)


def printf(fmt: str, *args: object) -> str:
    """C ``printf`` for the conversions TensorRT-LLM's log lines use (``%lu``, ``%zu``,
    ``%zx``, ``%.2f``, ``%-8.*s``, ``%%``...): C length modifiers dropped, ``*`` widths taken
    from the arguments, ``nan``/``-nan``/``inf`` printed the C way."""
    values = list(args)

    def one(m: re.Match[str]) -> str:
        if m["conv"] == "%":
            return "%"
        width = values.pop(0) if m["width"] == "*" else m["width"]
        prec = values.pop(0) if m["prec"] == "*" else m["prec"]
        value = values.pop(0)
        conv = {"i": "d", "u": "d"}.get(m["conv"], m["conv"])
        if conv in "fFeEgG" and isinstance(value, float) and math.isnan(value):
            return "-nan" if math.copysign(1.0, value) < 0 else "nan"  # glibc prints the sign
        spec = "%" + m["flags"] + ("" if width is None else str(width))
        spec += "" if prec is None else "." + str(prec)
        return (spec + conv) % value

    out = _SPEC.sub(one, fmt)
    if values:
        raise ValueError(f"too many arguments for {fmt!r}")
    return out


# -- §1.1 C++ prefixes ---------------------------------------------------------------------------
_CLASSIC = "%s[%s] "
_CLASSIC_RANK = "%s[%s][%d] "
_TIMESTAMP = "%s %s %s "
_TIMESTAMP_RANK = "%s %s %s [%d] "
_MODULE = "%s [%s] [%-8.*s] "
_MODULE_RANK = "%s [%s] [%-8.*s] [RANK %d] "
_LEVEL_NAMES = {"DEBUG": "D", "INFO": "I", "WARNING": "W", "ERROR": "E", "TRACE": "V"}

# -- §2.1 shutdown summaries ---------------------------------------------------------------------
SUMMARY_2024A = (
    "BlockManager - total allocated blocks: %lu ",
    "BlockManager - allocated new blocks:   %lu ",
    "BlockManager - reused blocks:          %lu ",
)
SUMMARY_9 = (
    "%s - total allocated blocks:              %lu  ",
    "%s - allocated new blocks:                %lu  ",
    "%s - missed blocks:                       %lu  ",
    "%s - reused blocks:                       %lu  ",
    "%s - reused unique blocks:                %lu  ",
    "%s - reused unique blocks percentage (%%): %.2f ",
    "%s - cache hit rate:                      %.2f ",
    "%s - reused tokens:                       %.0f ",
    "%s - reused tokens percentage (%%):        %.2f ",
)

# -- §2.2 per request ----------------------------------------------------------------------------
ADD_SEQUENCE = "addSequence: Request %lu, inputLength %d, prepopulatedPromptLen %d"
ADD_SEQUENCE_12 = (
    "addSequence: Request %lu, inputLength %d, prepopulatedPromptLen %d, "
    "numConnectorMatchedTokens %d"
)
ADD_SEQUENCE_2026 = (
    "%s::addSequence: Request %lu, inputLength %d, prepopulatedPromptLen %d, "
    "numConnectorMatchedTokens %d"
)
PREPOPULATED = "Setting pre-populated prompt length for request %lu to %i (promptLen=%i)."
REUSE = "KV cache block reuse is %s"
RELEASE = "%s::releaseBlocks Request %lu, %d blocks stored for reuse"
GET_FREE_BLOCK = "%s::getFreeBlock - Block %d is now acquired by sequence %d"
STORE_BLOCKS = "%s::storeBlocks - %zu blockKeys, %zu blockIds"
LOOKUPS_2024 = {
    "matched": "BlockManager::loadOrAllocateBlocks - Matched full block %d",
    "partial": "BlockManager::loadOrAllocateBlocks - Matched partially filled block %d",
    "missed": "BlockManager::loadOrAllocateBlocks - No match, allocated new block %d",
}
LOOKUPS_2025 = {
    "copied": "%s::loadOrAllocateBlocks - Copied partially filled block %d",
    "partial": "%s::loadOrAllocateBlocks - Reused partially filled block %d",
    "matched": "%s::loadOrAllocateBlocks - Matched full block %d",
    "missed": "%s::loadOrAllocateBlocks - No match, allocated new block %d for sequence %lu",
}
LOOKUPS_2026 = {
    "copied": "%s::loadOrAllocateBlocks for request %lu - Copied partially filled block %d",
    "partial": "%s::loadOrAllocateBlocks for request %lu - Reused partially filled block %d",
    "matched": "%s::loadOrAllocateBlocks for request %lu - Matched full block %d",
    "missed": "%s::loadOrAllocateBlocks - No match, allocated new block %d for sequence %lu",
}

# -- §2.3 capacity -------------------------------------------------------------------------------
TOKENS_PER_BLOCK = "Number of tokens per block: %d."
POOL_PRIMARY = "[%s] Allocating primary pool with %d blocks for %d layers with %d kv heads"
POOL_SECONDARY = "[%s] Allocating secondary pool with %d blocks for %d layers with %d kv heads"
MAX_BLOCKS = (
    "Max KV cache blocks per sequence: %d [window size=%d], tokens per block=%d, primary "
    "blocks=%d, secondary blocks=%d, max sequence length=%d"
)
MAX_PAGES = "Max KV cache pages per sequence: %d"

# -- §2.4 transfers ------------------------------------------------------------------------------
COPY_BLOCK = "copyBlock entered: srcId=%d, dstId=%d, isOffload=%s, mode=%d"
COPY_DRAM = "Using DRAM-based copy (GPU <-> CPU) for this block."
COPY_DONE = "copyBlock: DRAM mode complete. Returning..."

# -- §9.6 banner, §5.1 V2 resolution (Python logger) --------------------------------------------
BANNER_OLD = "[TensorRT-LLM] TensorRT-LLM version: {__version__}"
BANNER_1X = "[TensorRT-LLM] TensorRT LLM version: {__version__}"
RESOLVED_V2 = "Resolved use_kv_cache_manager_v2='auto' to %s for %s"


@dataclass(frozen=True)
class Dialect:
    """One era of TensorRT-LLM's KV-cache log lines (reference §0 labels)."""

    name: str
    description: str
    prefix: str  # "classic" | "timestamp" | "module"
    windowed: bool
    summary: tuple[str, ...]
    add_sequence: str
    lookups: dict[str, str]
    version: str
    banner: str = BANNER_1X
    prepopulated: bool = False
    release: bool = False
    copies: bool = False
    get_free_block: bool = False
    max_blocks: str = MAX_BLOCKS
    reuse_line: bool = True
    #: The PyTorch resource manager's own pool lines (§2.3, 2026): "[KVCacheManager]
    #: blocks_per_window: {...}", after "[kv cache manager] ... for estimation dry run".
    python_pools: bool = False
    #: Iteration stats carry ``kvCacheIterationStats`` (per-iteration offloads, onboards).
    iteration_stats: bool = False
    #: The primary pool is ``max_tokens // tokens_per_block`` blocks (else rounded up).
    floor_capacity: bool = False

    @property
    def summary_metrics(self) -> tuple[str, ...]:
        if len(self.summary) == 3:
            return ("allocated_total_blocks", "allocated_new_blocks", "reused_blocks")
        return SUMMARY_METRICS[: len(self.summary)]


DIALECTS: dict[str, Dialect] = {
    d.name: d
    for d in (
        Dialect(
            "2024a",
            "V-2024a: 3-line summary, 'BlockManager - ' prefix",
            "classic",
            False,
            SUMMARY_2024A,
            ADD_SEQUENCE,
            LOOKUPS_2024,
            "0.13.0",
            banner=BANNER_OLD,
            max_blocks=MAX_PAGES,
            reuse_line=False,
        ),
        Dialect(
            "2024b",
            "V-2024b: 7-line summary, 'BlockManager - ' prefix",
            "classic",
            False,
            tuple(s.replace("%s", "BlockManager") for s in SUMMARY_9[:7]),
            ADD_SEQUENCE,
            LOOKUPS_2024,
            "0.16.0",
            banner=BANNER_OLD,
            max_blocks=MAX_PAGES,
            reuse_line=False,
        ),
        Dialect(
            "2025early",
            "V-early25: 9-line summary, no window prefix",
            "classic",
            False,
            tuple(s.replace("%s", "BlockManager") for s in SUMMARY_9),
            ADD_SEQUENCE,
            LOOKUPS_2024,
            "0.18.0",
            banner=BANNER_OLD,
            max_blocks=MAX_PAGES,
            reuse_line=False,
        ),
        Dialect(
            "2025mid",
            "V-mid25 (~0.20/0.21): per-window summary",
            "classic",
            True,
            SUMMARY_9,
            ADD_SEQUENCE,
            LOOKUPS_2025,
            "0.21.0",
        ),
        Dialect(
            "1.2",
            "V-1.2rc2: per-window summary, releaseBlocks, copyBlock, getFreeBlock",
            "classic",
            True,
            SUMMARY_9,
            ADD_SEQUENCE_12,
            LOOKUPS_2025,
            "1.2.0rc2",
            prepopulated=True,
            release=True,
            copies=True,
            get_free_block=True,
        ),
        Dialect(
            "1.2-timestamp",
            "V-1.2rc2 lines with the timestamped [TRT-LLM] [D] prefix",
            "timestamp",
            True,
            SUMMARY_9,
            ADD_SEQUENCE_12,
            LOOKUPS_2025,
            "1.2.0",
            prepopulated=True,
            release=True,
            copies=True,
            get_free_block=True,
        ),
        Dialect(
            "2026",
            "V-2026: [TRT-LLM] [D] [module] [RANK n] prefix, windowed addSequence",
            "module",
            True,
            SUMMARY_9,
            ADD_SEQUENCE_2026,
            LOOKUPS_2026,
            "1.4.0rc4",
            prepopulated=True,
            release=True,
            copies=True,
            get_free_block=True,
            python_pools=True,
            iteration_stats=True,
            floor_capacity=True,
        ),
    )
}
#: The newest 1.x era: what ``--dialect`` defaults to.
DEFAULT_DIALECT = "1.2"


@dataclass
class LogWriter:
    """Writes TensorRT-LLM's lines in one dialect. ``out`` receives whole lines (with "\\n")."""

    dialect: Dialect
    out: Callable[[str], None]
    rank: int | None = None
    module: str = "batchmgr"
    #: Tensor parallelism: each C++ line is printed once per rank, with its rank prefix (every
    #: rank's KV cache manager makes the same block decisions on its share of the heads).
    ranks: tuple[int, ...] = ()
    clock: datetime = field(default_factory=lambda: datetime(2026, 1, 15, 12, 0, 0))

    def _prefix(self, level: Level, rank: int | None) -> str:
        d = self.dialect
        if d.prefix == "classic":
            if rank is None:
                return printf(_CLASSIC, "[TensorRT-LLM]", level)
            return printf(_CLASSIC_RANK, "[TensorRT-LLM]", level, rank)
        tag = _LEVEL_NAMES[level]
        if d.prefix == "timestamp":
            self.clock += timedelta(microseconds=137)
            ts = self.clock.strftime("%m-%d-%Y %H:%M:%S") + f".{self.clock.microsecond:06d}"
            if rank is None:
                return printf(_TIMESTAMP, ts, "[TRT-LLM]", f"[{tag}]")
            return printf(_TIMESTAMP_RANK, ts, "[TRT-LLM]", f"[{tag}]", rank)
        if rank is None:
            return printf(_MODULE, "[TRT-LLM]", tag, 8, self.module)
        return printf(_MODULE_RANK, "[TRT-LLM]", tag, 8, self.module, rank)

    def _ranked(self, level: Level, body: str) -> None:
        for rank in self.ranks or (self.rank,):
            self.out(self._prefix(level, rank) + body + "\n")

    def line(self, level: Level, fmt: str, *args: object) -> None:
        self._ranked(level, printf(fmt, *args))

    def raw(self, text: str) -> None:
        self.out(text + "\n")

    def manager(self, window: int) -> str:
        return f"BlockManager[windowSize={window}]" if self.dialect.windowed else "BlockManager"

    # -- what one KV cache manager prints ---------------------------------------------------------

    def model_mark(self) -> None:
        """kvverify's mark, first in every log the reference model writes: whatever version
        banner follows, the log says that the model wrote it, not TensorRT-LLM."""
        self.out(markers.encode(markers.ModelMark(__version__, self.dialect.name)))

    def banner(self) -> None:
        self.raw(self.dialect.banner.format(__version__=self.dialect.version))

    def construct(
        self, window: int, primary: int, secondary: int, tokens_per_block: int, **options: Any
    ) -> None:
        """Lines printed when a KV cache manager with one attention window is built
        (``options``: those of :meth:`construct_windows`)."""
        self.construct_windows({window: (primary, secondary)}, tokens_per_block, **options)

    def construct_windows(
        self,
        windows: dict[int, tuple[int, int]],
        tokens_per_block: int,
        *,
        reuse: bool = True,
        layers: int = 36,
        kv_heads: int = 8,
        max_seq_len: int = 256,
        estimation: bool = False,
    ) -> None:
        """Lines printed when a KV cache manager is built (§2.2 reuse, §2.3 pools): once per
        manager, then per window (window -> primary, secondary blocks)."""
        d = self.dialect
        if d.python_pools:  # PyTorch's resource manager, before the C++ manager is built
            if estimation:
                self.python(
                    "I",
                    "[kv cache manager] Primary/secondary blocks for window sizes set to "
                    f"{windows} for estimation dry run",
                )
            self.python("I", f"[KVCacheManager] blocks_per_window: {windows}")
        if d.reuse_line:
            self.line("DEBUG", REUSE, "enabled" if reuse else "disabled")
        self.line("INFO", TOKENS_PER_BLOCK, tokens_per_block)
        for window, (primary, secondary) in windows.items():
            self.line("DEBUG", POOL_PRIMARY, self.manager(window), primary, layers, kv_heads)
            if secondary:
                self.line(
                    "DEBUG", POOL_SECONDARY, self.manager(window), secondary, layers, kv_heads
                )
        for window, (primary, secondary) in windows.items():
            blocks_per_seq = -(-min(max_seq_len, window) // tokens_per_block)
            if d.max_blocks == MAX_PAGES:
                self.line("INFO", MAX_PAGES, blocks_per_seq)
            else:
                self.line(
                    "INFO",
                    d.max_blocks,
                    blocks_per_seq,
                    window,
                    tokens_per_block,
                    primary,
                    secondary,
                    max_seq_len,
                )

    def lookup(self, outcome: str, block: int, request: int, window: int) -> None:
        """One per-block line of loadOrAllocateBlocks (``matched``/``partial``/``copied``/
        ``missed``); V-2024 has no ``copied`` line and prints copies as partial matches."""
        d = self.dialect
        fmt = d.lookups.get(outcome) or d.lookups["partial"]
        if d.lookups is LOOKUPS_2024:
            self.line("DEBUG", fmt, block)
        elif d.lookups is LOOKUPS_2026 and outcome != "missed":
            self.line("DEBUG", fmt, self.manager(window), request, block)
        elif outcome == "missed":
            self.line("DEBUG", fmt, self.manager(window), block, request)
        else:
            self.line("DEBUG", fmt, self.manager(window), block)

    def free_block(self, block: int, request: int, window: int) -> None:
        if self.dialect.get_free_block:
            self.line("DEBUG", GET_FREE_BLOCK, self.manager(window), block, request)

    def copy(self, src: int, dst: int, offload: bool) -> None:
        """§2.4: an offload (GPU->host) or an onboard / partial copy (isOffload=false)."""
        if self.dialect.copies:
            self.line("DEBUG", COPY_BLOCK, src, dst, "true" if offload else "false", 0)
            self.line("DEBUG", COPY_DRAM)
            self.line("DEBUG", COPY_DONE)

    def add_sequence(self, request: int, input_length: int, prepopulated: int, window: int) -> None:
        d = self.dialect
        if d.prepopulated and d.add_sequence != ADD_SEQUENCE_2026:
            self.line("DEBUG", PREPOPULATED, request, prepopulated, input_length)
        if d.add_sequence == ADD_SEQUENCE_2026:
            self.line(
                "DEBUG",
                d.add_sequence,
                self.manager(window),
                request,
                input_length,
                prepopulated,
                0,
            )
            self.line("DEBUG", PREPOPULATED, request, prepopulated, input_length)
        elif d.add_sequence == ADD_SEQUENCE_12:
            self.line("DEBUG", d.add_sequence, request, input_length, prepopulated, 0)
        else:
            self.line("DEBUG", d.add_sequence, request, input_length, prepopulated)

    def release(self, request: int, stored: int, window: int) -> None:
        if self.dialect.release:
            self.line("DEBUG", RELEASE, self.manager(window), request, stored)

    def summary(self, window: int, counters: dict[str, float]) -> None:
        """§2.1: the destructor's lines; ``counters`` holds the raw counters
        (allocated_total_blocks, allocated_new_blocks, missed_blocks, reused_blocks,
        reused_unique_blocks, reused_tokens, input_tokens)."""
        c = counters
        reused, missed = c["reused_blocks"], c["missed_blocks"]
        unique, new, total = (
            c["reused_unique_blocks"],
            c["allocated_new_blocks"],
            c["allocated_total_blocks"],
        )
        values = {
            "allocated_total_blocks": total,
            "allocated_new_blocks": new,
            "missed_blocks": missed,
            "reused_blocks": reused,
            "reused_unique_blocks": unique,
            "reused_unique_blocks_percent": 0.0
            if unique == 0 or total == 0
            else unique / new * 100,
            "cache_hit_rate": hit_rate(reused, missed),
            "reused_tokens": float(c["reused_tokens"]),
            "reused_tokens_percent": 100.0 * c["reused_tokens"] / c["input_tokens"]
            if c["input_tokens"]
            else float("nan"),
        }
        for fmt, metric in zip(self.dialect.summary, self.dialect.summary_metrics, strict=True):
            args: tuple[object, ...] = (values[metric],)
            if fmt.startswith("%s"):
                args = (self.manager(window), *args)
            self.line("DEBUG", fmt, *args)

    def error(self, text: str) -> None:
        self._ranked("ERROR", text)

    def python(self, level: str, message: str) -> None:
        """A Python-logger line (§1.2) in the style of the dialect's era."""
        stamp = self.clock.strftime("[%m/%d/%Y-%H:%M:%S]")
        if self.dialect.prefix == "module":
            self.raw(f"{stamp} [TRT-LLM] [{level}] [llmapi] {message}")
        elif self.rank is not None:
            self.raw(f"{stamp} [TRT-LLM] [RANK {self.rank}] [{level}] {message}")
        else:
            self.raw(f"{stamp} [TRT-LLM] [{level}] {message}")
