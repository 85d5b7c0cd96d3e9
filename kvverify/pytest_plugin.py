"""kvverify scenarios as pytest tests: ``pytest --kvverify [--kvverify-engine E] PATHS``.

Scenario files (``*.yaml``, ``*.yml`` whose top-level keys include ``schema_version`` and
``steps`` or ``prompts``) under the paths given become one test per variant,
``abab.yaml::offload_on``. Each test is ``kvverify run SCENARIO --variant NAME``: a fresh
engine in a worker process, the log checked exactly as ``kvverify check`` checks it; it
passes when the verdict is pass. A failure shows kvverify's check table and where the log is;
the JUnit report (``--junitxml``) names, per test case, the engine that produced the evidence
and the log. All the variants of one scenario file share one run directory per session,
``kvverify-out/<scenario>/<date>-<time>/``, as after ``kvverify run``.

Registered as a ``pytest11`` entry point, so pytest imports this module in every session of
every project where kvverify is installed: the import is cheap (pytest and the standard
library; kvverify's own modules are imported inside the hooks), and without ``--kvverify``
no hook does anything.
"""

from __future__ import annotations

import os
import re
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from _pytest._code.code import ReprFileLocation, TerminalRepr

if TYPE_CHECKING:
    from collections.abc import Iterator

    from _pytest._io import TerminalWriter

    from kvverify.errors import KvverifyError
    from kvverify.result import CheckReport, LogReport
    from kvverify.run import Outcome

#: ``kvverify run --engine`` (kvverify.engines.base.ENGINE_CHOICES; a test keeps them equal).
ENGINES = ("auto", "trtllm", "sim")
#: ``kvverify run --timeout``'s default, per variant.
DEFAULT_TIMEOUT = 1800.0
#: The test of a scenario file that does not validate (it has no variants to name one by).
INVALID = "validate"
SUFFIXES = (".yaml", ".yml")
#: How much of a YAML file the sniff reads (scenario files are far smaller).
SNIFF_BYTES = 1 << 20


def _top_key(*names: str) -> re.Pattern[str]:
    keys = "|".join(f"{q}{n}{q}" for n in names for q in ("", "'", '"'))
    return re.compile(rf"^(?:{keys})[ \t]*:", re.M)


_SCHEMA_VERSION = _top_key("schema_version")
_STEPS_OR_PROMPTS = _top_key("steps", "prompts")


def looks_like_scenario(path: Path) -> bool:
    """A cheap sniff, without parsing YAML: top-level ``schema_version`` and ``steps`` or
    ``prompts`` keys (CI configs, compose files and other YAML have no such pair)."""
    try:
        with path.open("rb") as fh:
            head = fh.read(SNIFF_BYTES)
    except OSError:
        return False
    text = head.decode("utf-8-sig", errors="replace")
    return bool(_SCHEMA_VERSION.search(text) and _STEPS_OR_PROMPTS.search(text))


# -- options ---------------------------------------------------------------------------------


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("kvverify", "kvverify: scenarios as tests")
    group.addoption(
        "--kvverify",
        action="store_true",
        default=False,
        help="Collect kvverify scenario files (*.yaml, *.yml) from the paths given: one test "
        "per variant (abab.yaml::offload_on). Without it, the plugin does nothing.",
    )
    group.addoption(
        "--kvverify-engine",
        choices=ENGINES,
        default=None,
        help="The engine the scenarios run on (default: the kvverify_engine ini value, else "
        "auto). auto is TensorRT-LLM when installed, else the reference model, except in CI "
        "(CI set): there it never falls back, and each test fails saying so. sim runs the "
        "reference model on purpose.",
    )
    group.addoption(
        "--kvverify-baseline",
        metavar="DIR",
        default=None,
        help="Gate against baselines: DIR/<scenario name>.json, as kvverify run "
        "--save-baseline writes it. A test fails when its scenario's file or its variant's "
        "entry is missing (use --kvverify-save-baseline to record them).",
    )
    group.addoption(
        "--kvverify-save-baseline",
        action="store_true",
        default=False,
        help="Record, instead of gating: write each passing variant's entry into "
        "DIR/<scenario name>.json (created, or refreshed keeping the other entries). "
        "Needs --kvverify-baseline DIR.",
    )
    group.addoption(
        "--kvverify-out",
        metavar="DIR",
        default=None,
        help="Where run directories go: DIR/<scenario>/<date>-<time>/ "
        "(default: kvverify-out, as kvverify run).",
    )
    group.addoption(
        "--kvverify-timeout",
        metavar="SECONDS",
        type=float,
        default=DEFAULT_TIMEOUT,
        help=f"Stop a variant's engine after this long: a failure (default {DEFAULT_TIMEOUT:g}; "
        "0: no limit).",
    )
    parser.addini(
        "kvverify_engine",
        "The default of --kvverify-engine (auto, trtllm or sim).",
        default="auto",
    )


