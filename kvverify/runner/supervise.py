"""The supervisor: starts one worker process per variant, captures everything it and its
children write to file descriptors 1 and 2 into ``<out>/<variant>.log``, shows progress, and
handles crashes, hangs and Ctrl-C. Nothing is lost: the log is written as it arrives and kept
whatever happens; the supervisor appends an ``exit`` marker saying how the run ended.
"""

from __future__ import annotations

import contextlib
import os
import re
import select
import selectors
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Literal

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
    #: The signal that stopped kvverify itself (SIGINT for Ctrl-C, SIGTERM, SIGHUP), if any.
    stopped_by: int | None = None


Progress = Callable[[str], None]


class _StopRequest:
    """Ctrl-C, SIGTERM (a CI job cancelled) or SIGHUP (a terminal closed) during a run: the
    handler only records the signal; the supervisor's loop sees it within
    :data:`POLL_SECONDS`, stops the engine's processes and keeps everything they printed.
    (Raising from the handler could land anywhere: between a read and its write, or before
    the worker's handle is known.)"""

    def __init__(self) -> None:
        self.signum: int | None = None

    def __call__(self, signum: int, _frame: object) -> None:
        if self.signum is None:
            self.signum = signum


_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
#: How often the supervisor looks at the clock, the worker and a stop request.
POLL_SECONDS = 0.2


@contextlib.contextmanager
def _signals(handler: Any) -> Iterator[None]:
    """SIGINT, SIGTERM and SIGHUP go to ``handler`` for the duration, except a signal the
    parent ignores (``nohup kvverify run``, a background job): that stays ignored."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signals reach the main thread only
        return
    previous = {
        sig: signal.signal(sig, handler)
        for sig in _STOP_SIGNALS
        if signal.getsignal(sig) is not signal.SIG_IGN
    }
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


class _Log:
    """The variant's log file; remembers whether the last byte written ended a line."""

    def __init__(self, fh: BinaryIO) -> None:
        self._fh = fh
        self.at_line_start = True

    def write(self, data: bytes) -> None:
        if data:
            self._fh.write(data)
            self.at_line_start = data.endswith(b"\n")

    def append_line(self, line: bytes) -> None:
        """A line of kvverify's own, never glued to an unterminated line of the engine's."""
        self.write((b"" if self.at_line_start else b"\n") + line)


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
    stop = _StopRequest()
    with log_path.open("wb", buffering=0) as fh, _signals(stop):
        log = _Log(fh)
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
        output_open = True
        sel = selectors.DefaultSelector()
        sel.register(proc.stdout, selectors.EVENT_READ)
        say(f"[{variant.name}] starting {engine}")
        try:
            while True:
                now = time.monotonic()
                if stop.signum is not None:
                    status = "interrupted"
                    name = signal.Signals(stop.signum).name
                    detail = (
                        "interrupted (Ctrl-C): stopped"
                        if stop.signum == signal.SIGINT
                        else f"kvverify received {name}: stopped"
                    )
                    _stop(proc, log, first=signal.Signals(stop.signum))
                    break
                if deadline is not None and now > deadline:
                    status, detail = "timeout", f"no result after {timeout:g} s: stopped"
                    _stop(proc, log)
                    break
                exited = proc.poll() is not None
                if exited and not output_open:
                    break  # the worker is gone and so is everything that held its output
                if exited and drain_until is None:
                    drain_until = now + DRAIN_SECONDS
                if drain_until is not None and now > drain_until:
                    detail = (
                        f"the engine's child processes kept the output open "
                        f"{DRAIN_SECONDS:g} s after the worker exited: stopped"
                    )
                    _stop(proc, log)
                    break
                if not output_open:
                    time.sleep(POLL_SECONDS)  # output closed, worker still running: wait
                    continue
                if not sel.select(timeout=POLL_SECONDS):
                    continue
                chunk = os.read(proc.stdout.fileno(), 1 << 16)
                if not chunk:  # every process holding the output has closed it
                    output_open = False
                    sel.unregister(proc.stdout)
                    continue
                log.write(chunk)
                for m in _STEP.finditer(chunk):
                    kind = m.group(1).decode()
                    if kind == "step_begin":
                        say(f"[{variant.name}] step {int(m.group(2))}/{steps}")
                    elif kind == "shutdown" and m.group(3) == b"begin":
                        say(f"[{variant.name}] shutting down (the KV cache summary prints now)")
        finally:
            sel.close()
            if proc.poll() is None:  # only when kvverify itself failed (a full disk, a bug)
                _stop(proc, log)
            returncode = proc.wait()  # exited, or stopped by _stop
            proc.stdout.close()
        if status == "ok" and returncode != 0:
            status, detail = _crash(returncode)
        elif status == "ok" and detail:
            status = "crashed"
        log.append_line(
            markers.line(
                "exit",
                status=status,
                returncode=returncode,
                signal=_signal_name(returncode),
                detail=detail,
            ).encode()
        )
    say(f"[{variant.name}] {status}" + (f": {detail}" if detail and status != "ok" else ""))
    return RunResult(
        variant.name,
        log_path,
        status,
        returncode,
        detail,
        time.monotonic() - started,
        stop.signum,
    )


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


def _stop(proc: subprocess.Popen[bytes], log: _Log, first: signal.Signals = signal.SIGTERM) -> None:
    """Stop the worker and every process it started (its process group), keeping what they
    print meanwhile: ``first``, then SIGKILL to whatever of the group is left after
    :data:`GRACE_SECONDS`, whether or not the worker itself is still there."""
    for sig in (first, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            break  # the group is gone
        end = time.monotonic() + GRACE_SECONDS
        while time.monotonic() < end and _group_alive(proc):
            _read_available(proc, log, 0.05)
        if not _group_alive(proc):
            break
    _read_available(proc, log, GRACE_SECONDS)  # what a process outside the group still writes


def _group_alive(proc: subprocess.Popen[bytes]) -> bool:
    proc.poll()  # reap the worker: a zombie still counts as a member of its group
    try:
        os.killpg(proc.pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def _read_available(proc: subprocess.Popen[bytes], log: _Log, seconds: float) -> None:
    """Copy what the pipe holds to the log until every writer has gone, or for at most
    ``seconds`` while it stays quiet."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    end = time.monotonic() + seconds
    while True:
        ready, _, _ = select.select([fd], [], [], max(0.0, end - time.monotonic()))
        if not ready:
            return  # nothing more in time
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            return  # every writer has gone
        log.write(chunk)
