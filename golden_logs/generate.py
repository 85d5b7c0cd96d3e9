"""Regenerate ``golden_logs/``: every file comes from this one command (it is not part of
the kvverify package: it needs the repository's scenarios).

    python golden_logs/generate.py            # write the logs and the JSON each must produce
    python golden_logs/generate.py --check    # exit 1 if a committed file differs

The JSON files record what the code says today; regenerating them cannot prove it right.
``expected.yaml`` holds what each log must show by hand-derived numbers (from the reference's
rules and worked examples), which ``tests/test_golden.py`` checks independently.

Three kinds of log, all written by kvverify's reference model from the reference's format strings
(not captured on a GPU; golden_logs/README.md says so):

* ``offloading_enabled.log`` / ``offloading_disabled.log``: what TensorRT-LLM's offloading
  example prints when run as its docstring says (``... 2>&1 | tee offloading_enabled.log``), in
  the 1.2 format: no kvverify markers, the example's own prints included;
* ``abab-<dialect>-<variant>.log``: what ``kvverify run scenarios/abab.yaml --engine sim
  --dialect <dialect>`` writes, for every format era;
* special cases: a run killed before shutdown, KV cache manager V2, INFO level only, two ranks
  interleaved, two runs appended, a CUDA error.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

from kvverify import markers
from kvverify.check import Inputs, check_events, report
from kvverify.engines.sim.dialects import DIALECTS, RESOLVED_V2, TOKENS_PER_BLOCK, LogWriter
from kvverify.engines.sim.engine import SimEngine
from kvverify.engines.sim.simulate import Simulation
from kvverify.evidence.parse import parse_bytes
from kvverify.report import to_json
from kvverify.result import CheckReport
from kvverify.run import plan_for
from kvverify.runner import worker
from kvverify.scenario import Variant, load

ROOT = Path(__file__).resolve().parent.parent
SCENARIO = ROOT / "scenarios" / "abab.yaml"


def _variants() -> dict[str, Variant]:
    return load(SCENARIO).variants


def recorded_run(variant: str, dialect: str) -> str:
    """What ``kvverify run --engine sim --dialect D`` writes for one variant (in-process)."""
    lines: list[str] = []
    scenario = load(SCENARIO)
    plan = plan_for(scenario, scenario.variants[variant], "sim", dialect)
    engine = SimEngine(dialect=dialect, out=lines.append)
    worker.run(plan, emit=lambda record: lines.append(markers.encode(record)), engine=engine)
    lines.append(markers.encode(markers.Exit(status="ok", returncode=0)))
    return "".join(lines)


def example_output(variant: str) -> str:
    """TensorRT-LLM's example, run as its docstring says, in the 1.2 format: the engine's lines
    and the script's own prints, no kvverify markers."""
    v = _variants()[variant]
    lines: list[str] = []
    w = LogWriter(DIALECTS["1.2"], lines.append)
    sim = Simulation(v, "1.2", w)
    sim.start()
    for step in v.steps:
        if step.index == 1:
            lines.append("--- First Round ---\n")
        if step.index == 3:
            lines.append("\n--- Second Round ---\n")
        sim.step(step)
        text = v.prompt_text(step.prompt)
        lines.append(f"Prompt: {text!r}, Generated text: ' ...'\n")
    sim.shutdown()
    return "".join(lines)


def _killed_run() -> str:
    """The enabled example killed during step 4: requests, no summary of the final manager."""
    text = example_output("offload_on")
    cut = text.index("Prompt: ", text.index("--- Second Round ---"))
    cut = text.index("Prompt: ", cut + 1)  # after step 3's output line
    return text[:cut]


def _v2() -> str:
    lines: list[str] = []
    w = LogWriter(DIALECTS["2026"], lines.append, rank=0)
    w.model_mark()
    w.banner()
    w.python("I", "Using LLM with PyTorch backend")
    w.python("I", RESOLVED_V2 + " True LlamaForCausalLM")
    w.line("INFO", TOKENS_PER_BLOCK, 32)
    w.module = "runtime"
    w.line("INFO", "Set logger level to %s", "DEBUG")
    w.line("DEBUG", "Allocated %d bytes for the KV cache pool", 1 << 30)
    return "".join(lines)


