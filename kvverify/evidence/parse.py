"""The log parser: a pure, streaming function from bytes to evidence events.

Feed it bytes in chunks of any size (:meth:`Scanner.feed`), then :meth:`Scanner.close`; or call
:func:`parse_bytes` / :func:`iter_events`. Memory is bounded by the chunk size plus the longest
line it keeps (:data:`MAX_LINE`; a longer line is scanned in pieces), never by the log size.
The events are the same whatever the chunking.

Two paths give the same events. The pure-Python one below is the reference: the regexes of
:mod:`~kvverify.evidence.patterns` over each chunk, one handler per kind of line
(:data:`HANDLERS`). The native one (``_scan.c``, built by ``pip install`` where a C compiler is
present) walks the lines in C once the log's level is known (from its first DEBUG tag on),
recognises the per-block and per-request lines there and hands every other evidence line back
to the same regexes and handlers. It is used when it was built, unless ``KVVERIFY_NATIVE=0``;
:func:`engine_name` says which path runs. ``tests/test_native.py`` fuzzes one against the other.
Every event depends on its own line only (and on the lines before it for its number), never on
where the chunks were cut, but for a line longer than :data:`MAX_LINE`.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import queue
import re
import threading
from collections.abc import Callable, Iterable, Iterator
from types import ModuleType
from typing import Any, Literal, NamedTuple, Protocol

from kvverify.evidence import patterns as p
from kvverify.evidence.events import (
    AddSequence,
    Banner,
    BlockCopies,
    BlockLookups,
    CacheLevelEvents,
    ErrorKind,
    ErrorLine,
    Event,
    IterationStats,
    Level,
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

#: A line longer than this is scanned in pieces of this size (evidence that straddles a piece
#: boundary inside such a line can be missed; TensorRT-LLM's lines are far shorter).
MAX_LINE = 4 << 20
#: Error texts are cut to this many characters.
MAX_TEXT = 400

_DIGITS = frozenset(b"0123456789")

Match = re.Match[bytes]

#: ``id()`` of every pattern the scan uses -> its table (``match.lastindex`` -> kind, fields).
_TABLES: dict[int, dict[int, tuple[str, p.Fields]]] = {
    id(p.ANCHORED): p.ANCHORED_TABLE,
    id(p.LINE_START): p.LINE_START_TABLE,
    id(p.FIRST_LINE): p.LINE_START_TABLE,
}

#: Alternatives TensorRT-LLM prints only at DEBUG: one of them proves the level.
_DEBUG_ONLY = frozenset(
    {"summary", "lookup", "addseq", "addseqw", "release", "prepop", "pool", "copy"}
)

_ENV = "KVVERIFY_NATIVE"


@functools.cache
def _native_module() -> ModuleType | None:
    """The native scanner, configured with this package's leads and events; None when it was
    not built (no C compiler at install time) or cannot be loaded."""
    try:
        from kvverify.evidence import _scan  # type: ignore[attr-defined]
    except ImportError:
        return None
    classes = [
        (cls, tuple(f.name for f in dataclasses.fields(cls)))
        for cls in (BlockLookups, BlockCopies, AddSequence, ReleaseBlocks, PrepopulatedLength)
    ]
    _scan.configure(p.SPACE_LEADS, p.TAIL_LEADS, p.LINE_START_LEADS, classes)
    module: ModuleType = _scan
    return module


def native_available() -> bool:
    """Whether the native scanner was built and loads (whatever ``KVVERIFY_NATIVE`` says)."""
    return _native_module() is not None


def _native_default() -> bool:
    off = os.environ.get(_ENV, "1").strip().lower() in ("0", "false", "no", "off")
    return not off and native_available()


def engine_name() -> Literal["native", "python"]:
    """Which parser path a :class:`Scanner` takes by default in this process: ``"native"``
    (the C scanner) or ``"python"`` (not built, or turned off with ``KVVERIFY_NATIVE=0``)."""
    return "native" if _native_default() else "python"


def _text(raw: bytes) -> str:
    """Decode a captured field for display: invalid UTF-8 replaced, colours and CR removed."""
    if b"\x1b" in raw:
        raw = p.ANSI_RX.sub(b"", raw)
    text = raw.decode("utf-8", "replace").strip()
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"


def _int(raw: bytes | None) -> int | None:
    return None if raw is None else int(raw)


class _Runs:
    """The events made so far, and the run of per-block lines being coalesced: consecutive
    ``loadOrAllocateBlocks`` lines of one rank and window, with the ``copyBlock`` lines of that
    rank among them, become one :class:`BlockLookups`; consecutive ``copyBlock`` lines of one
    rank with no lookup one :class:`BlockCopies` (a lookup of that rank that follows takes
    them over); any other event ends a run. At most one run is going on. The native
    scanner's ``_scan.Runs`` does the same in C (same methods)."""

    __slots__ = ("_copies", "_lookups", "_out")

    def __init__(self) -> None:
        self._out: list[Event] = []
        # [line, rank, window, matched, partial, copied, missed, offloads, onboards]
        # and [line, rank, offloads, onboards]
        self._lookups: list[Any] | None = None
        self._copies: list[Any] | None = None

    def lookup(self, line: int, rank: int | None, window: int | None, slot: int) -> None:
        """A lookup line; ``slot``: its outcome's counter (:data:`~p.LOOKUP_OUTCOMES`)."""
        run = self._lookups
        if run is None or run[1] != rank or run[2] != window:
            copies = self._copies
            if copies is not None and copies[1] == rank:  # the lookups take the copies over
                self._copies = None
                run = self._lookups = [copies[0], rank, window, 0, 0, 0, 0, *copies[2:]]
            else:
                self.flush()
                run = self._lookups = [line, rank, window, 0, 0, 0, 0, 0, 0]
        run[3 + slot] += 1

    def copy(self, line: int, rank: int | None, offload: bool) -> None:
        run = self._lookups
        if run is not None:
            if run[1] == rank:
                run[7 if offload else 8] += 1
                return
            self._out.append(BlockLookups(*run))
            self._lookups = None
        run = self._copies
        if run is None or run[1] != rank:
            if run is not None:
                self._out.append(BlockCopies(*run))
            run = self._copies = [line, rank, 0, 0]
        run[2 if offload else 3] += 1

    def flush(self) -> None:
        if self._lookups is not None:
            self._out.append(BlockLookups(*self._lookups))
            self._lookups = None
        if self._copies is not None:
            self._out.append(BlockCopies(*self._copies))
            self._copies = None

    def emit(self, event: Event) -> None:
        """End the current run, then add ``event``."""
        self.flush()
        self._out.append(event)

    def take(self) -> list[Event]:
        """The events so far."""
        out, self._out = self._out, []
        return out


