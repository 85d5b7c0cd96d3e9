"""Named regular expressions for every TensorRT-LLM line kvverify reads.

The spec is ``docs/trtllm-logs.md`` (section numbers below refer to it). Four rules shape them:

* **Match the message body, never the prefix.** The C++ prefix changed three times
  (``[TensorRT-LLM][DEBUG]``, ``01-15-2026 12:34:56.123456 [TRT-LLM] [D]``,
  ``[TRT-LLM] [D] [batchmgr] [RANK 0]``) and the Python logger has its own. Every prefix ends in
  ``"] "``, so bodies are searched right after a ``"] "`` (:data:`ANCHORED`), and at the start of
  a line for unprefixed output and tracebacks (:data:`LINE_START`).
* **Speed comes from literals.** The regex engine finds each ``"] "`` or newline by literal
  search and rejects a candidate on its first byte, so every alternative must *start with a
  literal*: no group, no optional part, no class first. Alternatives therefore carry no wrapping
  group; each has inner groups named ``<kind>__<field>`` and the parser tells the alternative
  from ``match.lastindex`` (:data:`ANCHORED_TABLE`).
* **Every alternative consumes to the end of its line**, so one line yields at most one event.
* **Bytes in, bytes out.** Logs hold invalid UTF-8; only captured fields are decoded.

The native scanner (``_scan.c``) reads the leads from here (:data:`SPACE_LEADS`,
:data:`TAIL_LEADS`, :data:`LINE_START_LEADS`) and recognises the per-block and per-request
alternatives itself (kinds ``lookup``, ``copy``, ``addseq``, ``addseqw``, ``release``,
``prepop``): change one of those and change its recognizer in ``_scan.c`` too; the equivalence
tests (``tests/test_native.py``) compare both paths.
"""

from __future__ import annotations

import re
from typing import NamedTuple

_REST = rb"[^\n]*"


class Alt(NamedTuple):
    """One alternative: the literal(s) it starts with, and its whole regex.

    The leads are kept apart for the native scanner (``_scan.c``): it looks for them itself and
    hands the regexes only the lines where one may start something it does not recognise.
    """

    leads: tuple[bytes, ...]
    regex: bytes


def _alt(leads: bytes | tuple[bytes, ...], rest: bytes) -> Alt:
    leads = (leads,) if isinstance(leads, bytes) else leads
    escaped = [re.escape(lead) for lead in leads]
    head = escaped[0] if len(escaped) == 1 else rb"(?:" + b"|".join(escaped) + rb")"
    return Alt(leads, head + rest)


def _kind(alt: Alt) -> str:
    """The kind of an alternative: the part before "__" of its first group's name."""
    groups = re.compile(alt.regex).groupindex
    return min(groups, key=groups.__getitem__).split("__")[0]


def _either(alts: list[Alt]) -> bytes:
    return b"|".join(a.regex for a in alts)


def _add_sequence(kind: str) -> bytes:
    """What follows ``addSequence: Request ``: ``%lu, inputLength %d, prepopulatedPromptLen %d``
    (V-2024a..V-mid25), ``..., numConnectorMatchedTokens %d`` (V-1.2rc2) (§2.2). Used twice: bare
    and, in V-2026, after ``BlockManager[windowSize=N]::``."""
    k = kind.encode()
    return (
        rb"(?P<" + k + rb"__rid>\d+), inputLength (?P<" + k + rb"__len>\d+), "
        rb"prepopulatedPromptLen (?P<" + k + rb"__pre>-?\d+)"
        rb"(?:, numConnectorMatchedTokens (?P<" + k + rb"__con>\d+))?" + _REST
    )


_MISSING = b"storeContextBlocks: Can not find sequence for request "


def _missing(kind: str) -> bytes:
    """§2.2 WARNING ``[kv cache manager] storeContextBlocks: Can not find sequence for
    request %lu``, after its lead :data:`_MISSING`."""
    return rb"(?P<" + kind.encode() + rb"__rid>\d+)" + _REST