@dataclass
class _Ran:
    """One variant that ran, for the session's summary."""

    nodeid: str
    engine: str
    directory: str


@dataclass
class Settings:
    """The options of a ``--kvverify`` session, resolved once; and what the session did."""

    engine: str
    out_root: Path
    timeout: float | None
    baseline_dir: Path | None
    save_baseline: bool
    invocation_dir: Path
    ran: list[_Ran] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    saved: dict[str, set[str]] = field(default_factory=dict)

    def shown(self, path: Path) -> str:
        """A path as reports show it: relative to where pytest was started, if inside."""
        try:
            return str(path.relative_to(self.invocation_dir))
        except ValueError:
            return str(path)

    def baseline_file(self, scenario: str) -> Path | None:
        return None if self.baseline_dir is None else self.baseline_dir / f"{scenario}.json"


_SETTINGS = pytest.StashKey[Settings]()


def pytest_configure(config: pytest.Config) -> None:
    if not config.getoption("kvverify"):
        return
    here = config.invocation_params.dir
    engine = config.getoption("kvverify_engine") or str(config.getini("kvverify_engine"))
    if engine not in ENGINES:
        raise pytest.UsageError(
            f"kvverify_engine = {engine!r} in the ini file: choose {', '.join(ENGINES)}"
        )
    baseline = config.getoption("kvverify_baseline")
    save = bool(config.getoption("kvverify_save_baseline"))
    if save and baseline is None:
        raise pytest.UsageError(
            "--kvverify-save-baseline needs --kvverify-baseline DIR (where the files go)"
        )
    timeout = float(config.getoption("kvverify_timeout"))
    out = config.getoption("kvverify_out")
    config.stash[_SETTINGS] = Settings(
        engine=engine,
        out_root=here / (out if out is not None else "kvverify-out"),
        timeout=None if timeout <= 0 else timeout,
        baseline_dir=None if baseline is None else here / baseline,
        save_baseline=save,
        invocation_dir=here,
    )


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> ScenarioFile | None:
    if _SETTINGS not in parent.config.stash or file_path.suffix not in SUFFIXES:
        return None
    # A YAML file named on the command line is a scenario by intent: one that does not
    # validate is a failing test that says why, not a silent "no tests ran".
    if not (parent.session.isinitpath(file_path) or looks_like_scenario(file_path)):
        return None
    file: ScenarioFile = ScenarioFile.from_parent(parent, path=file_path)
    return file


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    settings = terminalreporter.config.stash.get(_SETTINGS, None)
    if settings is None or not (settings.ran or settings.notices):
        return
    terminalreporter.write_sep("-", "kvverify")
    for notice in dict.fromkeys(settings.notices):
        terminalreporter.write_line(f"kvverify: {notice}")
    engines: dict[str, int] = {}
    directories: dict[str, int] = {}
    for ran in settings.ran:
        engines[ran.engine] = engines.get(ran.engine, 0) + 1
        directories[ran.directory] = directories.get(ran.directory, 0) + 1
    for engine, count in engines.items():
        who = "kvverify's reference model, not a GPU run" if engine == "sim" else "TensorRT-LLM"
        terminalreporter.write_line(f"engine: {engine} ({who}): {_variants(count)}")
    for directory, count in directories.items():
        terminalreporter.write_line(f"logs: {directory} ({_variants(count)})")
    for path, variants in settings.saved.items():
        terminalreporter.write_line(f"baseline written: {path} ({', '.join(sorted(variants))})")


def _variants(count: int) -> str:
    return f"{count} variant{'s' if count != 1 else ''}"


# -- collection ------------------------------------------------------------------------------


