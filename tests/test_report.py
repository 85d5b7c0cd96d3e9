"""Every report format renders every log the parser accepts: JSON stays strict JSON and meets
its schema, JUnit is well-formed XML, and no human-readable format lets text from the log
reach the terminal raw (a carriage return, an escape sequence)."""

from __future__ import annotations

import dataclasses
import json
import typing
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import click
import jsonschema
from conftest import SCHEMA, Run
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kvverify import markers
from kvverify.check import Inputs, check_events, report
from kvverify.evidence.parse import parse_bytes
from kvverify.expect import parse_all
from kvverify.report import github_annotations, junit, markdown, terminal, to_json
from kvverify.result import CheckReport, RequestReport

P = "[TensorRT-LLM][DEBUG] "
BM = "BlockManager[windowSize=256]"
LABELS = (
    "total allocated blocks",
    "allocated new blocks",
    "missed blocks",
    "reused blocks",
    "reused unique blocks",
    "reused unique blocks percentage (%)",
    "cache hit rate",
    "reused tokens",
    "reused tokens percentage (%)",
)
#: Text a crafted or corrupted log may carry: CR, an OSC title sequence, a bell, colours,
#: a bidi override, quotes and Markdown/XML specials.
HOSTILE = ["\r", "\x1b]0;pwned\x07", "\x1b[31m", "\x07", "\u202e", "|", "`", "<&>", '"', "%"]


def _value() -> st.SearchStrategy[str]:
    return st.one_of(
        st.integers(0, 10**6).map(str),
        st.floats(0, 100, allow_nan=False).map(lambda f: f"{f:.2f}"),
        st.sampled_from(["nan", "-nan", "inf", "-inf"]),
    )


def _text() -> st.SearchStrategy[str]:
    return st.lists(st.one_of(st.sampled_from(HOSTILE), st.text(max_size=8)), max_size=6).map(
        "".join
    )


_line = st.one_of(
    st.tuples(st.sampled_from(LABELS), _value()).map(lambda lv: f"{P}{BM} - {lv[0]}: {lv[1]}"),
    st.tuples(st.integers(0, 2**64 - 1), st.integers(1, 9999), st.integers(0, 9999)).map(
        lambda r: (
            f"{P}addSequence: Request {r[0]}, inputLength {r[1]}, "
            f"prepopulatedPromptLen {r[2]}, numConnectorMatchedTokens 0"
        )
    ),
    st.sampled_from(["Matched full", "No match, allocated new", "Reused partially"]).map(
        lambda o: f"{P}{BM}::loadOrAllocateBlocks - {o} block 3"
    ),
    st.booleans().map(lambda b: f"{P}copyBlock entered: srcId=1, dstId=2, isOffload={b}, mode=0"),
    st.integers(1, 64).map(lambda n: f"[TensorRT-LLM][INFO] Number of tokens per block: {n}."),
    _text().map(lambda t: f"[TensorRT-LLM][ERROR] {t}"),
    _text().map(lambda t: f"RuntimeError: {t}"),
    _text(),
    st.sampled_from(
        [
            markers.encode(markers.Run("s", "v", "trtllm", ("reused_blocks > 0",), 2)).strip(),
            markers.encode(markers.ModelMark("0.1.0", "1.2")).strip(),
            markers.encode(markers.Ready(max_batch_size=1, prompt_lengths=(30, 30))).strip(),
            markers.encode(markers.StepEnd(1, request_id=1, latency_ms=float("nan"))).strip(),
            markers.encode(markers.Exit("interrupted", 130)).strip(),
            markers.encode(markers.Exit("unavailable", 3, detail="\x1b]0;x\x07")).strip(),
            markers.encode(markers.Stop("signal", "SIGINT")).strip(),
            markers.encode(markers.ApiFailure("get_stats", "TypeError", "\r\x1b[2K")).strip(),
            '[kvverify] {"v":1,"t":"run","expect":["reused_blocks >> 0"]}',  # damaged: ignored
        ]
    ),
)
logs = st.lists(_line, max_size=40).map(lambda lines: "\n".join(lines) + "\n")
expressions = st.lists(
    st.sampled_from(
        [
            "reused_blocks > 0",
            "cache_hit_rate >= 0.5",
            "reused_tokens_percent != 0",
            "step[1].reused_tokens > 0",
            "request[1].latency_ms < 10",
            "offloaded_blocks == 0",
            "requests == 2",
        ]
    ),
    max_size=4,
)


