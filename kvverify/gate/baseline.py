"""Baselines: a projection of a check result, small and deterministic, meant to be committed.

One entry per scenario variant (a log ``kvverify run`` wrote) or per log: the numbers the
final engine showed (every engine metric, each step's and each request's reuse, latency where
the run recorded it), the engine that produced them (kind and version), the log format era and
the evidence families the log printed. Numbers the log cannot give are left out, never 0.

    {"schema": "kvverify/baseline", "schema_version": 1, "kvverify_version": "...",
     "entries": {"abab/offload_on": {"engine": {...}, "era": "1.2", "metrics": {...}, ...}}}
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args

from kvverify import __version__
from kvverify.errors import InputError
from kvverify.result import CheckReport, EngineName, LogReport
from kvverify.text import clean, nonfinite

SCHEMA = "kvverify/baseline"
SCHEMA_VERSION = 1

#: Per-request numbers a baseline keeps (those a drop of reuse shows in).
REQUEST_METRICS = ("reused_tokens", "reused_blocks", "missed_blocks", "onboarded_blocks")

Number = float | str  # "nan", "inf", "-inf" for what the log printed so


@dataclass(frozen=True)
class Entry:
    """What one log, or one variant's run, showed."""

    key: str
    scenario: str | None
    variant: str | None
    log: str
    engine: str  # "trtllm" | "sim" | "unknown"
    engine_version: str | None
    era: str | None
    families: tuple[str, ...]
    metrics: Mapping[str, Number]
    steps: Mapping[int, Mapping[str, Number]]
    requests: Mapping[int, Mapping[str, Number]]
    #: tolerances the scenario gave (``baseline: {tolerance: ...}``), kept for ``compare``
    tolerance: Mapping[str, str] = field(default_factory=dict)
    #: the summary metrics of every other rank's final manager (tensor parallelism)
    ranks: Mapping[int, Mapping[str, Number]] = field(default_factory=dict)
    #: how the log's own checks ended ("pass" for every saved baseline)
    verdict: str = "pass"


@dataclass(frozen=True)
class Baseline:
    entries: Mapping[str, Entry]
    source: str
    kvverify_version: str = __version__


def _number(value: float | None) -> Number | None:
    if value is None:
        return None
    if not math.isfinite(value):
        return nonfinite(value)
    return int(value) if float(value).is_integer() else round(value, 6)


def _numbers(values: Mapping[str, float | None]) -> dict[str, Number]:
    return {k: n for k, v in sorted(values.items()) if (n := _number(v)) is not None}


def key_of(log: LogReport) -> str:
    """``scenario/variant`` for a log kvverify run wrote, else the log's file name."""
    if log.scenario and log.variant:
        return f"{log.scenario}/{log.variant}"
    return Path(log.path).name


def project(log: LogReport, tolerance: Mapping[str, str] | None = None) -> Entry:
    """The baseline entry of one checked log."""
    steps = {
        s.step: _numbers(
            {
                "request_id": s.request_id,
                "reused_tokens": s.reused_tokens,
                "reused_blocks": s.reused_blocks,
                "missed_blocks": s.missed_blocks,
                "first_token_ms": s.first_token_ms,
                "latency_ms": s.latency_ms,
            }
        )
        for s in log.steps
    }
    requests = {
        r.request_id: _numbers({m: getattr(r, m) for m in REQUEST_METRICS})
        for r in log.requests
        if r.final and not r.dummy
    }
    return Entry(
        key=key_of(log),
        scenario=log.scenario,
        variant=log.variant,
        log=Path(log.path).name,
        engine=log.engine.name,
        engine_version=log.engine.version,
        era=log.era,
        families=tuple(log.families),
        metrics=_numbers(log.metrics),
        steps=steps,
        requests=dict(sorted(requests.items())),
        tolerance=dict(sorted((tolerance or {}).items())),
        ranks={
            int(r): _numbers(m)
            for r, m in sorted(log.rank_metrics.items(), key=lambda x: int(x[0]))
        },
        verdict=log.verdict,
    )


#: A scenario's baseline tolerances per variant ("" for a log that names no variant).
Tolerances = Mapping[str, Mapping[str, str]]


def tolerance_of(tolerances: Tolerances | None, log: LogReport) -> Mapping[str, str]:
    if not tolerances:
        return {}
    return tolerances.get(log.variant or "", tolerances.get("", {}))


def entries_of(report: CheckReport, tolerances: Tolerances | None = None) -> list[Entry]:
    """One entry per log, in the logs' order, each with the tolerances its scenario variant
    gives. Two logs of the same key (file name, or scenario/variant) are told apart by their
    paths: one never hides the other."""
    projected = [project(log, tolerance_of(tolerances, log)) for log in report.logs]
    keys = [e.key for e in projected]
    return [
        dataclasses.replace(entry, key=f"{entry.key} ({log.path})")
        if keys.count(entry.key) > 1
        else entry
        for entry, log in zip(projected, report.logs, strict=True)
    ]


def from_report(
    report: CheckReport, tolerances: Tolerances | None = None, source: str = ""
) -> Baseline:
    """A baseline of a check result: :func:`entries_of`, by key."""
    return Baseline({e.key: e for e in entries_of(report, tolerances)}, source)


# -- the file ------------------------------------------------------------------------------------


def _entry_data(e: Entry) -> dict[str, Any]:
    return {
        "scenario": e.scenario,
        "variant": e.variant,
        "log": e.log,
        "engine": {"name": e.engine, "version": e.engine_version},
        "era": e.era,
        "families": list(e.families),
        "metrics": dict(e.metrics),
        "steps": {str(k): dict(v) for k, v in sorted(e.steps.items())},
        "requests": {str(k): dict(v) for k, v in sorted(e.requests.items())},
        "tolerance": dict(e.tolerance),
        "ranks": {str(k): dict(v) for k, v in sorted(e.ranks.items())},
        "verdict": e.verdict,
    }


