"""Named causes for missing evidence and for missing or suspicious reuse.

Every diagnosis has a stable code (CI scripts may match on it), a one-line title, what in the
log shows it, and how to fix it. :data:`CATALOG` is the list; ``docs/diagnoses.md`` is checked
against it by a test.
"""

from __future__ import annotations

from dataclasses import dataclass

from kvverify.evidence.attribute import Segment
from kvverify.evidence.facts import Facts
from kvverify.observe import block_counts
from kvverify.result import Check, Diagnosis, Severity
from kvverify.text import clean


@dataclass(frozen=True)
class Cause:
    severity: Severity
    title: str
    hint: str


CATALOG: dict[str, Cause] = {
    "empty-log": Cause(
        "error",
        "the log is empty",
        "capture everything the engine prints: TLLM_LOG_LEVEL=DEBUG python app.py 2>&1 | tee "
        "LOG, or let kvverify run capture it",
    ),
    "no-debug-lines": Cause(
        "error",
        "no TensorRT-LLM DEBUG lines: TLLM_LOG_LEVEL was not DEBUG",
        "set TLLM_LOG_LEVEL=DEBUG in the environment of the process before tensorrt_llm is "
        "imported (setting os.environ later is too late; kvverify run does it for you)",
    ),
    "no-kv-cache-lines": Cause(
        "error",
        "DEBUG logging was on, but no KV cache manager line appears",
        "did the engine start? Look for errors above; a log cut before the first request has "
        "no KV-cache lines",
    ),
    "kv-cache-manager-v2": Cause(
        "error",
        "KV cache manager V2 was selected: it prints no summary",
        "pass KvCacheConfig(use_kv_cache_manager_v2=False) to use the V1 manager (TensorRT-LLM "
        "picks V2 for Llama-family models when left at 'auto')",
    ),
    "no-summary": Cause(
        "error",
        "engine never shut down: requests but no summary",
        "the summary is printed when the KV cache manager is destroyed: call llm.shutdown(), "
        "release the LLM, let the process exit normally (no os._exit, no kill) and read its "
        "output to the end",
    ),
    "summary-without-hit-rate": Cause(
        "warning",
        "3-line summary: this TensorRT-LLM (2024 and older) prints no hit rate",
        "check reused_blocks instead of cache_hit_rate for this version",
    ),
    "old-summary-format": Cause(
        "warning",
        "this summary format does not print the metric",
        "use a metric the summary prints: 3-line summaries have allocated and reused blocks",
    ),
    "reuse-disabled": Cause(
        "error",
        "KV cache block reuse is disabled",
        "KvCacheConfig(enable_block_reuse=True); reuse is also forced off when a sink-token "
        "bubble is configured",
    ),
    "no-host-pool": Cause(
        "warning",
        "no host pool: host_cache_size is 0, evicted blocks are dropped",
        "set KvCacheConfig(host_cache_size=...) (e.g. 1 GiB) to offload evicted blocks to host "
        "RAM and bring them back on reuse",
    ),
    "prompt-too-short": Cause(
        "warning",
        "prompts shorter than one block plus one token",
        "a request can reuse at most its first L-1 prompt tokens; without partial reuse only "
        "whole blocks of tokens_per_block are looked up, so a prompt of tokens_per_block "
        "tokens or fewer is never reused: make the shared prompt longer, lower "
        "tokens_per_block, or turn on KvCacheConfig(enable_partial_reuse=True)",
    ),
    "gpu-pool-holds-several": Cause(
        "warning",
        "the GPU pool can hold several requests: blocks may be reused without offloading",
        "for a negative control, make the GPU pool (max_tokens) hold one request only, or "
        "generate to max_seq_len so each request fills it",
    ),
    "warmup-pollution": Cause(
        "warning",
        "the final summary includes warm-up traffic",
        "the summary counts every request of the manager, warm-up and padding dummies "
        "included: check per step (step[N].reused_tokens) or per request instead",
    ),
    "engine-errors": Cause(
        "error",
        "engine errors in the log",
        "read the first error line; a crash or CUDA error can leave numbers incomplete",
    ),
    "missing-sequence": Cause(
        "warning",
        "'Can not find sequence' warnings: blocks of some requests were not stored",
        "a known TensorRT-LLM issue around request teardown; reuse of those requests is lost",
    ),
    "truncated-log": Cause(
        "warning",
        "the log ends in the middle of a line",
        "the capture was cut off (disk full, killed tee, interrupted copy): later lines, the "
        "summary among them, may be missing",
    ),
    "multiple-runs": Cause(
        "info",
        "the log holds several runs; the checks read the last one",
        "split the log or write each run to its own file to check them one by one",
    ),
    "estimation-pass": Cause(
        "info",
        "an estimation (dry-run) KV cache manager printed its own summary",
        "the checks read the final engine's summary; the estimation block is listed for "
        "reference only",
    ),
    "ranks-differ": Cause(
        "warning",
        "ranks printed different summaries",
        "the checks read the lowest rank; scope a check with rank[N]. to read another",
    ),
    "no-offload-evidence": Cause(
        "warning",
        "the log shows no offload evidence",
        "TensorRT-LLM 1.2+ at DEBUG prints copyBlock lines; or run with "
        "enable_iter_perf_stats=True / KvCacheConfig(event_buffer_max_size>0) (kvverify run "
        "records both)",
    ),
    "no-config-lines": Cause(
        "warning",
        "the log does not print the configuration needed",
        "keep the INFO and DEBUG lines printed when the engine starts",
    ),
    "no-batch-size": Cause(
        "error",
        "warm-up requests cannot be told from real ones",
        "check with --scenario (its max_batch_size), or a log written by kvverify run; "
        "request[ID] reads one request by the id TensorRT-LLM printed",
    ),
    "no-step-mapping": Cause(
        "error",
        "steps cannot be matched to requests",
        "give the scenario with --scenario, or check a log written by kvverify run; "
        "request[ID] addresses requests by the id TensorRT-LLM printed",
    ),
    "step-not-run": Cause(
        "error",
        "a scenario step has no request in the final manager",
        "did the run stop early? Look for errors and for the step markers",
    ),
    "request-not-found": Cause(
        "error",
        "the request id is not in the final manager",
        "TensorRT-LLM numbers requests from max_batch_size on: the first real request of "
        "LLM(max_batch_size=1) is request 1",
    ),
    "approximate-tokens": Cause(
        "info",
        "text prompts were tokenized approximately (no local tokenizer)",
        "the reference model's block counts for text prompts are estimates: install "
        "kvverify[tokenizer] with the model's tokenizer.json available locally, or use token-id "
        "prompts (tokens, synthetic) for exact numbers",
    ),
    "engine-api-error": Cause(
        "error",
        "an engine API kvverify reads evidence from failed",
        "after a TensorRT-LLM upgrade this is API drift: read the error, and check the API "
        "(LLM.get_stats, LLM.get_kv_cache_events) in the installed version's llm.py",
    ),
    "model-evidence": Cause(
        "warning",
        "the evidence comes from kvverify's reference model, not from TensorRT-LLM",
        "the model predicts what TensorRT-LLM should do; to gate a TensorRT-LLM release, run "
        "on a GPU host with --engine trtllm",
    ),
    "baseline-change": Cause(
        "info",
        "changed against the baseline, not for the worse",
        "an improvement, a new log format era or engine version, evidence that appeared: "
        "save a new baseline when the change is expected",
    ),
    "baseline-not-saved": Cause(
        "error",
        "the baseline was not saved: the checks did not pass",
        "a baseline records a release that passes its own checks; fix what the report shows "
        "and save it again",
    ),
    "no-baseline-entry": Cause(
        "error",
        "the baseline has no entry for this log",
        "entries are matched by scenario/variant (logs kvverify run wrote) or by file name; "
        "save the baseline from the same scenario or logs",
    ),
    "not-comparable": Cause(
        "error",
        "the log cannot be compared with the baseline",
        "compare like with like: the same scenario on the same kind of engine (a baseline "
        "the reference model made says nothing about TensorRT-LLM)",
    ),
    "no-run-markers": Cause(
        "error",
        "this metric is recorded by kvverify run only",
        "run the scenario with kvverify run (it asks TensorRT-LLM for perf metrics)",
    ),
}

