"""Where HCL2 meets Kiln's plugins and versions.

* :func:`shape` fits a plugin body (a Node tree) to the plugin's configuration dataclass,
  as HCL's schema-driven decoding does: a nested block written once becomes a one-element
  list where the field is a list, and numbers and bools become HCL's text for them where
  the field is a string.
* :func:`check_version_constraint` reads ``packer.required_version`` constraints.
* :func:`plugin_note` says what Kiln has of a ``required_plugins`` entry.
"""

from __future__ import annotations

import re
from typing import Any

from ..source import Node
from .expr import render_value

__all__ = ["BlockNode", "shape", "check_version_constraint", "plugin_note"]


class BlockNode(Node):
    """A nested block written once: an object, or a one-element list where the plugin
    expects a list (see :func:`shape`)."""

    __slots__ = ()


def plugin_note(name: str, spec: dict) -> str:
    from ..plugins import catalog

    plugins = catalog()
    source = spec.get("source", "")
    version = spec.get("version", "")
    what = f'required_plugins: "{name}"'
    if source or version:
        what += f" ({' '.join(str(x) for x in (source, version) if x)})"
    have = [f"{kind} {t}" for kind in ("builder", "provisioner", "post-processor", "data source")
            for t in plugins.names(kind) if t == name or t.startswith(name + "-")]
    if have:
        return (f"{what}: Kiln has these built in ({', '.join(have)}) and downloads nothing")
    return f"{what}: Kiln has no components of this plugin and downloads nothing"


def shape(kind: str, type_name: str, node: Node) -> Node:
    """Fit a plugin body to the plugin's configuration, as HCL's schema-driven decoding does:
    a nested block written once becomes a one-element list where the field is a list
    (``launch_block_device_mappings { ... }``), and numbers and bools become HCL's text for
    them (``true``, ``1.5``) where the field is a string (Kiln's decoder would otherwise
    write a bool as Go's weak typing does, ``1``)."""
    try:
        from ..plugins import catalog

        cls = catalog().lookup(kind, type_name)
    except Exception:  # an unknown or broken plugin is reported when the build is prepared
        return node
    cfg = getattr(cls, "Config", None) if cls is not None else None
    if cfg is None:
        return node
    return _shape_node(node, cfg)


def _unwrap_optional(tp: Any) -> Any:
    import types
    import typing

    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [x for x in typing.get_args(tp) if x is not type(None)]
        if len(args) == 1:
            return args[0]
    return tp


def _shape_value(child: Node, tp: Any) -> Node:
    import dataclasses
    import typing

    tp = _unwrap_optional(tp)
    origin = typing.get_origin(tp)
    v = child.value
    if isinstance(tp, type) and issubclass(tp, str):
        if isinstance(v, (bool, int, float)):
            return Node(render_value(v), child.loc)
        return child
    if origin in (list, tuple) or tp in (list, tuple):
        args = typing.get_args(tp)
        item_tp = args[0] if args else Any
        if isinstance(child, BlockNode):
            items = [child]
        elif isinstance(v, list):
            items = v
        else:
            return child
        return Node([_shape_value(i, item_tp) for i in items], child.loc)
    if origin is dict and isinstance(v, dict):
        args = typing.get_args(tp)
        val_tp = args[1] if len(args) == 2 else Any
        return Node({k: _shape_value(c, val_tp) for k, c in v.items()}, child.loc,
                    child.key_locs)
    if dataclasses.is_dataclass(tp) and isinstance(v, dict):
        return _shape_node(child, tp)
    return child


def _shape_node(node: Node, cls: type) -> Node:
    from ..decode import config_fields

    try:
        specs = config_fields(cls)
    except Exception:
        return node
    if not isinstance(node.value, dict):
        return node
    out = {}
    for key, child in node.value.items():
        spec = specs.get(key)
        out[key] = child if spec is None else _shape_value(child, spec.type)
    return type(node)(out, node.loc, node.key_locs)


def _version(text: str) -> tuple[tuple[int, ...], str]:
    t = text.strip().lstrip("v")
    pre = ""
    if "-" in t:
        t, pre = t.split("-", 1)
    t = t.split("+", 1)[0]
    parts = tuple(int(p) for p in t.split("."))
    return parts, pre


def check_version_constraint(constraint: str, version: str) -> str:
    """"" when ``version`` satisfies ``constraint`` (``>= 1.7, < 2.0``, ``~> 1.8``), else a
    message."""
    have, _ = _version(version)
    for raw in constraint.split(","):
        c = raw.strip()
        if not c:
            continue
        m = re.match(r"^(>=|<=|!=|~>|=|>|<)?\s*v?([0-9][0-9A-Za-z.+-]*)$", c)
        if not m:
            return f'"{constraint}" is not a version constraint (such as ">= 1.7.0, < 2.0.0")'
        op = m.group(1) or "="
        try:
            want, pre = _version(m.group(2))
        except ValueError:
            return f'"{c}" is not a version constraint'
        n = max(len(want), len(have), 3)
        w = want + (0,) * (n - len(want))
        h = have + (0,) * (n - len(have))
        ok = {
            "=": h == w and not pre, "!=": h != w, ">": h > w, ">=": h >= w, "<": h < w,
            "<=": h <= w,
        }.get(op)
        if op == "~>":
            ok = h >= w and (len(want) < 2 or h[: len(want) - 1] == w[: len(want) - 1])
        if pre and op == "=":
            ok = False
        if not ok:
            return (f'packer.required_version "{constraint}" excludes {version}, the Packer '
                    f"version whose HCL2 Kiln implements")
    return ""
