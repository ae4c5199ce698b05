"""Template nodes that remember where they came from.

Every value read from a template file is wrapped in a :class:`Node` carrying a
:class:`Loc` (file, 1-based line and column, key path such as
``builders[1].ssh_port``), so any later error can point back at the source.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator


@dataclass(frozen=True, slots=True)
class Loc:
    file: str
    line: int = 0
    col: int = 0
    path: str = ""

    def child(self, key: str | int, line: int | None = None, col: int | None = None) -> Loc:
        """Location of a child value: same file, extended key path."""
        return Loc(
            self.file,
            self.line if line is None else line,
            self.col if col is None else col,
            join_path(self.path, key),
        )

    def at(self, path: str) -> Loc:
        return Loc(self.file, self.line, self.col, path)

    def __str__(self) -> str:
        where = self.file
        if self.line:
            where += f":{self.line}:{self.col}"
        return where


def join_path(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


class UnknownText(str):
    """A value known only when the template is built, such as a data source's output while
    validating: it reads as ``<unknown>`` and the decoder accepts it for any field."""

    __slots__ = ()

    def __new__(cls) -> UnknownText:
        return super().__new__(cls, "<unknown>")


class Node:
    """A template value with its location.

    ``value`` is one of: ``dict[str, Node]`` (insertion-ordered), ``list[Node]``,
    ``str``, ``int``, ``float``, ``bool`` or ``None``. For mappings,
    ``key_locs`` maps each key to the location of the key itself.
    """

    __slots__ = ("value", "loc", "key_locs")

    def __init__(self, value: Any, loc: Loc, key_locs: dict[str, Loc] | None = None):
        self.value = value
        self.loc = loc
        self.key_locs = key_locs

    # -- shape helpers -------------------------------------------------
    @property
    def is_map(self) -> bool:
        return isinstance(self.value, dict)

    @property
    def is_list(self) -> bool:
        return isinstance(self.value, list)

    @property
    def is_scalar(self) -> bool:
        return not isinstance(self.value, (dict, list))

    def get(self, key: str) -> Node | None:
        if isinstance(self.value, dict):
            return self.value.get(key)
        return None

    def items(self) -> Iterator[tuple[str, Node]]:
        assert isinstance(self.value, dict)
        return iter(self.value.items())

    def key_loc(self, key: str) -> Loc:
        if self.key_locs and key in self.key_locs:
            return self.key_locs[key]
        child = self.get(key)
        return child.loc if child is not None else self.loc.child(key)

    def to_plain(self) -> Any:
        """The value with all Node wrappers removed."""
        v = self.value
        if isinstance(v, dict):
            return {k: n.to_plain() for k, n in v.items()}
        if isinstance(v, list):
            return [n.to_plain() for n in v]
        return v

    def type_name(self) -> str:
        return type_name(self.value)

    def __repr__(self) -> str:
        return f"Node({self.to_plain()!r} @ {self.loc}/{self.loc.path})"


def type_name(v: Any) -> str:
    if isinstance(v, Node):
        v = v.value
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int):
        return "integer"
    if isinstance(v, float):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, (list, tuple)):
        return "list"
    if isinstance(v, dict):
        return "object"
    return type(v).__name__


def from_plain(value: Any, loc: Loc) -> Node:
    """Wrap a plain Python value; every child shares the parent's line/col."""
    if isinstance(value, Node):
        return value
    if isinstance(value, dict):
        return Node({str(k): from_plain(v, loc.child(str(k))) for k, v in value.items()}, loc)
    if isinstance(value, (list, tuple)):
        return Node([from_plain(v, loc.child(i)) for i, v in enumerate(value)], loc)
    return Node(value, loc)
