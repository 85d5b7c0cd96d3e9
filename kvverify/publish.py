"""Where a verdict goes: stdout in the format asked for, the report files asked for, and on
GitHub Actions the annotations and the job summary. One function for every command that
produces a verdict."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kvverify import report
from kvverify.console import console
from kvverify.errors import KvverifyError
from kvverify.options import Output
from kvverify.result import CheckReport, CompareReport

if TYPE_CHECKING:
    from _typeshed import SupportsWrite


@dataclass(frozen=True)
class _Renderers:
    """Every form one kind of report takes."""

    terminal: Callable[[Any, bool], str]
    write_json: Callable[[Any, SupportsWrite[str]], object]
    junit: Callable[[Any], str]
    markdown: Callable[[Any], str]
    annotations: Callable[[Any], str]


_CHECK = _Renderers(
    lambda r, verbose: report.terminal(r, verbose=verbose),
    report.write_json,
    report.junit,
    report.markdown,
    report.github_annotations,
)
_COMPARE = _Renderers(
    lambda r, _verbose: report.compare_terminal(r),
    report.write_json,
    report.compare_junit,
    report.compare_markdown,
    report.compare_annotations,
)


def publish(result: CheckReport | CompareReport, output: Output) -> None:
    """Print and write a report in every form asked for. A closed stdout is not an error:
    the files are written all the same."""
    render = _COMPARE if isinstance(result, CompareReport) else _CHECK
    fmt = output.fmt
    if fmt == "json":  # written as it is made: a log's requests are never all in memory
        out = console.stdout_writer()
        render.write_json(result, out)
        out.flush()
    else:
        console.out(render.terminal(result, output.verbose))
    if output.json_file is not None:
        try:
            with output.json_file.open("w", encoding="utf-8") as fh:
                render.write_json(result, fh)
        except OSError as exc:
            raise _unwritable(output.json_file, exc) from None
    for path, make in ((output.junit_file, render.junit), (output.markdown_file, render.markdown)):
        if path is not None:
            write_text(path, make(result))
    if os.environ.get("GITHUB_ACTIONS") == "true":
        annotations = render.annotations(result)
        if annotations:
            # Workflow commands: on stdout with the table, on stderr when stdout is JSON.
            if fmt == "json":
                console.err(annotations, nl=False)
            else:
                console.out(annotations, nl=False)
        summary = os.environ.get("GITHUB_STEP_SUMMARY")
        if summary:
            try:
                with open(summary, "a", encoding="utf-8") as fh:
                    fh.write(render.markdown(result))
            except OSError as exc:
                raise _unwritable(Path(summary), exc) from None


def write_text(path: Path, text: str) -> None:
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise _unwritable(path, exc) from None


def _unwritable(path: Path, exc: OSError) -> KvverifyError:
    return KvverifyError(exc.strerror or str(exc), where=str(path), hint="choose a writable path")