_REUSE_METRICS = {
    "reused_blocks",
    "reused_tokens",
    "reused_unique_blocks",
    "cache_hit_rate",
    "reused_tokens_percent",
    "reused_unique_blocks_percent",
    "partial_reused_blocks",
}
_OFFLOAD_METRICS = {"offloaded_blocks", "onboarded_blocks"}


def make(code: str, detail: str = "", line: int | None = None) -> Diagnosis:
    c = CATALOG[code]
    return Diagnosis(
        code=code, severity=c.severity, title=c.title, detail=detail, hint=c.hint, line=line
    )


def diagnose_log(facts: Facts, *, engine_started: bool = True) -> list[Diagnosis]:
    """What is worth knowing about a log whatever the checks say. ``engine_started``: False
    when a run ended before its engine printed anything (then a missing level says nothing)."""
    ev = facts.ev
    out: list[Diagnosis] = []
    shape = ev.shape
    if shape is not None and shape.lines == 0:
        return [make("empty-log")]
    if facts.record.model is not None:
        out.append(make("model-evidence", _model_detail(facts)))
    if ev.error_count:
        real = [e for e in ev.errors if e.kind != "missing-sequence"]
        if real:
            first = real[0]
            more = ev.error_count - 1
            out.append(
                make(
                    "engine-errors",
                    f"line {first.line}: {clean(first.text)}"
                    + (f" (+{more} more)" if more > 0 else ""),
                    first.line,
                )
            )
        missing = [e for e in ev.errors if e.kind == "missing-sequence"]
        if missing:
            out.append(
                make(
                    "missing-sequence",
                    f"{len(missing)} warning(s), first: {clean(missing[0].text)}",
                    missing[0].line,
                )
            )
    for failure in facts.record.api_failures:
        out.append(
            make(
                "engine-api-error",
                f"{failure.api}() raised {failure.type}: {clean(failure.message)}",
            )
        )
    if shape is not None and shape.unterminated_last_line and shape.lines > 0:
        out.append(make("truncated-log", f"line {shape.lines} has no end", shape.lines))
    if ev.runs > 1:
        out.append(make("multiple-runs", f"{ev.runs} runs"))
    seg = facts.final
    if seg is not None:
        earlier = [
            b
            for s in ev.rank_segments(seg.rank)
            if s.index < seg.index and facts.is_estimation(s)
            for b in s.summaries
        ]
        if earlier:
            est = earlier[0]
            out.append(
                make(
                    "estimation-pass",
                    f"summary at line {est.line} belongs to manager {est.segment} on this rank",
                    est.line,
                )
            )
        short = _all_short_unreused(facts, seg)
        if short:
            out.append(make("prompt-too-short", short))
        dummies = facts.dummy_requests(seg)
        tpb = seg.tokens_per_block
        dummy_reuse = sum(block_counts(r, tpb)["reused_blocks"] or 0 for r in dummies)
        if dummy_reuse:
            ids = ", ".join(sorted({str(r.request_id) for r in dummies}))
            out.append(
                make(
                    "warmup-pollution",
                    f"{dummy_reuse} reused block(s) belong to warm-up or padding requests "
                    f"(ids {ids})",
                )
            )
        ranks = [r for r in ev.ranks() if r is not None]
        if len(ranks) > 1:
            sums = {
                tuple(
                    sorted((b.window or 0, b.values.get("reused_blocks", -1)) for b in s.summaries)
                )
                for r in ranks
                if (s := facts.finals.get(r)) is not None and s.summaries
            }
            if len(sums) > 1:
                out.append(
                    make(
                        "ranks-differ",
                        f"{len(sums)} different summaries over ranks " + ", ".join(map(str, ranks)),
                    )
                )
    elif (
        shape is not None
        and shape.lines
        and not ev.debug
        and engine_started
        and not (ev.v2 and ev.v2.selected)
    ):
        out.append(make("no-debug-lines", _level_detail(facts)))
    if ev.v2 is not None and ev.v2.selected:
        out.append(make("kv-cache-manager-v2", clean(ev.v2.text), ev.v2.line))
    return out


