"""The command line. Each command turns its options into inputs, calls one core function and
maps the result or error to output and an exit code; nothing below this module prints or exits.

Exit codes, one contract for every command: 0 every check passed; 1 a check failed; 2 the input
cannot be used (usage, scenario, expression, unreadable or not-analyzable log); 3 the engine
crashed or timed out, or kvverify itself broke; 130 interrupted (Ctrl-C); a run stopped by
SIGTERM or SIGHUP exits 128 + the signal's number (143, 129) after stopping the engine.
"""

from __future__ import annotations

import functools
import json
import os
import sys
import tempfile
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click

from kvverify import __version__, report
from kvverify.check import EXIT_CRASH, EXIT_INTERRUPTED, Inputs, StepPlan, check_paths
from kvverify.engines.base import ENGINE_CHOICES
from kvverify.engines.base import resolve as resolve_engine
from kvverify.engines.sim.dialects import DEFAULT_DIALECT, DIALECTS
from kvverify.errors import KvverifyError
from kvverify.evidence.parallel import default_jobs
from kvverify.expect import parse_all
from kvverify.metrics import hit_rate
from kvverify.predict import as_dict, predict_scenario
from kvverify.predict import marker_for as predict_marker
from kvverify.report import table as report_table
from kvverify.result import CheckReport
from kvverify.run import run_scenario
from kvverify.scenario import load as load_scenario

F = TypeVar("F", bound=Callable[..., Any])

FORMATS = ("table", "json")


_variants_option = click.option(
    "--variant",
    "variants",
    multiple=True,
    metavar="NAME",
    help="Only this variant (repeatable). Default: all.",
)


@dataclass(frozen=True)
class Output:
    """Where a verdict goes: ``--format`` on stdout, and the report files asked for."""

    fmt: str
    json_file: Path | None
    junit_file: Path | None
    markdown_file: Path | None
    verbose: bool


def _output_options(f: F) -> F:
    """Report options shared by every command that produces a verdict. The command receives
    them as one ``output`` argument, its report files already checked to be writable (before
    any work)."""

    @functools.wraps(f)
    def command(
        *args: Any,
        fmt: str,
        json_file: Path | None,
        junit_file: Path | None,
        markdown_file: Path | None,
        verbose: bool,
        **kwargs: Any,
    ) -> Any:
        check_writable(json_file, junit_file, markdown_file)
        output = Output(fmt, json_file, junit_file, markdown_file, verbose)
        return f(*args, output=output, **kwargs)

    options = [
        click.option(
            "--format",
            "fmt",
            type=click.Choice(FORMATS),
            default="table",
            show_default=True,
            help="What goes to stdout.",
        ),
        click.option(
            "--json",
            "json_file",
            type=click.Path(dir_okay=False, path_type=Path),
            help="Also write the JSON report to this file.",
        ),
        click.option(
            "--junit",
            "junit_file",
            type=click.Path(dir_okay=False, path_type=Path),
            help="Also write a JUnit XML report to this file.",
        ),
        click.option(
            "--markdown",
            "markdown_file",
            type=click.Path(dir_okay=False, path_type=Path),
            help="Also write a Markdown summary to this file (on GitHub Actions it is "
            "appended to $GITHUB_STEP_SUMMARY anyway).",
        ),
        click.option("-v", "--verbose", is_flag=True, help="List every request in the table."),
    ]
    decorated: Any = command
    for option in reversed(options):
        decorated = option(decorated)
    return decorated  # type: ignore[no-any-return]


def check_writable(*paths: Path | None) -> None:
    """Fail before any work when a report file cannot be written."""
    for path in paths:
        if path is None:
            continue
        parent = path.parent if str(path.parent) else Path(".")
        if not parent.is_dir() or not os.access(parent, os.W_OK) or path.is_dir():
            raise KvverifyError(
                "cannot write a report there",
                where=str(path),
                hint="give a file in an existing, writable directory",
            )


