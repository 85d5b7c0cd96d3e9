"""A scenario file as plain data with the position of every key and value, read safely.

Scenarios arrive in pull requests, so reading one must stay cheap whatever it holds: only
safe YAML is read, the file is bounded in size, nesting is bounded in depth (checked on the
event stream, before anything recurses), and aliases are bounded in how much they expand
(nine levels of nine aliases are 2 KB that expand to 387 million values). A file over a bound
is one problem with its position, found in milliseconds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from kvverify.errors import InputError, ScenarioError
from kvverify.scenario.schema import Loc

Position = tuple[int, int]  # 1-based line, column

#: Bounds a scenario file must keep.
MAX_BYTES = 4 << 20
MAX_DEPTH = 64
MAX_VALUES = 200_000


def read_text(path: Path, what: str = "scenario") -> str:
    """The text of a file, or one plain :class:`InputError`: missing, a directory, unreadable,
    too large, or not text."""
    where = str(path)
    if path.is_dir():
        raise InputError(f"is a directory, not a {what} file", where=where)
    try:
        with path.open("rb") as fh:
            data = fh.read(MAX_BYTES + 1)
    except FileNotFoundError:
        raise InputError(
            "no such file", where=where, hint=f"give a {what} file, e.g. scenarios/abab.yaml"
        ) from None
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror or exc}", where=where) from None
    if len(data) > MAX_BYTES:
        raise InputError(
            f"larger than {MAX_BYTES >> 20} MiB: not a {what} file",
            where=where,
            hint="put long prompts in files of their own (prompts.NAME.file)",
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(
            f"not a text file (invalid UTF-8 at byte {exc.start}): is it a {what}?", where=where
        ) from None
    if "\x00" in text:
        raise InputError(f"not a text file (it holds NUL bytes): is it a {what}?", where=where)
    return text


def _at(path: str, mark: Any) -> str:
    return f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else path


def _check_depth(text: str, path: str) -> None:
    """Nesting deeper than :data:`MAX_DEPTH`, found on the event stream (PyYAML's parser is a
    state machine; its composer and constructor recurse)."""
    depth = 0
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                raise ScenarioError(
                    [
                        f"{_at(path, event.start_mark)}: nested more than {MAX_DEPTH} levels "
                        "deep: not a scenario"
                    ],
                    where=path,
                )
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _check_expansion(root: yaml.Node, path: str) -> None:
    """Aliases that expand to more than :data:`MAX_VALUES` values or :data:`MAX_DEPTH` levels,
    measured without expanding them: each node's size and depth once, shared nodes included,
    without recursion (a chain of aliases can nest deeper than the file looks)."""
    measured: dict[int, tuple[int, int]] = {}  # id -> (values, depth)
    open_: set[int] = set()  # on the current path: seen again, the alias refers to itself
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        if id(node) in measured:
            continue
        kids = _children(node)
        if not children_done:
            if id(node) in open_:
                raise ScenarioError(
                    [f"{_at(path, node.start_mark)}: a YAML alias here refers to itself"],
                    where=path,
                )
            open_.add(id(node))
            stack.append((node, True))
            stack.extend((k, False) for k in kids if id(k) not in measured)
            continue
        open_.discard(id(node))
        values = 1 + sum(measured.get(id(k), (1, 1))[0] for k in kids)
        depth = 1 + max((measured.get(id(k), (1, 1))[1] for k in kids), default=0)
        if values > MAX_VALUES or depth > MAX_DEPTH:
            what = (
                f"expand to more than {MAX_VALUES:,} values"
                if values > MAX_VALUES
                else f"nest more than {MAX_DEPTH} levels deep"
            )
            raise ScenarioError(
                [
                    f"{_at(path, node.start_mark)}: the YAML aliases here {what}: not a "
                    "scenario (write the values out, or use repeat: N in steps)"
                ],
                where=path,
            )
        measured[id(node)] = (values, depth)


def dotted(loc: Loc) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


class Document:
    """A YAML document as plain Python data, with the position of every key and value."""

    def __init__(self, text: str, path: str) -> None:
        self.path = path
        self.positions: dict[Loc, Position] = {}
        self.key_positions: dict[Loc, Position] = {}
        self.problems: list[str] = []
        try:
            _check_depth(text, path)
            node = yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            what = getattr(exc, "problem", None) or str(exc)
            raise ScenarioError(
                [f"{_at(path, mark)}: not valid YAML: {what}"], where=path
            ) from None
        if node is not None:
            _check_expansion(node, path)
        self.data = self._convert(node, ()) if node is not None else None

    def _convert(self, node: yaml.Node, loc: Loc) -> Any:
        self.positions[loc] = (node.start_mark.line + 1, node.start_mark.column + 1)
        if isinstance(node, yaml.MappingNode):
            out: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                # Keys are names: take the text as written (YAML 1.1 would read on/off/yes/no
                # as booleans and 1 as a number).
                if not isinstance(key_node, yaml.ScalarNode):
                    self.problems.append(
                        f"{_at(self.path, key_node.start_mark)}: {dotted(loc)}: keys must be "
                        "plain names"
                    )
                    continue
                key = key_node.value
                if key in out:
                    self.problems.append(
                        f"{_at(self.path, key_node.start_mark)}: {dotted((*loc, key))}: "
                        f"duplicate key (the first one is at line "
                        f"{self.key_positions[(*loc, key)][0]})"
                    )
                    continue
                self.key_positions[(*loc, key)] = (
                    key_node.start_mark.line + 1,
                    key_node.start_mark.column + 1,
                )
                out[key] = self._convert(value_node, (*loc, key))
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self._convert(v, (*loc, i)) for i, v in enumerate(node.value)]
        try:
            return yaml.constructor.SafeConstructor().construct_object(node, deep=True)
        except yaml.YAMLError as exc:  # a value YAML cannot construct (a bad timestamp)
            what = getattr(exc, "problem", None) or str(exc)
            self.problems.append(f"{_at(self.path, node.start_mark)}: {dotted(loc)}: {what}")
            return None

    def at(self, loc: Loc, *, key: bool = False) -> str:
        """``file:line:col`` of the closest node to ``loc`` that exists."""
        table = self.key_positions if key else self.positions
        for n in range(len(loc), -1, -1):
            if loc[:n] in table:
                line, col = table[loc[:n]]
                return f"{self.path}:{line}:{col}"
            if key and loc[:n] in self.positions:
                line, col = self.positions[loc[:n]]
                return f"{self.path}:{line}:{col}"
        return self.path
