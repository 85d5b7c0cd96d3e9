"""Log sources: a path or ``-`` (stdin), plain or compressed, read in chunks.

Compression is recognised by content (magic bytes), not by file name: gzip, xz, bzip2, zstd.
A compressed stream that ends early is read up to where it breaks and reported as truncated,
so a log cut off by a crash still yields what it holds.
"""

from __future__ import annotations

import bz2
import lzma
import os
import stat
import sys
import zlib
from collections.abc import Iterator
from typing import Any, BinaryIO

import zstandard

from kvverify.errors import InputError

CHUNK = 4 << 20
#: How much of the start of a log is looked at to tell text from binary data.
SNIFF = 64 << 10

_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x1f\x8b", "gzip"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"BZh", "bzip2"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
)


def _binary(where: str) -> InputError:
    return InputError(
        "not a text log: it holds binary data (NUL bytes) at its start",
        where=where,
        hint="give the captured text output of the engine; gzip, xz, bzip2 and zstd "
        "logs are read as they are",
    )


def check_text(head: bytes, where: str) -> None:
    """A log is text: an executable, an image or a core dump given by mistake is refused in
    one plain message, not read as a log with no DEBUG lines."""
    # An executable or an image has NUL bytes at once; a log a crash left padded with zeros
    # has them at its end only, and is still read.
    sniffed = head[:SNIFF]
    if b"\x00" in sniffed[:1024] or sniffed.count(b"\x00") * 10 > len(sniffed):
        raise _binary(where)


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

    def check_head(self) -> None:
        """For a plain regular file, refuse binary data before any work (the parallel scan
        reads pieces of the file itself)."""
        if self.size is None or self.path == "-":
            return
        with self._open() as fh:
            head = fh.read(SNIFF)
        if not any(head.startswith(magic) for magic, _ in _MAGIC):
            check_text(head, self.name)

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
        """The decompressed bytes of the log, in chunks of about ``size`` bytes."""
        raw = self._open()
        try:
            data = raw.read(size)
            kind = next((k for magic, k in _MAGIC if data.startswith(magic)), None)
            if kind is None:
                check_text(data, self.name)
                while data:
                    yield data
                    data = raw.read(size)
                return
            self.compression = kind
            yield from self._decompress(kind, data, raw, size)
        except OSError as exc:
            raise InputError(f"cannot read: {exc.strerror or exc}", where=self.path) from None
        finally:
            if raw is not sys.stdin.buffer:
                raw.close()

    def _decompress(self, kind: str, data: bytes, raw: BinaryIO, size: int) -> Iterator[bytes]:
        """Incremental decompression, stream after stream (concatenated gzip members, xz
        streams, zstd frames): everything before a break is kept."""
        obj = _decompressor(kind)
        fed = False
        sniffed = False
        while True:
            while data:
                fed = True
                try:
                    out = obj.decompress(data)
                except (OSError, EOFError, lzma.LZMAError, zlib.error, zstandard.ZstdError) as exc:
                    self.problem = (
                        f"the {kind} stream is corrupt ({exc}); the log was read up to there"
                    )
                    return
                if out:
                    if not sniffed:
                        check_text(out, self.name)
                        sniffed = True
                    yield out
                data = b""
                if obj.eof:
                    data = obj.unused_data
                    obj = _decompressor(kind)
                    fed = False
            data = raw.read(size)
            if not data:
                break
        if fed and not obj.eof:
            self.problem = f"the {kind} stream ends early; the log was read up to there"


def _decompressor(kind: str) -> Any:
    """A fresh incremental decompressor: ``decompress``, ``eof``, ``unused_data``."""
    if kind == "gzip":
        return zlib.decompressobj(wbits=31)
    if kind == "xz":
        return lzma.LZMADecompressor()
    if kind == "bzip2":
        return bz2.BZ2Decompressor()
    return zstandard.ZstdDecompressor().decompressobj()