class _NativeRuns(Protocol):
    """``_scan.Runs``: :class:`_Runs`, plus the native scan of a stretch of lines."""

    def lookup(self, line: int, rank: int | None, window: int | None, slot: int) -> None: ...
    def copy(self, line: int, rank: int | None, offload: bool) -> None: ...
    def flush(self) -> None: ...
    def emit(self, event: Event) -> None: ...
    def take(self) -> list[Event]: ...
    def scan(
        self,
        buf: bytes,
        start: int,
        end: int,
        at_line_start: bool,
        line: int,
        deferred: Callable[[bytes, int, int, int], None],
    ) -> int: ...
    def replay(
        self, prepared: Any, buf: bytes, line: int, deferred: Callable[[bytes, int, int, int], None]
    ) -> int: ...


class Stretch(NamedTuple):
    """Whole lines to scan: ``buf[start:end]``. ``buf[start]`` starts a line unless it
    continues an over-long line (``at_line_start`` False, and then ``start`` is 0)."""

    buf: bytes
    start: int
    end: int
    at_line_start: bool


class _Lines:
    """Cuts a stream of chunks into stretches of whole lines, carrying a partial line over;
    a line longer than ``max_line`` goes out in pieces. A chunk is scanned where it lies: only
    the line that the carry begins is copied."""

    __slots__ = ("at_line_start", "carry", "long_lines", "max_line")

    def __init__(self, max_line: int) -> None:
        self.max_line = max_line
        self.carry = b""
        self.at_line_start = True  # the carry starts a line (False inside an over-long line)
        self.long_lines = 0

    def split(self, data: bytes) -> list[Stretch]:
        cut = data.rfind(b"\n") + 1
        if not cut:  # no line ends here
            buf = self.carry + data
            if len(buf) <= self.max_line:
                self.carry = buf
                return []
            if self.at_line_start:
                self.long_lines += 1
            out = [Stretch(buf, 0, len(buf), self.at_line_start)]
            self.at_line_start = False
            self.carry = b""
            return out
        out = []
        start = 0
        if self.carry:  # the carried line ends at the first newline of data
            start = data.find(b"\n") + 1
            head = self.carry + data[:start]
            out.append(Stretch(head, 0, len(head), self.at_line_start))
            self.at_line_start = True
        if start < cut:
            out.append(Stretch(data, start, cut, self.at_line_start))
        self.at_line_start = True
        self.carry = data[cut:]
        return out

    def last(self) -> Stretch | None:
        """The last line, when it has no newline: as if it had one (the newline is not part of
        any field; the scanner takes its line back)."""
        if not self.carry:
            return None
        out = Stretch(self.carry + b"\n", 0, len(self.carry) + 1, self.at_line_start)
        self.carry = b""
        return out


