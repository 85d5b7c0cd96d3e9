"""``--engine sim``: the reference model behind the engine interface, writing exactly the lines
TensorRT-LLM would print, in a chosen format era, to file descriptor 1."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kvverify import __version__, markers
from kvverify.engines.base import EngineName, StepOutcome
from kvverify.engines.sim.dialects import DEFAULT_DIALECT, DIALECTS, LogWriter
from kvverify.engines.sim.simulate import Simulation
from kvverify.errors import EngineError
from kvverify.metrics import hit_rate
from kvverify.plan import Plan, Step
from kvverify.scenario import Variant, load


def _write(text: str) -> None:
    markers.write_out(text.encode())


class SimEngine:
    name: EngineName = "sim"

    def __init__(self, dialect: str = DEFAULT_DIALECT, out: Callable[[str], None] = _write) -> None:
        if dialect not in DIALECTS:
            raise EngineError(f"unknown dialect {dialect!r}", hint="one of " + ", ".join(DIALECTS))
        self.dialect = dialect
        self.out = out
        self.sim: Simulation | None = None
        self._stats: list[dict[str, Any]] = []
        self._last: dict[str, int] = {}

    def version(self) -> str | None:
        return f"kvverify {__version__} reference model"

    def start(self, plan: Plan) -> None:
        (variant,) = load(plan.scenario_path).select([plan.variant])
        self.start_variant(variant)

    def start_variant(self, variant: Variant) -> None:
        tp = variant.engine.tensor_parallel_size or 1
        ranks = tuple(range(tp)) if tp > 1 else ()
        writer = LogWriter(DIALECTS[self.dialect], self.out, ranks=ranks)
        self.sim = Simulation(variant, self.dialect, writer)
        self.sim.start()

    def run_info(self) -> dict[str, Any]:
        assert self.sim is not None
        p = self.sim.prediction
        steps = self.sim.variant.steps
        return {
            "dialect": self.dialect,
            "max_batch_size": self.sim.max_batch_size,
            "prompt_lengths": [None if s.continues else p.prompt_lengths[s.prompt] for s in steps],
            "approximate_tokens": p.approximate_tokens,
            "tokenizer": p.tokenizer,
        }

    def step(self, step: Step) -> StepOutcome:
        assert self.sim is not None
        r = self.sim.step(step)
        look = r.lookup
        hit = hit_rate(look.reused_blocks, look.missed_blocks)
        self._iteration(r.step)
        return StepOutcome(
            request_id=r.step + 1,  # RequestOutput.request_id: client ids from 2 (§9.3)
            prompt_len=look.input_length,
            output_len=r.generated,
            cached_tokens=look.prepopulated,
            kv={
                "num_total_allocated_blocks": float(look.allocated_total_blocks),
                "num_new_allocated_blocks": float(look.allocated_new_blocks),
                "num_reused_blocks": float(look.reused_blocks),
                "num_missed_blocks": float(look.missed_blocks),
                "kv_cache_hit_rate": hit,
            },
        )

    def _iteration(self, index: int) -> None:
        """Iteration statistics after a step: kvCacheStats (cumulative) and, in the 2026 format,
        kvCacheIterationStats (per-interval deltas) with offload and onboard counts (§4)."""
        assert self.sim is not None
        assert self.sim.manager is not None
        m = self.sim.manager
        c = m.counters
        stat: dict[str, Any] = {
            "iter": index,
            "kvCacheStats": {
                "maxNumBlocks": m.primary,
                "freeNumBlocks": m.free_blocks(),
                "usedNumBlocks": m.primary - m.free_blocks(),
                "tokensPerBlock": m.tpb,
                "allocTotalBlocks": c.allocated_total_blocks,
                "allocNewBlocks": c.allocated_new_blocks,
                "reusedBlocks": c.reused_blocks,
                "missedBlocks": c.missed_blocks,
                "cacheHitRate": hit_rate(c.reused_blocks, c.missed_blocks),
            },
        }
        if DIALECTS[self.dialect].iteration_stats:
            now = {"off": c.offloaded_blocks, "on": c.onboarded_blocks}
            stat["kvCacheIterationStats"] = {
                str(self.sim.cap.window): {
                    "iterOffloadBlocks": now["off"] - self._last.get("off", 0),
                    "iterOnboardBlocks": now["on"] - self._last.get("on", 0),
                    "secondaryMaxNumBlocks": m.secondary,
                }
            }
            self._last = dict(now)
        self._stats.append(stat)

    def stats(self) -> list[dict[str, Any]]:
        out, self._stats = self._stats, []
        return out

    def events(self) -> list[dict[str, Any]]:
        if self.sim is None:
            return []
        out = list(self.sim.events)
        self.sim.events.clear()
        return out

    def shutdown(self) -> None:
        if self.sim is not None and self.sim.manager is not None:
            self.sim.shutdown()


def create(**options: Any) -> SimEngine:
    return SimEngine(**options)
