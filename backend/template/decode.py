"""One generic decoder from template nodes to plugin configuration dataclasses.

A plugin declares its configuration as a dataclass whose field names are the
Packer keys. Field metadata (set with :func:`opt`) carries what the type alone
cannot say: required, documentation, whether strings are rendered through the
``{{ }}`` engine at prepare time, extra key aliases.

Decoding is weakly typed, as Packer's (mapstructure with WeaklyTypedInput):
``"22"`` decodes into an ``int`` field, a single string into a ``list[str]``,
``"true"`` into a ``bool``. Every problem is collected with its location; the
decoder never stops at the first one.
"""

from __future__ import annotations

import dataclasses
import types
from dataclasses import MISSING, dataclass, field
from typing import Any, Callable, Union, get_args, get_origin, get_type_hints

from .errors import Problem, did_you_mean
from .source import Loc, Node, UnknownText

__all__ = [
    "Duration",
    "Decoder",
    "Deferred",
    "opt",
    "config_fields",
    "ConfigProblems",
]


class Duration(float):
    """Seconds, written in a template as a Go duration string (``"1m30s"``)."""


class Deferred(str):
    """A string kept verbatim at prepare time and rendered by the plugin at run time."""


def opt(
    default: Any = MISSING,
    *,
    required: bool = False,
    doc: str = "",
    render: bool = True,
    aliases: tuple[str, ...] = (),
    secret: bool = False,
    default_factory: Callable[[], Any] | None = None,
) -> Any:
    """A configuration field with Packer-style metadata."""
    meta = {"required": required, "doc": doc, "render": render, "aliases": aliases,
            "secret": secret}
    if default_factory is not None:
        return field(default_factory=default_factory, metadata=meta)
    if default is MISSING and not required:
        default = None
    if isinstance(default, (list, dict, set)):
        value = default
        return field(default_factory=lambda: type(value)(value), metadata=meta)
    return field(default=default, metadata=meta)


class ConfigProblems(Exception):
    """Raised by a config's ``check`` hook: a list of (field or '', message)."""

    def __init__(self, problems: list[tuple[str, str]]):
        self.problems = problems
        super().__init__("; ".join(m for _, m in problems))


@dataclass(frozen=True, slots=True)
class FieldSpec:
    name: str
    type: Any
    required: bool
    render: bool
    aliases: tuple[str, ...]
    secret: bool
    doc: str
    has_default: bool


_specs_cache: dict[type, dict[str, FieldSpec]] = {}


def config_fields(cls: type) -> dict[str, FieldSpec]:
    """The template keys a config dataclass accepts (aliases included)."""
    cached = _specs_cache.get(cls)
    if cached is not None:
        return cached
    hints = get_type_hints(cls)
    out: dict[str, FieldSpec] = {}
    for f in dataclasses.fields(cls):
        if f.name.startswith("_"):
            continue
        meta = f.metadata or {}
        spec = FieldSpec(
            name=f.name,
            type=hints[f.name],
            required=bool(meta.get("required")),
            render=meta.get("render", True),
            aliases=tuple(meta.get("aliases", ())),
            secret=bool(meta.get("secret")),
            doc=meta.get("doc", ""),
            has_default=f.default is not MISSING or f.default_factory is not MISSING,
        )
        out[f.name] = spec
        for alias in spec.aliases:
            out[alias] = spec
    _specs_cache[cls] = out
    return out


_TRUE = {"1", "t", "T", "TRUE", "true", "True"}
_FALSE = {"0", "f", "F", "FALSE", "false", "False", ""}


