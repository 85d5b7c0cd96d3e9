"""The command line. Each command turns its options into inputs, calls one core function and
maps the result or error to output and an exit code; nothing below this module prints or exits.

Exit codes, one contract for every command: 0 every check passed; 1 a check failed; 2 the input
cannot be used (usage, scenario, expression, unreadable or not-analyzable log); 3 the engine
crashed or timed out, or kvverify itself broke; 130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import os
import sys
import tempfile
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click

from kvverify import __version__, report
from kvverify.check import EXIT_CRASH, EXIT_INTERRUPTED, Inputs, check_paths
from kvverify.errors import KvverifyError
from kvverify.expect import parse_all
from kvverify.result import CheckReport

F = TypeVar("F", bound=Callable[..., Any])

FORMATS = ("table", "json")


def _output_options(f: F) -> F:
    """Report options shared by every command that produces a verdict."""
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
    for option in reversed(options):
        f = option(f)
    return f


def emit(
    result: CheckReport,
    *,
    fmt: str,
    json_file: Path | None,
    junit_file: Path | None,
    markdown_file: Path | None,
    verbose: bool,
) -> None:
    """Print and write a report in every form asked for."""
    if fmt == "json":
        click.echo(report.to_json(result), nl=False)
    else:
        click.echo(report.terminal(result, verbose=verbose))
    for path, text in (
        (json_file, report.to_json(result) if json_file else ""),
        (junit_file, report.junit(result) if junit_file else ""),
        (markdown_file, report.markdown(result) if markdown_file else ""),
    ):
        if path is not None:
            _write(path, text)
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
    3 engine crash or internal error, 130 interrupted.
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
@_output_options
def check(
    logs: tuple[str, ...],
    expressions: tuple[str, ...],
    fmt: str,
    json_file: Path | None,
    junit_file: Path | None,
    markdown_file: Path | None,
    verbose: bool,
) -> None:
    """Check saved TensorRT-LLM logs, offline.

    LOGS are files (plain, .gz, .xz, .bz2 or .zst, recognised by content) or - for stdin.
    Expectations come from -e, else from the log itself when kvverify run wrote it, else
    "reuse happened" (reused_blocks > 0 and cache_hit_rate > 0).

    \b
    Examples:
      kvverify check offloading_enabled.log
      kvverify check -e no-reuse offloading_disabled.log
      kvverify check -e 'cache_hit_rate >= 0.5' --junit report.xml run.log.gz
      TLLM_LOG_LEVEL=DEBUG python app.py 2>&1 | kvverify check -
    """
    inputs = Inputs(expectations=parse_all(expressions, "cli"))
    result = check_paths(list(logs), inputs)
    emit(
        result,
        fmt=fmt,
        json_file=json_file,
        junit_file=junit_file,
        markdown_file=markdown_file,
        verbose=verbose,
    )
    sys.exit(result.exit_code)


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
