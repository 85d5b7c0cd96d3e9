"""The supervisor's own lines: the exit marker must survive whatever the engine left behind."""

from __future__ import annotations

from pathlib import Path

from kvverify import markers
from kvverify.check import Inputs, check_source
from kvverify.evidence.sources import LogSource
from kvverify.runner.supervise import _Log


def test_the_exit_marker_never_joins_an_unterminated_line(tmp_path: Path) -> None:
    # A process killed mid-line leaves no newline; glued to that line, the marker would be
    # swallowed by it and a timed-out run would be checked as if it had ended well.
    path = tmp_path / "run.log"
    with path.open("wb") as fh:
        log = _Log(fh)
        for metric, value in (("missed blocks", 3), ("reused blocks", 4), ("cache hit rate", 0.5)):
            log.write(
                f"[TensorRT-LLM][DEBUG] BlockManager[windowSize=256] - {metric}: {value}\n".encode()
            )
        log.write(b"[TensorRT-LLM][DEBUG] BlockManager[windowSize=256] - reused tokens: 1")
        log.append_line(
            markers.line(
                "exit", status="timeout", returncode=-9, signal="SIGKILL", detail="x"
            ).encode()
        )
    text = path.read_text()
    assert '1\n[kvverify] {"v":1,"t":"exit"' in text
    report = check_source(LogSource(str(path)), Inputs())
    assert report.verdict == "crashed"


def test_a_terminated_line_gets_no_extra_newline(tmp_path: Path) -> None:
    path = tmp_path / "run.log"
    with path.open("wb") as fh:
        log = _Log(fh)
        log.write(b"done\n")
        log.append_line(b"marker\n")
    assert path.read_bytes() == b"done\nmarker\n"
