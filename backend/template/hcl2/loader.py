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
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from ..errors import Problem, TemplateError, did_you_mean
from ..model import Template
from ..plugins import (
    DataSourceRunner,
    PluginCatalog,
    resolve,
    using,
)
from ..source import Loc, Node, UnknownText
from . import syntax as S
from .builds import _Builds
from .common import (
    _FAILED,
    _NO_REFS,
    HCL2_COMPAT_VERSION,
    TOP_BLOCKS,
    _all_exprs,
    _build_namespace,
    _File,
    _join,
    _located,
    _or,
    _parse_file,
    _Poisoned,
    _Problems,
    _read,
    _VarDecl,
    is_hcl2_path,  # noqa: F401 - public here
    template_files,
)
from .datasources import _DataSources
from .expr import (
    UNKNOWN,
    AlreadyReported,
    ConvError,
    EvalError,
    Namespace,
    Scope,
    collect_secret_texts,
    evaluate,
    render_value,
    simple_namespace,
    to_str,
    type_of,
)
from .schema import BlockNode, check_version_constraint, plugin_note
from .variables import _Variables

__all__ = ["load_hcl2", "HCL2_COMPAT_VERSION", "template_files", "is_hcl2_path",
           "check_version_constraint"]


class _Loader(_Variables, _DataSources, _Builds):
    def __init__(self, path: str, cli_vars: Mapping[str, str], var_files: tuple[str, ...],
                 syntax_only: bool, evaluate_data: bool = False,
                 catalog: PluginCatalog | None = None, run_data: DataSourceRunner | None = None):
        self.path = path
        self.catalog, self.run_data = resolve(catalog, run_data)
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
        from .funcs import make_funcs

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
                from ..parse import bom_warning

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
        from .expr import FuncError

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


def load_hcl2(path: str, cli_vars: Mapping[str, str] | None = None,
              var_files: tuple[str, ...] | list[str] = (), syntax_only: bool = False,
              evaluate_data: bool = False, catalog: PluginCatalog | None = None,
              run_data: DataSourceRunner | None = None) -> Template:
    """Load an HCL2 template file or directory. Raises TemplateError with every problem.

    ``evaluate_data`` runs the data sources (what a build does) with ``run_data``; without
    it their outputs are unknown, and whatever depends on them is checked only as far as it
    can be. ``catalog`` gives the plugins' configuration schemas (see :mod:`.plugins`)."""
    if not os.path.exists(path):
        raise TemplateError(Problem(Loc(path), "cannot read template: no such file or directory"))
    loader = _Loader(path, cli_vars or {}, tuple(var_files), syntax_only, evaluate_data,
                     catalog, run_data)
    try:
        with using(loader.catalog, loader.run_data):
            return loader.load()
    except RecursionError:
        raise TemplateError(Problem(Loc(path), "the template nests too deeply to be evaluated")) \
            from None
