"""``kvverify predict``: what the reference model expects a scenario to show, per variant and
step, and the comparison behind ``{matches: predicted}`` expectations."""

from __future__ import annotations

from typing import Any

from kvverify.engines.sim.dialects import DEFAULT_DIALECT
from kvverify.engines.sim.simulate import ASSUMED_FREE_GPU_BYTES, Prediction, predict
from kvverify.errors import KvverifyError
from kvverify.metrics import DEFAULT_MATCH_METRICS
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


Comparison = tuple[str, float | None, float | None, float, bool | None]


def compare(spec: dict[str, Any], predicted: dict[str, Any], observe: Any) -> list[Comparison]:
    """``[(metric, observed, predicted, tolerance, ok)]`` for one ``matches: predicted``
    expectation; ``observe(metric, step)`` returns the observed value or None."""
    out: list[Comparison] = []
    tolerance = spec.get("tolerance") or {}
    for metric in spec.get("metrics") or DEFAULT_MATCH_METRICS:
        tol = float(tolerance.get(metric, 0))
        if metric.startswith("steps."):
            name = metric.removeprefix("steps.")
            for step, values in sorted(
                predicted.get("steps", {}).items(), key=lambda kv: int(kv[0])
            ):
                want = values.get(name)
                got = observe(name, int(step))
                ok = None if got is None or want is None else abs(got - want) <= tol
                out.append((f"step[{step}].{name}", got, want, tol, ok))
        else:
            want = predicted.get("summary", {}).get(metric)
            got = observe(metric, None)
            ok = None if got is None or want is None else abs(got - want) <= tol
            out.append((metric, got, want, tol, ok))
    return out
