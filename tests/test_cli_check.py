"""``kvverify check``: exit codes, messages and outputs a CI job depends on."""

from __future__ import annotations

import gzip
import json
import tempfile
from pathlib import Path
from xml.etree import ElementTree as ET

import jsonschema
import pytest
from conftest import SCHEMA, Run
from logmaker import seed_log

import kvverify.check


@pytest.fixture
def logs(tmp_path: Path) -> dict[str, Path]:
    paths = {
        "on": tmp_path / "offloading_enabled.log",
        "off": tmp_path / "offloading_disabled.log",
        "crash": tmp_path / "killed.log",
    }
    paths["on"].write_text(seed_log("1.2"))
    paths["off"].write_text(seed_log("1.2", reuse=False))
    paths["crash"].write_text(seed_log("1.2", summary=False))
    return paths


def test_pass_fail_and_the_negative_control(run: Run, logs: dict[str, Path]) -> None:
    ok = run("check", str(logs["on"]))
    assert ok.code == 0
    assert "PASS" in ok.out
    assert "verdict: PASS" in ok.out
    bad = run("check", str(logs["off"]))
    assert bad.code == 1
    assert "FAIL  reused_blocks > 0" in bad.out
    assert "no-host-pool" in bad.out
    assert run("check", "-e", "no-reuse", str(logs["off"])).code == 0
    assert (
        run("check", "-e", "reused_blocks == 0", "-e", "cache_hit_rate == 0", str(logs["off"])).code
        == 0
    )


def test_not_analyzable_is_exit_2_and_says_why(run: Run, logs: dict[str, Path]) -> None:
    r = run("check", str(logs["crash"]))
    assert r.code == 2
    assert "NOT ANALYZABLE" in r.out
    assert "engine never shut down" in r.out
    assert "llm.shutdown()" in r.out


def test_a_failed_check_outranks_an_unanalyzable_log(run: Run, logs: dict[str, Path]) -> None:
    assert run("check", str(logs["off"]), str(logs["crash"])).code == 1
    assert run("check", str(logs["on"]), str(logs["crash"])).code == 2
    assert run("check", str(logs["on"]), str(logs["on"])).code == 0


def test_missing_file_directory_and_stdin(run: Run, logs: dict[str, Path], tmp_path: Path) -> None:
    r = run("check", str(tmp_path / "nope.log"))
    assert r.code == 2
    assert "no such file" in r.out
    r = run("check", str(tmp_path))
    assert r.code == 2
    assert "is a directory" in r.out
    r = run("check", "-", stdin=gzip.compress(logs["on"].read_bytes()))
    assert r.code == 0
    assert "<stdin>" in r.out


def test_bad_expectation_is_one_message_and_exit_2(run: Run, logs: dict[str, Path]) -> None:
    r = run("check", "-e", "reused_blcoks > 0", str(logs["on"]))
    assert r.code == 2
    assert r.out == ""
    assert r.err.startswith("kvverify: expectation 'reused_blcoks > 0', column 1: unknown metric")
    assert "did you mean 'reused_blocks'?" in r.err
    assert "Traceback" not in r.err


def test_usage_errors_exit_2(run: Run) -> None:
    assert run("check").code == 2
    assert run("check", "--format", "yaml", "x").code == 2
    assert run("frobnicate").code == 2


def test_json_junit_and_markdown_files(run: Run, logs: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "out"
    r = run(
        "check",
        "--format",
        "json",
        "--json",
        str(tmp_path / "r.json"),
        "--junit",
        str(tmp_path / "r.xml"),
        "--markdown",
        str(tmp_path / "r.md"),
        str(logs["on"]),
        str(logs["off"]),
    )
    assert r.code == 1
    data = json.loads(r.out)
    assert data == json.loads((tmp_path / "r.json").read_text())
    jsonschema.validate(data, SCHEMA)
    assert data["schema"] == "kvverify/check-report"
    assert data["schema_version"] == 1
    assert [log["verdict"] for log in data["logs"]] == ["pass", "fail"]
    final = [s for s in data["logs"][0]["summaries"] if s["final"]]
    assert final[0]["reused_blocks"] == 4
    assert final[0]["window_size"] == 256
    suites = ET.parse(tmp_path / "r.xml").getroot()
    assert suites.get("tests") == "4"
    assert suites.get("failures") == "2"
    assert "reused_blocks > 0" in (tmp_path / "r.md").read_text()
    assert not out.exists()


def test_github_annotations_and_step_summary(
    run: Run, logs: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    r = run("check", str(logs["off"]))
    assert r.code == 1
    errors = [line for line in r.out.splitlines() if line.startswith("::error ")]
    assert len(errors) == 2
    assert f"file={logs['off']}".replace(":", "%3A") in errors[0]
    assert "title=kvverify%3A reused_blocks > 0 failed" in errors[0]
    assert "::warning " in r.out  # the no-host-pool diagnosis
    assert "❌" in summary.read_text()
    r = run("check", "--format", "json", str(logs["off"]))
    json.loads(r.out)  # annotations went to stderr, the JSON is intact
    assert "::error " in r.err


def test_internal_error_is_one_line_and_a_saved_traceback(
    run: Run, logs: dict[str, Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def boom(*args: object, **kwargs: object) -> None:
        raise ZeroDivisionError("simulated bug")

    monkeypatch.setattr(kvverify.check, "attribute", boom)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the traceback file goes here
    r = run("check", str(logs["on"]))
    assert r.code == 3
    (line,) = r.err.strip().splitlines()
    assert line.startswith("kvverify: internal error: ZeroDivisionError: simulated bug")
    saved = Path(line.split("traceback saved to ")[1].split(";")[0])
    assert "Traceback" in saved.read_text()
    assert "simulated bug" in saved.read_text()


def test_help_has_examples_and_exit_codes(run: Run) -> None:
    r = run("check", "--help")
    assert r.code == 0
    assert "kvverify check -e no-reuse offloading_disabled.log" in r.out
    top = run("--help")
    assert "3 the engine crashed or could not start, or an internal error" in " ".join(
        top.out.split()
    )


def test_report_files_are_checked_before_the_work(
    run: Run, logs: dict[str, Path], tmp_path: Path
) -> None:
    r = run("check", "--junit", str(tmp_path / "no" / "r.xml"), str(logs["on"]))
    assert r.code == 2
    assert r.out == ""
    assert "cannot write a report there" in r.err


def test_a_mistyped_preset(run: Run, logs: dict[str, Path]) -> None:
    r = run("check", "-e", "no-reus", str(logs["off"]))
    assert r.code == 2
    assert "unknown preset 'no-reus' (did you mean 'no-reuse'?)" in r.err


def test_the_cli_offers_every_dialect_the_model_writes() -> None:
    # cli.py names them itself, so that --help imports nothing of the model
    from kvverify import cli
    from kvverify.engines.sim import dialects

    assert set(cli.DIALECTS) == set(dialects.DIALECTS)
    assert cli.DEFAULT_DIALECT == dialects.DEFAULT_DIALECT