def dumps(baseline: Baseline) -> str:
    """The file's text: the same numbers always give the same bytes."""
    data = {
        "schema": SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "kvverify_version": baseline.kvverify_version,
        "entries": {k: _entry_data(e) for k, e in sorted(baseline.entries.items())},
    }
    return json.dumps(data, indent=2, sort_keys=False, allow_nan=False) + "\n"


def save(baseline: Baseline, path: Path) -> None:
    """Written whole or not at all (a temporary file beside it, then renamed): a committed
    baseline is never left half written."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(dumps(baseline), encoding="utf-8")
        tmp.replace(path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise InputError(
            f"cannot write the baseline: {exc.strerror or exc}", where=str(path)
        ) from None


def _bad(path: str, what: str) -> InputError:
    return InputError(
        f"not a kvverify baseline: {what}",
        where=path,
        hint="write one with kvverify check LOG --save-baseline FILE or kvverify run "
        "SCENARIO --save-baseline FILE",
    )


def _numeric_map(raw: Any, path: str, what: str) -> dict[str, Number]:
    if not isinstance(raw, dict):
        raise _bad(path, f"{what} is not an object")
    out: dict[str, Number] = {}
    for k, v in raw.items():
        ok = isinstance(v, str) and v in ("nan", "inf", "-inf")
        if isinstance(v, int | float) and not isinstance(v, bool):
            try:
                ok = math.isfinite(float(v))
            except OverflowError:
                ok = False
        if not ok:
            raise _bad(path, f"{what}.{clean(str(k), 40)} is not a number")
        out[str(k)] = v
    return out


def _indexed(raw: Any, path: str, what: str) -> dict[int, dict[str, Number]]:
    if not isinstance(raw, dict):
        raise _bad(path, f"{what} is not an object")
    out = {}
    for k, v in raw.items():
        if not re.fullmatch(r"[0-9]+", str(k)):
            raise _bad(path, f"{what} key {clean(str(k), 40)!r} is not a number")
        out[int(k)] = _numeric_map(v, path, f"{what}.{k}")
    return out


def parse(text: str, path: str) -> Baseline:
    """A baseline file, checked: one plain error for anything else."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise _bad(path, f"invalid JSON ({exc})") from None
    return _from_data(data, path)


def _from_data(data: Any, path: str) -> Baseline:
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        raise _bad(path, f'no "schema": "{SCHEMA}"')
    version = data.get("schema_version")
    if type(version) is not int or version != SCHEMA_VERSION:
        raise _bad(
            path,
            f"schema_version {clean(str(data.get('schema_version')), 20)}; this kvverify reads "
            f"{SCHEMA_VERSION}",
        )
    raw_entries = data.get("entries")
    if not isinstance(raw_entries, dict):
        raise _bad(path, '"entries" is not an object')
    entries: dict[str, Entry] = {}
    for key, raw in raw_entries.items():
        where = f"entries.{clean(str(key), 60)}"
        if not isinstance(raw, dict):
            raise _bad(path, f"{where} is not an object")
        engine = raw.get("engine", {})
        if not isinstance(engine, dict) or engine.get("name", "unknown") not in _ENGINES:
            raise _bad(path, f"{where}.engine is not {{name: trtllm|sim|unknown, version}}")
        families = raw.get("families", [])
        if not isinstance(families, list) or not all(isinstance(f, str) for f in families):
            raise _bad(path, f"{where}.families is not a list of names")
        tolerance = raw.get("tolerance", {})
        if not isinstance(tolerance, dict):
            raise _bad(path, f"{where}.tolerance is not an object")
        entries[str(key)] = Entry(
            key=str(key),
            scenario=_str(raw.get("scenario")),
            variant=_str(raw.get("variant")),
            log=str(raw.get("log") or key),
            engine=str(engine.get("name") or "unknown"),
            engine_version=_str(engine.get("version")),
            era=_str(raw.get("era")),
            families=tuple(families),
            metrics=_numeric_map(raw.get("metrics", {}), path, f"{where}.metrics"),
            steps=_indexed(raw.get("steps", {}), path, f"{where}.steps"),
            requests=_indexed(raw.get("requests", {}), path, f"{where}.requests"),
            tolerance={str(k): str(v) for k, v in tolerance.items()},
            ranks=_indexed(raw.get("ranks", {}), path, f"{where}.ranks"),
            verdict=str(raw.get("verdict", "pass")),
        )
    return Baseline(entries, path, str(data.get("kvverify_version") or "?"))


#: The engine names a baseline may hold ("unknown": a log that named none).
_ENGINES = get_args(EngineName)


def _str(value: Any) -> str | None:
    return None if value is None else str(value)


def as_baseline(text: str, path: str) -> Baseline | None:
    """The baseline a file holds, or None when it is not JSON at all (then it is a log). A JSON
    document that is not a baseline (a check report, anything else) is an error, never read
    as a log that shows no evidence."""
    try:
        data = json.loads(text.lstrip("\ufeff"))
    except ValueError:
        return None
    if isinstance(data, dict) and data.get("schema") in (
        "kvverify/check-report",
        "kvverify/compare-report",
    ):
        raise _bad(path, f"it is a {data['schema']}, not a baseline")
    return _from_data(data, path)


def load(path: str) -> Baseline:
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise InputError("no such file", where=path) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read the baseline: {exc}", where=path) from None
    return parse(text, path)
