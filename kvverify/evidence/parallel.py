"""Scanning a log on several cores.

With the native scanner (:func:`~kvverify.evidence.parse.engine_name` is ``"native"``), any log
(plain, compressed or stdin) is read and its lines walked on ``jobs - 1`` threads ahead of the
thread that turns them into events (:func:`~kvverify.evidence.parse.iter_events_threaded`):
the line walk runs in C without the GIL, so the two overlap, and memory stays that of a few
chunks.

In pure Python, a plain (uncompressed) regular file of at least two pieces is cut into pieces
of :data:`PIECE` bytes at line boundaries; a pool of worker processes scans them with the same
:class:`~kvverify.evidence.parse.Scanner`, and the parent takes the results back in order,
renumbering lines. The numbers are those of a single scan: a run of per-block lines cut at a
piece boundary arrives as two events whose counts add up, and only the first DEBUG / INFO
sighting is kept. Compressed input, stdin and small files are scanned in one process.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import os
import sys
import types
import typing
from collections import deque
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from kvverify.evidence import events as ev
from kvverify.evidence.parse import Scanner, engine_name, iter_events, iter_events_threaded
from kvverify.evidence.sources import CHUNK, LogSource, is_compressed

if TYPE_CHECKING:
    from concurrent.futures import Future

#: Bytes per piece a worker scans.
PIECE = 64 << 20

#: Every event class, in a fixed order: a class travels as its index.
_CLASSES: list[type[Any]] = list(typing.get_args(ev.Event))
_INDEX = {cls: i for i, cls in enumerate(_CLASSES)}
_FIELDS = [tuple(f.name for f in dataclasses.fields(cls)) for cls in _CLASSES]


def default_jobs() -> int:
    return max(1, min(os.cpu_count() or 1, 8))


def events_of(src: LogSource, jobs: int = 1, piece: int = PIECE) -> Iterator[ev.Event]:
    """The events of a log, scanned on ``jobs`` threads (native) or processes (pure Python,
    when it is large and plain)."""
    if jobs <= 1:
        return iter_events(src.chunks())
    if engine_name() == "native":
        return iter_events_threaded(src.chunks(), threads=jobs - 1)
    if src.path == "-" or src.size is None or src.size < 2 * piece or (is_compressed(src.path)):
        return iter_events(src.chunks())
    return _parallel(src.path, src.size, jobs, piece)


#: How much of a file :func:`_cuts` reads at a time while looking for a newline.
_LOOK = 1 << 20


def _cuts(path: str, size: int, piece: int) -> list[tuple[int, int]]:
    """Pieces of about ``piece`` bytes, each ending right after a newline (or at the end). A
    very long line is read through in blocks of :data:`_LOOK`, never held whole."""
    bounds = [0]
    with open(path, "rb") as f:
        at = piece
        while at < size:
            f.seek(at)
            nl = -1
            offset = at
            while nl < 0:
                block = f.read(_LOOK)
                if not block:
                    break
                nl = block.find(b"\n")
                if nl < 0:
                    offset += len(block)
            if nl < 0:
                break
            cut = offset + nl + 1
            if cut >= size:
                break
            bounds.append(cut)
            at = cut + piece
    bounds.append(size)
    return list(itertools.pairwise(bounds))


def _scan_piece(path: str, start: int, end: int) -> list[tuple[Any, ...]]:
    """Worker: the events of ``path[start:end]`` as plain tuples (cheap to send back)."""
    scanner = Scanner()
    out: list[ev.Event] = []
    with open(path, "rb") as f:
        f.seek(start)
        left = end - start
        while left > 0:
            data = f.read(min(CHUNK, left))
            if not data:
                break
            left -= len(data)
            out += scanner.feed(data)
    out += scanner.close()
    rows = []
    for e in out:
        index = _INDEX[type(e)]
        rows.append((index, *(getattr(e, name) for name in _FIELDS[index])))
    return rows


@contextlib.contextmanager
def _bare_main() -> Iterator[None]:
    """A spawned process first imports its parent's ``__main__`` (here the whole command line,
    about 0.3 s); the workers need only this module. Their parent's ``__main__`` is hidden
    while the pool starts them (they are started by the first submissions)."""
    main = sys.modules["__main__"]
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        sys.modules["__main__"] = main


def _parallel(path: str, size: int, jobs: int, piece: int) -> Iterator[ev.Event]:
    pieces = _cuts(path, size, piece)
    # The process pool is for the pure-Python path only: imported when it is used.
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    ctx = get_context("spawn")  # no fork of a process that may hold threads
    lines_before = 0
    long_lines = 0
    unterminated = False
    levels_seen: set[str] = set()
    with ProcessPoolExecutor(max_workers=jobs, mp_context=ctx) as pool:
        queue: deque[Future[list[tuple[Any, ...]]]] = deque()
        todo = iter(pieces)
        with _bare_main():
            for start, end in todo:
                queue.append(pool.submit(_scan_piece, path, start, end))
                if len(queue) >= 2 * jobs:
                    break
        while queue:
            encoded = queue.popleft().result()
            nxt = next(todo, None)
            if nxt is not None:
                queue.append(pool.submit(_scan_piece, path, *nxt))
            for row in encoded:
                cls = _CLASSES[row[0]]
                if cls is ev.LogShape:
                    _, lines, unterminated, long = row
                    lines_before += lines
                    long_lines += long
                    continue
                if cls is ev.LevelSeen:
                    level = row[2]
                    if level in levels_seen or (level == "info" and "debug" in levels_seen):
                        continue
                    levels_seen.add(level)
                yield cls(row[1] + lines_before, *row[2:])
    yield ev.LogShape(lines_before, unterminated, long_lines)
