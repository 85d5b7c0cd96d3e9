"""Scenario files: YAML with positions -> typed, frozen models; every error at once.

A scenario says what to run (engine, KV-cache configuration, sampling), what to send (prompts,
steps) and what to expect; variants override any of it. Errors carry ``file:line:col``, the key
path and, for an unknown key, a did-you-mean. Only safe YAML is read.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ByteSize,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)

from kvverify.errors import KvverifyError, ScenarioError, did_you_mean
from kvverify.expect import Expectation, parse
from kvverify.metrics import MATCHABLE

SCHEMA_VERSION = 1
#: The most requests one variant may run (``repeat`` multiplies quickly).
MAX_STEPS = 10_000
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
                f"{key!r} is a key of its own: write it as {parent}.{key}, not under {name}"
            )


Position = tuple[int, int]  # 1-based line, column
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


class RepeatSpec(_Strict):
    repeat: int = Field(ge=1)
    steps: list[StepItem]


def _step_kind(v: Any) -> str:
    if isinstance(v, dict):
        return "step-repeat" if "repeat" in v else "step-spec"
    if isinstance(v, StepSpec | RepeatSpec):
        return "step-repeat" if isinstance(v, RepeatSpec) else "step-spec"
    return "step-name"


#: A step: a prompt name, {prompt, priority}, or {repeat: N, steps: [...]}.
StepItem = Annotated[
    Annotated[str, Tag("step-name")]
    | Annotated[StepSpec, Tag("step-spec")]
    | Annotated["RepeatSpec", Tag("step-repeat")],
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
                    f"cannot compare {m!r} with the model"
                    f"{did_you_mean(m, MATCHABLE)}; one of: {', '.join(MATCHABLE)}"
                )
        return self


def _expect_kind(v: Any) -> str:
    return "expect-spec" if isinstance(v, dict | ExpectSpec) else "expect-text"


#: An expectation: text in the grammar of expectations.md, or ``{matches: predicted, ...}``.
ExpectItem = Annotated[
    Annotated[str, Tag("expect-text")] | Annotated[ExpectSpec, Tag("expect-spec")],
    Discriminator(_expect_kind),
]


class VariantSpec(_Strict):
    """Overrides of a variant. ``engine``, ``sampling`` and ``prompts`` merge key by key;
    ``steps`` replaces; ``expect`` adds to the scenario's."""

    description: str = ""
    engine: dict[str, Any] = Field(default_factory=dict)
    sampling: dict[str, Any] = Field(default_factory=dict)
    prompts: dict[str, Any] = Field(default_factory=dict)
    steps: list[Any] | None = None
    expect: list[ExpectItem] = Field(default_factory=list)


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
            raise ValueError(f"{v!r}: {_NAME_RULE}")
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


@dataclass(frozen=True)
class Step:
    index: int  # from 1
    prompt: str
    priority: int | None = None


def _flatten(items: list[StepItem]) -> Iterator[StepSpec]:
    for item in items:
        if isinstance(item, str):
            yield StepSpec(prompt=item)
        elif isinstance(item, StepSpec):
            yield item
        else:
            for _ in range(item.repeat):
                yield from _flatten(item.steps)


def _count(items: list[StepItem]) -> int:
    """How many requests the steps expand to, without expanding them."""
    return sum(
        1 if isinstance(item, str | StepSpec) else item.repeat * _count(item.steps)
        for item in items
    )


def _step_names(items: list[StepItem], loc: Loc) -> Iterator[tuple[Loc, str]]:
    """Every prompt name the steps use, with where it is written."""
    for i, item in enumerate(items):
        if isinstance(item, str):
            yield (*loc, i), item
        elif isinstance(item, StepSpec):
            yield (*loc, i, "prompt"), item.prompt
        else:
            yield from _step_names(item.steps, (*loc, i, "steps"))


