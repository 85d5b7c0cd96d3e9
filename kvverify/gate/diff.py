"""The diff of two baselines: what changed, each finding with its own status.

* A metric that got worse beyond its tolerance fails; one that got better is a note. Which way
  is worse is the metric's: less reuse, more misses, more errors, more latency. Numbers
  without a direction (allocations, pool sizes, offloads) are reported when they change,
  never failed. By default reuse may not drop at all and misses may not grow; latency is
  gated only when given a tolerance (it is never exactly repeatable).
* A drop in one step or one request is reported by itself ("request 4 reused 23 tokens, now
  0"), not hidden in the summary.
* A metric or an evidence family the old side showed and the new does not fails: the gate can
  no longer see it. One that appears is a note.
* A change of log format era or engine version is reported, not failed.
* Sides that cannot be compared (another scenario, another engine kind: the model's evidence
  against TensorRT-LLM's) are not comparable: no finding can be trusted.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from kvverify.errors import KvverifyError
from kvverify.gate.baseline import Baseline, Entry, Number, Tolerances
from kvverify.metrics import ENGINE_METRICS
from kvverify.result import CheckReport, Finding, FindingStatus, Kind
from kvverify.text import number, quote

#: +1: more is better (reuse); -1: less is better (misses, errors, latency); absent: neutral.
DIRECTION: dict[str, int] = {
    "reused_blocks": 1,
    "reused_unique_blocks": 1,
    "reused_unique_blocks_percent": 1,
    "cache_hit_rate": 1,
    "reused_tokens": 1,
    "reused_tokens_percent": 1,
    "missed_blocks": -1,
    "errors": -1,
    "first_token_ms": -1,
    "latency_ms": -1,
}
#: Gated only with a tolerance given (never exactly repeatable).
UNGATED = frozenset({"first_token_ms", "latency_ms"})
#: Every name a tolerance may be given for.
TOLERABLE = frozenset({*ENGINE_METRICS, "first_token_ms", "latency_ms"})


@dataclass(frozen=True)
class Tolerance:
    """How far a metric may move the worse way: an absolute amount or a share of the old."""

    amount: float
    relative: bool = False

    def allows(self, old: float, change: float) -> bool:
        limit = abs(old) * self.amount / 100 if self.relative else self.amount
        return abs(change) <= limit + 1e-12

    def __str__(self) -> str:
        text = f"{self.amount:g}"
        return text + "%" if self.relative else text


def parse_tolerance(name: str, text: str, where: str = "--tolerance") -> Tolerance:
    """``0.02`` (absolute) or ``10%`` (of the old value), for a metric a baseline holds."""
    if name not in TOLERABLE:
        from kvverify.errors import did_you_mean

        raise KvverifyError(
            f"no metric {quote(name)}{did_you_mean(name, sorted(TOLERABLE))}",
            where=where,
            hint="a tolerance is for a metric of docs/expectations.md, or first_token_ms / "
            "latency_ms",
        )
    raw = text.strip()
    relative = raw.endswith("%")
    try:
        amount = float(raw.removesuffix("%"))
    except ValueError:
        amount = math.nan
    if not math.isfinite(amount) or amount < 0:
        what = "negative" if amount < 0 else "not a number"
        raise KvverifyError(
            f"tolerance {quote(text)} for {name} is {what}",
            where=where,
            hint="write an amount, 0 or more (cache_hit_rate=0.02), or a share of the old "
            "value (latency_ms=10%)",
        )
    return Tolerance(amount, relative)


def parse_tolerances(items: Mapping[str, str], where: str = "--tolerance") -> dict[str, Tolerance]:
    return {name: parse_tolerance(name, value, where) for name, value in items.items()}


@dataclass(frozen=True)
class Gate:
    """``--baseline``, ``--save-baseline`` and ``--tolerance``: the upgrade gate's options."""

    baseline: Path | None = None
    save: Path | None = None
    tolerance: dict[str, Tolerance] = field(default_factory=dict)

    def apply(self, result: CheckReport, tolerances: Tolerances | None = None) -> CheckReport:
        """The result with the gate applied (:func:`kvverify.gate.gates.apply`), or as it is
        when no baseline is given or asked for: the gate's code is imported only then."""
        if self.baseline is None and self.save is None:
            return result
        from kvverify.gate.gates import apply  # the gate imports this module

        return apply(result, self, tolerances)


