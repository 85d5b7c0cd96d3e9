"""The TensorRT-LLM adapter: ``LLM``, ``KvCacheConfig``, ``SamplingParams``, ``generate``,
``get_stats``, ``get_kv_cache_events`` and ``shutdown``, called as TensorRT-LLM's source defines
them (``tensorrt_llm/llmapi/llm.py``, ``llm_args.py``, ``sampling_params.py``; notes in
docs/trtllm-logs.md §9). ``tensorrt_llm`` is imported only here, only in the worker, after
``TLLM_LOG_LEVEL`` is set. kvverify does not probe the GPU: TensorRT-LLM fails and the failure
is reported.

It reads only the run's :class:`~kvverify.plan.Plan` and needs the standard library
only, so that it runs under the interpreter of the TensorRT-LLM under test (``--python``).

This module was written against the source and tested through a stand-in package
(``tests/standin/tensorrt_llm``); no run on a GPU has been made with it.
"""

from __future__ import annotations

import gc
import time
from datetime import timedelta
from typing import Any

from kvverify.engines.base import EngineName, StepOutcome
from kvverify.errors import EngineError, EngineUnavailable, did_you_mean
from kvverify.plan import Plan, Step
from kvverify.text import clean

INSTALL_HINT = (
    "install TensorRT-LLM on a GPU host (NVIDIA's install guide; kvverify's trtllm extra "
    "declares it: pip install '.[trtllm]' from a kvverify checkout), or run on the reference "
    "model with --engine sim"
)

#: KV-cache fields of the iteration statistics worth keeping in the log.
_STAT_KEYS = ("iter", "timestamp", "kvCacheStats", "kvCacheIterationStats")


def _import() -> Any:
    """``tensorrt_llm``, or :class:`EngineUnavailable` with the import error in one line:
    not installed (ImportError), a CUDA or TensorRT library missing (ImportError or OSError
    from the loader), or anything else its ``__init__`` raises."""
    try:
        import tensorrt_llm
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt | SystemExit):
            raise
        detail = clean(" ".join(str(exc).split()) or type(exc).__name__)
        raise EngineUnavailable(
            f"cannot import tensorrt_llm: {type(exc).__name__}: {detail}", hint=INSTALL_HINT
        ) from None
    return tensorrt_llm


def _fields(cls: Any) -> set[str] | None:
    """A pydantic model's field names (None if the class is not one we can read)."""
    fields = getattr(cls, "model_fields", None)
    return set(fields) if isinstance(fields, dict) else None


def _unknown(
    kind: str, given: dict[str, Any], known: set[str] | None, where: str, version: str
) -> list[str]:
    if known is None:
        return []
    out = []
    for key in given:
        if key not in known:
            out.append(
                f"{where}.{key}: {kind} of TensorRT-LLM {version} has no such argument"
                + did_you_mean(key, sorted(known))
            )
    return out


