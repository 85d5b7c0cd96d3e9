"""The result of checking logs: typed models that every output format renders, and the JSON
contract CI scripts read (``kvverify check --format json``; schema in ``docs/json-report.md``).

Contract rules: ``schema_version`` changes only when a field is removed or changes meaning;
new fields may appear at any time. A number a log does not print is ``null``, never 0.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

SCHEMA = "kvverify/check-report"
SCHEMA_VERSION = 1

Status = Literal["pass", "fail", "not_analyzable"]
Verdict = Literal["pass", "fail", "not_analyzable", "crashed", "interrupted"]
Severity = Literal["error", "warning", "info"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Diagnosis(_Model):
    """A named cause: why evidence is missing, or why reuse is missing or suspicious."""

    code: str = Field(description="stable identifier, e.g. 'no-host-pool'")
    severity: Severity
    title: str = Field(description="one line a person reads first")
    detail: str = Field(default="", description="what in the log shows it")
    hint: str = Field(default="", description="how to fix or check it")
    line: int | None = Field(default=None, description="a log line that shows it")


class Check(_Model):
    """One expectation evaluated against one log."""

    expression: str
    source: str = Field(description="cli | scenario | log | default")
    observed: float | None = Field(description="the value found; null when not analyzable")
    status: Status
    reason: str = Field(default="", description="why not analyzable, or where the value came from")
    diagnosis: str | None = Field(default=None, description="code of the most likely cause")
    line: int | None = Field(default=None, description="the log line the value came from")


class SummaryReport(_Model):
    """One shutdown summary block (one KV cache manager x rank x window)."""

    line: int
    segment: int = Field(description="which manager on that rank, from 0 in order of creation")
    rank: int | None
    window_size: int | None
    final: bool = Field(description="the block the checks read")
    estimation: bool = Field(description="the PyTorch backend's estimation (dry-run) manager")
    allocated_total_blocks: int | None = None
    allocated_new_blocks: int | None = None
    missed_blocks: int | None = None
    reused_blocks: int | None = None
    reused_unique_blocks: int | None = None
    reused_unique_blocks_percent: float | None = None
    cache_hit_rate: float | None = None
    reused_tokens: int | None = None
    reused_tokens_percent: float | None = None


class RequestReport(_Model):
    """One request as the KV cache manager saw it (``addSequence`` and the lines around it)."""

    request_id: int
    segment: int
    rank: int | None
    line: int
    step: int | None = Field(default=None, description="scenario step (from 1), when known")
    dummy: bool = Field(description="warm-up, estimation or CUDA-graph padding request")
    input_length: int
    reused_tokens: int
    reused_blocks: int | None
    partial_reused_blocks: int | None
    missed_blocks: int | None
    onboarded_blocks: int | None
    stored_blocks: int | None


class EngineInfo(_Model):
    """Which engine produced the evidence. ``sim`` is kvverify's reference model, not a GPU."""

    name: Literal["trtllm", "sim", "unknown"]
    version: str | None = None
    dialect: str | None = Field(default=None, description="log format era (sim only)")


class LogReport(_Model):
    path: str
    verdict: Verdict
    engine: EngineInfo
    formats: list[str] = Field(description="log format eras recognised, e.g. 'summary: 9 lines'")
    lines: int
    runs: int
    ranks: list[int | None]
    summaries: list[SummaryReport]
    requests: list[RequestReport]
    checks: list[Check]
    diagnoses: list[Diagnosis]
    errors: list[str] = Field(description="engine error lines, 'line: text', the first 50")
    error_count: int


class CheckReport(_Model):
    schema_: str = Field(default=SCHEMA, alias="schema")
    schema_version: int = SCHEMA_VERSION
    kvverify_version: str
    verdict: Verdict
    exit_code: int
    logs: list[LogReport]

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
