"""Every output format, rendered from one :class:`~kvverify.result.CheckReport`:
a terminal table, JSON, JUnit XML, GitHub Actions annotations and a Markdown job summary.
Functions here return text (JSON can also be streamed); the CLI decides where it goes.

Text that comes from a log (error lines, expressions written into it, paths) goes through
:func:`kvverify.text.clean` in every human-readable format: a crafted or corrupted log cannot
move the cursor, recolour or retitle the terminal, or break a table. JSON stays strict JSON:
``nan`` and ``inf`` become strings (``docs/json-report.md``).
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
import operator
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, Literal

import click

from kvverify.result import (
    Check,
    CheckReport,
    CompareReport,
    Finding,
    LogReport,
    RequestReport,
    Requests,
    Side,
    SummaryReport,
)
from kvverify.text import clean, nonfinite

if TYPE_CHECKING:
    from xml.etree.ElementTree import Element

    from _typeshed import SupportsWrite

_STATUS_STYLE = {
    "pass": ("PASS", "green"),
    "fail": ("FAIL", "red"),
    "not_analyzable": ("NOT ANALYZABLE", "yellow"),
    "crashed": ("CRASHED", "red"),
    "engine_unavailable": ("ENGINE UNAVAILABLE", "red"),
    "interrupted": ("INTERRUPTED", "yellow"),
}
_SEVERITY_STYLE = {"error": "red", "warning": "yellow", "info": "blue"}


def fmt_value(value: float | None) -> str:
    if value is None:
        return "-"
    if not math.isfinite(value):
        return nonfinite(value)
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


def engine_text(log: LogReport) -> str:
    """Who produced the evidence, in words every report uses."""
    e = log.engine
    if e.name == "sim":
        who = "engine: sim (kvverify's reference model, not a GPU run"
        if e.dialect:
            who += f"; {e.dialect} log format"
        if e.banner:
            who += f", imitating TensorRT-LLM {e.banner}"
        return clean(who + ")")
    if e.name == "trtllm":
        return clean(f"engine: TensorRT-LLM {e.version or '(version not printed)'}")
    return "engine: not named in the log"


def _engine_line(log: LogReport) -> str:
    parts = [engine_text(log), f"{log.lines} lines"]
    if log.runs > 1:
        parts.append(f"{log.runs} runs")
    parts.extend(log.formats)
    return " · ".join(parts)


def _summary_rows(summaries: Sequence[SummaryReport]) -> list[list[str]]:
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


def _check_rows(checks: Sequence[Check]) -> list[list[str]]:
    rows = []
    for c in checks:
        why = clean(c.reason)
        if c.diagnosis:
            why = f"{why} [{c.diagnosis}]" if why else f"[{c.diagnosis}]"
        rows.append([_status(c.status), clean(c.expression, 120), fmt_value(c.observed), why])
    return rows


def terminal(report: CheckReport, *, verbose: bool = False) -> str:
    """The human report. Colour codes are stripped by click when not writing to a terminal."""
    out: list[str] = []
    for log in report.logs:
        out.append(f"{click.style(clean(log.path), bold=True)}  {_status(log.verdict)}")
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
        rows = []
        if verbose:
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
        if rows:
            out.append("  requests")
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
            out.append(f"  {click.style(d.severity, fg=colour)}  {d.code}: {clean(d.title)}{where}")
            if d.detail:
                out.append(f"      {clean(d.detail)}")
            if d.hint:
                out.append(f"      hint: {clean(d.hint)}")
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


def _plain(value: Any) -> Any:
    """A result record as JSON data: records as objects, tuples as arrays, nan and inf as
    strings."""
    if isinstance(value, float):
        return value if math.isfinite(value) else nonfinite(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def _dump(value: Any, indent: int) -> str:
    text = json.dumps(_plain(value), indent=2, allow_nan=False, ensure_ascii=False)
    return text.replace("\n", "\n" + " " * indent)


#: A request is a flat record of ints, bools and nulls (``tests/test_report.py`` holds it to
#: that): it is written on one line by the C encoder, which keeps a report of a dense log,
#: tens of thousands of requests per GiB, about as fast to write as its table.
_REQUEST_FIELDS = tuple(f.name for f in dataclasses.fields(RequestReport))
_request_values = operator.attrgetter(*_REQUEST_FIELDS)
_request_line = json.JSONEncoder(allow_nan=False, ensure_ascii=False).encode


def _request_json(request: RequestReport) -> str:
    return _request_line(dict(zip(_REQUEST_FIELDS, _request_values(request), strict=True)))


def _log_chunks(log: LogReport, indent: int) -> Iterator[str]:
    """One log as JSON, its requests streamed one at a time."""
    pad = " " * (indent + 2)
    yield "{"
    first = True
    for f in dataclasses.fields(log):
        yield ("\n" if first else ",\n") + pad + json.dumps(f.name) + ": "
        first = False
        value = getattr(log, f.name)
        if isinstance(value, Requests):
            yield "["
            sep = "\n"
            for request in value:
                yield sep + pad + "  " + _request_json(request)
                sep = ",\n"
            yield ("\n" + pad + "]") if sep != "\n" else "]"
        else:
            yield _dump(value, indent + 2)
    yield "\n" + " " * indent + "}"


def write_json(report: CheckReport | CompareReport, out: SupportsWrite[str]) -> None:
    """A JSON report (of a check or a comparison), written as it is made: a log's requests
    are never all in memory."""
    out.write("{")
    first = True
    fields = [f.name for f in dataclasses.fields(report)]
    # The contract's order: schema first.
    for name in ("schema", "schema_version", *(n for n in fields if not n.startswith("schema"))):
        out.write(("\n" if first else ",\n") + "  " + json.dumps(name) + ": ")
        first = False
        if isinstance(report, CheckReport) and name == "logs":
            out.write("[")
            sep = "\n"
            for log in report.logs:
                out.write(sep + "    ")
                for chunk in _log_chunks(log, 4):
                    out.write(chunk)
                sep = ",\n"
            out.write("\n  ]" if report.logs else "]")
        else:
            out.write(_dump(getattr(report, name), 2))
    out.write("\n}\n")


def to_json(report: CheckReport) -> str:
    buf = io.StringIO()
    write_json(report, buf)
    return buf.getvalue()


def engine_properties(log: LogReport) -> dict[str, str]:
    """The engine that produced a log's evidence, as JUnit properties."""
    e = log.engine
    props = {"engine": e.name, "engine_description": engine_text(log)}
    if e.version:
        props["engine_version"] = e.version
    if e.dialect:
        props["log_format"] = e.dialect
    if e.banner:
        props["tensorrt_llm_banner"] = e.banner
    return {k: clean(v) for k, v in props.items()}


