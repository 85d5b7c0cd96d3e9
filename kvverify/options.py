"""Options several commands share, defined once, and where their reports go."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import click

from kvverify.errors import KvverifyError

F = TypeVar("F", bound=Callable[..., Any])

FORMATS = ("table", "json")

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
