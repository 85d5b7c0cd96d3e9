"""Every output format, rendered from one :class:`~kvverify.result.CheckReport`:
a terminal table, JSON, JUnit XML, GitHub Actions annotations and a Markdown job summary.
Functions here return text; the CLI decides where it goes.
"""

from __future__ import annotations

import json
import math
from xml.etree import ElementTree as ET

import click

from kvverify.result import Check, CheckReport, LogReport, SummaryReport

_STATUS_STYLE = {
    "pass": ("PASS", "green"),
    "fail": ("FAIL", "red"),
    "not_analyzable": ("NOT ANALYZABLE", "yellow"),
    "crashed": ("CRASHED", "red"),
    "interrupted": ("INTERRUPTED", "yellow"),
}
_SEVERITY_STYLE = {"error": "red", "warning": "yellow", "info": "blue"}


def fmt_value(value: float | None) -> str:
    if value is None:
        return "-"
    if math.isnan(value) or math.isinf(value):
        return str(value)
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.4g}"


def _status(status: str) -> str:
    text, colour = _STATUS_STYLE[status]
    return click.style(text, fg=colour, bold=True)


def table(rows: list[list[str]], header: list[str], indent: str = "    ") -> list[str]:
    widths = [max(len(click.unstyle(r[i])) for r in [header, *rows]) for i in range(len(header))]

    def render(row: list[str]) -> str:
        cells = [c + " " * (w - len(click.unstyle(c))) for c, w in zip(row, widths, strict=True)]
        return (indent + "  ".join(cells)).rstrip()

    return [click.style(render(header), dim=True), *(render(r) for r in rows)]


def _engine_line(log: LogReport) -> str:
    e = log.engine
    if e.name == "sim":
        who = "engine: sim (kvverify's reference model, not a GPU run)"
        if e.dialect:
            who += f", {e.dialect} log format"
    elif e.name == "trtllm":
        who = f"engine: TensorRT-LLM {e.version or '(version not printed)'}"
    else:
        who = "engine: not named in the log"
    parts = [who, f"{log.lines} lines"]
    if log.runs > 1:
        parts.append(f"{log.runs} runs")
    parts.extend(log.formats)
    return " · ".join(parts)


def _summary_rows(summaries: list[SummaryReport]) -> list[list[str]]:
    rows = []
    for s in summaries:
        note = "checked" if s.final else ("estimation" if s.estimation else "")
        rows.append(
            [
                str(s.line),
                str(s.segment),
                "-" if s.rank is None else str(s.rank),
                "-" if s.window_size is None else str(s.window_size),
                fmt_value(s.allocated_total_blocks),
                fmt_value(s.allocated_new_blocks),
                fmt_value(s.missed_blocks),
                fmt_value(s.reused_blocks),
                fmt_value(s.cache_hit_rate),
                fmt_value(s.reused_tokens),
                click.style(note, bold=True) if s.final else note,
            ]
        )
    return rows


def _check_rows(checks: list[Check]) -> list[list[str]]:
    rows = []
    for c in checks:
        why = c.reason if c.status == "not_analyzable" else (c.reason if c.reason else "")
        if c.diagnosis:
            why = f"{why} [{c.diagnosis}]" if why else f"[{c.diagnosis}]"
        rows.append([_status(c.status), c.expression, fmt_value(c.observed), why])
    return rows


def terminal(report: CheckReport, *, verbose: bool = False) -> str:
    """The human report. Colour codes are stripped by click when not writing to a terminal."""
    out: list[str] = []
    for log in report.logs:
        out.append(f"{click.style(log.path, bold=True)}  {_status(log.verdict)}")
        out.append("  " + _engine_line(log))
        if log.summaries:
            out.append("  summaries")
            out.extend(
                table(
                    _summary_rows(log.summaries),
                    [
                        "line",
                        "mgr",
                        "rank",
                        "window",
                        "total",
                        "new",
                        "missed",
                        "reused",
                        "hit rate",
                        "reused tokens",
                        "",
                    ],
                )
            )
        if verbose and log.requests:
            out.append("  requests")
            rows = [
                [
                    str(r.line),
                    str(r.segment),
                    str(r.request_id),
                    fmt_value(r.step),
                    "dummy" if r.dummy else "",
                    str(r.input_length),
                    str(r.reused_tokens),
                    fmt_value(r.reused_blocks),
                    fmt_value(r.missed_blocks),
                    fmt_value(r.onboarded_blocks),
                ]
                for r in log.requests
            ]
            out.extend(
                table(
                    rows,
                    [
                        "line",
                        "mgr",
                        "request",
                        "step",
                        "",
                        "input",
                        "reused tok",
                        "reused",
                        "missed",
                        "onboarded",
                    ],
                )
            )
        if log.checks:
            out.append("  checks")
            out.extend(table(_check_rows(log.checks), ["", "expectation", "observed", ""]))
        for d in log.diagnoses:
            colour = _SEVERITY_STYLE[d.severity]
            where = f" (line {d.line})" if d.line else ""
            out.append(f"  {click.style(d.severity, fg=colour)}  {d.code}: {d.title}{where}")
            if d.detail:
                out.append(f"      {d.detail}")
            if d.hint:
                out.append(f"      hint: {d.hint}")
        out.append("")
    out.append(_overall(report))
    return "\n".join(out)


