"""Facts about a log, each derived once from the attributed evidence, as immutable data.

What the checks, the diagnoses and the reports all need to agree on lives here, and only here:
what the last run's markers say (:class:`RunRecord`), which manager is the final engine, which
managers are estimation passes, which requests are warm-up or padding dummies, which request
is which scenario step, and where the offload counts come from. Nothing here changes the
evidence; everything downstream reads these facts instead of deriving its own.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

from kvverify import markers
from kvverify.evidence.attribute import NONE, PADDING_REQUEST_ID, Evidence, Request, Segment
from kvverify.plan import MAX_STEPS


@dataclass(frozen=True)
class RunRecord:
    """What ``kvverify run`` wrote into the log for its last run (everything None or empty
    for a log it did not write). ``stop_line``: where the supervisor began to stop the run."""

    run: markers.Run | None = None
    model: markers.ModelMark | None = None
    engine: markers.EngineLoaded | None = None
    ready: markers.Ready | None = None
    step_ends: Mapping[int, markers.StepEnd] = field(default_factory=dict)
    stats: tuple[dict[str, Any], ...] = ()
    events: tuple[dict[str, Any], ...] = ()
    api_failures: tuple[markers.ApiFailure, ...] = ()
    error: markers.WorkerError | None = None
    stop_line: int | None = None
    exit: markers.Exit | None = None

    @property
    def failed(self) -> bool:
        """The run did not end well (crash, timeout, interrupt, refused or missing engine)."""
        return self.exit is not None and self.exit.status != "ok"


def run_record(ev: Evidence) -> RunRecord:
    """The markers of the log's last run (from its ``run`` marker on), read once. The model's
    mark counts wherever it is: a log the reference model wrote is the model's."""
    found: dict[str, Any] = {"step_ends": {}, "stats": [], "events": [], "api_failures": []}
    model: markers.ModelMark | None = None
    for m in ev.markers:
        record = None if m.data is None else markers.decode(m.data)
        if isinstance(record, markers.ModelMark):
            model = record
        elif isinstance(record, markers.Run):
            found = {"run": record, "step_ends": {}, "stats": [], "events": [], "api_failures": []}
        elif isinstance(record, markers.EngineLoaded):
            found["engine"] = record
        elif isinstance(record, markers.Ready):
            found["ready"] = record
        elif isinstance(record, markers.StepEnd):
            found["step_ends"][record.step] = record
        elif isinstance(record, markers.IterStats):
            found["stats"] += record.stats
        elif isinstance(record, markers.KvEvents):
            found["events"] += record.events
        elif isinstance(record, markers.ApiFailure):
            found["api_failures"].append(record)
        elif isinstance(record, markers.WorkerError):
            found["error"] = record
        elif isinstance(record, markers.Stop):
            found.setdefault("stop_line", m.line)
        elif isinstance(record, markers.Exit):
            found["exit"] = record
    return RunRecord(
        **{
            **found,
            "model": model,
            "stats": tuple(found["stats"]),
            "events": tuple(found["events"]),
            "api_failures": tuple(found["api_failures"]),
        }
    )


@dataclass(frozen=True)
class StepPlan:
    """What a scenario says about its steps, for mapping them to requests."""

    prompt_lengths: tuple[int | None, ...]
    max_batch_size: int | None = None


def step_plan(given: StepPlan | None, record: RunRecord) -> StepPlan | None:
    """The step plan: from the log's own run markers when kvverify run wrote it, else the one
    given (``--scenario``)."""
    if record.run is None:
        return given
    ready = record.ready
    lengths = ready.prompt_lengths if ready is not None else ()
    # A damaged marker may claim any number: no plan is longer than a scenario can be.
    return StepPlan(
        prompt_lengths=lengths[:MAX_STEPS] or (None,) * min(record.run.steps, MAX_STEPS),
        max_batch_size=ready.max_batch_size if ready is not None else None,
    )


@dataclass(frozen=True)
class Offloads:
    """Offloads and onboards of the final engine, and where the numbers come from."""

    offloaded: int
    onboarded: int
    source: str


