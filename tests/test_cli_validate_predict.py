"""``kvverify validate`` and ``kvverify predict``."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import Run

ROOT = Path(__file__).resolve().parent.parent


def test_validate_every_shipped_scenario(run: Run) -> None:
    files = sorted(str(p) for p in (ROOT / "scenarios").glob("*.yaml"))
    assert files
    r = run("validate", *files)
    assert r.code == 0, r.err
    assert "abab.yaml: ok: abab: offload_off (4 steps), offload_on (4 steps)" in r.out


def test_validate_reports_located_errors_and_exits_2(run: Run, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nengine: {modle: m}\nprompts: {A: a}\nsteps: [A]\n")
    good = ROOT / "scenarios" / "abab.yaml"
    r = run("validate", str(good), str(bad))
    assert r.code == 2
    assert "abab.yaml: ok" in r.out
    assert f"{bad}:2:10: engine.modle: unknown key (did you mean 'model'?)" in r.err
    assert f"{bad}:2:9: engine.model: required key is missing" in r.err


def test_predict_explains_the_seed(run: Run) -> None:
    r = run("predict")
    assert r.code == 0
    assert "variant offload_off" in r.out
    assert "GPU pool 16 blocks, host pool 0 blocks" in r.out
    assert "host pool 455 blocks" in r.out
    assert "text prompts are tokenized approximately" in r.out
    data = json.loads(run("predict", "--format", "json").out)
    off, on = data["variants"]
    assert [s["reused_tokens"] for s in off["steps"]] == [0, 0, 0, 0]
    assert [s["reused_tokens"] > 0 for s in on["steps"]] == [False, False, True, True]
    assert on["steps"][2]["onboarded_blocks"] >= 1
    assert on["capacity"]["secondary_blocks"] == 455


def test_predict_in_an_older_era_stores_dummies(run: Run) -> None:
    r = run("predict", "--dialect", "2025mid", "--variant", "offload_on", "--format", "json")
    assert r.code == 0
    assert json.loads(r.out)["variants"][0]["dialect"] == "2025mid"


def test_matches_predicted_without_a_prediction_is_not_analyzable(run: Run, tmp_path: Path) -> None:
    # The model cannot predict an unknown model's pools: the comparison the scenario asks for
    # must say so, never vanish and leave the other checks to pass.
    text = (ROOT / "scenarios" / "abab.yaml").read_text()
    text = text.replace("model: Qwen/Qwen3-8B", "model: acme/unknown-model")
    text = text.replace(
        "steps: [A, B, A, B]\n", "steps: [A, B, A, B]\nexpect: [{matches: predicted}]\n"
    )
    scenario = tmp_path / "s.yaml"
    scenario.write_text(text)
    log = ROOT / "golden_logs" / "abab-1.2-offload_on.log"
    r = run(
        "check",
        "--format",
        "json",
        "--scenario",
        str(scenario),
        "--variant",
        "offload_on",
        str(log),
    )
    (report,) = json.loads(r.out)["logs"]
    assert r.code == 2
    (match,) = [c for c in report["checks"] if "matches predicted" in c["expression"]]
    assert match["status"] == "not_analyzable"
    assert "does not know the shape" in match["reason"]


def test_a_model_run_matches_its_prediction(run: Run, tmp_path: Path) -> None:
    text = (ROOT / "scenarios" / "abab.yaml").read_text()
    text = text.replace(
        "steps: [A, B, A, B]\n", "steps: [A, B, A, B]\nexpect: [{matches: predicted}]\n"
    )
    scenario = tmp_path / "s.yaml"
    scenario.write_text(text)
    r = run("run", str(scenario), "--engine", "sim", "--out", str(tmp_path), "--format", "json")
    assert r.code == 0, r.out
    for log in json.loads(r.out)["logs"]:
        matched = [c for c in log["checks"] if c["expression"].endswith("matches predicted")]
        assert matched
        assert {c["status"] for c in matched} == {"pass"}
    again = run("check", str(tmp_path / "offload_on.log"))  # the prediction travels in the log
    assert again.code == 0
    assert "matches predicted" in again.out
