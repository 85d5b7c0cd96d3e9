"""The scenario schema: what a scenario file may say, as pydantic models (``extra="forbid"``).

A scenario says what to run (engine, KV-cache configuration, sampling), what to send (prompts,
steps) and what to expect; variants override any of it. ``docs/scenarios.md`` documents every
key. Loading (positions, error messages, variants) lives beside this module.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Iterator
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ByteSize,
    ConfigDict,
    Discriminator,
    Field,
    StrictBool,
    Tag,
    field_validator,
    model_validator,
)

from kvverify.errors import KvverifyError, did_you_mean
from kvverify.metrics import MATCHABLE
from kvverify.text import quote

SCHEMA_VERSION = 1
#: Scenario and variant names become file and directory names.
NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_.-]*"
_NAME_RULE = (
    "names become file and directory names: use letters, digits, '_', '.' and '-', "
    "starting with a letter or digit"
)
#: Environment variables kvverify sets for the engine process and a scenario may not change.
RESERVED_ENV = {
    "TLLM_LOG_LEVEL": "kvverify sets it to DEBUG: the checks need TensorRT-LLM's DEBUG lines",
    "PYTHONUNBUFFERED": "kvverify sets it so that output arrives in order",
}


def _no_shadowing(model: type[BaseModel], extra: dict[str, Any], name: str, parent: str) -> None:
    """A pass-through key must not repeat a key the model types (it would silently win)."""
    typed = set(model.model_fields) - {name}
    for key in extra:
        if key in typed:
            raise ValueError(
                f"{quote(key)} is a key of its own: write it as {parent}.{key}, not under {name}"
            )


Loc = tuple[str | int, ...]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class KvCacheSpec(_Strict):
    """What goes to ``KvCacheConfig(...)``. A key left out is not passed: TensorRT-LLM's own
    default applies (the reference model uses the same defaults, reference §5.1)."""

    enable_block_reuse: bool | None = None
    max_tokens: int | None = Field(default=None, ge=1)
    tokens_per_block: int | None = Field(default=None, ge=1)
    host_cache_size: ByteSize | None = Field(
        default=None, description="bytes, or with a unit: 1GiB, 512MB, 0"
    )
    onboard_blocks: bool | None = None
    secondary_offload_min_priority: int | None = Field(default=None, ge=0, le=100)
    enable_partial_reuse: bool | None = None
    copy_on_partial_reuse: bool | None = None
    free_gpu_memory_fraction: float | None = Field(default=None, ge=0, le=1)
    event_buffer_max_size: int | None = Field(default=None, ge=0)
    use_kv_cache_manager_v2: bool | Literal["auto"] | None = None
    #: Passed through to KvCacheConfig as they are: options kvverify does not know yet.
    extra: dict[str, Any] = Field(default_factory=dict)

    @field_validator("extra")
    @classmethod
    def _extra_is_extra(cls, v: dict[str, Any]) -> dict[str, Any]:
        _no_shadowing(cls, v, "extra", "engine.kv_cache")
        return v

    def kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``KvCacheConfig``: the keys given, and ``extra``."""
        out = {k: v for k, v in self.model_dump(exclude={"extra"}).items() if v is not None}
        if self.host_cache_size is not None:
            out["host_cache_size"] = int(self.host_cache_size)
        return {**out, **self.extra}


class ModelShape(_Strict):
    """What the reference model needs to size the host pool of a model it does not know."""

    num_layers: int = Field(ge=1)
    num_kv_heads: int = Field(ge=1)
    head_dim: int = Field(ge=1)
    dtype_bytes: int = Field(default=2, ge=1)
    adds_bos: bool = False


