"""Text that comes from outside (log lines, expressions, file names) shown to a person.

A log line can hold a carriage return that overwrites the verdict on the screen, an escape
sequence that retitles the terminal or colours the rest of the output, or 60 KB of one
expression. Whatever a human-readable report echoes goes through :func:`clean` or
:func:`quote`: control and other non-printable characters escaped, long text cut.
"""

from __future__ import annotations

import math

#: Quotes longer than this are cut (in the middle of a message: a name, an expression).
QUOTE_LIMIT = 80
#: Longer texts (an error line of the log) are cut here.
LINE_LIMIT = 400

_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\x1b": "\\e"}


def _escape(char: str) -> str:
    known = _ESCAPES.get(char)
    if known is not None:
        return known
    code = ord(char)
    return (
        f"\\x{code:02x}"
        if code < 0x100
        else f"\\u{code:04x}"
        if code < 0x10000
        else f"\\U{code:08x}"
    )


def clean(text: str, limit: int = LINE_LIMIT) -> str:
    """``text`` safe for a terminal, a Markdown table or a workflow command: non-printable
    characters (C0 and C1 controls, DEL, bidi overrides, ...) escaped, at most ``limit``
    characters kept (an ellipsis marks the cut)."""
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else _escape(c) for c in text)


def quote(text: str, limit: int = QUOTE_LIMIT) -> str:
    """``text`` in quotes, cleaned and cut: for names and expressions inside a message."""
    return "'" + clean(text, limit) + "'"


def number(value: float | None) -> str:
    """A number in a message: whole numbers as integers, others short; None is "nothing"."""
    if value is None:
        return "nothing"
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def nonfinite(value: float) -> str:
    """How nan and inf are written where JSON has no number for them: as strings."""
    return "nan" if math.isnan(value) else "inf" if value > 0 else "-inf"
