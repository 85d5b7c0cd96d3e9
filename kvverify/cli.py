"""The command line: options only. Each command hands its inputs to one function in
:mod:`kvverify.commands`, imported when the command runs (``--help`` imports nothing else),
which returns the exit code; :func:`main` turns errors into one message and the contract's
exit code (:mod:`kvverify.exitcodes`).
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import Any

import click

from kvverify import __version__, exitcodes
from kvverify.console import console
from kvverify.gate.diff import Gate
from kvverify.options import (
    FORMATS,
    Output,
    gate_options,
    jobs_option,
    output_options,
    tolerance_option,
    variants_option,
)

ENGINE_CHOICES = ("auto", "trtllm", "sim")
#: The reference model's log format eras (kvverify.engines.sim.dialects.DIALECTS; a test
#: keeps the two in step) and the one it writes by default.
DIALECTS = ("1.2", "1.2-timestamp", "2024a", "2024b", "2025early", "2025mid", "2026")
DEFAULT_DIALECT = "1.2"


def _version() -> str:
    from kvverify.check import scanner_name

    return f"kvverify {__version__} (log scanner: {scanner_name()})"


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="kvverify", message="%(version)s")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """Verify TensorRT-LLM KV-cache block reuse and host offloading: a CI gate.

    \b
      kvverify run scenarios/abab.yaml      run a scenario and check what the engine printed
      kvverify check offloading_enabled.log check a saved log, offline

    Exit codes: 0 all checks passed, 1 a check failed, 2 input unusable, not analyzable or not
    comparable, 3 the engine crashed or could not start, or an internal error, 130 interrupted
    (a run stopped by SIGTERM: 143, by SIGHUP: 129).
    """


def _show_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value and not ctx.resilient_parsing:
        click.echo(_version())
        ctx.exit(0)


# --version names the scanner too (which needs an import): replace click's default.
cli.params = [p for p in cli.params if p.name != "version"]
cli.params.append(
    click.Option(
        ["--version"],
        is_flag=True,
        expose_value=False,
        is_eager=True,
        callback=_show_version,
        help="Show the version and which log scanner is in use, then exit.",
    )
)


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
@jobs_option
@gate_options
@output_options
def check(
    logs: tuple[str, ...],
    expressions: tuple[str, ...],
    scenario: str | None,
    variant: str | None,
    jobs: int,
    gate: Gate,
    output: Output,
) -> int:
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
      kvverify check --save-baseline baseline.json offloading_enabled.log
      kvverify check --baseline baseline.json new-release.log
      TLLM_LOG_LEVEL=DEBUG python app.py 2>&1 | kvverify check -
    """
    from kvverify.commands import check as command

    return command.main(logs, expressions, scenario, variant, jobs, gate, output)


@cli.command()
@click.argument("scenario", required=False, metavar="[SCENARIO]")
@variants_option
@click.option(
    "--engine",
    type=click.Choice(ENGINE_CHOICES),
    default="auto",
    show_default=True,
    help="trtllm: TensorRT-LLM (never falls back); sim: kvverify's reference model; "
    "auto: TensorRT-LLM when it is installed, else sim, except in CI (CI set): there a "
    "runner without TensorRT-LLM is an error (exit 3).",
)
@click.option(
    "--python",
    "python",
    metavar="PATH",
    help="Run the engine under this interpreter (the environment of the TensorRT-LLM under "
    "test; it needs TensorRT-LLM only, not kvverify).",
)
@click.option(
    "--dialect",
    type=click.Choice(DIALECTS),
    default=None,
    help=f"Log format era the reference model writes (sim only; default {DEFAULT_DIALECT}).",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where the logs go. Default: a new kvverify-out/<scenario>/<date>-<time>/ per run "
    "(kvverify-out/<scenario>/latest points at the newest).",
)
@click.option(
    "--overwrite",
    is_flag=True,
    help="Let --out replace the logs of an earlier run (refused otherwise).",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, max=1e9),
    default=1800.0,
    show_default=True,
    metavar="SECONDS",
    help="Per variant; a run that takes longer is stopped (its whole process group). 0: no limit.",
)
@gate_options
@output_options
def run(
    scenario: str | None,
    variants: tuple[str, ...],
    engine: str,
    python: str | None,
    dialect: str | None,
    out_dir: Path | None,
    overwrite: bool,
    timeout: float,
    gate: Gate,
    output: Output,
) -> int:
    """Run a scenario on an engine, capture everything it prints, and check it.

    Each variant runs in its own process with TLLM_LOG_LEVEL=DEBUG; its output (and that of
    every process it starts) goes to <run dir>/<variant>.log, which `kvverify check` can
    check again later with the same verdict. Without SCENARIO, runs the built-in abab scenario
    (TensorRT-LLM's KV-cache offloading example).

    \b
    Examples:
      kvverify run                                   # abab, offloading off and on
      kvverify run scenarios/abab.yaml --variant offload_on --engine trtllm
      kvverify run my.yaml --engine sim --dialect 2026 --junit report.xml
      kvverify run my.yaml --engine trtllm --python /opt/trtllm-1.3/bin/python
      kvverify run scenarios/abab.yaml --engine trtllm --baseline baselines/abab.json
    """
    from kvverify.commands import run as command

    return command.main(
        scenario, variants, engine, dialect, out_dir, overwrite, timeout, python, gate, output
    )


