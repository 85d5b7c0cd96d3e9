"""``kvverify check`` on a realistic 1 GiB TensorRT-LLM DEBUG log against
``LC_ALL=C grep -E -c`` over the same line families, interleaved in one run.

    python benchmarks/bench_check.py [--size 1GiB] [--rounds 3] [--jobs N]

Writes the log with ``make_log.py`` if it is not there yet, checks that kvverify's numbers equal
the log's truth, then times grep and kvverify alternately (so both see the same machine state)
and reports the median wall times, their ratio and the peak resident memory of kvverify (the
largest of its processes, as GNU time reports it). Goal: ratio <= 1.0, peak RSS <= 100 MB.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

#: The line families kvverify reads (kvverify/evidence/patterns.py), as one POSIX ERE.
FAMILIES = [
    r"BlockManager(\[windowSize=[0-9]+\])? - (total allocated blocks|allocated new blocks"
    r"|missed blocks|reused unique blocks percentage \(%\)|reused unique blocks|reused blocks"
    r"|cache hit rate|reused tokens percentage \(%\)|reused tokens):",
    r"loadOrAllocateBlocks( for request [0-9]+)? - (Matched full|No match|Reused partially"
    r"|Copied partially|Matched partially)",
    r"addSequence: Request [0-9]+, inputLength [0-9]+, prepopulatedPromptLen",
    r"releaseBlocks Request [0-9]+, [0-9]+ blocks stored",
    r"Setting pre-populated prompt length for request",
    r"\[BlockManager(\[windowSize=[0-9]+\])?\] Allocating (primary|secondary) pool",
    r"Max KV cache (blocks|pages) per sequence",
    r"KV cache block reuse is (enabled|disabled)",
    r"Number of tokens per block: ",
    r"Number of blocks in KV cache (primary|secondary) pool",
    r"\[windowSize=[0-9]+\] \{\.primaryBlocks=",
    r"\[KVCacheManager\] blocks_per_window",
    r"\[kv cache manager\] Primary/secondary blocks",
    r"Resolved use_kv_cache_manager_v2",
    r"copyBlock entered: srcId=-?[0-9]+, dstId=-?[0-9]+, isOffload=(true|false)",
    r"storeContextBlocks: Can not find sequence",
    r"TensorRT[- ]LLM version: ",
    r"\[kvverify\] \{",
    r"kvCacheIterationStats|iterOffloadBlocks|cache_level",
    r"\[E\] |\[ERROR\]",
    r"^Traceback \(most recent call last\)",
    r"^([A-Za-z_][A-Za-z0-9_]*\.)*[A-Za-z_][A-Za-z0-9_]*(Error|Exception): ",
    r"CUDA (error|out of memory|runtime error)",
]
PATTERN = "|".join(FAMILIES)


def prefilter_enabled() -> bool:
    code = "from kvverify.evidence import prefilter; print(prefilter.enabled())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return out.stdout.strip() == "True"


def timed(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, int, str]:
    """Wall seconds, peak RSS in KiB (GNU time), stdout."""
    gnu_time = shutil.which("time") or "/usr/bin/time"
    full = [gnu_time, "-f", "%M", *cmd]
    t0 = time.perf_counter()
    out = subprocess.run(full, capture_output=True, text=True, env=env, check=False)
    seconds = time.perf_counter() - t0
    rss = int(out.stderr.strip().splitlines()[-1])
    return seconds, rss, out.stdout


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="1GiB")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--jobs", type=int, default=None, help="kvverify check --jobs")
    ap.add_argument("--log", type=Path, default=HERE / "out" / "big.log")
    args = ap.parse_args()
    if not args.log.exists():
        subprocess.run(
            [
                sys.executable,
                str(HERE / "make_log.py"),
                "--size",
                args.size,
                "--out",
                str(args.log),
            ],
            check=True,
        )
    truth = json.loads(Path(str(args.log) + ".truth.json").read_text())
    kv = [sys.executable, "-m", "kvverify", "check"]
    if args.jobs:
        kv += ["--jobs", str(args.jobs)]
    # Correctness first: the numbers kvverify reads are the ones the log was written with.
    report = json.loads(
        subprocess.run(
            [
                *kv,
                "--format",
                "json",
                "-e",
                "reused_blocks > 0",
                "-e",
                "offloaded_blocks > 0",
                "-e",
                "onboarded_blocks > 0",
                str(args.log),
            ],
            capture_output=True,
            text=True,
            check=False,
        ).stdout
    )
    (log,) = report["logs"]
    final = next(s for s in log["summaries"] if s["final"])
    observed = {c["expression"].split()[0]: c["observed"] for c in log["checks"]}
    assert final["reused_blocks"] == truth["reused_blocks"], (final, truth)
    assert final["missed_blocks"] == truth["missed_blocks"]
    assert observed["offloaded_blocks"] == truth["offloaded_blocks"], observed
    assert observed["onboarded_blocks"] == truth["onboarded_blocks"], observed
    env = dict(os.environ, LC_ALL="C")
    grep_t, kv_t, kv_rss = [], [], []
    grep_count = ""
    for _ in range(args.rounds):
        s, _, grep_count = timed(["grep", "-E", "-c", PATTERN, str(args.log)], env)
        grep_t.append(s)
        s, rss, _ = timed([*kv, str(args.log)])
        kv_t.append(s)
        kv_rss.append(rss)
    g, k = statistics.median(grep_t), statistics.median(kv_t)
    result = {
        "log_bytes": args.log.stat().st_size,
        "requests": truth["requests"],
        "grep_lines_matched": int(grep_count or 0),
        "grep_seconds": [round(x, 2) for x in grep_t],
        "kvverify_seconds": [round(x, 2) for x in kv_t],
        "ratio": round(k / g, 2),
        "kvverify_peak_rss_mb": round(max(kv_rss) / 1024, 1),
        "cpus": os.cpu_count(),
        # Hyperscan prefilter in use (KVVERIFY_PREFILTER=0 measures the pure-Python path)
        "prefilter": prefilter_enabled(),
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