class EngineSpec(_Strict):
    """What goes to ``LLM(...)``."""

    model: str = Field(min_length=1, description="hub id or local path")
    backend: str | None = None
    max_batch_size: int | None = Field(default=None, ge=1)
    max_seq_len: int | None = Field(default=None, ge=1)
    max_num_tokens: int | None = Field(default=None, ge=1)
    tensor_parallel_size: int | None = Field(default=None, ge=1)
    dtype: str | None = None
    kv_cache: KvCacheSpec = Field(default_factory=KvCacheSpec)
    #: Passed through to LLM(...) as they are.
    args: dict[str, Any] = Field(default_factory=dict)
    #: Extra environment variables for the engine process.
    env: dict[str, str] = Field(default_factory=dict)
    #: For the reference model, when the model is not in its table and has no local config.json.
    shape: ModelShape | None = None

    @field_validator("args")
    @classmethod
    def _args(cls, v: dict[str, Any]) -> dict[str, Any]:
        _no_shadowing(cls, v, "args", "engine")
        if "model" in v:
            raise ValueError("'model' is passed by kvverify: write it as engine.model")
        if "kv_cache_config" in v:
            raise ValueError(
                "'kv_cache_config' is built by kvverify: write its fields under engine.kv_cache"
            )
        return v

    @field_validator("env")
    @classmethod
    def _env(cls, v: dict[str, str]) -> dict[str, str]:
        for key, why in RESERVED_ENV.items():
            if key in v:
                raise ValueError(f"{key} cannot be set here: {why}")
        return v

    def kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``LLM`` except ``kv_cache_config`` (built by the adapter)."""
        keys = (
            "backend",
            "max_batch_size",
            "max_seq_len",
            "max_num_tokens",
            "tensor_parallel_size",
            "dtype",
        )
        out = {k: getattr(self, k) for k in keys if getattr(self, k) is not None}
        return {**out, **self.args}


class SamplingSpec(_Strict):
    """What goes to ``SamplingParams(...)``."""

    max_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0)
    top_k: int | None = Field(default=None, ge=0)
    top_p: float | None = Field(default=None, ge=0, le=1)
    seed: int | None = None
    ignore_eos: bool | None = None
    end_id: int | None = None
    args: dict[str, Any] = Field(default_factory=dict)

    @field_validator("args")
    @classmethod
    def _one_sequence_per_request(cls, v: dict[str, Any]) -> dict[str, Any]:
        _no_shadowing(cls, v, "args", "sampling")
        for key in ("n", "best_of", "beam_width"):
            value = v.get(key)
            if value is not None and value != 1:
                raise ValueError(
                    f"{key}: {value}: each step is one request with one sequence, which the "
                    "checks map to TensorRT-LLM's request ids; leave it at 1"
                )
        return v

    def kwargs(self) -> dict[str, Any]:
        out = {k: v for k, v in self.model_dump(exclude={"args"}).items() if v is not None}
        return {**out, **self.args}


class SyntheticPrefix(_Strict):
    length: int = Field(ge=1)
    seed: int = 0


class Synthetic(_Strict):
    """Token ids from a seed: exact length, so block arithmetic is exact. ``prefix`` makes
    prompts that share their first tokens and differ after them."""

    length: int = Field(ge=1)
    seed: int = 0
    prefix: SyntheticPrefix | None = None
    vocab: int = Field(default=32000, ge=2)

    @model_validator(mode="after")
    def _prefix_fits(self) -> Synthetic:
        if self.prefix is not None and self.prefix.length > self.length:
            raise ValueError(
                f"prefix.length ({self.prefix.length}) is longer than length ({self.length})"
            )
        return self

    def tokens(self) -> list[int]:
        out: list[int] = []
        if self.prefix is not None:
            out += _ids(self.prefix.seed, self.prefix.length, self.vocab, "prefix")
        out += _ids(self.seed, self.length - len(out), self.vocab, "suffix")
        return out


def _ids(seed: int, count: int, vocab: int, salt: str) -> list[int]:
    rng = random.Random(int.from_bytes(hashlib.sha256(f"{salt}:{seed}".encode()).digest()[:8]))
    return [rng.randrange(1, vocab) for _ in range(count)]


class Prompt(_Strict):
    """Exactly one of: ``text``, ``file`` (text, relative to the scenario), ``tokens``,
    ``synthetic``. A plain string in YAML is ``text``."""

    text: str | None = None
    file: str | None = None
    tokens: list[int] | None = None
    synthetic: Synthetic | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Prompt:
        given = [k for k in ("text", "file", "tokens", "synthetic") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                "give exactly one of text, file, tokens, synthetic"
                + (f" (got {', '.join(given)})" if given else "")
            )
        if self.tokens is not None and (not self.tokens or min(self.tokens) < 0):
            raise ValueError("tokens must be a non-empty list of non-negative ids")
        return self

    def token_ids(self) -> list[int] | None:
        """Exact token ids, or None for text (the engine's tokenizer decides)."""
        if self.tokens is not None:
            return list(self.tokens)
        if self.synthetic is not None:
            return self.synthetic.tokens()
        return None


class StepSpec(_Strict):
    prompt: str
    #: KV-cache retention priority of this request's blocks (0-100; TensorRT-LLM's default 35).
    priority: int | None = Field(default=None, ge=0, le=100)
    #: The next turn of the previous step's conversation: this request's prompt is the
    #: previous request's prompt and answer (its generated tokens), then this prompt.
    continues: StrictBool = False


class RepeatSpec(_Strict):
    repeat: int = Field(ge=1)
    steps: list[StepItem]


#: The members of the step and expectation unions, by the tag their discriminators return.
#: Pydantic names them in error locations; the error messages drop them (``messages.py``).
STEP_NAME, STEP_SPEC, STEP_REPEAT = "step-name", "step-spec", "step-repeat"
EXPECT_TEXT, EXPECT_SPEC = "expect-text", "expect-spec"
UNION_TAGS = frozenset({STEP_NAME, STEP_SPEC, STEP_REPEAT, EXPECT_TEXT, EXPECT_SPEC})


def _step_kind(v: Any) -> str:
    if isinstance(v, dict):
        return STEP_REPEAT if "repeat" in v else STEP_SPEC
    if isinstance(v, StepSpec | RepeatSpec):
        return STEP_REPEAT if isinstance(v, RepeatSpec) else STEP_SPEC
    return STEP_NAME


#: A step: a prompt name, {prompt, priority}, or {repeat: N, steps: [...]}.
StepItem = Annotated[
    Annotated[str, Tag(STEP_NAME)]
    | Annotated[StepSpec, Tag(STEP_SPEC)]
    | Annotated["RepeatSpec", Tag(STEP_REPEAT)],
    Discriminator(_step_kind),
]


class ExpectSpec(_Strict):
    """A structured expectation: ``matches: predicted`` requires the observed numbers to equal
    the reference model's, each metric within its tolerance (default 0)."""

    matches: Literal["predicted"]
    #: empty: DEFAULT_MATCH_METRICS (the run's and each step's reuse)
    metrics: list[str] = Field(default_factory=list)
    tolerance: dict[str, float] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _known_metrics(self) -> ExpectSpec:
        for m in [*self.metrics, *self.tolerance]:
            if m not in MATCHABLE:
                raise ValueError(
                    f"cannot compare {quote(m)} with the model"
                    f"{did_you_mean(m, MATCHABLE)}; one of: {', '.join(MATCHABLE)}"
                )
        return self


def _expect_kind(v: Any) -> str:
    return EXPECT_SPEC if isinstance(v, dict | ExpectSpec) else EXPECT_TEXT


#: An expectation: text in the grammar of expectations.md, or ``{matches: predicted, ...}``.
ExpectItem = Annotated[
    Annotated[str, Tag(EXPECT_TEXT)] | Annotated[ExpectSpec, Tag(EXPECT_SPEC)],
    Discriminator(_expect_kind),
]


class BaselineSpec(_Strict):
    """How a run is compared with a baseline: per metric, how far it may move the worse way,
    an amount (``cache_hit_rate: 0.02``) or a share of the old value (``latency_ms: 10%``).
    By default reuse may not drop at all and misses may not grow; latency is not gated."""

    tolerance: dict[str, float | str] = Field(default_factory=dict)

    @field_validator("tolerance")
    @classmethod
    def _known(cls, v: dict[str, float | str]) -> dict[str, float | str]:
        from kvverify.gate.diff import parse_tolerance

        for name, value in v.items():
            if isinstance(value, bool):
                raise ValueError(f"{name}: {value} is not a number")
            try:
                parse_tolerance(name, str(value), "baseline.tolerance")
            except KvverifyError as exc:
                raise ValueError(exc.message) from None
        return v


class VariantSpec(_Strict):
    """Overrides of a variant. ``engine``, ``sampling``, ``prompts`` and ``baseline`` merge
    key by key; ``steps`` replaces; ``expect`` adds to the scenario's."""

    description: str = ""
    engine: dict[str, Any] = Field(default_factory=dict)
    sampling: dict[str, Any] = Field(default_factory=dict)
    prompts: dict[str, Any] = Field(default_factory=dict)
    steps: list[Any] | None = None
    expect: list[ExpectItem] = Field(default_factory=list)
    baseline: dict[str, Any] = Field(default_factory=dict)


class ScenarioSpec(_Strict):
    schema_version: int = SCHEMA_VERSION
    name: str
    description: str = ""
    engine: EngineSpec
    sampling: SamplingSpec = Field(default_factory=SamplingSpec)
    prompts: dict[str, Prompt]
    steps: list[StepItem] = Field(min_length=1)
    variants: dict[str, VariantSpec] = Field(default_factory=dict)
    expect: list[ExpectItem] = Field(default_factory=list)
    baseline: BaselineSpec = Field(default_factory=BaselineSpec)

    @field_validator("schema_version")
    @classmethod
    def _supported(cls, v: int) -> int:
        if v != SCHEMA_VERSION:
            raise ValueError(f"this kvverify reads schema_version {SCHEMA_VERSION}, not {v}")
        return v

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not re.fullmatch(NAME_PATTERN, v):
            raise ValueError(f"{quote(v)}: {_NAME_RULE}")
        return v

    @field_validator("variants")
    @classmethod
    def _file_names(cls, v: dict[str, VariantSpec]) -> dict[str, VariantSpec]:
        bad = [repr(name) for name in v if not re.fullmatch(NAME_PATTERN, name)]
        if bad:
            raise ValueError(f"variant name {', '.join(bad)}: {_NAME_RULE}")
        return v

    @field_validator("prompts", mode="before")
    @classmethod
    def _plain_text(cls, v: Any) -> Any:
        if isinstance(v, dict):
            return {k: {"text": p} if isinstance(p, str) else p for k, p in v.items()}
        return v


def flatten(items: list[StepItem]) -> Iterator[StepSpec]:
    for item in items:
        if isinstance(item, str):
            yield StepSpec(prompt=item)
        elif isinstance(item, StepSpec):
            yield item
        else:
            for _ in range(item.repeat):
                yield from flatten(item.steps)


def count_steps(items: list[StepItem]) -> int:
    """How many requests the steps expand to, without expanding them."""
    return sum(
        1 if isinstance(item, str | StepSpec) else item.repeat * count_steps(item.steps)
        for item in items
    )


def step_names(items: list[StepItem], loc: Loc) -> Iterator[tuple[Loc, str]]:
    """Every prompt name the steps use, with where it is written."""
    for i, item in enumerate(items):
        if isinstance(item, str):
            yield (*loc, i), item
        elif isinstance(item, StepSpec):
            yield (*loc, i, "prompt"), item.prompt
        else:
            yield from step_names(item.steps, (*loc, i, "steps"))
