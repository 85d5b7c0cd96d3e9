"""What the gate does with baselines: load a side, compare two, add drift checks to a check
result, save what a check showed (the projection is :mod:`.baseline`, the diff :mod:`.diff`)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path

from kvverify import __version__, diagnose, exitcodes
from kvverify.check import Inputs, check_source, report
from kvverify.errors import InputError
from kvverify.evidence.sources import LogSource
from kvverify.gate.baseline import (
    Baseline,
    Entry,
    Tolerances,
    as_baseline,
    entries_of,
    from_report,
    save,
    tolerance_of,
)
from kvverify.gate.baseline import load as load_baseline
from kvverify.gate.diff import Gate, Tolerance, comparable, diff, diff_entries, parse_tolerances
from kvverify.result import Check, CheckReport, CompareReport, Finding, LogReport, Side, SideKind
from kvverify.rundir import run_logs

#: A JSON file up to this size is read whole to see whether it is a baseline.
BASELINE_LIMIT = 64 << 20
#: What is read of a file first: enough to see whether it starts like JSON.
_SNIFF = 4096


def load_side(path: str, jobs: int = 1) -> tuple[Baseline, Side]:
    """A side of a comparison: a baseline file, a log, or a run directory."""
    where = Path(path)
    kind: SideKind = "log"
    if where.is_dir():
        logs = [str(p) for p in run_logs(where)]
        kind = "run"
    else:
        try:
            with where.open("rb") as fh:
                head = fh.read(_SNIFF)
                # Only a file that starts like JSON is read whole (a log is scanned instead).
                if head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"{"):
                    head += fh.read(BASELINE_LIMIT + 1 - len(head))
                    json_like = len(head) <= BASELINE_LIMIT
                else:
                    json_like = False
        except FileNotFoundError:
            raise InputError("no such file", where=path) from None
        except OSError as exc:
            raise InputError(f"cannot read: {exc.strerror or exc}", where=path) from None
        if json_like:
            found = as_baseline(head.decode("utf-8", "replace"), path)
            if found is not None:
                return found, _side(path, "baseline", found)
        del head
        logs = [path]
    checked = report([check_source(LogSource(p), Inputs(jobs=jobs)) for p in logs])
    baseline = from_report(checked, source=path)
    return baseline, _side(path, kind, baseline)


def _side(source: str, kind: SideKind, baseline: Baseline) -> Side:
    engines = sorted(
        {
            f"{e.engine} {e.engine_version}" if e.engine_version else e.engine
            for e in baseline.entries.values()
        }
    )
    return Side(source, kind, tuple(sorted(baseline.entries)), tuple(engines))


def compare(
    old_path: str, new_path: str, tolerance: Mapping[str, Tolerance], jobs: int = 1
) -> CompareReport:
    """``kvverify compare OLD NEW``."""
    old, old_side = load_side(old_path, jobs)
    new, new_side = load_side(new_path, jobs)
    result = diff(old, new, tolerance)
    verdict: exitcodes.CompareVerdict
    if not result.comparable:
        verdict = "not_comparable"
    elif any(f.status == "fail" for f in result.findings):
        verdict = "fail"
    else:
        verdict = "pass"
    return CompareReport(
        kvverify_version=__version__,
        verdict=verdict,
        exit_code=exitcodes.for_verdict(verdict),
        reason=result.reason,
        old=old_side,
        new=new_side,
        findings=result.findings,
    )


# -- drift checks next to a check's own -----------------------------------------------------------


def _as_check(f: Finding) -> Check:
    number = f.new if isinstance(f.new, int | float) else None
    return Check(
        expression=f"{f.name} vs baseline",
        source="baseline",
        observed=None if number is None else float(number),
        status="fail" if f.status == "fail" else "pass",
        reason=f.message + (f" (baseline {f.old})" if f.status == "pass" else ""),
    )


def _drift_of(
    log: LogReport,
    new: Entry,
    old: Entry | None,
    known: list[str],
    tolerance: Mapping[str, Tolerance],
) -> LogReport:
    checks: list[Check] = []
    notes = []
    why = "" if old is None else comparable(old, new)
    if old is None or why:
        reason = why or (
            f"the baseline has no entry for {new.key} (it has {', '.join(known) or 'none'})"
        )
        checks.append(
            Check(
                expression="matches baseline",
                source="baseline",
                observed=None,
                status="not_analyzable",
                reason=reason,
                diagnosis="no-baseline-entry" if old is None else "not-comparable",
            )
        )
    else:
        for f in diff_entries(old, new, tolerance):
            if f.status == "note":
                notes.append(diagnose.make("baseline-change", f.message))
            elif f.status == "fail" or (f.kind == "metric" and f.tolerance is not None):
                checks.append(_as_check(f))
    all_checks = (*log.checks, *checks)
    verdict = exitcodes.worst([log.verdict, *(c.status for c in checks)])
    codes = {d.code for d in log.diagnoses}
    extra = [
        diagnose.make(c.diagnosis, c.reason)
        for c in checks
        if c.diagnosis and c.diagnosis not in codes
    ]
    return dataclasses.replace(
        log, checks=all_checks, verdict=verdict, diagnoses=(*log.diagnoses, *extra, *notes)
    )


def drift(
    result: CheckReport,
    baseline: Baseline,
    tolerance: Mapping[str, Tolerance],
    tolerances: Tolerances | None = None,
) -> CheckReport:
    """The check result with drift checks against ``baseline`` added to each log's own:
    tolerances from the command line, else the scenario's for the log's variant."""
    known = sorted(baseline.entries)
    # Keyed as --save-baseline keys them; one log and a baseline of one entry always match.
    alone = len(result.logs) == 1 and len(baseline.entries) == 1
    logs = []
    for log, new in zip(result.logs, entries_of(result), strict=True):
        given = {**parse_tolerances(tolerance_of(tolerances, log), "the scenario"), **tolerance}
        old = next(iter(baseline.entries.values())) if alone else baseline.entries.get(new.key)
        logs.append(_drift_of(log, new, old, known, given))
    verdict = exitcodes.worst([log.verdict for log in logs])
    return dataclasses.replace(
        result, logs=tuple(logs), verdict=verdict, exit_code=exitcodes.for_verdict(verdict)
    )


def apply(result: CheckReport, gate: Gate, tolerances: Tolerances | None = None) -> CheckReport:
    """``--save-baseline`` and ``--baseline`` of check and run: save what the logs showed
    (the checks still decide the exit code), and add drift checks against a baseline. The
    scenario's tolerances (per variant) are kept in a saved baseline; the command line's win
    over them."""
    if gate.save is not None and result.verdict == "pass":
        save(from_report(result, tolerances, str(gate.save)), gate.save)
    elif gate.save is not None:
        # A reference must be evidence that passed: a failing, crashed or unanalyzable run
        # would make every later run look fine against it. Said in every report.
        why = diagnose.make(
            "baseline-not-saved",
            f"{gate.save}: the checks did not pass (verdict {result.verdict}); nothing written",
        )
        logs = tuple(dataclasses.replace(g, diagnoses=(*g.diagnoses, why)) for g in result.logs)
        result = dataclasses.replace(result, logs=logs)
    if gate.baseline is None:
        return result
    # The drift checks run whether or not a baseline was saved: a failing run shows what
    # changed too.
    return drift(result, load_baseline(str(gate.baseline)), gate.tolerance, tolerances)