class Decoder:
    """Decode nodes into config dataclasses, collecting problems.

    ``render`` is applied to every string value of a field whose metadata says
    ``render=True`` (Packer interpolates config strings at prepare time); it
    receives the string and its location and returns the rendered text, or
    raises ``ValueError`` with a user-facing message.
    """

    def __init__(self, render: Callable[[str, Loc], str] | None = None,
                 ignore_keys: Callable[[str], bool] | None = None, strict_lists: bool = False):
        self.render = render
        self.ignore_keys = ignore_keys or (lambda k: False)
        #: HCL2: a list setting takes a list only (Packer converts HCL2 values by type, and
        #: neither lifts a single value into a list nor splits a string at commas)
        self.strict_lists = strict_lists
        self.problems: list[Problem] = []
        #: optional syntax check for strings kept for run-time rendering
        self.check_deferred: Callable[[str, Loc], list[str]] | None = None

    # -- public -----------------------------------------------------------
    def decode(self, cls: type, nodes: Node | list[Node], loc: Loc | None = None) -> Any:
        """Decode one or more map nodes (later ones override earlier keys)."""
        if isinstance(nodes, Node):
            nodes = [nodes]
        values: dict[str, Any] = {}
        locs: dict[str, Loc] = {}
        specs = config_fields(cls)
        base_loc = loc or (nodes[0].loc if nodes else Loc(""))
        for node in nodes:
            if node.value is None:
                continue
            if not node.is_map:
                self.problem(node.loc, f"expected an object, got {node.type_name()}")
                continue
            for key, child in node.items():
                if self.ignore_keys(key):
                    continue
                spec = specs.get(key)
                kloc = node.key_loc(key)
                if spec is None:
                    hint = did_you_mean(key, _visible_keys(specs))
                    self.problem(kloc, f'unknown configuration key "{key}"{hint}')
                    continue
                if isinstance(child.value, UnknownText) and not _holds_text(spec.type):
                    # known only at build time (a data source's output): a zero value here
                    values[spec.name] = _zero(spec.type)
                    continue
                ok, value = self._convert(spec.type, child, spec.render)
                if ok:
                    if spec.name in values:  # a later raw (a provisioner's override)
                        value = _decode_over(values[spec.name], value)
                    values[spec.name] = value
                    locs[spec.name] = child.loc
        for name, spec in specs.items():
            if name != spec.name:
                continue
            if spec.required and name not in values:
                self.problem(base_loc, f'missing required key "{name}"')
        kwargs = {k: v for k, v in values.items()}
        try:
            obj = _construct(cls, kwargs)
        except TypeError as e:  # a required field had no value; already reported
            del e
            return None
        if _has_slot(obj):
            object.__setattr__(obj, "_locs", locs)
        check = getattr(obj, "check", None)
        if callable(check):
            try:
                check()
            except ConfigProblems as cp:
                for key, msg in cp.problems:
                    self.problem(locs.get(key, base_loc).at(_join(base_loc.path, key)) if key else base_loc, msg)
            except ValueError as e:
                self.problem(base_loc, str(e))
        return obj

    def problem(self, loc: Loc, message: str) -> None:
        self.problems.append(Problem(loc, message))

    # -- conversion -------------------------------------------------------
    def _convert(self, tp: Any, node: Node, render: bool) -> tuple[bool, Any]:
        origin = get_origin(tp)
        v = node.value
        if tp is Any:
            return True, self._render_plain(node, render)
        if origin in (Union, types.UnionType):
            args = [a for a in get_args(tp) if a is not type(None)]
            if v is None:
                return True, None
            if len(args) == 1:
                return self._convert(args[0], node, render)
            # first alternative that decodes without problems wins
            saved = self.problems
            for a in args:
                self.problems = []
                ok, out = self._convert(a, node, render)
                if ok and not self.problems:
                    self.problems = saved
                    return True, out
            self.problems = saved
            names = " or ".join(_type_label(a) for a in args)
            self.problem(node.loc, f"expected {names}, got {node.type_name()}")
            return False, None
        if tp is Deferred:
            if isinstance(v, str):
                if self.check_deferred is not None and "{{" in v:
                    for msg in self.check_deferred(v, node.loc):
                        self.problem(node.loc, msg)
                return True, Deferred(v)
            ok, out = self._scalar(str, node, False)
            return ok, Deferred(out) if ok else out
        if tp in (str, int, float, bool, Duration):
            return self._scalar(tp, node, render)
        if origin in (list, tuple) or tp in (list, tuple):
            args = get_args(tp)
            item_tp = args[0] if args else Any
            if v is None:
                return True, []
            items = v if isinstance(v, list) else None
            if items is None:
                if self.strict_lists and not (isinstance(v, dict) and _holds_map(item_tp)):
                    self.problem(node.loc, f"expected a list, got {node.type_name()}")
                    return False, None
                if isinstance(v, dict) and not _holds_map(item_tp):
                    self.problem(node.loc, f"expected a list, got {node.type_name()}")
                    return False, None
                if isinstance(v, str):
                    # as Packer's decoder: a string becomes a list by splitting at commas,
                    # and each part is then decoded as an item ("0,3" for exit codes)
                    deferred = item_tp is Deferred
                    text = v if deferred else self._render(v, node.loc, render)
                    if not text:
                        return True, []
                    items = [Node(part, node.loc) for part in text.split(",")]
                    render = False  # rendered already (or kept for run time)
                else:
                    items = [node]  # weak typing: a single value becomes a one-item list
            out, ok_all = [], True
            for item in items:
                ok, value = self._convert(item_tp, item, render)
                ok_all &= ok
                if ok:
                    out.append(value)
            return ok_all, out
        if origin is dict or tp is dict:
            args = get_args(tp)
            val_tp = args[1] if len(args) == 2 else Any
            if v is None:
                return True, {}
            if isinstance(v, list) and not self.strict_lists and \
                    all(isinstance(c.value, dict) for c in v):
                # weak typing: a list of objects merges into one (an empty list is empty)
                merged: dict[str, Node] = {}
                for c in v:
                    merged.update(c.items())
                v = merged
            if not isinstance(v, dict):
                self.problem(node.loc, f"expected an object, got {node.type_name()}")
                return False, None
            out, ok_all = {}, True
            for k, child in v.items():
                ok, value = self._convert(val_tp, child, render)
                ok_all &= ok
                if ok:
                    # keys are rendered too, as Packer's ({"{{pwd}}/shared": "/mnt"})
                    out[self._render(k, node.key_loc(k) if isinstance(node.value, dict)
                                     else child.loc, render)] = value
            return ok_all, out
        if dataclasses.is_dataclass(tp):
            if v is None:
                return True, None
            if not isinstance(v, dict):
                self.problem(node.loc, f"expected an object, got {node.type_name()}")
                return False, None
            before = len(self.problems)
            obj = self.decode(tp, node)
            return obj is not None and len(self.problems) == before, obj
        return True, self._render_plain(node, render)

    def _render_plain(self, node: Node, render: bool) -> Any:
        v = node.value
        if isinstance(v, dict):
            return {k: self._render_plain(c, render) for k, c in v.items()}
        if isinstance(v, list):
            return [self._render_plain(c, render) for c in v]
        if isinstance(v, str):
            return self._render(v, node.loc, render)
        return v

    def _render(self, s: str, loc: Loc, render: bool) -> str:
        if not render or self.render is None or "{{" not in s:
            return s
        try:
            return self.render(s, loc)
        except ValueError as e:
            self.problem(loc, str(e))
            return s

    def _scalar(self, tp: type, node: Node, render: bool) -> tuple[bool, Any]:
        v = node.value
        if isinstance(v, (dict, list)):
            self.problem(node.loc, f"expected {_type_label(tp)}, got {node.type_name()}")
            return False, None
        if isinstance(v, str):
            v = self._render(v, node.loc, render)
        try:
            return True, _weak(tp, v)
        except ValueError as e:
            self.problem(node.loc, str(e))
            return False, None