class Scanner:
    """Incremental parser. Not thread-safe; one per log."""

    def __init__(self, *, max_line: int = MAX_LINE, native: bool | None = None) -> None:
        """``native``: None takes the native path when it is available and not turned off
        (:func:`engine_name`); False never does; True requires it."""
        if native and not native_available():
            raise RuntimeError("the native scanner is not available (kvverify.evidence._scan)")
        module = _native_module() if (_native_default() if native is None else native) else None
        self._native: _NativeRuns | None = None if module is None else module.Runs()
        self._runs: _Runs | _NativeRuns = _Runs() if self._native is None else self._native
        self._lines = _Lines(max_line)
        self._line = 1  # number of the line the next unscanned byte belongs to
        self._at_line_start = True  # the stretch being scanned starts with a line
        self._levels_todo: set[Level] = {"debug", "info"}
        self._closed = False

    @property
    def native(self) -> bool:
        """Whether this scanner takes the native path."""
        return self._native is not None

    # -- public API ------------------------------------------------------------------------

    def feed(self, data: bytes) -> list[Event]:
        """Scan ``data`` (any chunk of the log) and return the events completed so far."""
        if self._closed:
            raise RuntimeError("Scanner.feed after close")
        for stretch in self._lines.split(data):
            self._scan(stretch)
        return self._runs.take()

    def close(self) -> list[Event]:
        """End of input: scan a last line without newline and report the log's shape."""
        if self._closed:
            return []
        unterminated = bool(self._lines.carry) or not self._lines.at_line_start
        stretch = self._lines.last()
        if stretch is not None:
            self._scan(stretch)
            self._line -= 1
        lines = self._line if unterminated else self._line - 1
        self._runs.emit(LogShape(lines, unterminated, self._lines.long_lines))
        self._closed = True
        return self._runs.take()

    # -- scanning ----------------------------------------------------------------------------

    def _scan(self, stretch: Stretch, prepared: Any = None) -> None:
        """Scan a stretch; ``prepared``: what ``_scan.prepare`` found in all of it, when a
        thread prepared it ahead (see :func:`iter_events_threaded`)."""
        buf, start, end, self._at_line_start = stretch
        if self._native is None:
            self._scan_python(buf, start, end)
            return
        if self._levels_todo:
            # The native path needs the log's level known: Python scans up to and including
            # the line of the first DEBUG tag, which tells it (in a DEBUG log, the first lines).
            cut = _through_first_debug_tag(buf, start, end)
            self._scan_python(buf, start, cut)
            start, prepared = cut, None
        if start == end:
            return
        if prepared is not None:
            self._line = self._native.replay(prepared, buf, self._line, self._deferred)
        else:
            at_line_start = self._at_line_start or start > stretch.start
            self._line = self._native.scan(
                buf, start, end, at_line_start, self._line, self._deferred
            )

    def _scan_python(self, buf: bytes, start: int, end: int) -> None:
        """The reference scan of ``buf[start:end]``: every regex over the whole stretch."""
        anchored: Iterable[Match] = p.ANCHORED.finditer(buf, start, end)
        # Unprefixed bodies and tracebacks are rare. A LINE_START match begins at the newline
        # that ends the previous line.
        if start:
            extras: list[Match | tuple[int, Level]] = [*p.LINE_START.finditer(buf, start - 1, end)]
        else:
            extras = [*self._first_line(buf, end), *p.LINE_START.finditer(buf, 0, end)]
        merged: Iterable[Match | tuple[int, Level]]
        if self._levels_todo:
            found = list(anchored)
            extras += self._find_levels(buf, start, end, found)
            merged = sorted([*found, *extras], key=_position) if extras else found
        elif extras:
            merged = sorted([*anchored, *extras], key=_position)
        else:
            merged = anchored
        pos = start
        line = self._line
        taken_to = -1
        for m in merged:
            if type(m) is tuple:  # (position, level): where DEBUG / INFO logging shows first
                line += buf.count(b"\n", pos, m[0])
                pos = m[0]
                self._runs.emit(LevelSeen(line, m[1]))
                continue
            at = m.start()  # type: ignore[union-attr]
            if at < taken_to:
                continue  # the line was taken by a match that starts earlier on it
            taken_to = m.end()  # type: ignore[union-attr]
            # +1: a LINE_START match begins at the newline that ends the previous line.
            line += buf.count(b"\n", pos, at + 1)
            pos = at + 1
            self._handle(m, buf, line)  # type: ignore[arg-type]
        self._line = line + buf.count(b"\n", pos, end)

    def _handle(self, m: Match, buf: bytes, line: int) -> None:
        kind, fields = _TABLES[id(m.re)][m.lastindex or 0]
        HANDLERS[kind](self, m, buf, line, fields)

    def _deferred(self, buf: bytes, a: int, b: int, line: int) -> None:
        """Lines ``buf[a:b]`` the native scanner hands back (``line``: the first one's number):
        scanned as the reference scans them."""
        self._line = line
        self._scan_python(buf, a, b)

    def _first_line(self, buf: bytes, end: int) -> list[Match]:
        """A body at the very start of ``buf``, when that is the start of a line."""
        first = p.FIRST_LINE.match(buf, 0, end) if self._at_line_start else None
        return [] if first is None else [first]

    def _find_levels(
        self, buf: bytes, start: int, end: int, matches: list[Match]
    ) -> list[tuple[int, Level]]:
        """Where logging at DEBUG first shows (the first DEBUG tag or DEBUG-only line, whichever
        comes first) and, before that, INFO. Searching stops once DEBUG is known, so a DEBUG log
        pays for this only up to its first DEBUG line."""
        debug_at = end
        for m in matches:
            if _TABLES[id(m.re)][m.lastindex or 0][0] in _DEBUG_ONLY:
                debug_at = m.start()
                break
        hits = [i for i in (buf.find(t, start, debug_at) for t in p.DEBUG_TAGS) if i >= 0]
        debug_at = min([debug_at, *hits])
        found: list[tuple[int, Level]] = []
        if "info" in self._levels_todo:
            info = [i for i in (buf.find(t, start, debug_at) for t in p.INFO_TAGS) if i >= 0]
            if info:
                found.append((min(info), "info"))
                self._levels_todo.discard("info")
        if debug_at < end:
            found.append((debug_at, "debug"))
            self._levels_todo.clear()  # INFO matters only for a log without DEBUG
        return found

    # -- turning a match into an event ---------------------------------------------------------
    # One handler per kind of alternative (the part of a group name before "__"): HANDLERS.

    def _on_summary(self, m: Match, buf: bytes, line: int, f: p.Fields) -> None:
        self._runs.emit(
            SummaryLine(
                line,
                _rank(buf, m.start()),
                _window(m, buf, f),
                p.METRIC_NAMES[m[f["metric"]]],
                float(m[f["value"]]),
            )
        )

    def _on_lookup(self, m: Match, buf: bytes, line: int, f: p.Fields) -> None:
        # The hottest handler of the pure-Python path: one call per block looked up.
        start = m.start()
        if "win" in f or "bare" in f:  # unprefixed, or pre-2025 "] BlockManager::..."
            window = _window(m, buf, f)
            rank = _fast_rank(buf, start + 2) if "bare" in f else None
        else:  # found at the "]" of "BlockManager[windowSize=N]"
            rank, window = _lookup_key(buf, start)
        self._runs.lookup(line, rank, window, p.LOOKUP_OUTCOMES[m[f["outcome"]]])

    def _on_copy(self, m: Match, buf: bytes, line: int, f: p.Fields) -> None:
        self._runs.copy(line, _fast_rank(buf, m.start() + 2), m[f["offload"]] == b"true")

    def _on_addseq(self, m: Match, buf: bytes, line: int, f: p.Fields) -> None:
        con = f["con"]
        self._runs.emit(
            AddSequence(
                line,
                _rank(buf, m.start()),
                _window(m, buf, f),
                int(m[f["rid"]]),
                int(m[f["len"]]),
                int(m[f["pre"]]),
                _int(m[con]),
            )
        )

    def _on_release(self, m: Match, buf: bytes, line: int, f: p.Fields) -> None:
        self._runs.emit(
            ReleaseBlocks(
                line,
                _rank(buf, m.start()),
                _window(m, buf, f),
                int(m[f["rid"]]),
                int(m[f["n"]]),
            )
        )

    def _on_prepop(self, m: Match, buf: bytes, line: int, f: p.Fields) -> None:
        self._runs.emit(
            PrepopulatedLength(
                line,
                _rank(buf, m.start()),
                int(m[f["rid"]]),
                int(m[f["len"]]),
                int(m[f["prompt"]]),
            )
        )

    def _on_reuse(self, m: Match, buf: bytes, line: int, f: p.Fields) -> None:
        self._runs.emit(ReuseSetting(line, _rank(buf, m.start()), m[f["on"]] == b"enabled"))

    def _on_tpb(self, m: Match, buf: bytes, line: int, f: p.Fields) -> None:
        self._runs.emit(TokensPerBlock(line, _rank(buf, m.start()), int(m[f["n"]])))

    def _pool(
        self,
        m: Match,
        buf: bytes,
        line: int,
        window: int | None,
        primary: int | None,
        secondary: int | None,
        *,
        tokens_per_block: int | None = None,
        construction: bool,
        estimation: bool = False,
    ) -> None:
        self._runs.emit(
            PoolSize(
                line,
                _rank(buf, m.start()),
                window,
                primary,
                secondary,
                tokens_per_block,
                construction,
                estimation,
            )
        )

    def _one_pool(
        self, m: Match, buf: bytes, line: int, f: p.Fields, *, construction: bool
    ) -> None:
        """A line naming one pool, primary or secondary, and its size."""
        n = int(m[f["n"]])
        primary = m[f["level"]] == b"primary"
        self._pool(
            m,
            buf,
            line,
            _int(m[f["win"]]),
            n if primary else None,
            None if primary else n,
            construction=construction,
        )

    def _on_pool(self, m: Match, buf: bytes, line: int, f: p.Fields) -> None:
        self._one_pool(m, buf, line, f, construction=True)

    def _on_maxblocks(self, m: Match, buf: bytes, line: int, f: p.Fields) -> None:
        self._pool(
            m,
            buf,
            line,
            _int(m[f["win"]]),
            _int(m[f["pri"]]),
            _int(m[f["sec"]]),
            tokens_per_block=_int(m[f["tpb"]]),
            construction=True,
        )

    def _on_poolcount(self, m: Match, buf: bytes, line: int, f: p.Fields) -> None:
        self._one_pool(m, buf, line, f, construction=False)

    def _on_bpw(self, m: Match, buf: bytes, line: int, f: p.Fields) -> None:
        self._pool(
            m,
            buf,
            line,
            int(m[f["win"]]),
            int(m[f["pri"]]),
            int(m[f["sec"]]),
            construction=False,
        )

    def _windows(self, m: Match, buf: bytes, line: int, text: bytes, *, estimation: bool) -> None:
        for win, pri, sec in p.WINDOW_TUPLE.findall(text):
            self._pool(
                m,
                buf,
                line,
                int(win),
                int(pri),
                int(sec),
                construction=False,
                estimation=estimation,
            )

    def _on_pybpw(self, m: Match, buf: bytes, line: int, f: p.Fields) -> None:
        self._windows(m, buf, line, m[f["text"]], estimation=False)

    def _on_pyest(self, m: Match, buf: bytes, line: int, f: p.Fields) -> None:
        self._windows(m, buf, line, m[f["text"]], estimation=True)

    def _on_v2(self, m: Match, buf: bytes, line: int, f: p.Fields) -> None:
        text = m[f["text"]]
        # "... to %s for %s True Model" (the %s printed literally) or "... to True for Model"
        choice = p.V2_CHOICE.search(text)
        selected = None if choice is None else choice.group(1) == b"True"
        self._runs.emit(
            ManagerV2(
                line,
                _rank(buf, m.start()),
                selected,
                "Resolved use_kv_cache_manager_v2" + _text(text),
            )
        )

    def _on_banner(self, m: Match, buf: bytes, line: int, f: p.Fields) -> None:
        self._runs.emit(Banner(line, m[f["version"]].decode("ascii", "replace")))

    def _on_brace(self, m: Match, buf: bytes, line: int, f: p.Fields) -> None:
        start = m.start()
        body = b"{" + m[f["text"]]
        if buf[max(0, start - 9) : start + 1] == b"[kvverify]":
            self._runs.emit(Marker(line, _marker(body), _text(body)))
        else:
            self._json(body, line)

    def _on_list(self, m: Match, buf: bytes, line: int, f: p.Fields) -> None:
        self._json(m[f["text"]], line)

    def _error(self, line: int, rank: int | None, kind: ErrorKind, raw: bytes) -> None:
        text = _text(raw)
        if kind in ("error", "exception") and "CUDA" in text:
            kind = "cuda"
        self._runs.emit(ErrorLine(line, rank, kind, text))

    def _on_err(self, m: Match, buf: bytes, line: int, f: p.Fields) -> None:
        # The look-behind let through any tag ending in "E] " or "R] " (or "R][n] "):
        # keep "[E]" and "[ERROR]" only.
        tag_end = buf.rfind(b"]", max(0, m.start() - 8), m.start() + 1)
        tag = buf[buf.rfind(b"[", max(0, tag_end - 8), tag_end) : tag_end + 1]
        if tag[1:-1].isdigit():
            tag_end = buf.rfind(b"]", max(0, tag_end - 8), tag_end)
            tag = buf[buf.rfind(b"[", max(0, tag_end - 8), tag_end) : tag_end + 1]
        if tag in (b"[E]", b"[ERROR]"):
            text = m[f["text"]]
            # After the level come the timestamp era's "[n] " and 2026's "[module] [RANK n] ".
            tags = p.LEADING_TAGS.match(text)
            rank = _rank(buf, m.start())
            if rank is None and tags is not None:
                found = p.RANK_IN_PREFIX.search(b"] " + tags.group(0))
                if found is not None:
                    rank = int(found.group(1) or found.group(2) or found.group(3))
            self._error(line, rank, "error", text)

    def _on_missing(self, m: Match, buf: bytes, line: int, f: p.Fields) -> None:
        self._error(line, _rank(buf, m.start()), "missing-sequence", m.group(0).lstrip(b"\n] "))

    def _on_traceback(self, m: Match, buf: bytes, line: int, f: p.Fields) -> None:
        self._error(line, None, "traceback", b"Traceback (most recent call last):")

    def _on_exception(self, m: Match, buf: bytes, line: int, f: p.Fields) -> None:
        self._error(line, None, "exception", m[f["text"]])

    def _on_cuda(self, m: Match, buf: bytes, line: int, f: p.Fields) -> None:
        self._error(line, None, "cuda", b"CUDA " + m[f["text"]])

    def _json(self, text: bytes, line: int) -> None:
        if b"iterOffloadBlocks" in text or b"iterOnboardBlocks" in text:
            off = sum(int(x) for x in p.ITER_OFFLOAD.findall(text))
            on = sum(int(x) for x in p.ITER_ONBOARD.findall(text))
            self._runs.emit(IterationStats(line, off, on))
        diffs = p.CACHE_LEVEL_DIFF.findall(text)
        if diffs:
            offloads = onboards = 0
            for d in diffs:
                new, old = p.NEW_VALUE.search(d), p.OLD_VALUE.search(d)
                if new is None or old is None:
                    continue
                if (old.group(1), new.group(1)) == (b"0", b"1"):
                    offloads += 1
                elif (old.group(1), new.group(1)) == (b"1", b"0"):
                    onboards += 1
            self._runs.emit(CacheLevelEvents(line, offloads, onboards))


