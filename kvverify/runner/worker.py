"""The worker: runs one scenario variant on one engine, inside its own process.

Started by the supervisor with ``TLLM_LOG_LEVEL=DEBUG`` already in its environment (TensorRT-LLM
reads it once, at import), and with file descriptors 1 and 2 captured. It writes marker lines
(:mod:`kvverify.markers`) next to what the engine prints, shuts the engine down so the KV cache
manager prints its summary, and exits normally: never ``os._exit``, which would lose that summary.

    python -m kvverify.runner.worker PLAN.json

Exit status: 0 done; 1 the engine failed while running; 2 the engine refused the input; 3 the
engine could not start; 130 interrupted (the supervisor stops the run with the signal it got).
Standard library only (see :mod:`kvverify.plan`).
"""

from __future__ import annotations

import gc
import sys
import traceback
from collections.abc import Callable
from typing import Any

from kvverify import exitcodes, markers
from kvverify.engines import base
from kvverify.errors import KvverifyError
from kvverify.plan import Plan


def emit(record: markers.Record) -> None:
    """A marker line, written straight to fd 1 so it stays in order with the engine's lines
    (which TensorRT-LLM's C++ logger writes to fd 1 too)."""
    sys.stdout.flush()
    markers.write_out(markers.encode(record).encode())


Emit = Callable[[markers.Record], None]


def _read_api(api: str, read: Callable[[], list[dict[str, Any]]], emit: Emit) -> list[Any]:
    """What an engine API returns; when it fails, an ``api_error`` marker instead: after an
    upgrade that changed the API the report names the cause, not 'no evidence'."""
    try:
        return read()
    except Exception as exc:  # recorded in the log and reported, never dropped
        emit(markers.ApiFailure(api=api, type=type(exc).__name__, message=str(exc)[:2000]))
        return []


def run(plan: Plan, emit: Emit = emit, engine: base.Engine | None = None) -> int:
    """Run one variant: markers through ``emit``, the engine's own lines wherever the engine
    writes them (file descriptor 1 for a real engine). ``engine``: one already built."""
    # First, so that a log whose engine never starts still says what it was to check.
    emit(
        markers.Run(
            scenario=plan.scenario,
            variant=plan.variant,
            engine=plan.engine,
            expect=plan.expect,
            steps=len(plan.steps),
            python=plan.python,
        )
    )
    if engine is None:
        engine = base.create(plan.engine, **plan.options)  # type: ignore[arg-type]
    emit(markers.EngineLoaded(engine_version=engine.version()))
    engine.start(plan)
    info = engine.run_info()
    emit(
        markers.Ready(
            dialect=info.get("dialect"),
            max_batch_size=info.get("max_batch_size"),
            prompt_lengths=tuple(info.get("prompt_lengths") or ()),
            approximate_tokens=bool(info.get("approximate_tokens")),
            tokenizer=info.get("tokenizer"),
            predicted=plan.predicted,
        )
    )
    for step in plan.steps:
        emit(markers.StepBegin(step=step.index, prompt=step.prompt))
        outcome = engine.step(step)
        emit(
            markers.StepEnd(
                step=step.index,
                prompt=step.prompt,
                request_id=outcome.request_id,
                prompt_len=outcome.prompt_len,
                output_len=outcome.output_len,
                cached_tokens=outcome.cached_tokens,
                first_token_ms=outcome.first_token_ms,
                latency_ms=outcome.latency_ms,
                kv=outcome.kv,
            )
        )
    stats = _read_api("get_stats", engine.stats, emit)
    if stats:
        emit(markers.IterStats(stats=tuple(stats)))
    events = _read_api("get_kv_cache_events", engine.events, emit)
    if events:
        emit(markers.KvEvents(events=tuple(events)))
    emit(markers.Shutdown(phase="begin"))
    engine.shutdown()
    del engine
    gc.collect()  # the KV cache manager prints its summary when it is destroyed
    emit(markers.Shutdown(phase="end"))
    return exitcodes.PASS


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m kvverify.runner.worker PLAN.json", file=sys.stderr)
        return exitcodes.UNUSABLE
    try:
        return run(Plan.read(args[0]))
    except KeyboardInterrupt:
        # The supervisor forwarded Ctrl-C and says so in the log: no traceback of ours.
        return exitcodes.INTERRUPTED
    except KvverifyError as exc:  # refused input (2) or an engine that cannot start (3)
        where = f"{exc.where}: " if exc.where else ""
        emit(
            markers.WorkerError(
                type=type(exc).__name__,
                message=where + exc.message,
                hint=exc.hint,
                exit_code=exc.exit_code,
            )
        )
        return exc.exit_code
    except Exception as exc:
        emit(markers.WorkerError(type=type(exc).__name__, message=str(exc)[:2000]))
        traceback.print_exc()
        sys.stderr.flush()
        return exitcodes.FAIL


if __name__ == "__main__":
    sys.exit(main())