class TrtllmEngine:
    name: EngineName = "trtllm"

    def __init__(self) -> None:
        self._tllm = _import()
        self._llm: Any = None
        self._sampling: Any = None
        self._events_enabled = False
        self._plan: Plan | None = None
        #: the last request's prompt and answer: where a continuing turn starts
        self._conversation: list[int] = []

    def version(self) -> str | None:
        version = getattr(self._tllm, "__version__", None)
        return None if version is None else str(version)

    def run_info(self) -> dict[str, Any]:
        """What a check needs to tell warm-up dummies from the steps (reference §9.3: warm-up
        ids lie below max_batch_size, the k-th request gets max_batch_size + k): the batch
        size the engine resolved, and each step's prompt length in tokens where it is known."""
        assert self._plan is not None
        args = getattr(self._llm, "args", None)
        batch = getattr(args, "max_batch_size", None)
        if not isinstance(batch, int):
            batch = self._plan.max_batch_size
        return {
            "max_batch_size": batch,
            "prompt_lengths": [self._prompt_length(s) for s in self._plan.steps],
        }

    def _prompt_length(self, step: Step) -> int | None:
        assert self._plan is not None
        known = self._plan.prompt_length(step)
        if known is not None or step.continues:
            return known
        tokenizer = getattr(self._llm, "tokenizer", None)  # LLM.tokenizer; None without one
        if tokenizer is None:
            return None
        try:  # generate() tokenizes with special tokens, as encode() does by default
            return len(tokenizer.encode(self._plan.prompts[step.prompt].text))
        except Exception:  # a length is a cross-check only: without it steps map by order
            return None

    def start(self, plan: Plan) -> None:
        self._plan = plan
        from tensorrt_llm import LLM, SamplingParams
        from tensorrt_llm.llmapi import KvCacheConfig

        try:
            from tensorrt_llm.llmapi import TorchLlmArgs

            llm_fields = _fields(TorchLlmArgs)
        except ImportError:
            llm_fields = None
        version = self.version() or "?"
        kv_kwargs = dict(plan.kv_cache_kwargs)
        kv_fields = _fields(KvCacheConfig)
        # V2 prints no summary: keep the V1 manager unless the scenario chose otherwise.
        if kv_fields and "use_kv_cache_manager_v2" in kv_fields:
            kv_kwargs.setdefault("use_kv_cache_manager_v2", False)
        llm_kwargs = dict(plan.llm_kwargs)
        wanted = {"return_perf_metrics": True, "enable_iter_perf_stats": True}
        for key, value in wanted.items():
            if llm_fields is not None and key in llm_fields:
                llm_kwargs.setdefault(key, value)
        problems = _unknown("KvCacheConfig", kv_kwargs, kv_fields, "engine.kv_cache", version)
        known_llm = None if llm_fields is None else llm_fields | {"backend"}
        problems += _unknown("LLM", llm_kwargs, known_llm, "engine", version)
        if problems:
            raise EngineError(
                "; ".join(problems),
                where=plan.variant,
                hint="remove the key, or run a TensorRT-LLM that has it",
            )
        self._events_enabled = bool(kv_kwargs.get("event_buffer_max_size"))
        try:
            self._sampling = SamplingParams(**{"return_perf_metrics": True, **plan.sampling_kwargs})
        except TypeError as exc:
            raise EngineError(
                f"SamplingParams of TensorRT-LLM {version}: {exc}",
                where=f"{plan.variant}: sampling",
            ) from None
        kv_cache_config = KvCacheConfig(**kv_kwargs)
        self._llm = LLM(model=plan.model, kv_cache_config=kv_cache_config, **llm_kwargs)

    def _retention_for(self, step: Step) -> Any:
        if step.priority is None:
            return None
        from tensorrt_llm.llmapi import KvCacheRetentionConfig

        token_range = KvCacheRetentionConfig.TokenRangeRetentionConfig(0, None, step.priority)
        return KvCacheRetentionConfig(
            token_range_retention_configs=[token_range], decode_retention_priority=step.priority
        )

    def step(self, step: Step) -> StepOutcome:
        assert self._plan is not None
        prompt = self._plan.prompts[step.prompt]
        inputs: Any = list(prompt.tokens) if prompt.tokens is not None else prompt.text
        if step.continues:  # validated: token ids all along the conversation
            inputs = [*self._conversation, *inputs]
        kwargs: dict[str, Any] = {"use_tqdm": False}
        retention = self._retention_for(step)
        if retention is not None:
            kwargs["kv_cache_retention_config"] = retention
        t0 = time.perf_counter()
        out = self._llm.generate(inputs, self._sampling, **kwargs)
        latency = (time.perf_counter() - t0) * 1000
        completion = out.outputs[0]
        perf = getattr(completion, "request_perf_metrics", None)
        self._conversation = [*(out.prompt_token_ids or []), *(completion.token_ids or [])]
        return StepOutcome(
            request_id=_int(getattr(out, "request_id", None)),
            prompt_len=len(out.prompt_token_ids) if out.prompt_token_ids is not None else None,
            output_len=len(completion.token_ids or []),
            cached_tokens=_int(getattr(out, "cached_tokens", None)),
            first_token_ms=_first_token_ms(perf),
            latency_ms=latency,
            kv=_kv_metrics(perf),
        )

    def stats(self) -> list[dict[str, Any]]:
        """``LLM.get_stats``; a failure propagates (the worker records it as API drift)."""
        stats = _dicts("get_stats", self._llm.get_stats(timeout=2))
        return [{k: s[k] for k in _STAT_KEYS if k in s} for s in stats]

    def events(self) -> list[dict[str, Any]]:
        """``LLM.get_kv_cache_events``, when the scenario enabled them; a failure propagates."""
        if not self._events_enabled:
            return []
        events = _dicts("get_kv_cache_events", self._llm.get_kv_cache_events(timeout=2))
        return [_strip_tokens(e) for e in events]

    def shutdown(self) -> None:
        if self._llm is not None:
            self._llm.shutdown()
            self._llm = None  # drop the last reference: the KV cache manager is destroyed
        gc.collect()


def _dicts(api: str, items: Any) -> list[dict[str, Any]]:
    """What ``get_stats`` and ``get_kv_cache_events`` return from 1.0 on: a list of dicts
    (``IterationResult.get_results`` decodes each JSON string). Anything else is API drift,
    raised so that the worker records it, never skipped."""
    if not isinstance(items, list) or not all(isinstance(x, dict) for x in items):
        shown = type(items).__name__
        if isinstance(items, list):
            shown = f"a list holding {sorted({type(x).__name__ for x in items})}"
        raise TypeError(f"{api}() returned {shown}, not a list of dicts")
    return items


def _int(value: Any) -> int | None:
    try:
        return None if value is None else int(value)
    except (TypeError, ValueError):
        return None


def _seconds(value: Any) -> float | None:
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, int | float):
        return float(value)
    return None


def _first_token_ms(perf: Any) -> float | None:
    timing = getattr(perf, "timing_metrics", None)
    arrival = _seconds(getattr(timing, "arrival_time", None))
    first = _seconds(getattr(timing, "first_token_time", None))
    if arrival is None or first is None or first < arrival:
        return None
    return (first - arrival) * 1000


def _kv_metrics(perf: Any) -> dict[str, float] | None:
    kv = getattr(perf, "kv_cache_metrics", None)
    if kv is None:
        return None
    out = {}
    for name in (
        "num_total_allocated_blocks",
        "num_new_allocated_blocks",
        "num_reused_blocks",
        "num_missed_blocks",
        "kv_cache_hit_rate",
    ):
        value = getattr(kv, name, None)
        if isinstance(value, int | float):
            out[name] = float(value)
    return out or None


def _strip_tokens(event: dict[str, Any]) -> dict[str, Any]:
    """KV events without their token lists (they can be megabytes)."""
    data = event.get("data")
    if isinstance(data, dict) and isinstance(data.get("blocks"), list):
        data = {
            **data,
            "blocks": [
                {k: v for k, v in b.items() if k != "tokens"} if isinstance(b, dict) else b
                for b in data["blocks"]
            ],
        }
        event = {**event, "data": data}
    return event


def create(**options: Any) -> TrtllmEngine:
    if options:
        raise EngineError(
            f"the trtllm engine takes no options ({', '.join(options)})",
            hint="--dialect applies to --engine sim only",
        )
    return TrtllmEngine()