class _JUnit:
    """A JUnit XML document: suites of test cases, each passed, failed or in error, counted.
    (ElementTree is imported when a JUnit report is asked for, not when kvverify starts.)"""

    def __init__(self, name: str) -> None:
        from xml.etree import ElementTree

        self._et = ElementTree
        self.root = ElementTree.Element("testsuites", name=name)
        self._suites: list[Element] = []

    def suite(self, name: str, properties: dict[str, str]) -> Element:
        suite = self._et.SubElement(self.root, "testsuite", name=clean(name))
        holder = self._et.SubElement(suite, "properties")
        for key, value in properties.items():
            self._et.SubElement(holder, "property", name=key, value=clean(value))
        self._suites.append(suite)
        return suite

    def case(
        self,
        suite: Element,
        name: str,
        classname: str,
        outcome: Literal["pass", "failure", "error"],
        message: str,
        kind: str = "",
    ) -> None:
        sub = self._et.SubElement
        case = sub(suite, "testcase", name=clean(name, 200), classname=classname)
        if outcome == "pass":
            sub(case, "system-out").text = clean(message)
        else:
            sub(case, outcome, message=clean(message), type=kind).text = clean(message)

    def text(self) -> str:
        total = {"tests": 0, "failures": 0, "errors": 0}
        for suite in self._suites:
            counts = {
                "tests": len(suite.findall("testcase")),
                "failures": len(suite.findall("testcase/failure")),
                "errors": len(suite.findall("testcase/error")),
            }
            for key, value in counts.items():
                suite.set(key, str(value))
                total[key] += value
        for key, value in total.items():
            self.root.set(key, str(value))
        self._et.indent(self.root)
        return self._et.tostring(self.root, encoding="unicode", xml_declaration=True) + "\n"


