"""Exit codes: one contract for every command, defined here and nowhere else.

====  =====================================================================================
code  meaning
====  =====================================================================================
0     every check passed
1     a check failed (wins over 2 when several logs are checked)
2     the input cannot be used: usage, scenario, expression, unreadable or not-analyzable log,
      sides that cannot be compared
3     the engine crashed, hung or could not start (TensorRT-LLM missing or failing to
      import), or kvverify itself broke (one line; the traceback saved to a file)
130   interrupted (Ctrl-C)
143   ``kvverify run`` stopped by SIGTERM (a cancelled CI job); 129 for SIGHUP
====  =====================================================================================
"""

from __future__ import annotations

from typing import Literal

PASS = 0
FAIL = 1
UNUSABLE = 2
ENGINE = 3
INTERRUPTED = 130

#: How a check, a log or a whole report ended. ``engine_unavailable``: the engine could not
#: start (TensorRT-LLM missing or failing to import): a broken runner, not a bad scenario.
Verdict = Literal["pass", "fail", "not_analyzable", "crashed", "engine_unavailable", "interrupted"]
#: A comparison's verdict (``kvverify compare``): ``not_comparable`` exits 2.
CompareVerdict = Literal["pass", "fail", "not_comparable"]

#: Worst first: the verdict of several logs is the first of these any of them has.
SEVERITY: tuple[Verdict, ...] = (
    "interrupted",
    "crashed",
    "engine_unavailable",
    "fail",
    "not_analyzable",
    "pass",
)

_BY_VERDICT: dict[Verdict | CompareVerdict, int] = {
    "pass": PASS,
    "fail": FAIL,
    "not_analyzable": UNUSABLE,
    "crashed": ENGINE,
    "engine_unavailable": ENGINE,
    "interrupted": INTERRUPTED,
    "not_comparable": UNUSABLE,
}


def for_verdict(verdict: Verdict | CompareVerdict) -> int:
    return _BY_VERDICT[verdict]


def worst(verdicts: list[Verdict]) -> Verdict:
    """The verdict of several results: the most severe; nothing at all is not analyzable."""
    present = set(verdicts)
    return next((v for v in SEVERITY if v in present), "not_analyzable")


def for_signal(signum: int) -> int:
    """A run stopped by a signal exits as a shell reports it: 128 + the signal's number."""
    return 128 + signum
