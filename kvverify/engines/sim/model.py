"""A reference model of TensorRT-LLM's V1 KV cache block manager (one attention window).

Pure Python, no GPU: what ``WindowBlockManager`` does with blocks, as docs/trtllm-logs.md §6 and
§10 describe it (kvCacheManager.cpp at 1.2.0rc2, commit b35ac1b6). Each rule names the part of
the reference it implements. The model counts what the destructor prints, and tells a listener
every line-worthy thing in the order TensorRT-LLM prints it, so the log writer can print it.

Not modelled: several attention windows (VSWA), beam search, LoRA/multimodal/cache-salt keys,
retention durations, the disk tier, the block-reuse connector, requests in flight at the same
time (steps run one after another, like the example's sequential ``generate`` calls).
"""

from __future__ import annotations

import bisect
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Protocol

from kvverify.errors import EngineError

PRIMARY, SECONDARY = 0, 1
#: §5.1: kDefaultRetentionPriority = 35;
#: kDefaultSecondaryOffloadMinPriority = 30 (evictionPolicy.cpp)
DEFAULT_PRIORITY = 35
DEFAULT_OFFLOAD_MIN_PRIORITY = 30

Key = tuple[int, ...]


class Listener(Protocol):
    """Receives what the manager would log, in order."""

    def free_block(self, block: int, sequence: int) -> None: ...
    def copy(self, src: int, dst: int, offload: bool) -> None: ...
    def lookup(self, outcome: str, block: int, sequence: int) -> None: ...
    def event(self, data: dict[str, object]) -> None: ...


class _Silent:
    def free_block(self, block: int, sequence: int) -> None:
        pass

    def copy(self, src: int, dst: int, offload: bool) -> None:
        pass

    def lookup(self, outcome: str, block: int, sequence: int) -> None:
        pass

    def event(self, data: dict[str, object]) -> None:
        pass


@dataclass(eq=False)
class Block:
    id: int
    level: int
    #: Unique tokens of the block; never cleared when the block is freed (§10 counters note:
    #: a block that ever held tokens is "not new" when it is taken again).
    key: Key = ()
    full: bool = False
    parent: Block | None = None  # in the radix tree iff parent is not None
    children: dict[Key, Block] = field(default_factory=dict)
    refs: int = 0
    priority: int = DEFAULT_PRIORITY

    @property
    def in_tree(self) -> bool:
        return self.parent is not None

    @property
    def is_leaf(self) -> bool:
        return not self.children


@dataclass
class Counters:
    """The destructor's counters (§2.1), cumulative over the manager's lifetime."""

    allocated_total_blocks: int = 0
    allocated_new_blocks: int = 0
    missed_blocks: int = 0
    reused_blocks: int = 0
    reused_unique_blocks: int = 0
    reused_tokens: int = 0
    input_tokens: int = 0
    offloaded_blocks: int = 0
    onboarded_blocks: int = 0
    evicted_blocks: int = 0

    def summary(self) -> dict[str, float]:
        return {k: float(v) for k, v in self.__dict__.items()}


@dataclass
class Lookup:
    """What one ``addSequence`` did (the per-request statistics of §3, plus detail)."""

    request_id: int
    input_length: int
    prepopulated: int  # reused prompt tokens
    reused_blocks: int = 0
    full_blocks: int = 0
    partial_blocks: int = 0  # reused partially, in place or by copy
    copied_blocks: int = 0
    missed_blocks: int = 0
    onboarded_blocks: int = 0
    offloaded_blocks: int = 0  # offloads its allocations caused
    evicted_blocks: int = 0  # blocks dropped (not offloaded) by its allocations
    allocated_total_blocks: int = 0
    allocated_new_blocks: int = 0


@dataclass
class _Sequence:
    request_id: int
    #: the request's unique tokens: the prompt and every token sampled so far
    #: (``LlmRequest::addNewToken``)
    tokens: list[int]
    blocks: list[Block]
    dummy: bool
    priority: int
    #: tokens the manager holds KV slots for (``addSequence``: the prompt; ``addToken``: +1)
    kv_tokens: int = 0