def junit(report: CheckReport) -> str:
    """JUnit XML: a test suite per log, a test case per check. Not analyzable is an error.
    Each suite's properties name the engine that produced the evidence."""
    doc = _JUnit("kvverify")
    for log in report.logs:
        suite = doc.suite(log.path, engine_properties(log))
        classname = f"kvverify.{clean(log.path)}"
        if not log.checks:
            why = "; ".join(d.title for d in log.diagnoses) or "no checks"
            doc.case(suite, "log is usable", classname, "error", why, "not_analyzable")
        for c in log.checks:
            detail = f"observed {fmt_value(c.observed)}; {c.reason}"
            if c.diagnosis:
                detail += f"; diagnosis: {c.diagnosis}"
            outcome: Literal["pass", "failure", "error"] = (
                "failure" if c.status == "fail" else "error" if c.status != "pass" else "pass"
            )
            doc.case(suite, c.expression, classname, outcome, detail, c.status)
        if log.verdict in ("crashed", "interrupted", "engine_unavailable"):
            why = "; ".join(d.title for d in log.diagnoses if d.code.startswith("run-"))
            doc.case(suite, "engine run", classname, "error", why, log.verdict)
    return doc.text()


def _esc(text: str, *, prop: bool = False) -> str:
    """A workflow command's data or property value, escaped as the runner expects."""
    text = text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    if prop:
        text = text.replace(":", "%3A").replace(",", "%2C")
    return clean(text, 2000)


def github_annotations(report: CheckReport) -> str:
    """``::error``/``::warning`` workflow commands for failed and unanalyzable checks, and for
    every diagnosis above info (evidence from the reference model among them)."""
    out = []
    for log in report.logs:
        file = _esc(log.path, prop=True)
        for c in log.checks:
            if c.status == "pass":
                continue
            state = "failed" if c.status == "fail" else "not analyzable"
            title = f"kvverify: {clean(c.expression, 120)} {state}"
            msg = f"observed {fmt_value(c.observed)}. {c.reason}"
            if c.diagnosis:
                msg += f" Diagnosis: {c.diagnosis}."
            props = f"file={file},title={_esc(title, prop=True)}"
            if c.line:
                props += f",line={c.line}"
            out.append(f"::error {props}::{_esc(msg)}")
        for d in log.diagnoses:
            if d.severity == "info":
                continue
            props = f"file={file},title={_esc('kvverify: ' + d.code, prop=True)}"
            if d.line:
                props += f",line={d.line}"
            text = (
                d.title + (f": {d.detail}" if d.detail else "") + (f". {d.hint}" if d.hint else "")
            )
            out.append(f"::{d.severity} {props}::{_esc(text)}")
    return "\n".join(out) + ("\n" if out else "")


_ICON = {
    "pass": "✅",
    "fail": "❌",
    "not_analyzable": "⚠️",
    "crashed": "💥",
    "engine_unavailable": "🚫",
    "interrupted": "✋",
}


def md_text(text: str, limit: int = 400) -> str:
    """Log-derived text for a Markdown table cell: cleaned, pipes and backticks harmless."""
    return clean(text, limit).replace("|", "\\|").replace("`", "'")


def markdown(report: CheckReport) -> str:
    """A job summary for ``$GITHUB_STEP_SUMMARY``."""
    lines = [f"## kvverify: {_ICON[report.verdict]} {report.verdict}", ""]
    for log in report.logs:
        head = f"### `{md_text(log.path)}` {_ICON[log.verdict]} {log.verdict}"
        lines += [head, "", md_text(_engine_line(log), 1000), ""]
        if log.engine.name == "sim":
            lines += ["**The evidence is kvverify's reference model's, not TensorRT-LLM's.**", ""]
        if log.checks:
            lines += ["| | expectation | observed | why |", "|---|---|---|---|"]
            for c in log.checks:
                why = md_text(c.reason + (f" ({c.diagnosis})" if c.diagnosis else ""))
                lines.append(
                    f"| {_ICON[c.status]} | `{md_text(c.expression, 120)}` | "
                    f"{fmt_value(c.observed)} | {why} |"
                )
            lines.append("")
        for d in log.diagnoses:
            lines.append(
                f"- **{d.severity}** `{d.code}`: {md_text(d.title)}"
                + (f" — {md_text(d.hint)}" if d.hint else "")
            )
        lines.append("")
    return "\n".join(lines) + "\n"


# -- comparisons -----------------------------------------------------------------------------------

_FINDING_STYLE = {"fail": ("FAIL", "red"), "pass": ("ok", "green"), "note": ("note", "blue")}
_COMPARE_ICON = {"pass": "✅", "fail": "❌", "not_comparable": "⚠️", "note": "ℹ️"}


def _finding_value(value: float | str | None) -> str:
    if value is None:
        return "-"
    if isinstance(value, str):
        return clean(value, 60)
    return fmt_value(float(value))


def _delta(f: Finding) -> str:
    if f.delta is None:
        return ""
    return ("+" if f.delta > 0 else "") + fmt_value(f.delta)


