"""``kvverify run``: capture plus the very same check.

Each variant runs in its own worker process (a fresh engine per variant); its output goes to
``<out>/<variant>.log``; then every log is checked exactly as ``kvverify check`` would check it
offline, so ``kvverify check <out>/<variant>.log`` repeats the verdict.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from kvverify.check import Inputs, check_paths
from kvverify.engines import base
from kvverify.errors import EngineError, KvverifyError
from kvverify.result import CheckReport
from kvverify.runner.supervise import Progress, RunResult, run_variant
from kvverify.scenario import Scenario, load


@dataclass
class Outcome:
    report: CheckReport
    runs: list[RunResult]
    engine: base.EngineName
    #: The signal that stopped the run (SIGINT for Ctrl-C, SIGTERM, SIGHUP), if one did.
    stopped_by: int | None = None


def run_scenario(
    path: str,
    *,
    variants: tuple[str, ...] = (),
    engine: str = "auto",
    out_dir: Path | None = None,
    timeout: float | None = None,
    dialect: str | None = None,
    progress: Progress | None = None,
) -> Outcome:
    scenario = load(path)
    selected = scenario.select(variants)
    name = base.resolve(engine)
    if dialect is not None and name != "sim":
        raise EngineError(
            "--dialect applies to the reference model only",
            hint="add --engine sim, or drop --dialect",
        )
    out = out_dir or default_out_dir(scenario)
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".kvverify-write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise KvverifyError(
            f"cannot write the logs there: {exc.strerror or exc}",
            where=str(out),
            hint="give a writable directory with --out",
        ) from None
    runs: list[RunResult] = []
    for variant in selected:
        runs.append(
            run_variant(
                path, variant, name, out, timeout=timeout, dialect=dialect, progress=progress
            )
        )
        if runs[-1].stopped_by is not None:
            break  # the user or the CI job asked to stop: no further variant
    report = check_paths([str(r.log) for r in runs], Inputs())
    return Outcome(report, runs, name, runs[-1].stopped_by if runs else None)


def default_out_dir(scenario: Scenario) -> Path:
    return Path("kvverify-out") / scenario.name
