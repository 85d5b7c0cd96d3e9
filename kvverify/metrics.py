"""The metrics an expectation can name, with what each means and where it comes from.

Two families: *engine* metrics describe the final KV cache manager (its shutdown summary, its
offload evidence, its configuration) and can be scoped with ``window[N].``, ``rank[N].`` or
``segment[N].``; *request* metrics describe one request and are scoped with ``request[ID].``
(the id TensorRT-LLM printed) or ``step[N].`` (the N-th step of a scenario, from 1).
This table is the documentation: ``docs/expectations.md`` is checked against it by a test.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


def hit_rate(reused: float, missed: float) -> float:
    """The cache hit rate as TensorRT-LLM computes it: reused / (reused + missed), and 0 when
    nothing was reused."""
    return 0.0 if reused == 0 else reused / (reused + missed)


Family = Literal["engine", "request"]


@dataclass(frozen=True)
class Metric:
    name: str
    family: Family
    description: str


_ENGINE = [
    ("allocated_total_blocks", "summary: every block the manager handed out, new or onboarded"),
    ("allocated_new_blocks", "summary: blocks allocated fresh"),
    ("missed_blocks", "summary: context blocks looked up and not found"),
    ("reused_blocks", "summary: context blocks found and reused (GPU or onboarded from host)"),
    ("reused_unique_blocks", "summary: distinct blocks reused"),
    ("reused_unique_blocks_percent", "summary: reused unique / allocated new x 100"),
    ("cache_hit_rate", "summary: reused / (reused + missed), a fraction 0-1"),
    ("reused_tokens", "summary: prompt tokens whose KV cache was reused"),
    ("reused_tokens_percent", "summary: reused tokens / input tokens x 100"),
    ("offloaded_blocks", "blocks copied GPU->host (iteration stats, KV events or copyBlock lines)"),
    ("onboarded_blocks", "blocks copied host->GPU (same sources; partial-reuse copies excluded)"),
    ("requests", "requests the final manager served (warm-up and padding dummies excluded)"),
    ("primary_blocks", "blocks in the GPU (primary) pool"),
    ("secondary_blocks", "blocks in the host (secondary) pool; 0 means no offloading"),
    ("tokens_per_block", "tokens per KV-cache block"),
    ("errors", "engine error lines in the whole log (ERROR lines, tracebacks, CUDA errors)"),
]

_REQUEST = [
    ("input_length", "addSequence inputLength: prompt tokens"),
    ("reused_tokens", "prepopulatedPromptLen: prompt tokens whose KV cache was reused"),
    ("reused_blocks", "context blocks reused (full and partial)"),
    ("partial_reused_blocks", "context blocks reused partially (in place or by copy)"),
    ("missed_blocks", "context blocks not found"),
    ("onboarded_blocks", "host->GPU copies made for this request's lookups"),
    ("stored_blocks", "releaseBlocks: blocks stored for reuse when it finished"),
    ("cache_hit_rate", "reused / (reused + missed) for this request"),
    ("allocated_total_blocks", "perf metrics: blocks allocated for this request"),
    ("allocated_new_blocks", "perf metrics: new blocks allocated for this request"),
    ("cached_tokens", "RequestOutput.cached_tokens reported to the caller"),
    ("first_token_ms", "time to first token, from the run's markers"),
    ("latency_ms", "end-to-end latency, from the run's markers"),
]

ENGINE_METRICS: dict[str, Metric] = {n: Metric(n, "engine", d) for n, d in _ENGINE}
REQUEST_METRICS: dict[str, Metric] = {n: Metric(n, "request", d) for n, d in _REQUEST}

#: Scopes and the metric family they select.
SCOPES: dict[str, Family] = {
    "window": "engine",
    "rank": "engine",
    "segment": "engine",
    "request": "request",
    "step": "request",
}

#: What a ``{matches: predicted}`` expectation can compare with the reference model.
MATCHABLE = (
    "reused_blocks",
    "missed_blocks",
    "reused_tokens",
    "allocated_total_blocks",
    "allocated_new_blocks",
    "offloaded_blocks",
    "onboarded_blocks",
    "steps.reused_tokens",
    "steps.reused_blocks",
    "steps.missed_blocks",
)
#: What it compares when it names no metrics: the reuse the log shows for the whole run and for
#: each step. (Warm-up traffic, which the model only approximates, reuses no blocks from 1.2 on;
#: allocation and miss counts depend on it.)
DEFAULT_MATCH_METRICS = ("reused_blocks", "steps.reused_tokens")