# Lines printed by a window manager start with ``BlockManager[windowSize=N]`` (plain
# ``BlockManager`` before the per-window refactor), then one of these tails.
def _block_manager_tails(prefix: str) -> list[Alt]:
    k = prefix.encode()
    tails = [
        # §2.1 shutdown summary, 3-, 7- and 9-line variants:
        #   "%s - total allocated blocks:              %lu  "  ...  "%s - reused tokens:  %.0f "
        # %lu, %.2f or %.0f; %.2f prints nan, -nan and inf.
        _alt(
            b" - ",
            rb"(?P<" + k + rb"summary__metric>total allocated blocks|allocated new blocks"
            rb"|missed blocks|reused unique blocks percentage \(%\)|reused unique blocks"
            rb"|reused blocks|cache hit rate|reused tokens percentage \(%\)|reused tokens):[ \t]*"
            rb"(?P<" + k + rb"summary__value>-?nan|-?inf|-?\d+(?:\.\d*)?)" + _REST,
        ),
        # §2.2 V-2026: "%s::addSequence: Request %lu, ..."
        _alt(b"::addSequence: Request ", _add_sequence(prefix + "addseqw")),
        # §2.2 V-1.2rc2+: "%s::releaseBlocks Request %lu, %d blocks stored for reuse"
        _alt(
            b"::releaseBlocks Request ",
            rb"(?P<"
            + k
            + rb"release__rid>\d+), (?P<"
            + k
            + rb"release__n>\d+) blocks stored"
            + _REST,
        ),
    ]
    # §2.2 per block, V-mid25/V-1.2rc2: "%s::loadOrAllocateBlocks - Matched full block %d",
    #   "... - Reused partially filled block %d", "... - Copied partially filled block %d",
    #   "... - No match, allocated new block %d for sequence %lu"; V-2026 inserts
    #   " for request %lu" after the function name; V-2024 (no window) says
    #   "BlockManager::loadOrAllocateBlocks - Matched partially filled block %d".
    tails.append(
        _alt(
            b"::loadOrAllocateBlocks",
            rb"(?: for request \d+)? - (?P<" + k + rb"lookup__outcome>"
            rb"Matched full|No match|Reused partially|Copied partially|Matched partially)" + _REST,
        )
    )
    return tails


# After a prefix, a windowed tail is found at the "]" that closes "[windowSize=N]": the
# per-block lines that are not evidence (getFreeBlock, storeBlocks, storeNewBlock, ...) are then
# rejected on one byte instead of after walking the whole manager prefix. The parser reads N
# back from the bytes before that "]".
_WINDOWED_TAILS = _block_manager_tails("")
# Before the per-window refactor: "BlockManager - reused blocks: ...", "BlockManager::...".
_BARE_TAILS = _block_manager_tails("bare_")
_BARE_BLOCK_MANAGER = Alt(
    tuple(b"BlockManager" + lead for t in _BARE_TAILS for lead in t.leads),
    rb"BlockManager(?:" + _either(_BARE_TAILS) + rb")",
)
# At the start of a line (unprefixed output) both forms, the window captured.
_BLOCK_MANAGER = Alt(
    (b"BlockManager",),
    rb"BlockManager(?:\[windowSize=(?P<bm__win>\d+)\](?:"
    + _either(_block_manager_tails(""))
    + rb")|"
    + _either(_block_manager_tails("bare_"))
    + rb")",
)

