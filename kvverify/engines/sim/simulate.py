"""Runs a scenario variant through the reference model the way TensorRT-LLM's PyTorch backend
runs a workload (reference §9.2): an estimation KV cache manager with its dummy requests, the
real manager with its warm-up dummies, the steps, shutdown. With a :class:`LogWriter` it prints
the lines TensorRT-LLM would print; without, it only predicts (``kvverify predict``).

Assumptions, stated wherever results are shown (no GPU is modelled):

* capacity: ``max_tokens`` if the scenario gives it, else the KV cache gets
  ``free_gpu_memory_fraction`` (0.9) of :data:`ASSUMED_FREE_GPU_BYTES`;
* every request generates ``sampling.max_tokens`` tokens, or up to ``max_seq_len`` (a real
  model may stop earlier at an end-of-sequence token);
* warm-up: one context dummy of ``max_seq_len - 1`` tokens and one generation dummy; the
  estimation pass: one dummy of ``max_seq_len - 1`` random tokens;
* steps run one after another.
"""

from __future__ import annotations

import hashlib
import math
import random
from dataclasses import dataclass, field
from typing import Any

from kvverify.engines.sim.dialects import DIALECTS, Dialect, LogWriter
from kvverify.engines.sim.model import BlockManager, Lookup
from kvverify.engines.sim.shapes import Shape, shape_of
from kvverify.scenario import Step, Variant
from kvverify.tokens import encode

ASSUMED_FREE_GPU_BYTES = 40 << 30
DEFAULT_MAX_SEQ_LEN = 4096
DEFAULT_MAX_BATCH_SIZE = 2048
DEFAULT_TOKENS_PER_BLOCK = 32
DEFAULT_SAMPLING_MAX_TOKENS = 32


@dataclass
class StepResult:
    step: int
    prompt: str
    request_id: int
    lookup: Lookup
    generated: int
    stored: int


@dataclass
class Capacity:
    tokens_per_block: int
    primary_blocks: int
    secondary_blocks: int
    window: int
    bytes_per_token: int
    assumed_gpu: bool


@dataclass
class Prediction:
    """What the model says a variant will show."""

    variant: str
    dialect: str
    capacity: Capacity
    prompt_lengths: dict[str, int]
    approximate_tokens: bool
    tokenizer: str
    steps: list[StepResult] = field(default_factory=list)
    summary: dict[str, float] = field(default_factory=dict)

    def marker(self) -> dict[str, Any]:
        """The compact form written into run logs (``matches: predicted``)."""
        return {
            "summary": {
                k: self.summary[k]
                for k in (
                    "allocated_total_blocks",
                    "allocated_new_blocks",
                    "missed_blocks",
                    "reused_blocks",
                    "reused_tokens",
                    "offloaded_blocks",
                    "onboarded_blocks",
                )
            },
            "steps": {
                str(s.step): {
                    "reused_tokens": s.lookup.prepopulated,
                    "reused_blocks": s.lookup.reused_blocks,
                    "missed_blocks": s.lookup.missed_blocks,
                }
                for s in self.steps
            },
        }


