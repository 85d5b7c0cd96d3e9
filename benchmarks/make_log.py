"""Write a realistic TensorRT-LLM 1.x (1.2-era) DEBUG log of a given size, for benchmarks.

What it holds, per KV-cache manager and request, follows the line families and their order in
``docs/trtllm-logs.md`` (§2): the estimation manager and the real one (each with construction
lines, warm-up dummies and a 9-line shutdown summary), then tens of thousands of requests, each with
its per-block ``getFreeBlock`` / ``loadOrAllocateBlocks`` lines, onboard/offload ``copyBlock``
triplets, ``Setting pre-populated prompt length`` and ``addSequence``, ``storeBlocks`` lines per
block, one ``storeNewBlock`` line per generated token, ``releaseBlocks``; plus Python-logger lines,
iteration-stats marker lines, the V2 resolution line and a warning. Requests run in waves of
``--batch`` so lines of several requests interleave as in a batched engine.

``--profile dense`` writes what a busy offloading server prints at DEBUG level instead: the host
pool takes a victim for about one block in three, so every block of every request has a
``getFreeBlock`` and a ``loadOrAllocateBlocks`` line and a third of them a ``copyBlock ...
isOffload=true`` triplet before those, and requests generate few tokens: about 60 000 requests
and 2.6 million evidence lines per GiB (the realistic profile: 33 000 and 1.2 million).

The summary numbers are the totals of what was written, so a checker's result can be verified:
the truth is written to ``<out>.truth.json``.

    python benchmarks/make_log.py --size 1GiB --out benchmarks/out/big.log
    python benchmarks/make_log.py --profile dense --size 1GiB --out benchmarks/out/dense.log
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path
from typing import NamedTuple

from pydantic import ByteSize, TypeAdapter

P = "[TensorRT-LLM][DEBUG] "
I = "[TensorRT-LLM][INFO] "  # noqa: E741
W = "[TensorRT-LLM][WARNING] "


class Profile(NamedTuple):
    """How a log's requests look."""

    #: Chance that getFreeBlock's victim had content and is offloaded to the host first.
    offload: float
    #: Does every context block take a free block (a reused one too: the dense server's
    #: onboarding path), or only the missed ones?
    every_block: bool
    #: Range of prompt lengths, and of tokens each request generates.
    prompt: tuple[int, int]
    generated: tuple[int, int]


PROFILES = {
    "realistic": Profile(offload=0.05, every_block=False, prompt=(600, 1400), generated=(64, 256)),
    "dense": Profile(offload=1 / 3, every_block=True, prompt=(500, 1300), generated=(2, 6)),
}


