"""One error hierarchy. Raised deep down with a message that says where, what and how to fix;
turned into output and an exit code only at the command boundary (``kvverify.cli``)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from kvverify import exitcodes
from kvverify.text import quote


class KvverifyError(Exception):
    """Base of every error kvverify reports to a user. ``exit_code`` follows the contract in
    :mod:`kvverify.exitcodes`: 2 = the input cannot be used, 3 = the engine could not start."""

    exit_code: int = exitcodes.UNUSABLE

    def __init__(self, message: str, *, where: str | None = None, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.where = where
        self.hint = hint

    def render(self) -> str:
        """``where: what`` and, on its own line, how to fix it."""
        head = f"{self.where}: {self.message}" if self.where else self.message
        return f"{head}\n  hint: {self.hint}" if self.hint else head


class InputError(KvverifyError):
    """A path that cannot be used: missing, a directory, unreadable, binary, corrupt."""


class ExpressionError(KvverifyError):
    """An expectation that does not parse (``reused_blocks >> 0``) or names an unknown metric."""


class ScenarioError(KvverifyError):
    """A scenario file that does not validate. Carries every problem at once."""

    def __init__(self, problems: list[str], *, where: str | None = None) -> None:
        count = len(problems)
        head = f"{count} problem{'s' if count != 1 else ''} in the scenario"
        super().__init__(head, where=where)
        self.problems = problems

    def render(self) -> str:
        return "\n".join([super().render(), *(f"  {p}" for p in self.problems)])


class EngineError(KvverifyError):
    """The engine refuses the input: the installed TensorRT-LLM does not know an argument, or
    the reference model cannot size a model. Found before any model loads."""


class EngineUnavailable(KvverifyError):
    """The engine cannot start at all: TensorRT-LLM is not installed or fails to import (a
    missing CUDA library), the interpreter given with ``--python`` does not run. A broken
    runner, not a bad scenario: exit 3."""

    exit_code = exitcodes.ENGINE


def did_you_mean(word: object, choices: Iterable[object]) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``choices``, or nothing."""
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.6)
    return f" (did you mean {quote(close[0])}?)" if close else ""
