"""Observations: the value of a metric in a log, or why the log cannot give it.

A value the log does not show is never made up: :class:`Observation` then carries ``None``, the
reason in words, and the code of the diagnosis that explains it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from kvverify import markers
from kvverify.evidence.attribute import Evidence, Request, Segment, SummaryBlock
from kvverify.evidence.facts import Facts
from kvverify.expect import Expectation, Scope
from kvverify.metrics import hit_rate
from kvverify.result import Diagnosis
from kvverify.text import clean

#: Summary metrics that are counts (summed over windows); the others are ratios.
_COUNTS = (
    "allocated_total_blocks",
    "allocated_new_blocks",
    "missed_blocks",
    "reused_blocks",
    "reused_unique_blocks",
    "reused_tokens",
)
_SUMMARY = (*_COUNTS, "reused_unique_blocks_percent", "cache_hit_rate", "reused_tokens_percent")


@dataclass(frozen=True)
class Observation:
    value: float | None
    reason: str = ""
    cause: str | None = None
    line: int | None = None


def _missing(reason: str, cause: str | None = None, line: int | None = None) -> Observation:
    return Observation(None, reason, cause, line)


@dataclass(frozen=True)
class View:
    """The evidence a log offers the checks: its facts, and how its run ended when it did
    not end well."""

    facts: Facts
    #: how a run ended that did not end well, from its markers
    run_failure: Diagnosis | None = None
    #: each step's own record, read once (a run of thousands of steps observes each often)
    _marked: dict[int, dict[str, float]] = field(default_factory=dict, repr=False)
    #: tokens per block of each (rank, segment)
    _tpb: dict[tuple[int | None, int], int | None] = field(default_factory=dict, repr=False)

    @property
    def ev(self) -> Evidence:
        return self.facts.ev

    def observe(self, exp: Expectation) -> Observation:
        """What the log says of ``exp``'s metric, in its scope."""
        return self.request(exp) if exp.request_scope else self.engine(exp)

    # -- engine metrics ------------------------------------------------------------------------

    def engine(self, exp: Expectation) -> Observation:
        seg, why = self._segment(exp.scopes)
        if seg is None:
            return why
        window = next((s.index for s in exp.scopes if s.kind == "window"), None)
        m = exp.metric
        if m in _SUMMARY:
            return self._summary_metric(seg, m, window, "window" in {s.kind for s in exp.scopes})
        if m in ("offloaded_blocks", "onboarded_blocks"):
            return self._transfers(seg, m, scoped=bool(exp.scopes))
        if m == "requests":
            if not seg.requests and seg.reuse_enabled is False:
                return _missing(
                    "block reuse is disabled, so no request printed an addSequence line",
                    "reuse-disabled",
                )
            real = self.facts.request_stats(seg).count
            if real and not self.facts.dummies_known and not self.facts.is_estimation(seg):
                return _missing(
                    "warm-up requests cannot be told from real ones without max_batch_size "
                    "(warm-up ids are those below it)",
                    "no-batch-size",
                )
            return Observation(float(real), "addSequence lines of the final manager")
        if m == "errors":
            return Observation(float(self.ev.error_count), "error lines in the whole log")
        if m == "tokens_per_block":
            if seg.tokens_per_block is None:
                return _missing("the log does not print the tokens per block", "no-config-lines")
            return Observation(float(seg.tokens_per_block), "'Number of tokens per block' line")
        if m in ("primary_blocks", "secondary_blocks"):
            pools = seg.primary_blocks if m == "primary_blocks" else seg.secondary_blocks
            if window is not None:
                pools = {w: n for w, n in pools.items() if w == window}
            if not pools:
                if m == "secondary_blocks" and seg.primary_blocks:
                    # A manager prints its secondary pool only when it has one (reference §2.3).
                    return Observation(0.0, "no secondary pool line: TensorRT-LLM prints none")
                return _missing(f"the log prints no {m.replace('_', ' ')} line", "no-config-lines")
            return Observation(float(sum(pools.values())), "pool allocation lines")
        raise AssertionError(m)  # pragma: no cover - the grammar admits no other name

    def _segment(self, scopes: tuple[Scope, ...]) -> tuple[Segment | None, Observation]:
        ev = self.ev
        rank_scope = next((s for s in scopes if s.kind == "rank"), None)
        seg_scope = next((s for s in scopes if s.kind == "segment"), None)
        ranks = ev.ranks()
        if rank_scope is not None:
            if rank_scope.index not in ranks:
                seen = ", ".join(str(r) for r in ranks if r is not None) or "none printed"
                return None, _missing(f"no rank {rank_scope.index} in the log (ranks: {seen})")
            rank: int | None = rank_scope.index
        else:
            rank = ranks[0] if ranks else None
        if seg_scope is not None:
            segs = ev.rank_segments(rank)
            if seg_scope.index >= len(segs):
                return None, _missing(
                    f"no segment {seg_scope.index} (the log holds {len(segs)} KV cache "
                    "manager(s) on this rank)"
                )
            return segs[seg_scope.index], Observation(None)
        seg = ev.final_segment_of(rank) if ranks else None
        if seg is None:
            return None, self._no_engine()
        return seg, Observation(None)

    def _no_engine(self) -> Observation:
        ev = self.ev
        diagnosis = self.run_failure
        if diagnosis is not None:
            detail = f": {diagnosis.detail}" if diagnosis.detail else ""
            return _missing(
                f"{diagnosis.title} before it printed any KV-cache line{detail}", diagnosis.code
            )
        if ev.shape is not None and ev.shape.lines == 0:
            return _missing("the log is empty", "empty-log")
        if ev.v2 is not None and ev.v2.selected:
            return _missing(
                "KV cache manager V2 was selected and prints no summary",
                "kv-cache-manager-v2",
                ev.v2.line,
            )
        if not ev.debug:
            return _missing(
                "the log has no TensorRT-LLM DEBUG lines: TLLM_LOG_LEVEL was not DEBUG",
                "no-debug-lines",
            )
        return _missing("the log shows no KV cache manager at work", "no-kv-cache-lines")

    def _summary_metric(
        self, seg: Segment, metric: str, window: int | None, windowed: bool
    ) -> Observation:
        blocks = seg.summaries
        if windowed:
            blocks = [b for b in blocks if b.window == window]
            if not blocks:
                seen = ", ".join(str(b.window) for b in seg.summaries) or "none"
                return _missing(
                    f"the final manager printed no summary for window {window} (windows: {seen})",
                    "no-summary" if not seg.summaries else None,
                )
        if not blocks:
            return self._no_summary(seg)
        have = [b for b in blocks if metric in b.values]
        if len(have) < len(blocks):
            lines = len(blocks[0].values)
            return _missing(
                f"this summary format ({lines} lines) does not print {metric.replace('_', ' ')}",
                "summary-without-hit-rate" if metric == "cache_hit_rate" else "old-summary-format",
                blocks[0].line,
            )
        if len(have) == 1:
            b = have[0]
            return Observation(b.values[metric], f"summary at line {b.line}", line=b.line)
        return self._combined(have, metric)

    def _combined(self, blocks: list[SummaryBlock], metric: str) -> Observation:
        """Several windows (VSWA): add the counts up, recompute the hit rate."""
        first = blocks[0].line
        where = f"summaries at lines {', '.join(str(b.line) for b in blocks)}, added up"
        if metric in _COUNTS:
            return Observation(sum(b.values[metric] for b in blocks), where, line=first)
        if metric == "cache_hit_rate" and all("missed_blocks" in b.values for b in blocks):
            reused = sum(b.values["reused_blocks"] for b in blocks)
            missed = sum(b.values["missed_blocks"] for b in blocks)
            return Observation(hit_rate(reused, missed), where, line=first)
        return _missing(
            f"{metric} cannot be combined over windows; scope it, e.g. "
            f"window[{blocks[0].window}].{metric}",
            line=first,
        )

    def _no_summary(self, seg: Segment) -> Observation:
        ev = self.ev
        if ev.v2 is not None and ev.v2.selected:
            return _missing(
                "KV cache manager V2 was selected and prints no summary",
                "kv-cache-manager-v2",
                ev.v2.line,
            )
        failure = self.run_failure
        if failure is not None:  # the run's end explains it: said once, as such
            return _missing(
                f"{failure.title} before the final KV cache manager printed its summary",
                failure.code,
                seg.line,
            )
        return _missing(
            "the final KV cache manager printed no summary: the process died or was killed "
            "before shutdown, or the manager was never destroyed",
            "no-summary",
            seg.line,
        )

    def _transfers(self, seg: Segment, metric: str, *, scoped: bool) -> Observation:
        offload = metric == "offloaded_blocks"
        # The run's own stats cover its final engine, all windows: not a scoped segment or window.
        marked = self.facts.offloads
        if marked is not None and not scoped:
            return Observation(
                float(marked.offloaded if offload else marked.onboarded), marked.source
            )
        if seg.iter_offloads is not None:
            value = seg.iter_offloads if offload else seg.iter_onboards
            return Observation(float(value or 0), "kvCacheIterationStats in the log")
        if seg.event_offloads is not None:
            value = seg.event_offloads if offload else seg.event_onboards
            return Observation(float(value or 0), "KV-cache events (cache_level) in the log")
        if seg.copy_lines or self.ev.copy_lines_expected(seg):
            copies = seg.lookups[2]  # "Copied partially filled block" is also isOffload=false
            value = seg.offload_copies if offload else max(0, seg.onboard_copies - copies)
            return Observation(float(value), "copyBlock lines in the log")
        if seg.primary_blocks and not seg.has_host_pool and self.ev.debug:
            return Observation(0.0, "the final manager has no secondary (host) pool")
        failures = self.facts.record.api_failures
        if failures:
            f = failures[0]
            return _missing(
                f"the engine's {f.api}() failed ({f.type}: {clean(f.message, 160)}), and the log "
                "shows no other offload evidence",
                "engine-api-error",
            )
        return _missing(
            "the log shows no offload evidence: copyBlock lines exist only in TensorRT-LLM 1.2+ "
            "at DEBUG; iteration stats need enable_iter_perf_stats, KV events "
            "event_buffer_max_size > 0",
            "no-offload-evidence",
        )

    # -- request metrics ------------------------------------------------------------------------

    def request(self, exp: Expectation) -> Observation:
        scope = exp.request_scope
        assert scope is not None
        facts = self.facts
        if scope.kind == "step":
            if facts.steps is None and self.run_failure is not None and facts.final is None:
                return self._no_engine()
            if facts.steps is None:
                return _missing(facts.steps_reason, "no-step-mapping")
            req = facts.steps.get(scope.index)
            if req is None and self.run_failure is not None:
                return _missing(
                    f"step {scope.index} did not run: {self.run_failure.title}",
                    self.run_failure.code,
                )
            if req is None:
                return _missing(
                    f"step {scope.index} has no request in the final manager "
                    f"({len(facts.steps)} step(s) mapped)",
                    "step-not-run",
                )
            marked = self._marked.get(scope.index)
            if marked is None:
                marked = _step_values(facts.record.step_ends.get(scope.index))
                self._marked[scope.index] = marked
            if exp.metric in marked:
                return Observation(marked[exp.metric], "the run's own record of the step")
        else:
            seg = facts.final
            found = seg.request(scope.index) if seg is not None else None
            if found is None:
                ids = sorted(set(seg.requests.column("request_id"))) if seg else []
                shown = ", ".join(map(str, ids[:12])) + (" ..." if len(ids) > 12 else "")
                return _missing(
                    f"request {scope.index} is not in the final manager (ids: {shown or 'none'})",
                    "request-not-found",
                )
            req = found
        return self._request_metric(req, exp.metric)

    def _request_metric(self, req: Request, metric: str) -> Observation:
        where = f"request {req.request_id} at line {req.line}"
        tpb = self._tokens_per_block(req)
        if metric == "input_length":
            return Observation(float(req.input_length), where, line=req.line)
        if metric == "reused_tokens":
            return Observation(float(req.reused_tokens), where, line=req.line)
        counts = block_counts(req, tpb)
        if metric in ("reused_blocks", "partial_reused_blocks", "missed_blocks"):
            value = counts[metric]
            if value is None:
                return _missing(
                    "no per-block lines for this request and no tokens-per-block line to "
                    "derive them",
                    "no-config-lines",
                    req.line,
                )
            return Observation(float(value), where, line=req.line)
        if metric == "cache_hit_rate":
            reused, missed = counts["reused_blocks"], counts["missed_blocks"]
            if reused is None or missed is None:
                return _missing("block counts unknown for this request", None, req.line)
            return Observation(hit_rate(reused, missed), where, line=req.line)
        if metric == "onboarded_blocks":
            if req.onboard_copies is None or not self.ev.prints_copies:
                return _missing(
                    "no copyBlock lines before this request (TensorRT-LLM 1.2+ at "
                    "DEBUG prints them)",
                    "no-offload-evidence",
                    req.line,
                )
            return Observation(
                float(max(0, req.onboard_copies - (req.copied or 0))), where, line=req.line
            )
        if metric == "stored_blocks":
            if req.stored_blocks is None:
                return _missing(
                    "no releaseBlocks line for this request (1.2+ prints it when "
                    "the request finishes)",
                    None,
                    req.line,
                )
            return Observation(float(req.stored_blocks), where, line=req.line)
        return _missing(
            f"{metric} comes from the run's own markers (kvverify run with "
            "return_perf_metrics); this log has none for the request",
            "no-run-markers",
            req.line,
        )

    def _tokens_per_block(self, req: Request) -> int | None:
        key = (req.rank, req.segment)
        if key not in self._tpb:
            self._tpb[key] = next(
                (
                    s.tokens_per_block
                    for s in self.ev.segments
                    if s.rank == req.rank and s.index == req.segment
                ),
                None,
            )
        return self._tpb[key]


