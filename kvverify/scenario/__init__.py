"""Scenario files: YAML with positions -> typed, frozen models; every error at once.

Four rooms: :mod:`.schema` (what a scenario may say), :mod:`.located` (YAML read safely, with
the position of every value), :mod:`.messages` (validation errors as ``file:line:col``
problems), :mod:`.resolve` (loading, and merging variants into the scenario).
"""

from __future__ import annotations

from kvverify.plan import MAX_STEPS, Step
from kvverify.scenario.resolve import Scenario, Variant, load, loads
from kvverify.scenario.schema import SCHEMA_VERSION

__all__ = ["MAX_STEPS", "SCHEMA_VERSION", "Scenario", "Step", "Variant", "load", "loads"]