def _count(value: object) -> bool:
    """A block count as JSON carries it: a finite number (not a bool)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def marker_offloads(record: RunRecord) -> Offloads | None:
    """From the run's own markers: iteration statistics (``kvCacheIterationStats``), else
    KV-cache events (``updated`` cache_level 0->1 and 1->0)."""
    off = on = 0
    seen = False
    for stat in record.stats:
        windows = stat.get("kvCacheIterationStats") if isinstance(stat, dict) else None
        for w in windows.values() if isinstance(windows, dict) else ():
            counts = (
                (w.get("iterOffloadBlocks"), w.get("iterOnboardBlocks"))
                if isinstance(w, dict)
                else (None, None)
            )
            if all(isinstance(c, int) and not isinstance(c, bool) for c in counts):
                seen = True
                off += counts[0]  # type: ignore[operator]
                on += counts[1]  # type: ignore[operator]
    if seen:
        return Offloads(off, on, "iteration statistics of the run")
    if not record.events:
        return None
    for event in record.events:
        data = event.get("data") if isinstance(event, dict) else None
        if not isinstance(data, dict):
            continue
        level = data.get("cache_level") if data.get("type") == "updated" else None
        if isinstance(level, dict):
            change = (level.get("old_value"), level.get("new_value"))
            off += change == (0, 1)
            on += change == (1, 0)
    return Offloads(off, on, "KV-cache events of the run")


#: Evidence families a log can print: line families (attribution notes them) and what the
#: run's markers record. Error lines are not evidence: their disappearing is no loss.
FAMILIES = (
    "summary",
    "addSequence",
    "loadOrAllocateBlocks",
    "copyBlock",
    "releaseBlocks",
    "prepopulatedPromptLength",
    "configuration",
    "iterationStats",
    "kvCacheEvents",
    "perfMetrics",
)


def families(ev: Evidence, record: RunRecord) -> tuple[str, ...]:
    """The evidence families the log shows, in the log's own lines or in the run's markers."""
    found = set(ev.families)
    if record.stats:
        found.add("iterationStats")
    if record.events:
        found.add("kvCacheEvents")
    if any(s.kv for s in record.step_ends.values()):
        found.add("perfMetrics")
    return tuple(sorted(found))


def era(ev: Evidence, record: RunRecord) -> str | None:
    """The log format era (reference §0), named as ``--dialect`` names them: what the model
    says it wrote, else what the lines show. TensorRT-LLM's own logs of the 1.2 era are
    "1.2" whatever their prefix."""
    if record.model is not None and record.model.dialect:
        return record.model.dialect
    lines = {n for n, _ in ev.summary_formats}
    windowed = any(w for _, w in ev.summary_formats)
    if ev.windowed_requests:
        return "2026"
    if 3 in lines:
        return "2024a"
    if 7 in lines:
        return "2024b"
    if ev.prints_copies:
        return "1.2"
    if 9 in lines:
        return "2025mid" if windowed else "2025early"
    return None


@dataclass(frozen=True)
class RequestStats:
    """A manager's real requests in numbers: how many, the longest prompt, whether any reused
    a token, and the blocks the two largest held."""

    count: int
    longest: int
    reused_any: bool
    largest_two: tuple[int, ...]


@dataclass(frozen=True)
class Facts:
    """Everything derived from a log once, for the checks, diagnoses and reports."""

    ev: Evidence
    record: RunRecord
    #: the final engine's segment on the lowest rank (None: the last run's engine did nothing)
    final: Segment | None
    #: the final segment of each rank
    finals: Mapping[int | None, Segment]
    #: estimation (dry-run) managers, by id()
    estimation: frozenset[int]
    #: warm-up, estimation and padding requests, by their sequence number
    dummies: frozenset[int]
    #: warm-up requests can be told from real ones (max_batch_size known)
    dummies_known: bool
    plan: StepPlan | None
    #: scenario step (from 1) -> request of the final manager
    steps: Mapping[int, Request] | None
    #: why steps cannot be mapped (when ``steps`` is None)
    steps_reason: str
    #: the final engine's offloads from the run's own markers
    offloads: Offloads | None
    #: request_stats of each manager, derived once when first asked for
    _stats: dict[int, RequestStats] = field(default_factory=dict, repr=False, compare=False)

    def is_estimation(self, seg: Segment) -> bool:
        return id(seg) in self.estimation

    def is_dummy(self, req: Request) -> bool:
        return req.seq in self.dummies

    def dummy_requests(self, seg: Segment) -> list[Request]:
        """A manager's warm-up, estimation and padding requests (a handful)."""
        table = seg.requests
        return [table.at(i) for i, s in enumerate(table.column("seq")) if s in self.dummies]

    def request_stats(self, seg: Segment) -> RequestStats:
        """What the checks and diagnoses need to know about a manager's real requests, in one
        pass over its columns (a long log has millions of requests: no object each)."""
        cached = self._stats.get(id(seg))
        if cached is not None:
            return cached
        table, dummies = seg.requests, self.dummies
        tpb = seg.tokens_per_block or 1
        count = longest = 0
        reused = False
        largest: list[int] = [0, 0]
        for seq, length, tokens, stored in zip(
            table.column("seq"),
            table.column("input_length"),
            table.column("reused_tokens"),
            table.column("stored_blocks"),
            strict=True,
        ):
            if seq in dummies:
                continue
            count += 1
            longest = max(longest, length)
            if tokens > 0:
                reused = True
            held = stored if stored != NONE else -(-length // tpb)
            if held > largest[1]:
                largest = [held, largest[0]] if held > largest[0] else [largest[0], held]
        stats = RequestStats(count, longest, reused, tuple(largest[: min(count, 2)]))
        self._stats[id(seg)] = stats
        return stats

    def step_of(self) -> dict[int, int]:
        """Request sequence number -> its scenario step."""
        return {r.seq: k for k, r in (self.steps or {}).items()}


def _estimation(ev: Evidence, finals: Mapping[int | None, Segment]) -> frozenset[int]:
    """One rule: a manager is an estimation pass when the PyTorch backend says so, or when it
    comes first of several in its run on its rank and is not that rank's final engine (logs
    that do not say so: the estimation manager is built, used and destroyed first)."""
    out = set()
    final_ids = {id(s) for s in finals.values()}
    for seg in ev.segments:
        if seg.estimation:
            out.add(id(seg))
            continue
        same_run = [s for s in ev.rank_segments(seg.rank) if s.run == seg.run]
        if id(seg) not in final_ids and len(same_run) > 1 and seg is same_run[0]:
            out.add(id(seg))
    return frozenset(out)


def _dummies(
    ev: Evidence, estimation: frozenset[int], plan: StepPlan | None
) -> tuple[frozenset[int], bool]:
    """Padding dummies (id ``2**64 - 1``), every request of an estimation pass, and, when
    max_batch_size is known, the warm-up dummies of the last run's managers (ids below it,
    reference §9.3)."""
    batch = plan.max_batch_size if plan is not None else None
    last_run = ev.runs - 1
    out: set[int] = set()
    for seg in ev.segments:
        seqs = seg.requests.column("seq")
        if id(seg) in estimation:
            out.update(seqs)
            continue
        below = batch if batch is not None and seg.run == last_run else -1
        for seq, rid in zip(seqs, seg.requests.column("request_id"), strict=True):
            if rid == PADDING_REQUEST_ID or rid < below:
                out.add(seq)
    return frozenset(out), batch is not None


def _map_steps(seg: Segment, plan: StepPlan, dummies: frozenset[int]) -> dict[int, Request]:
    """Step k (from 1) <-> the k-th real request of the final manager, in order of first
    appearance. Without max_batch_size the last len(steps) requests are the steps (warm-up
    comes first). VSWA prints a request once per window; it counts once."""
    table = seg.requests
    real = (i for i, seq in enumerate(table.column("seq")) if seq not in dummies)
    count = len(plan.prompt_lengths)
    # Only the steps' requests are made, not every request of a long log.
    chosen = deque(real, maxlen=count) if plan.max_batch_size is None else islice(real, count)
    return {k + 1: table.at(i) for k, i in enumerate(chosen)}


def derive(ev: Evidence, given: StepPlan | None = None) -> Facts:
    """The facts of one attributed log; ``given``: the step plan of ``--scenario``."""
    record = run_record(ev)
    finals = {r: s for r in ev.ranks() if (s := ev.final_segment_of(r)) is not None}
    final = ev.final_segment()
    estimation = _estimation(ev, finals)
    plan = step_plan(given, record)
    dummies, known = _dummies(ev, estimation, plan)
    steps: dict[int, Request] | None = None
    reason = ""
    if final is not None and plan is not None:
        steps = _map_steps(final, plan, dummies)
    elif plan is None:
        reason = (
            "steps need a scenario (--scenario) or a log written by kvverify run; use "
            "request[ID] to address a request by the id TensorRT-LLM printed"
        )
    else:
        reason = "the log shows no KV cache manager to map steps to"
    return Facts(
        ev=ev,
        record=record,
        final=final,
        finals=finals,
        estimation=estimation,
        dummies=dummies,
        dummies_known=known,
        plan=plan,
        steps=steps,
        steps_reason=reason,
        offloads=marker_offloads(record),
    )
