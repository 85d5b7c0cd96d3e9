"""How long kvverify takes to start, against a bare ``python -c pass`` in the same run.

    python benchmarks/bench_startup.py [--rounds 15]

Runs the three commands in turn, ``--rounds`` times (so all see the same machine state), and
prints the medians and what each command costs over the bare interpreter. Goals: ``kvverify
--help`` within 150 ms of it, ``kvverify check`` on a small log within 250 ms.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SMALL_LOG = ROOT / "golden_logs" / "offloading_enabled.log"
GOALS_MS = {"help": 150.0, "check": 250.0}


def _seconds(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rounds", type=int, default=15)
    args = ap.parse_args()
    # The console script is what a user runs; -m kvverify is the same entry point.
    kvverify = [sys.executable, "-m", "kvverify"]
    commands = {
        "bare": [sys.executable, "-c", "pass"],
        "help": [*kvverify, "--help"],
        "check": [*kvverify, "check", str(SMALL_LOG)],
    }
    times: dict[str, list[float]] = {name: [] for name in commands}
    for cmd in commands.values():  # warm the page cache and the bytecode
        _seconds(cmd)
    for _ in range(args.rounds):
        for name, cmd in commands.items():
            times[name].append(_seconds(cmd))
    medians = {name: statistics.median(t) * 1000 for name, t in times.items()}
    over = {name: medians[name] - medians["bare"] for name in GOALS_MS}
    result = {
        "rounds": args.rounds,
        "median_ms": {k: round(v, 1) for k, v in medians.items()},
        "over_bare_ms": {k: round(v, 1) for k, v in over.items()},
        "goal_over_bare_ms": GOALS_MS,
        "met": {k: over[k] <= GOALS_MS[k] for k in GOALS_MS},
    }
    print(json.dumps(result, indent=2))
    return 0 if all(result["met"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
