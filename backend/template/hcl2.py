"""Packer HCL2 templates (``.pkr.hcl``, ``.pkr.json`` or a directory of them) -> Template.

The same immutable model as JSON templates (:mod:`backend.template.model`): one BuildDef per
(build block x source usage), provisioners in file order, post-processor chains, variables.
Plugin settings become :class:`~backend.template.source.Node` trees of evaluated values,
each leaf located at the expression it came from. Go-template text inside plugin fields
(``execute_command = "{{.Vars}} {{.Path}}"``) passes through untouched, and the generated
values ``build.ID``, ``build.Host``... become ``{{.ID}}``... so Kiln's run-time renderer
fills them in, as it does for ``{{ build `ID` }}`` in JSON.

Kiln's HCL2 follows Packer up to :data:`HCL2_COMPAT_VERSION` (``packer.required_version``
is checked against it). ``required_plugins`` is read and reported; nothing is downloaded.
``data`` sources are reported as unsupported (they would call cloud APIs at load time).

Every problem is a located :class:`~backend.template.errors.Problem` with a caret snippet,
and all the problems of a template are reported together.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from . import hcl2_syntax as S
from .errors import Problem, TemplateError, caret_snippet, did_you_mean
from .golang import parse_duration
from .hcl2_expr import (
    UNKNOWN,
    AlreadyReported,
    ConvError,
    EvalError,
    Namespace,
    Scope,
    collect_secret_texts,
    convert,
    evaluate,
    parse_type,
    render_value,
    simple_namespace,
    to_str,
    type_of,
    type_str,
)
from .hcl2_schema import BlockNode, check_version_constraint, plugin_note, shape
from .model import BuildDef, PostProcessorDef, ProvisionerDef, Template, Variable
from .source import Loc, Node, UnknownText

__all__ = ["load_hcl2", "HCL2_COMPAT_VERSION", "template_files", "is_hcl2_path",
           "check_version_constraint"]

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


# -- loading files ------------------------------------------------------------------------


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
    from .parse import read_template_text

    return read_template_text(path)


def _parse_file(path: str, text: str, problems: _Problems) -> S.Body | None:
    if path.endswith(".json"):
        from .parse import parse_json_value

        try:
            node = parse_json_value(text, path)
        except TemplateError as e:
            problems.items.extend(e.problems)
            return None
        from .hcl2_json import json_body

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


# -- the loader -----------------------------------------------------------------------------


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


class _Loader:
    def __init__(self, path: str, cli_vars: Mapping[str, str], var_files: tuple[str, ...],
                 syntax_only: bool, evaluate_data: bool = False):
        self.path = path
        #: run data sources (a build); otherwise their outputs are unknown (validate)
        self.evaluate_data = evaluate_data and not syntax_only
        self.abspath = os.path.abspath(path)
        self.cli_vars = dict(cli_vars)
        self.var_files = tuple(var_files)
        self.syntax_only = syntax_only
        self.texts: dict[str, str] = {}
        self.p = _Problems(self.texts)
        self.files: list[_File] = []
        self.sensitive: set[str] = set()
        self.vars: dict[str, _VarDecl] = {}
        self.locals: dict[str, tuple[S.Expr, str, bool]] = {}
        self.local_values: dict[str, Any] = {}
        self.local_state: dict[str, str] = {}
        self.sources: dict[str, tuple[S.Block, str]] = {}
        self.data_blocks: dict[str, tuple[S.Block, str]] = {}
        self.data_values: dict[str, dict[str, Any]] = {}
        self.data_configs: dict[str, tuple[str, str, Any]] = {}  # decoded, for kiln iam
        self.data_state: dict[str, str] = {}
        self.bad_data_types: set[str] = set()
        self.builds: list[tuple[S.Block, str]] = []
        self.required_version = ""
        self.description = ""
        self.root_dir = self.abspath if os.path.isdir(path) else os.path.dirname(self.abspath)
        from .hcl2_funcs import make_funcs

        self.funcs = make_funcs(sensitive=self.sensitive, templatefile=self._templatefile)
        self.var_funcs = make_funcs(sensitive=self.sensitive, templatefile=self._templatefile,
                                    allow_env=True)

    # -- public --------------------------------------------------------------------------
    def load(self) -> Template:
        files, auto = template_files(self.path)
        if os.path.isdir(self.path) and not files:
            raise TemplateError(Problem(Loc(self.path), "the directory has no .pkr.hcl or "
                                        ".pkr.json files"))
        for f in files:
            text = _read(f)
            self.texts[f] = text
            if f.endswith(".json"):  # HCL reads past a byte-order mark; JSON does not
                from .parse import bom_warning

                bom = bom_warning(f)
                if bom:
                    self.p.warnings.append(bom)
            body = _parse_file(f, text, self.p)
            if body is not None:
                self.files.append(_File(f, text, body))
        self.p.raise_if_any()
        for f in self.files:
            self.collect(f)
        self.check_functions()
        if not self.builds:  # Packer 1.6.6 accepts this and builds nothing
            first = self.files[0].path if self.files else self.path
            self.p.warn(first, 0, 0, "the template has no build block, so it builds nothing: "
                        'add build { sources = ["source.TYPE.NAME"] } to say what to build')
        # go on after problems, so one run reports as many as possible; values that failed
        # are unknown from here on and cause no further messages
        self.resolve_variables(auto)
        for d in self.vars.values():
            if d.value is _FAILED:
                d.value = UNKNOWN
        for name in list(self.locals):
            try:
                self.local(name)
            except EvalError:
                pass
        for key in list(self.data_blocks):  # the ones nothing refers to are checked (and run) too
            try:
                self.data(*key.split(".", 1))
            except EvalError:
                pass
        builds, provisioners = self.make_builds()
        self.p.raise_if_any()
        variables = tuple(self.variable_model())
        user_vars = {d.name: render_value(d.value) for d in self.vars.values()
                     if d.value is not UNKNOWN}
        for d in self.vars.values():
            if d.sensitive and d.value is not UNKNOWN:
                collect_secret_texts(d.value, self.sensitive)
        return Template(
            path=self.abspath,
            format="hcl2",
            builds=tuple(builds),
            variables=variables,
            user_vars=MappingProxyType(user_vars),
            sensitive_values=tuple(sorted(self.sensitive, key=len, reverse=True)),
            description=self.description,
            min_version=self.required_version,
            warnings=tuple(self.p.warnings),
            provisioners=tuple(provisioners),
            source_text=self.files[0].text if len(self.files) == 1 else "",
            data_sources=tuple(self.data_configs[k] for k in sorted(self.data_configs)),
        )

    # -- pass 1: top-level blocks ----------------------------------------------------------
    def collect(self, f: _File) -> None:
        for item in f.body.items:
            if isinstance(item, S.Attribute):
                self.p.add(f.path, item.line, item.col,
                           f'unexpected argument "{item.name}" at the top level: only blocks '
                           f"({', '.join(TOP_BLOCKS)}) go here")
                continue
            b = item
            if b.type not in TOP_BLOCKS:
                hint = did_you_mean(b.type, TOP_BLOCKS)
                extra = ""
                if b.type in ("provisioner", "post-processor", "post-processors",
                              "error-cleanup-provisioner"):
                    extra = "; it belongs inside a build block"
                self.p.add(f.path, b.line, b.col, f'unknown block type "{b.type}"{hint}{extra}')
                continue
            want = {"variable": 1, "local": 1, "source": 2, "data": 2}.get(b.type, 0)
            if len(b.labels) != want:
                self.label_problem(f.path, b, want)
                continue
            getattr(self, "top_" + b.type)(f, b)

    def label_problem(self, file: str, b: S.Block, want: int, names: str = "") -> None:
        if not names:
            names = {"variable": "NAME", "local": "NAME", "source": "TYPE NAME",
                     "data": "TYPE NAME", "provisioner": "TYPE", "post-processor": "TYPE",
                     "error-cleanup-provisioner": "TYPE", "dynamic": "BLOCK_TYPE"}.get(b.type, "")
        if want == 0:
            line, col = b.label_locs[0]
            self.p.add(file, line, col, f'a "{b.type}" block takes no labels')
        else:
            shape = " ".join(f'"{n}"' for n in names.split())
            self.p.add(file, b.line, b.col, f'a "{b.type}" block needs {want} label'
                       f"{'s' if want > 1 else ''}: {b.type} {shape} {{ ... }}")

    def check_attrs(self, file: str, body: S.Body, allowed: tuple[str, ...], what: str,
                    blocks: tuple[str, ...] = ()) -> None:
        seen: dict[str, int] = {}
        for item in body.items:
            if isinstance(item, S.Attribute):
                if item.name in seen:
                    self.p.add(file, item.line, item.col, f'"{item.name}" is set twice in '
                               f"{what} (first on line {seen[item.name]})")
                    continue
                seen[item.name] = item.line
                if item.name not in allowed:
                    self.p.add(file, item.line, item.col, f'unknown argument "{item.name}" in '
                               f"{what}{did_you_mean(item.name, allowed + blocks)}; expected "
                               f"{_or(allowed)}")
            elif item.type not in blocks:
                hint = did_you_mean(item.type, allowed + blocks)
                self.p.add(file, item.line, item.col, f'unknown block "{item.type}" in {what}{hint}'
                           + (f"; expected {_or(blocks)}" if blocks else ""))

    def top_packer(self, f: _File, b: S.Block) -> None:
        self.check_attrs(f.path, b.body, ("required_version",), "the packer block",
                         ("required_plugins",))
        attr = b.body.attr("required_version")
        if attr is not None:
            v = self.const(attr.expr, f.path)
            if v is not None and v is not UNKNOWN:
                if not isinstance(v, str):
                    self.p.add(f.path, attr.expr.line, attr.expr.col,
                               "required_version must be a string such as \">= 1.7.0\"")
                else:
                    self.required_version = v
                    err = check_version_constraint(v, HCL2_COMPAT_VERSION)
                    if err:
                        self.p.add(f.path, attr.expr.line, attr.expr.col, err)
        for rp in b.body.blocks:
            if rp.type != "required_plugins":
                continue
            self.check_attrs(f.path, rp.body, tuple(a.name for a in rp.body.attributes),
                             "required_plugins")
            for a in rp.body.attributes:
                spec = self.const(a.expr, f.path)
                if not isinstance(spec, dict):
                    if spec is not UNKNOWN:
                        self.p.add(f.path, a.expr.line, a.expr.col,
                                   f'required_plugins.{a.name} must be an object: '
                                   '{ version = ">= 1.0", source = "github.com/OWNER/NAME" }')
                    continue
                self.p.warn(f.path, a.line, a.col, plugin_note(a.name, spec))

    def top_variable(self, f: _File, b: S.Block) -> None:
        name = b.labels[0]
        line, col = b.label_locs[0]
        if not _IDENT.match(name):
            self.p.add(f.path, line, col, f'"{name}" is not a valid variable name (letters, '
                       "digits, _ and -, starting with a letter)")
            return
        if name in self.vars:
            old = self.vars[name]
            self.p.add(f.path, b.line, b.col, f'variable "{name}" is declared twice (first in '
                       f"{old.file}:{old.line})")
            return
        self.check_attrs(f.path, b.body, ("type", "default", "description", "sensitive",
                                          "nullable"), f'variable "{name}"', ("validation",))
        d = _VarDecl(name, f.path, b, b.line, b.col)
        t = b.body.attr("type")
        bad_type = False
        if t is not None:
            try:
                d.type = parse_type(t.expr)
            except EvalError as e:
                bad_type = True
                self.p.add(f.path, e.line or t.line, e.col or t.col, e.message)
        dflt = b.body.attr("default")
        if dflt is not None:
            d.has_default = True
            # with a broken type the value is unknown: no follow-on errors where it is used
            d.default = UNKNOWN if bad_type else self.eval_default(dflt.expr, f.path, name)
            if d.type is not None and d.default not in (None, UNKNOWN):
                try:
                    d.default = convert(d.default, d.type)
                except ConvError as e:
                    self.p.add(f.path, dflt.expr.line, dflt.expr.col,
                               f'the default of variable "{name}" is not a {type_str(d.type)}: {e}')
        desc = b.body.attr("description")
        if desc is not None:
            v = self.const(desc.expr, f.path)
            d.description = v if isinstance(v, str) else ""
        sens = b.body.attr("sensitive")
        if sens is not None:
            v = self.const(sens.expr, f.path)
            if isinstance(v, bool):
                d.sensitive = v
            elif v is not UNKNOWN:
                self.p.add(f.path, sens.expr.line, sens.expr.col, "sensitive must be true or false")
        for vb in b.body.blocks:
            if vb.type != "validation":
                continue
            if vb.labels:
                self.label_problem(f.path, vb, 0)
            self.check_attrs(f.path, vb.body, ("condition", "error_message"),
                             f'the validation of variable "{name}"')
            cond = vb.body.attr("condition")
            msg = vb.body.attr("error_message")
            if cond is None or msg is None:
                missing = "condition" if cond is None else "error_message"
                self.p.add(f.path, vb.line, vb.col, f'the validation block needs "{missing}"')
                continue
            refs = _references(cond.expr)
            if ("var", name) not in refs:
                self.p.add(f.path, cond.expr.line, cond.expr.col,
                           f'the condition must refer to the variable itself (var.{name})')
                continue
            others = sorted({f"{r}.{n}" for r, n in refs if (r, n) != ("var", name)})
            if others:
                self.p.add(f.path, cond.expr.line, cond.expr.col,
                           f"a validation condition may only refer to var.{name}, not "
                           f"{', '.join(others)}")
                continue
            text = self.const(msg.expr, f.path)
            if isinstance(text, str) and not _is_sentence(text):
                self.p.add(f.path, msg.expr.line, msg.expr.col,
                           "error_message must be at least one full sentence: start with a "
                           'capital letter and end with "." or "?"')
            d.validations.append((cond.expr, text if isinstance(text, str) else "", f.path))
        self.vars[name] = d

    def top_variables(self, f: _File, b: S.Block) -> None:
        for item in b.body.items:
            if isinstance(item, S.Block):
                self.p.add(f.path, item.line, item.col, "the variables block holds only "
                           'NAME = DEFAULT lines; use variable "NAME" { ... } for more')
                continue
            if item.name in self.vars:
                old = self.vars[item.name]
                self.p.add(f.path, item.line, item.col, f'variable "{item.name}" is declared '
                           f"twice (first in {old.file}:{old.line})")
                continue
            d = _VarDecl(item.name, f.path, None, item.line, item.col, has_default=True)
            d.default = self.eval_default(item.expr, f.path, item.name)
            self.vars[item.name] = d

    def top_locals(self, f: _File, b: S.Block) -> None:
        for item in b.body.items:
            if isinstance(item, S.Block):
                self.p.add(f.path, item.line, item.col, "the locals block holds only "
                           "NAME = EXPRESSION lines")
                continue
            self.add_local(item.name, item.expr, f.path, item.line, item.col, False)

    def top_local(self, f: _File, b: S.Block) -> None:
        name = b.labels[0]
        self.check_attrs(f.path, b.body, ("expression", "sensitive"), f'local "{name}"')
        expr = b.body.attr("expression")
        if expr is None:
            self.p.add(f.path, b.line, b.col, f'local "{name}" needs an "expression" argument')
            return
        sensitive = False
        sens = b.body.attr("sensitive")
        if sens is not None:
            v = self.const(sens.expr, f.path)
            if isinstance(v, bool):
                sensitive = v
            elif v is not UNKNOWN:
                self.p.add(f.path, sens.expr.line, sens.expr.col, "sensitive must be true or false")
        self.add_local(name, expr.expr, f.path, b.line, b.col, sensitive)

    def add_local(self, name: str, expr: S.Expr, file: str, line: int, col: int,
                  sensitive: bool) -> None:
        if name in self.locals:
            _, ofile, _ = self.locals[name]
            self.p.add(file, line, col, f'local "{name}" is defined twice (first in {ofile})')
            return
        self.locals[name] = (expr, file, sensitive)

    def top_source(self, f: _File, b: S.Block) -> None:
        key = f"{b.labels[0]}.{b.labels[1]}"
        for label, (line, col) in zip(b.labels, b.label_locs, strict=False):
            if not _IDENT.match(label):
                self.p.add(f.path, line, col, f'"{label}" is not a valid source label (letters, '
                           "digits, _ and -, starting with a letter)")
                return
        if key in self.sources:
            old, ofile = self.sources[key]
            self.p.add(f.path, b.line, b.col, f'source "{b.labels[0]}" "{b.labels[1]}" is defined '
                       f"twice (first in {ofile}:{old.line})")
            return
        self.sources[key] = (b, f.path)

    def top_data(self, f: _File, b: S.Block) -> None:
        from backend.plugins import registry

        for label, (line, col) in zip(b.labels, b.label_locs, strict=False):
            if not _IDENT.match(label):
                self.p.add(f.path, line, col, f'"{label}" is not a valid data source label '
                           "(letters, digits, _ and -, starting with a letter)")
                return
        key = f"{b.labels[0]}.{b.labels[1]}"
        if key in self.data_blocks:
            old, ofile = self.data_blocks[key]
            self.p.add(f.path, b.line, b.col, f'data "{b.labels[0]}" "{b.labels[1]}" is defined '
                       f"twice (first in {ofile}:{old.line})")
            return
        if b.labels[0] not in registry.PLUGINS["data source"]:
            self.bad_data_types.add(b.labels[0])  # references to it say nothing more
            line, col = b.label_locs[0]
            self.p.add(f.path, line, col, registry.unknown_message("data source", b.labels[0])
                       + "; look the value up once and pass it in with -var or a var file")
            return
        self.data_blocks[key] = (b, f.path)

    def top_build(self, f: _File, b: S.Block) -> None:
        self.builds.append((b, f.path))

    # -- static checks -------------------------------------------------------------------
    def check_functions(self) -> None:
        """Unknown functions anywhere (even where nothing is evaluated, as with -syntax-only)."""
        known = set(self.var_funcs) | {"can", "try"}
        for f in self.files:
            for expr, in_type in _all_exprs(f.body):
                for e in S.walk(expr):
                    if isinstance(e, S.Call) and e.name not in known and not in_type:
                        self.p.add(f.path, e.line, e.col, f'unknown function "{e.name}"'
                                   f"{did_you_mean(e.name, sorted(known))}")

    # -- evaluation helpers --------------------------------------------------------------
    def base_names(self) -> dict[str, Any]:
        return {
            "var": Namespace("var", self._var_get, lambda: list(self.vars), self._var_missing),
            "local": Namespace("local", self.local, lambda: list(self.locals),
                               self._local_missing),
            "path": simple_namespace("path", {"root": self.root_dir, "cwd": os.getcwd()},
                                     "known"),
            "packer": simple_namespace("packer", {"version": HCL2_COMPAT_VERSION}, "known"),
        }

    def scope(self, source: tuple[str, str] | None = None, build: str | None = None,
              extra: dict[str, Any] | None = None) -> Scope:
        names = self.base_names()
        forbidden = {
            "source": "source.name and source.type are only available inside source, "
                      "provisioner and post-processor blocks",
            "build": "build.* values are only available inside provisioner and post-processor "
                     "blocks",
            "self": "self is not available in Packer templates",
            "count": "count is not supported in Packer templates; use a dynamic block",
            "each": "each is not supported in Packer templates; use a dynamic block",
        }
        if source is not None:
            names["source"] = simple_namespace("source", {"type": source[0], "name": source[1]},
                                               "known")
        if build is not None:
            names["build"] = _build_namespace(build)
        names["data"] = Namespace("data", self._data_type, self._data_types, self._data_missing)
        if extra:
            names.update(extra)
        return Scope(names, self.funcs, forbidden,
                     {"env": "env() can only be used in the default of a variable"})

    # -- data sources -------------------------------------------------------------------
    def _data_types(self) -> list[str]:
        return sorted({k.split(".", 1)[0] for k in self.data_blocks})

    def _data_missing(self, type_name: str) -> str:
        return (f'there is no data source of type "{type_name}"'
                f"{did_you_mean(type_name, self._data_types())}; declare one with "
                f'data "{type_name}" "NAME" {{ ... }}')

    def _data_type(self, type_name: str) -> Namespace:
        names = sorted(k.split(".", 1)[1] for k in self.data_blocks
                       if k.split(".", 1)[0] == type_name)
        if type_name in self.bad_data_types:
            raise _Poisoned(f"data source type {type_name} (reported above)")
        if not names:
            raise KeyError(type_name)

        def missing(name: str) -> str:
            return (f'there is no data "{type_name}" "{name}"{did_you_mean(name, names)} '
                    f"(declared: {', '.join(names)})")

        def get(name: str) -> Any:
            if name not in names:
                raise KeyError(name)
            return self.data(type_name, name)

        return Namespace(f"data.{type_name}", get, lambda: names, missing)

    def _add_data_secret(self, value: str) -> None:
        if value and len(value) >= 3:  # as the build context: shorter would mask everything
            self.sensitive.add(value)

    def data(self, type_name: str, name: str) -> dict[str, Any]:
        """A data source's outputs: looked up once (for a build), else unknown."""
        from backend.plugins import registry
        from backend.plugins.base import StepError

        from .decode import Decoder, secret_values

        key = f"{type_name}.{name}"
        if key in self.data_values:
            return self.data_values[key]
        b, file = self.data_blocks[key]
        state = self.data_state.get(key)
        if state == "failed":
            raise _Poisoned(f"data.{key} has an error (reported above)")
        if state == "busy":
            self.data_state[key] = "failed"
            self.p.add(file, b.line, b.col, f"data.{key} refers to itself (directly or through "
                       "locals)")
            raise _Poisoned("cycle")
        self.data_state[key] = "busy"
        path = f"data.{key}"
        try:
            cls = registry.lookup("data source", type_name)
        except registry.PluginLoadError as e:
            cls = None
            self.p.add(file, b.line, b.col, str(e), path)
        before = len(self.p.items)
        node = self.body_node(b.body, self.scope(), file, path, what=f'data "{type_name}"')
        if cls is None or len(self.p.items) != before:
            self.data_state[key] = "failed"
            raise _Poisoned(f"{path} has an error (reported above)")
        unknown = dict.fromkeys(cls.outputs, UNKNOWN)
        if self.syntax_only:
            self.data_state[key] = "done"
            self.data_values[key] = unknown
            return unknown
        dec = Decoder(strict_lists=True)
        config = dec.decode(cls.Config, shape("data source", type_name, node))
        for prob in dec.problems:
            self.p.add(prob.loc.file, prob.loc.line, prob.loc.col, prob.message, prob.loc.path)
        if config is None or dec.problems:
            self.data_state[key] = "failed"
            raise _Poisoned(f"{path} has an error (reported above)")
        self.sensitive.update(x for x in secret_values(config) if x)
        self.data_configs[key] = (type_name, name, config)
        outputs = unknown
        if self.evaluate_data and not _has_unknown(node):
            plugin = cls(config)
            try:
                outputs = plugin.execute(self._add_data_secret)
                for w in getattr(plugin, "warnings", ()):
                    self.p.warn(file, b.line, b.col, f"{path}: {w}")
            except StepError as e:
                self.p.add(file, b.line, b.col, str(e), path)
                self.data_state[key] = "failed"
                raise _Poisoned(f"{path} has an error (reported above)") from None
        self.data_state[key] = "done"
        self.data_values[key] = outputs
        return outputs

    def _var_get(self, name: str) -> Any:
        d = self.vars.get(name)
        if d is None:
            raise KeyError(name)
        return d.value

    def _var_missing(self, name: str) -> str:
        return (f'there is no variable named "{name}"{did_you_mean(name, self.vars)}; declare '
                f'it with variable "{name}" {{ ... }}')

    def _local_missing(self, name: str) -> str:
        return f'there is no local named "{name}"{did_you_mean(name, self.locals)}'

    def local(self, name: str) -> Any:
        if name in self.local_values:
            return self.local_values[name]
        if name not in self.locals:
            raise KeyError(name)
        state = self.local_state.get(name)
        if state == "failed":
            raise _Poisoned(f"local.{name} has an error (reported above)")
        expr, file, sensitive = self.locals[name]
        if state == "busy":
            self.local_state[name] = "failed"
            self.p.add(file, expr.line, expr.col, f"local.{name} refers to itself (directly or "
                       "through other locals or data sources)")
            raise _Poisoned("cycle")
        self.local_state[name] = "busy"
        try:
            value = evaluate(expr, self.scope())
        except EvalError as e:
            if self.local_state.get(name) != "failed":
                self.report(e, file)
            self.local_state[name] = "failed"
            raise _Poisoned(f"local.{name} has an error (reported above)") from None
        self.local_state[name] = "done"
        self.local_values[name] = value
        if sensitive and value is not UNKNOWN:
            collect_secret_texts(value, self.sensitive)
        return value

    def report(self, e: EvalError, file: str) -> None:
        if isinstance(e, (_Poisoned, AlreadyReported)):
            return
        if self.syntax_only:
            return
        self.p.add(file, e.line, e.col, e.message)

    def eval(self, expr: S.Expr, scope: Scope, file: str) -> Any:
        """Evaluate; on error report it and return UNKNOWN."""
        try:
            return evaluate(expr, scope)
        except EvalError as e:
            self.report(e, file)
            return _FAILED

    def const(self, expr: S.Expr, file: str) -> Any:
        """A value that may use functions but no references."""
        scope = Scope({}, self.funcs, _NO_REFS, {"env": "env() can only be used in the "
                                                 "default of a variable"})
        v = self.eval(expr, scope, file)
        return UNKNOWN if v is _FAILED else v

    def eval_default(self, expr: S.Expr, file: str, name: str) -> Any:
        msg = (f'the default of variable "{name}" cannot refer to variables or locals (defaults '
               "are fixed values; use a local for derived values)")
        scope = Scope({}, self.var_funcs, {**_NO_REFS, "var": msg, "local": msg})
        v = self.eval(expr, scope, file)
        return UNKNOWN if v is _FAILED else v

    def _templatefile(self, text: str, variables: dict) -> str:
        from .hcl2_expr import FuncError

        try:
            expr = S.parse_template(text)
        except S.HCLSyntaxError as e:
            raise FuncError(f"the template file has a syntax error: {e.message}") from None
        scope = Scope(dict(variables), {k: v for k, v in self.funcs.items()
                                        if k != "templatefile"})
        try:
            v = evaluate(expr, scope)
        except EvalError as e:
            raise FuncError(f"in the template file: {e.message}") from None
        if v is UNKNOWN:
            return v
        try:
            return to_str(v)
        except ConvError as e:
            raise FuncError(str(e)) from None

    # -- variables -----------------------------------------------------------------------
    def resolve_variables(self, auto_files: list[str]) -> None:
        for d in self.vars.values():
            d.value = d.default if d.has_default else UNKNOWN
            d.origin = "its default"
            if d.has_default:
                d.origin_loc = None
        if self.syntax_only:
            return
        # PKR_VAR_name < auto var files < -var-file < -var
        for name, d in self.vars.items():
            raw = os.environ.get("PKR_VAR_" + name)
            if raw is not None:
                self.set_raw(d, raw, f"PKR_VAR_{name}", None)
        for vf in list(auto_files) + list(self.var_files):
            self.load_var_file(vf)
        for name, raw in self.cli_vars.items():
            d = self.vars.get(name)
            if d is None:
                hint = did_you_mean(name, self.vars)
                self.p.add("-var", 0, 0, f'{name}={raw}: the template declares no variable '
                           f'"{name}"{hint}')
                continue
            self.set_raw(d, raw, f"-var {name}=...", None)
        for name, d in self.vars.items():
            if d.value is UNKNOWN and not d.has_default:
                self.p.add(d.file, d.line, d.col, f'variable "{name}" is not set: give it a value '
                           f"with -var {name}=VALUE, a var file, PKR_VAR_{name}, or a default")
        for name, d in self.vars.items():
            if d.value is _FAILED or d.value is UNKNOWN:
                continue
            for cond, message, file in d.validations:
                scope = Scope({"var": simple_namespace("var", {name: d.value}, "this variable")},
                              self.funcs, _NO_REFS)
                try:
                    ok = evaluate(cond, scope)
                except EvalError as e:
                    self.p.add(file, e.line, e.col, f'the validation of variable "{name}" failed to '
                               f"evaluate: {e.message}")
                    continue
                if ok is UNKNOWN:
                    continue
                if not isinstance(ok, bool):
                    self.p.add(file, cond.line, cond.col, f"a validation condition must be true or "
                               f"false, got {type_of(ok)}")
                    continue
                if not ok:
                    shown = "<sensitive>" if d.sensitive else render_value(d.value)
                    if d.origin_loc:
                        f, ln, c = d.origin_loc
                        self.p.add(f, ln, c, f'invalid value for variable "{name}": {message} '
                                   f"(value {shown!r}; the condition is in {file}:{cond.line})")
                    else:
                        self.p.add(file, cond.line, cond.col, f'invalid value for variable '
                                   f'"{name}": {message} (value {shown!r} from {d.origin})')

    def set_raw(self, d: _VarDecl, raw: str, origin: str, loc: tuple[str, int, int] | None) -> None:
        """A value given as text (-var, PKR_VAR_): a string, or an HCL expression for other
        types."""
        t = d.type
        if t is None:
            t = _infer_type(d.default) if d.has_default else "string"
        if t in ("string", "any", "number", "bool"):
            value: Any = raw  # assign() converts it to the variable's type
        else:
            try:
                expr = S.parse_expression(raw)
                value = evaluate(expr, Scope({}, self.funcs, _NO_REFS))
            except (S.HCLSyntaxError, EvalError) as e:
                where = "-var" if origin.startswith("-var") else origin
                self.p.add(where, 0, 0, f'invalid value for variable "{d.name}": {e.message} (a '
                           f"{type_str(t)} is expected, written in HCL syntax: {raw!r})")
                d.value = _FAILED
                return
        self.assign(d, value, origin, loc)

    def assign(self, d: _VarDecl, value: Any, origin: str, loc: tuple[str, int, int] | None) -> None:
        if d.type is not None and value is not None:
            try:
                value = convert(value, d.type)
            except ConvError as e:
                where = loc or ("-var" if origin.startswith("-var") else origin, 0, 0)
                self.p.add(where[0], where[1], where[2], f'invalid value for variable "{d.name}": '
                           f"{e} (the variable is a {type_str(d.type)})")
                d.value = _FAILED
                return
        d.value = value
        d.origin = origin
        d.origin_loc = loc

    def load_var_file(self, vf: str) -> None:
        try:
            text = _read(vf)
        except TemplateError as e:
            self.p.items.extend(e.problems)
            return
        self.texts[vf] = text
        if vf.endswith(".json"):
            from .parse import parse_json

            try:
                node = parse_json(text, vf)
            except TemplateError as e:
                self.p.items.extend(e.problems)
                return
            for name, child in node.items():
                kl = node.key_loc(name)
                d = self.vars.get(name)
                if d is None:
                    self.p.warn(vf, kl.line, kl.col, f'the var file sets "{name}", which the '
                                "template does not declare (ignored)")
                    continue
                self.assign(d, child.to_plain(), f"{vf}:{child.loc.line}",
                            (vf, child.loc.line, child.loc.col))
            return
        try:
            body = S.parse_config(text)
        except S.HCLSyntaxError as e:
            self.p.add(vf, e.line, e.col, e.message)
            return
        for item in body.items:
            if isinstance(item, S.Block):
                self.p.add(vf, item.line, item.col, "a var file holds only NAME = VALUE lines "
                           f'(found a "{item.type}" block)')
                continue
            d = self.vars.get(item.name)
            if d is None:
                self.p.warn(vf, item.line, item.col, f'the var file sets "{item.name}", which the '
                            f"template does not declare (ignored){did_you_mean(item.name, self.vars)}")
                continue
            scope = Scope({}, self.funcs, {**_NO_REFS,
                                           "var": "a var file cannot refer to variables",
                                           "local": "a var file cannot refer to locals"})
            v = self.eval(item.expr, scope, vf)
            if v is _FAILED:
                d.value = _FAILED
                continue
            self.assign(d, v, f"{vf}:{item.line}", (vf, item.expr.line, item.expr.col))

    def variable_model(self) -> list[Variable]:
        out = []
        for d in self.vars.values():
            required = not d.has_default
            default = None if required else render_value(d.default)
            if d.default is UNKNOWN:
                default = "<unknown>"
            out.append(Variable(
                name=d.name, default=default, required=required, sensitive=d.sensitive,
                loc=Loc(d.file, d.line, d.col, f"variable.{d.name}"),
                description=d.description,
                type=type_str(d.type) if d.type is not None else "any",
            ))
        return out

    # -- bodies -> nodes -----------------------------------------------------------------
    def body_node(self, body: S.Body, scope: Scope, file: str, path: str,
                  skip: tuple[str, ...] = (), what: str = "") -> Node:
        """A plugin body: attributes evaluated, nested blocks as objects (lists when repeated),
        dynamic blocks expanded."""
        values: dict[str, Node] = {}
        key_locs: dict[str, Loc] = {}
        block_groups: dict[str, list[S.Block]] = {}
        seen_attr: dict[str, int] = {}
        for item in self.expand(body.items, scope, file):
            if isinstance(item, S.Attribute):
                if item.name in skip:
                    continue
                if item.name in seen_attr:
                    self.p.add(file, item.line, item.col, f'"{item.name}" is set twice'
                               f"{' in ' + what if what else ''} (first on line "
                               f"{seen_attr[item.name]})", _join(path, item.name))
                    continue
                seen_attr[item.name] = item.line
                v = self.eval(item.expr, scope, file)
                if v is None:
                    continue  # null means "not set"
                key_locs[item.name] = Loc(file, item.line, item.col, _join(path, item.name))
                values[item.name] = self.value_node(v, item.expr, file, _join(path, item.name))
            else:
                blk = item
                if blk.type in skip:
                    continue
                if blk.labels:
                    line, col = blk.label_locs[0]
                    self.p.add(file, line, col, f'the "{blk.type}" block takes no labels here')
                    continue
                block_groups.setdefault(blk.type, []).append(blk)
        for name, blks in block_groups.items():
            first = blks[0]
            if name in seen_attr:
                self.p.add(file, first.line, first.col,
                           f'"{name}" is set both as an argument and as a block')
                continue
            nodes = []
            for i, blk in enumerate(blks):
                sub_path = _join(path, name) + (f"[{i}]" if len(blks) > 1 else "")
                node = self.body_node(blk.body, scope.child(blk.scope), file, sub_path)
                nodes.append(BlockNode(node.value, Loc(file, blk.line, blk.col, sub_path),
                                        node.key_locs))
            key_locs[name] = Loc(file, first.line, first.col, _join(path, name))
            values[name] = nodes[0] if len(nodes) == 1 else Node(nodes, key_locs[name])
        return Node(values, Loc(file, body.line, body.col, path), key_locs)

    def value_node(self, v: Any, expr: S.Expr | None, file: str, path: str) -> Node:
        line, col = (expr.line, expr.col) if expr is not None else (0, 0)
        loc = Loc(file, line, col, path)
        while isinstance(expr, (S.Paren,)) or (
                isinstance(expr, S.Template) and len(expr.parts) == 1
                and isinstance(expr.parts[0], S.Expr)
                and not isinstance(expr.parts[0], (S.TemplateIf, S.TemplateFor))):
            expr = expr.expr if isinstance(expr, S.Paren) else expr.parts[0]
        if v is UNKNOWN or v is _FAILED:
            return Node(UnknownText(), loc)
        if isinstance(v, list):
            items = expr.items if isinstance(expr, S.TupleCons) and len(expr.items) == len(v) \
                else None
            return Node([self.value_node(x, items[i] if items else None, file, f"{path}[{i}]")
                         if items else _located(x, loc.child(i)) for i, x in enumerate(v)], loc)
        if isinstance(v, dict):
            exprs: dict[str, S.Expr] = {}
            if isinstance(expr, S.ObjectCons):
                for k, e in expr.items:
                    if isinstance(k, S.Literal) and isinstance(k.value, str):
                        exprs[k.value] = e
            out = {}
            klocs = {}
            for k, x in v.items():
                e = exprs.get(k)
                out[k] = self.value_node(x, e, file, _join(path, k)) if e is not None \
                    else _located(x, loc.child(k))
                klocs[k] = out[k].loc
            return Node(out, loc, klocs)
        return Node(v, loc)

    def expand(self, items: list, scope: Scope, file: str) -> list:
        """Body items with every dynamic block replaced by its generated blocks."""
        out = []
        for item in items:
            if isinstance(item, S.Block) and item.type == "dynamic":
                out += self.expand_dynamic(item, scope.child(item.scope), file)
            else:
                out.append(item)
        return out

    def expand_dynamic(self, d: S.Block, scope: Scope, file: str) -> list[S.Block]:
        if len(d.labels) != 1:
            self.label_problem(file, d, 1)
            return []
        btype = d.labels[0]
        self.check_attrs(file, d.body, ("for_each", "labels", "iterator"),
                         f'dynamic "{btype}"', ("content",))
        contents = [b for b in d.body.blocks if b.type == "content"]
        fe = d.body.attr("for_each")
        if fe is None or len(contents) != 1:
            self.p.add(file, d.line, d.col, f'dynamic "{btype}" needs for_each = ... and one '
                       "content { ... } block")
            return []
        it_name = btype
        it = d.body.attr("iterator")
        if it is not None:
            if isinstance(it.expr, S.VarRef):
                it_name = it.expr.name
            else:
                self.p.add(file, it.expr.line, it.expr.col, "iterator must be a plain name")
                return []
        coll = self.eval(fe.expr, scope, file)
        if coll is _FAILED or coll is UNKNOWN:
            return []
        if isinstance(coll, list):
            pairs = list(enumerate(coll))
        elif isinstance(coll, dict):
            pairs = [(k, coll[k]) for k in sorted(coll)]
        else:
            self.p.add(file, fe.expr.line, fe.expr.col, "for_each must be a list, set or map, got "
                       f"{type_of(coll)}")
            return []
        labels_attr = d.body.attr("labels")
        out = []
        content = contents[0]
        for k, v in pairs:
            extra = {it_name: {"key": k, "value": v}}
            inner = scope.child(extra)
            labels: list[str] = []
            locs: list[tuple[int, int]] = []
            if labels_attr is not None:
                lv = self.eval(labels_attr.expr, inner, file)
                if lv is _FAILED:
                    return []
                if not isinstance(lv, list) or not all(isinstance(x, str) for x in lv):
                    self.p.add(file, labels_attr.expr.line, labels_attr.expr.col,
                               "labels must be a list of strings")
                    return []
                labels = lv
                locs = [(labels_attr.expr.line, labels_attr.expr.col)] * len(lv)
            merged = {**d.scope, **extra}
            blk = S.Block(btype, labels, locs, content.body, d.line, d.col, merged)
            # nested dynamic blocks see the iterator too
            out.append(blk)
        return out

    # -- builds ---------------------------------------------------------------------------
    def make_builds(self) -> tuple[list[BuildDef], list[ProvisionerDef]]:
        builds: list[BuildDef] = []
        all_provs: list[ProvisionerDef] = []
        names: dict[str, tuple[str, int]] = {}
        prov_offset = 0
        for _bi, (b, file) in enumerate(self.builds):
            if b.labels:
                self.label_problem(file, b, 0)
                continue
            self.check_attrs(file, b.body, ("name", "description", "sources"), "the build block",
                             BUILD_BLOCKS)
            base = self.scope()
            bname = ""
            a = b.body.attr("name")
            if a is not None:
                v = self.eval(a.expr, base, file)
                if isinstance(v, str):
                    bname = v
                    if not v or not _IDENT.match(v.replace(".", "_")):
                        self.p.add(file, a.expr.line, a.expr.col, f'"{v}" is not a valid build name '
                                   "(letters, digits, _ and -)")
                elif v not in (_FAILED, UNKNOWN):
                    self.p.add(file, a.expr.line, a.expr.col, "the build name must be a string")
            a = b.body.attr("description")
            if a is not None:
                v = self.eval(a.expr, base, file)
                if isinstance(v, str) and not self.description:
                    self.description = v
            usages = self.usages(b, file, base)
            for blk in b.body.blocks:
                if blk.type == "hcp_packer_registry":
                    self.p.warn(file, blk.line, blk.col, "hcp_packer_registry is ignored: Kiln "
                                "does not publish to HCP Packer")
            first_provs: list[ProvisionerDef] | None = None
            count = 0
            for u in usages:
                full = f"{bname}.{u.type}.{u.local_name}" if bname else f"{u.type}.{u.local_name}"
                if full in names:
                    ofile, oline = names[full]
                    self.p.add(u.file, u.line, u.col, f'the build "{full}" is defined twice (first '
                               f"in {ofile}:{oline}); give one build block a different name")
                    continue
                names[full] = (u.file, u.line)
                build = self.make_build(len(builds), full, bname, u, b, file, prov_offset)
                if build is None:
                    continue
                bd, provs = build
                builds.append(bd)
                if first_provs is None:
                    first_provs = provs
                count = max(count, len(provs))
            if first_provs:
                all_provs += first_provs
            prov_offset += count
        return builds, all_provs

    def usages(self, b: S.Block, file: str, scope: Scope) -> list[_Usage]:
        out: list[_Usage] = []
        before = len(self.p.items)
        a = b.body.attr("sources")
        if a is not None:
            v = self.eval(a.expr, scope, file)
            items = a.expr.items if isinstance(a.expr, S.TupleCons) else None
            if isinstance(v, list):
                for i, ref in enumerate(v):
                    e = items[i] if items and i < len(items) else a.expr
                    if not isinstance(ref, str):
                        self.p.add(file, e.line, e.col, 'sources must be a list of strings such '
                                   'as "source.null.example"')
                        continue
                    key = self.source_ref(ref, file, e.line, e.col)
                    if key:
                        blk, sfile = self.sources[key]
                        out.append(_Usage(blk.labels[0], blk.labels[1], blk.labels[1], blk, file,
                                          e.line, e.col))
            elif v not in (_FAILED, UNKNOWN):
                self.p.add(file, a.expr.line, a.expr.col, 'sources must be a list of strings such '
                           'as ["source.null.example"]')
        for blk in b.body.blocks:
            if blk.type != "source":
                continue
            if len(blk.labels) != 1:
                self.p.add(file, blk.line, blk.col, 'a source block inside build takes one label: '
                           'source "source.TYPE.NAME" { ... }')
                continue
            line, col = blk.label_locs[0]
            key = self.source_ref(blk.labels[0], file, line, col)
            if not key:
                continue
            src, _ = self.sources[key]
            local = src.labels[1]
            extra = []
            for item in blk.body.items:
                if isinstance(item, S.Attribute) and item.name == "name":
                    v = self.eval(item.expr, scope, file)
                    if isinstance(v, str) and _IDENT.match(v):
                        local = v
                    elif v not in (_FAILED, UNKNOWN):
                        self.p.add(file, item.expr.line, item.expr.col, "name must be a plain name "
                                   "(letters, digits, _ and -)")
                else:
                    extra.append(item)
            out.append(_Usage(src.labels[0], src.labels[1], local, src, file, blk.line, blk.col,
                              extra))
        if not out and len(self.p.items) == before:
            # Packer accepts this and builds nothing; most likely it is an oversight
            self.p.warn(file, b.line, b.col, 'the build block has no sources, so it builds '
                        'nothing: add sources = ["source.TYPE.NAME"] to build one')
        return out

    def source_ref(self, ref: str, file: str, line: int, col: int) -> str | None:
        parts = ref.split(".")
        if len(parts) == 3 and parts[0] == "source":
            parts = parts[1:]
        if len(parts) != 2 or not all(_IDENT.match(p) for p in parts):
            self.p.add(file, line, col, f'"{ref}" is not a source reference: write '
                       '"source.TYPE.NAME" (or "TYPE.NAME")')
            return None
        key = ".".join(parts)
        if key not in self.sources:
            known = sorted(self.sources)
            self.p.add(file, line, col, f'unknown source "{key}"{did_you_mean(key, known)} (known: '
                       f"{', '.join(known) or 'none'})")
            return None
        return key

    def make_build(self, index: int, full: str, bname: str, u: _Usage, b: S.Block, file: str,
                   prov_offset: int) -> tuple[BuildDef, list[ProvisionerDef]] | None:
        src, sfile = self.sources[f"{u.type}.{u.name}"]
        sscope = self.scope(source=(u.type, u.local_name))
        path = f"source.{u.type}.{u.name}"
        config = self.body_node(src.body, sscope, sfile, path, what=f'source "{u.type}" "{u.name}"')
        if u.extra:
            merged = dict(config.value)
            klocs = dict(config.key_locs or {})
            extra_body = S.Body(u.extra, u.line, u.col)
            extra_node = self.body_node(extra_body, sscope, u.file, path)
            for k, n in extra_node.items():
                if k in merged:
                    kl = extra_node.key_loc(k)
                    ol = config.key_loc(k)
                    self.p.add(kl.file, kl.line, kl.col, f'"{k}" is already set in source '
                               f'"{u.type}" "{u.name}" ({ol.file}:{ol.line}); a source block '
                               "inside build may add settings, not change them")
                    continue
                merged[k] = n
                klocs[k] = extra_node.key_loc(k)
            config = Node(merged, config.loc, klocs)
        config = shape("builder", u.type, config)
        # a source renamed in the build answers to its new name only, as in Packer
        match = frozenset({f"{u.type}.{u.local_name}"})
        provs, cleanup, chains = self.build_contents(b, file, u, bname, prov_offset)
        applies = tuple(p for p in provs if p.applies_to(match))
        bd = BuildDef(
            index=index,
            name=full,
            type=u.type,
            build_name=u.name,
            config=config,
            loc=Loc(sfile, src.line, src.col, path),
            provisioners=applies,
            error_cleanup=cleanup,
            post_processors=tuple(chains),
            match_names=match,
            raw_name=u.local_name,
        )
        return bd, provs

    def build_contents(self, b: S.Block, file: str, u: _Usage, bname: str, offset: int):
        scope = self.scope(source=(u.type, u.local_name), build=bname)
        provs: list[ProvisionerDef] = []
        cleanup: ProvisionerDef | None = None
        chains: list[tuple[PostProcessorDef, ...]] = []
        items = self.expand([i for i in b.body.items if isinstance(i, S.Block)], scope, file)
        pi = 0
        for blk in items:
            bscope = scope.child(blk.scope)
            if blk.type == "provisioner":
                p = self.provisioner(blk, bscope, file, offset + pi, f"build.provisioner[{pi}]", u)
                pi += 1
                if p is not None:
                    provs.append(p)
            elif blk.type == "error-cleanup-provisioner":
                if cleanup is not None:
                    self.p.add(file, blk.line, blk.col, "a build block may have only one "
                               "error-cleanup-provisioner")
                    continue
                cleanup = self.provisioner(blk, bscope, file, 0, "build.error-cleanup-provisioner",
                                           u, cleanup=True)
            elif blk.type == "post-processor":
                pp = self.post_processor(blk, bscope, file, len(chains), 0,
                                         f"build.post-processor[{len(chains)}]", u)
                if pp is not None:
                    chains.append((pp,))
            elif blk.type == "post-processors":
                if blk.labels:
                    self.label_problem(file, blk, 0)
                    continue
                chain = []
                inner = self.expand(blk.body.items, bscope, file)
                ci = len(chains)
                for sub in inner:
                    if isinstance(sub, S.Attribute) or sub.type != "post-processor":
                        what = sub.name if isinstance(sub, S.Attribute) else sub.type
                        self.p.add(file, sub.line, sub.col, f'a post-processors block holds only '
                                   f'post-processor blocks, found "{what}"')
                        continue
                    pp = self.post_processor(sub, bscope.child(sub.scope), file, ci, len(chain),
                                             f"build.post-processors[{ci}][{len(chain)}]", u)
                    if pp is not None:
                        chain.append(pp)
                if chain:
                    chains.append(tuple(chain))
        return provs, cleanup, chains

    def meta_names(self, a: S.Attribute | None, scope: Scope, file: str, what: str) -> tuple:
        if a is None:
            return ()
        v = self.eval(a.expr, scope, file)
        if v is _FAILED or v is UNKNOWN:
            return ()
        if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
            self.p.add(file, a.expr.line, a.expr.col, f'{a.name} must be a list of source names '
                       'such as ["null.example"]')
            return ()
        known = {f"{u.type}.{u.local_name}" for u in self._all_usage_names()}
        known |= set(self.sources)
        for x in v:
            if x not in known:
                self.p.warn(file, a.expr.line, a.expr.col, f'{what} {a.name} names "{x}", which '
                            f"is no source of any build{did_you_mean(x, known)}; names are "
                            '"TYPE.NAME"')
        return tuple(v)

    def _all_usage_names(self) -> list[_Usage]:
        cached = getattr(self, "_usage_cache", None)
        if cached is not None:
            return cached
        out = []
        quiet = _Problems(self.texts)
        saved, self.p = self.p, quiet
        try:
            for b, file in self.builds:
                out += self.usages(b, file, self.scope())
        finally:
            self.p = saved
        self._usage_cache = out
        return out

    def only_except(self, body: S.Body, scope: Scope, file: str, what: str) -> tuple:
        """The ``only`` and ``except`` names of a provisioner or post-processor block."""
        only = self.meta_names(body.attr("only"), scope, file, what)
        except_ = self.meta_names(body.attr("except"), scope, file, what)
        if only and except_:
            a = body.attr("except")
            self.p.add(file, a.line, a.col, "only one of only and except may be set")
        return only, except_

    def provisioner(self, blk: S.Block, scope: Scope, file: str, index: int, path: str,
                    u: _Usage, cleanup: bool = False) -> ProvisionerDef | None:
        if len(blk.labels) != 1:
            self.label_problem(file, blk, 1)
            return None
        ptype = blk.labels[0]
        body = blk.body
        what = f'provisioner "{ptype}"'
        only, except_ = self.only_except(body, scope, file, what)
        override: dict[str, Node] = {}
        a = body.attr("override")
        if a is not None:
            v = self.eval(a.expr, scope, file)
            if isinstance(v, dict):
                onode = self.value_node(v, a.expr, file, _join(path, "override"))
                for key, cfg in onode.items():
                    if not isinstance(cfg.value, dict):
                        self.p.add(file, cfg.loc.line, cfg.loc.col, f'override.{key} must be an '
                                   "object of settings")
                        continue
                    cfg = shape("provisioner", ptype, cfg)
                    override[key] = cfg
                    if key == u.local_name:
                        override[f"{u.type}.{u.local_name}"] = cfg
                known = {x.local_name for x in self._all_usage_names()}
                for key in v:
                    if key not in known:
                        self.p.warn(file, a.line, a.col, f'override names "{key}", which is no '
                                    f"source of any build{did_you_mean(key, known)}; override keys "
                                    "are source names")
            elif v not in (_FAILED, UNKNOWN, None):
                self.p.add(file, a.expr.line, a.expr.col, "override must be an object: "
                           "override = { SOURCE_NAME = { ... } }")
        pause = self.duration(body.attr("pause_before"), scope, file)
        timeout = self.duration(body.attr("timeout"), scope, file)
        retries: int | str = 0
        a = body.attr("max_retries")
        if a is not None:
            v = self.eval(a.expr, scope, file)
            if isinstance(v, bool) or not isinstance(v, (int, float, str)):
                if v not in (_FAILED, UNKNOWN):
                    self.p.add(file, a.expr.line, a.expr.col, "max_retries must be a whole number")
            else:
                try:
                    retries = int(str(v).strip()) if not isinstance(v, float) else int(v)
                    if retries < 0 or (isinstance(v, float) and not v.is_integer()):
                        raise ValueError
                except ValueError:
                    self.p.add(file, a.expr.line, a.expr.col, f'max_retries must be a whole number, '
                               f"got {render_value(v)!r}")
        name = self.meta(body, "name", scope, file, "", lambda v: isinstance(v, str),
                         "name must be a string")
        coe = self.meta(body, "continue_on_error", scope, file, False,
                        lambda v: isinstance(v, bool), "continue_on_error must be true or false")
        config = self.body_node(body, scope, file, path, skip=PROVISIONER_META, what=what)
        config = shape("provisioner", ptype, config)
        return ProvisionerDef(
            index=index, type=ptype, config=config, loc=Loc(file, blk.line, blk.col, path),
            only=() if cleanup else only, except_=() if cleanup else except_,
            override=MappingProxyType(override), pause_before=pause, max_retries=retries,
            timeout=timeout, name=name, continue_on_error=coe,
        )

    def duration(self, a: S.Attribute | None, scope: Scope, file: str) -> float:
        if a is None:
            return 0.0
        v = self.eval(a.expr, scope, file)
        if v in (_FAILED, UNKNOWN) or v is None:
            return 0.0
        if isinstance(v, bool) or not isinstance(v, (str, int, float)):
            self.p.add(file, a.expr.line, a.expr.col, f'{a.name} must be a duration such as "30s"')
            return 0.0
        if isinstance(v, (int, float)):
            return v / 1e9
        if not v.strip():
            return 0.0  # unset, as Packer reads an empty duration
        try:
            return parse_duration(v)
        except ValueError as e:
            self.p.add(file, a.expr.line, a.expr.col, f'{a.name}: {e}; expected a duration such as '
                       '"30s", "5m" or "1h30m"')
            return 0.0

    def meta(self, body: S.Body, key: str, scope: Scope, file: str, default: Any,
             ok: Callable[[Any], Any], message: str, null_ok: bool = False) -> Any:
        """A provisioner's or post-processor's own setting (``name``, ``continue_on_error``,
        ``keep_input_artifact``): its value when ``ok``, else ``default``, with ``message``
        reported unless the value is unknown (or null, with ``null_ok``)."""
        a = body.attr(key)
        if a is None:
            return default
        v = self.eval(a.expr, scope, file)
        if ok(v):
            return v
        if v not in (_FAILED, UNKNOWN) and not (null_ok and v is None):
            self.p.add(file, a.expr.line, a.expr.col, message)
        return default

    def post_processor(self, blk: S.Block, scope: Scope, file: str, chain: int, index: int,
                       path: str, u: _Usage) -> PostProcessorDef | None:
        if len(blk.labels) != 1:
            self.label_problem(file, blk, 1)
            return None
        ptype = blk.labels[0]
        body = blk.body
        what = f'post-processor "{ptype}"'
        only, except_ = self.only_except(body, scope, file, what)
        name = self.meta(body, "name", scope, file, ptype, lambda v: isinstance(v, str) and v,
                         "name must be a non-empty string")
        keep = self.meta(body, "keep_input_artifact", scope, file, None,
                         lambda v: isinstance(v, bool), "keep_input_artifact must be true or false",
                         null_ok=True)
        config = self.body_node(body, scope, file, path, skip=PP_META, what=what)
        config = shape("post-processor", ptype, config)
        return PostProcessorDef(chain, index, ptype, name, config,
                                Loc(file, blk.line, blk.col, path), only, except_, keep)


# -- helpers ------------------------------------------------------------------------------

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


def load_hcl2(path: str, cli_vars: Mapping[str, str] | None = None,
              var_files: tuple[str, ...] | list[str] = (), syntax_only: bool = False,
              evaluate_data: bool = False) -> Template:
    """Load an HCL2 template file or directory. Raises TemplateError with every problem.

    ``evaluate_data`` runs the data sources (what a build does); without it their outputs
    are unknown, and whatever depends on them is checked only as far as it can be."""
    if not os.path.exists(path):
        raise TemplateError(Problem(Loc(path), "cannot read template: no such file or directory"))
    loader = _Loader(path, cli_vars or {}, tuple(var_files), syntax_only, evaluate_data)
    try:
        return loader.load()
    except RecursionError:
        raise TemplateError(Problem(Loc(path), "the template nests too deeply to be evaluated")) \
            from None

