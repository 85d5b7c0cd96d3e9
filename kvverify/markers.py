"""The run protocol: what ``kvverify run`` writes into the captured stream, as typed records.

A marker is one line, ``[kvverify] {json}``, written next to what the engine prints, so that a
saved log alone lets ``kvverify check`` repeat the run's verdict. Each kind of marker is one
frozen record below; :func:`encode` is the one writer and :func:`decode` / :func:`find` the one
reader, used by the worker, the engines, the supervisor and the checker alike. Every marker
carries ``v`` (the protocol version) and ``t`` (its kind). A reader ignores fields it does not
know and kinds it does not know, so logs of newer kvverify versions still read.

Order in a run's log: ``run``, (``model``,) ``engine``, ``ready``, then per step
``step_begin`` / ``step_end``, then ``iter_stats``, ``kv_events``, ``api_error``,
``shutdown`` begin / end; ``error`` when the worker fails; ``stop`` when the supervisor stops
the run; ``exit`` last, from the supervisor.
"""

from __future__ import annotations

import dataclasses
import json
import os
import typing
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

PREFIX = "[kvverify] "
_PREFIX_BYTES = PREFIX.encode()
VERSION = 1


@dataclass(frozen=True)
class Run:
    """First, before the engine is imported: what runs and what it is held to."""

    kind: ClassVar[str] = "run"
    scenario: str
    variant: str
    engine: str
    expect: tuple[str, ...] = ()
    steps: int = 0
    #: the interpreter the worker runs under (``--python``)
    python: str | None = None


@dataclass(frozen=True)
class ModelMark:
    """Written by kvverify's reference model before anything else it prints: the log is the
    model's, whatever version banner follows."""

    kind: ClassVar[str] = "model"
    kvverify_version: str
    dialect: str | None = None


@dataclass(frozen=True)
class EngineLoaded:
    """The engine's package is imported."""

    kind: ClassVar[str] = "engine"
    engine_version: str | None = None


@dataclass(frozen=True)
class Ready:
    """The engine is built: what the checks need to map steps to requests."""

    kind: ClassVar[str] = "ready"
    dialect: str | None = None
    max_batch_size: int | None = None
    #: tokens per step (None where the length is not known)
    prompt_lengths: tuple[int | None, ...] = ()
    approximate_tokens: bool = False
    tokenizer: str | None = None
    #: the reference model's numbers, for a ``{matches: predicted}`` expectation
    predicted: dict[str, Any] | None = None


@dataclass(frozen=True)
class StepBegin:
    kind: ClassVar[str] = "step_begin"
    step: int
    prompt: str = ""


@dataclass(frozen=True)
class StepEnd:
    """What the engine's API said about one step's request."""

    kind: ClassVar[str] = "step_end"
    step: int
    prompt: str = ""
    request_id: int | None = None
    prompt_len: int | None = None
    output_len: int | None = None
    cached_tokens: int | None = None
    first_token_ms: float | None = None
    latency_ms: float | None = None
    #: per-request KV-cache metrics (num_reused_blocks, ...)
    kv: dict[str, float] | None = None


@dataclass(frozen=True)
class IterStats:
    """Iteration statistics (``kvCacheStats`` / ``kvCacheIterationStats`` only)."""

    kind: ClassVar[str] = "iter_stats"
    stats: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True)
class KvEvents:
    """KV-cache events, without their token lists."""

    kind: ClassVar[str] = "kv_events"
    events: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True)
class ApiFailure:
    """An engine API the worker reads evidence from failed (``get_stats``,
    ``get_kv_cache_events``): after an upgrade, the first sign of API drift."""

    kind: ClassVar[str] = "api_error"
    api: str
    type: str
    message: str = ""


@dataclass(frozen=True)
class Shutdown:
    kind: ClassVar[str] = "shutdown"
    phase: Literal["begin", "end"]