_Handler = Callable[[Scanner, Match, bytes, int, p.Fields], None]

#: The handler of each kind of alternative (:data:`~p.KINDS`). ``addseqw`` (V-2026's windowed
#: ``addSequence``) and ``missing2`` (the warning after a Python tag) read like their plain forms.
HANDLERS: dict[str, _Handler] = {
    "summary": Scanner._on_summary,
    "lookup": Scanner._on_lookup,
    "copy": Scanner._on_copy,
    "addseq": Scanner._on_addseq,
    "addseqw": Scanner._on_addseq,
    "release": Scanner._on_release,
    "prepop": Scanner._on_prepop,
    "reuse": Scanner._on_reuse,
    "tpb": Scanner._on_tpb,
    "pool": Scanner._on_pool,
    "maxblocks": Scanner._on_maxblocks,
    "poolcount": Scanner._on_poolcount,
    "bpw": Scanner._on_bpw,
    "pybpw": Scanner._on_pybpw,
    "pyest": Scanner._on_pyest,
    "v2": Scanner._on_v2,
    "banner": Scanner._on_banner,
    "brace": Scanner._on_brace,
    "list": Scanner._on_list,
    "err": Scanner._on_err,
    "missing": Scanner._on_missing,
    "missing2": Scanner._on_missing,
    "traceback": Scanner._on_traceback,
    "exception": Scanner._on_exception,
    "cuda": Scanner._on_cuda,
}


