"""The checker: logs in, a :class:`~kvverify.result.CheckReport` out. Pure except for reading
the files; the CLI prints the report and maps it to an exit code.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from kvverify import __version__, diagnose, exitcodes
from kvverify.errors import KvverifyError
from kvverify.evidence import facts as derive_facts
from kvverify.evidence.attribute import attribute
from kvverify.evidence.events import Event
from kvverify.evidence.facts import Facts, RunRecord, StepPlan
from kvverify.evidence.parallel import events_of
from kvverify.evidence.sources import LogSource
from kvverify.exitcodes import Verdict
from kvverify.expect import DEFAULT, Expectation, Scope, parse_all
from kvverify.metrics import DEFAULT_MATCH_METRICS, ENGINE_METRICS
from kvverify.observe import View, block_counts
from kvverify.result import (
    Check,
    CheckReport,
    Diagnosis,
    EngineInfo,
    LogReport,
    RequestReport,
    Requests,
    Status,
    StepReport,
    SummaryReport,
)
from kvverify.text import number

__all__ = ["Inputs", "StepPlan", "check_events", "check_paths", "check_source", "report"]


@dataclass
class Inputs:
    """Everything a check needs besides the logs."""

    #: ``-e`` expectations (they win over every other source)
    expectations: list[Expectation] = field(default_factory=list)
    #: expectations from ``--scenario`` (second), with the step plan
    scenario_expectations: list[Expectation] = field(default_factory=list)
    steps: StepPlan | None = None
    #: the reference model's prediction for ``{matches: predicted}`` (from ``--scenario``)
    predicted: dict[str, Any] | None = None
    #: processes that scan a large plain log
    jobs: int = 1


def check_paths(paths: Sequence[str], inputs: Inputs) -> CheckReport:
    """Check every log; an unusable one is reported in place, the others still checked."""
    logs: list[LogReport] = []
    for path in paths:
        try:
            logs.append(check_source(LogSource(path), inputs))
        except KvverifyError as exc:
            logs.append(unusable(path, exc))
    return report(logs)


def report(logs: list[LogReport]) -> CheckReport:
    verdict = exitcodes.worst([log.verdict for log in logs])
    return CheckReport(
        kvverify_version=__version__,
        verdict=verdict,
        exit_code=exitcodes.for_verdict(verdict),
        logs=tuple(logs),
        scanner=scanner_name(),
    )


def scanner_name() -> str:
    """Which scanner reads logs in this process: "native" (the C extension) or "python"."""
    from kvverify.evidence.parse import engine_name

    return engine_name()


def unusable(path: str, exc: KvverifyError) -> LogReport:
    d = Diagnosis(
        code="unusable-input",
        severity="error",
        title=exc.message,
        detail=exc.where or "",
        hint=exc.hint or "",
    )
    return _empty(path, "not_analyzable", d)


def not_run(scenario: str, variant: str, exc: KvverifyError) -> LogReport:
    """A variant whose engine could not start, so that every report still says so (a CI job
    reads the JUnit file or the job summary, not stderr)."""
    d = Diagnosis(
        code="run-unavailable",
        severity="error",
        title=_RUN_TITLES["unavailable"],
        detail=exc.message,
        hint=exc.hint or "",
    )
    log = _empty(f"{scenario}/{variant} (not run)", "engine_unavailable", d)
    return dataclasses.replace(log, scenario=scenario, variant=variant)


def _empty(path: str, verdict: Verdict, diagnosis: Diagnosis) -> LogReport:
    return LogReport(
        path=path,
        verdict=verdict,
        scenario=None,
        variant=None,
        engine=EngineInfo(name="unknown"),
        formats=(),
        era=None,
        families=(),
        metrics={},
        rank_metrics={},
        lines=0,
        runs=0,
        ranks=(),
        summaries=(),
        steps=(),
        requests=Requests(),
        checks=(),
        diagnoses=(diagnosis,),
        errors=(),
        error_count=0,
    )


def check_source(src: LogSource, inputs: Inputs) -> LogReport:
    src.check_head()
    report_ = check_events(events_of(src, inputs.jobs), src.name, inputs)
    if src.problem:
        more = (diagnose.make("truncated-log", src.problem),)
        report_ = dataclasses.replace(report_, diagnoses=report_.diagnoses + more)
    return report_


def check_events(events: Iterable[Event], path: str, inputs: Inputs) -> LogReport:
    """Check one log given as its event stream (the pure core, used by tests)."""
    facts = derive_facts.derive(attribute(events), inputs.steps)
    record = facts.record
    expectations = _expectations(inputs, record, path)
    view = View(facts, _run_diagnosis(record) if record.failed else None)
    checks = [_evaluate(exp, view) for exp in expectations]
    if not inputs.expectations:
        from_scenario = inputs.scenario_expectations or inputs.predicted
        predicted = inputs.predicted if from_scenario else _logged_prediction(record)
        checks += _matches(predicted, view)
    for i, (c, exp) in enumerate(zip(checks, expectations, strict=False)):
        if c.status == "fail" and c.diagnosis is None:
            checks[i] = dataclasses.replace(c, diagnosis=diagnose.cause_of(c, exp.metric, facts))
    diagnoses = diagnose.diagnose_log(
        facts, engine_started=not record.failed or facts.final is not None
    )
    ready = record.ready
    if ready is not None and ready.approximate_tokens:
        diagnoses.append(diagnose.make("approximate-tokens", str(ready.tokenizer or "")))
    codes = {d.code for d in diagnoses}
    for c in checks:
        if c.diagnosis and c.diagnosis not in codes and c.diagnosis in diagnose.CATALOG:
            diagnoses.append(diagnose.make(c.diagnosis, c.reason if c.observed is None else ""))
            codes.add(c.diagnosis)
    run_diagnosis = view.run_failure
    if run_diagnosis is not None:
        diagnoses = [run_diagnosis, *(d for d in diagnoses if d.code != run_diagnosis.code)]
    ev = facts.ev
    return LogReport(
        path=path,
        verdict=_verdict(checks, record),
        scenario=record.run.scenario if record.run else None,
        variant=record.run.variant if record.run else None,
        engine=_engine(facts),
        formats=tuple(_formats(facts)),
        era=derive_facts.era(ev, record),
        families=derive_facts.families(ev, record),
        metrics=_metrics(view),
        rank_metrics=_rank_metrics(view),
        lines=ev.shape.lines if ev.shape else 0,
        runs=ev.runs,
        ranks=tuple(ev.ranks()),
        summaries=tuple(_summaries(facts)),
        steps=tuple(_steps(view)),
        requests=Requests(lambda: _requests(facts)),
        checks=tuple(checks),
        diagnoses=tuple(diagnoses),
        errors=tuple(f"{e.line}: {e.text}" for e in ev.errors),
        error_count=ev.error_count,
    )


def _logged_prediction(record: RunRecord) -> dict[str, Any] | None:
    return record.ready.predicted if record.ready is not None else None


_RUN_TITLES = {
    "crashed": "the engine crashed",
    "timeout": "the run did not finish within --timeout and was stopped",
    "interrupted": "the run was interrupted",
    "rejected": "the engine refused the scenario",
    "unavailable": "the engine could not start",
}


def _run_diagnosis(record: RunRecord) -> Diagnosis:
    """How the run ended, from the supervisor's ``exit`` marker and the worker's ``error``."""
    end = record.exit
    assert end is not None
    detail = end.detail
    hint = "the log is kept and analysed as far as it goes; engine errors are listed below"
    if end.status == "interrupted":
        hint = "the log is kept and analysed as far as it goes"
    error = record.error
    if error is not None and end.status != "interrupted":
        detail = f"{error.type}: {error.message}"
        if error.hint:
            hint = error.hint
    return Diagnosis(
        code=f"run-{end.status}",
        severity="error",
        title=_RUN_TITLES.get(end.status, f"the run ended: {end.status}"),
        detail=detail,
        hint=hint,
    )


def _verdict(checks: list[Check], record: RunRecord) -> Verdict:
    status = record.exit.status if record.exit is not None else None
    if status in ("crashed", "timeout"):
        return "crashed"
    if status == "interrupted":
        return "interrupted"
    if status == "unavailable":
        return "engine_unavailable"
    if status == "rejected":
        return "not_analyzable"  # the engine refused the scenario: the input is wrong
    if status is not None and status != "ok":
        return "crashed"  # an ending this kvverify does not know is not a pass
    statuses = {c.status for c in checks}
    if "fail" in statuses:
        return "fail"
    if "not_analyzable" in statuses or not checks:
        return "not_analyzable"
    return "pass"


def _evaluate(exp: Expectation, view: View) -> Check:
    obs = view.observe(exp)
    if obs.value is None:
        return Check(
            expression=exp.text,
            source=exp.source,
            observed=None,
            status="not_analyzable",
            reason=obs.reason,
            diagnosis=obs.cause,
            line=obs.line,
        )
    return Check(
        expression=exp.text,
        source=exp.source,
        observed=obs.value,
        status="pass" if exp.holds(obs.value) else "fail",
        reason=obs.reason,
        line=obs.line,
    )


def _matches(predicted: Any, view: View) -> list[Check]:
    """``{matches: predicted}``: each metric observed against the reference model's number
    (a damaged prediction in the log is said so, not read)."""
    try:
        return _matches_checked(predicted, view)
    except (AttributeError, TypeError, ValueError, KeyError):
        return [
            Check(
                expression="matches predicted",
                source="log",
                observed=None,
                status="not_analyzable",
                reason="the prediction kvverify run wrote into the log is damaged",
            )
        ]


def _matches_checked(predicted: dict[str, Any] | None, view: View) -> list[Check]:
    if not predicted or not predicted.get("match"):
        return []
    if "error" in predicted:
        return [
            Check(
                expression="matches predicted",
                source="scenario",
                observed=None,
                status="not_analyzable",
                reason=f"no prediction: {predicted['error']}",
            )
        ]

    def observe(metric: str, step: int | None) -> float | None:
        scopes = (Scope("step", step),) if step is not None else ()
        return view.observe(Expectation(metric, scopes, metric, ">=", 0)).value

    out = []
    for spec in predicted["match"]:
        for metric, got, want, tol, ok in _compare(spec, predicted, observe):
            where = f"the reference model predicts {number(want)}" + (
                f" ± {number(tol)}" if tol else ""
            )
            if predicted.get("approximate_tokens"):
                where += " (text prompts tokenized approximately)"
            status: Status = "not_analyzable" if ok is None else "pass" if ok else "fail"
            out.append(
                Check(
                    expression=f"{metric} matches predicted",
                    source="scenario",
                    observed=got,
                    status=status,
                    reason=where,
                )
            )
    return out


Comparison = tuple[str, float | None, float | None, float, bool | None]


def _compare(spec: dict[str, Any], predicted: dict[str, Any], observe: Any) -> list[Comparison]:
    """``[(metric, observed, predicted, tolerance, ok)]`` for one ``matches: predicted``
    expectation; ``observe(metric, step)`` returns the observed value or None."""
    out: list[Comparison] = []
    tolerance = spec.get("tolerance") or {}
    for metric in spec.get("metrics") or DEFAULT_MATCH_METRICS:
        tol = float(tolerance.get(metric, 0))
        if metric.startswith("steps."):
            name = metric.removeprefix("steps.")
            for step, values in sorted(
                predicted.get("steps", {}).items(), key=lambda kv: int(kv[0])
            ):
                want = values.get(name)
                got = observe(name, int(step))
                ok = None if got is None or want is None else abs(got - want) <= tol
                out.append((f"step[{step}].{name}", got, want, tol, ok))
        else:
            want = predicted.get("summary", {}).get(metric)
            got = observe(metric, None)
            ok = None if got is None or want is None else abs(got - want) <= tol
            out.append((metric, got, want, tol, ok))
    return out


# -- expectations --------------------------------------------------------------------------------


def _expectations(inputs: Inputs, record: RunRecord, path: str) -> list[Expectation]:
    """In order: -e, --scenario, what kvverify run wrote into the log, "reuse happened"."""
    if inputs.expectations:
        return inputs.expectations
    if inputs.scenario_expectations:
        return inputs.scenario_expectations
    if record.run is not None and record.run.expect:
        try:
            return parse_all([str(t) for t in record.run.expect], "log")
        except KvverifyError as exc:
            exc.where = f"{path}: expectation written by kvverify run ({exc.where})"
            raise
    return parse_all(DEFAULT, "default")


# -- report pieces -------------------------------------------------------------------------------


def _engine(facts: Facts) -> EngineInfo:
    """The model's mark wins: a log the reference model wrote is the model's, whatever banner
    it prints. Else what the run's markers say, else the banner."""
    record, ev = facts.record, facts.ev
    banner = ev.versions[-1].version if ev.versions else None
    if record.model is not None:
        return EngineInfo(
            name="sim",
            version=f"kvverify {record.model.kvverify_version} reference model",
            dialect=record.model.dialect,
            banner=banner,
        )
    run = record.run
    if run is not None and run.engine == "trtllm":
        engine = record.engine
        return EngineInfo(
            name="trtllm", version=engine.engine_version if engine else None, banner=banner
        )
    if banner is not None:
        return EngineInfo(name="trtllm", version=banner, banner=banner)
    return EngineInfo(name="unknown")