@dataclass(frozen=True)
class WorkerError:
    """An exception in the worker. ``exit_code`` 2: the engine refused the input; 3: the
    engine could not start; absent: the engine failed while running."""

    kind: ClassVar[str] = "error"
    type: str
    message: str = ""
    hint: str | None = None
    exit_code: int | None = None


@dataclass(frozen=True)
class Stop:
    """Written by the supervisor when it starts stopping the run: what the engine prints after
    this line is a consequence of the stop, not an engine error."""

    kind: ClassVar[str] = "stop"
    reason: Literal["signal", "timeout", "drain"]
    signal: str | None = None


ExitStatus = Literal["ok", "crashed", "timeout", "interrupted", "rejected", "unavailable"]


@dataclass(frozen=True)
class Exit:
    """Last, written by the supervisor: how the worker ended."""

    kind: ClassVar[str] = "exit"
    status: ExitStatus
    returncode: int | None = None
    signal: str | None = None
    detail: str = ""


Record = (
    Run
    | ModelMark
    | EngineLoaded
    | Ready
    | StepBegin
    | StepEnd
    | IterStats
    | KvEvents
    | ApiFailure
    | Shutdown
    | WorkerError
    | Stop
    | Exit
)

_KINDS: dict[str, type[Any]] = {cls.kind: cls for cls in typing.get_args(Record)}
_FIELDS = {cls: dataclasses.fields(cls) for cls in _KINDS.values()}


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def encode(record: Record) -> str:
    """One marker line, newline included: the prefix and a newline-free JSON object."""
    fields = {f.name: _plain(getattr(record, f.name)) for f in _FIELDS[type(record)]}
    payload = json.dumps(
        {"v": VERSION, "t": record.kind, **fields},
        separators=(",", ":"),
        default=str,
    )
    return PREFIX + payload + "\n"


def _checker(annotation: str) -> tuple[tuple[type, ...], bool]:
    """What a field's annotation text (``from __future__``) admits: the JSON types, and
    whether null. A tolerant check: a damaged marker is dropped, not half read."""
    if annotation.startswith(("tuple", "list")):
        kinds: tuple[type, ...] = (list, tuple)
    elif annotation.startswith("dict"):
        kinds = (dict,)
    elif annotation.startswith(("str", "Literal", "ExitStatus")):
        kinds = (str,)
    elif annotation.startswith("bool"):
        kinds = (bool,)
    elif annotation.startswith("int"):
        kinds = (int,)
    elif annotation.startswith("float"):
        kinds = (int, float)
    else:
        kinds = (object,)
    return kinds, "None" in annotation


#: Per kind, its fields: (name, admitted types, null admitted, required).
_SHAPES = {
    cls: [
        (
            f.name,
            *_checker(str(f.type)),
            f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING,
        )
        for f in fields
    ]
    for cls, fields in _FIELDS.items()
}


def decode(data: dict[str, Any]) -> Record | None:
    """The record a marker's JSON object holds; None for a kind this version does not know or
    a marker whose fields do not fit (a damaged line)."""
    cls = _KINDS.get(str(data.get("t")))
    if cls is None:
        return None
    values: dict[str, Any] = {}
    for name, kinds, nullable, required in _SHAPES[cls]:
        if name not in data:
            if required:
                return None
            continue
        value = data[name]
        if value is None:
            if not nullable:
                return None
        elif not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
            return None
        values[name] = tuple(value) if type(value) is list else value
    record: Record = cls(**values)
    return record


def find(line: bytes) -> Record | None:
    """The marker on one line of captured output (it may follow unterminated engine text)."""
    at = line.find(_PREFIX_BYTES)
    if at < 0:
        return None
    try:
        data = json.loads(line[at + len(_PREFIX_BYTES) :])
    except ValueError:
        return None
    return decode(data) if isinstance(data, dict) else None


def write_out(data: bytes) -> None:
    """All of ``data`` to file descriptor 1 itself, where TensorRT-LLM's C++ logger writes, so
    that kvverify's lines and the engine's stay in order (``sys.stdout`` buffers)."""
    while data:
        data = data[os.write(1, data) :]