def emit(result: CheckReport, output: Output) -> None:
    """Print and write a report in every form asked for."""
    fmt = output.fmt
    if fmt == "json":
        click.echo(report.to_json(result), nl=False)
    else:
        click.echo(report.terminal(result, verbose=output.verbose))
    for path, write in (
        (output.json_file, report.to_json),
        (output.junit_file, report.junit),
        (output.markdown_file, report.markdown),
    ):
        if path is not None:
            _write(path, write(result))
    if os.environ.get("GITHUB_ACTIONS") == "true":
        annotations = report.github_annotations(result)
        if annotations:
            # Workflow commands: on stdout with the table, on stderr when stdout is JSON.
            click.echo(annotations, nl=False, err=fmt == "json")
        summary = os.environ.get("GITHUB_STEP_SUMMARY")
        if summary:
            with open(summary, "a", encoding="utf-8") as fh:
                fh.write(report.markdown(result))


def _write(path: Path, text: str) -> None:
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise KvverifyError(
            exc.strerror or str(exc), where=str(path), hint="choose a writable path"
        ) from None


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="kvverify")
def cli() -> None:
    """Verify TensorRT-LLM KV-cache block reuse and host offloading: a CI gate.

    \b
      kvverify run scenarios/abab.yaml      run a scenario and check what the engine printed
      kvverify check offloading_enabled.log check a saved log, offline

    Exit codes: 0 all checks passed, 1 a check failed, 2 input unusable or not analyzable,
    3 engine crash or internal error, 130 interrupted (a run stopped by SIGTERM: 143).
    """


@cli.command()
@click.argument("logs", nargs=-1, required=True)
@click.option(
    "-e",
    "--expect",
    "expressions",
    multiple=True,
    metavar="EXPR",
    help="An expectation, e.g. 'reused_blocks > 0', 'step[3].reused_tokens >= 16' or a "
    "preset: reuse, no-reuse, offload, no-offload. Repeatable. Default: reuse.",
)
@click.option(
    "--scenario",
    type=click.Path(dir_okay=False),
    metavar="FILE",
    help="Take the expectations and the steps from this scenario.",
)
@click.option("--variant", metavar="NAME", help="The scenario's variant the logs ran.")
@click.option(
    "-j",
    "--jobs",
    type=click.IntRange(min=1),
    default=default_jobs(),
    show_default="the number of CPUs, at most 8",
    help="Processes that scan a large plain log (128 MiB and more).",
)
@_output_options
def check(
    logs: tuple[str, ...],
    expressions: tuple[str, ...],
    scenario: str | None,
    variant: str | None,
    jobs: int,
    output: Output,
) -> None:
    """Check saved TensorRT-LLM logs, offline.

    LOGS are files (plain, .gz, .xz, .bz2 or .zst, recognised by content) or - for stdin.
    Expectations come from -e, else from --scenario (with --variant), else from the log itself
    when kvverify run wrote it, else "reuse happened" (reused_blocks > 0 and cache_hit_rate > 0).

    \b
    Examples:
      kvverify check offloading_enabled.log
      kvverify check -e no-reuse offloading_disabled.log
      kvverify check -e 'cache_hit_rate >= 0.5' --junit report.xml run.log.gz
      kvverify check --scenario scenarios/abab.yaml --variant offload_on enabled.log
      TLLM_LOG_LEVEL=DEBUG python app.py 2>&1 | kvverify check -
    """
    inputs = Inputs(
        expectations=parse_all(expressions, "cli"),
        jobs=jobs,
        list_requests=output.fmt == "json" or output.json_file is not None or output.verbose,
    )
    if scenario is not None:
        inputs = scenario_inputs(scenario, variant, inputs)
    elif variant is not None:
        raise click.UsageError("--variant needs --scenario")
    result = check_paths(list(logs), inputs)
    emit(result, output)
    sys.exit(result.exit_code)


