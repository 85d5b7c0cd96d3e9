"""The reference model driven through a scenario: the seed's outcome, and the round trip
model -> log -> parser -> the same numbers, for every format era."""

from __future__ import annotations

from pathlib import Path

import pytest

from kvverify.check import Inputs, check_events
from kvverify.engines.sim.dialects import DIALECTS, LogWriter
from kvverify.engines.sim.engine import SimEngine
from kvverify.engines.sim.shapes import shape_of
from kvverify.engines.sim.simulate import Simulation, capacity, predict
from kvverify.errors import EngineError
from kvverify.evidence.attribute import attribute
from kvverify.evidence.parse import parse_bytes
from kvverify.scenario import load, loads

ROOT = Path(__file__).resolve().parent.parent
ABAB = load(ROOT / "scenarios" / "abab.yaml")


def test_capacity_of_the_seed_matches_the_worked_numbers() -> None:
    # docs/trtllm-logs.md §6.7: 16 primary blocks, window 256, Qwen3-8B 147 456 B/token,
    # 1 GiB -> 7 281 tokens -> 455 secondary blocks.
    on = ABAB.variants["offload_on"]
    cap = capacity(on, DIALECTS["1.2"], shape_of(on.engine))
    assert (cap.primary_blocks, cap.secondary_blocks, cap.window) == (16, 455, 256)
    assert cap.bytes_per_token == 147_456
    off = ABAB.variants["offload_off"]
    assert capacity(off, DIALECTS["1.2"], shape_of(off.engine)).secondary_blocks == 0


def test_the_seed_without_offload_reuses_nothing_and_with_it_steps_3_and_4_reuse() -> None:
    off = predict(ABAB.variants["offload_off"], "1.2")
    assert off.summary["reused_blocks"] == 0
    assert [s.lookup.prepopulated for s in off.steps] == [0, 0, 0, 0]
    on = predict(ABAB.variants["offload_on"], "1.2")
    assert [s.lookup.prepopulated > 0 for s in on.steps] == [False, False, True, True]
    for s in on.steps[2:]:
        # at most L-1 tokens: everything but the last prompt token comes back from host RAM
        assert s.lookup.prepopulated == s.lookup.input_length - 1
        assert s.lookup.onboarded_blocks >= 1
    assert on.summary["reused_blocks"] > 0
    assert on.summary["onboarded_blocks"] > 0


@pytest.mark.parametrize("dialect", sorted(DIALECTS))
def test_round_trip_model_log_parser(dialect: str) -> None:
    variant = ABAB.variants["offload_on"]
    lines: list[str] = []
    sim = Simulation(variant, dialect, LogWriter(DIALECTS[dialect], lines.append))
    prediction = sim.run()
    ev = attribute(parse_bytes("".join(lines).encode()))
    final = ev.final_segment()
    assert final is not None
    (block,) = final.summaries
    printed = DIALECTS[dialect].summary_metrics
    for metric in (
        "allocated_total_blocks",
        "allocated_new_blocks",
        "missed_blocks",
        "reused_blocks",
        "reused_tokens",
    ):
        if metric in printed:
            assert block.values[metric] == prediction.summary[metric], metric
    steps = [r for r in final.requests if r.request_id >= 1]
    assert [r.reused_tokens for r in steps] == [s.lookup.prepopulated for s in prediction.steps]
    if DIALECTS[dialect].copies:
        assert final.offload_copies == prediction.summary["offloaded_blocks"]
        onboards = final.onboard_copies - final.lookups[2]
        assert onboards == prediction.summary["onboarded_blocks"]
    report = check_events(parse_bytes("".join(lines).encode()), dialect, Inputs())
    assert report.checks[0].observed == prediction.summary["reused_blocks"]


def test_token_prompts_are_exact_and_text_prompts_flagged() -> None:
    s = loads("""\
name: t
engine: {model: TinyLlama/TinyLlama-1.1B-Chat-v1.0, max_seq_len: 128,
         kv_cache: {max_tokens: 512, tokens_per_block: 16}}
prompts: {A: {synthetic: {length: 33}}, B: hello world}
steps: [A, A, B]
""")
    p = predict(s.variants["default"], "1.2")
    assert p.prompt_lengths["A"] == 33
    assert p.approximate_tokens
    assert p.steps[1].lookup.prepopulated == 32  # 2 full blocks of the first L-1 tokens


def test_an_unknown_model_needs_its_shape() -> None:
    s = loads("name: t\nengine: {model: my/unknown-model}\nprompts: {A: hi}\nsteps: [A]\n")
    with pytest.raises(EngineError, match="does not know the shape") as info:
        predict(s.variants["default"], "1.2")
    assert "engine.shape" in (info.value.hint or "")
    s2 = loads(
        "name: t\nengine: {model: my/unknown-model, shape: {num_layers: 2, num_kv_heads: "
        "1, head_dim: 8}}\nprompts: {A: hi}\nsteps: [A]\n"
    )
    assert predict(s2.variants["default"], "1.2").capacity.bytes_per_token == 2 * 2 * 1 * 8 * 2


def test_tensor_parallel_ranks_split_the_kv_heads_and_print_their_own_lines() -> None:
    from kvverify.scenario import loads

    text = (
        "schema_version: 1\nname: tp\nengine: {model: Qwen/Qwen3-8B, tensor_parallel_size: 2,"
        " kv_cache: {max_tokens: 64, tokens_per_block: 16, host_cache_size: 1GiB}}\n"
        "prompts: {A: {tokens: [1, 2, 3]}}\nsteps: [A]\n"
    )
    variant = loads(text).variants["default"]
    assert shape_of(variant.engine).num_kv_heads == 4  # Qwen3-8B has 8, on 2 ranks
    lines: list[str] = []
    engine = SimEngine(out=lines.append)
    engine.start_variant(variant)
    pools = [ln for ln in lines if "Allocating primary pool" in ln]
    assert [ln.split("]")[2].strip() for ln in pools[-2:]] == ["[0", "[1"]  # classic [n] prefix
    assert all("with 4 kv heads" in ln for ln in pools)