def _position(m: Match | tuple[int, Level]) -> int:
    return m[0] if type(m) is tuple else m.start()  # type: ignore[union-attr]


def _through_first_debug_tag(buf: bytes, start: int, end: int) -> int:
    """Where the line after the first DEBUG tag in ``buf[start:end]`` starts (``end`` if
    none)."""
    hits = [i for i in (buf.find(t, start, end) for t in p.DEBUG_TAGS) if i >= 0]
    if not hits:
        return end
    nl = buf.find(b"\n", min(hits), end)
    return end if nl < 0 else nl + 1


def _window(m: Match, buf: bytes, f: p.Fields) -> int | None:
    """The N of ``BlockManager[windowSize=N]`` on a window manager's line."""
    if "win" in f:  # at the start of a line: captured
        return _int(m[f["win"]])
    if "bare" in f:  # "BlockManager - ..." / "BlockManager::...": printed no window
        return None
    # A tail found at the "]" of "[windowSize=N]": read N back from there.
    start = m.start()
    w = p.WINDOW_BEFORE.search(buf, max(0, start - 24), start)
    return None if w is None else int(w.group(1))


def _lookup_key(buf: bytes, start: int) -> tuple[int | None, int | None]:
    """Rank and window of a window manager's line, from the "]" at ``start`` that closes
    ``BlockManager[windowSize=N]``, reading at most 50 bytes back, all on the line. A line that
    has no such name before the "]" has no window; its rank is read from its whole prefix."""
    eq = buf.rfind(b"=", max(0, start - 11), start)
    digits = buf[eq + 1 : start]
    body = eq - 23  # where "BlockManager" starts
    if body >= 0 and buf[body:eq] == b"BlockManager[windowSize" and digits.isdigit():
        return _fast_rank(buf, body), int(digits)
    return _rank(buf, start), None


