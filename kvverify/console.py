"""Writing to the terminal without letting a closed pipe decide the outcome.

``kvverify run ... 2>&1 >/dev/null | head -3`` closes kvverify's stderr after three lines of
progress. Losing the terminal must not lose the run: a stream that breaks is muted, the run
goes on, its logs and report files are written, and the exit code is the verdict's.
"""

from __future__ import annotations

import os
import sys
from typing import TextIO

import click


class Console:
    """stdout and stderr that go quiet, instead of raising, once the reader has gone."""

    def __init__(self) -> None:
        self._dead: set[int] = set()

    def reset(self) -> None:
        """A new command: both streams are assumed open again."""
        self._dead.clear()

    def _write(self, stream: TextIO, text: str, *, nl: bool, err: bool) -> None:
        key = 2 if err else 1
        if key in self._dead:
            return
        try:
            click.echo(text, file=stream, nl=nl, err=err)
        except (BrokenPipeError, ConnectionResetError, ValueError):
            # ValueError: the stream was closed under us (a test harness, a dead parent).
            self._dead.add(key)
            _silence(stream)
        except OSError as exc:  # a full disk, a device error: said once, on the other stream
            self._dead.add(key)
            _silence(stream)
            if key == 1 and 2 not in self._dead:
                self.err(f"kvverify: cannot write to stdout: {exc.strerror or exc}")

    def out(self, text: str, *, nl: bool = True) -> None:
        self._write(sys.stdout, text, nl=nl, err=False)

    def err(self, text: str, *, nl: bool = True) -> None:
        self._write(sys.stderr, text, nl=nl, err=True)

    def stdout_writer(self) -> _Writer:
        """A file-like object on stdout (for a report written as it is made)."""
        return _Writer(self)

    @property
    def err_is_tty(self) -> bool:
        return 2 not in self._dead and sys.stderr.isatty()


class _Writer:
    """``write`` onto the console's stdout, in pieces, going quiet like it when the reader
    has gone."""

    def __init__(self, console: Console) -> None:
        self._console = console
        self._pending: list[str] = []
        self._size = 0

    def write(self, text: str) -> int:
        self._pending.append(text)
        self._size += len(text)
        if self._size >= 1 << 16:
            self.flush()
        return len(text)

    def flush(self) -> None:
        if self._pending:
            self._console.out("".join(self._pending), nl=False)
            self._pending, self._size = [], 0


def _silence(stream: TextIO) -> None:
    """Point a broken stream at /dev/null, so that Python's flush at exit does not complain."""
    try:
        fd = stream.fileno()
    except (OSError, ValueError):
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
    finally:
        os.close(devnull)


#: The one console of this process.
console = Console()
