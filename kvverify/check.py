"""The checker: logs in, a :class:`~kvverify.result.CheckReport` out. Pure except for reading
the files; the CLI prints the report and maps it to an exit code.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from kvverify import __version__, diagnose
from kvverify.errors import KvverifyError
from kvverify.evidence.attribute import Evidence, Request, Segment, attribute
from kvverify.evidence.events import Event
from kvverify.evidence.parallel import events_of
from kvverify.evidence.sources import LogSource
from kvverify.expect import DEFAULT, Expectation, Scope, parse_all
from kvverify.observe import View, block_counts
from kvverify.predict import compare
from kvverify.result import (
    Check,
    CheckReport,
    Diagnosis,
    EngineInfo,
    LogReport,
    RequestReport,
    Status,
    SummaryReport,
    Verdict,
)

#: Exit codes, one contract for every command.
EXIT_PASS, EXIT_FAIL, EXIT_UNUSABLE, EXIT_CRASH, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


@dataclass(frozen=True)
class StepPlan:
    """What a scenario says about its steps, for mapping them to requests."""

    prompt_lengths: tuple[int | None, ...]
    max_batch_size: int | None = None


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
    #: list every request in the report (JSON, --verbose); off saves memory on huge logs
    list_requests: bool = True


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
    verdicts = {log.verdict for log in logs}
    verdict: Verdict
    if "interrupted" in verdicts:
        verdict = "interrupted"
    elif "crashed" in verdicts:
        verdict = "crashed"
    elif "fail" in verdicts:
        verdict = "fail"
    elif "not_analyzable" in verdicts or not logs:
        verdict = "not_analyzable"
    else:
        verdict = "pass"
    return CheckReport(
        kvverify_version=__version__, verdict=verdict, exit_code=exit_code(verdict), logs=logs
    )


def exit_code(verdict: Verdict) -> int:
    """130 interrupted > 3 crashed > 1 a check failed > 2 not analyzable > 0 all passed."""
    return {
        "pass": EXIT_PASS,
        "fail": EXIT_FAIL,
        "not_analyzable": EXIT_UNUSABLE,
        "crashed": EXIT_CRASH,
        "interrupted": EXIT_INTERRUPTED,
    }[verdict]


def unusable(path: str, exc: KvverifyError) -> LogReport:
    d = Diagnosis(
        code="unusable-input",
        severity="error",
        title=exc.message,
        detail=exc.where or "",
        hint=exc.hint or "",
    )
    return LogReport(
        path=path,
        verdict="not_analyzable",
        engine=EngineInfo(name="unknown"),
        formats=[],
        lines=0,
        runs=0,
        ranks=[],
        summaries=[],
        requests=[],
        checks=[],
        diagnoses=[d],
        errors=[],
        error_count=0,
    )


def check_source(src: LogSource, inputs: Inputs) -> LogReport:
    report_ = check_events(events_of(src, inputs.jobs), src.name, inputs)
    if src.problem:
        report_.diagnoses.append(diagnose.make("truncated-log", src.problem))
    return report_


def check_events(events: Iterable[Event], path: str, inputs: Inputs) -> LogReport:
    """Check one log given as its event stream (the pure core, used by tests)."""
    ev = attribute(events)
    markers = _markers_of_last_run(ev)
    run = _last_run_marker(markers)
    exit_marker = _exit_marker(markers)
    status = (exit_marker or {}).get("status")
    failed = exit_marker is not None and status != "ok"
    expectations = _expectations(inputs, run, path)
    view = _view(ev, run, inputs, markers)
    if failed:
        view.run_failure = _run_diagnosis(str(status), exit_marker or {}, markers)
    checks = [_evaluate(exp, view) for exp in expectations]
    if not inputs.expectations:
        checks += _matches(
            inputs.predicted
            if inputs.scenario_expectations or inputs.predicted
            else (run or {}).get("predicted"),
            view,
        )
    diagnoses = diagnose.diagnose_log(
        ev, engine_started=not failed or ev.final_segment() is not None
    )
    for c, exp in zip(checks, expectations, strict=False):
        if c.status == "fail" and c.diagnosis is None:
            c.diagnosis = diagnose.cause_of(c, exp.metric, ev)
    if run is not None and run.get("approximate_tokens"):
        diagnoses.append(diagnose.make("approximate-tokens", str(run.get("tokenizer") or "")))
    codes = {d.code for d in diagnoses}
    for c in checks:
        if c.diagnosis and c.diagnosis not in codes and c.diagnosis in diagnose.CATALOG:
            diagnoses.append(diagnose.make(c.diagnosis, c.reason if c.observed is None else ""))
            codes.add(c.diagnosis)
    verdict = _verdict(checks, exit_marker)
    run_diagnosis = view.run_failure
    if run_diagnosis is not None:
        diagnoses = [run_diagnosis, *(d for d in diagnoses if d.code != run_diagnosis.code)]
    return LogReport(
        path=path,
        verdict=verdict,
        engine=_engine(ev, run),
        formats=_formats(ev),
        lines=ev.shape.lines if ev.shape else 0,
        runs=ev.runs,
        ranks=ev.ranks(),
        summaries=_summaries(ev),
        requests=_requests(ev, view) if inputs.list_requests else [],
        checks=checks,
        diagnoses=diagnoses,
        errors=[f"{e.line}: {e.text}" for e in ev.errors],
        error_count=ev.error_count,
    )


_RUN_TITLES = {
    "crashed": "the engine crashed",
    "timeout": "the run hung and was stopped",
    "interrupted": "the run was interrupted",
    "rejected": "the engine did not start",
}


def _run_diagnosis(
    status: str, exit_marker: dict[str, Any], markers: list[dict[str, Any]]
) -> Diagnosis:
    """How the run ended, from the supervisor's ``exit`` marker and the worker's ``error``."""
    errors = [m for m in markers if m.get("t") == "error"]
    detail = str(exit_marker.get("detail") or "")
    hint = "the log is kept and analysed as far as it goes; engine errors are listed below"
    if errors:
        error = errors[-1]
        detail = f"{error.get('type')}: {error.get('message')}"
        if error.get("hint"):
            hint = str(error["hint"])
    return Diagnosis(
        code=f"run-{status}",
        severity="error",
        title=_RUN_TITLES.get(status, f"the run ended: {status}"),
        detail=detail,
        hint=hint,
    )


def _verdict(checks: list[Check], exit_marker: dict[str, Any] | None) -> Verdict:
    run_status = (exit_marker or {}).get("status")
    if run_status in ("crashed", "timeout"):
        return "crashed"
    if run_status == "interrupted":
        return "interrupted"
    if run_status == "rejected":
        return "not_analyzable"  # the engine refused the scenario: the input is wrong
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


def _matches(predicted: dict[str, Any] | None, view: View) -> list[Check]:
    """``{matches: predicted}``: each metric observed against the reference model's number."""
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
        for metric, got, want, tol, ok in compare(spec, predicted, observe):
            where = f"the reference model predicts {fmt(want)}" + (f" ± {fmt(tol)}" if tol else "")
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