def _overall(report: CheckReport) -> str:
    checks = [c for log in report.logs for c in log.checks]
    counts = {
        s: sum(1 for c in checks if c.status == s) for s in ("pass", "fail", "not_analyzable")
    }
    parts = [f"{counts['pass']} passed", f"{counts['fail']} failed"]
    if counts["not_analyzable"]:
        parts.append(f"{counts['not_analyzable']} not analyzable")
    logs = len(report.logs)
    return (
        f"verdict: {_status(report.verdict)}  ({', '.join(parts)}; {logs} log"
        f"{'s' if logs != 1 else ''}; exit {report.exit_code})"
    )


def to_json(report: CheckReport) -> str:
    data = report.model_dump(mode="json", by_alias=True)
    return json.dumps(data, indent=2, allow_nan=False, default=str) + "\n"


def junit(report: CheckReport) -> str:
    """JUnit XML: a test suite per log, a test case per check. Not analyzable is an error."""
    suites = ET.Element("testsuites", name="kvverify")
    total = {"tests": 0, "failures": 0, "errors": 0}
    for log in report.logs:
        suite = ET.SubElement(suites, "testsuite", name=log.path)
        counts = {"tests": 0, "failures": 0, "errors": 0}
        cases: list[Check | None] = list(log.checks) or [None]
        for c in cases:
            counts["tests"] += 1
            name = c.expression if c is not None else "log is usable"
            case = ET.SubElement(suite, "testcase", name=name, classname=f"kvverify.{log.path}")
            if c is None:
                msg = "; ".join(d.title for d in log.diagnoses) or "no checks"
                ET.SubElement(case, "error", message=msg, type="not_analyzable").text = msg
                counts["errors"] += 1
                continue
            detail = f"observed {fmt_value(c.observed)}; {c.reason}"
            if c.diagnosis:
                detail += f"; diagnosis: {c.diagnosis}"
            if c.status == "fail":
                ET.SubElement(case, "failure", message=detail, type="fail").text = detail
                counts["failures"] += 1
            elif c.status == "not_analyzable":
                ET.SubElement(case, "error", message=c.reason, type="not_analyzable").text = detail
                counts["errors"] += 1
            else:
                ET.SubElement(case, "system-out").text = detail
        if log.verdict in ("crashed", "interrupted"):
            crash = ET.SubElement(
                suite, "testcase", name="engine run", classname=f"kvverify.{log.path}"
            )
            msg = "; ".join(d.title for d in log.diagnoses if d.code.startswith("run-"))
            ET.SubElement(crash, "error", message=msg, type=log.verdict).text = msg
            counts["tests"] += 1
            counts["errors"] += 1
        for k, v in counts.items():
            suite.set(k, str(v))
            total[k] += v
    for k, v in total.items():
        suites.set(k, str(v))
    ET.indent(suites)
    return ET.tostring(suites, encoding="unicode", xml_declaration=True) + "\n"


def _esc(text: str, *, prop: bool = False) -> str:
    text = text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    if prop:
        text = text.replace(":", "%3A").replace(",", "%2C")
    return text


def github_annotations(report: CheckReport) -> str:
    """``::error``/``::warning`` workflow commands for failed and unanalyzable checks."""
    out = []
    for log in report.logs:
        for c in log.checks:
            if c.status == "pass":
                continue
            level = "error"
            title = (
                f"kvverify: {c.expression} {'failed' if c.status == 'fail' else 'not analyzable'}"
            )
            msg = f"observed {fmt_value(c.observed)}. {c.reason}"
            if c.diagnosis:
                msg += f" Diagnosis: {c.diagnosis}."
            props = f"file={_esc(log.path, prop=True)},title={_esc(title, prop=True)}"
            if c.line:
                props += f",line={c.line}"
            out.append(f"::{level} {props}::{_esc(msg)}")
        for d in log.diagnoses:
            if d.severity == "info":
                continue
            props = (
                f"file={_esc(log.path, prop=True)},title={_esc('kvverify: ' + d.code, prop=True)}"
            )
            if d.line:
                props += f",line={d.line}"
            out.append(
                f"::{d.severity} {props}::{_esc(d.title + ('. ' + d.hint if d.hint else ''))}"
            )
    return "\n".join(out) + ("\n" if out else "")


def markdown(report: CheckReport) -> str:
    """A job summary for ``$GITHUB_STEP_SUMMARY``."""
    icon = {"pass": "✅", "fail": "❌", "not_analyzable": "⚠️", "crashed": "💥", "interrupted": "✋"}
    lines = [f"## kvverify: {icon[report.verdict]} {report.verdict}", ""]
    for log in report.logs:
        lines += [f"### `{log.path}` {icon[log.verdict]} {log.verdict}", "", _engine_line(log), ""]
        if log.checks:
            lines += ["| | expectation | observed | why |", "|---|---|---|---|"]
            for c in log.checks:
                why = (c.reason + (f" ({c.diagnosis})" if c.diagnosis else "")).replace("|", "\\|")
                lines.append(
                    f"| {icon[c.status]} | `{c.expression}` | {fmt_value(c.observed)} | {why} |"
                )
            lines.append("")
        for d in log.diagnoses:
            lines.append(
                f"- **{d.severity}** `{d.code}`: {d.title}" + (f" — {d.hint}" if d.hint else "")
            )
        lines.append("")
    return "\n".join(lines) + "\n"
