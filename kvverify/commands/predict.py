"""``kvverify predict``: what the reference model says a scenario will show."""

from __future__ import annotations

import json

from kvverify import exitcodes
from kvverify.console import console
from kvverify.predict import as_dict, predict_scenario, render


def main(scenario: str, variants: tuple[str, ...], dialect: str, fmt: str) -> int:
    predictions = [as_dict(p) for p in predict_scenario(scenario, variants, dialect)]
    if fmt == "json":
        console.out(json.dumps({"scenario": scenario, "variants": predictions}, indent=2))
    else:
        console.out(render(scenario, predictions))
    return exitcodes.PASS
