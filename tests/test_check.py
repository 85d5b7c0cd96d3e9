"""Checking a log: verdicts, where each value comes from, and never passing in silence."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from logmaker import WINDOW, Manager, Req, counters_of, seed_log, write_manager

from kvverify import markers
from kvverify.check import Inputs, StepPlan, check_events, report
from kvverify.engines.sim.dialects import DIALECTS, LogWriter
from kvverify.evidence.parse import parse_bytes
from kvverify.expect import parse_all
from kvverify.report import to_json
from kvverify.result import LogReport


def check(text: str, *expectations: str, steps: StepPlan | None = None) -> LogReport:
    inputs = Inputs(expectations=parse_all(expectations), steps=steps)
    return check_events(parse_bytes(text.encode()), "test.log", inputs)


def statuses(report: LogReport) -> dict[str, tuple[str, float | None]]:
    return {c.expression: (c.status, c.observed) for c in report.checks}


def codes(report: LogReport) -> set[str]:
    return {d.code for d in report.diagnoses}


def test_default_expectation_is_reuse_happened() -> None:
    r = check(seed_log("1.2"))
    assert r.verdict == "pass"
    assert statuses(r) == {"reused_blocks > 0": ("pass", 4.0), "cache_hit_rate > 0": ("pass", 0.5)}
    assert {c.source for c in r.checks} == {"default"}


def test_no_reuse_fails_with_a_named_cause_and_passes_the_negative_control() -> None:
    off = seed_log("1.2", reuse=False)
    r = check(off)
    assert r.verdict == "fail"
    assert {c.diagnosis for c in r.checks} == {"no-host-pool"}
    assert "no-host-pool" in codes(r)
    assert check(off, "no-reuse").verdict == "pass"


def test_the_checks_read_the_final_manager_not_the_estimation_pass() -> None:
    r = check(seed_log("1.2"), "missed_blocks == 4", "allocated_total_blocks == 8")
    assert r.verdict == "pass"
    final = [s for s in r.summaries if s.final]
    assert len(final) == 1
    assert final[0].segment == 1
    assert [s.estimation for s in r.summaries] == [True, False]


def test_requests_but_no_summary_is_not_analyzable_never_a_pass_or_zero() -> None:
    r = check(seed_log("1.2", summary=False))
    assert r.verdict == "not_analyzable"
    for c in r.checks:
        assert c.status == "not_analyzable"
        assert c.observed is None
        assert c.diagnosis == "no-summary"
        assert "died or was killed before shutdown" in c.reason
    assert "no-summary" in codes(r)
    # ...although the estimation manager did print a summary
    assert [s.segment for s in r.summaries] == [0]


def test_no_debug_lines() -> None:
    text = "[TensorRT-LLM][INFO] Number of tokens per block: 16.\nhello\n"
    r = check(text)
    assert r.verdict == "not_analyzable"
    assert {c.diagnosis for c in r.checks} == {"no-debug-lines"}
    d = next(d for d in r.diagnoses if d.code == "no-debug-lines")
    assert "INFO lines from line 1" in d.detail
    assert "TLLM_LOG_LEVEL=DEBUG" in d.hint


def test_kv_cache_manager_v2() -> None:
    text = (
        "[05/14/2026-07:06:30] [TRT-LLM] [I] [llmapi] Resolved use_kv_cache_manager_v2='auto' to "
        "%s for %s True LlamaForCausalLM\n"
        "[TRT-LLM] [D] [batchmgr] some V2 debug line\n"
    )
    r = check(text)
    assert r.verdict == "not_analyzable"
    assert {c.diagnosis for c in r.checks} == {"kv-cache-manager-v2"}
    assert "use_kv_cache_manager_v2=False" in next(
        d.hint for d in r.diagnoses if d.code == "kv-cache-manager-v2"
    )


def test_3_line_summary_has_no_hit_rate() -> None:
    r = check(seed_log("2024a"))
    assert statuses(r) == {
        "reused_blocks > 0": ("pass", 4.0),
        "cache_hit_rate > 0": ("not_analyzable", None),
    }
    assert r.verdict == "not_analyzable"
    assert "summary-without-hit-rate" in codes(r)


def test_empty_log() -> None:
    r = check("")
    assert r.verdict == "not_analyzable"
    assert codes(r) == {"empty-log"}


def test_offload_metrics_from_copy_lines_and_their_absence() -> None:
    # A, B, A, B: the second A and B each onboard one block and copy one partial block; the
    # partial copies are copyBlock isOffload=false lines too, and are not onboards.
    r = check(seed_log("1.2"), "offloaded_blocks == 0", "onboarded_blocks == 2")
    assert r.verdict == "pass", r.checks
    # 2025mid has no copyBlock lines: the number is unknown, not 0 ...
    r = check(seed_log("2025mid"), "onboarded_blocks > 0")
    assert statuses(r) == {"onboarded_blocks > 0": ("not_analyzable", None)}
    assert r.checks[0].diagnosis == "no-offload-evidence"
    # ... unless the manager has no host pool: then nothing can be offloaded.
    r = check(seed_log("2025mid", reuse=False), "offloaded_blocks == 0")
    assert r.verdict == "pass"


def test_request_metrics_and_unknown_ids() -> None:
    r = check(
        seed_log("1.2"),
        "request[3].reused_tokens == 26",
        "request[3].reused_blocks == 2",
        "request[3].partial_reused_blocks == 1",
        "request[1].missed_blocks == 2",
        "request[3].onboarded_blocks == 1",
        "request[3].stored_blocks == 16",
        "request[3].cache_hit_rate == 1",
        "request[99].reused_tokens > 0",
    )
    st = statuses(r)
    assert st.pop("request[99].reused_tokens > 0") == ("not_analyzable", None)
    assert all(s == "pass" for s, _ in st.values()), st
    missing = next(c for c in r.checks if "99" in c.expression)
    assert missing.diagnosis == "request-not-found"
    assert "ids: 1, 2, 3, 4" in missing.reason


def test_request_block_counts_are_derived_when_no_per_block_lines() -> None:
    text = (
        "[TensorRT-LLM][INFO] Number of tokens per block: 16.\n"
        "[TensorRT-LLM][DEBUG] addSequence: Request 5, inputLength 40, prepopulatedPromptLen 20\n"
    )
    r = check(
        text,
        "request[5].reused_blocks == 2",
        "request[5].partial_reused_blocks == 1",
        "request[5].missed_blocks == 1",
    )
    assert r.verdict == "pass", r.checks


def test_steps_need_a_scenario_or_markers() -> None:
    r = check(seed_log("1.2"), "step[3].reused_tokens > 0")
    assert r.checks[0].status == "not_analyzable"
    assert r.checks[0].diagnosis == "no-step-mapping"
    plan = StepPlan(prompt_lengths=(27, 25, 27, 25), max_batch_size=1)
    r = check(
        seed_log("1.2"),
        "step[1].reused_tokens == 0",
        "step[3].reused_tokens > 0",
        "step[4].reused_tokens == 24",
        steps=plan,
    )
    assert r.verdict == "pass", r.checks
    assert [q.step for q in r.requests if q.segment == 1] == [1, 2, 3, 4]


def test_step_mapping_without_max_batch_size_takes_the_last_requests() -> None:
    lines: list[str] = []
    w = LogWriter(DIALECTS["1.2"], lines.append)
    warmup = Req(0, 255, ["missed"] * 16, 0)
    real = [Req(10 + i, 27, ["missed", "missed"], 0) for i in range(2)]
    write_manager(w, Manager(requests=[warmup, *real]))
    r = check("".join(lines), "step[1].input_length == 27", steps=StepPlan((27, 27)))
    assert r.verdict == "pass"
    assert [q.step for q in r.requests] == [None, 1, 2]


def test_warmup_dummies_reusing_blocks_are_flagged() -> None:
    lines: list[str] = []
    w = LogWriter(DIALECTS["2025mid"], lines.append)
    dummies = [Req(0, 64, ["missed"] * 4, 0), Req(0, 64, ["matched"] * 3 + ["missed"], 48)]
    reqs = [*dummies, Req(1, 27, ["missed", "missed"], 0)]
    write_manager(w, Manager(requests=reqs))
    run = markers.Run(scenario="s", variant="v", engine="trtllm", expect=("no-reuse",), steps=1)
    lines[:0] = [markers.encode(run), markers.encode(markers.Ready(max_batch_size=1))]
    r = check("".join(lines))  # expectations from the log: written by kvverify run
    assert r.verdict == "fail"
    assert {c.source for c in r.checks} == {"log"}
    assert r.checks[0].diagnosis == "warmup-pollution"
    assert "warmup-pollution" in codes(r)
    assert [q.dummy for q in r.requests] == [True, True, False]


def test_expectations_from_cli_win_over_the_log() -> None:
    run = markers.Run(scenario="s", variant="v", engine="trtllm", expect=("reused_blocks == 999",))
    text = markers.encode(run) + seed_log("1.2")
    assert check(text).verdict == "fail"
    assert check(text, "reused_blocks == 4").verdict == "pass"
    assert check(text).engine.name == "trtllm"
    # A log the reference model wrote says so, whatever the run marker or the banner claims.
    assert check(text + markers.encode(markers.ModelMark("0.1.0", "1.2"))).engine.name == "sim"


def test_a_crashed_run_is_reported_as_crashed() -> None:
    text = seed_log("1.2", summary=False) + markers.encode(
        markers.Exit(status="crashed", returncode=-9, signal="SIGKILL", detail="killed by SIGKILL")
    )
    r = check(text)
    assert r.verdict == "crashed"
    assert r.diagnoses[0].code == "run-crashed"
    assert r.diagnoses[0].title == "the engine crashed"
    assert "killed by SIGKILL" in r.diagnoses[0].detail


def test_engine_errors_are_diagnosed() -> None:
    text = seed_log("1.2") + "[TensorRT-LLM][ERROR] CUDA runtime error in cudaMemcpy\n"
    r = check(text)
    assert r.verdict == "pass"  # the numbers still hold; the error is reported next to them
    d = next(d for d in r.diagnoses if d.code == "engine-errors")
    assert d.severity == "error"
    assert "CUDA runtime error" in d.detail
    assert r.error_count == 1


def test_window_rank_and_segment_scopes() -> None:
    r = check(
        seed_log("1.2"),
        f"window[{WINDOW}].reused_blocks == 4",
        "segment[0].missed_blocks == 16",
        "window[64].reused_blocks == 0",
        "rank[2].reused_blocks == 0",
    )
    assert statuses(r) == {
        f"window[{WINDOW}].reused_blocks == 4": ("pass", 4.0),
        "segment[0].missed_blocks == 16": ("pass", 16.0),
        "window[64].reused_blocks == 0": ("not_analyzable", None),
        "rank[2].reused_blocks == 0": ("not_analyzable", None),
    }


@pytest.mark.parametrize("dialect", sorted(DIALECTS))
def test_json_report_is_plain_json_with_nulls_not_zeros(dialect: str) -> None:
    r = check(seed_log(dialect))
    data = json.loads(to_json(report([r])))["logs"][0]
    printed = set(DIALECTS[dialect].summary_metrics)
    for s in data["summaries"]:
        for key in ("missed_blocks", "cache_hit_rate", "reused_tokens", "reused_blocks"):
            assert (s[key] is not None) == (key in printed), (key, s)


def test_counters_helper_matches_the_writer() -> None:
    # guard for the tests above: the log maker's counters are what the summary prints
    c = counters_of([Req(1, 27, ["missed", "matched"], 16)])
    assert (c["missed_blocks"], c["reused_blocks"], c["reused_tokens"]) == (1, 1, 16)


def test_the_runs_own_offload_stats_are_not_read_for_a_scoped_manager() -> None:
    # kvverify run records the run's iteration stats: they describe the final engine, so a
    # check scoped to the estimation manager reads that manager's own lines instead.
    from kvverify.check import check_source
    from kvverify.evidence.sources import LogSource

    log = Path(__file__).resolve().parent.parent / "golden_logs" / "abab-2026-offload_on.log"
    inputs = Inputs(
        expectations=parse_all(["offloaded_blocks > 0", "segment[0].offloaded_blocks == 0"])
    )
    report = check_source(LogSource(str(log)), inputs)
    final, scoped = report.checks
    assert final.status == "pass"
    assert final.reason == "iteration statistics of the run"
    assert scoped.status == "pass"
    assert scoped.reason == "copyBlock lines in the log"


def test_requests_need_max_batch_size_to_leave_out_warm_up(tmp_path: Path) -> None:
    # Warm-up dummies have ids below max_batch_size (reference §9.3). Without it (a log of
    # one's own app, no scenario) the count is not analyzable, never a count with them in.
    from kvverify.check import check_source
    from kvverify.evidence.sources import LogSource

    golden = Path(__file__).resolve().parent.parent / "golden_logs" / "abab-1.2-offload_on.log"
    bare = tmp_path / "app.log"
    lines = golden.read_text().splitlines(keepends=True)
    bare.write_text("".join(ln for ln in lines if not ln.startswith("[kvverify]")))
    expect = parse_all(["requests == 4"])
    alone = check_source(LogSource(str(bare)), Inputs(expectations=expect))
    assert statuses(alone)["requests == 4"] == ("not_analyzable", None)
    assert "no-batch-size" in codes(alone)
    plan = StepPlan(prompt_lengths=(None,) * 4, max_batch_size=1)  # what --scenario gives
    with_plan = check_source(LogSource(str(bare)), Inputs(expectations=expect, steps=plan))
    assert statuses(with_plan)["requests == 4"] == ("pass", 4.0)
    with_markers = check_source(LogSource(str(golden)), Inputs(expectations=expect))
    assert statuses(with_markers)["requests == 4"] == ("pass", 4.0)


def test_printed_stats_in_a_tp_log_go_to_a_working_manager(tmp_path: Path) -> None:
    # The rank-less Python pool line announces a manager that never works; stats printed by
    # the app must not make it "the final engine" (it has no summary).
    from kvverify.check import check_source
    from kvverify.evidence.sources import LogSource

    golden = Path(__file__).resolve().parent.parent / "golden_logs" / "tp2-2026.log"
    lines = golden.read_text().splitlines(keepends=True)
    last_add = max(i for i, ln in enumerate(lines) if "addSequence" in ln)
    lines.insert(last_add + 1, '{"iter": 5, "iterOffloadBlocks": 0, "iterOnboardBlocks": 0}\n')
    log = tmp_path / "tp2.log"
    log.write_text("".join(lines))
    report = check_source(LogSource(str(log)), Inputs())
    assert report.ranks == (0, 1)
    assert report.verdict == check_source(LogSource(str(golden)), Inputs()).verdict == "pass"


def test_a_log_the_model_wrote_says_so_in_every_report() -> None:
    # offloading_enabled.log imitates TensorRT-LLM 1.2.0rc2, banner included; the model's mark
    # makes every report name the model, never "TensorRT-LLM 1.2.0rc2".
    from kvverify.check import check_source
    from kvverify.evidence.sources import LogSource
    from kvverify.report import github_annotations, junit, markdown, terminal

    golden = Path(__file__).resolve().parent.parent / "golden_logs" / "offloading_enabled.log"
    assert "TensorRT LLM version: 1.2.0rc2" in golden.read_text()
    result = report([check_source(LogSource(str(golden)), Inputs())])
    (log,) = result.logs
    assert (log.engine.name, log.engine.banner) == ("sim", "1.2.0rc2")
    assert json.loads(to_json(result))["logs"][0]["engine"]["name"] == "sim"
    assert "engine: sim (kvverify's reference model, not a GPU run" in terminal(result)
    assert "TensorRT-LLM 1.2.0rc2 ·" not in terminal(result)
    assert '<property name="engine" value="sim" />' in junit(result)
    assert "not TensorRT-LLM's" in markdown(result)
    warning = next(a for a in github_annotations(result).splitlines() if "model-evidence" in a)
    assert warning.startswith("::warning ")
    # A log without the mark is taken for what it claims.
    plain = check(seed_log("1.2"))
    assert (plain.engine.name, plain.engine.version) == ("trtllm", "1.2.0rc2")
    assert "model-evidence" not in codes(plain)


def test_a_failed_engine_api_is_named_when_it_leaves_a_check_without_evidence() -> None:
    # 2025mid prints no copyBlock lines: offload counts come from the run's iteration stats,
    # and get_stats() failed (an upgrade changed it). The check names that, not "no evidence".
    run = markers.Run(scenario="s", variant="v", engine="trtllm", expect=("offloaded_blocks > 0",))
    failure = markers.ApiFailure("get_stats", "TypeError", "unexpected keyword argument 'timeout'")
    text = markers.encode(run) + seed_log("2025mid") + markers.encode(failure)
    r = check(text)
    assert r.verdict == "not_analyzable"
    (c,) = r.checks
    assert c.diagnosis == "engine-api-error"
    assert "get_stats() failed (TypeError" in c.reason
    d = next(d for d in r.diagnoses if d.code == "engine-api-error")
    assert d.severity == "error"
    assert "get_stats() raised TypeError: unexpected keyword argument 'timeout'" in d.detail


@pytest.mark.parametrize(
    "damage",
    [
        "[TensorRT-LLM][DEBUG] addSequence: Request 18446744073709551616, inputLength 40, "
        "prepopulatedPromptLen 0\n",
        "[TensorRT-LLM][DEBUG] addSequence: Request 5, inputLength 99999999999999999999999, "
        "prepopulatedPromptLen 0\n",
        '[kvverify] {"v":1,"t":"iter_stats","stats":[{"kvCacheIterationStats":{"256":'
        '{"iterOffloadBlocks":null,"iterOnboardBlocks":"x"}}}]}\n',
        '[kvverify] {"v":1,"t":"kv_events","events":[1,"x",{"data":3}]}\n',
        '[kvverify] {"v":1,"t":"ready","predicted":{"match":[7],"summary":5}}\n',
        '[kvverify] {"v":1,"t":"run","scenario":"s","variant":"v","engine":"sim","expect":'
        '["reuse"],"steps":100000000000}\n',
    ],
)
def test_damaged_lines_never_crash_the_check(damage: str) -> None:
    # Numbers TensorRT-LLM cannot print and markers an upgrade (or a broken disk) mangled:
    # the line is left out or said to be damaged; the check goes on, never a traceback.
    r = check(seed_log("1.2") + damage)
    assert r.verdict in ("pass", "fail", "not_analyzable")
    assert to_json(report([r]))


def test_an_expectation_of_the_wrong_type_in_the_log_is_one_message(tmp_path: Path) -> None:
    from kvverify.check import check_paths

    log = tmp_path / "x.log"
    run = '[kvverify] {"v":1,"t":"run","scenario":"s","variant":"v","engine":"sim","expect":[1]}'
    log.write_text(run + "\n" + seed_log("1.2"))
    (checked,) = check_paths([str(log)], Inputs()).logs
    assert checked.verdict == "not_analyzable"
    assert "expectation written by kvverify run" in checked.diagnoses[0].detail
