"""The scenario library: every shipped scenario validates, runs on the reference model and
meets its own expectations, and shows what the README says it proves."""

from __future__ import annotations

from pathlib import Path

import pytest

from kvverify import markers
from kvverify.check import Inputs, check_events
from kvverify.engines.sim.engine import SimEngine
from kvverify.evidence.parse import parse_bytes
from kvverify.result import LogReport
from kvverify.run import plan_for
from kvverify.runner import worker
from kvverify.scenario import load

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = sorted((ROOT / "scenarios").glob("*.yaml"))
README = (ROOT / "README.md").read_text()


def recorded(path: Path, variant: str) -> LogReport:
    """What ``kvverify run PATH --engine sim --variant V`` writes and checks, in-process."""
    scenario = load(path)
    lines: list[str] = []
    plan = plan_for(scenario, scenario.variants[variant], "sim", None)
    engine = SimEngine(out=lines.append)
    worker.run(plan, emit=lambda record: lines.append(markers.encode(record)), engine=engine)
    lines.append(markers.encode(markers.Exit(status="ok", returncode=0)))
    return check_events(parse_bytes("".join(lines).encode()), f"{variant}.log", Inputs())


CASES = [(p, v) for p in SCENARIOS for v in load(p).variants]


@pytest.mark.parametrize(("path", "variant"), CASES, ids=[f"{p.name}::{v}" for p, v in CASES])
def test_every_shipped_scenario_meets_its_expectations_on_the_model(
    path: Path, variant: str
) -> None:
    log = recorded(path, variant)
    assert log.verdict == "pass", [(c.expression, c.observed, c.reason) for c in log.checks]
    assert log.checks


def test_there_is_a_scenario_for_each_thing_the_library_proves() -> None:
    names = {p.stem for p in SCENARIOS}
    assert {
        "abab",
        "system-prompt",
        "multi-turn",
        "short-prefix",
        "partial-reuse",
        "eviction-priority",
        "offload-priority",
        "tp2",
    } <= names
    for name in names:
        assert f"scenarios/{name}.yaml" in README, f"say in the README what {name} proves"


def test_multi_turn_reuses_the_history_up_to_its_last_token() -> None:
    # prompt + answer - 1: the boundary releaseBlocks draws (one token fewer would be 122)
    steps = {
        s.step: s.reused_tokens
        for s in recorded(ROOT / "scenarios" / "multi-turn.yaml", "default").steps
    }
    assert steps == {1: 0, 2: 123, 3: 177, 4: 231}


def test_a_prompt_shorter_than_a_block_is_diagnosed() -> None:
    log = recorded(ROOT / "scenarios" / "short-prefix.yaml", "whole_blocks")
    d = next(d for d in log.diagnoses if d.code == "prompt-too-short")
    assert "the longest 12 tokens, with 16 tokens per block" in d.detail
    other = recorded(ROOT / "scenarios" / "short-prefix.yaml", "partial_reuse")
    assert "prompt-too-short" not in {d.code for d in other.diagnoses}


def test_tensor_parallel_ranks_each_show_their_evidence() -> None:
    log = recorded(ROOT / "scenarios" / "tp2.yaml", "default")
    assert log.ranks == (0, 1)
    finals = [s for s in log.summaries if s.rank is not None and s.segment > 0]
    assert sorted(s.rank for s in finals) == [0, 1]  # rank is not None
    assert len({s.reused_blocks for s in finals}) == 1  # the same decisions on both ranks
