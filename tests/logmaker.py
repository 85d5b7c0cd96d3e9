"""Build TensorRT-LLM logs for tests from the reference's format strings (via the dialect
writer, whose strings a test checks against docs/trtllm-logs.md), with known numbers."""

from __future__ import annotations

from dataclasses import dataclass, field

from kvverify.engines.sim.dialects import DIALECTS, LogWriter

WINDOW = 256


@dataclass
class Req:
    """One request: ``lookups`` is the sequence of outcomes its addSequence printed."""

    request_id: int
    input_length: int
    lookups: list[str]
    prepopulated: int
    stored: int = 16
    onboards: int = 0
    offloads: int = 0


@dataclass
class Manager:
    primary: int = 16
    secondary: int = 455
    tokens_per_block: int = 16
    reuse: bool = True
    requests: list[Req] = field(default_factory=list)
    counters: dict[str, float] = field(default_factory=dict)
    summary: bool = True
    estimation: bool = False


def seed_requests(reuse: bool) -> list[Req]:
    """The seed's A, B, A, B with 27-token prompts and 16-token blocks."""
    second = ["matched", "copied"] if reuse else ["missed", "missed"]
    pre = 26 if reuse else 0
    return [
        Req(1, 27, ["missed", "missed"], 0),
        Req(2, 25, ["missed", "missed"], 0),
        Req(3, 27, second, pre, onboards=2 if reuse else 0),
        Req(4, 25, second, 24 if reuse else 0, onboards=2 if reuse else 0),
    ]


def counters_of(requests: list[Req]) -> dict[str, float]:
    reused = sum(1 for r in requests for o in r.lookups if o != "missed")
    missed = sum(1 for r in requests for o in r.lookups if o == "missed")
    return {
        "allocated_total_blocks": missed + sum(r.onboards for r in requests),
        "allocated_new_blocks": missed + sum(r.onboards for r in requests),
        "missed_blocks": missed,
        "reused_blocks": reused,
        "reused_unique_blocks": reused,
        "reused_tokens": sum(r.prepopulated for r in requests),
        "input_tokens": sum(r.input_length for r in requests),
    }


def write_manager(w: LogWriter, m: Manager, *, summary: bool | None = None) -> None:
    w.construct(
        WINDOW, m.primary, m.secondary, m.tokens_per_block, reuse=m.reuse, estimation=m.estimation
    )
    block = 100
    for r in m.requests:
        for outcome in r.lookups:
            block += 1
            if outcome == "missed":
                w.free_block(block, r.request_id, WINDOW)
            w.lookup(outcome, block, r.request_id, WINDOW)
        for _ in range(r.onboards):
            w.copy(block, block + 1, offload=False)
        for _ in range(r.offloads):
            w.copy(block, block + 1, offload=True)
        w.add_sequence(r.request_id, r.input_length, r.prepopulated, WINDOW)
        w.release(r.request_id, r.stored, WINDOW)
    if summary if summary is not None else m.summary:
        w.summary(WINDOW, m.counters or counters_of(m.requests))


def seed_log(
    dialect: str = "1.2",
    *,
    reuse: bool = True,
    rank: int | None = None,
    estimation: bool = True,
    summary: bool = True,
) -> str:
    """A seed-like run: banner, an estimation manager with one dummy, the real manager with
    A, B, A, B; the estimation summary printed late (after the real manager was built)."""
    lines: list[str] = []
    w = LogWriter(DIALECTS[dialect], lines.append, rank=rank)
    w.banner()
    est = Manager(
        primary=17, secondary=0, requests=[Req(1, 255, ["missed"] * 16, 0)], estimation=True
    )
    if estimation:
        write_manager(w, est, summary=False)
    real = Manager(secondary=455 if reuse else 0, requests=seed_requests(reuse))
    write_manager(w, real, summary=False)
    if estimation:
        w.summary(WINDOW, counters_of(est.requests))
    if summary:
        w.summary(WINDOW, counters_of(real.requests))
    return "".join(lines)