@dataclass(frozen=True)
class Variant:
    """One variant, resolved: what a worker runs and what the checks expect."""

    scenario: str
    name: str
    description: str
    engine: EngineSpec
    sampling: SamplingSpec
    prompts: dict[str, Prompt]
    steps: tuple[Step, ...]
    expect: tuple[Expectation, ...]
    match_predicted: tuple[ExpectSpec, ...]
    texts: dict[str, str]  # text prompts, files read

    def prompt_text(self, name: str) -> str | None:
        return self.texts.get(name)


@dataclass(frozen=True)
class Scenario:
    path: str
    spec: ScenarioSpec
    variants: dict[str, Variant]

    @property
    def name(self) -> str:
        return self.spec.name

    def select(self, names: tuple[str, ...] | list[str] | None) -> list[Variant]:
        if not names:
            return list(self.variants.values())
        out = []
        for n in names:
            if n not in self.variants:
                raise KvverifyError(
                    f"no variant {n!r}{did_you_mean(n, self.variants)}",
                    where=self.path,
                    hint="variants: " + ", ".join(self.variants),
                )
            out.append(self.variants[n])
        return out


# -- loading -----------------------------------------------------------------------------------


class _Located:
    """A YAML document as plain Python data, with the position of every key and value."""

    def __init__(self, text: str, path: str) -> None:
        self.path = path
        self.positions: dict[Loc, Position] = {}
        self.key_positions: dict[Loc, Position] = {}
        self.problems: list[str] = []
        try:
            node = yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else path
            what = getattr(exc, "problem", None) or str(exc)
            raise ScenarioError([f"{where}: not valid YAML: {what}"], where=path) from None
        self.data = self._convert(node, ()) if node is not None else None

    def _convert(self, node: yaml.Node, loc: Loc) -> Any:
        self.positions[loc] = (node.start_mark.line + 1, node.start_mark.column + 1)
        if isinstance(node, yaml.MappingNode):
            out: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                # Keys are names: take the text as written (YAML 1.1 would read on/off/yes/no
                # as booleans and 1 as a number).
                if not isinstance(key_node, yaml.ScalarNode):
                    line, col = key_node.start_mark.line + 1, key_node.start_mark.column + 1
                    self.problems.append(
                        f"{self.path}:{line}:{col}: {_dotted(loc)}: keys must be plain names"
                    )
                    continue
                key = key_node.value
                if key in out:
                    line = key_node.start_mark.line + 1
                    self.problems.append(
                        f"{self.path}:{line}:{key_node.start_mark.column + 1}: "
                        f"{_dotted((*loc, key))}: duplicate key (the first one is at line "
                        f"{self.key_positions[(*loc, key)][0]})"
                    )
                    continue
                self.key_positions[(*loc, key)] = (
                    key_node.start_mark.line + 1,
                    key_node.start_mark.column + 1,
                )
                out[key] = self._convert(value_node, (*loc, key))
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self._convert(v, (*loc, i)) for i, v in enumerate(node.value)]
        return yaml.constructor.SafeConstructor().construct_object(node, deep=True)

    def at(self, loc: Loc, *, key: bool = False) -> str:
        """``file:line:col`` of the closest node to ``loc`` that exists."""
        table = self.key_positions if key else self.positions
        for n in range(len(loc), -1, -1):
            if loc[:n] in table:
                line, col = table[loc[:n]]
                return f"{self.path}:{line}:{col}"
            if key and loc[:n] in self.positions:
                line, col = self.positions[loc[:n]]
                return f"{self.path}:{line}:{col}"
        return self.path


def _dotted(loc: Loc) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


#: Parts of pydantic's error locations that name a union member, not a key.
_UNION_TAGS = {
    "str",
    "StepSpec",
    "RepeatSpec",
    "ExpectSpec",
    "step-name",
    "step-spec",
    "step-repeat",
    "expect-text",
    "expect-spec",
}