@cli.command()
@click.argument("scenario", required=False, metavar="[SCENARIO]")
@_variants_option
@click.option(
    "--engine",
    type=click.Choice(ENGINE_CHOICES),
    default="auto",
    show_default=True,
    help="trtllm: TensorRT-LLM (never falls back); sim: kvverify's reference model; "
    "auto: TensorRT-LLM when it is installed, else sim.",
)
@click.option(
    "--dialect",
    type=click.Choice(sorted(DIALECTS)),
    default=None,
    help=f"Log format era the reference model writes (sim only; default {DEFAULT_DIALECT}).",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where the logs go. Default: kvverify-out/<scenario name>/.",
)
@click.option(
    "--timeout",
    type=float,
    default=1800.0,
    show_default=True,
    metavar="SECONDS",
    help="Per variant; a run that takes longer is stopped (its whole process group). 0: no limit.",
)
@_output_options
def run(
    scenario: str | None,
    variants: tuple[str, ...],
    engine: str,
    dialect: str | None,
    out_dir: Path | None,
    timeout: float,
    output: Output,
) -> None:
    """Run a scenario on an engine, capture everything it prints, and check it.

    Each variant runs in its own process with TLLM_LOG_LEVEL=DEBUG; its output (and that of
    every process it starts) goes to <out>/<variant>.log, which `kvverify check` can check
    again later with the same verdict. Without SCENARIO, runs the built-in abab scenario
    (TensorRT-LLM's KV-cache offloading example).

    \b
    Examples:
      kvverify run                                   # abab, offloading off and on
      kvverify run scenarios/abab.yaml --variant offload_on --engine trtllm
      kvverify run my.yaml --engine sim --dialect 2026 --junit report.xml
    """
    path = scenario or str(builtin_scenario())
    if engine == "auto" and resolve_engine("auto") == "sim":
        click.echo(
            "kvverify: TensorRT-LLM is not installed: running on kvverify's reference "
            "model (--engine sim)",
            err=True,
        )
    outcome = run_scenario(
        path,
        variants=variants,
        engine=engine,
        out_dir=out_dir,
        timeout=None if timeout <= 0 else timeout,
        dialect=dialect,
        progress=_progress_printer(),
    )
    result = outcome.report
    if outcome.stopped_by is not None:
        # Stopped by a signal: 128 + its number, as a shell reports it (Ctrl-C: 130).
        result = result.model_copy(update={"exit_code": 128 + outcome.stopped_by})
    emit(result, output)
    if output.fmt != "json":
        for r in outcome.runs:
            click.echo(f"log: {r.log}", err=True)
    sys.exit(result.exit_code)


@cli.command()
@click.argument("scenarios", nargs=-1, required=True)
def validate(scenarios: tuple[str, ...]) -> None:
    """Validate scenario files: every problem at once, with file:line:col. Exit 0 or 2.

    \b
    Example:
      kvverify validate scenarios/*.yaml
    """
    failed = 0
    for path in scenarios:
        try:
            s = load_scenario(path)
        except KvverifyError as exc:
            click.echo(exc.render(), err=True)
            failed += 1
            continue
        names = ", ".join(f"{v.name} ({len(v.steps)} steps)" for v in s.variants.values())
        click.echo(f"{path}: ok: {s.name}: {names}")
    sys.exit(2 if failed else 0)


def _progress_printer() -> Callable[[str], None]:
    """A progress line on stderr: rewritten in place on a terminal, one line each otherwise."""
    tty = sys.stderr.isatty()

    def show(text: str) -> None:
        if tty:
            click.echo("\r\x1b[2K" + text, nl=False, err=True)
            if text.endswith(("ok", "crashed", "timeout", "interrupted", "rejected")) or (
                ": " in text and "step" not in text
            ):
                click.echo("", err=True)
        else:
            click.echo(text, err=True)

    return show


def builtin_scenario() -> Path:
    """The scenario ``kvverify run`` runs without an argument (shipped in the package)."""
    return Path(__file__).parent / "data" / "abab.yaml"


def scenario_inputs(path: str, variant: str | None, inputs: Inputs) -> Inputs:
    """Expectations, steps and the model's prediction of one scenario variant."""
    s = load_scenario(path)
    if variant is None:
        if len(s.variants) != 1:
            raise KvverifyError(
                "the scenario has several variants: say which one the logs ran",
                where=path,
                hint="add --variant " + " or --variant ".join(s.variants),
            )
        (v,) = s.variants.values()
    else:
        (v,) = s.select([variant])
    lengths = tuple(
        len(ids) if (ids := v.prompts[st.prompt].token_ids()) is not None else None
        for st in v.steps
    )
    inputs.scenario_expectations = list(v.expect)
    inputs.steps = StepPlan(prompt_lengths=lengths, max_batch_size=v.engine.max_batch_size)
    inputs.predicted = predict_marker(v) if v.match_predicted else None
    return inputs