# Every other body, valid after a prefix or at the start of a line.
_OTHER_BODIES = [
    # §2.2 V-2024a..V-1.2rc2 (no window prefix)
    _alt(b"addSequence: Request ", _add_sequence("addseq")),
    # §2.2 llmRequest.h: "Setting pre-populated prompt length for request %lu to %i (promptLen=%i)."
    _alt(
        b"Setting pre-populated prompt length for request ",
        rb"(?P<prepop__rid>\d+) to (?P<prepop__len>-?\d+) \(promptLen=(?P<prepop__prompt>\d+)\)"
        + _REST,
    ),
    # §2.3 "[%s] Allocating primary|secondary pool with %d blocks for %d layers with %d kv heads"
    #   (%s = BlockManager[windowSize=N]; V-2024b: BlockManager)
    _alt(
        b"[BlockManager",
        rb"(?:\[windowSize=(?P<pool__win>\d+)\])?\] Allocating "
        rb"(?P<pool__level>primary|secondary) pool with (?P<pool__n>\d+) blocks" + _REST,
    ),
    # §2.3 "Max KV cache blocks per sequence: %d [window size=%d], tokens per block=%d,
    #   primary blocks=%d, secondary blocks=%d[, max sequence length=%d]"; older "pages".
    _alt(
        b"Max KV cache ",
        rb"(?:blocks|pages) per sequence: (?P<maxblocks__n>\d+)(?: \[window size="
        rb"(?P<maxblocks__win>\d+)\], tokens per block=(?P<maxblocks__tpb>\d+), primary blocks="
        rb"(?P<maxblocks__pri>\d+), secondary blocks=(?P<maxblocks__sec>\d+))?" + _REST,
    ),
    # §2.2 "KV cache block reuse is %s"
    _alt(b"KV cache block reuse is ", rb"(?P<reuse__on>enabled|disabled)" + _REST),
    # §2.3 "Number of tokens per block: %d."
    _alt(b"Number of tokens per block: ", rb"(?P<tpb__n>\d+)" + _REST),
    # §2.3 calculateMaxNumBlocks: "Number of blocks in KV cache primary pool for windowSize %d: %d",
    #   "Number of blocks in KV cache secondary pool for windowSize %d: %d, onboard ...";
    #   pre-2025 without " for windowSize %d".
    _alt(
        b"Number of blocks in KV cache ",
        rb"(?P<poolcount__level>primary|secondary) pool"
        rb"(?: for windowSize (?P<poolcount__win>\d+))?: (?P<poolcount__n>\d+)" + _REST,
    ),
    # §2.3 V-1.2rc2: "[windowSize=%d] {.primaryBlocks=%d, .secondayBlocks=%d}" (sic)
    _alt(
        b"[windowSize=",
        rb"(?P<bpw__win>\d+)\] \{\.primaryBlocks=(?P<bpw__pri>\d+), "
        rb"\.second(?:ay|ary)Blocks=(?P<bpw__sec>\d+)\}" + _REST,
    ),
    # §2.3 PyTorch (2026): "[KVCacheManager] blocks_per_window: {256: (16, 455)}"
    _alt(b"[KVCacheManager] blocks_per_window: ", rb"(?P<pybpw__text>" + _REST + rb")"),
    # §2.3 "[kv cache manager] Primary/secondary blocks for window sizes set to {...} for
    #   estimation dry run", and the §2.2 warning below when it is not after a prefix.
    _alt(
        b"[kv cache manager] ",
        rb"(?:Primary/secondary blocks for window sizes set to "
        rb"(?P<pyest__text>" + _REST + rb")|" + re.escape(_MISSING) + _missing("missing2") + rb")",
    ),
    # §5.1 "Resolved use_kv_cache_manager_v2='auto' to %s for %s" (printed literally, §1.2)
    _alt(b"Resolved use_kv_cache_manager_v2", rb"(?P<v2__text>" + _REST + rb")"),
    # §2.4 "copyBlock entered: srcId=%d, dstId=%d, isOffload=%s, mode=%d"
    _alt(
        b"copyBlock entered: ",
        rb"srcId=-?\d+, dstId=-?\d+, isOffload=(?P<copy__offload>true|false)" + _REST,
    ),
    _alt(_MISSING, _missing("missing")),
    # §9.6 "[TensorRT-LLM] TensorRT-LLM version: X", later "TensorRT LLM version: X (backend: Y)"
    _alt(
        (b"TensorRT-LLM version: ", b"TensorRT LLM version: "),
        rb"(?P<banner__version>[^\s(]+)" + _REST,
    ),
    # kvverify's own "[kvverify] {json}" markers; §4/§5.3 iteration stats or KV-cache events
    # printed as JSON or Python dicts (the parser looks inside).
    _alt(b"{", rb"(?P<brace__text>" + _REST + rb")"),
    _alt(b"[{", rb"(?P<list__text>" + _REST + rb")"),
]

# §1.1/§1.2 ERROR lines: "[TensorRT-LLM][ERROR] ", "[TensorRT-LLM][ERROR][3] ", "[TRT-LLM] [E] "
# (C++ timestamp and 2026 eras, Python). The level tag is the evidence, so this alternative looks
# behind the anchor; it comes last because it cannot be rejected on a first byte. The short
# look-behinds let through any tag ending in "E]"/"R]"; the parser checks the tag.
_ERROR_AFTER_PREFIX = (
    rb"(?:(?<=[ER]\] )|(?<=R\]\[\d\] )|(?<=R\]\[\d\d\] ))(?P<err__text>" + _REST + rb")"
)

