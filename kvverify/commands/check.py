"""``kvverify check``: saved logs in, a verdict out."""

from __future__ import annotations

from kvverify.check import Inputs, check_paths
from kvverify.errors import KvverifyError
from kvverify.evidence.facts import StepPlan
from kvverify.expect import parse_all
from kvverify.gate.diff import Gate
from kvverify.options import Output
from kvverify.publish import publish


def main(
    logs: tuple[str, ...],
    expressions: tuple[str, ...],
    scenario: str | None,
    variant: str | None,
    jobs: int,
    gate: Gate,
    output: Output,
) -> int:
    inputs = Inputs(expectations=parse_all(expressions, "cli"), jobs=jobs)
    tolerance: dict[str, dict[str, str]] = {}
    if scenario is not None:
        inputs, tolerance = scenario_inputs(scenario, variant, inputs)
    elif variant is not None:
        raise KvverifyError("--variant needs --scenario", hint="add --scenario FILE")
    result = gate.apply(check_paths(list(logs), inputs), tolerance)
    publish(result, output)
    return result.exit_code


def scenario_inputs(
    path: str, variant: str | None, inputs: Inputs
) -> tuple[Inputs, dict[str, dict[str, str]]]:
    """Expectations, steps and the model's prediction of one scenario variant, and its
    baseline tolerances (for the logs checked, whichever variant they name)."""
    from kvverify.predict import marker_for
    from kvverify.scenario import load

    s = load(path)
    if variant is None:
        if len(s.variants) != 1:
            raise KvverifyError(
                "the scenario has several variants: say which one the logs ran",
                where=path,
                hint="add --variant " + " or --variant ".join(s.variants),
            )
        (v,) = s.variants.values()
    else:
        (v,) = s.select([variant])
    inputs.scenario_expectations = list(v.expect)
    inputs.steps = StepPlan(
        prompt_lengths=v.prompt_lengths(), max_batch_size=v.engine.max_batch_size
    )
    inputs.predicted = marker_for(v) if v.match_predicted else None
    return inputs, {"": dict(v.tolerance), v.name: dict(v.tolerance)}