def _model_at(loc: Loc) -> type[BaseModel] | None:
    """The model a location in a scenario document is validated by (for did-you-mean)."""
    model: type[BaseModel] | None = ScenarioSpec
    for part in loc:
        if model is None:
            return None
        if isinstance(part, int):
            continue
        field = model.model_fields.get(str(part))
        if field is None:
            if model is ScenarioSpec or part in ("variants",):
                return None
            continue
        ann = field.annotation
        model = next((t for t in _models_in(ann)), None)
    return model


def _models_in(ann: Any) -> Iterator[type[BaseModel]]:
    if isinstance(ann, type) and issubclass(ann, BaseModel):
        yield ann
        return
    for arg in getattr(ann, "__args__", ()) or ():
        yield from _models_in(arg)


def _messages(exc: ValidationError, doc: _Located, prefer: Loc | None = None) -> list[str]:
    """One line per problem. ``prefer``: where a variant's overrides are, so an error in a
    value a variant set points at the variant."""
    out = []
    seen: set[tuple[Loc, str]] = set()
    for err in exc.errors():
        loc = tuple(
            p
            for p in err["loc"]
            if p not in _UNION_TAGS and not (isinstance(p, str) and p.startswith("function-"))
        )
        full = loc
        if prefer is not None and (
            (*prefer, *loc) in doc.positions
            or (*prefer, *loc) in doc.key_positions
            or (loc and (*prefer, *loc[:-1]) in doc.positions and err["type"] == "missing")
        ):
            full = (*prefer, *loc)
        kind = err["type"]
        if kind == "extra_forbidden":
            model = _model_at(loc[:-1])
            fields = model.model_fields if model is not None else {}
            msg = f"unknown key{did_you_mean(loc[-1], fields)}"
            where = doc.at(full, key=True)
        else:
            msg = err["msg"].removeprefix("Value error, ")
            if kind == "missing":
                msg = "required key is missing"
            elif kind == "byte_size":
                msg = "not a size: write bytes or a number with a unit, e.g. 0, 1GiB, 512MB"
            elif kind == "string_type" and isinstance(err.get("input"), bool):
                msg += " (YAML reads on/off/yes/no/true/false as booleans: put the name in quotes)"
            where = doc.at(full)
        key = (full, msg)
        if key in seen:
            continue
        seen.add(key)
        out.append(f"{where}: {_dotted(full)}: {msg}")
    return out


def _merge(base: Any, override: Any) -> Any:
    if isinstance(base, dict) and isinstance(override, dict):
        out = dict(base)
        for k, v in override.items():
            out[k] = _merge(base.get(k), v) if k in base else v
        return out
    return override


