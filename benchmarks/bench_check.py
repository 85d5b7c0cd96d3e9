"""``kvverify check`` on 1 GiB TensorRT-LLM DEBUG logs against ``LC_ALL=C grep -E -c`` over
the same line families, interleaved in one run, for two profiles of log (``make_log.py``): the
realistic one and a dense one (a busy offloading server).

    python benchmarks/bench_check.py [--profile realistic|dense|both] [--size 1GiB]
                                     [--rounds 3] [--jobs N]

Writes each log with ``make_log.py`` if it is not there yet, checks that kvverify's numbers
equal the log's truth, then times grep, ``kvverify check`` and ``kvverify check --format json``
in turn, round after round (so all see the same machine state), and reports the median wall
times, the ratios to grep and kvverify's peak resident memory: the largest single process as
GNU time reports it, and the whole process tree, summed from /proc every 10 ms.
Goal: ratio <= 1.0 and peak RSS <= 100 MB, with JSON output too.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

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

LOGS = {"realistic": "big.log", "dense": "dense.log"}


def engine_name() -> str:
    """The parser path ``kvverify check`` takes (KVVERIFY_NATIVE=0 measures pure Python)."""
    code = (
        "from kvverify.evidence import parse\n"
        "try:\n    print(parse.engine_name())\n"
        "except AttributeError:  # before the native scanner (0.1.0): Hyperscan or not\n"
        "    from kvverify.evidence import prefilter\n"
        "    print('hyperscan' if prefilter.enabled() else 'python')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return out.stdout.strip()


def _tree_rss(pid: int) -> int:
    """Resident bytes of a process and all its descendants, from /proc."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/statm") as f:
                total += int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    todo += [int(c) for c in f.read().split()]
        except (OSError, ValueError):
            continue
    return total


def timed(cmd: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    """Wall seconds, peak RSS of the largest process (GNU time, KiB) and of the whole tree
    (sampled, bytes), and stdout of one run."""
    gnu_time = shutil.which("time") or "/usr/bin/time"
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [gnu_time, "-f", "%M", *cmd],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, _tree_rss(proc.pid))
            done.wait(0.01)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = proc.communicate()
    seconds = time.perf_counter() - t0
    done.set()
    sampler.join()
    return {
        "seconds": seconds,
        "rss_kib": int(err.decode().strip().splitlines()[-1]),
        "tree_bytes": peak,
        "stdout": out.decode(),
    }


def check_truth(kv: list[str], log: Path) -> dict[str, Any]:
    """kvverify's numbers are the ones the log was written with."""
    truth = json.loads(Path(str(log) + ".truth.json").read_text())
    run = timed(
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
            str(log),
        ]
    )
    (report,) = json.loads(run["stdout"])["logs"]
    final = next(s for s in report["summaries"] if s["final"])
    observed = {c["expression"].split()[0]: c["observed"] for c in report["checks"]}
    assert final["reused_blocks"] == truth["reused_blocks"], (final, truth)
    assert final["missed_blocks"] == truth["missed_blocks"], (final, truth)
    assert observed["offloaded_blocks"] == truth["offloaded_blocks"], (observed, truth)
    assert observed["onboarded_blocks"] == truth["onboarded_blocks"], (observed, truth)
    return truth


def bench(profile: str, args: argparse.Namespace) -> dict[str, Any]:
    log = args.out / LOGS[profile]
    if not log.exists():
        subprocess.run(
            [
                sys.executable,
                str(HERE / "make_log.py"),
                "--profile",
                profile,
                "--size",
                args.size,
                "--out",
                str(log),
            ],
            check=True,
        )
    kv = [sys.executable, "-m", "kvverify", "check"]
    if args.jobs:
        kv += ["--jobs", str(args.jobs)]
    truth = check_truth(kv, log)
    grep_env = dict(os.environ, LC_ALL="C")
    runs: dict[str, list[dict[str, Any]]] = {"grep": [], "table": [], "json": []}
    for _ in range(args.rounds):
        runs["grep"].append(timed(["grep", "-E", "-c", PATTERN, str(log)], grep_env))
        runs["table"].append(timed([*kv, str(log)]))
        runs["json"].append(timed([*kv, "--format", "json", str(log)]))
    median = {k: statistics.median(r["seconds"] for r in v) for k, v in runs.items()}
    return {
        "profile": profile,
        "log_bytes": log.stat().st_size,
        "requests": truth["requests"],
        "grep_lines_matched": int(runs["grep"][-1]["stdout"] or 0),
        **{f"{k}_seconds": [round(r["seconds"], 2) for r in v] for k, v in runs.items()},
        **{f"{k}_median": round(v, 2) for k, v in median.items()},
        "ratio": round(median["table"] / median["grep"], 2),
        "ratio_json": round(median["json"] / median["grep"], 2),
        **{
            f"{k}_peak_rss_mb": round(max(r["rss_kib"] for r in runs[k]) / 1024, 1)
            for k in ("table", "json")
        },
        **{
            f"{k}_tree_rss_mb": round(max(r["tree_bytes"] for r in runs[k]) / 2**20, 1)
            for k in ("table", "json")
        },
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", choices=[*LOGS, "both"], default="both")
    ap.add_argument("--size", default="1GiB")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--jobs", type=int, default=None, help="kvverify check --jobs")
    ap.add_argument("--out", type=Path, default=HERE / "out", help="where the logs are")
    args = ap.parse_args()
    profiles = list(LOGS) if args.profile == "both" else [args.profile]
    results = [bench(profile, args) for profile in profiles]
    print(
        json.dumps(
            {"cpus": os.cpu_count(), "parser": engine_name(), "results": results},
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
