"""The upgrade gate: baselines saved from logs and runs, ``kvverify compare``, and drift
checks with ``--baseline``: what a CI job decides an upgrade by."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from conftest import Run

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = ROOT / "golden_logs"
ENABLED = GOLDEN / "offloading_enabled.log"
DISABLED = GOLDEN / "offloading_disabled.log"
COMPARE_SCHEMA = json.loads(
    (Path(__file__).resolve().parent.parent / "docs" / "compare-report.schema.json").read_text()
)


def findings(out: str) -> list[dict[str, Any]]:
    data = json.loads(out)
    jsonschema.validate(data, COMPARE_SCHEMA)
    return data["findings"]  # type: ignore[no-any-return]


@pytest.fixture
def baseline(run: Run, tmp_path: Path) -> Path:
    path = tmp_path / "baseline.json"
    r = run("check", "--save-baseline", str(path), str(ENABLED))
    assert r.code == 0, r.err  # the log's own checks decide the exit code
    return path


def test_a_baseline_is_small_deterministic_and_names_what_produced_it(
    run: Run, baseline: Path, tmp_path: Path
) -> None:
    again = tmp_path / "again.json"
    run("check", "--save-baseline", str(again), str(ENABLED))
    assert again.read_bytes() == baseline.read_bytes()
    data = json.loads(baseline.read_text())
    assert (data["schema"], data["schema_version"]) == ("kvverify/baseline", 1)
    (entry,) = data["entries"].values()
    assert entry["engine"]["name"] == "sim"
    assert entry["era"] == "1.2"
    assert {"addSequence", "copyBlock", "summary"} <= set(entry["families"])
    assert entry["metrics"]["reused_tokens"] == 53
    assert entry["requests"]["4"]["reused_tokens"] == 24
    assert "nan" not in baseline.read_text()


def test_a_log_whose_reuse_dropped_fails_naming_the_metric_and_the_request(
    run: Run, baseline: Path
) -> None:
    r = run("compare", str(baseline), str(DISABLED), "--format", "json")
    assert r.code == 1
    failed = {f["name"]: f for f in findings(r.out) if f["status"] == "fail"}
    assert failed["reused_blocks"]["old"] == 4
    assert failed["reused_blocks"]["new"] == 0
    assert failed["request[4].reused_tokens"]["message"] == "request 4 reused 24 tokens, now 0"
    table = run("compare", str(baseline), str(DISABLED))
    assert "request 4 reused 24 tokens, now 0" in table.out
    assert "verdict: FAIL" in table.out


def test_an_identical_log_passes(run: Run, baseline: Path) -> None:
    r = run("compare", str(baseline), str(ENABLED), "--format", "json")
    assert r.code == 0, r.out
    assert {f["status"] for f in findings(r.out)} == {"pass"}


def test_the_same_numbers_in_another_format_era_pass_and_the_era_change_is_reported(
    run: Run,
) -> None:
    old, new = GOLDEN / "abab-1.2-offload_on.log", GOLDEN / "abab-2026-offload_on.log"
    r = run("compare", str(old), str(new), "--format", "json")
    assert r.code == 0, r.out
    (era,) = [f for f in findings(r.out) if f["kind"] == "era"]
    assert (era["old"], era["new"], era["status"]) == ("1.2", "2026", "note")


def test_a_log_that_lost_its_per_request_lines_fails(
    run: Run, baseline: Path, tmp_path: Path
) -> None:
    lost = tmp_path / "lost.log"
    lost.write_text(
        "".join(
            ln for ln in ENABLED.read_text().splitlines(keepends=True) if "addSequence" not in ln
        )
    )
    r = run("compare", str(baseline), str(lost), "--format", "json")
    assert r.code == 1
    failed = [f for f in findings(r.out) if f["status"] == "fail"]
    assert any(f["kind"] == "family" and f["name"] == "addSequence" for f in failed)


def test_tolerances_from_the_command_line(run: Run, baseline: Path, tmp_path: Path) -> None:
    # a hit rate 0.01 lower: fails by default, passes within 0.02, fails beyond 0.005
    text = ENABLED.read_text().replace(
        "cache hit rate:                      0.16", "cache hit rate:                      0.15"
    )
    lower = tmp_path / "lower.log"
    lower.write_text(text)
    assert run("compare", str(baseline), str(lower)).code == 1
    assert run("compare", str(baseline), str(lower), "--tolerance", "cache_hit_rate=0.02").code == 0
    assert run("compare", str(baseline), str(lower), "--tolerance", "cache_hit_rate=10%").code == 0
    assert (
        run("compare", str(baseline), str(lower), "--tolerance", "cache_hit_rate=0.005").code == 1
    )
    bad = run("compare", str(baseline), str(lower), "--tolerance", "cache_hit_rte=0.02")
    assert bad.code == 2
    assert "did you mean 'cache_hit_rate'" in bad.err


def test_an_improvement_is_a_note_not_a_failure(run: Run, tmp_path: Path) -> None:
    old = tmp_path / "off.json"
    run("check", "-e", "no-reuse", "--save-baseline", str(old), str(DISABLED))
    r = run("compare", str(old), str(ENABLED), "--format", "json")
    assert r.code == 0, r.out
    reused = next(f for f in findings(r.out) if f["name"] == "reused_blocks")
    assert (reused["status"], reused["delta"]) == ("note", 4)


def test_the_models_baseline_against_a_tensorrt_llm_log_is_not_comparable(
    run: Run, baseline: Path, tmp_path: Path
) -> None:
    trtllm = tmp_path / "trtllm.log"  # the same lines without the model's mark
    trtllm.write_text(
        "".join(
            ln for ln in ENABLED.read_text().splitlines(keepends=True) if '"t":"model"' not in ln
        )
    )
    r = run("compare", str(baseline), str(trtllm), "--format", "json")
    assert r.code == 2
    data = json.loads(r.out)
    assert data["verdict"] == "not_comparable"
    assert "a model-made baseline says nothing about a TensorRT-LLM run" in data["reason"]
    table = run("compare", str(baseline), str(trtllm))
    assert "NOT COMPARABLE" in table.out


def test_check_with_a_baseline_adds_drift_checks(run: Run, baseline: Path) -> None:
    same = run("check", "--baseline", str(baseline), str(ENABLED), "--format", "json")
    assert same.code == 0
    checks = json.loads(same.out)["logs"][0]["checks"]
    assert {c["source"] for c in checks} == {"default", "baseline"}
    worse = run("check", "-e", "no-reuse", "--baseline", str(baseline), str(DISABLED))
    assert worse.code == 1  # its own checks pass; the drift checks fail
    assert "reused_blocks vs baseline" in worse.out


def test_every_report_format_of_a_comparison(run: Run, baseline: Path, tmp_path: Path) -> None:
    files = {k: tmp_path / f"r.{k}" for k in ("json", "xml", "md")}
    r = run(
        "compare",
        str(baseline),
        str(DISABLED),
        "--json",
        str(files["json"]),
        "--junit",
        str(files["xml"]),
        "--markdown",
        str(files["md"]),
    )
    assert r.code == 1
    findings(files["json"].read_text())
    junit = files["xml"].read_text()
    assert 'failures="' in junit
    assert "request 4 reused 24 tokens, now 0" in junit
    md = files["md"].read_text()
    assert "| ❌ | `reused_blocks` | 4 | 0 | -4 | 0 |" in md  # old, new, delta, tolerance


def test_a_run_directory_is_a_side_and_run_saves_and_checks_baselines(
    run: Run, tmp_path: Path
) -> None:
    base = tmp_path / "abab.json"
    first = run(
        "run", "--engine", "sim", "--out", str(tmp_path / "a"), "--save-baseline", str(base)
    )
    assert first.code == 0, first.err
    assert sorted(json.loads(base.read_text())["entries"]) == [
        "abab/offload_off",
        "abab/offload_on",
    ]
    second = run("run", "--engine", "sim", "--out", str(tmp_path / "b"), "--baseline", str(base))
    assert second.code == 0, second.err
    assert "vs baseline" in second.out
    assert run("compare", str(base), str(tmp_path / "b")).code == 0
    assert run("compare", str(tmp_path / "a"), str(tmp_path / "b")).code == 0


def test_bad_sides_are_one_message(run: Run, tmp_path: Path) -> None:
    broken = tmp_path / "b.json"
    broken.write_text('{"schema": "kvverify/baseline", "schema_version": 1, "entries": []}')
    r = run("compare", str(broken), str(ENABLED))
    assert r.code == 2
    assert r.err.startswith(f"kvverify: {broken}: not a kvverify baseline")
    empty = tmp_path / "empty"
    empty.mkdir()
    r = run("compare", str(empty), str(ENABLED))
    assert r.code == 2
    assert "holds no logs" in r.err
    assert run("compare", str(tmp_path / "nope.json"), str(ENABLED)).code == 2


def test_another_variant_is_not_comparable(run: Run, tmp_path: Path) -> None:
    off, on = GOLDEN / "abab-1.2-offload_off.log", GOLDEN / "abab-1.2-offload_on.log"
    r = run("compare", str(off), str(on), "--format", "json")
    assert r.code == 2
    assert "another variant (offload_off vs offload_on)" in json.loads(r.out)["reason"]
    base = tmp_path / "off.json"
    run("check", "--save-baseline", str(base), str(off))
    drift = run("check", "--baseline", str(base), str(on), "--format", "json")
    assert drift.code == 2  # never compared with the other variant's numbers
    (check,) = [c for c in json.loads(drift.out)["logs"][0]["checks"] if c["source"] == "baseline"]
    assert check["status"] == "not_analyzable"


def test_each_variant_keeps_its_own_tolerances_in_the_baseline(run: Run, tmp_path: Path) -> None:
    scenario = tmp_path / "abab.yaml"
    text = (ROOT / "scenarios" / "abab.yaml").read_text()
    scenario.write_text(
        text.replace(
            "      - cache_hit_rate > 0\n",
            "      - cache_hit_rate > 0\n    baseline: {tolerance: {cache_hit_rate: 0.05}}\n",
        )
        + "baseline: {tolerance: {latency_ms: 10%}}\n"
    )
    base = tmp_path / "b.json"
    r = run("run", str(scenario), "--engine", "sim", "--out", str(tmp_path / "o"))
    assert r.code == 0, r.err
    run(
        "check",
        "--save-baseline",
        str(base),
        "--scenario",
        str(scenario),
        "--variant",
        "offload_on",
        str(tmp_path / "o" / "offload_on.log"),
    )
    on = json.loads(base.read_text())["entries"]["abab/offload_on"]
    assert on["tolerance"] == {"cache_hit_rate": "0.05", "latency_ms": "10%"}
    both = tmp_path / "both.json"
    run(
        "run",
        str(scenario),
        "--engine",
        "sim",
        "--out",
        str(tmp_path / "p"),
        "--save-baseline",
        str(both),
    )
    entries = json.loads(both.read_text())["entries"]
    assert entries["abab/offload_on"]["tolerance"] == {
        "cache_hit_rate": "0.05",
        "latency_ms": "10%",
    }
    assert entries["abab/offload_off"]["tolerance"] == {"latency_ms": "10%"}


def test_a_side_that_is_not_a_baseline_is_never_read_as_a_log_without_evidence(
    run: Run, baseline: Path, tmp_path: Path
) -> None:
    """What a reviewer found passing in silence: a compressed, BOM-prefixed, re-sorted or
    wrong-kind JSON file read as a log with no evidence, and every number then "appearing"."""
    data = json.loads(baseline.read_text())
    bom = tmp_path / "bom.json"
    bom.write_text("\ufeff" + json.dumps(data, sort_keys=True, indent=1))  # schema past 4 KB
    assert run("compare", str(bom), str(DISABLED)).code == 1  # read as the baseline it is
    report = tmp_path / "report.json"
    run("check", "--json", str(report), str(ENABLED))
    r = run("compare", str(report), str(DISABLED))
    assert r.code == 2
    assert "it is a kvverify/check-report, not a baseline" in r.err
    gz = tmp_path / "b.json.gz"
    gz.write_bytes(gzip.compress(baseline.read_bytes()))
    junk = tmp_path / "junk.log"
    junk.write_text("hello\n")
    for old, new in ((gz, DISABLED), (junk, junk)):
        r = run("compare", str(old), str(new), "--format", "json")
        assert r.code == 2, r.out
        assert "shows no reuse at all" in json.loads(r.out)["reason"]


def test_baseline_and_save_baseline_cannot_be_the_same_file(run: Run, baseline: Path) -> None:
    before = baseline.read_bytes()
    r = run("check", "--baseline", str(baseline), "--save-baseline", str(baseline), str(DISABLED))
    assert r.code == 2
    assert "name the same file" in r.err
    assert baseline.read_bytes() == before


def test_a_baseline_is_saved_only_from_checks_that_pass(run: Run, tmp_path: Path) -> None:
    path = tmp_path / "new" / "dir" / "b.json"  # its directory is made
    r = run("check", "--save-baseline", str(path), str(DISABLED))  # "reuse happened" fails
    assert r.code == 1
    assert not path.exists()
    assert "baseline-not-saved" in r.out
    assert run("check", "-e", "no-reuse", "--save-baseline", str(path), str(DISABLED)).code == 0
    assert path.is_file()


def test_a_run_that_saves_no_baseline_still_shows_its_drift(
    run: Run, baseline: Path, tmp_path: Path
) -> None:
    new = tmp_path / "new.json"
    r = run("check", "--baseline", str(baseline), "--save-baseline", str(new), str(DISABLED))
    assert r.code == 1
    assert not new.exists()
    assert "baseline-not-saved" in r.out
    assert "reused_blocks vs baseline" in r.out


def test_a_drop_on_another_rank_fails(run: Run, tmp_path: Path) -> None:
    tp2 = GOLDEN / "tp2-2026.log"
    base = tmp_path / "tp2.json"
    run("check", "--save-baseline", str(base), str(tp2))
    lines = tp2.read_text().splitlines(keepends=True)
    rank1 = [i for i, ln in enumerate(lines) if "[RANK 1]" in ln and " - reused blocks:" in ln][-1]
    lines[rank1] = lines[rank1].replace(
        "reused blocks:                       4", "reused blocks:                       1"
    )
    worse = tmp_path / "tp2.log"
    worse.write_text("".join(lines))
    r = run("compare", str(base), str(worse), "--format", "json")
    assert r.code == 1, r.out
    failed = {f["name"] for f in findings(r.out) if f["status"] == "fail"}
    assert "rank[1].reused_blocks" in failed


def test_two_logs_of_one_name_are_two_entries(run: Run, tmp_path: Path) -> None:
    for name, log in (("a", ENABLED), ("b", DISABLED)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "run.log").write_bytes(log.read_bytes())
    base = tmp_path / "two.json"
    run(
        "check",
        "-e",
        "errors == 0",
        "--save-baseline",
        str(base),
        *(str(tmp_path / n / "run.log") for n in "ab"),
    )
    entries = json.loads(base.read_text())["entries"]
    assert len(entries) == 2
    assert {e["metrics"]["reused_blocks"] for e in entries.values()} == {0, 4}


def test_two_logs_of_one_name_are_checked_against_their_own_entries(
    run: Run, tmp_path: Path
) -> None:
    logs = []
    for name, log in (("a", ENABLED), ("b", DISABLED)):
        (tmp_path / name).mkdir()
        logs.append(tmp_path / name / "run.log")
        logs[-1].write_bytes(log.read_bytes())
    base = tmp_path / "two.json"
    run("check", "-e", "errors == 0", "--save-baseline", str(base), *map(str, logs))
    r = run("check", "-e", "errors == 0", "--baseline", str(base), *map(str, logs))
    assert r.code == 0, r.out


def test_infinite_values_keep_the_comparison_strict_json(run: Run, tmp_path: Path) -> None:
    text = ENABLED.read_text().replace(
        "reused unique blocks percentage (%): 12.90", "reused unique blocks percentage (%): inf"
    )
    inf = tmp_path / "inf.log"
    inf.write_text(text)
    base = tmp_path / "inf.json"
    run("check", "--save-baseline", str(base), str(inf))
    r = run("compare", str(base), str(ENABLED), "--format", "json")
    found = {f["name"]: f for f in findings(r.out)}  # schema-valid: delta a number or null
    assert found["reused_unique_blocks_percent"]["delta"] is None
    assert r.code == 1  # inf -> 12.9 is a drop


def test_tolerances_are_numbers_of_any_notation_but_not_negative(run: Run, baseline: Path) -> None:
    ok = run("compare", str(baseline), str(ENABLED), "--tolerance", "cache_hit_rate=1e-5")
    assert ok.code == 0
    for bad, why in (
        ("-1", "is negative"),
        ("nan", "is not a number"),
        ("1e999", "is not a number"),
    ):
        r = run("compare", str(baseline), str(ENABLED), "--tolerance", f"cache_hit_rate={bad}")
        assert r.code == 2
        assert why in r.err