@cli.command()
@click.argument("scenario", required=False, metavar="[SCENARIO]")
@_variants_option
@click.option(
    "--dialect",
    type=click.Choice(sorted(DIALECTS)),
    default=DEFAULT_DIALECT,
    show_default=True,
    help="Which TensorRT-LLM era's rules (dummy storing, capacity).",
)
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True)
def predict(scenario: str | None, variants: tuple[str, ...], dialect: str, fmt: str) -> None:
    """Show what TensorRT-LLM's V1 block manager should do with a scenario, step by step.

    Per variant and step: blocks looked up, reused (full, partial, copied), missed, onboarded
    from the host pool, offloaded to it and evicted, and the prompt tokens reused; then the
    summary the KV cache manager would print. Runs kvverify's reference model, no GPU.

    \b
    Examples:
      kvverify predict                       # the built-in abab scenario
      kvverify predict scenarios/abab.yaml --variant offload_on --format json
    """
    path = scenario or str(builtin_scenario())
    predictions = [as_dict(p) for p in predict_scenario(path, variants, dialect)]
    if fmt == "json":
        click.echo(json.dumps({"scenario": path, "variants": predictions}, indent=2))
    else:
        click.echo(render_predictions(path, predictions))
    sys.exit(0)


def render_predictions(path: str, predictions: list[dict[str, Any]]) -> str:
    out = [click.style(f"{path}: what the reference model predicts", bold=True)]
    cols = [
        "step",
        "prompt",
        "request",
        "input",
        "reused",
        "full",
        "partial",
        "missed",
        "onboarded",
        "offloaded",
        "evicted",
        "reused tokens",
    ]
    for p in predictions:
        cap = p["capacity"]
        out.append("")
        out.append(
            click.style(f"variant {p['variant']}", bold=True)
            + f"  (GPU pool {cap['primary_blocks']} blocks, host pool "
            f"{cap['secondary_blocks']} blocks, {cap['tokens_per_block']} tokens per "
            f"block, window {cap['window']})"
        )
        rows = [
            [
                str(s["step"]),
                s["prompt"],
                str(s["request_id"]),
                str(s["input_length"]),
                str(s["reused_blocks"]),
                str(s["full_blocks"]),
                str(s["partial_blocks"]),
                str(s["missed_blocks"]),
                str(s["onboarded_blocks"]),
                str(s["offloaded_blocks"]),
                str(s["evicted_blocks"]),
                str(s["reused_tokens"]),
            ]
            for s in p["steps"]
        ]
        out.extend(report_table(rows, cols))
        sm = p["summary"]
        reused, missed = sm["reused_blocks"], sm["missed_blocks"]
        hit = hit_rate(reused, missed)
        out.append(
            f"    summary: reused blocks {reused}, missed blocks {missed}, cache hit rate "
            f"{hit:.2f}, reused tokens {sm['reused_tokens']}, offloaded "
            f"{sm['offloaded_blocks']}, onboarded {sm['onboarded_blocks']}"
        )
        for note in p["notes"]:
            out.append(f"    note: {note}")
    return "\n".join(out)


def _crash(exc: BaseException) -> NoReturn:
    """A bug in kvverify: one line on stderr, the traceback in a file, exit 3."""
    fd, path = tempfile.mkstemp(prefix="kvverify-crash-", suffix=".txt")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(f"kvverify {__version__}\n{' '.join(sys.argv)}\n\n")
        fh.write("".join(traceback.format_exception(exc)))
    click.echo(
        f"kvverify: internal error: {type(exc).__name__}: {exc} (traceback saved to "
        f"{path}; please report it)",
        err=True,
    )
    sys.exit(EXIT_CRASH)


def main(argv: list[str] | None = None) -> None:
    """Console entry point: one error handler for every command."""
    try:
        rv = cli.main(args=argv, prog_name="kvverify", standalone_mode=False)
        sys.exit(rv if isinstance(rv, int) else 0)
    except click.ClickException as exc:  # usage errors: exit 2
        exc.show()
        sys.exit(2)
    except click.exceptions.Abort:
        click.echo("kvverify: interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except KeyboardInterrupt:
        click.echo("kvverify: interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except KvverifyError as exc:
        click.echo(f"kvverify: {exc.render()}", err=True)
        sys.exit(exc.exit_code)
    except BrokenPipeError:
        # stdout closed early (kvverify check ... | head): not an error of ours.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        sys.exit(1)
    except SystemExit:
        raise
    except Exception as exc:
        _crash(exc)
