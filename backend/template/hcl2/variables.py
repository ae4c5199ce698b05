"""HCL2 variables and locals: declarations, values from -var, var files, the environment and
defaults, in Packer's order of precedence; locals evaluated on demand."""

from __future__ import annotations

import os
from typing import Any

from ..errors import TemplateError, did_you_mean
from ..model import Variable
from ..source import Loc
from . import syntax as S
from .common import (
    _FAILED,
    _IDENT,
    _NO_REFS,
    _File,
    _infer_type,
    _is_sentence,
    _Poisoned,
    _read,
    _references,
    _VarDecl,
)
from .expr import (
    UNKNOWN,
    ConvError,
    EvalError,
    Scope,
    collect_secret_texts,
    convert,
    evaluate,
    parse_type,
    render_value,
    simple_namespace,
    type_of,
    type_str,
)


class _Variables:
    """Part of the HCL2 loader (loader.py): its attributes are the loader's."""

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
            from ..parse import parse_json

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