@dataclass(frozen=True)
class Diff:
    """The findings, or why the sides cannot be compared (then ``reason`` is set)."""

    findings: tuple[Finding, ...]
    reason: str = ""

    @property
    def comparable(self) -> bool:
        return not self.reason


def _fmt(value: Number | None) -> str:
    return value if isinstance(value, str) else number(value)


def _said(
    entry: str,
    kind: Kind,
    name: str,
    status: FindingStatus,
    message: str,
    old: Number | None = None,
    new: Number | None = None,
) -> Finding:
    """A finding that is not a difference of two numbers (an entry, a family, an era)."""
    return Finding(entry, kind, name, old, new, None, None, status, message)


def _compare_number(
    entry: str,
    kind: Kind,
    metric: str,
    name: str,
    label: str,
    old: Number | None,
    new: Number | None,
    tolerance: Tolerance | None,
) -> Finding | None:
    """One number on both sides (``metric`` says which way is worse; ``name`` is what the
    finding is called); None when neither side has it."""
    if old is None and new is None:
        return None
    tol = None if tolerance is None else str(tolerance)
    if new is None:
        return Finding(
            entry,
            kind,
            name,
            old,
            None,
            None,
            tol,
            "fail",
            f"{label} was {_fmt(old)}; the new side does not show it",
        )
    if old is None:
        return Finding(
            entry, kind, name, None, new, None, tol, "note", f"{label} now shows {_fmt(new)}"
        )
    a, b = float(old), float(new)
    if not (math.isfinite(a) and math.isfinite(b)):  # nan or inf as printed: no delta
        same = a == b or (math.isnan(a) and math.isnan(b))
        status: FindingStatus = "pass" if same else "fail" if DIRECTION.get(metric) else "note"
        return Finding(
            entry, kind, name, old, new, None, tol, status, f"{label}: {_fmt(old)} -> {_fmt(new)}"
        )
    change = b - a
    direction = DIRECTION.get(metric, 0)
    worse = direction * change < 0
    if change == 0:
        return Finding(entry, kind, name, old, new, 0.0, tol, "pass", f"{label}: {_fmt(new)}")
    if not worse:
        status = "note"
        what = "improved" if direction else "changed"
        msg = f"{label} {what}: {_fmt(old)} -> {_fmt(new)}"
    elif tolerance is None and metric in UNGATED:
        status, msg = "note", f"{label} changed: {_fmt(old)} -> {_fmt(new)} (not gated)"
    elif tolerance is not None and tolerance.allows(a, change):
        status = "pass"
        msg = f"{label}: {_fmt(old)} -> {_fmt(new)}, within tolerance {tolerance}"
    else:
        status = "fail"
        msg = _worse(kind, metric, label, old, new, tolerance)
    return Finding(entry, kind, name, old, new, change, tol, status, msg)


def _worse(
    kind: Kind, metric: str, label: str, old: Number, new: Number, tolerance: Tolerance | None
) -> str:
    allowed = f" (tolerance {tolerance})" if tolerance is not None and tolerance.amount else ""
    if kind in ("request", "step") and metric == "reused_tokens":
        return f"{label} reused {_fmt(old)} tokens, now {_fmt(new)}{allowed}"
    verb = "dropped" if DIRECTION.get(metric, 0) > 0 else "grew"
    what = f"{label} {metric.replace('_', ' ')}" if kind in ("request", "step") else label
    return f"{what} {verb}: {_fmt(old)} -> {_fmt(new)}{allowed}"