def _fast_rank(buf: bytes, body: int) -> int | None:
    """Rank of a C++ line whose body at ``body`` follows ``[n] `` or ``[RANK n] ``."""
    if body < 3 or buf[body - 3] not in _DIGITS or buf[body - 2] != 0x5D:  # "]"
        return None
    q = buf.rfind(b"[", max(0, body - 16), body - 2)
    if q < 0:
        return None
    inner = buf[q + 1 : body - 2]
    if inner.isdigit():
        return int(inner)
    if inner.startswith(b"RANK ") and inner[5:].isdigit():
        return int(inner[5:])
    return None


def _rank(buf: bytes, start: int) -> int | None:
    """Rank printed anywhere in the prefix of the line that holds ``start``."""
    line_start = buf.rfind(b"\n", 0, start) + 1
    if buf[start : start + 1] == b"\n":  # a LINE_START match: no prefix
        return None
    m = p.RANK_IN_PREFIX.search(buf, line_start, start + 2)
    if m is None:
        return None
    return int(m.group(1) or m.group(2) or m.group(3))


def _marker(raw: bytes) -> dict[str, Any] | None:
    """A marker's JSON, whole (markers can be long: stats, events, predictions)."""
    if b"\x1b" in raw:
        raw = p.ANSI_RX.sub(b"", raw)
    try:
        data = json.loads(raw.decode("utf-8", "replace"))
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def iter_events(chunks: Iterable[bytes]) -> Iterator[Event]:
    """Events of a log given as an iterable of byte chunks of any size."""
    scanner = Scanner()
    for chunk in chunks:
        yield from scanner.feed(chunk)
    yield from scanner.close()


