"""``kvverify run``: capture plus the very same check.

Each variant runs in its own worker process (a fresh engine per variant) from a plan resolved
here; its output goes to ``<run dir>/<variant>.log``; then every log is checked exactly as
``kvverify check`` would check it offline, so ``kvverify check <run dir>/<variant>.log``
repeats the verdict.

A run never destroys an earlier run's evidence (:mod:`kvverify.rundir`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from kvverify.check import Inputs, check_paths
from kvverify.engines import base
from kvverify.engines.sim.dialects import DEFAULT_DIALECT
from kvverify.errors import KvverifyError
from kvverify.plan import Plan, Prompt
from kvverify.predict import marker_for
from kvverify.result import CheckReport
from kvverify.rundir import DEFAULT_ROOT, Overwrite, claim_directory
from kvverify.runner.supervise import Progress, RunResult, run_variant
from kvverify.scenario import Scenario, Variant


@dataclass
class Outcome:
    report: CheckReport
    runs: list[RunResult]
    engine: base.EngineName
    #: the directory that holds this run's logs
    directory: Path
    #: The signal that stopped the run (SIGINT for Ctrl-C, SIGTERM, SIGHUP), if one did.
    stopped_by: int | None = None
    #: the scenario's baseline tolerances, per variant
    tolerance: dict[str, dict[str, str]] = field(default_factory=dict)


def plan_for(
    scenario: Scenario,
    variant: Variant,
    engine: base.EngineName,
    dialect: str | None,
    python: str | None = None,
) -> Plan:
    """Everything the worker needs for one variant, resolved here (the worker needs the
    standard library only)."""
    prompts = {
        name: Prompt(
            tokens=None if (ids := p.token_ids()) is None else tuple(ids),
            text=variant.prompt_text(name),
        )
        for name, p in variant.prompts.items()
    }
    return Plan(
        scenario=scenario.name,
        scenario_path=str(Path(scenario.path).resolve()),
        variant=variant.name,
        engine=engine,
        model=variant.engine.model,
        llm_kwargs=variant.engine.kwargs(),
        kv_cache_kwargs=variant.engine.kv_cache.kwargs(),
        sampling_kwargs=variant.sampling.kwargs(),
        max_batch_size=variant.engine.max_batch_size,
        env=dict(variant.engine.env),
        prompts=prompts,
        steps=variant.steps,
        expect=tuple(e.text for e in variant.expect),
        options={"dialect": dialect} if dialect else {},
        predicted=marker_for(variant, dialect or DEFAULT_DIALECT)
        if variant.match_predicted
        else None,
        python=python,
    )


def run_scenario(
    scenario: Scenario,
    *,
    variants: tuple[str, ...] = (),
    engine: str = "auto",
    out_dir: Path | None = None,
    overwrite: Overwrite = "no",
    timeout: float | None = None,
    dialect: str | None = None,
    python: str | None = None,
    progress: Progress | None = None,
    notice: Callable[[str], None] | None = None,
    root: Path = DEFAULT_ROOT,
) -> Outcome:
    """Run a scenario's variants (loaded: validated) and check their logs. The engine is
    resolved and the output directory claimed before any engine starts (without ``out_dir``,
    a new one below ``root/<scenario>/``). Stopped by a signal, the report's exit code is
    still its verdict's: the caller adds the signal's (:func:`~kvverify.exitcodes.for_signal`)
    after any gate."""
    selected = scenario.select(variants)
    name = base.resolve(engine, python=python)
    if dialect is not None and name != "sim":
        raise KvverifyError(
            "--dialect applies to the reference model only",
            hint="add --engine sim, or drop --dialect",
        )
    if name == "sim" and engine == "auto" and notice is not None:
        notice(
            "TensorRT-LLM is not installed: running on kvverify's reference model "
            "(the evidence is the model's, not a GPU's; --engine sim says so on purpose)"
        )
    plans = [plan_for(scenario, v, name, dialect, python) for v in selected]
    directory = claim_directory(
        scenario.name, out_dir, overwrite, [p.variant for p in plans], root=root
    )
    runs: list[RunResult] = []
    for plan in plans:
        runs.append(run_variant(plan, directory, timeout=timeout, python=python, progress=progress))
        if runs[-1].stopped_by is not None or runs[-1].status == "unavailable":
            break  # asked to stop, or the engine cannot start for any variant
    report = check_paths([str(r.log) for r in runs], Inputs())
    stopped_by = runs[-1].stopped_by if runs else None
    tolerance = {variant.name: dict(variant.tolerance) for variant in selected}
    return Outcome(report, runs, name, directory, stopped_by, tolerance)
