"""``kvverify run``: run a scenario, capture everything, check it the same way."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from kvverify import exitcodes
from kvverify.check import not_run, report
from kvverify.console import console
from kvverify.errors import EngineUnavailable
from kvverify.gate.diff import Gate
from kvverify.options import Output
from kvverify.publish import publish
from kvverify.run import run_scenario
from kvverify.runner.supervise import Event
from kvverify.scenario import load
from kvverify.text import clean


def builtin_scenario() -> Path:
    """The scenario ``kvverify run`` runs without an argument (shipped in the package)."""
    return Path(__file__).resolve().parent.parent / "data" / "abab.yaml"


def main(
    scenario: str | None,
    variants: tuple[str, ...],
    engine: str,
    dialect: str | None,
    out_dir: Path | None,
    overwrite: bool,
    timeout: float,
    python: str | None,
    gate: Gate,
    output: Output,
) -> int:
    chosen = load(scenario or str(builtin_scenario()))
    try:
        outcome = run_scenario(
            chosen,
            variants=variants,
            engine=engine,
            out_dir=out_dir,
            overwrite="run" if overwrite else "no",
            timeout=None if timeout <= 0 else timeout,
            dialect=dialect,
            python=python,
            progress=Progress(),
            notice=lambda text: console.err(f"kvverify: {text}"),
        )
    except EngineUnavailable as exc:  # a broken runner: said in every report, exit 3
        console.err(f"kvverify: {exc.render()}")
        logs = [not_run(chosen.name, v.name, exc) for v in chosen.select(variants)]
        publish(report(logs), output)
        return exitcodes.ENGINE
    result = gate.apply(outcome.report, outcome.tolerance)
    if outcome.stopped_by is not None:
        # Stopped by a signal: 128 + its number, as a shell reports it (Ctrl-C: 130).
        result = dataclasses.replace(result, exit_code=exitcodes.for_signal(outcome.stopped_by))
    publish(result, output)
    if output.fmt != "json":
        console.err(f"logs: {outcome.directory}")
    return result.exit_code


class Progress:
    """A progress line on stderr: rewritten in place on a terminal, a line each otherwise."""

    def __init__(self) -> None:
        self.tty = console.err_is_tty

    def __call__(self, event: Event) -> None:
        text, final = self.text(event)
        if self.tty:
            console.err("\r\x1b[2K" + text, nl=final)
        else:
            console.err(text)

    @staticmethod
    def text(event: Event) -> tuple[str, bool]:
        """The line for an event, and whether it is the variant's last."""
        head = f"[{event.variant}]"
        if event.what == "starting":
            return f"{head} starting {event.engine}", False
        if event.what == "step":
            return f"{head} step {event.step}/{event.steps}", False
        if event.what == "shutdown":
            return f"{head} shutting down (the KV cache summary prints now)", False
        detail = f": {clean(event.detail)}" if event.detail and event.status != "ok" else ""
        return f"{head} {event.status}{detail}", True
