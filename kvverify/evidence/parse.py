"""The log parser: a pure, streaming function from bytes to evidence events.

Feed it bytes in chunks of any size (:meth:`Scanner.feed`), then :meth:`Scanner.close`; or call
:func:`parse_bytes` / :func:`iter_events`. Memory is bounded by the chunk size plus the longest
line it keeps (:data:`MAX_LINE`; a longer line is scanned in pieces), never by the log size.
The events are the same whatever the chunking.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from kvverify.evidence import patterns as p
from kvverify.evidence import prefilter
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

_SHIFT = prefilter.PART_BITS
_MASK = (1 << _SHIFT) - 1
#: Match functions of the parts, by a candidate's part number (the fast lookup uses the part's).
_PART_MATCH = [part.pattern.match for part in p.ANCHORED_PARTS]
_PART_MATCH += [_PART_MATCH[p.LOOKUP_PART]] * (prefilter.FAST_LOOKUP + 1 - len(_PART_MATCH))
#: A lookup's outcome as printed -> its counter's index in a run of lookups.
_OUTCOMES = tuple((outcome, 3 + index) for outcome, index in p.LOOKUP_OUTCOMES)
_OUTCOME_SLOT = dict(_OUTCOMES)

#: ``id()`` of every pattern the scan uses -> its table (``match.lastindex`` -> kind, fields).
_TABLES: dict[int, dict[int, tuple[str, p.Fields]]] = {
    id(p.ANCHORED): p.ANCHORED_TABLE,
    id(p.LINE_START): p.LINE_START_TABLE,
    id(p.FIRST_LINE): p.LINE_START_TABLE,
    **p.PART_TABLES,
}

#: Alternatives TensorRT-LLM prints only at DEBUG: one of them proves the level.
_DEBUG_ONLY = frozenset(
    {"summary", "lookup", "addseq", "addseqw", "release", "prepop", "pool", "copy"}
)


def _text(raw: bytes) -> str:
    """Decode a captured field for display: invalid UTF-8 replaced, colours and CR removed."""
    if b"\x1b" in raw:
        raw = p.ANSI_RX.sub(b"", raw)
    text = raw.decode("utf-8", "replace").strip()
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"


def _int(raw: bytes | None) -> int | None:
    return None if raw is None else int(raw)


class Scanner:
    """Incremental parser. Not thread-safe; one per log."""

    def __init__(self, *, max_line: int = MAX_LINE, use_prefilter: bool | None = None) -> None:
        """``use_prefilter``: None uses the native prefilter when it is available
        (:mod:`kvverify.evidence.prefilter`); False never does; True requires it."""
        if use_prefilter and not prefilter.enabled():
            raise RuntimeError("the native prefilter is not available")
        self._max_line = max_line
        self._carry = b""
        self._line = 1  # number of the line the next unscanned byte belongs to
        self._at_line_start = True  # the carry starts a line (False inside an over-long line)
        self._out: list[Event] = []
        # Coalescing runs of hot lines: [line, rank, window, matched, partial, copied, missed]
        # and [line, rank, offloads, onboards].
        self._lookups: list[Any] | None = None
        self._copies: list[Any] | None = None
        self._levels_todo: set[Level] = {"debug", "info"}
        self._long_lines = 0
        self._closed = False
        self._prefilter = prefilter.enabled() if use_prefilter is None else use_prefilter
        self._handlers: dict[str, Callable[[Match, bytes, int, p.Fields], None]] = {
            name[4:]: getattr(self, name) for name in dir(self) if name.startswith("_on_")
        }

    # -- public API ------------------------------------------------------------------------

    def feed(self, data: bytes) -> list[Event]:
        """Scan ``data`` (any chunk of the log) and return the events completed so far."""
        if self._closed:
            raise RuntimeError("Scanner.feed after close")
        buf = self._carry + data if self._carry else data
        cut = buf.rfind(b"\n") + 1
        if cut:
            self._scan(buf, cut)
            self._at_line_start = True
            self._carry = buf[cut:]
        elif len(buf) > self._max_line:
            if self._at_line_start:
                self._long_lines += 1
            self._scan(buf, len(buf))
            self._at_line_start = False
            self._carry = b""
        else:
            self._carry = buf
        return self._take()

    def close(self) -> list[Event]:
        """End of input: scan a last line without newline and report the log's shape."""
        if self._closed:
            return []
        unterminated = bool(self._carry) or not self._at_line_start
        if self._carry:
            # Scan it as if it were terminated (the newline is not part of any field).
            self._scan(self._carry + b"\n", len(self._carry) + 1)
            self._line -= 1
        self._flush()
        lines = self._line if unterminated else self._line - 1
        self._out.append(LogShape(lines, unterminated, self._long_lines))
        self._closed = True
        return self._take()

    # -- scanning ----------------------------------------------------------------------------

    def _take(self) -> list[Event]:
        out, self._out = self._out, []
        return out

    def _flush(self) -> None:
        if self._lookups is not None:
            self._out.append(BlockLookups(*self._lookups))
            self._lookups = None
        if self._copies is not None:
            self._out.append(BlockCopies(*self._copies))
            self._copies = None

    def _scan(self, buf: bytes, end: int) -> None:
        """Scan ``buf[:end]``, whose first byte starts a line if ``self._at_line_start``."""
        anchored: Iterable[Match]
        extras: list[Match | tuple[int, Level]]
        if self._prefilter:
            anchors, line_hits = prefilter.candidates(buf, end)
            at_start = self._line_starts(buf, end, line_hits)
            if not at_start and not self._levels_todo:
                self._scan_candidates(buf, end, anchors)  # the common case, and the fast one
                return
            anchored, extras = self._anchored(buf, end, anchors), list(at_start)
        else:
            anchored = p.ANCHORED.finditer(buf, 0, end)
            # Unprefixed bodies and tracebacks are rare.
            extras = [*self._first_line(buf, end), *p.LINE_START.finditer(buf, 0, end)]
        merged: Iterable[Match | tuple[int, Level]]
        if self._levels_todo:
            merged = list(anchored)
            extras += self._find_levels(buf, end, merged)  # type: ignore[arg-type]
            if extras:
                merged = sorted([*merged, *extras], key=_position)
        elif extras:
            merged = sorted([*anchored, *extras], key=_position)
        else:
            merged = anchored
        pos = 0
        line = self._line
        taken_to = -1
        tables = _TABLES
        handlers = self._handlers
        for m in merged:
            if type(m) is tuple:  # (position, level): where DEBUG / INFO logging shows first
                line += buf.count(b"\n", pos, m[0])
                pos = m[0]
                self._flush()
                self._out.append(LevelSeen(line, m[1]))
                continue
            start = m.start()  # type: ignore[union-attr]
            if start < taken_to:
                continue  # the line was taken by a match that starts earlier on it
            taken_to = m.end()  # type: ignore[union-attr]
            # +1: a LINE_START match begins at the newline that ends the previous line.
            line += buf.count(b"\n", pos, start + 1)
            pos = start + 1
            kind, fields = tables[id(m.re)][m.lastindex]  # type: ignore[index,union-attr]
            handlers[kind](m, buf, line, fields)  # type: ignore[arg-type]
        self._line = line + buf.count(b"\n", pos, end)

    # -- with the native prefilter -------------------------------------------------------------
    # The same matches as the full search, found by matching only where the prefilter points.
    # Per line, as in the full search, a body at the start of the line wins over one after a
    # prefix, and the first body after a prefix wins; the tests compare both paths.

    def _first_line(self, buf: bytes, end: int) -> list[Match]:
        """A body at the very start of ``buf``, when that is the start of a line."""
        first = p.FIRST_LINE.match(buf, 0, end) if self._at_line_start else None
        return [] if first is None else [first]

    def _line_starts(self, buf: bytes, end: int, line_hits: list[int]) -> list[Match]:
        """The bodies at the start of a line (FIRST_LINE, LINE_START), in order."""
        found = self._first_line(buf, end)
        taken_to = -1
        for to in line_hits:
            if to <= taken_to:
                continue
            m = p.LINE_START.match(buf, buf.rfind(b"\n", 0, to), end)
            if m is not None:
                found.append(m)
                taken_to = m.end()
        return found

    def _anchored(self, buf: bytes, end: int, anchors: list[int]) -> list[Match]:
        """The :data:`~p.ANCHORED` matches (the first on each line), in order."""
        found: list[Match] = []
        taken_to = -1
        for candidate in anchors:
            a = candidate >> _SHIFT
            if a < taken_to:
                continue  # the line already has its match
            m = _PART_MATCH[candidate & _MASK](buf, a, end)
            if m is not None:
                found.append(m)
                taken_to = m.end()
        return found

    def _scan_candidates(self, buf: bytes, end: int, anchors: list[int]) -> None:
        """:meth:`_scan` for a stretch with no body at the start of a line and the log's level
        known: matches in one pass, and lookup lines in their common form without a regex.

        A lookup line continues the current run of lookups when the bytes its rank and window
        are read from (the :data:`_KEY_REACH` bytes before its "]") equal those of the run's
        last line, and nothing came between them; only a line that starts a run needs its line
        number, rank and window."""
        find, count = buf.find, buf.count
        tables, handlers = _TABLES, self._handlers
        fast, lead = prefilter.FAST_LOOKUP, len(p.LOOKUP_LEAD)
        pos = 0
        line = self._line
        taken_to = -1
        run: list[Any] | None = None  # the run the fast path last extended
        run_key: bytes | None = None
        reach = _KEY_REACH
        for candidate in anchors:
            a = candidate >> _SHIFT
            if a < taken_to:
                continue  # the line already has its match
            index = candidate & _MASK
            if index != fast:
                m = _PART_MATCH[index](buf, a, end)
                if m is None:
                    continue
                taken_to = m.end()
                line += count(b"\n", pos, a)
                pos = a
                kind, fields = tables[id(m.re)][m.lastindex]  # type: ignore[index]
                handlers[kind](m, buf, line, fields)
                continue
            at = a + lead
            slot = 0
            for outcome, index in _OUTCOMES:
                if buf.startswith(outcome, at):
                    slot = index
                    break
            if not slot:
                continue  # not a lookup line after all; a later body on the line may be one
            taken_to = find(b"\n", at, end)
            if taken_to < 0:
                taken_to = end
            key = buf[a - reach : a] if a >= reach else buf[:a]
            if run is None or run is not self._lookups or key != run_key:
                line += count(b"\n", pos, a)
                pos = a
                rank, window = _lookup_key(buf, a)
                run = self._lookup_run(line, rank, window)
                # Without a window the rank came from the whole line: no key stands for it.
                run_key = key if window is not None else None
            run[slot] += 1
        self._line = line + count(b"\n", pos, end)

    def _find_levels(self, buf: bytes, end: int, matches: list[Match]) -> list[tuple[int, Level]]:
        """Where logging at DEBUG first shows (the first DEBUG tag or DEBUG-only line, whichever
        comes first) and, before that, INFO. Searching stops once DEBUG is known, so a DEBUG log
        pays for this only up to its first DEBUG line."""
        debug_at = end
        for m in matches:
            if _TABLES[id(m.re)][m.lastindex or 0][0] in _DEBUG_ONLY:
                debug_at = m.start()
                break
        hits = [i for i in (buf.find(t, 0, debug_at) for t in p.DEBUG_TAGS) if i >= 0]
        debug_at = min([debug_at, *hits])
        found: list[tuple[int, Level]] = []
        if "info" in self._levels_todo:
            info = [i for i in (buf.find(t, 0, debug_at) for t in p.INFO_TAGS) if i >= 0]
            if info:
                found.append((min(info), "info"))
                self._levels_todo.discard("info")
        if debug_at < end:
            found.append((debug_at, "debug"))
            self._levels_todo.clear()  # INFO matters only for a log without DEBUG
        return found

    # -- turning a match into an event ---------------------------------------------------------
    # One handler per alternative kind (the part of a group name before "__").

    def _on_summary(self, m: Match, buf: bytes, line: int, f: p.Fields) -> None:
        self._flush()
        self._out.append(
            SummaryLine(
                line,
                _rank(buf, m.start()),
                _window(m, buf, f),
                p.METRIC_NAMES[m[f["metric"]]],
                float(m[f["value"]]),
            )
        )

    def _on_lookup(self, m: Match, buf: bytes, line: int, f: p.Fields) -> None:
        # The hottest handler: one call per block looked up. Kept to a few C calls.
        start = m.start()
        if "win" in f or "bare" in f:  # unprefixed, or pre-2025 "] BlockManager::..."
            window = _window(m, buf, f)
            rank = _fast_rank(buf, start + 2) if "bare" in f else None
        else:  # found at the "]" of "BlockManager[windowSize=N]"
            rank, window = _lookup_key(buf, start)
        self._lookup_run(line, rank, window)[_OUTCOME_SLOT[m[f["outcome"]]]] += 1

    def _lookup_run(self, line: int, rank: int | None, window: int | None) -> list[Any]:
        """The run of lookup lines this line continues (same rank and window, nothing else in
        between), or a new one starting at ``line``."""
        run = self._lookups
        if self._copies is not None or run is None or run[1] != rank or run[2] != window:
            self._flush()
            run = self._lookups = [line, rank, window, 0, 0, 0, 0]
        return run

    def _on_copy(self, m: Match, buf: bytes, line: int, f: p.Fields) -> None:
        if self._lookups is not None:
            self._out.append(BlockLookups(*self._lookups))
            self._lookups = None
        rank = _fast_rank(buf, m.start() + 2)
        run = self._copies
        if run is None or run[1] != rank:
            if run is not None:
                self._out.append(BlockCopies(*run))
            run = self._copies = [line, rank, 0, 0]
        if m[f["offload"]] == b"true":
            run[2] += 1
        else:
            run[3] += 1

    def _on_addseq(self, m: Match, buf: bytes, line: int, f: p.Fields) -> None:
        self._flush()
        con = f["con"]
        self._out.append(
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

    _on_addseqw = _on_addseq

    def _on_release(self, m: Match, buf: bytes, line: int, f: p.Fields) -> None:
        self._flush()
        self._out.append(
            ReleaseBlocks(
                line,
                _rank(buf, m.start()),
                _window(m, buf, f),
                int(m[f["rid"]]),
                int(m[f["n"]]),
            )
        )

    def _on_prepop(self, m: Match, buf: bytes, line: int, f: p.Fields) -> None:
        self._flush()
        self._out.append(
            PrepopulatedLength(
                line,
                _rank(buf, m.start()),
                int(m[f["rid"]]),
                int(m[f["len"]]),
                int(m[f["prompt"]]),
            )
        )

    def _on_reuse(self, m: Match, buf: bytes, line: int, f: p.Fields) -> None:
        self._flush()
        self._out.append(ReuseSetting(line, _rank(buf, m.start()), m[f["on"]] == b"enabled"))

    def _on_tpb(self, m: Match, buf: bytes, line: int, f: p.Fields) -> None:
        self._flush()
        self._out.append(TokensPerBlock(line, _rank(buf, m.start()), int(m[f["n"]])))

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
        self._flush()
        self._out.append(
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
        self._flush()
        text = m[f["text"]]
        # "... to %s for %s True Model" (the %s printed literally) or "... to True for Model"
        choice = p.V2_CHOICE.search(text)
        selected = None if choice is None else choice.group(1) == b"True"
        self._out.append(
            ManagerV2(
                line,
                _rank(buf, m.start()),
                selected,
                "Resolved use_kv_cache_manager_v2" + _text(text),
            )
        )

    def _on_banner(self, m: Match, buf: bytes, line: int, f: p.Fields) -> None:
        self._flush()
        self._out.append(Banner(line, m[f["version"]].decode("ascii", "replace")))

    def _on_brace(self, m: Match, buf: bytes, line: int, f: p.Fields) -> None:
        start = m.start()
        body = b"{" + m[f["text"]]
        if buf[max(0, start - 9) : start + 1] == b"[kvverify]":
            self._flush()
            self._out.append(Marker(line, _marker(body), _text(body)))
        else:
            self._json(body, line)

    def _on_list(self, m: Match, buf: bytes, line: int, f: p.Fields) -> None:
        self._json(m[f["text"]], line)

    def _error(self, line: int, rank: int | None, kind: ErrorKind, raw: bytes) -> None:
        self._flush()
        text = _text(raw)
        if kind in ("error", "exception") and "CUDA" in text:
            kind = "cuda"
        self._out.append(ErrorLine(line, rank, kind, text))

    def _on_err(self, m: Match, buf: bytes, line: int, f: p.Fields) -> None:
        # The look-behind let through any tag ending in "E] " or "R] " (or "R][n] "):
        # keep "[E]" and "[ERROR]" only.
        tag_end = buf.rfind(b"]", max(0, m.start() - 8), m.start() + 1)
        tag = buf[buf.rfind(b"[", max(0, tag_end - 8), tag_end) : tag_end + 1]
        if tag.isdigit() or tag[1:-1].isdigit():
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

    _on_missing2 = _on_missing

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
            self._flush()
            self._out.append(IterationStats(line, off, on))
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
            self._flush()
            self._out.append(CacheLevelEvents(line, offloads, onboards))


def _position(m: Match | tuple[int, Level]) -> int:
    return m[0] if type(m) is tuple else m.start()  # type: ignore[union-attr]


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


#: How far before the "]" of "BlockManager[windowSize=N]" :func:`_lookup_key` reads at most:
#: the "=" up to 11 bytes back, the manager's name 23 before it, a rank tag up to 16 before that.
#: Lines whose last _KEY_REACH bytes before that "]" are equal have the same rank and window.
_KEY_REACH = 11 + 23 + 16


def _lookup_key(buf: bytes, start: int) -> tuple[int | None, int | None]:
    """Rank and window of a window manager's line, from the "]" at ``start`` that closes
    ``BlockManager[windowSize=N]``, reading at most :data:`_KEY_REACH` bytes back. A line that
    has no such name before the "]" has no window; its rank is read from its whole prefix."""
    eq = buf.rfind(b"=", max(0, start - 11), start)
    digits = buf[eq + 1 : start]
    if eq >= 11 and buf[eq - 11 : eq] == b"[windowSize" and digits.isdigit():
        body = eq - 23  # len("BlockManager[windowSize"): where the manager's name starts
        rank = _fast_rank(buf, body) if body >= 3 and buf[body - 3] in _DIGITS else None
        return rank, int(digits)
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


def parse_bytes(data: bytes) -> list[Event]:
    """Events of a whole log held in memory."""
    return list(iter_events([data]))
