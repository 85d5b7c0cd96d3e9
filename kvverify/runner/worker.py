"""The worker: runs one scenario variant on one engine, inside its own process.

Started by the supervisor with ``TLLM_LOG_LEVEL=DEBUG`` already in its environment (TensorRT-LLM
reads it once, at import), and with file descriptors 1 and 2 captured. It writes marker lines
(``kvverify.markers``) next to what the engine prints, shuts the engine down so the KV cache
manager prints its summary, and exits normally: never ``os._exit``, which would lose that summary.

    python -m kvverify.runner.worker SCENARIO VARIANT ENGINE [--dialect D]
"""

from __future__ import annotations

import argparse
import gc
import sys
import traceback
from collections.abc import Callable
from typing import Any

from kvverify import markers, predict
from kvverify.engines import base
from kvverify.engines.sim.dialects import DEFAULT_DIALECT
from kvverify.errors import KvverifyError
from kvverify.scenario import load


def emit(kind: str, **fields: Any) -> None:
    """A marker line, written straight to fd 1 so it stays in order with the engine's lines
    (which TensorRT-LLM's C++ logger writes to fd 1 too)."""
    sys.stdout.flush()
    markers.write_out(markers.line(kind, **fields).encode())


Emit = Callable[..., None]


def run(
    scenario_path: str,
    variant_name: str,
    engine_name: base.EngineName,
    options: dict[str, Any],
    emit: Emit = emit,
    engine: base.Engine | None = None,
) -> int:
    """Run one variant: markers through ``emit``, the engine's own lines wherever the engine
    writes them (file descriptor 1 for a real engine). ``engine``: one already built."""
    scenario = load(scenario_path)
    (variant,) = scenario.select([variant_name])
    # First, so that a log whose engine never starts still says what it was to check.
    emit(
        "run",
        scenario=scenario.name,
        variant=variant.name,
        engine=engine_name,
        expect=[e.text for e in variant.expect],
        steps=len(variant.steps),
    )
    if engine is None:
        engine = base.create(engine_name, **options)
    emit("engine", engine_version=engine.version())
    engine.start(variant)
    info = engine.run_info()
    if variant.match_predicted:  # only a {matches: predicted} expectation reads it
        info["predicted"] = predict.marker_for(variant, info.get("dialect") or DEFAULT_DIALECT)
    emit("ready", **info)
    for step in variant.steps:
        emit("step_begin", step=step.index, prompt=step.prompt)
        outcome = engine.step(step)
        emit(
            "step_end",
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
    stats = engine.stats()
    if stats:
        emit("iter_stats", stats=stats)
    events = engine.events()
    if events:
        emit("kv_events", events=events)
    emit("shutdown", phase="begin")
    engine.shutdown()
    del engine
    gc.collect()  # the KV cache manager prints its summary when it is destroyed
    emit("shutdown", phase="end")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="kvverify.runner.worker")
    ap.add_argument("scenario")
    ap.add_argument("variant")
    ap.add_argument("engine", choices=["trtllm", "sim"])
    ap.add_argument("--dialect")
    args = ap.parse_args(argv)
    options = {"dialect": args.dialect} if args.dialect else {}
    try:
        return run(args.scenario, args.variant, args.engine, options)
    except KvverifyError as exc:  # the input is wrong (e.g. a key this TensorRT-LLM lacks)
        where = f"{exc.where}: " if exc.where else ""
        emit(
            "error",
            type=type(exc).__name__,
            message=where + exc.message,
            hint=exc.hint,
            exit_code=exc.exit_code,
        )
        return exc.exit_code
    except Exception as exc:
        emit("error", type=type(exc).__name__, message=str(exc)[:2000])
        traceback.print_exc()
        sys.stderr.flush()
        return 1


if __name__ == "__main__":
    sys.exit(main())
