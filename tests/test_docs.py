"""Docs that tests keep honest."""

from __future__ import annotations

import dataclasses
import json
import re
import shlex
from pathlib import Path

import click

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
    assert first.endswith("pip install . && kvverify run")
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