@cli.command()
@click.argument("old", metavar="OLD")
@click.argument("new", metavar="NEW")
@tolerance_option
@jobs_option
@output_options
def compare(old: str, new: str, tolerance: dict[str, Any], jobs: int, output: Output) -> int:
    """Compare two releases' evidence: what got worse, what got better, what disappeared.

    OLD and NEW are each a baseline file (--save-baseline), a log, or a run directory
    (kvverify-out/<scenario>/<run>; a scenario's directory means its latest run). A metric
    that got worse beyond its tolerance, a step or request whose reuse dropped, or evidence
    that disappeared fails (exit 1); improvements, a new log format era or engine version are
    noted. Sides that cannot be compared (another scenario, the model's evidence against
    TensorRT-LLM's) exit 2.

    \b
    Examples:
      kvverify compare baselines/abab.json kvverify-out/abab/latest
      kvverify compare old-release.log new-release.log --tolerance cache_hit_rate=0.02
      kvverify compare baseline.json run.log --format json --markdown summary.md
    """
    from kvverify.commands import compare as command

    return command.main(old, new, tolerance, jobs, output)


@cli.command()
@click.argument("scenarios", nargs=-1, required=True)
def validate(scenarios: tuple[str, ...]) -> int:
    """Validate scenario files: every problem at once, with file:line:col. Exit 0 or 2.

    \b
    Example:
      kvverify validate scenarios/*.yaml
    """
    from kvverify.commands import validate as command

    return command.main(scenarios)


@cli.command()
@click.argument("scenario", required=False, metavar="[SCENARIO]")
@variants_option
@click.option(
    "--dialect",
    type=click.Choice(DIALECTS),
    default=DEFAULT_DIALECT,
    show_default=True,
    help="Which TensorRT-LLM era's rules (dummy storing, capacity).",
)
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True)
def predict(scenario: str | None, variants: tuple[str, ...], dialect: str, fmt: str) -> int:
    """Show what TensorRT-LLM's V1 block manager should do with a scenario, step by step.

    Per variant and step: blocks looked up, reused (full, partial, copied), missed, onboarded
    from the host pool, offloaded to it and evicted, and the prompt tokens reused; then the
    summary the KV cache manager would print. Runs kvverify's reference model, no GPU.

    \b
    Examples:
      kvverify predict                       # the built-in abab scenario
      kvverify predict scenarios/abab.yaml --variant offload_on --format json
    """
    from kvverify.commands import predict as command
    from kvverify.commands.run import builtin_scenario

    return command.main(scenario or str(builtin_scenario()), variants, dialect, fmt)


def _crash(exc: BaseException) -> int:
    """A bug in kvverify: one line on stderr, the traceback in a file, exit 3."""
    import tempfile
    import traceback

    fd, path = tempfile.mkstemp(prefix="kvverify-crash-", suffix=".txt")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(f"kvverify {__version__}\n{' '.join(sys.argv)}\n\n")
        fh.write("".join(traceback.format_exception(exc)))
    console.err(
        f"kvverify: internal error: {type(exc).__name__}: {exc} (traceback saved to "
        f"{path}; please report it)"
    )
    return exitcodes.ENGINE


def main(argv: list[str] | None = None) -> int:
    """Console entry point: one error handler for every command; returns the exit code."""
    from kvverify.errors import KvverifyError

    console.reset()
    try:
        rv: Any = cli.main(args=argv, prog_name="kvverify", standalone_mode=False)
    except click.exceptions.Abort:
        console.err("kvverify: interrupted")
        return exitcodes.INTERRUPTED
    except KeyboardInterrupt:
        console.err("kvverify: interrupted")
        return exitcodes.INTERRUPTED
    except click.ClickException as exc:  # usage errors: exit 2
        with contextlib.suppress(OSError):
            exc.show()
        return exitcodes.UNUSABLE
    except KvverifyError as exc:
        console.err(f"kvverify: {exc.render()}")
        return exc.exit_code
    except BrokenPipeError:  # stdout closed early (kvverify check ... | head): muted
        return exitcodes.PASS
    except Exception as exc:
        return _crash(exc)
    return rv if isinstance(rv, int) else exitcodes.PASS
