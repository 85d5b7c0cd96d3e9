"""The engine protocol and the registry of engines.

An engine runs inside the worker process (``kvverify.runner.worker``): it builds the model from
a :class:`~kvverify.plan.Plan`, runs one step at a time, hands over statistics and shuts
down. What the engine prints goes to file descriptors 1 and 2, which the supervisor captures;
what the worker learns from the engine's API goes into the same stream as marker lines.
Standard library only (see :mod:`kvverify.plan`).
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import subprocess
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from kvverify.errors import EngineUnavailable, KvverifyError
from kvverify.plan import Plan, Step

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
    """What the worker needs from an engine. ``stats`` and ``events`` raise when the engine's
    API fails: the worker records that in the log (API drift must show, not read as 'no
    evidence')."""

    name: EngineName

    def version(self) -> str | None:
        """The engine's version (``tensorrt_llm.__version__``)."""
        ...

    def run_info(self) -> dict[str, Any]:
        """Fields of the ``ready`` marker (max_batch_size, prompt lengths, ...)."""
        ...

    def start(self, plan: Plan) -> None:
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

SIM_HINT = "pass --engine sim to run kvverify's reference model on purpose"


def has_tensorrt_llm(python: str | None = None) -> bool:
    """Whether ``tensorrt_llm`` is importable (found, not imported) here or under ``python``."""
    if python is None:
        return importlib.util.find_spec("tensorrt_llm") is not None
    code = (
        "import importlib.util, sys\n"
        "if sys.version_info < (3, 10): print('.'.join(map(str, sys.version_info[:3]))); "
        "sys.exit(4)\n"
        "sys.exit(importlib.util.find_spec('tensorrt_llm') is None)"
    )
    try:
        done = subprocess.run(
            [python, "-c", code], capture_output=True, text=True, timeout=120, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise EngineUnavailable(
            f"cannot run the interpreter: {exc}",
            where=f"--python {python}",
            hint="give the python of the environment that holds TensorRT-LLM",
        ) from None
    if done.returncode == 4:  # kvverify's worker needs Python 3.10, as TensorRT-LLM does
        raise EngineUnavailable(
            f"Python {done.stdout.strip()} is too old for kvverify's worker (3.10 or newer)",
            where=f"--python {python}",
            hint="give the python of the environment that holds TensorRT-LLM",
        )
    return done.returncode == 0


def resolve(choice: str, *, python: str | None = None, ci: bool | None = None) -> EngineName:
    """``auto`` is TensorRT-LLM when it is installed, else the reference model, except in CI
    (the ``CI`` variable set) and with ``--python``: there a runner without TensorRT-LLM is
    broken, and falling back to the model would turn the gate green on no evidence at all."""
    if choice not in ENGINE_CHOICES:
        raise EngineUnavailable(f"unknown engine {choice!r}", hint="choose auto, trtllm or sim")
    if python is not None and choice == "sim":
        raise KvverifyError(
            "--python runs the worker under TensorRT-LLM's interpreter; the reference model "
            "runs in kvverify's own",
            hint="drop --python, or use --engine trtllm",
        )
    if choice == "sim":
        return "sim"
    if choice == "trtllm":
        if not has_tensorrt_llm(python):
            where = f" under {python}" if python else ""
            raise EngineUnavailable(
                f"the engine could not start: TensorRT-LLM is not installed{where} (no module "
                "named 'tensorrt_llm')",
                hint=f"install it on this host (see the README), or {SIM_HINT}",
            )
        return "trtllm"
    if has_tensorrt_llm(python):
        return "trtllm"
    if python is not None:  # that interpreter is there to run TensorRT-LLM: no fallback
        raise EngineUnavailable(
            f"the engine could not start: TensorRT-LLM is not installed under {python}",
            hint="give the python of the environment that holds TensorRT-LLM",
        )
    if ci if ci is not None else in_ci():
        raise EngineUnavailable(
            "the engine could not start: TensorRT-LLM is not installed, and in CI (CI is set) "
            "--engine auto never falls back to the reference model",
            hint=f"install TensorRT-LLM on this runner, or {SIM_HINT}",
        )
    return "sim"


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def create(name: EngineName, **options: Any) -> Engine:
    """An engine by name; its module is imported only now (heavy dependencies stay lazy)."""
    module = importlib.import_module(_MODULES[name])
    engine: Engine = module.create(**options)
    return engine
