"""The supervisor: starts one worker process per variant, captures everything it and its
children write to file descriptors 1 and 2 into ``<out>/<variant>.log``, shows progress, and
handles crashes, hangs and Ctrl-C. Nothing is lost: the log is written as it arrives and kept
whatever happens; the supervisor appends an ``exit`` marker saying how the run ended.
"""

from __future__ import annotations

import contextlib
import os
import select
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Literal

from kvverify import exitcodes, markers
from kvverify.markers import ExitStatus as Status
from kvverify.plan import Plan

#: After the worker exits, how long its children (an MPI worker, its daemon) may keep the
#: output open before they are killed (they are still printing the summary, normally).
DRAIN_SECONDS = 120.0
#: Between SIGTERM and SIGKILL when a run is stopped.
GRACE_SECONDS = 5.0


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


@dataclass(frozen=True)
class Event:
    """What a run is doing, for a progress display: ``starting``, ``step`` (``step`` of
    ``steps`` begins), ``shutdown`` (the KV-cache summary prints now), ``done`` (``status``,
    ``detail``)."""

    variant: str
    what: Literal["starting", "step", "shutdown", "done"]
    engine: str = ""
    step: int = 0
    steps: int = 0
    status: Status = "ok"
    detail: str = ""


Progress = Callable[[Event], None]


class _Markers:
    """The markers in the captured stream, line by line as chunks arrive (a line may be cut
    between chunks): progress, and the worker's own account of a failure."""

    def __init__(self, plan: Plan, say: Progress) -> None:
        self._tail = b""
        self._plan = plan
        self._say = say
        self.error: markers.WorkerError | None = None

    def feed(self, chunk: bytes) -> None:
        data = self._tail + chunk
        cut = data.rfind(b"\n") + 1
        self._tail = data[cut:][-(1 << 20) :]  # a marker is far shorter; junk is not kept
        if markers.PREFIX.encode() not in data[:cut]:
            return
        for line in data[:cut].splitlines():
            record = markers.find(line)
            if isinstance(record, markers.StepBegin):
                self._say(
                    Event(self._plan.variant, "step", step=record.step, steps=len(self._plan.steps))
                )
            elif isinstance(record, markers.Shutdown) and record.phase == "begin":
                self._say(Event(self._plan.variant, "shutdown"))
            elif isinstance(record, markers.WorkerError):
                self.error = record


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


def environment(
    plan: Plan, path_entry: str | None = None, python: str | None = None
) -> dict[str, str]:
    """The worker's environment: TLLM_LOG_LEVEL=DEBUG before TensorRT-LLM is imported,
    unbuffered Python output, the scenario's own variables; ``path_entry`` first on
    PYTHONPATH (where another interpreter finds this kvverify). Under another interpreter
    (``python``) nothing of kvverify's own environment is left in the way: not its
    VIRTUAL_ENV, not its bin directory on PATH (what the engine starts as ``python`` is then
    the other environment's)."""
    env = dict(os.environ)
    if python is not None:
        env.pop("VIRTUAL_ENV", None)
        ours = {str(Path(sys.prefix) / "bin"), str(Path(sys.executable).parent)}
        kept = [d for d in env.get("PATH", "").split(os.pathsep) if d and d not in ours]
        env["PATH"] = os.pathsep.join([str(Path(python).parent), *kept])
    env["TLLM_LOG_LEVEL"] = "DEBUG"
    env["PYTHONUNBUFFERED"] = "1"
    env.update(plan.env)
    if path_entry is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [path_entry, env.get("PYTHONPATH")]))
    return env


@contextlib.contextmanager
def _package_path(python: str | None) -> Iterator[str | None]:
    """For a worker under another interpreter: a directory holding only this kvverify package,
    for its PYTHONPATH (the worker needs the standard library only; the other environment's
    own packages are not shadowed, and a kvverify installed there is)."""
    if python is None:
        yield None
        return
    package = Path(__file__).resolve().parent.parent
    with tempfile.TemporaryDirectory(prefix="kvverify-worker-") as tmp:
        link = Path(tmp) / "kvverify"
        try:
            link.symlink_to(package, target_is_directory=True)
        except OSError:  # no symlinks (Windows without the privilege): a copy
            shutil.copytree(package, link, ignore=shutil.ignore_patterns("__pycache__", "*.so"))
        yield tmp


def run_variant(
    plan: Plan,
    out_dir: Path,
    *,
    timeout: float | None,
    python: str | None = None,
    progress: Progress | None = None,
) -> RunResult:
    """Run one variant in a worker process (under ``python``, default this interpreter);
    never raises for what the engine does. The plan goes next to the log."""
    log_path = out_dir / f"{plan.variant}.log"
    plan_path = out_dir / f"{plan.variant}.plan.json"
    plan.write(plan_path)
    cmd = [python or sys.executable, "-m", "kvverify.runner.worker", str(plan_path)]
    started = time.monotonic()
    say = progress or (lambda _event: None)
    seen = _Markers(plan, say)
    stop = _StopRequest()
    with (
        _package_path(python) as path_entry,
        log_path.open("wb", buffering=0) as fh,
        _signals(stop),
    ):
        log = _Log(fh)
        say(Event(plan.variant, "starting", engine=plan.engine))
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=environment(plan, path_entry, python),
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
                    log.append_line(markers.encode(markers.Stop("signal", name)).encode())
                    _stop(proc, log, first=signal.Signals(stop.signum))
                    break
                if deadline is not None and now > deadline:
                    status, detail = "timeout", f"no result after {timeout:g} s: stopped"
                    log.append_line(markers.encode(markers.Stop("timeout")).encode())
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
                    log.append_line(markers.encode(markers.Stop("drain")).encode())
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
                seen.feed(chunk)
        finally:
            sel.close()
            if proc.poll() is None:  # only when kvverify itself failed (a full disk, a bug)
                _stop(proc, log)
            returncode = proc.wait()  # exited, or stopped by _stop
            proc.stdout.close()
        if status == "ok":
            status, detail = _ending(returncode, seen.error, detail)
        log.append_line(
            markers.encode(
                markers.Exit(
                    status=status,
                    returncode=returncode,
                    signal=_signal_name(returncode),
                    detail=detail,
                )
            ).encode()
        )
    say(Event(plan.variant, "done", status=status, detail=detail))
    return RunResult(
        plan.variant,
        log_path,
        status,
        returncode,
        detail,
        time.monotonic() - started,
        stop.signum,
    )


def _ending(returncode: int, error: markers.WorkerError | None, detail: str) -> tuple[Status, str]:
    """How a worker that kvverify did not stop ended. Refused input and an engine that could
    not start are told by the worker's own error marker, not by the exit status alone."""
    said = error.exit_code if error is not None else None
    if returncode == exitcodes.UNUSABLE and said == exitcodes.UNUSABLE:
        return "rejected", "the engine refused the scenario (see the error in the log)"
    if returncode == exitcodes.ENGINE and said == exitcodes.ENGINE:
        assert error is not None
        return "unavailable", error.message
    if returncode < 0:
        return "crashed", f"killed by {_signal_name(returncode)}"
    if returncode != 0:
        return "crashed", f"exit status {returncode}"
    if detail:  # the worker exited, its children held the output open and were stopped
        return "crashed", detail
    return "ok", ""


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
