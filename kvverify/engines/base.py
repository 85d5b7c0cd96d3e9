"""The engine protocol and the registry of engines.

An engine runs inside the worker process (``kvverify.runner.worker``): it builds the model from
a scenario variant, runs one step at a time, hands over statistics and shuts down. What the
engine prints goes to file descriptors 1 and 2, which the supervisor captures; what the worker
learns from the engine's API goes into the same stream as marker lines.
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from kvverify.errors import EngineError
from kvverify.scenario import Step, Variant

EngineName = Literal["trtllm", "sim"]
ENGINE_CHOICES = ("auto", "trtllm", "sim")


@dataclass
class StepOutcome:
    """What the engine's API says about one step's request."""

    request_id: int | None
    prompt_len: int | None
    output_len: int | None
    cached_tokens: int | None = None
    first_token_ms: float | None = None
    latency_ms: float | None = None
    #: per-request KV-cache metrics (num_reused_blocks, ...), when the engine reports them
    kv: dict[str, float] | None = None


class Engine(Protocol):
    """What the worker needs from an engine."""

    name: EngineName

    def version(self) -> str | None:
        """The engine's version (``tensorrt_llm.__version__``; the sim's dialect version)."""
        ...

    def run_info(self) -> dict[str, Any]:
        """Extra fields for the ``run`` marker (max_batch_size, prompt lengths, ...)."""
        ...

    def start(self, variant: Variant) -> None:
        """Build the engine. Errors in the scenario surface here, before any step."""
        ...

    def step(self, step: Step) -> StepOutcome: ...

    def stats(self) -> list[dict[str, Any]]:
        """Iteration statistics collected so far (KV-cache parts only)."""
        ...

    def events(self) -> list[dict[str, Any]]:
        """KV-cache events collected so far (without token lists)."""
        ...

    def shutdown(self) -> None:
        """Shut down so that the KV cache manager is destroyed and prints its summary."""
        ...


_MODULES: dict[str, str] = {
    "trtllm": "kvverify.engines.trtllm",
    "sim": "kvverify.engines.sim.engine",
}


def resolve(choice: str) -> EngineName:
    """``auto`` is TensorRT-LLM when the package is installed, else the reference model."""
    if choice == "auto":
        return "trtllm" if importlib.util.find_spec("tensorrt_llm") is not None else "sim"
    if choice not in _MODULES:
        raise EngineError(f"unknown engine {choice!r}", hint="choose auto, trtllm or sim")
    return choice  # type: ignore[return-value]


def create(name: EngineName, **options: Any) -> Engine:
    """An engine by name; its module is imported only now (heavy dependencies stay lazy)."""
    module = importlib.import_module(_MODULES[name])
    engine: Engine = module.create(**options)
    return engine
