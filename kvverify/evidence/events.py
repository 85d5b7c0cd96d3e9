"""Evidence events: what the parser found in a log, one frozen record per fact, each with the
1-based line number it came from. ``rank`` and ``window`` are ``None`` when the line does not
print them (every format before 2026 prints no rank unless the rank prefix was enabled).

Per-block lines (``loadOrAllocateBlocks``) and transfer lines (``copyBlock entered``) are hot:
a DEBUG log has millions of them. The parser coalesces consecutive ones of the same rank into
one event that carries counts: a run of lookups of one window, with the copies of that rank
among them, is one :class:`BlockLookups`; copies with no lookup of their rank around them are
one :class:`BlockCopies`. Every consumer adds counts up, so coalescing never changes a number.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

#: Summary metrics in the order TensorRT-LLM prints them (reference §2.1).
SUMMARY_METRICS: tuple[str, ...] = (
    "allocated_total_blocks",
    "allocated_new_blocks",
    "missed_blocks",
    "reused_blocks",
    "reused_unique_blocks",
    "reused_unique_blocks_percent",
    "cache_hit_rate",
    "reused_tokens",
    "reused_tokens_percent",
)


@dataclass(frozen=True, slots=True)
class SummaryLine:
    """One line of the shutdown summary a KV cache manager prints when it is destroyed."""

    line: int
    rank: int | None
    window: int | None
    metric: str
    value: float


@dataclass(frozen=True, slots=True)
class AddSequence:
    """``addSequence: Request R, inputLength L, prepopulatedPromptLen P`` (P = reused tokens)."""

    line: int
    rank: int | None
    window: int | None
    request_id: int
    input_length: int
    prepopulated: int
    connector_matched: int | None


@dataclass(frozen=True, slots=True)
class BlockLookups:
    """Consecutive ``loadOrAllocateBlocks`` lines of one rank and window, counted by outcome,
    and the ``copyBlock`` lines of that rank among them (a busy offloading server prints one
    for about every third block: counted here, the run goes on)."""

    line: int
    rank: int | None
    window: int | None
    matched: int
    partial: int
    copied: int
    missed: int
    offloads: int = 0
    onboards: int = 0


@dataclass(frozen=True, slots=True)
class BlockCopies:
    """Consecutive ``copyBlock entered: ... isOffload=true|false`` lines (TensorRT-LLM 1.2+).
    ``isOffload=false`` is an onboard or a partial-reuse copy."""

    line: int
    rank: int | None
    offloads: int
    onboards: int


@dataclass(frozen=True, slots=True)
class ReleaseBlocks:
    """``releaseBlocks Request R, N blocks stored for reuse``."""

    line: int
    rank: int | None
    window: int | None
    request_id: int
    stored: int


@dataclass(frozen=True, slots=True)
class PrepopulatedLength:
    """``Setting pre-populated prompt length for request R to P (promptLen=L).``"""

    line: int
    rank: int | None
    request_id: int
    length: int
    prompt_len: int


@dataclass(frozen=True, slots=True)
class ReuseSetting:
    """``KV cache block reuse is enabled|disabled``: printed when a KV cache manager is built."""

    line: int
    rank: int | None
    enabled: bool


@dataclass(frozen=True, slots=True)
class TokensPerBlock:
    """``Number of tokens per block: N.``: printed when a manager allocates its pools."""

    line: int
    rank: int | None
    tokens_per_block: int


@dataclass(frozen=True, slots=True)
class PoolSize:
    """A primary/secondary pool size, from whichever capacity line printed it."""

    line: int
    rank: int | None
    window: int | None
    primary: int | None
    secondary: int | None
    tokens_per_block: int | None
    #: True for lines printed while a manager is built (``Allocating ... pool``,
    #: ``Max KV cache blocks per sequence``); False for sizing lines printed before.
    construction: bool
    #: The PyTorch backend announces the estimation (dry-run) manager.
    estimation: bool = False


@dataclass(frozen=True, slots=True)
class ManagerV2:
    """A line that says which KV cache manager was chosen. ``selected`` is None if unreadable."""

    line: int
    rank: int | None
    selected: bool | None
    text: str


@dataclass(frozen=True, slots=True)
class IterationStats:
    """Offload evidence from iteration statistics printed as JSON (``kvCacheIterationStats``)."""

    line: int
    offloads: int
    onboards: int


@dataclass(frozen=True, slots=True)
class CacheLevelEvents:
    """KV-cache events printed as JSON: ``updated`` cache_level 0->1 (offload), 1->0 (onboard)."""

    line: int
    offloads: int
    onboards: int


ErrorKind = Literal["error", "cuda", "traceback", "exception", "missing-sequence"]


@dataclass(frozen=True, slots=True)
class ErrorLine:
    """An engine error: a C++ or Python ERROR line, a traceback, a CUDA error, or the warning
    ``storeContextBlocks: Can not find sequence``."""

    line: int
    rank: int | None
    kind: ErrorKind
    text: str


@dataclass(frozen=True, slots=True)
class Banner:
    """``[TensorRT-LLM] TensorRT-LLM version: X``: printed by every process that imports it."""

    line: int
    version: str


@dataclass(frozen=True, slots=True)
class Marker:
    """A ``[kvverify] {json}`` line written by ``kvverify run``. ``data`` is None if malformed."""

    line: int
    data: dict[str, Any] | None
    raw: str


Level = Literal["debug", "info"]


@dataclass(frozen=True, slots=True)
class LevelSeen:
    """The first TensorRT-LLM line at this level (DEBUG or INFO) in the log."""

    line: int
    level: Level


@dataclass(frozen=True, slots=True)
class LogShape:
    """Facts about the bytes, emitted once at the end: line count, whether the last line was
    cut off, how many over-long lines were scanned in pieces."""

    lines: int
    unterminated_last_line: bool
    long_lines: int


Event = (
    SummaryLine
    | AddSequence
    | BlockLookups
    | BlockCopies
    | ReleaseBlocks
    | PrepopulatedLength
    | ReuseSetting
    | TokensPerBlock
    | PoolSize
    | ManagerV2
    | IterationStats
    | CacheLevelEvents
    | ErrorLine
    | Banner
    | Marker
    | LevelSeen
    | LogShape
)