def load(path: str | Path) -> Scenario:
    """Read, validate and resolve a scenario file. Raises :class:`ScenarioError` listing every
    problem found."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise KvverifyError(
            "no such file", where=str(path), hint="give a scenario file, e.g. scenarios/abab.yaml"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise KvverifyError(f"cannot read: {exc}", where=str(path)) from None
    return loads(text, str(path), base_dir=p.parent)


def loads(text: str, path: str = "<scenario>", *, base_dir: Path | None = None) -> Scenario:
    doc = _Located(text, path)
    problems = list(doc.problems)
    if not isinstance(doc.data, dict):
        raise ScenarioError(
            problems
            or [
                f"{path}:1:1: a scenario is a mapping of keys "
                "(schema_version, name, engine, prompts, steps, ...)"
            ],
            where=path,
        )
    try:
        spec = ScenarioSpec.model_validate(doc.data)
    except ValidationError as exc:
        raise ScenarioError(_sorted(problems + _messages(exc, doc)), where=path) from None
    variants: dict[str, Variant] = {}
    names = list(spec.variants) or ["default"]
    for name in names:
        try:
            variants[name] = _resolve(spec, name, doc, base_dir, problems)
        except _VariantProblems:
            continue
    if problems:
        raise ScenarioError(_sorted(problems), where=path)
    return Scenario(path=path, spec=spec, variants=variants)


def _sorted(problems: list[str]) -> list[str]:
    """By position in the file; problems without one first."""

    def key(p: str) -> tuple[int, int]:
        parts = p.split(":")
        try:
            return int(parts[1]), int(parts[2])
        except (IndexError, ValueError):
            return 0, 0

    return sorted(dict.fromkeys(problems), key=key)


class _VariantProblems(Exception):
    pass


def _resolve(
    spec: ScenarioSpec, name: str, doc: _Located, base_dir: Path | None, problems: list[str]
) -> Variant:
    v = spec.variants.get(name, VariantSpec())
    raw = dict(doc.data) if isinstance(doc.data, dict) else {}
    merged = {
        **raw,
        "engine": _merge(raw.get("engine", {}), v.engine),
        "sampling": _merge(raw.get("sampling", {}), v.sampling),
        "prompts": {**(raw.get("prompts") or {}), **v.prompts},  # a prompt is replaced whole
        "steps": v.steps if v.steps is not None else raw.get("steps"),
        "variants": {},
        "expect": [],
    }
    expect: list[Expectation] = []
    matches: list[ExpectSpec] = []
    written: list[tuple[Loc, Expectation]] = []
    for where, items in ((("expect",), spec.expect), (("variants", name, "expect"), v.expect)):
        for i, item in enumerate(items):
            if isinstance(item, ExpectSpec):
                matches.append(item)
                continue
            loc = (*where, i)
            try:
                parsed = parse(item, source="scenario")
                expect += parsed
                written += [(loc, e) for e in parsed]
            except KvverifyError as exc:
                problems.append(
                    f"{doc.at(loc)}: {_dotted(loc)}: {exc.message}"
                    + (f" ({exc.hint})" if exc.hint else "")
                )
    try:
        resolved = ScenarioSpec.model_validate(merged)
    except ValidationError as exc:
        # Errors in the variant's overrides point at the variant; the rest at the base.
        problems += _messages(exc, doc, prefer=("variants", name))
        raise _VariantProblems from None
    texts: dict[str, str] = {}
    for pname, prompt in resolved.prompts.items():
        if prompt.text is not None:
            texts[pname] = prompt.text
        elif prompt.file is not None:
            file = (base_dir or Path(".")) / prompt.file
            try:
                texts[pname] = file.read_text(encoding="utf-8")
            except OSError as exc:
                file_loc: Loc = ("prompts", pname, "file")
                if pname in v.prompts:
                    file_loc = ("variants", name, *file_loc)
                problems.append(
                    f"{doc.at(file_loc)}: {_dotted(file_loc)}: cannot read {file}: "
                    f"{exc.strerror or exc}"
                )
    where_steps: Loc = ("variants", name, "steps") if v.steps is not None else ("steps",)
    count = _count(resolved.steps)
    if count > MAX_STEPS:
        problems.append(
            f"{doc.at(where_steps)}: {_dotted(where_steps)}: the steps expand to {count:,} "
            f"requests; a variant runs at most {MAX_STEPS:,} (lower a repeat)"
        )
        raise _VariantProblems
    steps = tuple(Step(i + 1, s.prompt, s.priority) for i, s in enumerate(_flatten(resolved.steps)))
    for loc, e in written:
        scope = e.request_scope
        if scope is not None and scope.kind == "step" and not 1 <= scope.index <= len(steps):
            problems.append(
                f"{doc.at(loc)}: {_dotted(loc)}: {e.text}: there is no step {scope.index} "
                f"(the {'variant' if spec.variants else 'scenario'} has {len(steps)} steps, "
                "numbered from 1)"
            )
    for step_loc, used in _step_names(resolved.steps, where_steps):
        if used not in resolved.prompts:
            problems.append(
                f"{doc.at(step_loc)}: {_dotted(step_loc)}: no prompt named {used!r}"
                f"{did_you_mean(used, resolved.prompts)}"
            )
    return Variant(
        scenario=spec.name,
        name=name,
        description=v.description or spec.description,
        engine=resolved.engine,
        sampling=resolved.sampling,
        prompts=dict(resolved.prompts),
        steps=steps,
        expect=tuple(expect),
        match_predicted=tuple(matches),
        texts=texts,
    )