def _info_level() -> str:
    lines: list[str] = []
    w = LogWriter(DIALECTS["1.2"], lines.append)
    w.model_mark()
    w.banner()
    w.python("I", "Using LLM with PyTorch backend")
    w.line("INFO", TOKENS_PER_BLOCK, 16)
    w.line("INFO", DIALECTS["1.2"].max_blocks, 16, 256, 16, 16, 455, 256)
    lines.append("--- First Round ---\n")
    return "".join(lines)


def _two_ranks() -> str:
    """TP=2 in the 2026 format: each rank's lines, interleaved line by line."""
    v = _variants()["offload_on"]
    per_rank: list[list[str]] = []
    for rank in (0, 1):
        out: list[str] = []
        sim = Simulation(v, "2026", LogWriter(DIALECTS["2026"], out.append, rank=rank))
        sim.run()
        per_rank.append(out)
    merged = []
    for i in range(max(map(len, per_rank))):
        for out in per_rank:
            if i < len(out):
                merged.append(out[i])
    return "".join(merged)


def _appended() -> str:
    """Two runs in one file (tee -a): a run killed before shutdown, then a complete one."""
    return _killed_run() + example_output("offload_off")


def _cuda_error() -> str:
    text = example_output("offload_on")
    cut = text.index("--- Second Round ---")
    return (
        text[:cut] + "[TensorRT-LLM][ERROR] CUDA runtime error in cudaMemcpyAsync: an "
        "illegal memory access was encountered\nTraceback (most recent call last):\n"
        '  File "llm_kv_cache_offloading.py", line 108, in <module>\n'
        "RuntimeError: Executor worker returned error\n"
    )


def files() -> dict[str, Callable[[], str]]:
    out: dict[str, Callable[[], str]] = {
        "offloading_enabled.log": lambda: example_output("offload_on"),
        "offloading_disabled.log": lambda: example_output("offload_off"),
    }
    for dialect in DIALECTS:
        for variant in ("offload_off", "offload_on"):
            out[f"abab-{dialect}-{variant}.log"] = (
                lambda d=dialect, v=variant: recorded_run(v, d)  # type: ignore[misc]
            )
    out.update(
        {
            "killed-before-shutdown.log": _killed_run,
            "kv-cache-manager-v2.log": _v2,
            "info-level.log": _info_level,
            "tp2-2026.log": _two_ranks,
            "appended-runs.log": _appended,
            "cuda-error.log": _cuda_error,
        }
    )
    return out


def expected_json(name: str, text: str) -> str:
    """The JSON ``kvverify check --format json golden_logs/<name>`` must print."""
    log = check_events(parse_bytes(text.encode()), f"golden_logs/{name}", Inputs())
    result: CheckReport = report([log])
    data = json.loads(to_json(result))
    data.update(kvverify_version="(any)", scanner="(any)")
    return json.dumps(data, indent=2) + "\n"


def generate() -> dict[str, str]:
    out = {}
    for name, make in files().items():
        text = make()
        out[name] = text
        out[name.removesuffix(".log") + ".json"] = expected_json(name, text)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python golden_logs/generate.py", description=__doc__)
    ap.add_argument("--check", action="store_true", help="compare instead of writing")
    ap.add_argument("dir", nargs="?", type=Path, default=ROOT / "golden_logs")
    args = ap.parse_args(argv)
    drift = []
    for name, text in generate().items():
        path = args.dir / name
        if args.check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                drift.append(name)
        else:
            path.write_text(text, encoding="utf-8")
    if drift:
        print(
            "golden logs differ from what the model writes: "
            + ", ".join(drift)
            + "\nregenerate with: python golden_logs/generate.py",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
