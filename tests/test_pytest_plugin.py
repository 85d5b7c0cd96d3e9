"""The pytest plugin (``pytest --kvverify PATHS``), run as users run it: pytest in a
subprocess (scenarios start worker processes), in a directory of its own."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import pytest
import yaml

import kvverify.engines.base
from kvverify import pytest_plugin
from kvverify.scenario import load

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parent.parent
SIM = ("--kvverify", "--kvverify-engine", "sim")

#: A small scenario (token-id prompts, a GPU pool that holds one request): about half a
#: second per variant on the reference model.
BASE: dict[str, Any] = {
    "schema_version": 1,
    "engine": {
        "model": "Qwen/Qwen3-8B",
        "max_batch_size": 1,
        "max_seq_len": 64,
        "kv_cache": {"enable_block_reuse": True, "max_tokens": 64, "tokens_per_block": 16},
    },
    "sampling": {"max_tokens": 24},
    "prompts": {
        "A": {"synthetic": {"length": 40, "seed": 1}},
        "B": {"synthetic": {"length": 40, "seed": 2}},
    },
    "steps": ["A", "B", "A", "B"],
}


def offload(on: list[str], off: list[str] | None = None) -> dict[str, Any]:
    """The two variants of the offloading example, with these expectations."""
    return {
        "offload_off": {
            "engine": {"kv_cache": {"host_cache_size": 0}},
            "expect": ["no-reuse"] if off is None else off,
        },
        "offload_on": {"engine": {"kv_cache": {"host_cache_size": "1GiB"}}, "expect": on},
    }


def write(where: Path, name: str, variants: dict[str, Any] | None = None, **more: Any) -> Path:
    data = {"name": name, **BASE, **more}
    if variants is not None:
        data["variants"] = variants
    else:
        data.setdefault("expect", ["reused_blocks >= 0"])  # what any run shows
    path = where / f"{name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    # Hypothesis's plugin, which has nothing to do with these sessions, takes a second to load.
    return pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-p", "no:hypothesispytest", *args
    )


def runs(pytester: pytest.Pytester, scenario: str) -> list[Path]:
    """The run directories of a scenario (kvverify-out/<scenario>/<date>-<time>)."""
    root = pytester.path / "kvverify-out" / scenario
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.is_symlink())


def logs(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.glob("*.log"))


@pytest.fixture(autouse=True)
def _plugins_load(monkeypatch: pytest.MonkeyPatch) -> None:
    """The plugin loads as users get it: from its entry point. Short test summaries are not
    cut to 80 columns."""
    monkeypatch.setenv("COLUMNS", "250")
    monkeypatch.delenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    monkeypatch.delenv("PYTEST_ADDOPTS", raising=False)
    monkeypatch.delenv("PYTEST_PLUGINS", raising=False)


# -- registration and doing nothing without --kvverify ------------------------------------------


def test_the_plugin_is_an_entry_point_and_its_import_is_cheap() -> None:
    (ep,) = [ep for ep in entry_points(group="pytest11") if ep.name == "kvverify"]
    assert ep.value == "kvverify.pytest_plugin"
    # pytest imports it in every session of every project where kvverify is installed.
    code = (
        "import sys, kvverify.pytest_plugin; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'yaml', 'pydantic', 'click', 'zstandard', 'hyperscan'}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"
    assert pytest_plugin.ENGINES == kvverify.engines.base.ENGINE_CHOICES


def test_without_kvverify_nothing_is_collected_and_a_suite_is_unchanged(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_plain="def test_ok():\n    assert True\n")
    write(pytester.path, "abab", offload(["reused_blocks > 1000"]))
    (pytester.path / "invalid.yaml").write_text("schema_version: 1\nsteps: [A]\n")
    listed = run(pytester, "--collect-only", "-q")
    without = run(pytester, "--collect-only", "-q", "-p", "no:kvverify")
    assert listed.outlines[:2] == ["test_plain.py::test_ok", ""]
    assert listed.outlines[:-1] == without.outlines[:-1]  # all but the timing line
    done = run(pytester, "-q")
    done.assert_outcomes(passed=1)
    assert "kvverify" not in done.stdout.str()
    assert not (pytester.path / "kvverify-out").exists()


# -- collection ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "scenario"),
    [
        ("schema_version: 1\nname: x\nsteps: [A]\n", True),
        ("# comment\n---\nprompts:\n  A: hi\nschema_version: 2\n", True),
        ("\ufeff'schema_version': 1\n\"steps\" : [A]\n", True),
        ("schema_version: 1\nname: not kvverify\n", False),  # another tool's versioned file
        ("on: push\njobs:\n  test:\n    steps:\n      - run: make\n", False),  # a CI config
        ("jobs:\n  schema_version: 1\n  steps: []\n", False),  # keys that are not top-level
        ("{schema_version: 1, steps: [A]}\n", False),  # flow style: name the file to run it
    ],
)
def test_the_sniff_reads_top_level_keys(tmp_path: Path, text: str, scenario: bool) -> None:
    path = tmp_path / "f.yaml"
    path.write_text(text, encoding="utf-8")
    assert pytest_plugin.looks_like_scenario(path) is scenario


def test_scenarios_are_collected_one_test_per_variant_and_other_yaml_is_ignored(
    pytester: pytest.Pytester,
) -> None:
    write(pytester.path / "scenarios", "abab", offload(["cache_hit_rate > 0"]))
    write(pytester.path / "scenarios", "plain")  # no variants: the variant "default"
    (pytester.path / "ci").mkdir()
    (pytester.path / "ci" / "workflow.yml").write_text(
        "on: push\njobs:\n  test:\n    steps:\n      - run: pytest --kvverify\n"
    )
    (pytester.path / "ci" / "compose.yaml").write_text("services:\n  db: {image: postgres}\n")
    (pytester.path / "ci" / "broken.yaml").write_text("a: [unclosed\n")
    result = run(pytester, "--kvverify", "--collect-only", "-q")
    assert result.outlines[:4] == [
        "scenarios/abab.yaml::offload_off",
        "scenarios/abab.yaml::offload_on",
        "scenarios/plain.yaml::default",
        "",
    ]
    assert result.ret == 0
    assert not (pytester.path / "kvverify-out").exists()  # collecting runs nothing


def test_an_invalid_scenario_is_one_failing_test_that_says_why(
    pytester: pytest.Pytester,
) -> None:
    write(pytester.path, "good")
    write(pytester.path, "invalid", steps=["A", "C"], expect=["reused_blokcs > 0"])
    result = run(pytester, *SIM, "-rf")
    result.assert_outcomes(passed=1, failed=1)  # the rest of the session still runs
    result.stdout.fnmatch_lines(
        [
            "*_ kvverify: invalid.yaml::validate _*",
            "*invalid.yaml: 2 problems in the scenario",
            "*invalid.yaml:*: steps[[]1]: no prompt named 'C'",
            "*invalid.yaml:*: expect[[]0]: unknown metric 'reused_blokcs'*",
            "FAILED invalid.yaml::validate - invalid scenario: 2 problems in the scenario",
        ]
    )
    assert "Traceback" not in result.stdout.str()


def test_a_yaml_file_named_on_the_command_line_is_run_as_a_scenario(
    pytester: pytest.Pytester,
) -> None:
    path = pytester.path / "config.yaml"
    path.write_text("retries: 3\n")
    result = run(pytester, *SIM, str(path))
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*config.yaml:1:1: retries: unknown key*"])


# -- running --------------------------------------------------------------------------------------


def test_passing_variants_share_a_run_directory_and_the_summary_names_the_engine(
    pytester: pytest.Pytester,
) -> None:
    write(pytester.path, "abab", offload(["step[3].reused_tokens > 0", "cache_hit_rate > 0"]))
    write(pytester.path, "plain", expect=["reused_blocks >= 0"])
    result = run(pytester, *SIM, "-v")
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(
        [
            "abab.yaml::offload_off PASSED*",
            "abab.yaml::offload_on PASSED*",
            "plain.yaml::default PASSED*",
            "*- kvverify -*",
            "engine: sim (kvverify's reference model, not a GPU run): 3 variants",
            "logs: kvverify-out/abab/* (2 variants)",
            "logs: kvverify-out/plain/* (1 variant)",
        ]
    )
    (directory,) = runs(pytester, "abab")  # as after kvverify run: one directory per run
    assert logs(directory) == ["offload_off.log", "offload_on.log"]
    assert (pytester.path / "kvverify-out" / "abab" / "latest").resolve() == directory
    assert logs(runs(pytester, "plain")[0]) == ["default.log"]
    # a second session never replaces the first one's evidence
    run(pytester, *SIM, "-k", "plain").assert_outcomes(passed=1, deselected=2)
    assert len(runs(pytester, "plain")) == 2


def test_a_failing_variant_shows_the_check_table_and_the_log_not_a_traceback(
    pytester: pytest.Pytester,
) -> None:
    write(pytester.path, "abab", offload(["cache_hit_rate > 0", "reused_blocks > 1000"]))
    result = run(pytester, *SIM, "-rf")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*_ kvverify: abab.yaml::offload_on _*",
            "*offload_on.log  FAIL",
            "  engine: sim (kvverify's reference model, not a GPU run*",
            "  checks",
            "    PASS  cache_hit_rate > 0 *",
            "    FAIL  reused_blocks > 1000 *summary at line *",
            "verdict: FAIL  (1 passed, 1 failed; 1 log; exit 1)",
            "log: kvverify-out/abab/*/offload_on.log",
            "FAILED abab.yaml::offload_on - FAIL: reused_blocks > 1000 (observed *)",
        ]
    )
    out = result.stdout.str()
    assert "Traceback" not in out
    assert "pytest_plugin.py" not in out
    assert "\x1b[" not in out  # no colour codes


def test_k_selects_a_variant_and_the_ini_names_the_engine(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nkvverify_engine = sim\n")
    write(pytester.path, "abab", offload(["cache_hit_rate > 0"]))
    result = run(pytester, "--kvverify", "-k", "offload_on")
    result.assert_outcomes(passed=1, deselected=1)
    (directory,) = runs(pytester, "abab")
    assert logs(directory) == ["offload_on.log"]


def test_x_stops_after_the_first_failure(pytester: pytest.Pytester) -> None:
    write(pytester.path, "abab", offload(["reused_blocks > 1000"], ["reused_blocks > 1000"]))
    result = run(pytester, *SIM, "-x")
    result.assert_outcomes(failed=1)
    (directory,) = runs(pytester, "abab")
    assert logs(directory) == ["offload_off.log"]  # the second variant never ran


def test_junitxml_has_a_test_case_per_variant_with_its_engine_and_log(
    pytester: pytest.Pytester,
) -> None:
    write(pytester.path, "abab", offload(["reused_blocks > 1000"]))
    run(pytester, *SIM, "--junitxml", "junit.xml").assert_outcomes(passed=1, failed=1)
    cases = ET.parse(pytester.path / "junit.xml").getroot().findall(".//testcase")
    assert [(c.get("classname"), c.get("name")) for c in cases] == [
        ("abab.yaml", "offload_off"),
        ("abab.yaml", "offload_on"),
    ]
    for case in cases:
        props = {p.get("name"): p.get("value") for p in case.iter("property")}
        assert props["engine"] == "sim"
        assert props["engine_requested"] == "sim"
        assert "reference model, not a GPU run" in str(props["engine_description"])
        log = pytester.path / str(props["log"])
        assert log.name == f"{case.get('name')}.log"
        assert log.is_file()
        assert props["run_directory"] == str(log.parent.relative_to(pytester.path))
    failure = cases[1].find("failure")
    assert failure is not None
    assert str(failure.get("message")).startswith("FAIL: reused_blocks > 1000 (observed ")
    assert "verdict: FAIL" in str(failure.text)


def test_kvverify_out_names_the_root_of_the_run_directories(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    write(pytester.path, "plain")
    run(pytester, *SIM, "--kvverify-out", str(tmp_path / "evidence")).assert_outcomes(passed=1)
    (directory,) = (tmp_path / "evidence" / "plain").glob("2*")
    assert logs(directory) == ["default.log"]
    assert not (pytester.path / "kvverify-out").exists()


# -- engines that cannot start ------------------------------------------------------------------


def test_auto_in_ci_without_tensorrt_llm_fails_each_test_saying_so_and_runs_nothing(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CI", "true")
    monkeypatch.setattr(kvverify.engines.base, "has_tensorrt_llm", lambda python=None: False)
    write(pytester.path, "abab", offload(["cache_hit_rate > 0"]))
    result = pytester.runpytest("-p", "no:cacheprovider", "--kvverify", "-rf")  # in-process
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(
        [
            "kvverify: the engine could not start (exit 3)",
            "the engine could not start: TensorRT-LLM is not installed, and in CI (CI is set) "
            "--engine auto never falls back to the reference model",
            "  with pytest: --kvverify-engine sim *",
            "FAILED abab.yaml::offload_off - the engine could not start (exit 3): *",
        ]
    )
    assert not (pytester.path / "kvverify-out").exists()  # no empty run directories


def test_auto_outside_ci_without_tensorrt_llm_runs_the_model_and_says_so(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setattr(kvverify.engines.base, "has_tensorrt_llm", lambda python=None: False)
    write(pytester.path, "plain")
    result = pytester.runpytest("-p", "no:cacheprovider", "--kvverify")  # in-process
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            "kvverify: TensorRT-LLM is not installed: running on kvverify's reference model "
            "(*--kvverify-engine sim says so on purpose)",
            "engine: sim (kvverify's reference model, not a GPU run): 1 variant",
        ]
    )


def test_a_tensorrt_llm_that_fails_to_import_fails_the_test_with_the_import_error(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = pytester.path / "site" / "tensorrt_llm"
    broken.mkdir(parents=True)
    (broken / "__init__.py").write_text("raise ImportError('libcudart.so.12: cannot open')\n")
    monkeypatch.setenv("PYTHONPATH", str(broken.parent))
    write(pytester.path, "plain")
    result = run(pytester, "--kvverify", "--kvverify-engine", "trtllm", "-rf", "plain.yaml")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*default.log  ENGINE UNAVAILABLE",
            "FAILED plain.yaml::default - the engine could not start (exit 3): *libcudart*",
        ]
    )


def test_an_engine_that_crashes_fails_the_test_saying_so(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTHONPATH", str(ROOT / "tests" / "standin"))
    engine = {**BASE["engine"], "env": {"STANDIN_FAULT": "crash:3"}}  # SIGSEGV at step 3
    write(pytester.path, "plain", engine=engine)
    result = run(pytester, "--kvverify", "--kvverify-engine", "trtllm", "-rf")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*default.log  CRASHED",
            "  engine: TensorRT-LLM 1.2.0rc2 *",
            "verdict: CRASHED *exit 3)",
            "log: kvverify-out/plain/*/default.log",
            "FAILED plain.yaml::default - the engine crashed: *",
        ]
    )


@pytest.mark.parametrize(
    ("sig", "code"), [(signal.SIGINT, 2), (signal.SIGTERM, 143)], ids=["ctrl-c", "sigterm"]
)
def test_ctrl_c_or_a_cancelled_job_stops_the_engine_and_the_session(
    pytester: pytest.Pytester, sig: signal.Signals, code: int
) -> None:
    """Not a failed test and on to the next: the session ends, as on any test (Ctrl-C:
    pytest's "Interrupted", exit 2; SIGTERM: 128 + 15), and the partial log is kept."""
    engine = {**BASE["engine"], "env": {"STANDIN_FAULT": "hang:2"}}  # step 2 never ends
    write(pytester.path, "abab", offload(["cache_hit_rate > 0"]), engine=engine)
    env = {**os.environ, "PYTHONPATH": str(ROOT / "tests" / "standin")}
    args = ["-p", "no:cacheprovider", "-p", "no:hypothesispytest", "--kvverify"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest", *args, "--kvverify-engine", "trtllm"],
        cwd=pytester.path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    root = pytester.path / "kvverify-out" / "abab"
    try:
        deadline = time.monotonic() + 60
        while not any('"step":2' in p.read_text() for p in root.glob("*/offload_off.log")):
            if proc.poll() is not None:
                pytest.fail(f"pytest ended before step 2:\n{proc.communicate()[0]}")
            assert time.monotonic() < deadline, "step 2 never began"
            time.sleep(0.1)
        proc.send_signal(sig)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:  # the test failed: kvverify stops the engine on Ctrl-C
            proc.send_signal(signal.SIGINT)
            proc.communicate(timeout=60)
    assert proc.returncode == code, out
    assert ("KeyboardInterrupt" if sig == signal.SIGINT else "received SIGTERM") in out
    (directory,) = runs(pytester, "abab")
    assert logs(directory) == ["offload_off.log"]  # the next variant never started
    assert '"t":"exit","status":"interrupted"' in (directory / "offload_off.log").read_text()


# -- baselines ----------------------------------------------------------------------------------


def test_a_missing_baseline_fails_before_anything_runs(pytester: pytest.Pytester) -> None:
    write(pytester.path, "abab", offload(["cache_hit_rate > 0"]))
    result = run(pytester, *SIM, "--kvverify-baseline", "baselines", "-rf")
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(
        [
            "kvverify: abab.yaml::offload_off: no baseline: baselines/abab.json does not exist",
            "  hint: record it on the current release with --kvverify-save-baseline*",
            "FAILED abab.yaml::offload_off - no baseline for abab/offload_off: *",
        ]
    )
    assert not (pytester.path / "kvverify-out").exists()


def test_record_a_baseline_then_gate_on_it(pytester: pytest.Pytester) -> None:
    # offload_on only asks for what any run shows: the baseline does the gating here.
    path = write(pytester.path, "abab", offload(["reused_blocks >= 0"]))
    gate = (*SIM, "--kvverify-baseline", "baselines", "-rf")
    record = (*gate, "--kvverify-save-baseline")
    saved = pytester.path / "baselines" / "abab.json"

    run(pytester, *record, "-k", "offload_on").assert_outcomes(passed=1, deselected=1)
    first = json.loads(saved.read_text())
    assert list(first["entries"]) == ["abab/offload_on"]
    assert first["entries"]["abab/offload_on"]["engine"]["name"] == "sim"

    # a variant the baseline has no entry for fails; the one it has passes
    missing = run(pytester, *gate)
    missing.assert_outcomes(passed=1, failed=1)
    missing.stdout.fnmatch_lines(
        ["FAILED abab.yaml::offload_off - no baseline for abab/offload_off: *no entry for it"]
    )

    # recording the other variant keeps the first one's entry
    run(pytester, *record, "-k", "offload_off").assert_outcomes(passed=1, deselected=1)
    both = json.loads(saved.read_text())
    assert list(both["entries"]) == ["abab/offload_off", "abab/offload_on"]
    assert both["entries"]["abab/offload_on"] == first["entries"]["abab/offload_on"]

    run(pytester, *gate).assert_outcomes(passed=2)

    # the upgrade lost host offloading: the absolute expectations still pass, the gate fails
    data = yaml.safe_load(path.read_text())
    data["variants"]["offload_on"]["engine"]["kv_cache"]["host_cache_size"] = 0
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    regressed = run(pytester, *gate, "--junitxml", "junit.xml")
    regressed.assert_outcomes(passed=1, failed=1)
    regressed.stdout.fnmatch_lines(
        [
            "    PASS  reused_blocks >= 0 *",
            "    FAIL  cache_hit_rate vs baseline *",
            "verdict: FAIL *",
            "FAILED abab.yaml::offload_on - FAIL: *cache_hit_rate vs baseline*",
        ]
    )
    cases = ET.parse(pytester.path / "junit.xml").getroot().findall(".//testcase")
    props = {p.get("name"): p.get("value") for p in cases[1].iter("property")}
    assert props["baseline"] == "baselines/abab.json"


def test_a_failing_variant_is_not_recorded(pytester: pytest.Pytester) -> None:
    write(pytester.path, "abab", offload(["reused_blocks > 1000"]))
    result = run(
        pytester, *SIM, "--kvverify-baseline", "baselines", "--kvverify-save-baseline", "-rf"
    )
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "baseline: not written for abab/offload_on (its checks did not pass)",
            "baseline written: baselines/abab.json (offload_off)",
        ]
    )
    saved = json.loads((pytester.path / "baselines" / "abab.json").read_text())
    assert list(saved["entries"]) == ["abab/offload_off"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--kvverify-save-baseline"], "*--kvverify-save-baseline needs --kvverify-baseline DIR*"),
        (["-o", "kvverify_engine=gpu"], "*kvverify_engine = 'gpu' in the ini file: choose*"),
    ],
)
def test_options_that_cannot_work_are_usage_errors(
    pytester: pytest.Pytester, args: list[str], message: str
) -> None:
    result = pytester.runpytest("-p", "no:cacheprovider", "--kvverify", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])