# Bodies that only make sense at the start of a line.
_LINE_START_ONLY = [
    _alt(b"Traceback (most recent call last):", rb"(?P<traceback__text>" + _REST + rb")"),
    _alt(b"CUDA ", rb"(?P<cuda__text>(?:error|out of memory|runtime error)" + _REST + rb")"),
]
# The last line of a traceback: "RuntimeError: ...", "torch.OutOfMemoryError: ..."; it starts
# with a name, not a literal (the native scanner checks its shape itself).
_EXCEPTION = (
    rb"(?P<exception__text>(?:[A-Za-z_]\w*\.)*[A-Za-z_]\w*(?:Error|Exception): " + _REST + rb")"
)

_AFTER_PREFIX = b"|".join([_BARE_BLOCK_MANAGER.regex, _either(_OTHER_BODIES), _ERROR_AFTER_PREFIX])
_AT_LINE_START = b"|".join(
    [_BLOCK_MANAGER.regex, _either(_OTHER_BODIES), _either(_LINE_START_ONLY), _EXCEPTION]
)

# ANSI colour codes (``print_colored`` wraps whole lines in them).
ANSI_RX = re.compile(rb"\x1b\[[0-9;]*[A-Za-z]")
ANSI_OPT = rb"(?:\x1b\[[0-9;]*[A-Za-z])*"

#: A body after a prefix, or a window manager's tail after its "[windowSize=N]".
ANCHORED = re.compile(rb"\](?: (?:" + _AFTER_PREFIX + rb")|" + _either(_WINDOWED_TAILS) + rb")")

Leads = tuple[tuple[bytes, str], ...]

#: For the native scanner, each lead with its alternative's kind ("bare_" kept), in the order
#: :data:`ANCHORED` tries them: the bodies after a prefix's "] " (the ERROR alternative has no
#: lead: the scanner checks its look-behind itself) ...
SPACE_LEADS: Leads = (
    *((b"BlockManager" + lead, _kind(t)) for t in _BARE_TAILS for lead in t.leads),
    *((lead, _kind(a)) for a in _OTHER_BODIES for lead in a.leads),
)
#: ... the window manager's tails, right after the "]" of "[windowSize=N]" ...
TAIL_LEADS: Leads = tuple((lead, _kind(t)) for t in _WINDOWED_TAILS for lead in t.leads)
#: ... and the bodies at the start of a line (after optional colour codes; plus the last line
#: of a traceback, which starts with a name, not a literal).
LINE_START_LEADS: Leads = tuple(
    (lead, _kind(a))
    for a in [_BLOCK_MANAGER, *_OTHER_BODIES, *_LINE_START_ONLY]
    for lead in a.leads
)
# At most one lead of a table fits anywhere: no lead starts another. The native scanner relies
# on it (when the alternative of the lead that fits does not match, nothing else can there).
for _table_leads in (SPACE_LEADS, TAIL_LEADS, LINE_START_LEADS):
    for _a, _ in _table_leads:
        for _b, _ in _table_leads:
            assert _a == _b or not _b.startswith(_a), (_a, _b)

# Lines that start like a prefix cannot start with a body: "[TensorRT-LLM]...", "[TRT-LLM]...",
# Python's "[10/21/2025-23:23:13] ...", the timestamp era's "01-15-2026 ...". Rejecting them with
# one look-ahead keeps the line-start search cheap on prefixed logs.
_NOT_A_PREFIX = rb"(?!\[[T\d]|\d)"

#: A body at the start of a line (unprefixed output, tracebacks). Matches begin at the newline.
LINE_START = re.compile(rb"\n" + _NOT_A_PREFIX + ANSI_OPT + rb"(?:" + _AT_LINE_START + rb")")

#: The same, for the first line of the input (no newline before it).
FIRST_LINE = re.compile(_NOT_A_PREFIX + ANSI_OPT + rb"(?:" + _AT_LINE_START + rb")")


Fields = dict[str, int]


