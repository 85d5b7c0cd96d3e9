"""The reference model's speed: predict 10,000 requests of about 1,000 tokens.

    python benchmarks/bench_predict.py [--requests 10000]

Requests share prefixes (8 system prompts of 512 tokens, a unique suffix of about 500) and run
one after another through a 5k-token GPU pool with a 128k-token host pool, so lookups, partial
matches, offloads and onboards all happen. Goal: under 5 s on a 2-core machine. Reports the
rate.
"""

from __future__ import annotations

import argparse
import json
import random
import time

from kvverify.engines.sim.model import BlockManager


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    prefixes = [[rng.randrange(2, 150_000) for _ in range(512)] for _ in range(8)]
    prompts = [
        rng.choice(prefixes) + [rng.randrange(2, 150_000) for _ in range(rng.randint(400, 600))]
        for _ in range(args.requests)
    ]
    m = BlockManager(160, 4096, 32)  # 5k tokens on the GPU, 128k on the host
    tokens = 0
    t0 = time.perf_counter()
    for rid, prompt in enumerate(prompts):
        m.add_sequence(rid, prompt)
        m.generate(rid, [7 + i for i in range(64)])
        m.release(rid)
        tokens += len(prompt)
    seconds = time.perf_counter() - t0
    c = m.counters
    print(
        json.dumps(
            {
                "requests": args.requests,
                "prompt_tokens": tokens,
                "seconds": round(seconds, 2),
                "requests_per_second": round(args.requests / seconds),
                "reused_blocks": c.reused_blocks,
                "missed_blocks": c.missed_blocks,
                "offloaded_blocks": c.offloaded_blocks,
                "onboarded_blocks": c.onboarded_blocks,
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
