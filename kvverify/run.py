"""``kvverify run``: capture plus the very same check.

Each variant runs in its own worker process (a fresh engine per variant) from a plan resolved
here; its output goes to ``<run dir>/<variant>.log``; then every log is checked exactly as
``kvverify check`` would check it offline, so ``kvverify check <run dir>/<variant>.log``
repeats the verdict.

A run never destroys an earlier run's evidence: by default each run gets a directory of its
own, ``kvverify-out/<scenario>/<date>-<time>/``, with ``kvverify-out/<scenario>/latest``
pointing at the newest; ``--out DIR`` that already holds logs is refused unless the user asks
to overwrite them.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from kvverify import exitcodes
from kvverify.check import Inputs, check_paths
from kvverify.engines import base
from kvverify.engines.sim.dialects import DEFAULT_DIALECT
from kvverify.errors import EngineUnavailable, KvverifyError
from kvverify.predict import marker_for
from kvverify.result import CheckReport
from kvverify.runner.plan import Plan, Prompt
from kvverify.runner.supervise import Progress, RunResult, run_variant
from kvverify.scenario import Scenario, Variant, load

#: Where runs go by default, one directory per scenario, one below it per run.
DEFAULT_ROOT = Path("kvverify-out")
LATEST = "latest"


@dataclass
class Outcome:
    report: CheckReport
    runs: list[RunResult]
    engine: base.EngineName
    #: the directory that holds this run's logs
    directory: Path
    #: The signal that stopped the run (SIGINT for Ctrl-C, SIGTERM, SIGHUP), if one did.
    stopped_by: int | None = None


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
    path: str,
    *,
    variants: tuple[str, ...] = (),
    engine: str = "auto",
    out_dir: Path | None = None,
    overwrite: bool = False,
    timeout: float | None = None,
    dialect: str | None = None,
    python: str | None = None,
    progress: Progress | None = None,
    notice: Callable[[str], None] | None = None,
) -> Outcome:
    """Run a scenario's variants and check their logs. The scenario is validated, the engine
    resolved and the output directory claimed before any engine starts."""
    scenario = load(path)
    selected = scenario.select(variants)
    if python is not None and engine == "sim":
        raise KvverifyError(
            "--python runs the worker under TensorRT-LLM's interpreter; the reference model "
            "runs in kvverify's own",
            hint="drop --python, or use --engine trtllm",
        )
    name = base.resolve(engine, python=python)
    if name == "trtllm" and engine == "trtllm" and not base.has_tensorrt_llm(python):
        where = f" under {python}" if python else ""
        raise EngineUnavailable(
            f"TensorRT-LLM is not installed{where} (no module named 'tensorrt_llm')",
            hint=f"install it on this host (see the README), or {base.SIM_HINT}",
        )
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
    directory = claim_directory(scenario, out_dir, overwrite, [p.variant for p in plans])
    runs: list[RunResult] = []
    for plan in plans:
        runs.append(run_variant(plan, directory, timeout=timeout, python=python, progress=progress))
        if runs[-1].stopped_by is not None or runs[-1].status == "unavailable":
            break  # asked to stop, or the engine cannot start for any variant
    report = check_paths([str(r.log) for r in runs], Inputs())
    stopped_by = runs[-1].stopped_by if runs else None
    if stopped_by is not None:
        # Stopped by a signal: 128 + its number, as a shell reports it (Ctrl-C: 130).
        report = dataclasses.replace(report, exit_code=exitcodes.for_signal(stopped_by))
    return Outcome(report, runs, name, directory, stopped_by)


def claim_directory(
    scenario: Scenario, out_dir: Path | None, overwrite: bool, variants: list[str]
) -> Path:
    """The directory this run writes to, created and checked writable before any engine
    starts. Never one that holds an earlier run's logs, unless ``overwrite``."""
    try:
        if out_dir is None:
            directory = _new_run_directory(DEFAULT_ROOT / scenario.name)
        else:
            directory = out_dir
            directory.mkdir(parents=True, exist_ok=True)
            earlier = sorted(p.name for p in directory.glob("*.log"))
            if earlier and not overwrite:
                raise KvverifyError(
                    f"already holds logs of an earlier run ({', '.join(earlier[:4])}"
                    + (", ..." if len(earlier) > 4 else "")
                    + "): a run never replaces evidence",
                    where=str(directory),
                    hint="give a new directory, leave out --out (each run then gets its own), "
                    "or add --overwrite to replace them",
                )
            for variant in variants if overwrite else ():
                (directory / f"{variant}.log").unlink(missing_ok=True)
        probe = directory / ".kvverify-write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise KvverifyError(
            f"cannot write the logs there: {exc.strerror or exc}",
            where=str(out_dir or DEFAULT_ROOT),
            hint="give a writable directory with --out",
        ) from None
    return directory


def _new_run_directory(root: Path) -> Path:
    """``root/<date>-<time>[-n]``, claimed atomically (two runs in one second get two), and
    ``root/latest`` pointing at it."""
    root.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for n in range(1, 1000):
        directory = root / (stamp if n == 1 else f"{stamp}-{n}")
        try:
            directory.mkdir()
        except FileExistsError:
            continue
        break
    else:  # pragma: no cover - a thousand runs in one second
        raise KvverifyError("cannot find a free run directory", where=str(root))
    latest = root / LATEST
    try:
        tmp = root / f".{LATEST}.{os.getpid()}"
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(directory.name, target_is_directory=True)
        tmp.replace(latest)
    except OSError:  # no symlinks here: a file that names it
        (root / f"{LATEST}.txt").write_text(directory.name + "\n", encoding="utf-8")
    return directory
