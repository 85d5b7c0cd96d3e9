"""Scenario files: what they mean, and located, actionable errors for broken ones."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from kvverify.errors import KvverifyError, ScenarioError
from kvverify.scenario import load, loads

ROOT = Path(__file__).resolve().parent.parent

BASE = """\
schema_version: 1
name: t
engine:
  model: Qwen/Qwen3-8B
  max_batch_size: 1
  kv_cache: {max_tokens: 256, tokens_per_block: 16}
prompts:
  A: some text
  B: {tokens: [5, 6, 7]}
  C: {synthetic: {length: 40, seed: 3, prefix: {length: 32, seed: 1}}}
  D: {synthetic: {length: 35, seed: 4, prefix: {length: 32, seed: 1}}}
steps: [A, {prompt: B, priority: 80}, {repeat: 2, steps: [C, D]}]
"""


def problems(text: str) -> list[str]:
    with pytest.raises(ScenarioError) as info:
        loads(text, "s.yaml")
    return info.value.problems


def test_the_abab_scenario_reproduces_the_seed() -> None:
    s = load(ROOT / "scenarios" / "abab.yaml")
    assert list(s.variants) == ["offload_off", "offload_on"]
    for v in s.variants.values():
        assert v.engine.model == "Qwen/Qwen3-8B"
        assert v.engine.kwargs() == {"max_batch_size": 1, "max_seq_len": 256}
        assert v.sampling.kwargs() == {"max_tokens": 256}
        assert [st.prompt for st in v.steps] == ["A", "B", "A", "B"]
        assert v.texts["A"] == (
            "Returns the per-iterations statistics computed since last call to this method. "
            "Contains at most iter_stats_max_iterations iterations."
        )
        assert v.texts["B"] == (
            "Use for skipping decoding step for non generation model, and "
            "return the batch_output (such as mm_embeddings)"
        )
    off, on = s.variants["offload_off"], s.variants["offload_on"]
    assert off.engine.kv_cache.kwargs() == {
        "enable_block_reuse": True,
        "max_tokens": 256,
        "tokens_per_block": 16,
        "host_cache_size": 0,
    }
    assert on.engine.kv_cache.kwargs()["host_cache_size"] == 1024**3
    assert [e.text for e in off.expect] == ["reused_blocks == 0", "cache_hit_rate == 0"]
    assert [e.text for e in on.expect] == [
        "step[3].reused_tokens > 0",
        "step[4].reused_tokens > 0",
        "cache_hit_rate > 0",
    ]


def test_the_packaged_default_is_the_abab_scenario() -> None:
    packaged = ROOT / "kvverify" / "data" / "abab.yaml"
    assert packaged.read_bytes() == (ROOT / "scenarios" / "abab.yaml").read_bytes()


def test_prompts_steps_repeat_and_priority() -> None:
    (v,) = loads(BASE).variants.values()
    assert v.name == "default"
    assert [(s.index, s.prompt, s.priority) for s in v.steps] == [
        (1, "A", None),
        (2, "B", 80),
        (3, "C", None),
        (4, "D", None),
        (5, "C", None),
        (6, "D", None),
    ]
    assert v.prompts["A"].token_ids() is None
    assert v.prompts["B"].token_ids() == [5, 6, 7]
    c, d = v.prompts["C"].token_ids(), v.prompts["D"].token_ids()
    assert c is not None
    assert d is not None
    assert (len(c), len(d)) == (40, 35)
    assert c[:32] == d[:32]
    assert c[32:35] != d[32:35]
    assert c == v.prompts["C"].token_ids()  # seeded: the same ids every time


def test_variants_merge_engine_replace_steps_and_add_expectations() -> None:
    text = (
        BASE
        + """\
expect: [reused_blocks > 0]
variants:
  big:
    engine: {kv_cache: {max_tokens: 1024}, args: {enable_chunked_prefill: true}}
    prompts: {A: {tokens: [1, 2]}}
    steps: [A, A]
    expect: ["step[2].reused_tokens >= 0", {matches: predicted}]
  plain: {}
"""
    )
    s = loads(text)
    big, plain = s.variants["big"], s.variants["plain"]
    assert big.engine.kv_cache.kwargs() == {"max_tokens": 1024, "tokens_per_block": 16}
    assert big.engine.kwargs() == {"max_batch_size": 1, "enable_chunked_prefill": True}
    assert big.prompts["A"].token_ids() == [1, 2]
    assert [s.prompt for s in big.steps] == ["A", "A"]
    assert [e.text for e in big.expect] == ["reused_blocks > 0", "step[2].reused_tokens >= 0"]
    assert len(big.match_predicted) == 1
    assert plain.engine.kv_cache.kwargs() == {"max_tokens": 256, "tokens_per_block": 16}
    assert len(plain.steps) == 6


def test_every_problem_at_once_with_positions_and_did_you_mean() -> None:
    text = """\
schema_version: 1
name: bad
engine:
  model: Qwen/Qwen3-8B
  kv_cache:
    host_cache_sise: 1GiB
    tokens_per_block: zero
