"""Shared fixtures."""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from kvverify.cli import main
from kvverify.evidence.parse import engine_name, native_available

#: The JSON report's contract (docs/check-report.schema.json).
SCHEMA = json.loads(
    (Path(__file__).resolve().parent.parent / "docs" / "check-report.schema.json").read_text()
)


@dataclass
class Result:
    code: int
    out: str
    err: str


Run = Callable[..., Result]


#: Variables a CI system sets that change what kvverify writes: a test that wants one sets it.
_CI_VARIABLES = ("GITHUB_ACTIONS", "GITHUB_STEP_SUMMARY", "GITHUB_OUTPUT", "GITLAB_CI")


@pytest.fixture(autouse=True)
def _hermetic(monkeypatch: pytest.MonkeyPatch) -> None:
    """The suite never writes into the real job summary of the CI that runs it."""
    for name in _CI_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Run:
    """Run the kvverify command line in-process: exit code, stdout and stderr."""

    def invoke(*args: str, stdin: bytes | None = None) -> Result:
        if stdin is not None:
            monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin)))
        code = main(list(args))
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return invoke


def use_parser(mp: pytest.MonkeyPatch, path: str) -> None:
    """Take the ``native`` or the ``python`` parser path (skipped when the native one was not
    built here: tests/test_native.py fails the suite when it should have been)."""
    if path == "native" and not native_available():
        pytest.skip("the native scanner is not built here")
    mp.setenv("KVVERIFY_NATIVE", "1" if path == "native" else "0")
    assert engine_name() == path


@pytest.fixture(scope="module", params=["native", "python"])
def each_parser(request: pytest.FixtureRequest) -> Iterator[str]:
    """Every test of a module that uses it runs on both parser paths."""
    with pytest.MonkeyPatch.context() as mp:
        use_parser(mp, request.param)
        yield request.param