def capacity(variant: Variant, dialect: Dialect, shape: Shape) -> Capacity:
    """§6.6: primary blocks from max_tokens (ceil in 1.2, floor in 2026), secondary blocks from
    host_cache_size / bytes per token / tokens per block; the window clamped to the capacity."""
    kv = variant.engine.kv_cache
    tpb = kv.tokens_per_block or DEFAULT_TOKENS_PER_BLOCK
    bpt = shape.bytes_per_token
    assumed = kv.max_tokens is None
    fraction = 0.9 if kv.free_gpu_memory_fraction is None else kv.free_gpu_memory_fraction
    by_memory = int(fraction * ASSUMED_FREE_GPU_BYTES / bpt)
    max_tokens = (
        by_memory
        if kv.max_tokens is None
        else min(kv.max_tokens, by_memory)
        if (kv.free_gpu_memory_fraction is not None)
        else kv.max_tokens
    )
    primary = max_tokens // tpb if dialect.floor_capacity else math.ceil(max_tokens / tpb)
    secondary = int((int(kv.host_cache_size or 0) // bpt) // tpb)
    max_seq = variant.engine.max_seq_len or DEFAULT_MAX_SEQ_LEN
    window = min(max_seq, primary * tpb)
    return Capacity(tpb, max(primary, 1), secondary, window, bpt, assumed)


def _generated(prompt: tuple[int, ...], count: int) -> list[int]:
    """Deterministic "generated" tokens: the same prompt generates the same text (greedy)."""
    seed = hashlib.blake2b(repr(prompt).encode(), digest_size=8).digest()
    rng = random.Random(int.from_bytes(seed, "big"))
    return [rng.randrange(2, 150_000) for _ in range(count)]


class Simulation:
    """One variant on the model; ``writer`` is None to predict silently."""

    def __init__(self, variant: Variant, dialect: str, writer: LogWriter | None = None) -> None:
        self.variant = variant
        self.dialect = DIALECTS[dialect]
        self.writer = writer
        self.shape = shape_of(variant.engine)
        self.cap = capacity(variant, self.dialect, self.shape)
        self.max_batch_size = variant.engine.max_batch_size or DEFAULT_MAX_BATCH_SIZE
        self.max_seq_len = variant.engine.max_seq_len or DEFAULT_MAX_SEQ_LEN
        self.gen_tokens = variant.sampling.max_tokens or DEFAULT_SAMPLING_MAX_TOKENS
        self.tokens: dict[str, list[int]] = {}
        exact = True
        how = "token ids"
        for name, prompt in variant.prompts.items():
            ids = prompt.token_ids()
            if ids is None:
                t = encode(
                    variant.engine.model, variant.prompt_text(name) or "", bos=self.shape.adds_bos
                )
                ids = list(t.ids)
                exact = exact and t.exact
                how = t.how
            self.tokens[name] = ids
        self.prediction = Prediction(
            variant=variant.name,
            dialect=self.dialect.name,
            capacity=self.cap,
            prompt_lengths={n: len(t) for n, t in self.tokens.items()},
            approximate_tokens=not exact,
            tokenizer=how,
        )
        kv = variant.engine.kv_cache
        # KvCacheConfig's defaults (§5.1) for what the scenario leaves out.
        self.reuse = kv.enable_block_reuse is not False
        # KV-cache events need event_buffer_max_size > 0 and block reuse (§5.3).
        self.events_enabled = bool(kv.event_buffer_max_size) and self.reuse
        self.events: list[dict[str, Any]] = []
        self.manager: BlockManager | None = None
        self._estimation: BlockManager | None = None
        self._step_index = 0
        #: the last request's prompt and answer: where a continuing turn starts
        self._conversation: list[int] = []

    # -- what the writer prints ----------------------------------------------------------------

    def _listener(self, events: list[dict[str, Any]] | None = None) -> Any:
        return _WriterListener(self.writer, self.cap.window, events) if self.writer else None

    def _construct(
        self, primary: int, secondary: int, *, final: bool = False, estimation: bool = False
    ) -> BlockManager:
        w = self.writer
        if w is not None:
            w.construct(
                self.cap.window,
                primary,
                secondary,
                self.cap.tokens_per_block,
                reuse=self.reuse,
                layers=self.shape.num_layers,
                kv_heads=self.shape.num_kv_heads,
                max_seq_len=self.max_seq_len,
                estimation=estimation,
            )
        kv = self.variant.engine.kv_cache
        return BlockManager(
            primary,
            secondary,
            self.cap.tokens_per_block,
            enable_reuse=self.reuse,
            enable_partial_reuse=kv.enable_partial_reuse is not False,
            copy_on_partial_reuse=kv.copy_on_partial_reuse is not False,
            onboard_blocks=kv.onboard_blocks is not False,
            secondary_offload_min_priority=kv.secondary_offload_min_priority,
            # V-mid25 and older store dummy requests' blocks; 1.2 on does not (§10).
            store_dummies=not self.dialect.release,
            listener=self._listener(self.events if final and self.events_enabled else None),
        )

    def _request(
        self,
        manager: BlockManager,
        request_id: int,
        tokens: list[int],
        gen: int,
        *,
        dummy: bool = False,
        priority: int | None = None,
    ) -> tuple[Lookup, int, list[int]]:
        """One request: its lookups, what it generates, its release. Returns the lookup, the
        blocks newly stored at release and the generated tokens."""
        look = manager.add_sequence(request_id, tokens, dummy=dummy, priority=priority)
        w = self.writer
        if w is not None and manager.enable_reuse:
            w.add_sequence(request_id, len(tokens), look.prepopulated, self.cap.window)
        generated = _generated(tuple(tokens), gen)
        manager.generate(request_id, generated)
        stored = manager.release(request_id)
        if w is not None and manager.enable_reuse and not (dummy and not manager.store_dummies):
            w.release(request_id, stored, self.cap.window)
        return look, stored, generated

    # -- the phases --------------------------------------------------------------------------------

    def start(self) -> None:
        """Banner, estimation pass, the real manager and its warm-up (reference §9.2)."""
        w = self.writer
        tpb = self.cap.tokens_per_block
        dummy_len = max(1, min(self.max_seq_len - 1, self.cap.primary_blocks * tpb - 1))
        if w is not None:
            w.model_mark()
            w.banner()
            w.python("I", "Using LLM with PyTorch backend")
        est_blocks = math.ceil(self.max_seq_len / tpb) + 1
        self._estimation = self._construct(est_blocks, 0, estimation=True)
        rng = random.Random(0)
        self._request(
            self._estimation,
            self.max_batch_size,
            [rng.randrange(2, 150_000) for _ in range(dummy_len)],
            1,
            dummy=True,
        )
        if self.events_enabled:  # event 0 is "created", with the blocks per cache level
            self.events.append(
                {
                    "event_id": 0,
                    "data": {
                        "type": "created",
                        "num_blocks_per_cache_level": [
                            self.cap.primary_blocks,
                            self.cap.secondary_blocks,
                        ],
                    },
                    "window_size": self.cap.window,
                }
            )
        self.manager = self._construct(
            self.cap.primary_blocks, self.cap.secondary_blocks, final=True
        )
        # The estimation manager is destroyed by the garbage collector: its summary comes now.
        self._summarize(self._estimation)
        # Warm-up: a context dummy and a generation dummy (ids below max_batch_size).
        self._request(self.manager, 0, [1] * dummy_len, 1, dummy=True)
        self._request(self.manager, 0, [1], 1, dummy=True)

    def step(self, step: Step) -> StepResult:
        assert self.manager is not None
        tokens = self.tokens[step.prompt]
        if step.continues:  # the previous turn's prompt and answer, then this prompt
            tokens = [*self._conversation, *tokens]
        gen = max(1, min(self.gen_tokens, self.max_seq_len - len(tokens)))
        request_id = self.max_batch_size + self._step_index
        self._step_index += 1
        look, stored, generated = self._request(
            self.manager, request_id, tokens, gen, priority=step.priority
        )
        self._conversation = [*tokens, *generated]
        result = StepResult(step.index, step.prompt, request_id, look, gen, stored)
        self.prediction.steps.append(result)
        return result

    def shutdown(self) -> None:
        assert self.manager is not None
        self.prediction.summary = self._summarize(self.manager)

    def _summarize(self, manager: BlockManager) -> dict[str, float]:
        summary = manager.counters.summary()
        if self.writer is not None:
            self.writer.summary(self.cap.window, summary)
        return summary

    def run(self) -> Prediction:
        self.start()
        for step in self.variant.steps:
            self.step(step)
        self.shutdown()
        return self.prediction


class _WriterListener:
    """Turns the model's notifications into TensorRT-LLM's lines, and keeps its KV-cache events
    (``llm.get_kv_cache_events()``, §5.3) when ``events`` is a list."""

    def __init__(
        self, writer: LogWriter, window: int, events: list[dict[str, Any]] | None = None
    ) -> None:
        self.w = writer
        self.window = window
        self.events = events

    def free_block(self, block: int, sequence: int) -> None:
        self.w.free_block(block, sequence, self.window)

    def copy(self, src: int, dst: int, offload: bool) -> None:
        self.w.copy(src, dst, offload)

    def lookup(self, outcome: str, block: int, sequence: int) -> None:
        self.w.lookup(outcome, block, sequence, self.window)

    def event(self, data: dict[str, object]) -> None:
        if self.events is not None:
            self.events.append(
                {"event_id": len(self.events), "data": data, "window_size": self.window}
            )


def predict(variant: Variant, dialect: str) -> Prediction:
    return Simulation(variant, dialect).run()
