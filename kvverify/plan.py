"""The plan of one variant's run: everything the worker needs, resolved by the parent.

``kvverify run`` validates the scenario, resolves the variant and writes this plan next to the
variant's log (``<variant>.plan.json``); the worker reads it. So the worker, the TensorRT-LLM
adapter and the marker protocol need the standard library only: with ``--python`` they run
under the interpreter that holds the TensorRT-LLM under test, which need not have kvverify's
dependencies, or kvverify at all (the supervisor puts this package on its path).

This module and everything the worker imports for ``--engine trtllm`` (``runner.worker``,
``engines.base``, ``engines.trtllm``, ``markers``, ``errors``, ``exitcodes``, ``text``) stay
free of third-party imports; ``tests/test_worker.py`` checks that.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

#: The most requests one variant may run (``repeat`` multiplies quickly).
MAX_STEPS = 10_000


@dataclass(frozen=True)
class Step:
    """One request of a variant, in order."""

    index: int  # from 1
    prompt: str
    #: KV-cache retention priority of the request's blocks (0-100)
    priority: int | None = None
    #: the next turn of the previous step's conversation: prompt = the previous request's
    #: prompt and answer, then this prompt's tokens
    continues: bool = False


@dataclass(frozen=True)
class Prompt:
    """A prompt as the engine receives it: token ids when the scenario gives them (tokens,
    synthetic), else the text (the engine's tokenizer decides)."""

    tokens: tuple[int, ...] | None = None
    text: str | None = None


@dataclass(frozen=True)
class Plan:
    scenario: str
    scenario_path: str
    variant: str
    engine: str  # "trtllm" | "sim"
    model: str
    #: keyword arguments of LLM(...), KvCacheConfig(...), SamplingParams(...)
    llm_kwargs: dict[str, Any] = field(default_factory=dict)
    kv_cache_kwargs: dict[str, Any] = field(default_factory=dict)
    sampling_kwargs: dict[str, Any] = field(default_factory=dict)
    max_batch_size: int | None = None
    #: environment variables of the engine process
    env: dict[str, str] = field(default_factory=dict)
    prompts: dict[str, Prompt] = field(default_factory=dict)
    steps: tuple[Step, ...] = ()
    #: expectations as written (the checks parse them from the log)
    expect: tuple[str, ...] = ()
    #: options of the engine (the reference model's dialect)
    options: dict[str, str] = field(default_factory=dict)
    #: the reference model's prediction, when an expectation compares with it
    predicted: dict[str, Any] | None = None
    #: the interpreter the worker runs under, when not kvverify's own (``--python``)
    python: str | None = None

    def prompt_length(self, step: Step) -> int | None:
        """The step's prompt length in tokens, when known before it runs (not for a turn
        that continues a conversation: the answer before it decides)."""
        tokens = self.prompts[step.prompt].tokens
        return None if tokens is None or step.continues else len(tokens)

    def write(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=1) + "\n", encoding="utf-8")

    @classmethod
    def read(cls, path: str | Path) -> Plan:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        prompts = {
            name: Prompt(
                tokens=None if p.get("tokens") is None else tuple(p["tokens"]), text=p.get("text")
            )
            for name, p in data.pop("prompts").items()
        }
        steps = tuple(Step(**s) for s in data.pop("steps"))
        return cls(**{**data, "prompts": prompts, "steps": steps, "expect": tuple(data["expect"])})