def _side_text(side: Side) -> str:
    engines = ", ".join(side.engines) or "no engine named"
    count = len(side.entries)
    what = {"baseline": "baseline", "log": "log", "run": "run directory"}[side.kind]
    return clean(f"{side.source} ({what}, {count} entr{'y' if count == 1 else 'ies'}; {engines})")


def _by_entry(report: CompareReport) -> dict[str, list[Finding]]:
    out: dict[str, list[Finding]] = {}
    for f in report.findings:
        out.setdefault(f.entry, []).append(f)
    return out


def _compare_verdict(report: CompareReport) -> str:
    if report.verdict == "not_comparable":
        return click.style("NOT COMPARABLE", fg="yellow", bold=True)
    return _status(report.verdict)


def compare_terminal(report: CompareReport) -> str:
    out = [
        click.style("kvverify compare", bold=True) + f"  {_compare_verdict(report)}",
        f"  old: {_side_text(report.old)}",
        f"  new: {_side_text(report.new)}",
    ]
    if report.reason:
        out.append(f"  {click.style('not comparable', fg='yellow')}: {clean(report.reason)}")
    for entry, findings in _by_entry(report).items():
        out.append(f"  {click.style(clean(entry), bold=True)}")
        rows = []
        for f in findings:
            text, colour = _FINDING_STYLE[f.status]
            rows.append(
                [
                    click.style(text, fg=colour, bold=f.status == "fail"),
                    clean(f.name, 60),
                    _finding_value(f.old),
                    _finding_value(f.new),
                    _delta(f),
                    f.tolerance if f.tolerance is not None else "",
                    clean(f.message) if f.status != "pass" else "",
                ]
            )
        out.extend(table(rows, ["", "what", "old", "new", "delta", "tolerance", ""]))
    counts = {s: sum(1 for f in report.findings if f.status == s) for s in ("fail", "note")}
    out.append("")
    out.append(
        f"verdict: {_compare_verdict(report)}  ({counts['fail']} failed, {counts['note']} "
        f"noted; exit {report.exit_code})"
    )
    return "\n".join(out)


def compare_markdown(report: CompareReport) -> str:
    """The side-by-side table a reviewer reads in the job summary."""
    lines = [
        f"## kvverify compare: {_COMPARE_ICON[report.verdict]} {report.verdict}",
        "",
        f"- old: {md_text(_side_text(report.old))}",
        f"- new: {md_text(_side_text(report.new))}",
        "",
    ]
    if report.reason:
        lines += [f"**Not comparable:** {md_text(report.reason)}", ""]
    for entry, findings in _by_entry(report).items():
        lines += [
            f"### `{md_text(entry)}`",
            "",
            "| | what | old | new | Δ | tolerance | note |",
            "|---|---|---|---|---|---|---|",
        ]
        for f in findings:
            lines.append(
                f"| {_COMPARE_ICON[f.status]} | `{md_text(f.name, 80)}` | "
                f"{md_text(_finding_value(f.old))} | {md_text(_finding_value(f.new))} | "
                f"{_delta(f)} | {f.tolerance or ''} | "
                f"{md_text(f.message) if f.status != 'pass' else ''} |"
            )
        lines.append("")
    return "\n".join(lines) + "\n"


def compare_junit(report: CompareReport) -> str:
    """A test suite per entry, a test case per finding; a failed finding is a failure."""
    doc = _JUnit("kvverify compare")
    sides = {"old": _side_text(report.old), "new": _side_text(report.new)}
    groups = _by_entry(report) or {"comparison": []}
    for entry, findings in groups.items():
        suite = doc.suite(entry, sides)
        if report.reason:
            doc.case(
                suite, "comparable", "kvverify.compare", "error", report.reason, "not_comparable"
            )
        for f in findings:
            outcome: Literal["pass", "failure"] = "failure" if f.status == "fail" else "pass"
            doc.case(suite, f.name, f"kvverify.compare.{f.kind}", outcome, f.message, f.status)
    return doc.text()


def compare_annotations(report: CompareReport) -> str:
    out = []
    file = _esc(report.new.source, prop=True)
    if report.reason:
        out.append(
            f"::error file={file},title=kvverify compare: not comparable::{_esc(report.reason)}"
        )
    for f in report.findings:
        if f.status == "pass":
            continue
        level = "error" if f.status == "fail" else "notice"
        title = _esc(f"kvverify compare: {f.entry}: {f.name}", prop=True)
        out.append(f"::{level} file={file},title={title}::{_esc(f.message)}")
    return "\n".join(out) + ("\n" if out else "")