def _decode_over(old: Any, new: Any) -> Any:
    """``new`` decoded over ``old``, as Packer's decoder puts a later raw (an override) on
    the earlier value: a list replaces the items it has and keeps the rest (an override's
    one-line ``inline`` replaces the first line only), a map adds and replaces keys, a
    nested config takes the settings the later raw gives."""
    if isinstance(old, list) and isinstance(new, list):
        return new + old[len(new):]
    if isinstance(old, dict) and isinstance(new, dict):
        return {**old, **new}
    if dataclasses.is_dataclass(old) and dataclasses.is_dataclass(new) and type(old) is type(new):
        given = getattr(new, "_locs", None)
        if given is not None:
            merged = dataclasses.replace(old, **{k: getattr(new, k) for k in given})
            if _has_slot(merged):
                object.__setattr__(merged, "_locs", {**getattr(old, "_locs", {}), **given})
            return merged
    return new


def _holds_map(tp: Any) -> bool:
    """An item type an object decodes into (a map, a nested config, anything)."""
    return tp is Any or tp is dict or get_origin(tp) is dict or dataclasses.is_dataclass(tp)


def go_number_text(v: int | float) -> str:
    """A number as Go's weak decoding writes it into a string field: integers plainly,
    floats in their shortest form without an exponent (``5.0`` -> ``5``, ``1e21`` ->
    ``1000000000000000000000``)."""
    if isinstance(v, int):
        return str(v)
    if v != v or v in (float("inf"), float("-inf")):
        return {"inf": "+Inf", "-inf": "-Inf"}.get(str(v), "NaN")
    from decimal import Decimal

    return format(Decimal(repr(v)).normalize(), "f")