class ScenarioFile(pytest.File):
    """A scenario file: one test per variant (``default`` when it has none)."""

    #: the scenario's name (None: the file does not validate)
    scenario: str | None = None
    #: The session's run directory for this file: claimed by its first test that runs (after
    #: the engine is known to start: a broken runner leaves no empty directories behind).
    directory: Path | None = None

    def collect(self) -> Iterator[ScenarioItem]:
        from kvverify.errors import KvverifyError
        from kvverify.scenario import load

        try:
            scenario = load(self.path)
        except KvverifyError as exc:
            yield ScenarioItem.from_parent(self, name=INVALID, variant=None, problem=exc)
            return
        self.scenario = scenario.name
        for name in scenario.variants:
            yield ScenarioItem.from_parent(self, name=name, variant=name)


class Failure(Exception):
    """A scenario test that failed: a headline (the short summary, JUnit's message) and the
    full text (kvverify's report)."""

    def __init__(self, headline: str, text: str) -> None:
        super().__init__(headline)
        self.headline = headline
        self.text = text


class FailureRepr(TerminalRepr):
    """The failure as pytest shows it: kvverify's own report, no Python traceback."""

    def __init__(self, path: Path, failure: Failure) -> None:
        self.text = failure.text
        # What the short test summary, --tb=line and JUnit's failure message read.
        self.reprcrash = ReprFileLocation(str(path), 1, failure.headline)

    def toterminal(self, tw: TerminalWriter) -> None:
        for line in self.text.splitlines():
            tw.line(line)