sampling: {max_tokns: 5}
prompts:
  A: {text: hi, tokens: [1, 2]}
steps: [A, {repeat: 0, steps: [A]}, {prompt: A, priority: 200}]
"""
    assert problems(text) == [
        "s.yaml:6:5: engine.kv_cache.host_cache_sise: unknown key (did you mean "
        "'host_cache_size'?)",
        "s.yaml:7:23: engine.kv_cache.tokens_per_block: Input should be a valid integer, unable "
        "to parse string as an integer",
        "s.yaml:8:12: sampling.max_tokns: unknown key (did you mean 'max_tokens'?)",
        "s.yaml:10:6: prompts.A: give exactly one of text, file, tokens, synthetic (got text, "
        "tokens)",
        "s.yaml:11:21: steps[1].repeat: Input should be greater than or equal to 1",
        "s.yaml:11:59: steps[2].priority: Input should be less than or equal to 100",
    ]


def test_errors_in_a_variant_point_at_the_variant() -> None:
    text = (
        BASE
        + """\
variants:
  on:
    engine: {kv_cache: {host_cache_size: lots}}
    prompts: {A: {file: missing.txt}}
    expect: [reused_blocks >> 0]
  off:
    steps: [A, E]
"""
    )
    found = problems(text)
    assert found == [
        "s.yaml:15:42: variants.on.engine.kv_cache.host_cache_size: not a size: write bytes or "
        "a number with a unit, e.g. 0, 1GiB, 512MB",
        "s.yaml:17:14: variants.on.expect[0]: expected a number, found '>' (write METRIC OP "
        "NUMBER, e.g. 'reused_blocks > 0' or 'step[3].reused_tokens >= 16', or a preset: reuse, "
        "no-reuse, offload, no-offload)",
        "s.yaml:19:16: variants.off.steps[1]: no prompt named 'E'",
    ]


def test_yaml_booleans_duplicates_and_syntax() -> None:
    dup = BASE.replace("name: t\n", "name: t\nname: u\n")
    assert problems(dup) == ["s.yaml:3:1: name: duplicate key (the first one is at line 2)"]
    booly = BASE.replace("steps: [A, ", "steps: [A, on, ")
    assert "YAML reads on/off/yes/no/true/false as booleans" in problems(booly)[0]
    assert problems("name: [unclosed\n")[0].startswith("s.yaml:2:1: not valid YAML")
    assert problems("- a list\n") == [
        "s.yaml:1:1: a scenario is a mapping of keys "
        "(schema_version, name, engine, prompts, steps, ...)"
    ]
    assert problems(BASE.replace("schema_version: 1", "schema_version: 2")) == [
        "s.yaml:1:17: schema_version: this kvverify reads schema_version 1, not 2"
    ]


def test_match_predicted_names_known_metrics() -> None:
    text = BASE + "expect: [{matches: predicted, metrics: [reused_blocs]}]\n"
    (msg,) = problems(text)
    assert "cannot compare 'reused_blocs' with the model (did you mean 'reused_blocks'?)" in msg


def test_prompt_files_are_read_relative_to_the_scenario(tmp_path: Path) -> None:
    (tmp_path / "p.txt").write_text("from a file")
    path = tmp_path / "s.yaml"
    path.write_text(BASE.replace("A: some text", "A: {file: p.txt}"))
    (v,) = load(path).variants.values()
    assert v.prompt_text("A") == "from a file"


def test_missing_scenario_file_and_unknown_variant(tmp_path: Path) -> None:
    with pytest.raises(KvverifyError, match="no such file"):
        load(tmp_path / "none.yaml")
    s = loads(BASE)
    with pytest.raises(KvverifyError, match="no variant 'defualt' \\(did you mean 'default'\\?\\)"):
        s.select(["defualt"])


def test_pass_through_keys_cannot_override_what_kvverify_reads() -> None:
    # A typed key repeated under args/extra would silently win over the one the reference
    # model and the checks read; the log level and sampling n would break the checks.
    text = (
        BASE.replace(
            "  kv_cache: {max_tokens: 256, tokens_per_block: 16}\n",
            "  args: {max_batch_size: 8, kv_cache_config: {}}\n"
            "  env: {TLLM_LOG_LEVEL: INFO, CUDA_VISIBLE_DEVICES: '1'}\n"
            "  kv_cache: {max_tokens: 256, tokens_per_block: 16, extra: {host_cache_size: 0}}\n",
        )
        + "sampling: {max_tokens: 4, args: {n: 2}}\n"
    )
    assert problems(text) == [
        "s.yaml:6:9: engine.args: 'max_batch_size' is a key of its own: write it as "
        "engine.max_batch_size, not under args",
        "s.yaml:7:8: engine.env: TLLM_LOG_LEVEL cannot be set here: kvverify sets it to DEBUG: "
        "the checks need TensorRT-LLM's DEBUG lines",
        "s.yaml:8:60: engine.kv_cache.extra: 'host_cache_size' is a key of its own: write it "
        "as engine.kv_cache.host_cache_size, not under extra",
        "s.yaml:15:33: sampling.args: n: 2: each step is one request with one sequence, which "
        "the checks map to TensorRT-LLM's request ids; leave it at 1",
    ]


def test_names_become_file_names() -> None:
    # "v\n" too: a pattern ending in $ would let a trailing newline through.
    text = (
        BASE.replace("name: t", "name: ../t") + 'variants:\n  "../x": {}\n  "v\\n": {}\n  ok: {}\n'
    )
    assert problems(text) == [
        "s.yaml:2:7: name: '../t': names become file and directory names: use letters, "
        "digits, '_', '.' and '-', starting with a letter or digit",
        "s.yaml:14:3: variants: variant name '../x', 'v\\n': names become file and directory "
        "names: use letters, digits, '_', '.' and '-', starting with a letter or digit",
    ]


def test_steps_in_expectations_exist_and_repeat_is_bounded() -> None:
    text = BASE + "expect: ['step[7].reused_tokens > 0', 'step[6].reused_tokens >= 0']\n"
    assert problems(text) == [
        "s.yaml:13:10: expect[0]: step[7].reused_tokens > 0: there is no step 7 (the scenario "
        "has 6 steps, numbered from 1)"
    ]
    nested = BASE.replace(
        "{repeat: 2, steps: [C, D]}", "{repeat: 1000, steps: [{repeat: 1000, steps: [C]}]}"
    )
    assert problems(nested) == [
        "s.yaml:12:8: steps: the steps expand to 1,000,002 requests; a variant runs at most "
        "10,000 (lower a repeat)"
    ]


BOMB = "\n".join(
    [f"a: &a [{', '.join(['lol'] * 9)}]"]
    + [
        f"{name}: &{name} [{', '.join(['*' + prev] * 9)}]"
        for prev, name in zip("abcdefgh", "bcdefghi", strict=True)
    ]
)


@pytest.mark.parametrize(
    ("text", "where", "what"),
    [
        (BOMB, ":6:4:", "the YAML aliases here expand to more than 200,000 values"),
        ("a: " + "[" * 20_000 + "]" * 20_000, ":1:67:", "nested more than 64 levels deep"),
        (
            "\n".join(["a0: &a0 [1]"] + [f"a{i}: &a{i} [*a{i - 1}]" for i in range(1, 200)]),
            ":64:6:",
            "the YAML aliases here nest more than 64 levels deep",
        ),
        ("x: &r [*r]", ":1:4:", "a YAML alias here refers to itself"),
    ],
)
def test_a_hostile_scenario_is_refused_quickly_with_its_place(
    tmp_path: Path, text: str, where: str, what: str
) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_text(text)
    started = time.monotonic()
    with pytest.raises(ScenarioError) as info:
        load(path)
    assert time.monotonic() - started < 1.0
    (problem,) = info.value.problems
    assert problem.startswith(f"{path}{where} {what}"), problem


def test_an_expression_is_quoted_short_in_its_error(tmp_path: Path) -> None:
    from kvverify.errors import ExpressionError
    from kvverify.expect import parse

    with pytest.raises(ExpressionError) as info:
        parse("reused_blocks > 0 " + "x" * 60_000)
    assert len(info.value.render()) < 400


def test_a_conversation_needs_a_turn_before_it_and_token_ids_all_along() -> None:
    base = (
        "schema_version: 1\nname: chat\nengine: {model: Qwen/Qwen3-8B}\n"
        "prompts: {A: {tokens: [1, 2, 3]}, T: some text}\n"
    )
    with pytest.raises(ScenarioError) as info:
        loads(base + "steps: [{prompt: A, continues: true}]\n", "c.yaml")
    assert "the first step has no conversation to continue" in info.value.render()
    with pytest.raises(ScenarioError) as info:
        loads(base + "steps: [T, {prompt: A, continues: true}]\n", "c.yaml")
    assert "prompt 'T' must be token ids" in info.value.render()
    ok = loads(base + "steps: [A, {prompt: A, continues: true}]\n", "c.yaml")
    assert [s.continues for s in ok.variants["default"].steps] == [False, True]
    assert ok.variants["default"].prompt_lengths() == (3, None)  # the answer decides


def test_baseline_tolerances_are_validated() -> None:
    base = (
        "schema_version: 1\nname: s\nengine: {model: Qwen/Qwen3-8B}\n"
        "prompts: {A: {tokens: [1, 2, 3]}}\nsteps: [A]\n"
    )
    good = loads(base + "baseline: {tolerance: {cache_hit_rate: 0.02, latency_ms: 10%}}\n")
    assert good.variants["default"].tolerance == {"cache_hit_rate": "0.02", "latency_ms": "10%"}
    for bad, message in (
        ("{cache_hit_rte: 0.02}", "no metric 'cache_hit_rte' (did you mean 'cache_hit_rate'?)"),
        ("{cache_hit_rate: lots}", "tolerance 'lots' for cache_hit_rate is not a number"),
    ):
        with pytest.raises(ScenarioError) as info:
            loads(base + f"baseline: {{tolerance: {bad}}}\n", "s.yaml")
        assert message in info.value.render()