def _tolerances(old: Entry, given: Mapping[str, Tolerance]) -> dict[str, Tolerance]:
    """The command line's, else the scenario's (kept in the old baseline)."""
    kept = {
        name: parse_tolerance(name, text, f"the baseline's tolerance of {name}")
        for name, text in old.tolerance.items()
    }
    return {**kept, **given}


def _tolerance_for(name: str, tolerances: Mapping[str, Tolerance]) -> Tolerance | None:
    """The metric's tolerance (:func:`_tolerances`), else the default: none allowed for a
    metric with a direction (latency: not gated)."""
    if name in tolerances:
        return tolerances[name]
    if name in DIRECTION and name not in UNGATED:
        return Tolerance(0.0)
    return None


#: What a baseline entry must show to be a reference: reuse, in the summary or per request.
_REFERENCE = ("reused_blocks", "reused_tokens", "cache_hit_rate")


#: Verdicts of a run whose numbers are no reference (the run did not end).
_BROKEN = ("crashed", "engine_unavailable", "interrupted")


def comparable(old: Entry, new: Entry) -> str:
    """Why two entries cannot be compared, or nothing."""
    if old.verdict in _BROKEN:
        return f"{old.key}: the old side's run did not end ({old.verdict}): it is no reference"
    if not any(m in old.metrics for m in _REFERENCE) and not old.requests and not old.steps:
        return (
            f"{old.key}: the old side shows no reuse at all (no summary, no request): it is no "
            "reference (a baseline is saved only from checks that pass)"
        )
    # The model's evidence compares only with the model's; a log naming no engine (no banner,
    # no marker) is taken for TensorRT-LLM's.
    kinds = {old.engine, new.engine}
    if old.engine != new.engine and (kinds != {"trtllm", "unknown"}):
        names = {"sim": "kvverify's reference model", "trtllm": "TensorRT-LLM"}
        return (
            f"{old.key}: the old side is {names.get(old.engine, old.engine)}'s evidence and "
            f"the new side {names.get(new.engine, new.engine)}'s: a model-made baseline says "
            "nothing about a TensorRT-LLM run (save the baseline on the same engine)"
        )
    if old.scenario and new.scenario and old.scenario != new.scenario:
        return f"{old.key}: another scenario ({old.scenario} vs {new.scenario})"
    if old.variant and new.variant and old.variant != new.variant:
        return f"{old.key}: another variant ({old.variant} vs {new.variant})"
    return ""


def diff_entries(old: Entry, new: Entry, given: Mapping[str, Tolerance]) -> list[Finding]:
    key = new.key
    tolerances = _tolerances(old, given)
    out: list[Finding] = []
    if new.verdict in _BROKEN:
        out.append(
            _said(
                key,
                "entry",
                "verdict",
                "fail",
                f"the new side's run did not end ({new.verdict}): its numbers are partial",
                old.verdict,
                new.verdict,
            )
        )
    if old.engine_version != new.engine_version:
        out.append(
            _said(
                key,
                "engine",
                "engine_version",
                "note",
                f"engine version {old.engine_version or '?'} -> {new.engine_version or '?'}",
                old.engine_version,
                new.engine_version,
            )
        )
    if old.era != new.era:
        out.append(
            _said(
                key,
                "era",
                "era",
                "note",
                f"log format era {old.era or '?'} -> {new.era or '?'} (the numbers are compared "
                "as they are)",
                old.era,
                new.era,
            )
        )
    for family in sorted(set(old.families) | set(new.families)):
        if family in old.families and family not in new.families:
            out.append(
                _said(
                    key,
                    "family",
                    family,
                    "fail",
                    f"the {family} lines are gone: the new log no longer shows that evidence",
                )
            )
        elif family in new.families and family not in old.families:
            out.append(_said(key, "family", family, "note", f"{family} lines appear"))
    for name in sorted(set(old.metrics) | set(new.metrics)):
        found = _compare_number(
            key,
            "metric",
            name,
            name,
            name,
            old.metrics.get(name),
            new.metrics.get(name),
            _tolerance_for(name, tolerances),
        )
        if found is not None:
            out.append(found)
    for rank in sorted(set(old.ranks) | set(new.ranks)):
        a, b = old.ranks.get(rank), new.ranks.get(rank)
        if b is None:
            out.append(
                _said(key, "metric", f"rank[{rank}]", "fail", f"rank {rank} is not in the new log")
            )
            continue
        for name in sorted(set(a or {}) | set(b)):
            found = _compare_number(
                key,
                "metric",
                name,
                f"rank[{rank}].{name}",
                f"rank {rank} {name}",
                (a or {}).get(name),
                b.get(name),
                _tolerance_for(name, tolerances),
            )
            if found is not None:
                out.append(found)
    for kind, label, old_rows, new_rows in (
        ("step", "step", old.steps, new.steps),
        ("request", "request", old.requests, new.requests),
    ):
        for index in sorted(set(old_rows) | set(new_rows)):
            a, b = old_rows.get(index), new_rows.get(index)
            if a is None or b is None:
                if a is not None:
                    out.append(_missing_row(key, kind, label, index, bool(new_rows)))
                continue
            for name in sorted(set(a) | set(b)):
                if name == "request_id":
                    continue
                found = _compare_number(
                    key,
                    kind,  # type: ignore[arg-type]
                    name,
                    f"{label}[{index}].{name}",
                    f"{label} {index}",
                    a.get(name),
                    b.get(name),
                    _tolerance_for(name, tolerances),
                )
                # Unchanged per-step and per-request numbers are not listed one by one.
                if found is not None and (found.status != "pass" or found.delta):
                    out.append(found)
    return out


