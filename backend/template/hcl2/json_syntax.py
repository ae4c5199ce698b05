"""HCL's JSON syntax (``.pkr.json``) -> the same bodies the native parser produces.

In JSON the schema decides what is a block: ``"source": {"null": {"a": {...}}}`` is a block
with two labels, ``"provisioner": [{"shell-local": {...}}]`` a list of blocks with one label.
Strings are templates (``"${var.x}"``), except the variable ``type`` which is a type
expression. Every expression points at the JSON value it came from.
"""

from __future__ import annotations

from ..errors import Problem
from ..source import Node
from . import syntax as S

__all__ = ["json_body"]

#: block type -> (number of labels, schema of its body); None schema: every key an attribute
_PLUGIN = None
_VALIDATION = {"blocks": {}}
_VARIABLE = {"blocks": {"validation": (0, _VALIDATION)}, "type_attr": "type"}
_POSTPROCESSORS = {"blocks": {"post-processor": (1, _PLUGIN)}}
_BUILD = {
    "blocks": {
        "source": (1, _PLUGIN),
        "provisioner": (1, _PLUGIN),
        "error-cleanup-provisioner": (1, _PLUGIN),
        "post-processor": (1, _PLUGIN),
        "post-processors": (0, _POSTPROCESSORS),
        "hcp_packer_registry": (0, _PLUGIN),
    }
}
_PACKER = {"blocks": {"required_plugins": (0, _PLUGIN)}}
_TOP = {
    "blocks": {
        "variable": (1, _VARIABLE),
        "local": (1, {"blocks": {}}),
        "locals": (0, {"blocks": {}}),
        "variables": (0, {"blocks": {}}),
        "source": (2, _PLUGIN),
        "data": (2, _PLUGIN),
        "build": (0, _BUILD),
        "packer": (0, _PACKER),
    }
}


def json_body(root: Node, problems: list[Problem]) -> S.Body:
    """The top-level body of a ``.pkr.json`` file (problems are appended, not raised)."""
    if not root.is_map:
        problems.append(Problem(root.loc, "a .pkr.json file must hold a JSON object"))
        return S.Body(line=root.loc.line, col=root.loc.col)
    return _body(root, _TOP, problems)


def _body(node: Node, schema: dict | None, problems: list[Problem]) -> S.Body:
    body = S.Body(line=node.loc.line, col=node.loc.col)
    blocks = schema["blocks"] if schema else {}
    for key, child in node.items():
        kloc = node.key_loc(key)
        if key == "//":
            continue  # HCL JSON comments
        if key in blocks:
            nlabels, sub = blocks[key]
            _blocks(body, key, child, nlabels, sub, [], [], problems, kloc)
            continue
        if schema and key == schema.get("type_attr"):
            expr = _type_expr(child, problems)
        else:
            expr = _expr(child, problems)
        body.items.append(S.Attribute(key, expr, kloc.line, kloc.col))
    return body


def _blocks(body: S.Body, btype: str, node: Node, nlabels: int, schema: dict | None,
            labels: list[str], label_locs: list, problems: list[Problem], kloc) -> None:
    if node.is_list:
        for item in node.value:
            _blocks(body, btype, item, nlabels, schema, labels, label_locs, problems, item.loc)
        return
    if not node.is_map:
        problems.append(Problem(node.loc, f'"{btype}" must be a JSON object, got {node.type_name()}'))
        return
    if len(labels) < nlabels:
        for label, child in node.items():
            lloc = node.key_loc(label)
            _blocks(body, btype, child, nlabels, schema, labels + [label],
                    label_locs + [(lloc.line, lloc.col)], problems, lloc)
        return
    inner = _body(node, schema, problems) if schema is not None else _plugin_body(node, problems)
    body.items.append(S.Block(btype, list(labels), list(label_locs), inner, kloc.line, kloc.col))


def _plugin_body(node: Node, problems: list[Problem]) -> S.Body:
    body = S.Body(line=node.loc.line, col=node.loc.col)
    for key, child in node.items():
        if key == "//":
            continue
        kloc = node.key_loc(key)
        body.items.append(S.Attribute(key, _expr(child, problems), kloc.line, kloc.col))
    return body


def _expr(node: Node, problems: list[Problem]) -> S.Expr:
    line, col = node.loc.line, node.loc.col
    v = node.value
    if isinstance(v, str):
        if "${" not in v and "%{" not in v:
            return S.Template(line, col, [v] if v else [], False)
        try:
            return S.parse_template(v, line, col)
        except S.HCLSyntaxError as e:
            problems.append(Problem(node.loc, f"invalid template: {e.message}"))
            return S.Literal(line, col, v)
    if isinstance(v, list):
        return S.TupleCons(line, col, [_expr(x, problems) for x in v])
    if isinstance(v, dict):
        items = []
        for k, child in v.items():
            kl = node.key_loc(k)
            items.append((S.Literal(kl.line, kl.col, k), _expr(child, problems)))
        return S.ObjectCons(line, col, items)
    return S.Literal(line, col, v)


def _type_expr(node: Node, problems: list[Problem]) -> S.Expr:
    if isinstance(node.value, str):
        try:
            e = S.parse_expression(node.value)
        except S.HCLSyntaxError as err:
            problems.append(Problem(node.loc, f"invalid type: {err.message}"))
            return S.VarRef(node.loc.line, node.loc.col, "any")
        for sub in S.walk(e):
            sub.line, sub.col = node.loc.line, node.loc.col
        return e
    return _expr(node, problems)
