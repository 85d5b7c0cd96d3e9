"""The marker protocol: how ``kvverify run`` writes what it learns into the captured stream.

A marker is one line, ``[kvverify] {json}``, written next to what the engine prints, so a saved
log alone lets ``kvverify check`` repeat the run's verdict. Every marker has ``v`` (protocol
version) and ``t`` (type):

``run``         first, before the engine is imported: scenario, variant, engine
                (``trtllm``/``sim``), expect (expectations as written), steps (count)
``engine``      the engine's package is loaded: engine_version
``ready``       the engine is built: dialect (sim), max_batch_size, prompt_lengths (per step),
                approximate_tokens, tokenizer, predicted (reference-model numbers, when the
                scenario has a {matches: predicted} expectation)
``step_begin``  step (from 1), prompt
``step_end``    step, prompt, request_id (``RequestOutput.request_id``), prompt_len, output_len,
                cached_tokens, first_token_ms, latency_ms, kv (per-request KV-cache metrics)
``iter_stats``  stats: iteration statistics (``kvCacheStats`` / ``kvCacheIterationStats`` only)
``kv_events``   events: KV-cache events without their token lists
``shutdown``    phase: ``begin`` | ``end``
``error``       message: an exception in the worker, with its type
``exit``        written by the supervisor: status (``ok``/``crashed``/``timeout``/
                ``interrupted``), returncode, signal, detail
"""

from __future__ import annotations

import json
import os
from typing import Any

PREFIX = "[kvverify] "
VERSION = 1


def line(kind: str, **fields: Any) -> str:
    """One marker line, newline included. Leads with a newline-free JSON object."""
    payload = json.dumps({"v": VERSION, "t": kind, **fields}, separators=(",", ":"), default=str)
    return PREFIX + payload + "\n"


def write_out(data: bytes) -> None:
    """All of ``data`` to file descriptor 1 itself, where TensorRT-LLM's C++ logger writes, so
    that kvverify's lines and the engine's stay in order (``sys.stdout`` buffers)."""
    while data:
        data = data[os.write(1, data) :]