class Writer:
    def __init__(self, out, tpb: int, window: int, profile: Profile) -> None:
        self.out = out
        self.profile = profile
        self.tpb = tpb
        self.bm = f"BlockManager[windowSize={window}]"
        self.written = 0
        self.buf: list[str] = []
        self.next_block = 0
        self.counters = self.new_manager()

    @staticmethod
    def new_manager() -> dict[str, int]:
        """Counters of one KV cache manager: they start at 0 when it is built."""
        keys = ("alloc_total", "alloc_new", "missed", "reused", "reused_tokens", "input_tokens")
        return dict.fromkeys((*keys, "offloads", "onboards"), 0)

    def line(self, text: str) -> None:
        self.buf.append(text)
        if len(self.buf) >= 4096:
            self.flush()

    def flush(self) -> None:
        data = "\n".join(self.buf) + "\n"
        self.out.write(data)
        self.written += len(data)
        self.buf.clear()

    def block_id(self) -> int:
        self.next_block = (self.next_block + 1) % 4096
        return self.next_block

    def copy(self, src: int, dst: int, offload: bool) -> None:
        flag = "true" if offload else "false"
        self.line(f"{P}copyBlock entered: srcId={src}, dstId={dst}, isOffload={flag}, mode=0")
        self.line(f"{P}Using DRAM-based copy (GPU <-> CPU) for this block.")
        self.line(f"{P}copyBlock: DRAM mode complete. Returning...")
        self.counters["offloads" if offload else "onboards"] += 1

    def free_block(self, rid: int, rng: random.Random) -> int:
        block = self.block_id()
        if rng.random() < self.profile.offload:  # the victim had content: to the host pool
            self.copy(block, self.block_id(), offload=True)
        self.line(f"{P}{self.bm}::getFreeBlock - Block {block} is now acquired by sequence {rid}")
        self.counters["alloc_total"] += 1
        self.counters["alloc_new"] += 1
        return block

    def context(self, rid: int, prompt: int, reused_blocks: int, rng: random.Random) -> None:
        """Lines of addSequence for one request: lookups, then the two request lines."""
        blocks = -(-prompt // self.tpb)
        for b in range(blocks):
            if b < reused_blocks:
                block = self.free_block(rid, rng) if self.profile.every_block else self.block_id()
                self.line(f"{P}{self.bm}::loadOrAllocateBlocks - Matched full block {block}")
                if rng.random() < 0.1:  # it was in the host pool: onboard
                    self.copy(block, self.free_block(rid, rng), offload=False)
                self.counters["reused"] += 1
            else:
                block = self.free_block(rid, rng)
                self.line(
                    f"{P}{self.bm}::loadOrAllocateBlocks - No match, allocated new block "
                    f"{block} for sequence {rid}"
                )
                self.counters["missed"] += 1
        pre = reused_blocks * self.tpb
        self.counters["reused_tokens"] += pre
        self.counters["input_tokens"] += prompt
        self.line(
            f"{P}Setting pre-populated prompt length for request {rid} to {pre} "
            f"(promptLen={prompt})."
        )
        self.line(
            f"{P}addSequence: Request {rid}, inputLength {prompt}, prepopulatedPromptLen {pre}, "
            f"numConnectorMatchedTokens 0"
        )
        self.line(f"{P}{self.bm}::storeBlocks - {blocks} blockKeys, {blocks} blockIds")
        for b in range(blocks):
            self.line(f"{P}{self.bm}::storeBlocks - Searching match for block {b}")
            if b < reused_blocks:
                self.line(f"{P}{self.bm}::storeBlocks - Found matching block {b}, traverse")
            else:
                self.line(
                    f"{P}{self.bm}::storeBlocks - No match, inserting block {b} into search "
                    "structure"
                )
            self.line(f"{P}#{b} block hash {rng.getrandbits(48):x} -> {rng.getrandbits(48):x}")

    def summary(self, c: dict[str, int]) -> None:
        hit = 0 if c["reused"] == 0 else c["reused"] / (c["reused"] + c["missed"])
        pct = 100.0 * c["reused_tokens"] / c["input_tokens"] if c["input_tokens"] else float("nan")
        unique = c["reused"] // 2
        unique_pct = 0 if unique == 0 else unique / c["alloc_new"] * 100
        for fmt, value in (
            ("%s - total allocated blocks:              %lu  ", c["alloc_total"]),
            ("%s - allocated new blocks:                %lu  ", c["alloc_new"]),
            ("%s - missed blocks:                       %lu  ", c["missed"]),
            ("%s - reused blocks:                       %lu  ", c["reused"]),
            ("%s - reused unique blocks:                %lu  ", unique),
            ("%s - reused unique blocks percentage (%%): %.2f ", unique_pct),
            ("%s - cache hit rate:                      %.2f ", hit),
            ("%s - reused tokens:                       %.0f ", c["reused_tokens"]),
            ("%s - reused tokens percentage (%%):        %.2f ", pct),
        ):
            self.line(P + fmt.replace("%lu", "%d") % (self.bm, value))


def construct(
    w: Writer, primary: int, secondary: int, tpb: int, window: int, rank_note: str
) -> None:
    w.line(f"{I}Number of tokens per block: {tpb}.")
    w.line(
        f"{P}[{w.bm}] Allocating primary pool with {primary} blocks for 36 layers with 8 kv heads"
    )
    if secondary:
        w.line(
            f"{P}[{w.bm}] Allocating secondary pool with {secondary} blocks for 36 layers with "
            "8 kv heads"
        )
    w.line(
        f"{I}Max KV cache blocks per sequence: {window // tpb} [window size={window}], tokens per "
        f"block={tpb}, primary blocks={primary}, secondary blocks={secondary}, max sequence "
        f"length={window}"
    )
    w.line(f"{P}KV cache block reuse is enabled")
    w.line(
        f"{I}[MemUsageChange] Allocated 1.00 GiB for max tokens in paged KV cache ({rank_note})."
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="1GiB", help="approximate size, e.g. 1GiB, 200MB")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--profile", choices=sorted(PROFILES), default="realistic")
    args = ap.parse_args(argv)
    profile = PROFILES[args.profile]
    target = int(TypeAdapter(ByteSize).validate_python(args.size))
    rng = random.Random(args.seed)
    tpb, window, primary, secondary = 32, 4096, 4096, 16384
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w", encoding="utf-8") as out:
        w = Writer(out, tpb, window, profile)
        w.line("[TensorRT-LLM] TensorRT LLM version: 1.2.0rc2")
        w.line("[11/29/2026-10:00:00] [TRT-LLM] [I] Using LLM with PyTorch backend")
        w.line(
            "[11/29/2026-10:00:05] [TRT-LLM] [I] Resolved use_kv_cache_manager_v2='auto' to %s "
            "for %s False Qwen3ForCausalLM"
        )
        # The estimation manager runs dummy requests; its destructor is GC-driven and prints
        # its summary after the real manager has been built (reference §9.2).
        construct(w, 130, 0, tpb, window, "4160")
        for rid in range(8, 16):
            w.context(rid, 4095, 0, rng)
        estimation = w.counters
        w.counters = w.new_manager()
        construct(w, primary, secondary, tpb, window, "131072")
        w.summary(estimation)
        w.line(f"{W}[kv cache manager] storeContextBlocks: Can not find sequence for request 3")
        rid = 2048
        requests = 0
        it = 0
        while w.written + len(w.buf) * 100 < target:
            wave = []
            for _ in range(args.batch):
                prompt = rng.randint(*profile.prompt)
                shared = rng.choice((0, 0, 8, 16, 24))  # shared-prefix blocks found in the cache
                wave.append(
                    (rid, prompt, min(shared, (prompt - 1) // tpb), rng.randint(*profile.generated))
                )
                rid += 1
            for r, prompt, reused, _gen in wave:
                w.context(r, prompt, reused, rng)
            steps = max(g for *_, g in wave)
            for step in range(steps):
                it += 1
                w.line(
                    f"[11/29/2026-10:{(it // 60) % 60:02d}:{it % 60:02d}] [TRT-LLM] [D] "
                    f"iter {it}: {sum(1 for *_, g in wave if g > step)} active requests"
                )
                for r, prompt, _reused, gen in wave:
                    if step < gen:
                        if (prompt + step) % tpb == 0:
                            w.free_block(r, rng)
                            w.line(f"{P}{w.bm}::storeNewBlock - store the last block")
                        else:
                            w.line(f"{P}{w.bm}::storeNewBlock - no need to store")
                if it % 500 == 0:
                    used = rng.randint(0, primary)
                    w.line(
                        '[kvverify] {"v":1,"t":"iter_stats","stats":[{"iter":'
                        + str(it)
                        + ',"kvCacheStats":{"usedNumBlocks":'
                        + str(used)
                        + "}}]}"
                    )
            for r, prompt, _reused, gen in wave:
                w.line(
                    f"{P}{w.bm}::releaseBlocks Request {r}, {-(-(prompt + gen - 1) // tpb)} blocks "
                    "stored for reuse"
                )
                w.line(
                    f"{P}Remove sequence {r}, release sequence storage validity for all window "
                    "sizes"
                )
            requests += len(wave)
        w.summary(w.counters)
        w.flush()
    c = w.counters
    truth = {
        "profile": args.profile,
        "requests": requests,
        "reused_blocks": c["reused"],
        "missed_blocks": c["missed"],
        "allocated_total_blocks": c["alloc_total"],
        "reused_tokens": c["reused_tokens"],
        "offloaded_blocks": c["offloads"],
        "onboarded_blocks": c["onboards"],
        "bytes": w.written,
    }
    Path(str(args.out) + ".truth.json").write_text(json.dumps(truth, indent=1) + "\n")
    print(json.dumps(truth), file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
