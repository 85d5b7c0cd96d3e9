"""Pydantic's validation errors as scenario problems: one line each, ``file:line:col: key.path:
message``, pointing at the variant when the value came from one, with a did-you-mean for an
unknown key."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel, ValidationError

from kvverify.errors import did_you_mean
from kvverify.scenario.located import Document, dotted
from kvverify.scenario.schema import UNION_TAGS, Loc, ScenarioSpec


def _model_at(loc: Loc) -> type[BaseModel] | None:
    """The model a location in a scenario document is validated by (for did-you-mean)."""
    model: type[BaseModel] | None = ScenarioSpec
    for part in loc:
        if model is None:
            return None
        if isinstance(part, int):
            continue
        field = model.model_fields.get(str(part))
        if field is None:
            if model is ScenarioSpec or part in ("variants",):
                return None
            continue
        ann = field.annotation
        model = next((t for t in _models_in(ann)), None)
    return model


def _models_in(ann: Any) -> Iterator[type[BaseModel]]:
    if isinstance(ann, type) and issubclass(ann, BaseModel):
        yield ann
        return
    for arg in getattr(ann, "__args__", ()) or ():
        yield from _models_in(arg)


def messages(exc: ValidationError, doc: Document, prefer: Loc | None = None) -> list[str]:
    """One line per problem. ``prefer``: where a variant's overrides are, so an error in a
    value a variant set points at the variant."""
    out = []
    seen: set[tuple[Loc, str]] = set()
    for err in exc.errors():
        loc = tuple(
            p
            for p in err["loc"]
            if p not in UNION_TAGS and not (isinstance(p, str) and p.startswith("function-"))
        )
        full = loc
        if prefer is not None and (
            (*prefer, *loc) in doc.positions
            or (*prefer, *loc) in doc.key_positions
            or (loc and (*prefer, *loc[:-1]) in doc.positions and err["type"] == "missing")
        ):
            full = (*prefer, *loc)
        kind = err["type"]
        if kind == "extra_forbidden":
            model = _model_at(loc[:-1])
            fields = model.model_fields if model is not None else {}
            msg = f"unknown key{did_you_mean(loc[-1], fields)}"
            where = doc.at(full, key=True)
        else:
            msg = err["msg"].removeprefix("Value error, ")
            if kind == "missing":
                msg = "required key is missing"
            elif kind == "byte_size":
                msg = "not a size: write bytes or a number with a unit, e.g. 0, 1GiB, 512MB"
            elif kind == "string_type" and isinstance(err.get("input"), bool):
                msg += " (YAML reads on/off/yes/no/true/false as booleans: put the name in quotes)"
            where = doc.at(full)
        key = (full, msg)
        if key in seen:
            continue
        seen.add(key)
        out.append(f"{where}: {dotted(full)}: {msg}")
    return out
