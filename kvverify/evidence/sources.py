"""Log sources: a path or ``-`` (stdin), plain or compressed, read in chunks.

Compression is recognised by content (magic bytes), not by file name: gzip, xz, bzip2, zstd.
A compressed stream that ends early is read up to where it breaks and reported as truncated,
so a log cut off by a crash still yields what it holds.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import stat
import sys
import zlib
from collections.abc import Iterator
from typing import BinaryIO

import zstandard

from kvverify.errors import InputError

CHUNK = 4 << 20

_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x1f\x8b", "gzip"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"BZh", "bzip2"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
)


def is_compressed(path: str) -> bool:
    """Does the file start with a compression format's magic bytes?"""
    with open(path, "rb") as f:
        head = f.read(8)
    return any(head.startswith(magic) for magic, _ in _MAGIC)


class LogSource:
    """One log to read. ``problem`` says what went wrong while reading, if anything did."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.compression: str | None = None
        self.problem: str | None = None
        self.size: int | None = None
        if path != "-":
            try:
                st = os.stat(path)
            except FileNotFoundError:
                raise InputError(
                    "no such file", where=path, hint="check the path; use - to read stdin"
                ) from None
            except OSError as exc:
                raise InputError(exc.strerror or str(exc), where=path) from None
            if stat.S_ISDIR(st.st_mode):
                raise InputError(
                    "is a directory, not a log",
                    where=path,
                    hint=f"name the log files inside it, e.g. {os.path.join(path, '*.log')}",
                )
            self.size = st.st_size if stat.S_ISREG(st.st_mode) else None
            if not os.access(path, os.R_OK):
                raise InputError("permission denied", where=path)

    @property
    def name(self) -> str:
        return "<stdin>" if self.path == "-" else self.path

    def _open(self) -> BinaryIO:
        if self.path == "-":
            return sys.stdin.buffer
        try:
            return open(self.path, "rb")
        except OSError as exc:
            raise InputError(exc.strerror or str(exc), where=self.path) from None

    def chunks(self, size: int = CHUNK) -> Iterator[bytes]:
        """The decompressed bytes of the log, ``size`` bytes at a time."""
        raw = self._open()
        try:
            head = raw.read(8)
            stream: BinaryIO = _Prefixed(head, raw)  # type: ignore[assignment]
            for magic, kind in _MAGIC:
                if head.startswith(magic):
                    self.compression = kind
                    stream = _decompressor(kind, stream)
                    break
            yield from self._read(stream, size)
        finally:
            if raw is not sys.stdin.buffer:
                raw.close()

    def _read(self, stream: BinaryIO, size: int) -> Iterator[bytes]:
        while True:
            try:
                data = stream.read(size)
            except (EOFError, OSError, lzma.LZMAError, zlib.error, zstandard.ZstdError) as exc:
                if self.compression is None:
                    raise InputError(f"cannot read: {exc}", where=self.path) from None
                self.problem = (
                    f"the {self.compression} stream is corrupt or ends early ({exc}); "
                    "the log was read up to there"
                )
                return
            if not data:
                return
            yield data


class _Prefixed(io.RawIOBase):
    """A stream with some already-read bytes put back in front."""

    def __init__(self, head: bytes, rest: BinaryIO) -> None:
        self._head = head
        self._rest = rest

    def readable(self) -> bool:
        return True

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        if self._head:
            n = min(len(b), len(self._head))
            b[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        data = self._rest.read(len(b))
        b[: len(data)] = data
        return len(data)

    def read(self, size: int = -1) -> bytes:
        if not self._head:
            return self._rest.read(size)
        if size < 0:
            data, self._head = self._head + self._rest.read(), b""
            return data
        data, self._head = self._head[:size], self._head[size:]
        if len(data) < size:
            data += self._rest.read(size - len(data))
        return data


def _decompressor(kind: str, stream: BinaryIO) -> BinaryIO:
    if kind == "gzip":
        return gzip.GzipFile(fileobj=stream)  # type: ignore[return-value]
    if kind == "xz":
        return lzma.LZMAFile(stream)  # type: ignore[return-value]
    if kind == "bzip2":
        return bz2.BZ2File(stream)  # type: ignore[return-value]
    return _Zstd(stream)  # type: ignore[return-value]


class _Zstd(io.RawIOBase):
    """zstd frames one after the other; a frame cut short raises instead of ending quietly
    (``ZstdDecompressor.stream_reader`` reports a truncated frame as a clean end)."""

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self._dctx = zstandard.ZstdDecompressor()
        self._obj = self._dctx.decompressobj()
        self._fed = False  # the current frame has input
        self._out = b""

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        while not self._out or (size >= 0 and len(self._out) < size):
            data = self._raw.read(1 << 20)
            if not data:
                if self._fed and not self._obj.eof:
                    raise zstandard.ZstdError("the last frame is incomplete")
                break
            while data:
                self._fed = True
                self._out += self._obj.decompress(data)
                data = b""
                if self._obj.eof:  # next frame, if any, starts in unused_data
                    data = self._obj.unused_data
                    self._obj = self._dctx.decompressobj()
                    self._fed = False
        if size < 0:
            out, self._out = self._out, b""
        else:
            out, self._out = self._out[:size], self._out[size:]
        return out
