"""What the parts of the HCL2 loader share: files and problems, declarations, evaluation
helpers, and the version checks."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any

from ..errors import Problem, TemplateError, caret_snippet, did_you_mean
from ..source import Loc, Node, UnknownText
from . import syntax as S
from .expr import (
    UNKNOWN,
    EvalError,
    Namespace,
)

#: The newest Packer release whose HCL2 template features Kiln implements. It is what
#: ``packer.required_version`` is checked against and what ``packer.version`` evaluates to.
#: (JSON templates follow Packer 1.6.6; HCL2 grew much after that: ``local`` blocks,
#: ``error-cleanup-provisioner``, ``required_plugins``, build names in ``only``.)
HCL2_COMPAT_VERSION = "1.9.0"


TOP_BLOCKS = ("packer", "variable", "variables", "locals", "local", "source", "data", "build")


BUILD_BLOCKS = ("source", "provisioner", "error-cleanup-provisioner", "post-processor",
                "post-processors", "dynamic", "hcp_packer_registry")


PROVISIONER_META = ("only", "except", "override", "pause_before", "max_retries", "timeout",
                    "name", "continue_on_error")


PP_META = ("only", "except", "name", "keep_input_artifact")


#: generated values every builder provides (build.X -> {{.X}})
GENERATED = ("ID", "Host", "Port", "User", "Password", "ConnType", "PackerRunUUID",
             "PackerHTTPIP", "PackerHTTPPort", "PackerHTTPAddr", "SSHPublicKey",
             "SSHPrivateKey", "SSHPrivateKeyFile", "SSHAgentAuth", "WinRMPassword")


_IDENT = re.compile(r"^[^\W\d][\w-]*$")


def is_hcl2_path(path: str) -> bool:
    return os.path.isdir(path) or path.endswith((".pkr.hcl", ".pkr.json"))


def template_files(path: str) -> tuple[list[str], list[str]]:
    """(template files, auto-loaded var files) of a file or directory, in lexical order."""
    if not os.path.isdir(path):
        return [path], []
    names = sorted(os.listdir(path))
    files = [os.path.join(path, n) for n in names
             if n.endswith((".pkr.hcl", ".pkr.json")) and os.path.isfile(os.path.join(path, n))]
    auto = [os.path.join(path, n) for n in names
            if n.endswith((".auto.pkrvars.hcl", ".auto.pkrvars.json"))]
    return files, auto


@dataclass
class _File:
    path: str
    text: str
    body: S.Body


class _Problems:
    """Problems with caret snippets, deduplicated, in the order found."""

    def __init__(self, texts: dict[str, str]):
        self.texts = texts
        self.items: list[Problem] = []
        self.warnings: list[str] = []
        self._seen: set[tuple] = set()

    def add(self, file: str, line: int, col: int, message: str, path: str = "") -> None:
        key = (file, line, col, message)
        if key in self._seen:
            return
        self._seen.add(key)
        text = self.texts.get(file)
        snippet = caret_snippet(text, line, col) if text is not None and line else ""
        self.items.append(Problem(Loc(file, line, col, path), message, snippet=snippet))

    def warn(self, file: str, line: int, col: int, message: str) -> None:
        where = f"{file}:{line}:{col}: " if line else (f"{file}: " if file else "")
        text = where + message
        if text not in self.warnings:
            self.warnings.append(text)

    def raise_if_any(self) -> None:
        if self.items:
            raise TemplateError(self.items)


_MAX_BYTES = 16 * 1024 * 1024


def _read(path: str) -> str:
    """The text of a template file. The common case (small UTF-8 text) is read here; anything
    else goes to parse.read_template_text for its careful, located errors (it imports YAML,
    which an HCL2 run does not otherwise need)."""
    try:
        with open(path, "rb") as fh:
            data = fh.read(_MAX_BYTES + 1)
        if len(data) <= _MAX_BYTES and b"\x00" not in data:
            text = data.decode("utf-8")
            return text[1:] if text.startswith("\ufeff") else text
    except (OSError, UnicodeDecodeError):
        pass
    from ..parse import read_template_text

    return read_template_text(path)


def _parse_file(path: str, text: str, problems: _Problems) -> S.Body | None:
    if path.endswith(".json"):
        from ..parse import parse_json_value

        try:
            node = parse_json_value(text, path)
        except TemplateError as e:
            problems.items.extend(e.problems)
            return None
        from .json_syntax import json_body

        found: list[Problem] = []
        body = json_body(node, found)
        for p in found:
            problems.add(p.loc.file, p.loc.line, p.loc.col, p.message)
        return body
    try:
        return S.parse_config(text)
    except S.HCLSyntaxError as e:
        problems.add(path, e.line, e.col, e.message)
        return None


class _Poisoned(EvalError):
    """An error already reported elsewhere (a broken local, a data source): not repeated."""


@dataclass
class _VarDecl:
    name: str
    file: str
    block: S.Block | None
    line: int
    col: int
    type: Any = None  # None: not declared
    default: Any = None
    has_default: bool = False
    description: str = ""
    sensitive: bool = False
    validations: list = field(default_factory=list)
    value: Any = None
    origin: str = ""  # where the value came from, for messages
    origin_loc: tuple[str, int, int] | None = None


@dataclass
class _Usage:
    type: str
    name: str  # the source block's name label
    local_name: str
    block: S.Block
    file: str
    line: int
    col: int
    extra: list = field(default_factory=list)  # attributes of a nested source block


class _Failed:
    def __repr__(self) -> str:
        return "FAILED"


#: an evaluation failed (already reported)
_FAILED: Any = _Failed()


_NO_REFS = {
    "var": "variables cannot be used here (only fixed values and functions)",
    "local": "locals cannot be used here (only fixed values and functions)",
    "source": "source.* cannot be used here",
    "build": "build.* cannot be used here",
    "path": "path.* cannot be used here",
    "packer": "packer.* cannot be used here",
    "data": "data sources are not supported by Kiln",
}


def _build_namespace(build_name: str) -> Namespace:
    def get(name: str) -> Any:
        if name == "name":
            return build_name
        if name in GENERATED or (name[:1].isupper() and _IDENT.match(name)):
            return "{{." + name + "}}"
        raise KeyError(name)

    def missing(name: str) -> str:
        return (f'build has no attribute "{name}"{did_you_mean(name, ("name",) + GENERATED)}; '
                f"build.name and the generated values build.{', build.'.join(GENERATED[:6])}... "
                "are available")

    return Namespace("build", get, lambda: ["name", *GENERATED], missing)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _or(names: tuple[str, ...]) -> str:
    names = tuple(names)
    if not names:
        return "nothing"
    if len(names) == 1:
        return names[0]
    return ", ".join(names[:-1]) + " or " + names[-1]


def _located(v: Any, loc: Loc) -> Node:
    if v is UNKNOWN or v is _FAILED:
        return Node(UnknownText(), loc)
    if isinstance(v, dict):
        return Node({str(k): _located(x, loc.child(str(k))) for k, x in v.items()}, loc)
    if isinstance(v, list):
        return Node([_located(x, loc.child(i)) for i, x in enumerate(v)], loc)
    return Node(v, loc)


def _has_unknown(node: Node) -> bool:
    v = node.value
    if isinstance(v, dict):
        return any(_has_unknown(c) for c in v.values())
    if isinstance(v, list):
        return any(_has_unknown(c) for c in v)
    return isinstance(v, UnknownText)


def _infer_type(default: Any) -> Any:
    if isinstance(default, bool):
        return "bool"
    if isinstance(default, (int, float)):
        return "number"
    if isinstance(default, (list, dict)):
        return ("list", "any") if isinstance(default, list) else ("map", "any")
    return "string"


def _is_sentence(text: str) -> bool:
    t = text.strip()
    return bool(t) and t[0].isupper() and t[-1] in ".?!"


def _references(expr: S.Expr) -> set[tuple[str, str]]:
    out = set()
    for e in S.walk(expr):
        if isinstance(e, S.GetAttr) and isinstance(e.obj, S.VarRef):
            out.add((e.obj.name, e.name))
    return out


def _all_exprs(body: S.Body, in_type: bool = False):
    for item in body.items:
        if isinstance(item, S.Attribute):
            yield item.expr, item.name == "type"
        else:
            yield from _all_exprs(item.body)