def _missing_row(key: str, kind: str, label: str, index: int, others: bool) -> Finding:
    """A step of the old side the new one lacks fails (the scenario's step did not run, or the
    new log does not map steps: its per-step reuse cannot be checked). A request id the new
    side lacks is a note while it shows other requests: ids depend on warm-up traffic, which
    a log without kvverify's markers cannot tell apart; losing them all fails as a family."""
    if kind == "step":
        why = "" if others else ": the new side maps no steps (a log kvverify run wrote does)"
        return _said(
            key, "step", f"{label}[{index}]", "fail", f"step {index} is not in the new log{why}"
        )
    status: FindingStatus = "note" if others else "fail"
    return _said(
        key, "request", f"{label}[{index}]", status, f"request {index} is not in the new log"
    )


def _pairs(old: Baseline, new: Baseline) -> tuple[list[tuple[Entry, Entry]], list[Finding]]:
    """Entries matched by key; two single-entry sides match whatever their keys."""
    if len(old.entries) == 1 and len(new.entries) == 1:
        ((_, only_old),) = old.entries.items()
        ((_, only_new),) = new.entries.items()
        return [(only_old, only_new)], []
    pairs = []
    extra: list[Finding] = []
    for key, a in sorted(old.entries.items()):
        b = new.entries.get(key)
        if b is None:
            extra.append(
                _said(
                    key,
                    "entry",
                    key,
                    "fail",
                    f"{key} is in the old side but not in the new one (compare gates every "
                    "entry of OLD: run every variant, or compare the variants that ran)",
                )
            )
        else:
            pairs.append((a, b))
    for key in sorted(set(new.entries) - set(old.entries)):
        extra.append(_said(key, "entry", key, "note", f"{key} is new"))
    return pairs, extra


def diff(old: Baseline, new: Baseline, tolerance: Mapping[str, Tolerance] | None = None) -> Diff:
    """Every finding of ``new`` against ``old``."""
    given = tolerance or {}
    pairs, findings = _pairs(old, new)
    if not pairs:
        return Diff(
            tuple(findings),
            reason="the sides have no entry in common (another scenario or other logs): "
            f"old has {', '.join(sorted(old.entries)) or 'none'}, new has "
            f"{', '.join(sorted(new.entries)) or 'none'}",
        )
    for a, b in pairs:
        why = comparable(a, b)
        if why:
            return Diff(tuple(findings), reason=why)
        findings += diff_entries(a, b, given)
    return Diff(tuple(findings))