def fmt(value: float | None) -> str:
    if value is None:
        return "nothing"
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


# -- expectations and markers --------------------------------------------------------------------


def _markers_of_last_run(ev: Evidence) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for m in ev.markers:
        if m.data is None:
            continue
        if m.data.get("t") == "run":
            out = []
        out.append(m.data)
    return out


def _last_run_marker(markers: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The last run's ``run`` marker, with what its ``ready`` marker added."""
    if not markers or markers[0].get("t") != "run":
        return None
    info = dict(markers[0])
    for m in markers[1:]:
        if m.get("t") in ("engine", "ready"):
            info.update({k: v for k, v in m.items() if k not in ("t", "v")})
    return info


def _exit_marker(markers: list[dict[str, Any]]) -> dict[str, Any] | None:
    ends = [m for m in markers if m.get("t") == "exit"]
    return ends[-1] if ends else None


def _expectations(inputs: Inputs, run: dict[str, Any] | None, path: str) -> list[Expectation]:
    """In order: -e, --scenario, what kvverify run wrote into the log, "reuse happened"."""
    if inputs.expectations:
        return inputs.expectations
    if inputs.scenario_expectations:
        return inputs.scenario_expectations
    if run is not None and run.get("expect"):
        try:
            return parse_all([str(t) for t in run["expect"]], "log")
        except KvverifyError as exc:
            exc.where = f"{path}: expectation written by kvverify run ({exc.where})"
            raise
    return parse_all(DEFAULT, "default")


def _view(
    ev: Evidence, run: dict[str, Any] | None, inputs: Inputs, markers: list[dict[str, Any]]
) -> View:
    seg = ev.final_segment()
    ends = {int(m["step"]): m for m in markers if m.get("t") == "step_end" and "step" in m}
    plan = inputs.steps
    if run is not None:
        lengths = run.get("prompt_lengths") or []
        plan = StepPlan(
            prompt_lengths=tuple(lengths) if lengths else tuple([None] * int(run.get("steps", 0))),
            max_batch_size=run.get("max_batch_size"),
        )
    view = View(ev)
    view.dummies_known = plan is not None and plan.max_batch_size is not None
    if seg is not None and plan is not None:
        _mark_dummies(seg, plan.max_batch_size)
        view.steps = _map_steps(seg, plan)
        view.step_markers = {step: _step_values(m) for step, m in ends.items()}
    elif plan is None:
        view.steps_reason = (
            "steps need a scenario (--scenario) or a log written by kvverify run; use "
            "request[ID] to address a request by the id TensorRT-LLM printed"
        )
    else:
        view.steps_reason = "the log shows no KV cache manager to map steps to"
    stats = _iteration_offloads([m for m in markers if m.get("t") == "iter_stats"])
    events = _event_offloads([m for m in markers if m.get("t") == "kv_events"])
    if stats is not None:
        view.marker_offloads = (*stats, "iteration statistics of the run")
    elif events is not None:
        view.marker_offloads = (*events, "KV-cache events of the run")
    if seg is not None:
        for s in ev.segments:
            if s.estimation:
                for r in s.requests:
                    r.dummy = True
    return view


def _first_of_several(ev: Evidence, seg: Segment, final: set[int]) -> bool:
    """An earlier manager that comes first in its run on its rank, before the checked one: the
    PyTorch backend's estimation pass, in logs that do not say so."""
    same_run = [s for s in ev.rank_segments(seg.rank) if s.run == seg.run]
    return id(seg) not in final and len(same_run) > 1 and seg is same_run[0]


def _mark_dummies(seg: Segment, max_batch_size: int | None) -> None:
    """Warm-up dummies use ids below max_batch_size (reference §9.3)."""
    if max_batch_size is None:
        return
    for r in seg.requests:
        if r.request_id < max_batch_size:
            r.dummy = True


def _map_steps(seg: Segment, plan: StepPlan) -> dict[int, Request]:
    """Step k (from 1) <-> the k-th real request of the final manager, in order of first
    appearance. Without max_batch_size the last len(steps) requests are the steps (warm-up
    comes first). VSWA prints a request once per window; it counts once."""
    real: list[Request] = []
    seen: set[int] = set()
    for r in seg.requests:
        if r.dummy or id(r) in seen:
            continue
        seen.add(id(r))
        real.append(r)
    count = len(plan.prompt_lengths)
    if plan.max_batch_size is None and len(real) > count:
        real = real[-count:]
    return {k + 1: r for k, r in enumerate(real[:count])}


def _step_values(marker: dict[str, Any]) -> dict[str, float]:
    out: dict[str, float] = {}
    kv = marker.get("kv") or {}
    for key, name in (
        ("num_total_allocated_blocks", "allocated_total_blocks"),
        ("num_new_allocated_blocks", "allocated_new_blocks"),
    ):
        if isinstance(kv.get(key), int | float):
            out[name] = float(kv[key])
    for key in ("cached_tokens", "first_token_ms", "latency_ms"):
        if isinstance(marker.get(key), int | float):
            out[key] = float(marker[key])
    return out


def _event_offloads(markers: list[dict[str, Any]]) -> tuple[int, int] | None:
    """Offloads and onboards from KV-cache events: ``updated`` cache_level 0->1 and 1->0."""
    if not markers:
        return None
    off = on = 0
    for m in markers:
        for event in m.get("events") or []:
            data = (event or {}).get("data") or {}
            level = data.get("cache_level") if data.get("type") == "updated" else None
            if isinstance(level, dict):
                change = (level.get("old_value"), level.get("new_value"))
                off += change == (0, 1)
                on += change == (1, 0)
    return off, on


def _iteration_offloads(markers: list[dict[str, Any]]) -> tuple[int, int] | None:
    off = on = 0
    seen = False
    for m in markers:
        for stat in m.get("stats") or []:
            per_window = (stat or {}).get("kvCacheIterationStats") or {}
            for w in per_window.values():
                if isinstance(w, dict) and "iterOffloadBlocks" in w:
                    seen = True
                    off += int(w.get("iterOffloadBlocks", 0))
                    on += int(w.get("iterOnboardBlocks", 0))
    return (off, on) if seen else None


# -- report pieces -------------------------------------------------------------------------------


def _engine(ev: Evidence, run: dict[str, Any] | None) -> EngineInfo:
    if run is not None and run.get("engine") in ("trtllm", "sim"):
        return EngineInfo(
            name=run["engine"], version=run.get("engine_version"), dialect=run.get("dialect")
        )
    if ev.versions:
        return EngineInfo(name="trtllm", version=ev.versions[-1].version)
    return EngineInfo(name="unknown")


def _formats(ev: Evidence) -> list[str]:
    out = []
    for lines, windowed in sorted(ev.summary_formats):
        out.append(f"summary: {lines} lines, {'per window' if windowed else 'no window prefix'}")
    if ev.prints_copies:
        out.append("1.2+ lines (releaseBlocks, copyBlock)")
    if any(r is not None for r in ev.ranks()):
        out.append("rank prefix")
    return out


def _summaries(ev: Evidence) -> list[SummaryReport]:
    final = {id(s) for r in ev.ranks() if (s := ev.final_segment_of(r)) is not None}
    checked = ev.final_segment()
    out = []
    for seg in ev.segments:
        for b in seg.summaries:
            v = b.values

            def num(key: str, values: dict[str, float] = v) -> int | None:
                x = values.get(key)
                return None if x is None else int(x)

            out.append(
                SummaryReport(
                    line=b.line,
                    segment=b.segment,
                    rank=b.rank,
                    window_size=b.window,
                    final=seg is checked,
                    estimation=seg.estimation or _first_of_several(ev, seg, final),
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


def _requests(ev: Evidence, view: View) -> list[RequestReport]:
    step_of = {id(r): k for k, r in (view.steps or {}).items()}
    out = []
    for seg in ev.segments:
        for r in seg.requests:
            counts = block_counts(r, seg.tokens_per_block)
            out.append(
                RequestReport(
                    request_id=r.request_id,
                    segment=r.segment,
                    rank=r.rank,
                    line=r.line,
                    step=step_of.get(id(r)),
                    dummy=r.dummy,
                    input_length=r.input_length,
                    reused_tokens=r.reused_tokens,
                    reused_blocks=counts["reused_blocks"],
                    partial_reused_blocks=counts["partial_reused_blocks"],
                    missed_blocks=counts["missed_blocks"],
                    onboarded_blocks=None
                    if r.onboard_copies is None
                    else max(0, r.onboard_copies - (r.copied or 0)),
                    stored_blocks=r.stored_blocks,
                )
            )
    return out