def _step_values(marker: markers.StepEnd | None) -> dict[str, float]:
    """What the run recorded itself about a step: per-request KV-cache metrics and timing."""
    if marker is None:
        return {}
    out: dict[str, float] = {}
    kv = marker.kv or {}
    for key, name in (
        ("num_total_allocated_blocks", "allocated_total_blocks"),
        ("num_new_allocated_blocks", "allocated_new_blocks"),
    ):
        if isinstance(kv.get(key), int | float):
            out[name] = float(kv[key])
    for name in ("cached_tokens", "first_token_ms", "latency_ms"):
        value = getattr(marker, name)
        if isinstance(value, int | float):
            out[name] = float(value)
    return out


def block_counts(req: Request, tpb: int | None) -> dict[str, int | None]:
    """Reused / partial / missed blocks of a request: counted from its per-block lines, else
    derived from ``prepopulatedPromptLen`` (a partial match counts as one reused block,
    reference §6.2)."""
    if req.lookups_seen:
        partial = (req.partial or 0) + (req.copied or 0)
        return {
            "reused_blocks": (req.matched or 0) + partial,
            "partial_reused_blocks": partial,
            "missed_blocks": req.missed or 0,
        }
    if tpb is None or tpb <= 0:
        return dict.fromkeys(("reused_blocks", "partial_reused_blocks", "missed_blocks"))
    reused = math.ceil(req.reused_tokens / tpb)
    return {
        "reused_blocks": reused,
        "partial_reused_blocks": 1 if req.reused_tokens % tpb else 0,
        "missed_blocks": max(0, math.ceil(req.input_length / tpb) - reused),
    }
