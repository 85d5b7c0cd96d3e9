"""The supervisor: starts one worker process per variant, captures everything it and its
children write to file descriptors 1 and 2 into ``<out>/<variant>.log``, shows progress, and
handles crashes, hangs and Ctrl-C. Nothing is lost: the log is written as it arrives and kept
whatever happens; the supervisor appends an ``exit`` marker saying how the run ended.
"""

from __future__ import annotations

import os
import re
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from kvverify import markers
from kvverify.engines.base import EngineName
from kvverify.scenario import Variant

Status = Literal["ok", "crashed", "timeout", "interrupted", "rejected"]

#: After the worker exits, how long its children (an MPI worker, its daemon) may keep the
#: output open before they are killed (they are still printing the summary, normally).
DRAIN_SECONDS = 120.0
#: Between SIGTERM and SIGKILL when a run is stopped.
GRACE_SECONDS = 5.0

_STEP = re.compile(
    rb'\[kvverify\] \{"v":1,"t":"(step_begin|step_end|shutdown|error)"'
    rb'(?:,"step":(\d+))?(?:,"phase":"(\w+)")?'
)


@dataclass
class RunResult:
    variant: str
    log: Path
    status: Status
    returncode: int | None
    detail: str
    seconds: float


Progress = Callable[[str], None]


def environment(variant: Variant) -> dict[str, str]:
    """The worker's environment: TLLM_LOG_LEVEL=DEBUG before TensorRT-LLM is imported,
    unbuffered Python output, the scenario's own variables."""
    env = dict(os.environ)
    env["TLLM_LOG_LEVEL"] = "DEBUG"
    env["PYTHONUNBUFFERED"] = "1"
    env.update(variant.engine.env)
    return env


def run_variant(
    scenario_path: str,
    variant: Variant,
    engine: EngineName,
    out_dir: Path,
    *,
    timeout: float | None,
    dialect: str | None = None,
    progress: Progress | None = None,
) -> RunResult:
    """Run one variant in a worker process; never raises for what the engine does."""
    out_dir.mkdir(parents=True, exist_ok=True)
    log_path = out_dir / f"{variant.name}.log"
    cmd = [sys.executable, "-m", "kvverify.runner.worker", scenario_path, variant.name, engine]
    if dialect:
        cmd += ["--dialect", dialect]
    started = time.monotonic()
    steps = len(variant.steps)
    say = progress or (lambda _text: None)
    with log_path.open("wb", buffering=0) as log:
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=environment(variant),
            start_new_session=True,
        )
        assert proc.stdout is not None
        status: Status = "ok"
        detail = ""
        deadline = None if timeout is None else started + timeout
        drain_until: float | None = None
        sel = selectors.DefaultSelector()
        sel.register(proc.stdout, selectors.EVENT_READ)
        say(f"[{variant.name}] starting {engine}")
        try:
            while True:
                now = time.monotonic()
                if deadline is not None and now > deadline:
                    status, detail = "timeout", f"no result after {timeout:g} s: stopped"
                    _stop(proc)
                    break
                if proc.poll() is not None and drain_until is None:
                    drain_until = now + DRAIN_SECONDS
                if drain_until is not None and now > drain_until:
                    detail = (
                        f"the engine's child processes kept the output open "
                        f"{DRAIN_SECONDS:g} s after the worker exited: stopped"
                    )
                    _stop(proc)
                    break
                if not sel.select(timeout=0.2):
                    continue
                chunk = os.read(proc.stdout.fileno(), 1 << 16)
                if not chunk:
                    break  # every process holding the output has closed it
                log.write(chunk)
                for m in _STEP.finditer(chunk):
                    kind = m.group(1).decode()
                    if kind == "step_begin":
                        say(f"[{variant.name}] step {int(m.group(2))}/{steps}")
                    elif kind == "shutdown" and m.group(3) == b"begin":
                        say(f"[{variant.name}] shutting down (the KV cache summary prints now)")
        except KeyboardInterrupt:
            status, detail = "interrupted", "interrupted (Ctrl-C): stopped"
            _stop(proc, first=signal.SIGINT)
            _drain(proc, log)
        finally:
            sel.close()
        returncode = proc.wait()
        proc.stdout.close()
        if status == "ok" and returncode != 0:
            status, detail = _crash(returncode)
        elif status == "ok" and detail:
            status = "crashed"
        log.write(
            markers.line(
                "exit",
                status=status,
                returncode=returncode,
                signal=_signal_name(returncode),
                detail=detail,
            ).encode()
        )
    say(f"[{variant.name}] {status}" + (f": {detail}" if detail and status != "ok" else ""))
    return RunResult(variant.name, log_path, status, returncode, detail, time.monotonic() - started)


def _crash(returncode: int) -> tuple[Status, str]:
    if returncode < 0:
        return "crashed", f"killed by {_signal_name(returncode)}"
    if returncode == 2:
        return "rejected", "the engine refused the scenario (see the error in the log)"
    return "crashed", f"exit status {returncode}"


def _signal_name(returncode: int | None) -> str | None:
    if returncode is None or returncode >= 0:
        return None
    try:
        return signal.Signals(-returncode).name
    except ValueError:
        return f"signal {-returncode}"


def _stop(proc: subprocess.Popen[bytes], first: signal.Signals = signal.SIGTERM) -> None:
    """Stop the worker and every process it started (its process group)."""
    for sig in (first, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            return
        try:
            proc.wait(timeout=GRACE_SECONDS)
            return
        except subprocess.TimeoutExpired:
            continue


def _drain(proc: subprocess.Popen[bytes], log: object) -> None:
    """Keep what is still in the pipe after a stop."""
    assert proc.stdout is not None
    os.set_blocking(proc.stdout.fileno(), False)
    end = time.monotonic() + GRACE_SECONDS
    while time.monotonic() < end:
        try:
            chunk = os.read(proc.stdout.fileno(), 1 << 16)
        except BlockingIOError:
            time.sleep(0.05)
            continue
        if not chunk:
            return
        log.write(chunk)  # type: ignore[attr-defined]