def iter_events_threaded(chunks: Iterable[bytes], threads: int = 1) -> Iterator[Event]:
    """:func:`iter_events` with the reading and the native line walk done ahead on other
    threads (``threads`` of them walk lines; ``_scan.prepare`` runs without the GIL), while the
    caller's thread turns the lines found into events and consumes them. The same events in the
    same order; without the native scanner, or with ``threads < 1``, plain :func:`iter_events`.
    """
    scanner = Scanner()
    module = _native_module()
    if scanner._native is None or module is None or threads < 1:
        yield from iter_events(chunks)
        return
    lines = scanner._lines
    ahead: queue.Queue[Any] = queue.Queue(maxsize=2 * threads)
    stop = threading.Event()
    from concurrent.futures import ThreadPoolExecutor  # only when a log is read on threads

    pool = ThreadPoolExecutor(threads, thread_name_prefix="kvverify-scan")

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                ahead.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def read() -> None:
        try:
            for chunk in chunks:
                for st in lines.split(chunk):
                    job = pool.submit(module.prepare, st.buf, st.start, st.end, st.at_line_start)
                    if not put((st, job)):
                        return
            put(None)
        except BaseException as exc:  # handed to the consumer, raised there
            put(exc)

    reader = threading.Thread(target=read, name="kvverify-read", daemon=True)
    reader.start()
    try:
        while (item := ahead.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            stretch, job = item
            scanner._scan(stretch, job.result())
            yield from scanner._runs.take()
        yield from scanner.close()
    finally:
        # The reader stops at its next chunk (not joined: it may wait on a pipe).
        stop.set()
        pool.shutdown(cancel_futures=True)


def parse_bytes(data: bytes) -> list[Event]:
    """Events of a whole log held in memory."""
    return list(iter_events([data]))
