"""The expectation grammar: a tiny parser, never ``eval``.

::

    expectation := preset | reference OP NUMBER
    preset      := "reuse" | "no-reuse" | "offload" | "no-offload"
    reference   := (SCOPE "[" INTEGER "]" ".")* METRIC
    SCOPE       := "request" | "step" | "window" | "rank" | "segment"
    OP          := "==" | "!=" | ">=" | "<=" | ">" | "<"
    NUMBER      := a decimal number, optionally signed, with an optional exponent

Examples: ``reused_blocks > 0``, ``cache_hit_rate >= 0.5``, ``step[3].reused_tokens > 0``,
``window[4096].reused_blocks == 0``, ``no-reuse``.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import NoReturn

from kvverify.errors import ExpressionError, did_you_mean
from kvverify.metrics import ENGINE_METRICS, REQUEST_METRICS, SCOPES
from kvverify.text import quote

OPS: dict[str, Callable[[float, float], bool]] = {
    "==": operator.eq,
    "!=": operator.ne,
    ">=": operator.ge,
    "<=": operator.le,
    ">": operator.gt,
    "<": operator.lt,
}

#: Readable shorthands and what they stand for.
PRESETS: dict[str, tuple[str, ...]] = {
    "reuse": ("reused_blocks > 0", "cache_hit_rate > 0"),
    "no-reuse": ("reused_blocks == 0", "cache_hit_rate == 0"),
    "offload": ("offloaded_blocks > 0",),
    "no-offload": ("offloaded_blocks == 0",),
}

#: What a log is held to when nobody says otherwise: reuse happened.
DEFAULT = PRESETS["reuse"]

_TOKEN = re.compile(
    r"\s*(?:(?P<num>[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)"
    r"|(?P<name>[A-Za-z_][A-Za-z0-9_]*)|(?P<op>==|!=|>=|<=|>|<|=)|(?P<punct>[\[\].]))"
)


@dataclass(frozen=True)
class Scope:
    kind: str
    index: int

    def __str__(self) -> str:
        return f"{self.kind}[{self.index}]"


@dataclass(frozen=True)
class Expectation:
    """One parsed check: ``scopes.metric op value``; ``text`` is how it was written."""

    text: str
    scopes: tuple[Scope, ...]
    metric: str
    op: str
    value: float
    source: str = "cli"

    @property
    def family(self) -> str:
        return "request" if self.request_scope else "engine"

    @property
    def request_scope(self) -> Scope | None:
        return next((s for s in self.scopes if SCOPES[s.kind] == "request"), None)

    def holds(self, observed: float) -> bool:
        if math.isnan(observed):
            return False  # nan satisfies no comparison, "!=" included: it is not a number
        return OPS[self.op](observed, self.value)

    def __str__(self) -> str:
        return self.text


class _Parser:
    def __init__(self, text: str, source: str) -> None:
        self.text = text
        self.source = source
        self.tokens: list[tuple[str, str, int]] = []
        pos = 0
        stripped = text.rstrip()
        while pos < len(stripped):
            m = _TOKEN.match(stripped, pos)
            if m is None or m.end() == pos:
                col = len(stripped) - len(stripped[pos:].lstrip()) if m is None else pos
                self.fail(f"unexpected {quote(stripped[col])}", max(col, pos))
            assert m.lastgroup is not None
            self.tokens.append((m.lastgroup, m.group(m.lastgroup), m.start(m.lastgroup)))
            pos = m.end()
        self.i = 0

    def fail(self, what: str, col: int | None = None) -> NoReturn:
        where = f"expectation {quote(self.text)}"
        if col is not None:
            where += f", column {col + 1}"
        raise ExpressionError(
            what,
            where=where,
            hint="write METRIC OP NUMBER, e.g. 'reused_blocks > 0' or 'step[3].reused_tokens >= 16'"
            ", or a preset: " + ", ".join(PRESETS),
        )

    def peek(self) -> tuple[str, str, int] | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self, kind: str, what: str) -> tuple[str, str, int]:
        tok = self.peek()
        if tok is None:
            self.fail(f"expected {what} at the end")
        if tok[0] != kind:
            self.fail(f"expected {what}, found {quote(tok[1])}", tok[2])
        self.i += 1
        return tok

    def parse(self) -> Expectation:
        scopes: list[Scope] = []
        while True:
            _, name, col = self.take("name", "a metric name")
            nxt = self.peek()
            if nxt is not None and nxt[1] == "[":
                if name not in SCOPES:
                    self.fail(f"unknown scope {quote(name)}{did_you_mean(name, SCOPES)}", col)
                self.i += 1
                _, num, ncol = self.take("num", "an integer index")
                if not re.fullmatch(r"\d+", num):
                    self.fail(f"index must be a whole number, found {quote(num)}", ncol)
                self.take("punct", "']'")
                self.take("punct", "'.' and a metric name")
                scopes.append(Scope(name, int(num)))
                continue
            metric, mcol = name, col
            break
        _, op, ocol = self.take("op", "a comparison (== != >= <= > <)")
        if op == "=":
            self.fail("'=' is not a comparison (did you mean '=='?)", ocol)
        _, num, _ = self.take("num", "a number")
        extra = self.peek()
        if extra is not None:
            self.fail(f"unexpected {quote(extra[1])} after the number", extra[2])
        kinds = [s.kind for s in scopes]
        if len(set(kinds)) != len(kinds):
            self.fail("a scope is given twice")
        families = {SCOPES[k] for k in kinds}
        if "request" in families and len(kinds) > 1:
            self.fail("request[...] and step[...] stand alone: they cannot be combined")
        catalog = REQUEST_METRICS if "request" in families else ENGINE_METRICS
        if metric not in catalog:
            other = ENGINE_METRICS if catalog is REQUEST_METRICS else REQUEST_METRICS
            hint = did_you_mean(metric, catalog)
            if not hint and metric in other:
                hint = (
                    " (it is a per-request metric: scope it, e.g. step[1]." + metric + ")"
                    if other is REQUEST_METRICS
                    else " (it is an engine metric: drop the request/step scope)"
                )
            kind = "per-request metric" if catalog is REQUEST_METRICS else "metric"
            self.fail(f"unknown {kind} {quote(metric)}{hint}", mcol)
        return Expectation(
            text=" ".join(self.text.split()),
            scopes=tuple(scopes),
            metric=metric,
            op=op,
            value=float(num),
            source=self.source,
        )


def parse(text: str, source: str = "cli") -> list[Expectation]:
    """Parse one expectation (a preset expands to several)."""
    stripped = text.strip()
    if not stripped:
        raise ExpressionError(
            "empty expectation", hint="write METRIC OP NUMBER, e.g. 'reused_blocks > 0'"
        )
    if stripped in PRESETS:
        return [_Parser(t, source).parse() for t in PRESETS[stripped]]
    if re.fullmatch(r"[a-z]+(-[a-z]+)+", stripped):  # a preset's shape: no-reus, no-ofload
        raise ExpressionError(
            f"unknown preset {quote(stripped)}{did_you_mean(stripped, PRESETS)}",
            where=f"expectation {quote(stripped)}",
            hint="presets: " + ", ".join(PRESETS),
        )
    return [_Parser(stripped, source).parse()]


def parse_all(texts: Iterable[str], source: str = "cli") -> list[Expectation]:
    out: list[Expectation] = []
    for t in texts:
        out.extend(parse(t, source))
    return out
