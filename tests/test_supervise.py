"""The supervisor's own lines: the exit marker must survive whatever the engine left behind."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kvverify import markers
from kvverify.check import Inputs, check_source
from kvverify.evidence.sources import LogSource
from kvverify.runner.supervise import _Log

SCENARIO = Path(__file__).resolve().parent / "data" / "standin.yaml"
STANDIN = Path(__file__).resolve().parent / "standin"


@pytest.fixture
def standin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join([str(STANDIN), *filter(None, [os.environ.get("PYTHONPATH")])])
    )


def test_the_exit_marker_never_joins_an_unterminated_line(tmp_path: Path) -> None:
    # A process killed mid-line leaves no newline; glued to that line, the marker would be
    # swallowed by it and a timed-out run would be checked as if it had ended well.
    path = tmp_path / "run.log"
    with path.open("wb") as fh:
        log = _Log(fh)
        for metric, value in (("missed blocks", 3), ("reused blocks", 4), ("cache hit rate", 0.5)):
            log.write(
                f"[TensorRT-LLM][DEBUG] BlockManager[windowSize=256] - {metric}: {value}\n".encode()
            )
        log.write(b"[TensorRT-LLM][DEBUG] BlockManager[windowSize=256] - reused tokens: 1")
        exit_ = markers.Exit(status="timeout", returncode=-9, signal="SIGKILL", detail="x")
        log.append_line(markers.encode(exit_).encode())
    text = path.read_text()
    assert '1\n[kvverify] {"v":1,"t":"exit"' in text
    report = check_source(LogSource(str(path)), Inputs())
    assert report.verdict == "crashed"


def test_a_terminated_line_gets_no_extra_newline(tmp_path: Path) -> None:
    path = tmp_path / "run.log"
    with path.open("wb") as fh:
        log = _Log(fh)
        log.write(b"done\n")
        log.append_line(b"marker\n")
    assert path.read_bytes() == b"done\nmarker\n"


def test_the_timeout_holds_when_the_worker_closes_its_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A worker that closes stdout and stderr but keeps running must still be stopped by the
    # timeout: the end of its output is not the end of the run.
    from kvverify.run import plan_for
    from kvverify.runner import supervise
    from kvverify.scenario import load

    scenario = load(SCENARIO)
    plan = plan_for(scenario, scenario.variants["offload_on"], "sim", None)
    quiet = "import os, time; print('hello', flush=True); os.close(1); os.close(2); time.sleep(60)"
    real_popen = subprocess.Popen

    def popen(cmd: list[str], **kwargs: object) -> subprocess.Popen[bytes]:
        return real_popen([sys.executable, "-c", quiet], **kwargs)  # type: ignore[call-overload,no-any-return]

    monkeypatch.setattr(supervise.subprocess, "Popen", popen)
    started = time.monotonic()
    result = supervise.run_variant(plan, tmp_path, timeout=2)
    assert time.monotonic() - started < 20
    assert result.status == "timeout"
    text = result.log.read_text()
    assert text.startswith("hello\n")
    assert '"t":"exit","status":"timeout"' in text


@pytest.mark.usefixtures("standin")
def test_nohup_keeps_sighup_ignored(tmp_path: Path) -> None:
    # Under nohup SIGHUP is ignored before kvverify starts: it must stay ignored.
    path = tmp_path / "s.yaml"
    text = SCENARIO.read_text().replace(
        "  max_batch_size: 1\n", "  max_batch_size: 1\n  env: {STANDIN_FAULT: 'hang:2'}\n"
    )
    path.write_text(text)
    out = tmp_path / "out"
    nohup = shutil.which("nohup")
    if nohup is None:
        pytest.skip("no nohup here")
    cmd = [nohup, sys.executable, "-m", "kvverify", "run", str(path), "--engine", "trtllm"]
    proc = subprocess.Popen(
        [*cmd, "--variant", "offload_on", "--out", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    log = out / "offload_on.log"
    deadline = time.monotonic() + 60
    while not (log.exists() and '"t":"step_begin","step":2' in log.read_text()):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    proc.send_signal(signal.SIGHUP)
    time.sleep(1.0)
    assert proc.poll() is None  # still running
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 143, stderr
    assert "exit 143" in stdout  # the report says the exit code the process has


def test_another_interpreter_gets_none_of_kvverifys_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from kvverify.run import plan_for
    from kvverify.runner.supervise import environment
    from kvverify.scenario import load

    ours = str(Path(sys.executable).parent)
    monkeypatch.setenv("VIRTUAL_ENV", str(Path(sys.prefix)))
    monkeypatch.setenv("PATH", os.pathsep.join([ours, "/usr/bin"]))
    scenario = load(SCENARIO)
    plan = plan_for(scenario, scenario.variants["offload_on"], "trtllm", None)
    other = tmp_path / "env" / "bin" / "python"
    env = environment(plan, str(tmp_path / "shim"), str(other))
    assert "VIRTUAL_ENV" not in env
    assert env["PATH"].split(os.pathsep) == [str(other.parent), "/usr/bin"]
    assert env["PYTHONPATH"].split(os.pathsep)[0] == str(tmp_path / "shim")
    assert environment(plan)["PATH"].split(os.pathsep)[0] == ours  # its own: untouched