def _holds_text(tp: Any) -> bool:
    """A string-valued field (Optional or not), where an unknown value can stand as text."""
    if get_origin(tp) in (Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        return len(args) == 1 and _holds_text(args[0])
    return tp in (str, Deferred, Any)


def _zero(tp: Any) -> Any:
    origin = get_origin(tp) or tp
    if origin in (list, tuple):
        return []
    if origin is dict:
        return {}
    if tp in (bool, int, float, Duration):
        return tp(0)
    return None


def _weak(tp: type, v: Any) -> Any:
    if tp is str:
        if v is None:
            return ""
        if isinstance(v, bool):
            return "1" if v else "0"
        if isinstance(v, (int, float)):
            return go_number_text(v)
        return str(v)
    if tp is bool:
        if isinstance(v, bool):
            return v
        if v is None:
            return False
        if isinstance(v, (int, float)):
            return v != 0
        s = str(v).strip()
        if s in _TRUE:
            return True
        if s in _FALSE:
            return False
        raise ValueError(f'expected a boolean, got "{v}"')
    if tp is int:
        if isinstance(v, bool):
            return int(v)
        if isinstance(v, int):
            return v
        if isinstance(v, float):
            if v != v or v in (float("inf"), float("-inf")):
                raise ValueError(f"expected an integer, got {v}")
            return int(v)  # JSON numbers are floats to Go, and become ints by truncation
        if v is None:
            return 0
        return _go_parse_int(str(v), v)
    if tp is float:
        if isinstance(v, bool):
            return float(v)
        if isinstance(v, (int, float)):
            return float(v)
        if v is None:
            return 0.0
        try:
            return float(str(v).strip())
        except ValueError:
            raise ValueError(f'expected a number, got "{v}"') from None
    if tp is Duration:
        if v is None or v == "":
            return Duration(0)
        if isinstance(v, bool):
            raise ValueError(f"expected a duration such as \"30s\" or \"5m\", got {v}")
        if isinstance(v, (int, float)):
            return Duration(v / 1e9)  # Go decodes bare numbers as nanoseconds
        from .golang import parse_duration

        try:
            return Duration(parse_duration(str(v)))
        except ValueError as e:
            raise ValueError(f'{e}; expected a duration such as "30s", "5m" or "1h30m"') from None
    raise ValueError(f"unsupported type {tp}")


def _go_parse_int(text: str, shown: Any) -> int:
    """Go's ``strconv.ParseInt(text, 0, 64)``: a sign, then decimal, ``0x`` hex, ``0o`` or
    ``0`` octal, ``0b`` binary; ``_`` may separate digits after a base prefix."""
    bad = ValueError(f'expected an integer, got "{shown}"')
    body = text[1:] if text[:1] in "+-" else text
    sign = -1 if text[:1] == "-" else 1
    low = body.lower()
    if low.startswith(("0x", "0o", "0b")):
        base, digits, prefixed = {"x": 16, "o": 8, "b": 2}[low[1]], body[2:], True
    elif len(body) > 1 and body[0] == "0":
        base, digits, prefixed = 8, body[1:], True
    else:
        base, digits, prefixed = 10, body, False
    if not digits.strip("_") or (not prefixed and "_" in digits) or digits.endswith("_") \
            or "__" in digits:
        raise bad
    try:
        value = sign * int(digits.replace("_", ""), base)
    except ValueError:
        raise bad from None
    if not -(1 << 63) <= value < (1 << 63):
        raise ValueError(f'the integer "{shown}" is out of range')
    return value


def _type_label(tp: Any) -> str:
    if tp is str:
        return "a string"
    if tp is int:
        return "an integer"
    if tp is bool:
        return "a boolean"
    if tp is float:
        return "a number"
    if tp is Duration:
        return "a duration"
    if get_origin(tp) is list:
        return "a list"
    if get_origin(tp) is dict or dataclasses.is_dataclass(tp):
        return "an object"
    return getattr(tp, "__name__", str(tp))


def _visible_keys(specs: dict[str, FieldSpec]) -> list[str]:
    return list(specs)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _has_slot(obj: Any) -> bool:
    return hasattr(obj, "__dict__")


_required_cache: dict[type, tuple[str, ...]] = {}


def _construct(cls: type, kwargs: dict[str, Any]) -> Any:
    # Fill required fields that are missing with None so one missing key does
    # not hide every other problem; the caller already reported it.
    required = _required_cache.get(cls)
    if required is None:
        required = _required_cache[cls] = tuple(
            f.name for f in dataclasses.fields(cls)
            if f.default is MISSING and f.default_factory is MISSING)
    for name in required:
        if name not in kwargs:
            kwargs[name] = None
    return cls(**kwargs)


_secret_cache: dict[type, tuple[tuple[str, bool], ...]] = {}


def _secret_fields(cls: type) -> tuple[tuple[str, bool], ...]:
    """(field, is secret) for the fields that are secret or may hold configs that have some;
    computed once per class (a template may have hundreds of thousands of provisioners)."""
    got = _secret_cache.get(cls)
    if got is None:
        got = tuple((name, spec.secret) for name, spec in config_fields(cls).items()
                    if name == spec.name and (spec.secret or _may_nest(spec.type)))
        _secret_cache[cls] = got
    return got


def _may_nest(tp: Any) -> bool:
    if dataclasses.is_dataclass(tp) or tp is Any:
        return True
    return any(_may_nest(a) for a in get_args(tp))


def secret_values(obj: Any) -> list[str]:
    """Every non-empty value of a field marked ``secret`` (nested configs too)."""
    out: list[str] = []
    if obj is None or not dataclasses.is_dataclass(obj):
        return out
    for name, secret in _secret_fields(type(obj)):
        value = getattr(obj, name, None)
        if secret and isinstance(value, str) and value:
            out.append(value)
        elif dataclasses.is_dataclass(value):
            out.extend(secret_values(value))
        elif isinstance(value, list):
            for item in value:
                out.extend(secret_values(item))
    return out


def locs_of(obj: Any) -> dict[str, Loc]:
    return getattr(obj, "_locs", {}) or {}

