"""Attribution: from the event stream to KV-cache-manager lifetimes ("segments").

One log can hold several managers: the PyTorch backend's estimation pass, then the real engine,
draft or cross-attention managers, several runs appended, each TP/PP rank's own managers, and one
window manager per attention-window size. The rules, stated in the README:

* **Segments are per rank.** A manager announces itself with construction lines (``KV cache
  block reuse is ...``, ``Number of tokens per block``, pool sizes). A construction line opens a
  new segment on its rank when the current one has been used (requests, lookups, a summary) or
  already printed that same line; otherwise it belongs to the current one.
* **Requests go to the newest segment of their rank**: a manager is torn down before the next is
  built, so requests always reach the latest one, unless that one has printed its summary:
  the summary is printed when a manager is destroyed, so requests after it belong to a newer
  manager, even when its construction lines are missing (a capture that started late, lines
  filtered by level or by grep, an excerpt). Per-block lines wait for the next
  ``addSequence`` of their rank (they are printed before it).
* **Summary blocks go to the oldest segment of their rank that has none for that window** (first
  in, first out): destructors print late, GC-driven, but in construction order. A new process
  (the ``TensorRT-LLM version`` banner, or a kvverify run marker) after managers were built starts
  a new run: later summaries never go to a segment of an earlier run.
* **The final engine** of a rank is its last segment *of the last run* that saw any activity.
  Checks read the lowest rank that has one (``None``, unranked logs, counts as lowest). If the
  last run's engine did nothing, or its final segment printed no summary, the metrics are
  missing: an earlier manager's or an earlier run's summary is never used instead.
"""

from __future__ import annotations

import itertools
import operator
from array import array
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

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

#: CUDA-graph padding dummy: ``(1 << 64) - 1`` (reference §9.3).
PADDING_REQUEST_ID = (1 << 64) - 1
#: Errors kept verbatim per log (all are counted).
MAX_ERRORS = 50


@dataclass(slots=True)
class SummaryBlock:
    """One shutdown summary: the lines one window manager printed when it was destroyed."""

    line: int
    rank: int | None
    window: int | None
    segment: int = -1
    values: dict[str, float] = field(default_factory=dict)
    last_line: int = 0


@dataclass(slots=True)
class Request:
    """What the log says about one request in one segment. ``seq`` numbers the requests of a
    log in order of appearance (request ids come back: warm-up dummies, several runs)."""

    seq: int
    request_id: int
    segment: int
    rank: int | None
    line: int
    input_length: int
    #: ``prepopulatedPromptLen``: prompt tokens whose KV cache was reused.
    reused_tokens: int
    windows: list[int | None] = field(default_factory=list)
    #: Per-block outcomes seen before this request's ``addSequence`` (None: no such lines).
    matched: int | None = None
    partial: int | None = None
    copied: int | None = None
    missed: int | None = None
    #: ``copyBlock`` lines before its ``addSequence``: onboard (or partial copy) / offload.
    onboard_copies: int | None = None
    offload_copies: int | None = None
    stored_blocks: int | None = None

    @property
    def lookups_seen(self) -> bool:
        return self.matched is not None


#: Fields a request is packed into (``Request`` minus what its table knows: segment, rank).
_PACKED = (
    "seq",
    "line",
    "input_length",
    "reused_tokens",
    "matched",
    "partial",
    "copied",
    "missed",
    "onboard_copies",
    "offload_copies",
    "stored_blocks",
)
#: A packed field the log did not show (packed fields that may be missing are counts, never
#: negative; it fits both widths of a table below).
NONE = -(1 << 31)
_BLANK = array("i", [NONE] * len(_PACKED))
_BLANK_WIDE = array("q", _BLANK)
#: Numbers above this cannot come from TensorRT-LLM (``%lu`` ids, ``%d`` lengths): a line
#: holding one is damaged and left out.
_HUGE = 1 << 62
#: Requests kept as objects (in flight); older ones are packed, 48 bytes each.
OPEN_LIMIT = 4096
_packed_values = operator.attrgetter(*_PACKED)
#: Packed requests read at a time when a sealed table is iterated.
_ITER_BLOCK = 4096
#: Request ids whose latest request a late line can still reach (ids come back): far more
#: than a manager has in flight.
RECENT_LIMIT = 16384