def _all_short_unreused(facts: Facts, seg: Segment) -> str:
    """When the final manager's requests all fit in one block and none reused a token: why."""
    tpb = seg.tokens_per_block
    stats = facts.request_stats(seg)
    if not tpb or not stats.count or stats.reused_any or stats.longest > tpb:
        return ""
    return (
        f"{stats.count} request(s), the longest {stats.longest} tokens, with {tpb} tokens per "
        "block: none reused a token"
    )


def _model_detail(facts: Facts) -> str:
    mark = facts.record.model
    assert mark is not None
    era = f", writing the {mark.dialect} log format" if mark.dialect else ""
    return f"written by kvverify {mark.kvverify_version}'s reference model{era}"


def _level_detail(facts: Facts) -> str:
    levels = facts.ev.levels
    if "info" in levels:
        return f"INFO lines from line {levels['info']}, no DEBUG line"
    return "no TensorRT-LLM level tag at all: is this a TensorRT-LLM log?"


def cause_of(check: Check, metric: str, facts: Facts) -> str | None:
    """The most likely diagnosis for a failed check (None if nothing in the log explains it)."""
    seg = facts.final
    if seg is None or check.observed is None:
        return None
    causes: list[str] = []
    if metric in _REUSE_METRICS | _OFFLOAD_METRICS and check.observed == 0:
        # None happened where some was expected.
        if seg.reuse_enabled is False:
            causes.append("reuse-disabled")
        tpb = seg.tokens_per_block
        stats = facts.request_stats(seg)
        if metric in _REUSE_METRICS and tpb and stats.count and stats.longest <= tpb:
            causes.append("prompt-too-short")
        if seg.primary_blocks and not seg.has_host_pool:
            causes.append("no-host-pool")
    elif metric in _REUSE_METRICS and check.observed > 0:
        # Some happened where none was expected: warm-up dummies, or a pool big enough.
        tpb = seg.tokens_per_block
        if any(block_counts(r, tpb)["reused_blocks"] for r in facts.dummy_requests(seg)):
            causes.append("warmup-pollution")
        if _pool_holds_several(facts, seg):
            causes.append("gpu-pool-holds-several")
    if any(e.kind != "missing-sequence" for e in facts.ev.errors):
        causes.append("engine-errors")
    return causes[0] if causes else None


def _pool_holds_several(facts: Facts, seg: Segment) -> bool:
    """Could the GPU pool hold the two largest requests at once (so nothing was evicted)?"""
    if not seg.primary_blocks:
        return False
    sizes = facts.request_stats(seg).largest_two
    return len(sizes) == 2 and sum(sizes) <= min(seg.primary_blocks.values())