def _formats(facts: Facts) -> list[str]:
    ev = facts.ev
    out = []
    for lines, windowed in sorted(ev.summary_formats):
        out.append(f"summary: {lines} lines, {'per window' if windowed else 'no window prefix'}")
    if ev.prints_copies:
        out.append("1.2+ lines (releaseBlocks, copyBlock)")
    if any(r is not None for r in ev.ranks()):
        out.append("rank prefix")
    return out


def _summaries(facts: Facts) -> list[SummaryReport]:
    out = []
    for seg in facts.ev.segments:
        for b in seg.summaries:
            v = b.values

            def num(key: str, values: dict[str, float] = v) -> int | None:
                x = values.get(key)
                return None if x is None or not math.isfinite(x) else int(x)

            out.append(
                SummaryReport(
                    line=b.line,
                    segment=b.segment,
                    rank=b.rank,
                    window_size=b.window,
                    final=seg is facts.final,
                    estimation=facts.is_estimation(seg),
                    allocated_total_blocks=num("allocated_total_blocks"),
                    allocated_new_blocks=num("allocated_new_blocks"),
                    missed_blocks=num("missed_blocks"),
                    reused_blocks=num("reused_blocks"),
                    reused_unique_blocks=num("reused_unique_blocks"),
                    reused_unique_blocks_percent=v.get("reused_unique_blocks_percent"),
                    cache_hit_rate=v.get("cache_hit_rate"),
                    reused_tokens=num("reused_tokens"),
                    reused_tokens_percent=v.get("reused_tokens_percent"),
                )
            )
    out.sort(key=lambda s: s.line)
    return out


