"""``kvverify predict``: what the reference model expects a scenario to show, per variant and
step, and the comparison behind ``{matches: predicted}`` expectations."""

from __future__ import annotations

from typing import Any

import click

from kvverify.engines.sim.dialects import DEFAULT_DIALECT
from kvverify.engines.sim.simulate import ASSUMED_FREE_GPU_BYTES, Prediction, predict
from kvverify.errors import KvverifyError
from kvverify.metrics import DEFAULT_MATCH_METRICS, hit_rate
from kvverify.report import table as report_table
from kvverify.scenario import Variant, load


def predict_scenario(
    path: str, variants: tuple[str, ...] = (), dialect: str = DEFAULT_DIALECT
) -> list[Prediction]:
    scenario = load(path)
    return [predict(v, dialect) for v in scenario.select(variants)]


def marker_for(variant: Variant, dialect: str = DEFAULT_DIALECT) -> dict[str, Any]:
    """The prediction a run writes into its log (``ready`` marker), or why there is none;
    with the comparisons the variant asks for either way, so that they are reported."""
    match = [
        {
            "metrics": list(m.metrics) if m.metrics else list(DEFAULT_MATCH_METRICS),
            "tolerance": dict(m.tolerance),
        }
        for m in variant.match_predicted
    ]
    try:
        p = predict(variant, dialect)
    except KvverifyError as exc:
        return {"error": exc.message, "match": match}
    return {**p.marker(), "approximate_tokens": p.approximate_tokens, "match": match}


def as_dict(p: Prediction) -> dict[str, Any]:
    cap = p.capacity
    return {
        "variant": p.variant,
        "dialect": p.dialect,
        "approximate_tokens": p.approximate_tokens,
        "tokenizer": p.tokenizer,
        "capacity": {
            "tokens_per_block": cap.tokens_per_block,
            "primary_blocks": cap.primary_blocks,
            "secondary_blocks": cap.secondary_blocks,
            "window": cap.window,
            "bytes_per_token": cap.bytes_per_token,
            "gpu_memory_assumed": cap.assumed_gpu,
        },
        "prompt_lengths": p.prompt_lengths,
        "steps": [
            {
                "step": s.step,
                "prompt": s.prompt,
                "request_id": s.request_id,
                "input_length": s.lookup.input_length,
                "lookups": s.lookup.reused_blocks + s.lookup.missed_blocks,
                "reused_blocks": s.lookup.reused_blocks,
                "full_blocks": s.lookup.full_blocks,
                "partial_blocks": s.lookup.partial_blocks,
                "copied_blocks": s.lookup.copied_blocks,
                "missed_blocks": s.lookup.missed_blocks,
                "onboarded_blocks": s.lookup.onboarded_blocks,
                "offloaded_blocks": s.lookup.offloaded_blocks,
                "evicted_blocks": s.lookup.evicted_blocks,
                "reused_tokens": s.lookup.prepopulated,
                "generated_tokens": s.generated,
                "stored_blocks": s.stored,
            }
            for s in p.steps
        ],
        "summary": {k: int(v) for k, v in p.summary.items()},
        "notes": assumptions(p),
    }


def assumptions(p: Prediction) -> list[str]:
    out = []
    if p.capacity.assumed_gpu:
        out.append(
            f"no max_tokens: the GPU pool is sized from an assumed "
            f"{ASSUMED_FREE_GPU_BYTES >> 30} GiB of free GPU memory; set "
            "kv_cache.max_tokens for exact numbers"
        )
    if p.approximate_tokens:
        out.append(
            "text prompts are tokenized approximately (no local tokenizer): block "
            "counts of text prompts are estimates; use token ids for exact ones"
        )
    out.append(
        "every request generates sampling.max_tokens tokens (or up to max_seq_len); "
        "warm-up and estimation traffic is modelled approximately and is included in "
        "the summary counters, as TensorRT-LLM includes it"
    )
    return out


def render(path: str, predictions: list[dict[str, Any]]) -> str:
    """The table ``kvverify predict`` prints."""
    out = [click.style(f"{path}: what the reference model predicts", bold=True)]
    cols = [
        "step",
        "prompt",
        "request",
        "input",
        "reused",
        "full",
        "partial",
        "missed",
        "onboarded",
        "offloaded",
        "evicted",
        "reused tokens",
    ]
    for p in predictions:
        cap = p["capacity"]
        out.append("")
        out.append(
            click.style(f"variant {p['variant']}", bold=True)
            + f"  (GPU pool {cap['primary_blocks']} blocks, host pool "
            f"{cap['secondary_blocks']} blocks, {cap['tokens_per_block']} tokens per "
            f"block, window {cap['window']})"
        )
        rows = [
            [
                str(s["step"]),
                s["prompt"],
                str(s["request_id"]),
                str(s["input_length"]),
                str(s["reused_blocks"]),
                str(s["full_blocks"]),
                str(s["partial_blocks"]),
                str(s["missed_blocks"]),
                str(s["onboarded_blocks"]),
                str(s["offloaded_blocks"]),
                str(s["evicted_blocks"]),
                str(s["reused_tokens"]),
            ]
            for s in p["steps"]
        ]
        out.extend(report_table(rows, cols))
        sm = p["summary"]
        reused, missed = sm["reused_blocks"], sm["missed_blocks"]
        hit = hit_rate(reused, missed)
        out.append(
            f"    summary: reused blocks {reused}, missed blocks {missed}, cache hit rate "
            f"{hit:.2f}, reused tokens {sm['reused_tokens']}, offloaded "
            f"{sm['offloaded_blocks']}, onboarded {sm['onboarded_blocks']}"
        )
        for note in p["notes"]:
            out.append(f"    note: {note}")
    return "\n".join(out)
