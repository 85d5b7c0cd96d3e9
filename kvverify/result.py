"""The result of checking logs: typed records that every output format renders, and the JSON
contract CI scripts read (``kvverify check --format json``; ``docs/json-report.md`` and the
JSON Schema ``docs/check-report.schema.json``, which a test holds these records to).

Contract rules: ``schema_version`` changes only when a field is removed or changes meaning;
new fields and new enum values may appear. A number a log does not print is ``null``, never
0; a number it prints as ``nan`` or ``inf`` is the string ``"nan"``, ``"inf"`` or ``"-inf"``
(JSON has no such numbers).

Plain frozen dataclasses, not pydantic: ``kvverify check`` starts fast.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Literal

from kvverify.exitcodes import CompareVerdict, Verdict

SCHEMA = "kvverify/check-report"
SCHEMA_VERSION = 1

Status = Literal["pass", "fail", "not_analyzable"]
Severity = Literal["error", "warning", "info"]
EngineName = Literal["trtllm", "sim", "unknown"]


@dataclass(frozen=True, slots=True)
class Diagnosis:
    """A named cause: why evidence is missing, or why reuse is missing or suspicious."""

    code: str  # stable identifier, e.g. 'no-host-pool'
    severity: Severity
    title: str  # one line a person reads first
    detail: str = ""  # what in the log shows it
    hint: str = ""  # how to fix or check it
    line: int | None = None  # a log line that shows it


@dataclass(frozen=True, slots=True)
class Check:
    """One expectation evaluated against one log."""

    expression: str
    source: str  # cli | scenario | log | default | baseline
    observed: float | None  # the value found; None when not analyzable
    status: Status
    reason: str = ""  # why not analyzable, or where the value came from
    diagnosis: str | None = None  # code of the most likely cause
    line: int | None = None  # the log line the value came from


@dataclass(frozen=True, slots=True)
class SummaryReport:
    """One shutdown summary block (one KV cache manager x rank x window)."""

    line: int
    segment: int  # which manager on that rank, from 0 in order of creation
    rank: int | None
    window_size: int | None
    final: bool  # the block the checks read
    estimation: bool  # the PyTorch backend's estimation (dry-run) manager
    allocated_total_blocks: int | None = None
    allocated_new_blocks: int | None = None
    missed_blocks: int | None = None
    reused_blocks: int | None = None
    reused_unique_blocks: int | None = None
    reused_unique_blocks_percent: float | None = None
    cache_hit_rate: float | None = None
    reused_tokens: int | None = None
    reused_tokens_percent: float | None = None


@dataclass(frozen=True, slots=True)
class RequestReport:
    """One request as the KV cache manager saw it (``addSequence`` and the lines around it)."""

    request_id: int
    segment: int
    rank: int | None
    line: int
    final: bool  # served by the final engine (the manager the checks read)
    step: int | None  # scenario step (from 1), when known
    dummy: bool  # warm-up, estimation or CUDA-graph padding request
    input_length: int
    reused_tokens: int
    reused_blocks: int | None
    partial_reused_blocks: int | None
    missed_blocks: int | None
    onboarded_blocks: int | None
    stored_blocks: int | None


@dataclass(frozen=True, slots=True)
class StepReport:
    """One scenario step: its request in the final manager, and what the run recorded."""

    step: int
    request_id: int | None
    reused_tokens: float | None
    reused_blocks: float | None
    missed_blocks: float | None
    first_token_ms: float | None  # from the run's markers
    latency_ms: float | None  # from the run's markers


@dataclass(frozen=True, slots=True)
class EngineInfo:
    """Which engine produced the evidence. ``sim`` is kvverify's reference model, not a GPU:
    a log the model wrote says so (its mark), whatever version banner it imitates."""

    name: EngineName
    version: str | None = None
    dialect: str | None = None  # log format era the model wrote (sim only)
    #: the TensorRT-LLM version the log's banner names (for sim: the release it imitates)
    banner: str | None = None


class Requests:
    """The requests of a log, made each time a report is rendered (a dense log has tens of
    thousands per GiB: they are streamed, not held as records)."""

    def __init__(self, make: Callable[[], Iterable[RequestReport]] | None = None) -> None:
        self._make = make

    def __iter__(self) -> Iterator[RequestReport]:
        return iter(self._make() if self._make is not None else ())


@dataclass(frozen=True)
class LogReport:
    path: str
    verdict: Verdict
    #: the scenario and variant kvverify run ran (null for a log it did not write)
    scenario: str | None
    variant: str | None
    engine: EngineInfo
    formats: tuple[str, ...]  # log format eras recognised, e.g. 'summary: 9 lines'
    era: str | None  # the log format era, as --dialect names it ('1.2', '2026', ...)
    families: tuple[str, ...]  # evidence families the log shows ('addSequence', 'copyBlock')
    #: every engine metric of the final engine (null: the log cannot say)
    metrics: dict[str, float | None]
    #: the summary metrics of each other rank's final manager, by rank (tensor parallelism)
    rank_metrics: dict[str, dict[str, float | None]]
    lines: int
    runs: int
    ranks: tuple[int | None, ...]
    summaries: tuple[SummaryReport, ...]
    steps: tuple[StepReport, ...]  # scenario steps, when they map to requests
    requests: Requests
    checks: tuple[Check, ...]
    diagnoses: tuple[Diagnosis, ...]
    errors: tuple[str, ...]  # engine error lines, 'line: text', the first 50
    error_count: int


@dataclass(frozen=True)
class CheckReport:
    kvverify_version: str
    verdict: Verdict
    exit_code: int
    logs: tuple[LogReport, ...]
    #: which scanner read the logs: "native" (the C extension) or "python"
    scanner: str = "python"
    schema: str = field(default=SCHEMA)
    schema_version: int = SCHEMA_VERSION


# -- comparisons (kvverify compare, and --baseline) -----------------------------------------------

COMPARE_SCHEMA = "kvverify/compare-report"
FindingStatus = Literal["fail", "pass", "note"]
Kind = Literal["metric", "step", "request", "family", "era", "engine", "entry"]


@dataclass(frozen=True, slots=True)
class Finding:
    """One difference (or sameness) between an old and a new side."""

    entry: str  # scenario/variant, or the log's file name
    kind: Kind
    name: str  # the metric, step[N].metric, request[N], a family, ...
    old: float | str | None  # a number, "nan"/"inf", a version or era name; null: not shown
    new: float | str | None
    delta: float | None  # new - old, for numbers
    tolerance: str | None  # how far it may move the worse way: "0", "0.02", "10%"
    status: FindingStatus
    message: str


SideKind = Literal["baseline", "log", "run"]


@dataclass(frozen=True, slots=True)
class Side:
    """One side of a comparison: where it came from and what it holds."""

    source: str
    kind: SideKind
    entries: tuple[str, ...]
    engines: tuple[str, ...]  # "trtllm 1.2.0rc2", "sim ..."


@dataclass(frozen=True)
class CompareReport:
    kvverify_version: str
    verdict: CompareVerdict
    exit_code: int
    reason: str  # why the sides cannot be compared (not_comparable), else ""
    old: Side
    new: Side
    findings: tuple[Finding, ...]
    schema: str = field(default=COMPARE_SCHEMA)
    schema_version: int = 1