def _table(rx: re.Pattern[bytes]) -> dict[int, tuple[str, Fields]]:
    """``match.lastindex`` -> (kind of the alternative, its fields' group numbers).

    Group ``<alt>__<field>`` belongs to alternative ``<alt>``; ``bare_<kind>`` is the pre-2025
    form of ``<kind>`` and gets the pseudo-field ``bare``; at the start of a line the window
    manager's ``bm__win`` is a field of every manager tail (never a match's last group, so it
    has no entry of its own).
    """
    alts: dict[str, Fields] = {}
    for name, index in rx.groupindex.items():
        alt, field = name.split("__")
        alts.setdefault(alt, {})[field] = index
    for kind in ("summary", "lookup", "addseqw", "release"):
        if "bm" in alts and kind in alts:
            alts[kind]["win"] = alts["bm"]["win"]
        if "bare_" + kind in alts:
            alts["bare_" + kind]["bare"] = 0
    return {
        index: (name.split("__")[0].removeprefix("bare_"), alts[name.split("__")[0]])
        for name, index in rx.groupindex.items()
        if not name.startswith("bm__")
    }


ANCHORED_TABLE = _table(ANCHORED)
LINE_START_TABLE = _table(LINE_START)
assert _table(FIRST_LINE) == LINE_START_TABLE

#: Every kind of alternative: the parser has one handler for each.
KINDS = frozenset(kind for t in (ANCHORED_TABLE, LINE_START_TABLE) for kind, _ in t.values())

#: A lookup's outcome as printed -> its counter in a :class:`BlockLookups` (0 matched,
#: 1 partial, 2 copied, 3 missed).
LOOKUP_OUTCOMES: dict[bytes, int] = {
    b"Matched full": 0,
    b"No match": 3,
    b"Reused partially": 1,
    b"Copied partially": 2,
    b"Matched partially": 1,
}

# --- Helpers used on matched lines only -------------------------------------------------------

#: "[windowSize=N" right before a windowed tail's "]" (``\Z``, not ``$``, which would also
#: match before a newline and read the previous line's end).
WINDOW_BEFORE = re.compile(rb"\[windowSize=(\d+)\Z")

#: The rank in a prefix: 2026 C++ and 2025 Python "[RANK n]", 2023 Python "[MPI_Rank n]",
#: classic C++ "[TensorRT-LLM][DEBUG][n] ", timestamp-era C++ "[TRT-LLM] [D] [n] ".
RANK_IN_PREFIX = re.compile(rb"\[(?:RANK |MPI_Rank )(\d+)\]|\]\[(\d+)\] |\] \[(\d+)\] ")

#: Bracketed tags at the start of a message ("[batchmgr] [RANK 0] ").
LEADING_TAGS = re.compile(rb"(?:\[[^\]\n]{1,24}\] )+")

#: Level tags that say TensorRT-LLM logged at DEBUG / INFO (C++ all eras, Python 2025+).
DEBUG_TAGS = (b"[DEBUG]", b"[D] ")
INFO_TAGS = (b"[INFO]", b"[I] ")

#: ``{256: (16, 455)}`` in the PyTorch blocks-per-window lines.
WINDOW_TUPLE = re.compile(rb"(\d+): \((\d+), (\d+)\)")

#: ``to True`` / ``to False`` in the V2 resolution line (the %s may be printed literally).
V2_CHOICE = re.compile(rb"\b(True|False)\b")

# JSON / dict fields (either quote style) in printed iteration stats and KV-cache events.
ITER_OFFLOAD = re.compile(rb"""["']iterOffloadBlocks["']\s*:\s*(\d+)""")
ITER_ONBOARD = re.compile(rb"""["']iterOnboardBlocks["']\s*:\s*(\d+)""")
CACHE_LEVEL_DIFF = re.compile(rb"""["']cache_level["']\s*:\s*\{([^{}]*)\}""")
NEW_VALUE = re.compile(rb"""["']new_value["']\s*:\s*(\d+)""")
OLD_VALUE = re.compile(rb"""["']old_value["']\s*:\s*(\d+)""")

#: Summary labels as printed -> metric names kvverify uses.
METRIC_NAMES: dict[bytes, str] = {
    b"total allocated blocks": "allocated_total_blocks",
    b"allocated new blocks": "allocated_new_blocks",
    b"missed blocks": "missed_blocks",
    b"reused blocks": "reused_blocks",
    b"reused unique blocks": "reused_unique_blocks",
    b"reused unique blocks percentage (%)": "reused_unique_blocks_percent",
    b"cache hit rate": "cache_hit_rate",
    b"reused tokens": "reused_tokens",
    b"reused tokens percentage (%)": "reused_tokens_percent",
}
