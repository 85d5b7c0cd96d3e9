"""``kvverify run`` end to end: on the reference model, and on the stand-in tensorrt_llm for
every outcome: pass, fail, crash, CUDA error, hang, killed, no summary, V2, wrong log level,
keys the installed version does not know, Ctrl-C."""

from __future__ import annotations

import importlib.util
import json
import os
import shlex
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import yaml
from conftest import Result, Run

import kvverify.engines.base

ROOT = Path(__file__).resolve().parent
STANDIN = ROOT / "standin"
SCENARIO = ROOT / "data" / "standin.yaml"


@pytest.fixture
def standin(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the stand-in importable as tensorrt_llm, in the worker processes too."""
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join([str(STANDIN), *filter(None, [os.environ.get("PYTHONPATH")])])
    )
    monkeypatch.syspath_prepend(str(STANDIN))


def scenario_with(tmp_path: Path, **changes: object) -> str:
    data = yaml.safe_load(SCENARIO.read_text())
    for dotted, value in changes.items():
        node = data
        *path, last = dotted.split("__")
        for key in path:
            node = node.setdefault(key, {})
        node[last] = value
    out = tmp_path / "scenario.yaml"
    out.write_text(yaml.safe_dump(data))
    return str(out)


def report_of(out: str) -> dict:  # type: ignore[type-arg]
    return json.loads(out)  # type: ignore[no-any-return]


def run_standin(run: Run, scenario: str, out: str, *more: str) -> Result:
    """``kvverify run SCENARIO --engine trtllm --variant offload_on --out OUT ...``."""
    return run(
        "run", scenario, "--engine", "trtllm", "--variant", "offload_on", "--out", out, *more
    )


def test_sim_runs_the_builtin_scenario_and_says_it_is_the_model(run: Run, tmp_path: Path) -> None:
    r = run("run", "--engine", "sim", "--out", str(tmp_path), "--format", "json")
    assert r.code == 0, r.err
    data = report_of(r.out)
    assert [log["engine"]["name"] for log in data["logs"]] == ["sim", "sim"]
    assert {c["status"] for log in data["logs"] for c in log["checks"]} == {"pass"}
    again = run("check", "--format", "json", str(tmp_path / "offload_on.log"))
    assert report_of(again.out)["logs"][0]["checks"] == data["logs"][1]["checks"]
    table = run("check", str(tmp_path / "offload_on.log"))
    assert "engine: sim (kvverify's reference model, not a GPU run; 1.2 log format" in table.out


def test_auto_uses_the_model_without_tensorrt_llm_outside_ci(
    run: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setattr(kvverify.engines.base.importlib.util, "find_spec", lambda name: None)
    r = run("run", "--out", str(tmp_path), "--variant", "offload_off")
    assert r.code == 0, r.err
    assert "engine: sim" in r.out
    assert "running on kvverify's reference model" in r.err
    assert "logs: " in r.err


@pytest.mark.parametrize("ci", ["true", "1", "yes"])
def test_auto_never_falls_back_to_the_model_in_ci(
    run: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ci: str
) -> None:
    monkeypatch.setenv("CI", ci)
    monkeypatch.setattr(kvverify.engines.base.importlib.util, "find_spec", lambda name: None)
    r = run("run", "--out", str(tmp_path / "out"), "--variant", "offload_off")
    assert r.code == 3
    assert "ENGINE UNAVAILABLE" in r.out  # the report says so too, not only stderr
    assert "engine: sim" not in r.out
    assert "--engine auto never falls back to the reference model" in r.err
    assert "pass --engine sim" in r.err
    assert not (tmp_path / "out").exists()  # nothing ran
    # On purpose it runs, and says whose evidence it is.
    r = run("run", "--engine", "sim", "--out", str(tmp_path / "sim"), "--variant", "offload_off")
    assert r.code == 0, r.err
    assert "engine: sim" in r.out


def test_trtllm_without_tensorrt_llm_is_a_broken_runner_not_a_bad_scenario(
    run: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(kvverify.engines.base.importlib.util, "find_spec", lambda name: None)
    out = tmp_path / "out"
    junit = tmp_path / "r.xml"
    r = run(
        "run",
        "--engine",
        "trtllm",
        "--out",
        str(out),
        "--variant",
        "offload_on",
        "--junit",
        str(junit),
        "--format",
        "json",
    )
    assert r.code == 3, r.err
    assert r.err.splitlines()[0] == (
        "kvverify: the engine could not start: TensorRT-LLM is not installed (no module named "
        "'tensorrt_llm')"
    )
    assert "--engine sim" in r.err  # never a fallback to the model
    assert not out.exists() or not any(out.iterdir())  # nothing ran
    # A CI job reads the report files, not stderr: they say it too.
    (log,) = report_of(r.out)["logs"]
    assert (log["verdict"], log["variant"]) == ("engine_unavailable", "offload_on")
    assert log["diagnoses"][0]["code"] == "run-unavailable"
    assert 'type="engine_unavailable"' in junit.read_text()


def test_a_tensorrt_llm_that_fails_to_import_is_exit_3_with_the_error_in_one_line(
    run: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Installed, but its import fails (a CUDA library missing): the engine could not start.
    broken = tmp_path / "site" / "tensorrt_llm"
    broken.mkdir(parents=True)
    (broken / "__init__.py").write_text(
        "raise ImportError('libcudart.so.12: cannot open shared object file: "
        "No such file or directory')\n"
    )
    monkeypatch.setenv("PYTHONPATH", str(tmp_path / "site"))
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    r = run("run", "--engine", "trtllm", "--out", str(tmp_path / "out"), "--format", "json")
    assert r.code == 3, r.out
    data = report_of(r.out)
    assert data["verdict"] == "engine_unavailable"
    (log,) = data["logs"]  # the first variant shows it; the others are not tried
    first = log["diagnoses"][0]
    assert (first["code"], first["title"]) == ("run-unavailable", "the engine could not start")
    assert first["detail"] == (
        "EngineUnavailable: cannot import tensorrt_llm: ImportError: libcudart.so.12: cannot "
        "open shared object file: No such file or directory"
    )
    assert "engine-errors" not in {d["code"] for d in log["diagnoses"]}
    assert "no-debug-lines" not in {d["code"] for d in log["diagnoses"]}
    # the variant's own expectations, each saying why it cannot be checked
    assert [c["expression"] for c in log["checks"]] == [
        "reused_blocks == 0",
        "cache_hit_rate == 0",
    ]
    assert {c["diagnosis"] for c in log["checks"]} == {"run-unavailable"}
    assert "cannot import tensorrt_llm" in (tmp_path / "out" / "offload_off.log").read_text()


@pytest.mark.usefixtures("standin")
def test_standin_pass_and_the_log_repeats_the_verdict(run: Run, tmp_path: Path) -> None:
    r = run("run", str(SCENARIO), "--engine", "auto", "--out", str(tmp_path), "--format", "json")
    assert r.code == 0, r.out
    data = report_of(r.out)
    for log in data["logs"]:
        assert log["engine"] == {
            "name": "trtllm",
            "version": "1.2.0rc2",
            "dialect": None,
            "banner": "1.2.0rc2",
        }
        assert [s["final"] for s in log["summaries"]] == [True]
    on = (tmp_path / "offload_on.log").read_text()
    assert "[TensorRT-LLM] TensorRT LLM version: 1.2.0rc2" in on  # the import banner
    assert "addSequence: Request 3, inputLength 40, prepopulatedPromptLen 32" in on
    assert "isOffload=true" in on  # written by the executor worker process, to fd 1
    assert '"t":"step_end","step":3' in on
    # The adapter records what tells warm-up from steps: the batch size LLM.args resolved.
    assert '"max_batch_size":1,"prompt_lengths":[40,40,40,40]' in on
    again = run("check", "--format", "json", str(tmp_path / "offload_on.log"))
    assert report_of(again.out)["logs"][0]["checks"] == data["logs"][1]["checks"]
    steps = {q["step"]: q for q in data["logs"][1]["requests"] if q["step"]}
    assert steps[3]["reused_tokens"] == 32


@pytest.mark.usefixtures("standin")
@pytest.mark.parametrize(
    ("fault", "code", "verdict", "diagnosis"),
    [
        ("crash:3", 3, "crashed", "run-crashed"),
        ("cuda-error:2", 3, "crashed", "engine-errors"),
        ("kill:2", 3, "crashed", "run-crashed"),
        ("no-summary", 2, "not_analyzable", "no-summary"),
        ("v2", 2, "not_analyzable", "kv-cache-manager-v2"),
        ("setenv-late", 2, "not_analyzable", "no-debug-lines"),
    ],
)
def test_standin_faults(
    run: Run, tmp_path: Path, fault: str, code: int, verdict: str, diagnosis: str
) -> None:
    path = scenario_with(tmp_path, engine__env={"STANDIN_FAULT": fault})
    r = run_standin(run, path, str(tmp_path / "out"), "--format", "json")
    assert r.code == code, r.out
    (log,) = report_of(r.out)["logs"]
    assert log["verdict"] == verdict
    assert diagnosis in {d["code"] for d in log["diagnoses"]}
    text = (tmp_path / "out" / "offload_on.log").read_text()
    assert '"t":"exit"' in text  # the partial log is kept, with how the run ended
    assert "[kvverify]" in text


@pytest.mark.usefixtures("standin")
def test_standin_crash_keeps_and_analyses_the_partial_log(run: Run, tmp_path: Path) -> None:
    path = scenario_with(tmp_path, engine__env={"STANDIN_FAULT": "crash:3"})
    r = run_standin(run, path, str(tmp_path))
    assert r.code == 3
    assert "CRASHED" in r.out
    assert "the engine crashed" in r.out
    assert "Executor worker died" in r.out
    # the two steps that ran are in the log, the summary is not: said as the crash's doing
    assert "the engine crashed before the final KV cache manager printed its summary" in r.out
    again = run("check", str(tmp_path / "offload_on.log"))
    assert again.code == 3


@pytest.mark.usefixtures("standin")
def test_standin_hang_is_stopped_by_the_timeout(run: Run, tmp_path: Path) -> None:
    path = scenario_with(tmp_path, engine__env={"STANDIN_FAULT": "hang:2"})
    started = time.monotonic()
    r = run_standin(run, path, str(tmp_path), "--timeout", "4", "--format", "json")
    assert time.monotonic() - started < 30
    assert r.code == 3
    (log,) = report_of(r.out)["logs"]
    run_diag = log["diagnoses"][0]
    assert run_diag["code"] == "run-timeout"
    assert "no result after 4 s" in run_diag["detail"]


@pytest.mark.usefixtures("standin")
def test_keys_the_installed_version_does_not_know_fail_before_the_model_loads(
    run: Run, tmp_path: Path
) -> None:
    path = scenario_with(
        tmp_path, engine__kv_cache={"use_kv_cache_manager_v2": False, "tokens_per_block": 16}
    )
    r = run_standin(run, path, str(tmp_path))
    assert r.code == 2
    assert (
        "engine.kv_cache.use_kv_cache_manager_v2: KvCacheConfig of TensorRT-LLM 1.2.0rc2 "
        "has no such argument"
    ) in r.out
    log = (tmp_path / "offload_on.log").read_text()
    assert "Allocating primary pool" not in log  # no model was loaded
    path = scenario_with(tmp_path, engine__args={"max_batch_sise": 2})
    r = run_standin(run, path, str(tmp_path / "second"))
    assert r.code == 2
    assert (
        "engine.max_batch_sise: LLM of TensorRT-LLM 1.2.0rc2 has no such argument (did you "
        "mean 'max_batch_size'?)" in r.out
    )


@pytest.mark.usefixtures("standin")
def test_v1_manager_is_kept_where_the_version_offers_v2(
    run: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STANDIN_VERSION", "1.4.0")
    r = run_standin(run, str(SCENARIO), str(tmp_path), "--format", "json")
    assert r.code == 0, r.out
    text = (tmp_path / "offload_on.log").read_text()
    assert "[TRT-LLM] [D] [batchmgr]" in text  # the 2026 prefix
    assert "kvCacheIterationStats" in text  # iteration stats with offload counts
    (log,) = report_of(r.out)["logs"]
    assert log["engine"]["version"] == "1.4.0"


def processes_tagged(tag: str) -> list[int]:
    """Live processes whose environment holds STANDIN_TAG=tag (the worker and its children)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            env = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"STANDIN_TAG={tag}".encode() in env:
            found.append(int(entry.name))
    return found


def start_run(
    path: str, out: Path, *extra: str, env: dict[str, str] | None = None
) -> subprocess.Popen[str]:
    """``kvverify run`` of the stand-in engine's ``offload_on`` variant, in its own process."""
    engine = ["--engine", "trtllm", "--variant", "offload_on", "--out", str(out)]
    return subprocess.Popen(
        [sys.executable, "-m", "kvverify", "run", path, *engine, *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def wait_for(log: Path, text: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if log.exists() and text in log.read_text():
            return
        time.sleep(0.1)
    raise AssertionError(f"{text!r} never appeared in {log}")


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs /proc")
@pytest.mark.usefixtures("standin")
@pytest.mark.parametrize(
    ("sig", "code", "term"),
    [
        (signal.SIGINT, 130, None),
        (signal.SIGTERM, 143, None),  # a cancelled CI job
        (signal.SIGHUP, 129, None),  # the terminal closed
        (signal.SIGTERM, 143, "ignore"),  # the engine ignores SIGTERM: SIGKILL after the grace
    ],
)
def test_a_signal_stops_the_engine_keeps_the_log_and_exits_128_plus_it(
    tmp_path: Path, sig: signal.Signals, code: int, term: str | None
) -> None:
    tag = uuid.uuid4().hex
    env = {
        "STANDIN_FAULT": "hang:2",
        "STANDIN_TAG": tag,
        **({"STANDIN_TERM": term} if term else {}),
    }
    path = scenario_with(tmp_path, engine__env=env)
    proc = start_run(path, tmp_path / "out")
    log = tmp_path / "out" / "offload_on.log"
    wait_for(log, '"t":"step_begin","step":2')
    assert processes_tagged(tag)  # the worker and the executor are running
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert "INTERRUPTED" in out
    assert f"exit {code})" in out  # the report says the code the process exits with
    text = log.read_text()
    assert '"t":"exit","status":"interrupted"' in text
    assert "addSequence: Request 1" in text  # what ran before is kept
    # Nothing of the engine is left running (SIGKILL takes effect asynchronously: a moment).
    deadline = time.monotonic() + 10
    while processes_tagged(tag) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert processes_tagged(tag) == []


@pytest.mark.usefixtures("standin")
def test_a_gated_run_stopped_by_a_signal_reports_the_code_it_exits_with(
    run: Run, tmp_path: Path
) -> None:
    baseline = tmp_path / "baseline.json"
    golden = Path(__file__).resolve().parent.parent / "golden_logs" / "offloading_enabled.log"
    assert run("check", str(golden), "--save-baseline", str(baseline)).code == 0
    path = scenario_with(tmp_path, engine__env={"STANDIN_FAULT": "hang:2"})
    proc = start_run(path, tmp_path / "out", "--baseline", str(baseline))
    wait_for(tmp_path / "out" / "offload_on.log", '"t":"step_begin","step":2')
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert "exit 143)" in out


@pytest.mark.usefixtures("standin")
def test_what_the_engine_prints_while_being_stopped_is_kept(run: Run, tmp_path: Path) -> None:
    path = scenario_with(
        tmp_path, engine__env={"STANDIN_FAULT": "hang:2", "STANDIN_TERM": "report"}
    )
    r = run_standin(run, path, str(tmp_path), "--timeout", "3")
    assert r.code == 3
    text = (tmp_path / "offload_on.log").read_text()
    assert [f"stopping on SIGTERM ({i})" in text for i in range(3)] == [True] * 3
    assert text.index("stopping on SIGTERM (2)") < text.index('"t":"exit","status":"timeout"')


def test_unknown_variant_and_broken_scenario(run: Run, tmp_path: Path) -> None:
    r = run(
        "run", str(SCENARIO), "--engine", "sim", "--variant", "offload_of", "--out", str(tmp_path)
    )
    assert r.code == 2
    assert "no variant 'offload_of' (did you mean 'offload_off'?)" in r.err
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "name: x\nengine: {model: m, kv_cache: {max_tokns: 1}}\nprompts: {A: a}\nsteps: [A]\n"
    )
    r = run("run", str(bad), "--engine", "sim")
    assert r.code == 2
    assert (
        f"{bad}:2:31: engine.kv_cache.max_tokns: unknown key (did you mean 'max_tokens'?)" in r.err
    )


def test_an_interrupt_is_reported_once_as_such(tmp_path: Path) -> None:
    # Ctrl-C: the engine's own KeyboardInterrupt traceback (printed after kvverify began to
    # stop it) is not an engine error, and nothing hints at llm.shutdown().
    path = scenario_with(tmp_path, engine__env={"STANDIN_FAULT": "hang:2"})
    env = {**os.environ, "PYTHONPATH": str(STANDIN)}
    proc = start_run(path, tmp_path / "out", "--format", "json", env=env)
    log = tmp_path / "out" / "offload_on.log"
    wait_for(log, '"t":"step_begin","step":2')
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    (report,) = report_of(out)["logs"]
    assert [d["code"] for d in report["diagnoses"] if d["severity"] == "error"] == [
        "run-interrupted"
    ]
    assert {c["diagnosis"] for c in report["checks"]} == {"run-interrupted"}
    assert "llm.shutdown" not in out
    assert "KeyboardInterrupt" in log.read_text()  # printed by the engine, and kept


@pytest.mark.usefixtures("standin")
def test_a_failing_engine_api_is_recorded_in_the_log_and_named(run: Run, tmp_path: Path) -> None:
    path = scenario_with(tmp_path, engine__env={"STANDIN_FAULT": "stats-drift"})
    r = run_standin(run, path, str(tmp_path / "out"), "--format", "json")
    (log,) = report_of(r.out)["logs"]
    d = next(d for d in log["diagnoses"] if d["code"] == "engine-api-error")
    assert "get_stats() raised TypeError" in d["detail"]
    text = (tmp_path / "out" / "offload_on.log").read_text()
    assert '"t":"api_error","api":"get_stats","type":"TypeError"' in text


def test_each_run_gets_a_directory_of_its_own(
    run: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    first = run("run", "--engine", "sim", "--variant", "offload_off")
    assert first.code == 0, first.err
    root = tmp_path / "kvverify-out" / "abab"
    (earlier,) = [p for p in root.iterdir() if p.name != "latest"]
    before = (earlier / "offload_off.log").read_bytes()
    second = run("run", "--engine", "sim", "--variant", "offload_off")
    assert second.code == 0, second.err
    runs = sorted(p for p in root.iterdir() if p.name != "latest")
    assert len(runs) == 2
    assert (earlier / "offload_off.log").read_bytes() == before  # never overwritten
    assert (root / "latest").resolve() == runs[-1].resolve() != earlier.resolve()
    assert f"logs: {Path('kvverify-out') / 'abab' / runs[-1].name}" in second.err


def test_out_that_holds_logs_is_refused_unless_asked_to_overwrite(run: Run, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert run("run", "--engine", "sim", "--variant", "offload_off", "--out", str(out)).code == 0
    log = out / "offload_off.log"
    log.write_text(log.read_text() + "# the evidence of an earlier run\n")
    again = run("run", "--engine", "sim", "--variant", "offload_off", "--out", str(out))
    assert again.code == 2
    assert "already holds logs of an earlier run (offload_off.log)" in again.err
    assert "--overwrite" in again.err
    assert log.read_text().endswith("# the evidence of an earlier run\n")
    forced = run(
        "run", "--engine", "sim", "--variant", "offload_off", "--out", str(out), "--overwrite"
    )
    assert forced.code == 0
    assert "# the evidence of an earlier run" not in log.read_text()


def test_a_closed_pipe_does_not_stop_the_run(tmp_path: Path) -> None:
    # stderr (the progress) into a pipe that closes after one line: the run goes on, writes
    # its logs and report files, and exits by its verdict.
    out, junit = tmp_path / "out", tmp_path / "r.xml"
    cmd = (
        f"{shlex.quote(sys.executable)} -m kvverify run --engine sim --out {out} "
        f"--junit {junit} 2>&1 >/dev/null | head -1; exit ${{PIPESTATUS[0]}}"
    )
    done = subprocess.run(
        ["bash", "-c", cmd], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    for variant in ("offload_off", "offload_on"):
        assert '"t":"exit","status":"ok"' in (out / f"{variant}.log").read_text()
    assert 'failures="0"' in junit.read_text()


@pytest.mark.parametrize("command", ["run", "validate", "predict"])
def test_a_binary_file_or_a_directory_is_one_plain_message(
    run: Run, tmp_path: Path, command: str
) -> None:
    binary = tmp_path / "model.bin"
    binary.write_bytes(b"\x7fELF\x02\x01\x01\x00\xd0\xcf\x11\xe0" * 100)
    for path, message in ((binary, "not a text file"), (tmp_path, "is a directory")):
        r = run(command, str(path))
        assert r.code == 2, r.err
        assert r.err.startswith(f"kvverify: {path}: {message}") or r.err.startswith(
            f"{path}: {message}"
        ), r.err
        assert "codec" not in r.err
        assert "Errno" not in r.err
        assert "reference model" not in r.err  # no engine is announced for a refused input


def _trtllm_environment(tmp_path: Path) -> Path:
    """Another Python environment, as a TensorRT-LLM install is: the stand-in and what it
    imports (pydantic), without kvverify, click or PyYAML. Returns its interpreter."""
    import importlib.util

    other = tmp_path / "trtllm-env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(other)], check=True)
    (site,) = (other / "lib").glob("python*/site-packages")
    deps = tmp_path / "deps"
    deps.mkdir()
    for name in ("pydantic", "pydantic_core", "annotated_types", "typing_inspection"):
        spec = importlib.util.find_spec(name)
        assert spec is not None
        assert spec.submodule_search_locations is not None
        (deps / name).symlink_to(next(iter(spec.submodule_search_locations)))
    spec = importlib.util.find_spec("typing_extensions")
    assert spec is not None
    assert spec.origin is not None
    (deps / "typing_extensions.py").symlink_to(spec.origin)
    (site / "trtllm.pth").write_text(f"{STANDIN}\n{deps}\n")
    python = other / "bin" / "python"
    for missing in ("kvverify", "click", "yaml"):
        probe = subprocess.run(
            [str(python), "-c", f"import {missing}"], cwd=tmp_path, capture_output=True, check=False
        )
        assert probe.returncode != 0, f"{missing} must not be importable there"
    return python


def test_python_runs_the_engine_under_the_interpreter_of_another_environment(
    run: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PYTHONPATH", raising=False)
    monkeypatch.chdir(tmp_path)  # nothing of kvverify's checkout is on the worker's path
    python = _trtllm_environment(tmp_path)
    assert importlib.util.find_spec("tensorrt_llm") is None  # not here: only there
    out = tmp_path / "out"
    r = run(
        "run",
        str(SCENARIO),
        "--python",
        str(python),
        "--variant",
        "offload_on",
        "--out",
        str(out),
        "--format",
        "json",
    )  # --engine auto finds TensorRT-LLM there, even in CI
    assert r.code == 0, r.out + r.err
    (log,) = report_of(r.out)["logs"]
    assert log["engine"]["name"] == "trtllm"
    text = (out / "offload_on.log").read_text()
    assert f'"python":"{python}"' in text  # the run records the interpreter
    assert "TensorRT LLM version: 1.2.0rc2" in text
    bad = run(
        "run", str(SCENARIO), "--python", str(tmp_path / "nope"), "--out", str(tmp_path / "x")
    )
    assert bad.code == 3
    assert "cannot run the interpreter" in bad.err


def test_overwrite_replaces_the_whole_earlier_run(run: Run, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert run("run", "--engine", "sim", "--out", str(out)).code == 0
    assert sorted(p.name for p in out.glob("*.log")) == ["offload_off.log", "offload_on.log"]
    again = run(
        "run", "--engine", "sim", "--out", str(out), "--overwrite", "--variant", "offload_on"
    )
    assert again.code == 0
    # the earlier run's other variant is gone: a directory never mixes two runs
    assert sorted(p.name for p in out.glob("*.log")) == ["offload_on.log"]