class ScenarioItem(pytest.Item):
    """One variant of a scenario: ``kvverify run SCENARIO --variant NAME``."""

    def __init__(
        self, *, variant: str | None, problem: KvverifyError | None = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.variant = variant
        self.problem = problem

    @property
    def file(self) -> ScenarioFile:
        assert isinstance(self.parent, ScenarioFile)
        return self.parent

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, None, f"kvverify: {self.path.name}::{self.name}"

    def runtest(self) -> None:
        if self.problem is not None or self.variant is None:
            assert self.problem is not None
            raise Failure(f"invalid scenario: {self.problem.message}", self.problem.render())
        settings = self.config.stash[_SETTINGS]
        scenario = self.file.scenario
        assert scenario is not None
        key = f"{scenario}/{self.variant}"
        self.user_properties.append(("engine_requested", settings.engine))
        baseline = settings.baseline_file(scenario)
        if baseline is not None and not settings.save_baseline:
            self._require_baseline(baseline, key, settings)
        outcome = self._run(settings)
        report = outcome.report
        notes: list[str] = []
        if baseline is not None and settings.save_baseline:
            if report.verdict == "pass":
                _save_entry(baseline, report, outcome.tolerance)
                settings.saved.setdefault(settings.shown(baseline), set()).add(self.variant)
            else:
                notes.append(f"baseline: not written for {key} (its checks did not pass)")
        elif baseline is not None and report.verdict in ("pass", "fail", "not_analyzable"):
            from kvverify.gate.diff import Gate

            report = Gate(baseline=baseline).apply(report, outcome.tolerance)
        if report.verdict != "pass":
            raise Failure(_headline(report, outcome), self._text(report, outcome, notes))

    def _run(self, settings: Settings) -> Outcome:
        from kvverify.run import run_scenario
        from kvverify.scenario import load

        assert self.variant is not None
        notices: list[str] = []
        outcome = run_scenario(
            load(self.path),
            variants=(self.variant,),
            engine=settings.engine,
            out_dir=self.file.directory,
            # The directory is this session's own: a variant's log is only ever replaced
            # when the same test runs again in the same session.
            overwrite="variants",
            timeout=settings.timeout,
            notice=notices.append,
            root=settings.out_root,
        )
        self.file.directory = outcome.directory
        # kvverify's notices name its own options; here they are the plugin's.
        settings.notices += [n.replace("--engine sim", "--kvverify-engine sim") for n in notices]
        shown = settings.shown(outcome.directory)
        self._record(outcome, shown, settings)
        settings.ran.append(_Ran(self.nodeid, outcome.engine, shown))
        if outcome.stopped_by == signal.SIGINT:
            raise KeyboardInterrupt
        if outcome.stopped_by is not None:
            from kvverify import exitcodes

            name = signal.Signals(outcome.stopped_by).name
            pytest.exit(
                f"kvverify: received {name} while {self.nodeid} ran: stopped",
                returncode=exitcodes.for_signal(outcome.stopped_by),
            )
        return outcome

    def _record(self, outcome: Outcome, directory: str, settings: Settings) -> None:
        """JUnit properties: whose evidence this is, and where it is."""
        from kvverify.report import engine_properties

        self.user_properties.append(("run_directory", directory))
        for log in outcome.report.logs:
            self.user_properties.append(("log", settings.shown(Path(log.path).absolute())))
            self.user_properties.extend(engine_properties(log).items())
        if not outcome.report.logs:
            self.user_properties.append(("engine", outcome.engine))

    def _require_baseline(self, path: Path, key: str, settings: Settings) -> None:
        """A gate told to compare against a baseline that is not there fails: passing on the
        absolute expectations alone would be a silent pass of the upgrade gate."""
        from kvverify.gate.baseline import load

        shown = settings.shown(path)
        record = (
            "record it on the current release with --kvverify-save-baseline, commit it, "
            "then gate with --kvverify-baseline"
        )
        if not path.is_file():
            raise Failure(
                f"no baseline for {key}: {shown} does not exist",
                f"kvverify: {self.nodeid}: no baseline: {shown} does not exist\n  hint: {record}",
            )
        entries = load(str(path)).entries
        if key not in entries:
            have = ", ".join(sorted(entries)) or "none"
            raise Failure(
                f"no baseline for {key}: {shown} has no entry for it",
                f"kvverify: {self.nodeid}: {shown} has no entry for {key} (it has {have})\n"
                f"  hint: {record}",
            )
        self.user_properties.append(("baseline", shown))

    def _text(self, report: CheckReport, outcome: Outcome, notes: list[str]) -> str:
        import click

        from kvverify.report import terminal

        settings = self.config.stash[_SETTINGS]
        lines = [click.unstyle(terminal(report)), ""]
        for run in outcome.runs:
            lines.append(f"log: {settings.shown(run.log.absolute())}")
        lines += notes
        return "\n".join(lines)

    def repr_failure(
        self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None
    ) -> str | TerminalRepr:
        from kvverify.errors import EngineUnavailable, KvverifyError

        error = excinfo.value
        if isinstance(error, KvverifyError):
            what = (
                "the engine could not start (exit 3)"
                if isinstance(error, EngineUnavailable)
                else "cannot run the scenario"
            )
            text = f"kvverify: {what}\n{error.render()}"
            if isinstance(error, EngineUnavailable):
                text += (
                    "\n  with pytest: --kvverify-engine sim (or kvverify_engine = sim in the ini "
                    "file) runs the reference model on purpose"
                )
            error = Failure(f"{what}: {error.message}", text)
        if isinstance(error, Failure):
            return FailureRepr(self.path, error)
        return super().repr_failure(excinfo, style=style)


def _headline(report: CheckReport, outcome: Outcome) -> str:
    """One line: what failed."""
    from kvverify.report import fmt_value

    log: LogReport | None = report.logs[0] if report.logs else None
    detail = next((r.detail for r in outcome.runs if r.detail), "")
    if report.verdict == "crashed":
        return f"the engine crashed: {detail}" if detail else "the engine crashed"
    if report.verdict == "engine_unavailable":
        return f"the engine could not start (exit 3): {detail or 'see the log'}"
    checks = [] if log is None else [c for c in log.checks if c.status == report.verdict]
    words = {"fail": "FAIL", "not_analyzable": "NOT ANALYZABLE"}.get(report.verdict, "FAIL")
    shown = [
        f"{c.expression} (observed {fmt_value(c.observed)})"
        if c.status == "fail"
        else f"{c.expression} ({c.diagnosis or c.reason})"
        for c in checks[:3]
    ]
    more = f"; and {len(checks) - 3} more" if len(checks) > 3 else ""
    return f"{words}: {'; '.join(shown)}{more}" if shown else words


def _save_entry(path: Path, report: CheckReport, tolerance: dict[str, dict[str, str]]) -> None:
    """Write the variant's entry into the scenario's baseline file, keeping the others (a
    whole file at once: a reader never sees half of it)."""
    from kvverify.errors import InputError
    from kvverify.gate.baseline import Baseline, dumps, from_report, load

    entries = dict(load(str(path)).entries) if path.exists() else {}
    entries.update(from_report(report, tolerance, str(path)).entries)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(dumps(Baseline(entries, str(path))), encoding="utf-8")
        tmp.replace(path)
    except OSError as exc:
        raise InputError(
            f"cannot write the baseline: {exc.strerror or exc}", where=str(path)
        ) from None
