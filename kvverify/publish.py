"""Where a verdict goes: stdout in the format asked for, the report files asked for, and on
GitHub Actions the annotations and the job summary. One function for every command that
produces a verdict."""

from __future__ import annotations

import os
from pathlib import Path

from kvverify import report
from kvverify.console import console
from kvverify.errors import KvverifyError
from kvverify.options import Output
from kvverify.result import CheckReport


def publish(result: CheckReport, output: Output) -> None:
    """Print and write a report in every form asked for. A closed stdout is not an error:
    the files are written all the same."""
    fmt = output.fmt
    if fmt == "json":
        console.out(report.to_json(result), nl=False)
    else:
        console.out(report.terminal(result, verbose=output.verbose))
    if output.json_file is not None:
        try:
            with output.json_file.open("w", encoding="utf-8") as fh:
                report.write_json(result, fh)
        except OSError as exc:
            raise _unwritable(output.json_file, exc) from None
    for path, render in (
        (output.junit_file, report.junit),
        (output.markdown_file, report.markdown),
    ):
        if path is not None:
            write_text(path, render(result))
    if os.environ.get("GITHUB_ACTIONS") == "true":
        annotations = report.github_annotations(result)
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
                    fh.write(report.markdown(result))
            except OSError as exc:
                raise _unwritable(Path(summary), exc) from None


def write_text(path: Path, text: str) -> None:
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise _unwritable(path, exc) from None


def _unwritable(path: Path, exc: OSError) -> KvverifyError:
    return KvverifyError(exc.strerror or str(exc), where=str(path), hint="choose a writable path")