class RequestTable:
    """The requests of one manager, in order of appearance, in memory that does not grow by
    more than 48 bytes per request: the requests in flight are objects, the others packed into
    arrays of 32-bit integers (all of them once attribution is done: :meth:`seal`), widened to
    64 bits for the whole table when a number does not fit. A busy server's DEBUG log holds
    some 60,000 requests per GiB; a 10 GiB log needs some 30 MB for them, not 300. Whole
    columns (:meth:`column`) let the facts be derived without making an object per request.

    A line about a request goes to the latest request with its id among the last
    :data:`RECENT_LIMIT` ids (far more than can be in flight at once)."""

    __slots__ = ("_ids", "_open", "_rank", "_recent", "_rows", "_segment")

    def __init__(self, segment: int, rank: int | None) -> None:
        self._segment = segment
        self._rank = rank
        self._ids = array("I")  # request ids: unsigned, widened to 64 bits when one needs it
        self._rows = array("i")
        self._open: dict[int, Request] = {}  # position -> request, least recently used first
        self._recent: dict[int, int] = {}  # request id -> position, oldest first

    def __len__(self) -> int:
        return len(self._ids)

    def add(self, req: Request) -> None:
        position = len(self._ids)
        try:
            self._ids.append(req.request_id)
        except OverflowError:
            self._ids = array("Q", self._ids)
            self._ids.append(req.request_id)
        self._rows.extend(_BLANK if self._rows.typecode == "i" else _BLANK_WIDE)
        self._open[position] = req
        self._recent.pop(req.request_id, None)
        self._recent[req.request_id] = position
        if len(self._recent) > RECENT_LIMIT:
            del self._recent[next(iter(self._recent))]
        if len(self._open) > OPEN_LIMIT:
            self._pack_oldest(OPEN_LIMIT // 2)

    def latest(self, request_id: int) -> Request | None:
        """The latest request with this id, reopened if it was packed."""
        position = self._recent.get(request_id)
        if position is None:
            return None
        req = self._open.pop(position, None)
        if req is None:
            req = self.at(position)
        self._open[position] = req  # the most recently used now
        if len(self._open) > OPEN_LIMIT:
            self._pack_oldest(OPEN_LIMIT // 2)
        return req

    def find(self, request_id: int) -> Request | None:
        """The latest request with this id, however old, read without reopening it (after
        attribution: a check naming a request id)."""
        for position in range(len(self._ids) - 1, -1, -1):
            if self._ids[position] == request_id:
                return self.at(position)
        return None

    def seal(self) -> None:
        """No line can reach these requests any more (attribution is done, or a newer manager
        took the rank's requests): every request packed, the id index dropped (columns are
        whole from now on; :meth:`find` still finds a request by id)."""
        self._pack_oldest(len(self._open))
        self._recent.clear()

    def column(self, name: str) -> Sequence[int]:
        """One field of every request, in order (``request_id`` or a packed field; a field
        the log did not show is :data:`NONE`). Only after :meth:`seal`."""
        assert not self._open, "seal() first"
        if name == "request_id":
            return self._ids
        return self._rows[_PACKED.index(name) :: len(_PACKED)]

    def __iter__(self) -> Iterator[Request]:
        if self._open:
            for position in range(len(self._ids)):
                yield self.at(position)
            return
        # Sealed: read a block of rows at a time, column by column (a report of a dense log
        # makes tens of thousands of these per GiB; whole columns would double the table).
        width, segment, rank = len(_PACKED), self._segment, self._rank
        for first in range(0, len(self._ids), _ITER_BLOCK):
            ids = self._ids[first : first + _ITER_BLOCK]
            rows = self._rows[first * width : (first + len(ids)) * width]
            columns = [rows[i::width] for i in range(width)]
            for rid, seq, line, length, reused, m, p, c, x, on, off, st in zip(
                ids, *columns, strict=True
            ):
                yield Request(
                    seq,
                    rid,
                    segment,
                    rank,
                    line,
                    length,
                    reused,
                    [],
                    None if m == NONE else m,
                    None if p == NONE else p,
                    None if c == NONE else c,
                    None if x == NONE else x,
                    None if on == NONE else on,
                    None if off == NONE else off,
                    None if st == NONE else st,
                )

    def at(self, position: int) -> Request:
        req = self._open.get(position)
        return req if req is not None else self._unpack(position)

    def _pack_oldest(self, count: int) -> None:
        width = len(_PACKED)
        for position in list(itertools.islice(self._open, count)):
            req = self._open.pop(position)
            at = position * width
            row = [NONE if value is None else value for value in _packed_values(req)]
            try:
                self._rows[at : at + width] = array(self._rows.typecode, row)
            except OverflowError:  # the first number that needs 64 bits
                self._rows = array("q", self._rows)
                self._rows[at : at + width] = array("q", row)

    def _unpack(self, position: int) -> Request:
        at = position * len(_PACKED)
        row = self._rows[at : at + len(_PACKED)]
        opt = [None if x == NONE else x for x in row[4:]]
        return Request(
            seq=row[0],
            request_id=self._ids[position],
            segment=self._segment,
            rank=self._rank,
            line=row[1],
            input_length=row[2],
            reused_tokens=row[3],
            matched=opt[0],
            partial=opt[1],
            copied=opt[2],
            missed=opt[3],
            onboard_copies=opt[4],
            offload_copies=opt[5],
            stored_blocks=opt[6],
        )


@dataclass
class Segment:
    """One KV cache manager's lifetime on one rank."""

    index: int
    rank: int | None
    line: int
    run: int
    estimation: bool = False
    reuse_enabled: bool | None = None
    tokens_per_block: int | None = None
    primary_blocks: dict[int | None, int] = field(default_factory=dict)
    secondary_blocks: dict[int | None, int] = field(default_factory=dict)
    #: construction lines seen: what they announce -> the numbers they printed
    construction: dict[tuple[Any, ...], tuple[Any, ...]] = field(default_factory=dict)
    used: bool = False
    requests: RequestTable = field(init=False)
    summaries: list[SummaryBlock] = field(default_factory=list)
    # Totals of the hot lines, whether or not a request claimed them.
    lookups: list[int] = field(
        default_factory=lambda: [0, 0, 0, 0]
    )  # matched, partial, copied, missed
    lookup_lines: int = 0
    offload_copies: int = 0
    onboard_copies: int = 0
    copy_lines: int = 0
    iter_offloads: int | None = None
    iter_onboards: int | None = None
    event_offloads: int | None = None
    event_onboards: int | None = None

    def __post_init__(self) -> None:
        self.requests = RequestTable(self.index, self.rank)

    def request(self, request_id: int) -> Request | None:
        """The latest request with this id (ids come back: warm-up dummies, several runs)."""
        return self.requests.find(request_id)

    def add_request(self, request: Request) -> None:
        self.requests.add(request)

    @property
    def has_host_pool(self) -> bool:
        """A secondary (host) pool with blocks: evicted blocks can be offloaded."""
        return any(n > 0 for n in self.secondary_blocks.values())


def _rank_order(rank: int | None) -> int:
    """Unranked output sorts first: it counts as the lowest rank."""
    return -1 if rank is None else rank


@dataclass
class Evidence:
    """Everything attributed from one log."""

    segments: list[Segment] = field(default_factory=list)
    errors: list[ErrorLine] = field(default_factory=list)
    error_count: int = 0
    #: Error lines printed after kvverify began to stop the run (a ``stop`` marker): the
    #: consequences of Ctrl-C or a timeout, not engine errors.
    errors_after_stop: int = 0
    markers: list[Marker] = field(default_factory=list)
    v2: ManagerV2 | None = None
    versions: list[Banner] = field(default_factory=list)
    levels: dict[str, int] = field(default_factory=dict)
    shape: LogShape | None = None
    runs: int = 1
    #: The log shows TensorRT-LLM 1.2+ lines (releaseBlocks, numConnectorMatchedTokens, windowed
    #: addSequence): that era logs every block copy, so no copyBlock line means no copy.
    prints_copies: bool = False
    #: Summary line counts seen (3, 7 or 9) and whether blocks carried a window prefix.
    summary_formats: set[tuple[int, bool]] = field(default_factory=set)
    #: ``BlockManager[windowSize=N]::addSequence`` lines (TensorRT-LLM 2026 and later).
    windowed_requests: bool = False
    #: The evidence families the log prints (``addSequence``, ``copyBlock``, ...: see
    #: :data:`kvverify.evidence.facts.FAMILIES`), for a baseline to notice one disappearing.
    families: set[str] = field(default_factory=set)

    def _last_run(self) -> list[Segment]:
        return [s for s in self.segments if s.run == self.runs - 1]

    def ranks(self) -> list[int | None]:
        """The ranks the checks can read, lowest first: those with a KV cache manager at work in
        the last run (a rank-less Python line beside ranked C++ lines is not a rank of its own);
        when none was at work, every rank the last run shows."""
        last = self._last_run()
        ranks = {s.rank for s in last if s.used} or {s.rank for s in last}
        return sorted(ranks, key=_rank_order)

    def rank_segments(self, rank: int | None) -> list[Segment]:
        return [s for s in self.segments if s.rank == rank]

    def final_segment(self) -> Segment | None:
        """The final engine's segment on the lowest rank (see the module doc)."""
        ranks = self.ranks()
        return self.final_segment_of(ranks[0]) if ranks else None

    def final_segment_of(self, rank: int | None) -> Segment | None:
        """The last segment of ``rank`` in the last run that saw any activity; None when the
        last run's engine did nothing (an earlier run's manager never stands in for it)."""
        active = [s for s in self._last_run() if s.rank == rank and s.used]
        return active[-1] if active else None

    @property
    def debug(self) -> bool:
        return "debug" in self.levels

    def copy_lines_expected(self, seg: Segment) -> bool:
        """Would this log show a copyBlock line for every offload and onboard?"""
        return self.prints_copies and seg.used


class Attributor:
    """Consumes events in order; :meth:`result` returns the :class:`Evidence`."""

    def __init__(self) -> None:
        self.ev = Evidence()
        self._current: dict[int | None, Segment] = {}
        self._run = 0
        self._run_floor = 0  # segments of earlier runs never take a summary
        self._cursor: dict[tuple[int | None, int | None], int] = {}  # see _place
        self._per_rank: dict[int | None, int] = {}  # segments made on each rank
        self._open_blocks: dict[tuple[int | None, int | None], SummaryBlock] = {}
        # Per rank: counts of lookups/copies waiting for the next addSequence.
        self._pending: dict[int | None, list[int]] = {}
        self._pending_prepop: dict[tuple[int | None, int], int] = {}
        # Window of the lookups waiting for the next addSequence (1.2 prints none on it).
        self._pending_window: dict[int | None, int | None] = {}
        self._requests = 0  # Request.seq of the next request
        self._stopped = False  # kvverify began to stop the current run

    # -- segments ------------------------------------------------------------------------------

    def _new_segment(self, rank: int | None, line: int) -> Segment:
        index = self._per_rank.get(rank, 0)
        self._per_rank[rank] = index + 1
        seg = Segment(index=index, rank=rank, line=line, run=self._run)
        self._settle(rank)  # lines no request claimed stay the old segment's
        old = self._current.get(rank)
        if old is not None:
            old.requests.seal()  # requests only ever reach a rank's newest segment
        self.ev.segments.append(seg)
        self._current[rank] = seg
        self._pending_window.pop(rank, None)
        return seg

    def _settle(self, rank: int | None) -> list[int] | None:
        """The per-block and copy lines waiting on ``rank``, added to its current segment's
        totals (whether a request claims them or not); returned for the request that does."""
        p = self._pending.pop(rank, None)
        seg = self._current.get(rank)
        if p is None or seg is None:
            return p
        seg.lookup_lines += p[0] + p[1] + p[2] + p[3]
        t = seg.lookups
        t[0] += p[0]
        t[1] += p[1]
        t[2] += p[2]
        t[3] += p[3]
        seg.copy_lines += p[4] + p[5]
        seg.onboard_copies += p[4]
        seg.offload_copies += p[5]
        return p

    def _segment_for_use(self, rank: int | None, line: int) -> Segment:
        """The segment requests and their lines go to: the newest of the rank, unless it has
        printed its summary (it is destroyed): then a new one."""
        seg = self._current.get(rank)
        if seg is None or seg.run != self._run or seg.summaries:
            seg = self._new_segment(rank, line)
        seg.used = True
        return seg

    def _construction(
        self,
        rank: int | None,
        line: int,
        key: tuple[Any, ...],
        value: tuple[Any, ...] = (),
        *,
        repeats: bool = False,
    ) -> Segment:
        """The segment a construction line belongs to. ``repeats``: the same manager may print
        this line again with the same numbers (one pool line per pool of a window; the PyTorch
        estimation's two lines on one set of pools), so only different numbers start a new one."""
        seg = self._current.get(rank)
        if (
            seg is None
            or seg.used
            or seg.run != self._run
            or (key in seg.construction and (not repeats or seg.construction[key] != value))
        ):
            seg = self._new_segment(rank, line)
        seg.construction[key] = value
        return seg

    def _new_run(self) -> None:
        if self.ev.segments:
            self._run += 1
            self.ev.runs += 1
            self._run_floor = len(self.ev.segments)
            self._open_blocks.clear()

    # -- events ----------------------------------------------------------------------------------

    def feed(self, events: Iterable[Event]) -> None:
        handlers = self._handlers
        for e in events:
            handlers[type(e)](e)

    @property
    def _handlers(self) -> dict[type, Callable[[Any], None]]:
        return {
            BlockLookups: self._lookups,
            BlockCopies: self._copies,
            AddSequence: self._add_sequence,
            PrepopulatedLength: self._prepopulated,
            ReleaseBlocks: self._release,
            SummaryLine: self._summary_line,
            ReuseSetting: self._reuse,
            TokensPerBlock: self._tokens_per_block,
            PoolSize: self._pool,
            IterationStats: self._iteration_stats,
            CacheLevelEvents: self._cache_events,
            ErrorLine: self._error,
            ManagerV2: self._v2,
            Banner: self._banner,
            Marker: self._marker,
            LevelSeen: self._level,
            LogShape: self._shape,
        }

    # The hottest handlers (a run of per-block lines each: about one per request): they only
    # count, per rank; _settle adds the counts to the segment when a request claims them.

    def _lookups(self, e: BlockLookups) -> None:
        p = self._pending_counts(e.rank, e.line)
        self._pending_window[e.rank] = e.window
        p[0] += e.matched
        p[1] += e.partial
        p[2] += e.copied
        p[3] += e.missed
        p[4] += e.onboards
        p[5] += e.offloads

    def _copies(self, e: BlockCopies) -> None:
        p = self._pending_counts(e.rank, e.line)
        p[4] += e.onboards
        p[5] += e.offloads

    def _pending_counts(self, rank: int | None, line: int) -> list[int]:
        """The counts of per-block and copy lines waiting on ``rank`` for a request to claim
        them (matched, partial, copied, missed, onboards, offloads)."""
        self._segment_for_use(rank, line)
        p = self._pending.get(rank)
        if p is None:
            p = self._pending[rank] = [0, 0, 0, 0, 0, 0]
        return p

    def _prepopulated(self, e: PrepopulatedLength) -> None:
        if max(e.request_id, abs(e.length), e.prompt_len) >= _HUGE:
            return
        self.ev.families.add("prepopulatedPromptLength")
        seg = self._current.get(e.rank)
        req = (
            seg.requests.latest(e.request_id) if seg is not None and seg.run == self._run else None
        )
        # 1.2 prints it before addSequence (once per window); 2026 once, after them.
        if req is not None and (e.rank, e.request_id) not in self._pending_prepop:
            req.reused_tokens = e.length
        else:
            self._pending_prepop[(e.rank, e.request_id)] = e.length
            if len(self._pending_prepop) > RECENT_LIMIT:  # lines no addSequence ever claims
                del self._pending_prepop[next(iter(self._pending_prepop))]

    def _release(self, e: ReleaseBlocks) -> None:
        if max(e.request_id, e.stored) >= _HUGE:
            return
        self.ev.families.add("releaseBlocks")
        self.ev.prints_copies = True
        req = self._segment_for_use(e.rank, e.line).requests.latest(e.request_id)
        if req is not None:
            req.stored_blocks = (req.stored_blocks or 0) + e.stored

    def _reuse(self, e: ReuseSetting) -> None:
        self.ev.families.add("configuration")
        self._construction(e.rank, e.line, ("reuse",)).reuse_enabled = e.enabled

    def _tokens_per_block(self, e: TokensPerBlock) -> None:
        self.ev.families.add("configuration")
        self._construction(e.rank, e.line, ("tpb",)).tokens_per_block = e.tokens_per_block

    def _pool(self, e: PoolSize) -> None:
        self.ev.families.add("configuration")
        key = ("pool", e.construction, e.window, e.primary is None, e.secondary is None)
        value = (e.primary, e.secondary, e.tokens_per_block)
        seg = self._construction(e.rank, e.line, key, value, repeats=True)
        for pools, n in ((seg.primary_blocks, e.primary), (seg.secondary_blocks, e.secondary)):
            if n is None:
                continue
            window = e.window
            named = [w for w in pools if w is not None]
            if window is None and len(named) == 1:
                window = named[0]  # a line without window, for the one window there is
            elif window is not None and None in pools:
                del pools[None]  # the same pool, now with its window named
            pools[window] = n
        if e.tokens_per_block is not None:
            seg.tokens_per_block = e.tokens_per_block
        seg.estimation = seg.estimation or e.estimation

    def _iteration_stats(self, e: IterationStats) -> None:
        self.ev.families.add("iterationStats")
        seg = self._latest_segment(e.line)
        seg.iter_offloads = (seg.iter_offloads or 0) + e.offloads
        seg.iter_onboards = (seg.iter_onboards or 0) + e.onboards

    def _cache_events(self, e: CacheLevelEvents) -> None:
        self.ev.families.add("kvCacheEvents")
        seg = self._latest_segment(e.line)
        seg.event_offloads = (seg.event_offloads or 0) + e.offloads
        seg.event_onboards = (seg.event_onboards or 0) + e.onboards

    def _error(self, e: ErrorLine) -> None:
        if self._stopped:
            self.ev.errors_after_stop += 1
            return
        self.ev.error_count += 1
        if len(self.ev.errors) < MAX_ERRORS:
            self.ev.errors.append(e)

    def _v2(self, e: ManagerV2) -> None:
        self.ev.v2 = e

    def _banner(self, e: Banner) -> None:
        self.ev.versions.append(e)
        if any(s.run == self._run and (s.used or s.construction) for s in self.ev.segments):
            self._new_run()

    def _marker(self, e: Marker) -> None:
        self.ev.markers.append(e)
        kind = None if e.data is None else e.data.get("t")
        if kind == "run":
            self._new_run()
            self._stopped = False
        elif kind == "stop":
            self._stopped = True

    def _level(self, e: LevelSeen) -> None:
        self.ev.levels.setdefault(e.level, e.line)

    def _shape(self, e: LogShape) -> None:
        self.ev.shape = e

    def _latest_segment(self, line: int) -> Segment:
        """Where printed iteration stats and KV-cache events go: the newest manager at work in
        the current run, on its lowest rank (the stats API reports rank 0's executor); a
        manager only announced (a rank-less Python pool line) is not at work."""
        current = [s for s in self.ev.segments if s.run == self._run]
        working = [s for s in current if s.used] or current
        if working:
            low = min((s.rank for s in working), key=_rank_order)
            seg = [s for s in working if s.rank == low][-1]
        else:
            seg = self._new_segment(None, line)
        seg.used = True
        return seg

    def _add_sequence(self, e: AddSequence) -> None:
        if e.request_id > PADDING_REQUEST_ID or max(e.input_length, abs(e.prepopulated)) >= _HUGE:
            return
        self.ev.families.add("addSequence")
        if e.connector_matched is not None or e.window is not None:
            self.ev.prints_copies = True
        if e.window is not None:
            self.ev.windowed_requests = True
        seg = self._segment_for_use(e.rank, e.line)
        prepop = self._pending_prepop.pop((e.rank, e.request_id), None)
        reused = e.prepopulated if prepop is None else prepop
        req = seg.requests.latest(e.request_id)
        pending = self._settle(e.rank)
        window = e.window if e.window is not None else self._pending_window.pop(e.rank, None)
        # One addSequence line per window (VSWA): the same request, unless its id comes back
        # for a new request (warm-up dummies reuse ids) after it was released.
        if req is None or req.stored_blocks is not None or window in req.windows:
            req = Request(
                seq=self._requests,
                request_id=e.request_id,
                segment=seg.index,
                rank=e.rank,
                line=e.line,
                input_length=e.input_length,
                reused_tokens=reused,
            )
            self._requests += 1
            seg.add_request(req)
        else:  # another window of the same request: 2026 keeps the minimum (1.2: the last)
            req.reused_tokens = min(req.reused_tokens, reused) if prepop is None else prepop
        req.windows.append(window)
        if pending is not None:
            req.matched = (req.matched or 0) + pending[0]
            req.partial = (req.partial or 0) + pending[1]
            req.copied = (req.copied or 0) + pending[2]
            req.missed = (req.missed or 0) + pending[3]
            req.onboard_copies = (req.onboard_copies or 0) + pending[4]
            req.offload_copies = (req.offload_copies or 0) + pending[5]

    def _summary_line(self, e: SummaryLine) -> None:
        self.ev.families.add("summary")
        key = (e.rank, e.window)
        block = self._open_blocks.get(key)
        if block is None or e.metric == "allocated_total_blocks" or e.metric in block.values:
            block = SummaryBlock(line=e.line, rank=e.rank, window=e.window)
            self._open_blocks[key] = block
            self._place(block)
        block.values[e.metric] = e.value
        block.last_line = e.line

    def _place(self, block: SummaryBlock) -> None:
        """First in, first out: the oldest segment of this rank and run without a summary for
        this window takes it; else a new segment (a log that holds only summaries). A cursor
        per rank and window remembers where the search may start (segments before it have
        that window's summary, or are another rank's): a log of thousands of managers is not
        searched from its start for each summary."""
        key = (block.rank, block.window)
        segments = self.ev.segments
        i = max(self._cursor.get(key, 0), self._run_floor)
        while i < len(segments):
            seg = segments[i]
            if seg.rank == block.rank and seg.run == self._run:
                known = set(seg.primary_blocks) - {None}
                taken = any(s.window == block.window for s in seg.summaries)
                fits = block.window is None or not known or block.window in known
                if not taken and fits:
                    break
            i += 1
        else:
            seg = self._new_segment(block.rank, block.line)
            i = len(segments) - 1
        self._cursor[key] = i + 1
        seg.used = True
        block.segment = seg.index
        seg.summaries.append(block)

    def result(self) -> Evidence:
        for rank in list(self._pending):
            self._settle(rank)
        for seg in self.ev.segments:
            seg.requests.seal()
            for b in seg.summaries:
                self.ev.summary_formats.add((len(b.values), b.window is not None))
            if seg.lookup_lines:  # the hot lines: counted per segment, not noted per line
                self.ev.families.add("loadOrAllocateBlocks")
            if seg.copy_lines:
                self.ev.families.add("copyBlock")
        return self.ev


def attribute(events: Iterable[Event]) -> Evidence:
    """Attribute a whole event stream."""
    a = Attributor()
    a.feed(events)
    return a.result()