# -- the shipped scenarios ----------------------------------------------------------------------


def test_every_shipped_scenario_runs_on_the_model_and_passes_with_junit(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    """``pytest --kvverify --kvverify-engine sim scenarios/`` in this repository, under its own
    pytest configuration (warnings are errors), writing evidence outside it."""
    shipped = sorted((ROOT / "scenarios").glob("*.yaml"))
    assert shipped
    expected = [(f"scenarios.{p.name}", v) for p in shipped for v in load(p).variants]
    junit = tmp_path / "junit.xml"
    result = run(
        pytester,
        *SIM,
        str(ROOT / "scenarios"),
        "--junitxml",
        str(junit),
        "--kvverify-out",
        str(tmp_path / "out"),
    )
    assert result.ret == 0, result.stdout.str()
    assert f"rootdir: {ROOT}" in result.stdout.str()
    cases = ET.parse(junit).getroot().findall(".//testcase")
    assert sorted((c.get("classname"), c.get("name")) for c in cases) == sorted(expected)
    for case in cases:
        assert case.find("failure") is None
        props = {p.get("name"): p.get("value") for p in case.iter("property")}
        assert props["engine"] == "sim"
        log = Path(str(props["log"]))
        assert log.is_file()
        assert log.is_relative_to(tmp_path / "out")


def test_the_readme_names_only_options_the_plugin_has(pytester: pytest.Pytester) -> None:
    readme = (ROOT / "README.md").read_text()
    named = set(re.findall(r"--kvverify[-a-z]*", readme)) | {"kvverify_engine"}
    assert {"--kvverify", "--kvverify-engine", "--kvverify-baseline"} <= named
    shown = pytester.runpytest("--help").stdout.str()
    assert {n for n in named if not re.search(rf"(^|\s){n}\b", shown, re.M)} == set()
