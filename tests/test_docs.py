"""Docs that tests keep honest."""

from __future__ import annotations

import dataclasses
import json
import re
import shlex
import shutil
from pathlib import Path

import click
import pytest
import yaml
from conftest import Run

from kvverify import result
from kvverify.cli import cli
from kvverify.diagnose import CATALOG
from kvverify.engines.sim import dialects
from kvverify.metrics import ENGINE_METRICS, MATCHABLE, REQUEST_METRICS

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
REFERENCE = (ROOT / "docs" / "trtllm-logs.md").read_text()


def _commands(text: str) -> list[str]:
    blocks = re.findall(r"```sh\n(.*?)```", text, flags=re.S)
    return [line for block in blocks for line in block.strip().splitlines()]


def test_readme_starts_with_the_install_and_run_command_then_the_test_command() -> None:
    first, second = _commands(README)[:2]
    assert first.endswith("pip install . && kvverify run --engine sim")
    assert "pip install -e . --group dev && python -m pytest" in second
    ci = (ROOT / ".ci" / "run").read_text()
    assert second in ci, ".ci/run must run exactly the README's test command"


def test_every_command_is_documented_in_the_readme_with_its_help() -> None:
    for name, command in cli.commands.items():
        assert f"kvverify {name}" in README, name
        assert "Example" in (command.help or ""), f"{name} --help needs an example"


def test_every_metric_and_diagnosis_is_documented() -> None:
    expectations = (ROOT / "docs" / "expectations.md").read_text()
    for name in [*ENGINE_METRICS, *REQUEST_METRICS, *MATCHABLE]:
        assert f"`{name}`" in expectations, name
    diagnoses = (ROOT / "docs" / "diagnoses.md").read_text()
    for code in CATALOG:
        assert f"`{code}`" in diagnoses, code


def test_every_format_string_the_model_writes_is_quoted_in_the_reference() -> None:
    strings: list[str] = []
    for name, value in vars(dialects).items():
        if not name.isupper():
            continue
        items = value.values() if isinstance(value, dict) else value
        candidates = (
            [value]
            if isinstance(value, str)
            else [v for v in items if isinstance(v, str)]
            if isinstance(value, tuple | dict)
            else []
        )
        strings += [v for v in candidates if "%" in v or "{__version__}" in v]
    assert len(strings) > 30
    missing = [
        s
        for s in strings
        if s not in REFERENCE and s.replace("%s", "BlockManager") not in REFERENCE
    ]
    # The 2024b/early-2025 summaries are the 9-line strings with "BlockManager" for %s (§2.1)
    assert missing == []


def test_the_json_schema_names_every_field_of_the_report_records() -> None:
    """The schema is the contract; the records are what is written. Field for field, each
    record and its schema definition agree (what the report holds is checked against the
    schema in test_cli_check and test_report_properties)."""
    schema = json.loads((ROOT / "docs" / "check-report.schema.json").read_text())
    records = {
        "Check": result.Check,
        "Diagnosis": result.Diagnosis,
        "EngineInfo": result.EngineInfo,
        "LogReport": result.LogReport,
        "RequestReport": result.RequestReport,
        "SummaryReport": result.SummaryReport,
        "StepReport": result.StepReport,
    }
    assert set(schema["$defs"]) == set(records)
    for name, record in [("CheckReport", result.CheckReport), *records.items()]:
        definition = schema if name == "CheckReport" else schema["$defs"][name]
        fields = {f.name for f in dataclasses.fields(record)}
        assert set(definition["properties"]) == fields, name
        assert set(definition["required"]) == fields, name
        assert definition["additionalProperties"] is False, name


def test_readme_examples_parse() -> None:
    """Every kvverify command line in the README is one the CLI accepts."""
    for line in _commands(README):
        for part in line.split("&&"):
            words = shlex.split(part.split("#")[0])
            if words[:1] != ["kvverify"]:
                continue
            ctx = cli.make_context("kvverify", words[1:], resilient_parsing=True)
            sub = cli.get_command(ctx, words[1])
            assert isinstance(sub, click.Command), line
            sub.make_context(words[1], words[2:], resilient_parsing=True)


CI_DOC = (ROOT / "docs" / "ci.md").read_text()


def _as_model_run(line: str) -> list[str] | None:
    """A documented kvverify command, as the test suite can run it: on the reference model
    instead of a GPU (--engine sim for trtllm, no --python), with the CI matrix filled in."""
    for placeholder, value in (
        ("${{ matrix.release }}", "candidate"),
        ("${{ matrix.tensorrt_llm }}", "1.3.0"),
        ('"$(command -v python3)"', "python3"),
    ):
        line = line.replace(placeholder, value)
    words = shlex.split(line.split(" #")[0])
    if not words or not words[0].endswith("kvverify"):
        return None
    words = ["kvverify", *words[1:]]
    if "--python" in words:
        at = words.index("--python")
        del words[at : at + 2]
    return ["sim" if w == "trtllm" else w for w in words]


def _ci_commands() -> list[list[str]]:
    """Every kvverify command docs/ci.md shows: in shell blocks and in the CI jobs."""
    out = []
    for block in re.findall(r"```sh\n(.*?)```", CI_DOC, flags=re.S):
        out += [c for line in block.splitlines() if (c := _as_model_run(line))]
    for block in re.findall(r"```yaml\n(.*?)```", CI_DOC, flags=re.S):
        doc = yaml.safe_load(block)
        for job in doc.get("jobs", doc).values():  # GitHub: under jobs; GitLab: top level
            if not isinstance(job, dict):
                continue
            for item in job.get("steps", []) + job.get("script", []):
                text = item.get("run", "") if isinstance(item, dict) else item
                for line in str(text).replace("\\n", " ").splitlines() or [str(text)]:
                    if (c := _as_model_run(" ".join(line.split()))) is not None:
                        out.append(c)
    return out


def test_the_ci_recipe_runs_end_to_end_on_the_model(
    run: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """docs/ci.md, command by command, in a fresh checkout-like directory."""
    shutil.copytree(ROOT / "scenarios", tmp_path / "scenarios")
    monkeypatch.chdir(tmp_path)  # nothing else: the recipe makes what it needs
    commands = _ci_commands()
    assert len(commands) >= 8
    seen_candidate = False
    for words in commands:
        if "--out" in words:  # each documented run writes a directory of its own
            at = words.index("--out") + 1
            if Path(words[at]).exists():
                words[at] = f"{words[at]}-{len(list(Path('runs').iterdir()))}"
            seen_candidate |= "candidate" in words[at]
        r = run(*words[1:])
        assert r.code == 0, (words, r.out, r.err)
    assert seen_candidate
    assert Path("baselines/abab.json").is_file()
    assert Path("runs/compare.md").read_text().startswith("## kvverify compare: ✅ pass")