def _metrics(view: View) -> dict[str, float | None]:
    """Every engine metric of the final engine, observed the way a check observes it."""
    return {
        name: view.observe(Expectation(name, (), name, ">=", 0)).value for name in ENGINE_METRICS
    }


#: What a baseline keeps of each other rank: its final manager's summary.
_RANK_METRICS = ("missed_blocks", "reused_blocks", "cache_hit_rate", "reused_tokens")


def _rank_metrics(view: View) -> dict[str, dict[str, float | None]]:
    """The summary of every rank's final manager but the lowest's (which ``metrics`` holds),
    observed the way a ``rank[N].`` check observes it."""
    ranks = [r for r in view.ev.ranks() if r is not None][1:]
    return {
        str(r): {
            m: view.observe(Expectation(m, (Scope("rank", r),), m, ">=", 0)).value
            for m in _RANK_METRICS
        }
        for r in ranks
    }


_STEP_METRICS = ("reused_tokens", "reused_blocks", "missed_blocks", "first_token_ms", "latency_ms")


def _steps(view: View) -> Iterator[StepReport]:
    """Each mapped step, observed the way a ``step[N].`` check observes it."""
    for k, req in sorted((view.facts.steps or {}).items()):
        scope = (Scope("step", k),)
        values = {m: view.observe(Expectation(m, scope, m, ">=", 0)).value for m in _STEP_METRICS}
        yield StepReport(step=k, request_id=req.request_id, **values)


def _requests(facts: Facts) -> Iterator[RequestReport]:
    """Every request, made when a report is rendered (not held)."""
    step_of = facts.step_of()
    for seg in facts.ev.segments:
        for r in seg.requests:
            counts = block_counts(r, seg.tokens_per_block)
            yield RequestReport(
                request_id=r.request_id,
                segment=r.segment,
                rank=r.rank,
                line=r.line,
                final=seg is facts.final,
                step=step_of.get(r.seq),
                dummy=facts.is_dummy(r),
                input_length=r.input_length,
                reused_tokens=r.reused_tokens,
                reused_blocks=counts["reused_blocks"],
                partial_reused_blocks=counts["partial_reused_blocks"],
                missed_blocks=counts["missed_blocks"],
                # copyBlock lines exist from 1.2 on: before, the count is unknown, not 0
                onboarded_blocks=None
                if r.onboard_copies is None or not facts.ev.prints_copies
                else max(0, r.onboard_copies - (r.copied or 0)),
                stored_blocks=r.stored_blocks,
            )