class BlockManager:
    """One window manager: a primary (GPU) and a secondary (host) pool of blocks."""

    def __init__(
        self,
        primary: int,
        secondary: int,
        tokens_per_block: int,
        *,
        enable_reuse: bool = True,
        enable_partial_reuse: bool = True,
        copy_on_partial_reuse: bool = True,
        onboard_blocks: bool = True,
        secondary_offload_min_priority: int | None = None,
        store_dummies: bool = False,
        listener: Listener | None = None,
    ) -> None:
        if primary < 1:
            raise ValueError("the primary pool needs at least one block")
        self.tpb = tokens_per_block
        self.primary = primary
        self.secondary = secondary
        self.enable_reuse = enable_reuse
        self.partial_reuse = enable_partial_reuse
        self.copy_on_partial = copy_on_partial_reuse
        self.onboard_blocks = onboard_blocks
        self.offload_min = (
            DEFAULT_OFFLOAD_MIN_PRIORITY
            if secondary_offload_min_priority is None
            else secondary_offload_min_priority
        )
        self.store_dummies = store_dummies
        self.listener: Listener = listener or _Silent()
        self.root = Block(-1, PRIMARY)
        self.counters = Counters()
        self._unique: set[int] = set()
        # §6.4 LRUEvictionPolicy: per level, 101 FIFO lists (one per priority); every block starts
        # in the priority-35 list in id order (primary ids first, then secondary). Blocks never
        # used yet are kept as a range, not as objects: pools can hold millions of blocks.
        self._free: list[list[OrderedDict[int, Block]]] = [
            [OrderedDict() for _ in range(101)] for _ in (PRIMARY, SECONDARY)
        ]
        self._untouched = [[0, primary], [primary, primary + secondary]]  # [next id, end]
        self._priorities = [[DEFAULT_PRIORITY], [DEFAULT_PRIORITY]]  # lists ever used, sorted
        self._free_count = [primary, secondary]
        self._sequences: dict[int, _Sequence] = {}
        self._current: Lookup | None = None

    # -- eviction policy ---------------------------------------------------------------------------

    def _take(self, level: int) -> Block:
        """Front of the lowest non-empty priority list of ``level`` (§6.4)."""
        untouched = self._untouched[level]
        queues = self._free[level]
        for priority in self._priorities[level]:  # the priorities in use, lowest first
            if priority == DEFAULT_PRIORITY and untouched[0] < untouched[1]:
                untouched[0] += 1  # the never-used blocks lead the priority-35 list
                self._free_count[level] -= 1
                return Block(untouched[0] - 1, level)
            queue = queues[priority]
            if queue:
                _, block = queue.popitem(last=False)
                self._free_count[level] -= 1
                return block
        raise EngineError(
            f"a request needs more than the {self.primary if level == PRIMARY else self.secondary}"
            f" blocks of the {'GPU' if level == PRIMARY else 'host'} pool",
            hint="raise kv_cache.max_tokens, or lower max_seq_len / sampling.max_tokens so a "
            "request fits (TensorRT-LLM would not schedule it)",
        )

    def _claim(self, block: Block, priority: int | None = None) -> None:
        queue = self._free[block.level][block.priority]
        if block.refs == 0 and block.id in queue:
            del queue[block.id]
            self._free_count[block.level] -= 1
        if priority is not None:
            block.priority = priority
        block.refs += 1

    def _release(self, block: Block, *, front: bool = False) -> None:
        if block.priority not in self._priorities[block.level]:
            bisect.insort(self._priorities[block.level], block.priority)
        queue = self._free[block.level][block.priority]
        if block.id not in queue:
            self._free_count[block.level] += 1
        queue[block.id] = block
        if front:
            queue.move_to_end(block.id, last=False)

    def free_blocks(self, level: int = PRIMARY) -> int:
        return self._free_count[level]

    # -- the radix tree ------------------------------------------------------------------------

    def _remove_from_tree(self, block: Block) -> None:
        """``freeChildren``: the block and every descendant leave the tree (keys are kept)."""
        for child in list(block.children.values()):
            self._remove_from_tree(child)
        if block.parent is not None:
            block.parent.children.pop(block.key, None)
            block.parent = None
            self.listener.event({"type": "removed", "block_hashes": [block.id]})

    def _get_free_block(self, sequence: int, priority: int) -> Block:
        """``WindowBlockManager::getFreeBlock`` (§6.5): counts, offloads or evicts the victim."""
        c = self.counters
        block = self._take(PRIMARY)
        if not block.key:
            c.allocated_new_blocks += 1
            if self._current:
                self._current.allocated_new_blocks += 1
        c.allocated_total_blocks += 1
        if self._current:
            self._current.allocated_total_blocks += 1
        if (
            block.key
            and block.priority >= self.offload_min
            and self.onboard_blocks
            and self.free_blocks(SECONDARY) > 0
        ):
            slot = self._take(SECONDARY)
            self._remove_from_tree(slot)  # the host slot's old content is lost
            self.listener.copy(block.id, slot.id, True)
            block.level, slot.level = SECONDARY, PRIMARY  # swapMemoryPoolBlockOffset
            self._release(block)  # back of the secondary list at its priority
            self.listener.event(
                {
                    "type": "updated",
                    "block_hash": block.id,
                    "cache_level": {"type": "event_diff", "new_value": 1, "old_value": 0},
                }
            )
            c.offloaded_blocks += 1
            if self._current:
                self._current.offloaded_blocks += 1
            block = slot
        elif block.in_tree:
            c.evicted_blocks += 1
            if self._current:
                self._current.evicted_blocks += 1
        self._remove_from_tree(block)
        block.refs = 1
        block.priority = priority
        self.listener.free_block(block.id, sequence)
        return block

    def _onboard(self, block: Block, sequence: int) -> None:
        """``onboardBlock`` (§6.5): a reused block in the host pool comes back to the GPU."""
        if not (self.onboard_blocks and block.level == SECONDARY):
            return
        slot = self._get_free_block(sequence, DEFAULT_PRIORITY)
        self.listener.copy(block.id, slot.id, False)
        block.level, slot.level = PRIMARY, SECONDARY
        slot.refs = 0
        self._release(slot)  # to the back of the secondary list, stale
        self.listener.event(
            {
                "type": "updated",
                "block_hash": block.id,
                "cache_level": {"type": "event_diff", "new_value": 0, "old_value": 1},
            }
        )
        self.counters.onboarded_blocks += 1
        if self._current:
            self._current.onboarded_blocks += 1

    def _match(self, parent: Block, key: Key) -> tuple[Block | None, int, bool]:
        """``findMatchingBlock`` (§6.2): (block, matched tokens, partial?)."""
        if not key or not parent.children:
            return None, 0, False
        exact = parent.children.get(key)
        if exact is not None:
            return exact, len(key), not exact.full
        if not self.partial_reuse:
            return None, 0, False
        best, best_n = None, 0
        for child_key, child in parent.children.items():
            if self.copy_on_partial or (child.refs == 0 and child.is_leaf):
                n = 0
                for a, b in zip(child_key, key, strict=False):
                    if a != b:
                        break
                    n += 1
                if n > best_n:
                    best, best_n = child, n
        return (best, best_n, True) if best is not None else (None, 0, False)

    # -- requests --------------------------------------------------------------------------------

    def keys(self, tokens: list[int]) -> list[Key]:
        """§6.1: blocks of the first L-1 tokens (the last may be partial), plus an empty key if
        the last token is alone in its block; as many keys as context blocks, ceil(L/tpb)."""
        keys = self._usable_blocks(tokens)
        if len(tokens) % self.tpb == 1:
            keys.append(())
        return keys

    def _usable_blocks(self, tokens: list[int]) -> list[Key]:
        """``chopVectorIntoBlocks(tokens, L - 1, tpb, allowPartial=true)``: the first L-1 tokens
        (the last one's KV state is not written yet) in blocks, the last possibly partial."""
        usable = tokens[: len(tokens) - 1]
        return [tuple(usable[i : i + self.tpb]) for i in range(0, len(usable), self.tpb)]

    def _stores(self, seq: _Sequence) -> bool:
        """Whether a sequence's blocks go into the tree: reuse on, and not a dummy (from 1.2)."""
        return self.enable_reuse and not (seq.dummy and not self.store_dummies)

    def add_sequence(
        self,
        request_id: int,
        tokens: list[int],
        *,
        dummy: bool = False,
        priority: int | None = None,
    ) -> Lookup:
        """``addSequence`` + ``loadOrAllocateBlocks`` (§6.2) for one request's prompt."""
        prio = DEFAULT_PRIORITY if priority is None else priority
        look = Lookup(request_id, len(tokens), 0)
        self._current = look
        blocks: list[Block] = []
        keys = self.keys(tokens) if self.enable_reuse else [()] * -(-len(tokens) // self.tpb)
        search: Block | None = self.root if self.enable_reuse else None
        for key in keys:
            match, n, partial = self._match(search, key) if search is not None else (None, 0, False)
            if match is None:
                search = None
                block = self._get_free_block(request_id, prio)
                block.key, block.full = key, len(key) == self.tpb
                blocks.append(block)
                if self.enable_reuse:  # the reuse-disabled path counts no lookups
                    self.counters.missed_blocks += 1
                    look.missed_blocks += 1
                    self.listener.lookup("missed", block.id, request_id)
                continue
            source_id = match.id
            if partial and (match.refs > 0 or not match.is_leaf):
                copy = self._get_free_block(request_id, match.priority)
                self.listener.copy(match.id, copy.id, False)
                copy.key, copy.full = key, len(key) == self.tpb
                self.listener.lookup("copied", source_id, request_id)
                look.copied_blocks += 1
                match = copy
            elif partial:
                self._remove_from_tree(match)  # freeLeafBlock: made private, reused in place
                # claimBlock(block, perBlockRetentions[bi].retentionPriority): a priority the
                # request sets becomes the block's; without one the block keeps its own.
                self._claim(match, priority)
                self.listener.lookup("partial", source_id, request_id)
            else:
                self._claim(match, priority)
                self.listener.lookup("matched", source_id, request_id)
                look.full_blocks += 1
            if partial:
                look.partial_blocks += 1
            self._onboard(match, request_id)
            blocks.append(match)
            self.counters.reused_blocks += 1
            look.reused_blocks += 1
            if source_id not in self._unique:
                self._unique.add(source_id)
                self.counters.reused_unique_blocks += 1
            look.prepopulated += n
            search = None if partial else match
        if self.enable_reuse:  # mReusedTokens / mTotalInputTokens: the reuse path only
            self.counters.reused_tokens += look.prepopulated
            self.counters.input_tokens += len(tokens)
        self._sequences[request_id] = _Sequence(
            request_id, list(tokens), blocks, dummy, prio, kv_tokens=len(tokens)
        )
        self._current = None
        return look

    def store_context(self, request_id: int) -> int:
        """``storeContextBlocks`` (§6.3, §10): the full blocks of all but the last of the
        request's tokens. The PyTorch executor calls it from ``update_resources``, after the
        sampler appended the first generated token: the full blocks of the whole prompt,
        ``floor(P / tpb)``. Dummies are skipped from 1.2 on."""
        seq = self._sequences[request_id]
        if not self._stores(seq):
            return 0
        return self._store(seq, [k for k in self._usable_blocks(seq.tokens) if len(k) == self.tpb])

    def sample(self, request_id: int, token: int) -> None:
        """The sampler appends a generated token to the request (``addNewToken``); its KV
        slot comes with the next generation step (:meth:`add_token`), if there is one."""
        self._sequences[request_id].tokens.append(token)

    def add_token(self, request_id: int) -> None:
        """A generation step (``addToken``): one more KV slot, a new block when the last one
        is full (``allocateBlock``)."""
        seq = self._sequences[request_id]
        seq.kv_tokens += 1
        if (seq.kv_tokens - 1) % self.tpb == 0:
            seq.blocks.append(self._get_free_block(request_id, seq.priority))

    def generate(self, request_id: int, tokens: list[int]) -> None:
        """Everything between ``addSequence`` and ``releaseBlocks`` for a request that
        generates ``tokens``, in the PyTorch executor's order (§10): the context step samples
        the first token, then the context blocks are stored (``update_resources``) unless the
        request already finished (then it is freed first); each generation step adds a KV
        slot, then samples the next token."""
        first, *later = tokens
        self.sample(request_id, first)
        if later:
            self.store_context(request_id)
        for token in later:
            self.add_token(request_id)
            self.sample(request_id, token)

    def release(self, request_id: int) -> int:
        """``releaseBlocks`` (§6.3, §10): store all of the request's tokens but the last, a
        partial tail included, then give the blocks back last to first. After N generated
        tokens the request holds prompt + N tokens (the sampler appends the last one before
        the request is freed), so prompt + N - 1 are stored, in the blocks the N - 1
        generation steps allocated. Returns what TensorRT-LLM prints as "N blocks stored for
        reuse": ``numBlocksStoredForReuse``, the blocks newly inserted into the tree (a key the
        tree already holds counts nothing)."""
        seq = self._sequences.pop(request_id)
        stored = 0
        if self._stores(seq):
            stored = self._store(seq, self._usable_blocks(seq.tokens))
        for block in reversed(seq.blocks):
            block.refs -= 1
            if block.refs == 0:
                self._release(block)
        return stored

    def _store(self, seq: _Sequence, keys: list[Key]) -> int:
        """``storeBlocks``: walk the tree by exact keys; a key the tree holds keeps the tree's
        block (the sequence's own is not inserted); the first miss and all after it go in."""
        search = self.root
        inserted = 0
        matching = True
        for key, block in zip(keys, seq.blocks, strict=False):
            existing = search.children.get(key) if matching else None
            if existing is not None:
                search = existing
                continue
            matching = False
            if block.in_tree:
                search = block
                continue
            block.key, block.full = key, len(key) == self.tpb
            block.parent = search
            search.children[key] = block
            search = block
            inserted += 1
            self.listener.event(
                {
                    "type": "stored",
                    "parent_hash": None,
                    "blocks": [
                        {
                            "type": "stored_block",
                            "block_hash": block.id,
                            "cache_level": block.level,
                            "priority": block.priority,
                        }
                    ],
                }
            )
        return inserted
