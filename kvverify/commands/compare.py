"""``kvverify compare OLD NEW``: may the new release ship, by the evidence of both sides."""

from __future__ import annotations

from kvverify.gate.diff import Tolerance
from kvverify.gate.gates import compare
from kvverify.options import Output
from kvverify.publish import publish


def main(old: str, new: str, tolerance: dict[str, Tolerance], jobs: int, output: Output) -> int:
    result = compare(old, new, tolerance, jobs)
    publish(result, output)
    return result.exit_code
