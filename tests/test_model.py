"""The reference model against the worked facts of docs/trtllm-logs.md §6 and §10, and its
properties."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kvverify.engines.sim.model import PRIMARY, SECONDARY, BlockManager
from kvverify.errors import EngineError


class Recorder:
    def __init__(self) -> None:
        self.lookups: list[tuple[str, int, int]] = []
        self.copies: list[tuple[int, int, bool]] = []
        self.events: list[dict[str, Any]] = []

    def free_block(self, block: int, sequence: int) -> None:
        pass

    def copy(self, src: int, dst: int, offload: bool) -> None:
        self.copies.append((src, dst, offload))

    def lookup(self, outcome: str, block: int, sequence: int) -> None:
        self.lookups.append((outcome, block, sequence))

    def event(self, data: dict[str, Any]) -> None:
        self.events.append(data)


def run(m: BlockManager, rid: int, tokens: list[int], generated: int = 1) -> Any:
    """One request through the manager: its prompt, then ``generated`` tokens, then release."""
    look = m.add_sequence(rid, tokens)
    m.generate(rid, [10_000 + i for i in range(generated)])
    m.release(rid)
    return look


def test_per_request_stats_test_of_tensorrt_llm() -> None:
    # KVCacheManagerPerRequestStatsTest: tpb 4, 16 primary blocks, prompt 0..8 twice.
    m = BlockManager(16, 0, 4)
    first = run(m, 0, list(range(9)))
    assert (
        first.allocated_total_blocks,
        first.allocated_new_blocks,
        first.reused_blocks,
        first.missed_blocks,
    ) == (3, 3, 0, 3)
    second = m.add_sequence(1, list(range(9)))
    assert (
        second.allocated_total_blocks,
        second.allocated_new_blocks,
        second.reused_blocks,
        second.missed_blocks,
    ) == (1, 1, 2, 1)
    assert second.prepopulated == 8  # L - 1: the last token is never reused


def test_127_prompt_tokens_and_6_generated_store_5_blocks() -> None:
    # test_llm_kv_cache_events: total_stored_blocks == 5 with 32-token blocks.
    rec = Recorder()
    m = BlockManager(64, 0, 32, listener=rec)
    run(m, 1, list(range(1, 128)), generated=6)
    stored = [b for e in rec.events if e["type"] == "stored" for b in e["blocks"]]  # type: ignore[union-attr]
    assert len(stored) == 5


def test_release_reports_only_the_blocks_it_newly_stores() -> None:
    # releaseBlocks prints storeBlocks' numBlocksStoredForReuse: keys already in the tree count
    # nothing (kvCacheManager.cpp, WindowBlockManager::storeBlocks).
    m = BlockManager(16, 0, 4)
    m.add_sequence(1, list(range(9)))
    m.sample(1, 100)  # the context step's token: then the context blocks are stored
    assert m.store_context(1) == 2  # the two full blocks of the 9-token prompt
    for token in range(101, 107):
        m.add_token(1)
        m.sample(1, token)  # 16 tokens: 15 stored, blocks 3 (full) and 4 (partial)
    assert m.release(1) == 2
    m.add_sequence(2, list(range(8)))
    m.generate(2, [200])  # 9 tokens, 8 stored: both keys were in the tree already
    assert m.release(2) == 0


def test_a_reused_block_takes_the_priority_its_new_request_sets() -> None:
    # loadOrAllocateBlocks: claimBlock(matchingBlock, perBlockRetentions[bi].retentionPriority)
    # sets the request's priority on a matched block; with none set, the block keeps its own.
    m = BlockManager(4, 0, 4)
    prompt_a, prompt_c = list(range(1, 10)), list(range(100, 105))
    run(m, 1, prompt_a)
    look = m.add_sequence(2, prompt_a, priority=80)
    assert look.reused_blocks == 2
    m.generate(2, [7])
    m.release(2)
    assert {b.priority for b in m.root.children.values()} == {80}
    run(m, 3, prompt_c)  # needs 2 blocks: the priority-80 blocks are evicted last
    assert m.add_sequence(4, prompt_a).reused_blocks == 2


def test_keys_ignore_the_last_token() -> None:
    m = BlockManager(8, 0, 4)
    assert m.keys(list(range(9))) == [(0, 1, 2, 3), (4, 5, 6, 7), ()]  # 9 % 4 == 1: empty key
    assert m.keys(list(range(7))) == [(0, 1, 2, 3), (4, 5)]
    assert len(m.keys(list(range(16)))) == 4


def test_partial_reuse_in_place_and_by_copy() -> None:
    rec = Recorder()
    m = BlockManager(32, 0, 4, listener=rec)
    run(m, 1, list(range(10)))  # stores [0-3], [4-7], [8, 9] (a partial tail)
    # 0..6: the second key (4,5) partially matches the stored (4,5,6,7), which has a child:
    # copied into a new block (copy on partial reuse).
    look = m.add_sequence(2, list(range(7)))
    assert (look.full_blocks, look.partial_blocks, look.copied_blocks) == (1, 1, 1)
    assert look.prepopulated == 6
    assert [o for o, *_ in rec.lookups[-2:]] == ["matched", "copied"]
    m.release(2)
    m2 = BlockManager(32, 0, 4, listener=rec)
    run(m2, 1, list(range(7)))  # stores [0-3], [4, 5, 6] (a leaf)
    look = m2.add_sequence(2, [0, 1, 2, 3, 4, 9, 9])  # (4, 9) partially matches leaf (4, 5, 6)
    assert (look.partial_blocks, look.copied_blocks, look.prepopulated) == (1, 0, 5)
    assert rec.lookups[-1][0] == "partial"  # reused in place


def test_no_partial_reuse_when_disabled() -> None:
    m = BlockManager(32, 0, 4, enable_partial_reuse=False)
    run(m, 1, list(range(10)))
    look = m.add_sequence(2, list(range(7)))
    assert (look.reused_blocks, look.missed_blocks, look.prepopulated) == (1, 1, 4)


def test_eviction_takes_sequence_tails_first() -> None:
    m = BlockManager(4, 0, 4)
    run(m, 1, list(range(13)))  # 4 context blocks, all stored; released tail first
    run(m, 2, [99, 98])  # needs 1 block: the LRU front is the first released, the tail
    look = m.add_sequence(3, list(range(13)))
    assert look.full_blocks == 3  # the prefix survived; only the tail was evicted
    assert look.missed_blocks == 1


def test_without_a_host_pool_evicted_blocks_are_gone() -> None:
    m = BlockManager(4, 0, 4)
    run(m, 1, list(range(1, 14)))
    run(m, 2, list(range(100, 113)))  # fills the pool: evicts all of the first
    look = m.add_sequence(3, list(range(1, 14)))
    assert look.reused_blocks == 0
    assert m.counters.offloaded_blocks == m.counters.onboarded_blocks == 0


def test_with_a_host_pool_evicted_blocks_come_back() -> None:
    rec = Recorder()
    m = BlockManager(4, 8, 4, listener=rec)
    run(m, 1, list(range(1, 14)))
    run(m, 2, list(range(100, 113)))
    look = m.add_sequence(3, list(range(1, 14)))
    # 13 tokens: keys [1-4] [5-8] [9-12] and an empty one (13 % 4 == 1), which never matches
    assert (look.reused_blocks, look.missed_blocks, look.prepopulated) == (3, 1, 12)
    assert look.onboarded_blocks == 3
    assert any(offload for *_, offload in rec.copies)
    assert any(
        e["type"] == "updated" and e["cache_level"]["new_value"] == 0  # type: ignore[index]
        for e in rec.events
    )


def test_offload_needs_the_minimum_priority() -> None:
    low = BlockManager(4, 8, 4, secondary_offload_min_priority=50)  # default priority 35 < 50
    run(low, 1, list(range(1, 14)))
    run(low, 2, list(range(100, 113)))
    assert low.counters.offloaded_blocks == 0
    assert low.add_sequence(3, list(range(1, 14))).reused_blocks == 0
    high = BlockManager(4, 8, 4, secondary_offload_min_priority=50)
    high.add_sequence(1, list(range(1, 14)), priority=80)
    high.generate(1, [7])
    high.release(1)
    run(high, 2, list(range(100, 113)))
    assert high.counters.offloaded_blocks > 0
    assert high.add_sequence(3, list(range(1, 14))).reused_blocks > 0


def test_no_onboarding_means_no_offloading() -> None:
    m = BlockManager(4, 8, 4, onboard_blocks=False)
    run(m, 1, list(range(1, 14)))
    run(m, 2, list(range(100, 113)))
    assert m.counters.offloaded_blocks == 0


def test_a_request_larger_than_the_gpu_pool_is_refused() -> None:
    m = BlockManager(2, 0, 4)
    with pytest.raises(EngineError, match="needs more than the 2 blocks of the GPU pool"):
        m.add_sequence(1, list(range(13)))


def test_reuse_disabled_counts_no_lookups() -> None:
    m = BlockManager(8, 0, 4, enable_reuse=False)
    run(m, 1, list(range(9)))
    look = m.add_sequence(2, list(range(9)))
    assert (look.reused_blocks, look.missed_blocks) == (0, 0)
    assert m.counters.reused_tokens == m.counters.input_tokens == 0


@settings(max_examples=300, deadline=None)
@given(
    trace=st.lists(
        st.tuples(st.integers(min_value=0, max_value=3), st.integers(min_value=0, max_value=20)),
        min_size=1,
        max_size=14,
    ),
    shapes=st.lists(
        st.tuples(st.integers(0, 3), st.integers(1, 24), st.integers(1, 24)), min_size=4, max_size=4
    ),
    host=st.integers(min_value=0, max_value=12),
    tpb=st.sampled_from([2, 4, 8]),
)
def test_properties(
    trace: list[tuple[int, int]], shapes: list[tuple[int, int, int]], host: int, tpb: int
) -> None:
    """Hit rate in [0, 1]; reused tokens < prompt length; nothing onboarded without a host
    pool; a larger host pool never lowers reuse on the same trace.

    Prompts are what reuse is about: a shared prefix (one of four, by ``shapes[i][0]``) and a
    suffix of their own, no token repeated within a prompt. The pool-size property is checked
    with partial reuse off: with it on, a lookup can match several stored blocks equally well
    (prompts that share only part of a block), TensorRT-LLM takes the first its hash map yields
    (the model: the first stored), and a larger pool, keeping other candidates, can change which
    block wins and lower reuse by a block. Falsifying example, with partial reuse:
    trace=[(3, 4), (0, 4), (0, 20), (3, 16), (0, 1), (0, 3), (0, 0), (3, 0)],
    shapes=[(0, 1, 1), (0, 1, 1), (0, 1, 1), (0, 1, 5)], host=3, tpb=4: 9 blocks reused with a
    3-block host pool, 8 with 11."""

    def prompt(i: int) -> list[int]:
        which, prefix, suffix = shapes[i]
        return [1000 * (which + 1) + t for t in range(prefix)] + [
            100_000 * (i + 1) + t for t in range(suffix)
        ]

    def play(secondary: int, *, partial: bool = True) -> tuple[BlockManager, list[Any]]:
        m = BlockManager(8, secondary, tpb, enable_partial_reuse=partial)
        looks = []
        for rid, (which, wanted) in enumerate(trace):
            tokens = prompt(which)[: 8 * tpb]
            # the request fits the GPU pool: prompt + generated - 1 KV slots
            gen = max(1, min(wanted, 8 * tpb - len(tokens) + 1))
            looks.append(m.add_sequence(rid, tokens))
            m.generate(rid, [50 + i + 1000 * which for i in range(gen)])
            m.release(rid)
        return m, looks

    m, looks = play(host)
    c = m.counters
    rate = c.reused_blocks / (c.reused_blocks + c.missed_blocks) if c.reused_blocks else 0.0
    assert 0.0 <= rate <= 1.0
    for look in looks:
        assert look.prepopulated < look.input_length
        assert look.reused_blocks + look.missed_blocks == -(-look.input_length // tpb)
    if host == 0:
        assert c.onboarded_blocks == 0
    # every request was released: every block is free again, in its own pool
    assert (m.free_blocks(PRIMARY), m.free_blocks(SECONDARY)) == (8, host)
    full_only, _ = play(host, partial=False)
    bigger, _ = play(host + 8, partial=False)
    assert bigger.counters.reused_blocks >= full_only.counters.reused_blocks


def test_a_follow_up_reuses_the_previous_answer_up_to_its_last_token() -> None:
    # releaseBlocks (kvCacheManager.cpp, 1.2.0rc2) stores getUniqueTokens(0).size() - 1 tokens,
    # and the PyTorch executor frees a request only after the sampler appended its last token
    # (_update_requests, then _handle_responses -> _terminate_request -> free_resources): P
    # prompt and N generated tokens store P + N - 1. Here 30 + 3 - 1 = 32: one full 32-token
    # block, which a multi-turn follow-up (the prompt, the answer, a new turn) reuses whole.
    # Storing one token fewer would leave a 31-token block and reuse 31 tokens.
    m = BlockManager(8, 0, 32)
    prompt, answer = list(range(1, 31)), [901, 902, 903]
    m.add_sequence(1, prompt)
    m.generate(1, answer)
    m.release(1)
    look = m.add_sequence(2, prompt + answer + list(range(2000, 2010)))
    assert (look.prepopulated, look.full_blocks, look.partial_blocks) == (32, 1, 0)


def test_the_context_step_stores_the_full_blocks_of_the_whole_prompt() -> None:
    # update_resources -> storeContextBlocks runs after the first generated token was appended:
    # chopVectorIntoBlocks(uniqueTokens, size() - 1 = P, tpb, allowPartial=false), floor(P/tpb)
    # blocks; an 8-token prompt in 4-token blocks stores 2 while the request still runs.
    rec = Recorder()
    m = BlockManager(8, 0, 4, listener=rec)
    m.add_sequence(1, list(range(8)))
    m.sample(1, 100)
    assert m.store_context(1) == 2
