"""Options several commands share, defined once, and where their reports go."""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import click

from kvverify.errors import KvverifyError
from kvverify.gate.diff import Gate, parse_tolerance

F = TypeVar("F", bound=Callable[..., Any])

FORMATS = ("table", "json")

jobs_option = click.option(
    "-j",
    "--jobs",
    type=click.IntRange(min=1),
    default=lambda: max(1, min(os.cpu_count() or 1, 8)),
    show_default="the number of CPUs, at most 8",
    help="Processes that scan a large plain log (128 MiB and more).",
)

variants_option = click.option(
    "--variant",
    "variants",
    multiple=True,
    metavar="NAME",
    help="Only this variant (repeatable). Default: all.",
)


@dataclass(frozen=True)
class Output:
    """Where a verdict goes: ``--format`` on stdout, and the report files asked for."""

    fmt: str = "table"
    json_file: Path | None = None
    junit_file: Path | None = None
    markdown_file: Path | None = None
    verbose: bool = False


def output_options(f: F) -> F:
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


def check_writable(*paths: Path | None, make_parent: bool = False) -> None:
    """Fail before any work when a report file cannot be written (``make_parent``: create
    its directory first, as for a baseline that goes to a new ``baselines/``)."""
    for path in paths:
        if path is None:
            continue
        parent = path.parent if str(path.parent) else Path(".")
        if make_parent and not parent.exists():
            with contextlib.suppress(OSError):  # a directory that cannot be made: below
                parent.mkdir(parents=True)
        if not parent.is_dir() or not os.access(parent, os.W_OK) or path.is_dir():
            raise KvverifyError(
                "cannot write a report there",
                where=str(path),
                hint="give a file in an existing, writable directory",
            )


def _tolerance(_ctx: click.Context, _param: click.Parameter, values: tuple[str, ...]) -> Any:
    """``--tolerance NAME=VALUE`` (repeatable) -> {name: Tolerance}."""
    out = {}
    for item in values:
        name, sep, value = item.partition("=")
        if not sep:
            raise click.BadParameter(f"{item!r}: write NAME=VALUE, e.g. cache_hit_rate=0.02")
        out[name.strip()] = parse_tolerance(name.strip(), value)
    return out


def gate_options(f: F) -> F:
    """``--baseline``, ``--save-baseline`` and ``--tolerance`` for check and run, handed to
    the command as one ``gate`` argument (the baseline file checked readable, the file to save
    checked writable, before any work)."""

    @functools.wraps(f)
    def command(
        *args: Any,
        baseline: Path | None,
        save_baseline: Path | None,
        tolerance: dict[str, Any],
        **kwargs: Any,
    ) -> Any:
        if (
            baseline is not None
            and save_baseline is not None
            and (baseline.resolve() == save_baseline.resolve())
        ):
            raise click.UsageError(
                "--baseline and --save-baseline name the same file: the run would replace its "
                "own reference and then pass against itself"
            )
        check_writable(save_baseline, make_parent=True)
        if baseline is not None and not baseline.is_file():
            raise KvverifyError(
                "no such baseline file",
                where=str(baseline),
                hint="save one first, from the current release: the same command with "
                "--save-baseline FILE",
            )
        return f(*args, gate=Gate(baseline, save_baseline, tolerance), **kwargs)

    options = [
        click.option(
            "--baseline",
            "baseline",
            type=click.Path(dir_okay=False, path_type=Path),
            metavar="FILE",
            help="Add drift checks against this baseline: reuse may not drop (beyond "
            "--tolerance), evidence may not disappear.",
        ),
        click.option(
            "--save-baseline",
            "save_baseline",
            type=click.Path(dir_okay=False, path_type=Path),
            metavar="FILE",
            help="Write what the logs showed as a baseline, to commit and compare later.",
        ),
        tolerance_option,
    ]
    decorated: Any = command
    for option in reversed(options):
        decorated = option(decorated)
    return decorated  # type: ignore[no-any-return]


tolerance_option = click.option(
    "--tolerance",
    "tolerance",
    multiple=True,
    metavar="NAME=VALUE",
    callback=_tolerance,
    help="How far a metric may move the worse way: an amount (cache_hit_rate=0.02) or a share "
    "of the old value (latency_ms=10%). Repeatable. Default: reuse may not drop at all.",
)
