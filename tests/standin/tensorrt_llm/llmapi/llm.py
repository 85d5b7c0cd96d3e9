"""LLM as tensorrt_llm/llmapi/llm.py defines it, backed by an executor worker process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import zlib
from datetime import timedelta
from typing import Any

import tensorrt_llm
from tensorrt_llm.llmapi.llm_args import KvCacheConfig, TorchLlmArgs
from tensorrt_llm.sampling_params import SamplingParams


def _fault() -> tuple[str, int | None]:
    raw = os.environ.get("STANDIN_FAULT", "")
    name, _, step = raw.partition(":")
    return name, int(step) if step else None


def _python_log(level: str, message: str) -> None:
    """The Python logger (2025 format): only at or above the level read at import."""
    order = ["trace", "debug", "verbose", "info", "warning", "error"]
    wanted = tensorrt_llm.LOG_LEVEL if tensorrt_llm.LOG_LEVEL in order else "error"
    if order.index(level) >= order.index(wanted):
        tag = {"info": "I", "warning": "W", "error": "E", "debug": "D"}[level]
        print(f"[11/29/2026-10:00:00] [TRT-LLM] [{tag}] {message}", flush=True)


class KvCacheMetrics:
    def __init__(self, d: dict[str, Any]) -> None:
        self.num_total_allocated_blocks = d["total"]
        self.num_new_allocated_blocks = d["new"]
        self.num_reused_blocks = d["reused"]
        self.num_missed_blocks = d["missed"]
        self.kv_cache_hit_rate = d["reused"] / (d["reused"] + d["missed"]) if d["reused"] else 0.0


class TimingMetrics:
    def __init__(self, first_token_s: float, total_s: float) -> None:
        self.arrival_time = timedelta(seconds=100.0)
        self.first_scheduled_time = timedelta(seconds=100.0)
        self.first_token_time = timedelta(seconds=100.0 + first_token_s)
        self.last_token_time = timedelta(seconds=100.0 + total_s)


class RequestPerfMetrics:
    def __init__(self, kv: dict[str, Any], iters: int) -> None:
        self.kv_cache_metrics = KvCacheMetrics(kv)
        self.timing_metrics = TimingMetrics(0.012, 0.012 + 0.001 * iters)
        self.first_iter = 0
        self.iter = iters
        self.last_iter = iters


class CompletionOutput:
    __slots__ = ("finish_reason", "index", "request_perf_metrics", "text", "token_ids")

    def __init__(self, token_ids: list[int], perf: RequestPerfMetrics | None) -> None:
        self.index = 0
        self.text = " ".join(f"t{t}" for t in token_ids[:8])
        self.token_ids = token_ids
        self.finish_reason = "length"
        self.request_perf_metrics = perf


class RequestOutput:
    def __init__(
        self,
        request_id: int,
        prompt: str | None,
        prompt_token_ids: list[int],
        output: CompletionOutput,
        cached_tokens: int,
    ) -> None:
        self.request_id = request_id
        self.prompt = prompt
        self.prompt_token_ids = prompt_token_ids
        self.outputs = [output]
        self.finished = True
        self.cached_tokens = cached_tokens


def _tokenize(text: str) -> list[int]:
    return [zlib.crc32(w.encode()) % 32000 + 1 for w in text.split()]


class LLM:
    def __init__(
        self,
        model: str,
        tokenizer: Any = None,
        tokenizer_mode: str = "auto",
        skip_tokenizer_init: bool = False,
        trust_remote_code: bool = False,
        tensor_parallel_size: int = 1,
        dtype: str = "auto",
        revision: str | None = None,
        tokenizer_revision: str | None = None,
        **kwargs: Any,
    ) -> None:
        self._proc: subprocess.Popen[bytes] | None = None
        backend = kwargs.pop("backend", "pytorch")
        valid = set(TorchLlmArgs.model_fields) | {"_mpi_session", "backend"}
        for key in kwargs:
            if key not in valid:
                error = ValueError(f"{self.__class__.__name__} got invalid argument: {key}")
                _python_log(
                    "error", f"Failed to parse the arguments for the LLM constructor: {error}"
                )
                raise error
        self.args = TorchLlmArgs(
            model=model,
            tensor_parallel_size=tensor_parallel_size,
            dtype=dtype,
            backend=backend,
            **kwargs,
        )
        _python_log("info", "Using LLM with PyTorch backend")
        kv: KvCacheConfig = self.args.kv_cache_config
        fault, _ = _fault()
        v2 = getattr(kv, "use_kv_cache_manager_v2", False)
        if fault == "v2" or v2 is True:
            _python_log(
                "info", "Resolved use_kv_cache_manager_v2='auto' to %s for %s True LlamaForCausalLM"
            )
        elif v2 == "auto":
            _python_log(
                "info",
                "Resolved use_kv_cache_manager_v2='auto' to %s for %s False Qwen3ForCausalLM",
            )
        env = dict(os.environ)
        if fault == "setenv-late":
            env["TLLM_LOG_LEVEL"] = "INFO"
        from_parent, to_child = os.pipe()  # (read end, write end)
        from_child, to_parent = os.pipe()
        self._proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tensorrt_llm._executor_worker",
                str(from_parent),
                str(to_parent),
            ],
            pass_fds=(from_parent, to_parent),
            env=env,
        )
        os.close(from_parent)
        os.close(to_parent)
        self._send = os.fdopen(to_child, "w", buffering=1)
        self._recv = os.fdopen(from_child, "r")
        config = {
            "max_batch_size": self.args.max_batch_size or 2048,
            "max_seq_len": self.args.max_seq_len or 4096,
            "kv": kv.model_dump(),
            "v2": fault == "v2" or v2 is True,
            "version": tensorrt_llm.__version__,
        }
        self._call({"op": "init", "config": config})
        self._client_id = 1
        self._submitted = False

    def _call(self, message: dict[str, Any]) -> dict[str, Any]:
        try:
            self._send.write(json.dumps(message) + "\n")
            self._send.flush()
            line = self._recv.readline()
        except (BrokenPipeError, OSError):
            line = ""
        if not line:
            raise RuntimeError("Executor worker died during a request")
        reply: dict[str, Any] = json.loads(line)
        if "error" in reply:
            raise RuntimeError(reply["error"])
        return reply

    def generate(
        self,
        inputs: Any,
        sampling_params: SamplingParams | None = None,
        use_tqdm: bool = True,
        lora_request: Any = None,
        prompt_adapter_request: Any = None,
        kv_cache_retention_config: Any = None,
        disaggregated_params: Any = None,
        scheduling_params: Any = None,
        cache_salt: Any = None,
    ) -> Any:
        if self._proc is None:
            raise RuntimeError("LLM is shutting down")
        unbatched = not isinstance(inputs, list) or (bool(inputs) and isinstance(inputs[0], int))
        prompts = [inputs] if unbatched else inputs
        params = sampling_params or SamplingParams()
        outs = [self._one(p, params, kv_cache_retention_config) for p in prompts]
        return outs[0] if unbatched else outs

    def _one(self, prompt: Any, params: SamplingParams, retention: Any) -> RequestOutput:
        if isinstance(prompt, str):
            tokens, text = _tokenize(prompt), prompt
        elif isinstance(prompt, list) and all(isinstance(t, int) for t in prompt):
            tokens, text = list(prompt), None
        else:
            raise TypeError(f"Invalid type of inputs for llm.generate: {type(prompt)}")
        self._client_id += 1
        self._submitted = True
        fault, at = _fault()
        if fault == "kill" and at == self._client_id - 1:
            os.kill(os.getpid(), signal.SIGKILL)
        priority = None
        if retention is not None:
            priority = retention.token_range_retention_configs[0].priority
        reply = self._call(
            {
                "op": "generate",
                "tokens": tokens,
                "max_tokens": params.max_tokens,
                "priority": priority,
            }
        )
        perf = None
        if params.return_perf_metrics or self.args.return_perf_metrics:
            perf = RequestPerfMetrics(reply["kv"], len(reply["output"]))
        return RequestOutput(
            self._client_id,
            text,
            tokens,
            CompletionOutput(reply["output"], perf),
            reply["cached_tokens"],
        )

    def get_stats(self, timeout: float | None = 2) -> list[dict[str, Any]]:
        if _fault()[0] == "stats-drift":  # an upgrade that changed the API
            raise TypeError("get_stats() got an unexpected keyword argument 'timeout'")
        if not self._submitted:
            print(
                "Iteration statistics are not available yet. To collect runtime statistics, "
                "please call get_stats() AFTER prompts have been submitted."
            )
            return []
        if not self.args.enable_iter_perf_stats:
            return []
        stats: list[dict[str, Any]] = self._call({"op": "stats"})["stats"]
        return stats

    def get_kv_cache_events(self, timeout: float | None = 2) -> list[dict[str, Any]]:
        assert self._submitted, "KV Event IterationResult is not properly instantiated."
        events: list[dict[str, Any]] = self._call({"op": "events"})["events"]
        return events

    def shutdown(self) -> None:
        if self._proc is None:
            return
        try:
            self._send.write(json.dumps({"op": "shutdown"}) + "\n")
            self._send.flush()
            self._send.close()
        except OSError:
            pass
        self._proc.wait()
        self._recv.close()
        self._proc = None

    def __enter__(self) -> LLM:
        return self

    def __exit__(self, *exc: object) -> bool:
        self.shutdown()
        return False

    def __del__(self) -> None:
        if getattr(self, "_proc", None) is not None:
            self.shutdown()
