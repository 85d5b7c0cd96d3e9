"""Loading a scenario: read the file safely, validate it, resolve each variant.

A variant's ``engine``, ``sampling`` and ``prompts`` merge into the scenario's key by key,
``steps`` replaces, ``expect`` adds. Every problem of every variant is reported at once.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from kvverify.errors import KvverifyError, ScenarioError, did_you_mean
from kvverify.expect import Expectation, parse
from kvverify.plan import MAX_STEPS, Step
from kvverify.scenario.located import Document, dotted, read_text
from kvverify.scenario.messages import messages
from kvverify.scenario.schema import (
    EngineSpec,
    ExpectSpec,
    Loc,
    Prompt,
    SamplingSpec,
    ScenarioSpec,
    VariantSpec,
    count_steps,
    flatten,
    step_names,
)
from kvverify.text import quote


@dataclass(frozen=True)
class Variant:
    """One variant, resolved: what a worker runs and what the checks expect."""

    scenario: str
    name: str
    description: str
    engine: EngineSpec
    sampling: SamplingSpec
    prompts: dict[str, Prompt]
    steps: tuple[Step, ...]
    expect: tuple[Expectation, ...]
    match_predicted: tuple[ExpectSpec, ...]
    texts: dict[str, str]  # text prompts, files read
    #: baseline.tolerance: how far each metric may move the worse way against a baseline
    tolerance: dict[str, str] = field(default_factory=dict)

    def prompt_text(self, name: str) -> str | None:
        return self.texts.get(name)

    def prompt_lengths(self) -> tuple[int | None, ...]:
        """Each step's prompt length in tokens, where the scenario gives token ids (not for a
        turn that continues a conversation: the answer before it decides)."""
        return tuple(
            None if s.continues or (ids := self.prompts[s.prompt].token_ids()) is None else len(ids)
            for s in self.steps
        )


@dataclass(frozen=True)
class Scenario:
    path: str
    spec: ScenarioSpec
    variants: dict[str, Variant]

    @property
    def name(self) -> str:
        return self.spec.name

    def select(self, names: tuple[str, ...] | list[str] | None) -> list[Variant]:
        if not names:
            return list(self.variants.values())
        out = []
        for n in names:
            if n not in self.variants:
                raise KvverifyError(
                    f"no variant {quote(n)}{did_you_mean(n, self.variants)}",
                    where=self.path,
                    hint="variants: " + ", ".join(self.variants),
                )
            out.append(self.variants[n])
        return out


def _conversation_problems(
    steps: tuple[Step, ...], resolved: ScenarioSpec, at: str, loc: Loc
) -> list[str]:
    """A turn that continues a conversation needs a turn before it, and token-id prompts all
    along the conversation (text would be re-tokenized, and reuse depends on exact tokens)."""
    out = []
    if steps and steps[0].continues:
        out.append(f"{at}: {dotted(loc)}: the first step has no conversation to continue")
    for i, step in enumerate(steps):
        if not step.continues:
            continue
        for turn in (steps[i - 1], step) if i else (step,):
            prompt = resolved.prompts.get(turn.prompt)
            if prompt is not None and prompt.token_ids() is None:
                out.append(
                    f"{at}: {dotted(loc)}: step {step.index} continues a conversation, so "
                    f"prompt {quote(turn.prompt)} must be token ids (tokens or synthetic), "
                    "not text"
                )
    return sorted(set(out))


def _merge(base: Any, override: Any) -> Any:
    if isinstance(base, dict) and isinstance(override, dict):
        out = dict(base)
        for k, v in override.items():
            out[k] = _merge(base.get(k), v) if k in base else v
        return out
    return override


def load(path: str | Path) -> Scenario:
    """Read, validate and resolve a scenario file. Raises :class:`ScenarioError` listing every
    problem found."""
    p = Path(path)
    return loads(read_text(p), str(path), base_dir=p.parent)


def loads(text: str, path: str = "<scenario>", *, base_dir: Path | None = None) -> Scenario:
    doc = Document(text, path)
    problems = list(doc.problems)
    if not isinstance(doc.data, dict):
        raise ScenarioError(
            problems
            or [
                f"{path}:1:1: a scenario is a mapping of keys "
                "(schema_version, name, engine, prompts, steps, ...)"
            ],
            where=path,
        )
    try:
        spec = ScenarioSpec.model_validate(doc.data)
    except ValidationError as exc:
        # The schema failed, so no variant resolves; what can still be checked on the raw
        # document is reported too, so that one round of fixes is enough.
        found = problems + messages(exc, doc) + _raw_problems(doc)
        raise ScenarioError(_sorted(found), where=path) from None
    variants: dict[str, Variant] = {}
    names = list(spec.variants) or ["default"]
    for name in names:
        try:
            variants[name] = _resolve(spec, name, doc, base_dir, problems)
        except _VariantProblems:
            continue
    if problems:
        raise ScenarioError(_sorted(problems), where=path)
    return Scenario(path=path, spec=spec, variants=variants)


def _raw_problems(doc: Document) -> list[str]:
    """Expectations that do not parse and steps naming a prompt that does not exist, read on
    the raw document (for when the schema fails and nothing resolves)."""
    data = doc.data if isinstance(doc.data, dict) else {}
    out: list[str] = []
    variants: dict[str, Any] = data["variants"] if isinstance(data.get("variants"), dict) else {}
    scopes: list[tuple[Loc, Any]] = [((), data)]
    scopes += [(("variants", name), v) for name, v in variants.items() if isinstance(v, dict)]
    prompts = set(data.get("prompts") or {}) if isinstance(data.get("prompts"), dict) else set()
    for base, node in scopes:
        items = node.get("expect")
        for i, item in enumerate(items if isinstance(items, list) else []):
            if not isinstance(item, str):
                continue
            loc: Loc = (*base, "expect", i)
            try:
                parse(item, source="scenario")
            except KvverifyError as exc:
                hint = f" ({exc.hint})" if exc.hint else ""
                out.append(f"{doc.at(loc)}: {dotted(loc)}: {exc.message}{hint}")
        own = node.get("prompts")
        known = prompts | (set(own) if isinstance(own, dict) else set())
        for loc, used in _raw_step_names(node.get("steps"), (*base, "steps")):
            if prompts and used not in known:
                out.append(
                    f"{doc.at(loc)}: {dotted(loc)}: no prompt named {quote(used)}"
                    f"{did_you_mean(used, known)}"
                )
    return out


def _raw_step_names(items: Any, loc: Loc) -> Iterator[tuple[Loc, str]]:
    for i, item in enumerate(items if isinstance(items, list) else []):
        if isinstance(item, str):
            yield (*loc, i), item
        elif isinstance(item, dict) and isinstance(item.get("prompt"), str):
            yield (*loc, i, "prompt"), item["prompt"]
        elif isinstance(item, dict):
            yield from _raw_step_names(item.get("steps"), (*loc, i, "steps"))


def _sorted(problems: list[str]) -> list[str]:
    """By position in the file; problems without one first."""

    def key(p: str) -> tuple[int, int]:
        parts = p.split(":")
        try:
            return int(parts[1]), int(parts[2])
        except (IndexError, ValueError):
            return 0, 0

    return sorted(dict.fromkeys(problems), key=key)


class _VariantProblems(Exception):
    pass


def _resolve(
    spec: ScenarioSpec, name: str, doc: Document, base_dir: Path | None, problems: list[str]
) -> Variant:
    v = spec.variants.get(name, VariantSpec())
    raw = dict(doc.data) if isinstance(doc.data, dict) else {}
    merged = {
        **raw,
        "engine": _merge(raw.get("engine", {}), v.engine),
        "sampling": _merge(raw.get("sampling", {}), v.sampling),
        "prompts": {**(raw.get("prompts") or {}), **v.prompts},  # a prompt is replaced whole
        "steps": v.steps if v.steps is not None else raw.get("steps"),
        "variants": {},
        "expect": [],
        "baseline": _merge(raw.get("baseline", {}), v.baseline),
    }
    expect: list[Expectation] = []
    matches: list[ExpectSpec] = []
    written: list[tuple[Loc, Expectation]] = []
    for where, items in ((("expect",), spec.expect), (("variants", name, "expect"), v.expect)):
        for i, item in enumerate(items):
            if isinstance(item, ExpectSpec):
                matches.append(item)
                continue
            loc = (*where, i)
            try:
                parsed = parse(item, source="scenario")
                expect += parsed
                written += [(loc, e) for e in parsed]
            except KvverifyError as exc:
                problems.append(
                    f"{doc.at(loc)}: {dotted(loc)}: {exc.message}"
                    + (f" ({exc.hint})" if exc.hint else "")
                )
    try:
        resolved = ScenarioSpec.model_validate(merged)
    except ValidationError as exc:
        # Errors in the variant's overrides point at the variant; the rest at the base.
        problems += messages(exc, doc, prefer=("variants", name))
        raise _VariantProblems from None
    texts: dict[str, str] = {}
    for pname, prompt in resolved.prompts.items():
        if prompt.text is not None:
            texts[pname] = prompt.text
        elif prompt.file is not None:
            file = (base_dir or Path(".")) / prompt.file
            try:
                texts[pname] = read_text(file, "prompt")
            except KvverifyError as exc:
                file_loc: Loc = ("prompts", pname, "file")
                if pname in v.prompts:
                    file_loc = ("variants", name, *file_loc)
                problems.append(f"{doc.at(file_loc)}: {dotted(file_loc)}: {file}: {exc.message}")
    where_steps: Loc = ("variants", name, "steps") if v.steps is not None else ("steps",)
    count = count_steps(resolved.steps)
    if count > MAX_STEPS:
        problems.append(
            f"{doc.at(where_steps)}: {dotted(where_steps)}: the steps expand to {count:,} "
            f"requests; a variant runs at most {MAX_STEPS:,} (lower a repeat)"
        )
        raise _VariantProblems
    steps = tuple(
        Step(i + 1, s.prompt, s.priority, s.continues)
        for i, s in enumerate(flatten(resolved.steps))
    )
    problems += _conversation_problems(steps, resolved, doc.at(where_steps), where_steps)
    for loc, e in written:
        scope = e.request_scope
        if scope is not None and scope.kind == "step" and not 1 <= scope.index <= len(steps):
            problems.append(
                f"{doc.at(loc)}: {dotted(loc)}: {e.text}: there is no step {scope.index} "
                f"(the {'variant' if spec.variants else 'scenario'} has {len(steps)} steps, "
                "numbered from 1)"
            )
    for step_loc, used in step_names(resolved.steps, where_steps):
        if used not in resolved.prompts:
            problems.append(
                f"{doc.at(step_loc)}: {dotted(step_loc)}: no prompt named {quote(used)}"
                f"{did_you_mean(used, resolved.prompts)}"
            )
    return Variant(
        scenario=spec.name,
        name=name,
        description=v.description or spec.description,
        engine=resolved.engine,
        sampling=resolved.sampling,
        prompts=dict(resolved.prompts),
        steps=steps,
        expect=tuple(expect),
        match_predicted=tuple(matches),
        texts=texts,
        tolerance={k: str(v) for k, v in resolved.baseline.tolerance.items()},
    )