def _no_raw_control_text(text: str) -> None:
    plain = click.unstyle(text)
    bad = [c for c in plain if not (c.isprintable() or c == "\n")]
    assert bad == [], repr(plain)


def _strict_json(text: str) -> Any:
    def refuse(name: str) -> None:
        raise AssertionError(f"non-standard JSON constant {name}")

    return json.loads(text, parse_constant=refuse)


def render_everything(result: CheckReport) -> None:
    data = _strict_json(to_json(result))
    jsonschema.validate(data, SCHEMA)
    ET.fromstring(junit(result).split("\n", 1)[1])  # well-formed XML (after the declaration)
    for text in (terminal(result, verbose=True), markdown(result)):
        _no_raw_control_text(text)
    for line in github_annotations(result).splitlines():
        assert line.startswith(("::error ", "::warning ")), line
        _no_raw_control_text(line)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=logs, exprs=expressions)
def test_any_parsed_log_renders_in_every_format(text: str, exprs: list[str]) -> None:
    log = check_events(parse_bytes(text.encode()), "x.log", Inputs(parse_all(exprs)))
    render_everything(report([log]))


def test_a_summary_that_prints_nan_renders_as_strict_json(run: Run, tmp_path: Any) -> None:
    # Reuse disabled: "reused tokens percentage (%): -nan" (0 / 0 printed by glibc).
    lines = [f"{P}{BM} - {label}: 0" for label in LABELS[:5]]
    lines += [
        f"{P}{BM} - reused unique blocks percentage (%): -nan",
        f"{P}{BM} - cache hit rate: inf",
        f"{P}{BM} - reused tokens: 0",
        f"{P}{BM} - reused tokens percentage (%): -nan",
    ]
    path = tmp_path / "nan.log"
    path.write_text("\n".join(lines) + "\n")
    r = run("check", "--format", "json", "-e", "reused_tokens_percent >= 0", str(path))
    assert r.code == 1, r.err  # nan satisfies no comparison: a failed check, not a crash
    data = _strict_json(r.out)
    jsonschema.validate(data, SCHEMA)
    (summary,) = data["logs"][0]["summaries"]
    assert summary["reused_tokens_percent"] == "nan"
    assert summary["cache_hit_rate"] == "inf"
    assert data["logs"][0]["checks"][0]["observed"] == "nan"
    for fmt in ("--junit", "--markdown"):
        assert run("check", fmt, str(tmp_path / "out"), str(path)).code == 1


def test_log_text_never_reaches_the_terminal_raw(run: Run, tmp_path: Any) -> None:
    # A crafted error line: a CR that would overwrite the verdict, an OSC that retitles.
    path = tmp_path / "evil.log"
    path.write_text(
        f"[TensorRT-LLM][ERROR] boom\rverdict: PASS\x1b]0;pwned\x07\n{P}{BM} - reused blocks: 3\n"
    )
    r = run("check", "-e", "reused_blocks > 0", str(path))
    assert r.code == 0
    _no_raw_control_text(r.out)
    assert "boom\\rverdict: PASS\\e]0;pwned\\x07" in r.out


def test_request_records_stay_flat_for_the_one_line_writer() -> None:
    """Requests are written one per line by the C encoder (no nan handling, no nesting): a
    field that could hold a float or a record would need the general writer."""
    hints = typing.get_type_hints(RequestReport)
    for f in dataclasses.fields(RequestReport):
        kinds = set(typing.get_args(hints[f.name])) or {hints[f.name]}
        assert kinds <= {int, bool, type(None)}, f.name


def test_every_request_is_one_line_of_json(run: Run) -> None:
    golden = Path(__file__).resolve().parent.parent / "golden_logs" / "offloading_enabled.log"
    out = run("check", str(golden), "--format", "json").out
    requests = json.loads(out)["logs"][0]["requests"]
    assert len(requests) > 4
    lines = [line.strip().rstrip(",") for line in out.splitlines() if '"request_id"' in line]
    assert [json.loads(line) for line in lines] == requests
