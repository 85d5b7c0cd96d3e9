"""``kvverify validate``: scenario files, every problem at once."""

from __future__ import annotations

from kvverify import exitcodes
from kvverify.console import console
from kvverify.errors import KvverifyError
from kvverify.scenario import load
from kvverify.text import clean


def main(scenarios: tuple[str, ...]) -> int:
    failed = 0
    for path in scenarios:
        try:
            s = load(path)
        except KvverifyError as exc:
            console.err(exc.render())
            failed += 1
            continue
        names = ", ".join(f"{v.name} ({len(v.steps)} steps)" for v in s.variants.values())
        console.out(f"{clean(path)}: ok: {s.name}: {names}")
    return exitcodes.UNUSABLE if failed else exitcodes.PASS
