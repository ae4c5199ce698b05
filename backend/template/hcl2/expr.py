"""Evaluate HCL expression trees (:mod:`.syntax`) to plain Python values.

Values are ``str``, ``int``/``float`` (HCL numbers; integral results are ints), ``bool``,
``None`` (null), ``list`` (tuples, lists and sets) and ``dict`` (objects and maps). A value
that cannot be known yet (syntax-only checks) is :data:`UNKNOWN`; it propagates through
every operation.

Names are resolved in a :class:`Scope`: ``var``, ``local``, ``path``, ``packer``,
``source``, ``build`` are :class:`Namespace` objects whose attribute lookups give precise
errors (``there is no variable named "x"``); iterator names of ``for`` expressions and
``dynamic`` blocks are plain values. Every error is an :class:`EvalError` carrying the
1-based line and column of the sub-expression that failed.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from typing import Any

from .. import limits
from ..errors import did_you_mean
from . import syntax as S

__all__ = [
    "EvalError", "FuncError", "UNKNOWN", "Namespace", "Scope", "evaluate", "parse_type",
    "type_str", "convert", "ConvError", "format_number", "to_str", "type_of", "hcl_equal",
    "dedupe", "render_value", "collect_secret_texts",
]


class EvalError(Exception):
    def __init__(self, message: str, line: int = 0, col: int = 0):
        super().__init__(message)
        self.message = message
        self.line = line
        self.col = col


class AlreadyReported(EvalError):
    """A failure whose cause was reported once already (a spent budget): not repeated."""


class FuncError(Exception):
    """Raised by a function implementation; the evaluator adds the call's location."""


class ConvError(Exception):
    pass


class _Unknown:
    _inst: _Unknown | None = None

    def __new__(cls) -> _Unknown:
        if cls._inst is None:
            cls._inst = super().__new__(cls)
        return cls._inst

    def __repr__(self) -> str:
        return "UNKNOWN"


UNKNOWN = _Unknown()


class Namespace:
    """``var``, ``local``, ``source`` ...: attribute access through ``get(name)``."""

    def __init__(self, kind: str, get: Callable[[str], Any], names: Callable[[], list[str]],
                 missing: Callable[[str], str]):
        self.kind = kind
        self.get = get
        self.names = names
        self.missing = missing

    def lookup(self, name: str) -> Any:
        return self.get(name)

    def as_object(self) -> dict:
        return {n: self.get(n) for n in self.names()}


def simple_namespace(kind: str, values: dict[str, Any], what: str) -> Namespace:
    def missing(name: str) -> str:
        known = ", ".join(sorted(values)) or "none"
        return f'{kind} has no attribute "{name}"{did_you_mean(name, values)} ({what}: {known})'

    def get(name: str) -> Any:
        if name not in values:
            raise KeyError(name)
        return values[name]

    return Namespace(kind, get, lambda: list(values), missing)


class Scope:
    def __init__(self, names: dict[str, Any], funcs: dict[str, Callable[..., Any]],
                 forbidden: dict[str, str] | None = None,
                 forbidden_funcs: dict[str, str] | None = None):
        self.names = names
        self.funcs = funcs
        self.forbidden = forbidden or {}
        self.forbidden_funcs = forbidden_funcs or {}

    def child(self, extra: dict[str, Any]) -> Scope:
        if not extra:
            return self
        return Scope({**self.names, **extra}, self.funcs, self.forbidden, self.forbidden_funcs)


# -- types -------------------------------------------------------------------------------

PRIMITIVES = ("string", "number", "bool", "any")


def parse_type(expr: S.Expr) -> Any:
    """A type expression (``string``, ``list(string)``, ``object({a=number})``) -> type."""
    if isinstance(expr, S.VarRef):
        if expr.name in PRIMITIVES:
            return expr.name
        raise EvalError(f'"{expr.name}" is not a type; use string, number, bool, list(...), '
                        "set(...), map(...), object({...}), tuple([...]) or any", expr.line, expr.col)
    if isinstance(expr, S.Literal) and expr.value is None:
        return "any"
    if isinstance(expr, S.Template) and len(expr.parts) == 1 and isinstance(expr.parts[0], str):
        raise EvalError(f'a type is written without quotes: type = {expr.parts[0]}', expr.line,
                        expr.col)
    if isinstance(expr, S.Call):
        if expr.name in ("list", "set", "map"):
            if len(expr.args) != 1:
                raise EvalError(f"{expr.name}(...) takes exactly one element type", expr.line, expr.col)
            return (expr.name, parse_type(expr.args[0]))
        if expr.name == "object":
            if len(expr.args) != 1 or not isinstance(expr.args[0], S.ObjectCons):
                raise EvalError("object(...) takes one object of attribute types: object({a = string})",
                                expr.line, expr.col)
            attrs: dict[str, tuple[Any, bool, Any]] = {}  # name -> (type, optional, default)
            for k, v in expr.args[0].items:
                if not isinstance(k, S.Literal) and not (isinstance(k, S.Template) and
                                                        all(isinstance(p, str) for p in k.parts)):
                    raise EvalError("object attribute names must be plain names", k.line, k.col)
                key = k.value if isinstance(k, S.Literal) else "".join(k.parts)
                optional, default = False, None
                if isinstance(v, S.Call) and v.name == "optional":
                    if len(v.args) not in (1, 2):
                        raise EvalError("optional(...) takes a type and, if you like, a default: "
                                        'optional(string, "x")', v.line, v.col)
                    optional = True
                    if len(v.args) == 2:
                        default = _constant(v.args[1], "the default of optional(...)")
                    v = v.args[0]
                at = parse_type(v)
                if default is not None:
                    try:
                        default = convert(default, at)
                    except ConvError as e:
                        raise EvalError(f"the default of optional(...) does not fit its type: {e}",
                                        v.line, v.col) from None
                attrs[str(key)] = (at, optional, default)
            return ("object", attrs)
        if expr.name == "tuple":
            if len(expr.args) != 1 or not isinstance(expr.args[0], S.TupleCons):
                raise EvalError("tuple(...) takes one list of element types: tuple([string, number])",
                                expr.line, expr.col)
            return ("tuple", [parse_type(a) for a in expr.args[0].items])
        raise EvalError(f'"{expr.name}(...)" is not a type constructor; use list, set, map, object '
                        "or tuple", expr.line, expr.col)
    raise EvalError("not a type: use string, number, bool, list(...), map(...), object({...}) or any",
                    expr.line, expr.col)


def _constant(expr: S.Expr, what: str) -> Any:
    """A value written in a type expression: literals, lists and objects, no references."""
    try:
        v = evaluate(expr, Scope({}, {}))
    except EvalError as e:
        raise EvalError(f"{what} must be a constant value: {e.message}", expr.line,
                        expr.col) from None
    if v is UNKNOWN:
        raise EvalError(f"{what} must be a constant value", expr.line, expr.col)
    return v


def type_str(t: Any) -> str:
    if isinstance(t, str):
        return t
    kind = t[0]
    if kind in ("list", "set", "map"):
        return f"{kind}({type_str(t[1])})"
    if kind == "object":
        inner = ", ".join(f"{k}={'optional(' + type_str(v) + ')' if o else type_str(v)}"
                          for k, (v, o, _d) in t[1].items())
        return f"object({{{inner}}})"
    if kind == "tuple":
        return "tuple([" + ", ".join(type_str(x) for x in t[1]) + "])"
    return str(t)


def type_of(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "list"
    if isinstance(v, dict):
        return "object"
    if v is UNKNOWN:
        return "unknown"
    return type(v).__name__


def format_number(v: int | float) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if math.isnan(v) or math.isinf(v):
        raise ConvError("the number is not finite")
    if v.is_integer() and abs(v) < 1e21:
        return str(int(v))
    text = repr(v)
    return text


def norm_number(v: float | int) -> int | float:
    if isinstance(v, float) and v.is_integer() and abs(v) < 2**63:
        return int(v)
    return v


def parse_number(s: str) -> int | float:
    text = s.strip()
    if not text or any(c.isspace() for c in text):
        raise ConvError(f'"{s}" is not a number')
    try:
        if text.lstrip("+-").isdigit():
            return int(text)
        v = float(text)
    except ValueError:
        raise ConvError(f'"{s}" is not a number') from None
    if math.isnan(v) or math.isinf(v):
        raise ConvError(f'"{s}" is not a number')
    return norm_number(v)


def to_str(v: Any) -> str:
    """A primitive as a string (HCL's string conversion)."""
    if isinstance(v, str):
        return v
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return format_number(v)
    if v is None:
        raise ConvError("a string is required, got null")
    raise ConvError(f"a string is required, got {type_of(v)}")


def to_bool(v: Any) -> bool:
    if isinstance(v, bool):
        return v
    if isinstance(v, str):
        if v == "true":
            return True
        if v == "false":
            return False
        raise ConvError(f'a bool is required: "{v}" is neither "true" nor "false"')
    raise ConvError(f"a bool is required, got {type_of(v)}")


def to_number(v: Any) -> int | float:
    if isinstance(v, bool):
        raise ConvError("a number is required, got bool")
    if isinstance(v, (int, float)):
        return v
    if isinstance(v, str):
        return parse_number(v)
    raise ConvError(f"a number is required, got {type_of(v)}")


def convert(v: Any, t: Any, path: str = "") -> Any:
    """``v`` converted to type ``t`` (HCL's automatic conversions), or ConvError."""
    if v is UNKNOWN or t == "any":
        return v
    where = f" at {path}" if path else ""
    if v is None:
        return None
    try:
        if t == "string":
            return to_str(v)
        if t == "number":
            return to_number(v)
        if t == "bool":
            return to_bool(v)
    except ConvError as e:
        raise ConvError(f"{e}{where}") from None
    kind = t[0]
    if kind in ("list", "set"):
        if not isinstance(v, list):
            raise ConvError(f"a {kind} is required, got {type_of(v)}{where}")
        out = [convert(x, t[1], f"{path}[{i}]") for i, x in enumerate(v)]
        if kind == "set":
            out = dedupe(out)
        return out
    if kind == "map":
        if not isinstance(v, dict):
            raise ConvError(f"a map is required, got {type_of(v)}{where}")
        return {k: convert(x, t[1], f"{path}.{k}" if path else k) for k, x in v.items()}
    if kind == "object":
        if not isinstance(v, dict):
            raise ConvError(f"an object is required, got {type_of(v)}{where}")
        out_obj = {}
        for name, (at, optional, default) in t[1].items():
            sub = f"{path}.{name}" if path else name
            if optional and v.get(name) is None:
                out_obj[name] = copy.deepcopy(default)  # as HCL: missing or null takes it
                continue
            if name not in v:
                raise ConvError(f'attribute "{name}" is required{where}')
            out_obj[name] = convert(v[name], at, sub)
        return out_obj
    if kind == "tuple":
        if not isinstance(v, list):
            raise ConvError(f"a tuple is required, got {type_of(v)}{where}")
        if len(v) != len(t[1]):
            raise ConvError(f"a tuple of {len(t[1])} elements is required, got {len(v)}{where}")
        return [convert(x, et, f"{path}[{i}]") for i, (x, et) in enumerate(zip(v, t[1], strict=False))]
    raise ConvError(f"unsupported type {type_str(t)}")


def dedupe(items: list) -> list:
    """``items`` without the later ones HCL counts as equal to an earlier one."""
    out: list = []
    for x in items:
        if not any(hcl_equal(x, y) for y in out):
            out.append(x)
    return out


def hcl_equal(a: Any, b: Any) -> bool:
    if a is b and isinstance(a, (list, dict)):  # shared values: no walk through them
        return True
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(hcl_equal(x, y) for x, y in zip(a, b, strict=False))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(hcl_equal(a[k], b[k]) for k in a)
    if type(a) is not type(b):
        return False
    return a == b


def collect_secret_texts(v: Any, into: set[str]) -> None:
    """Add the texts of the scalars in ``v`` (sensitive values) to ``into``."""
    if isinstance(v, list):
        for x in v:
            collect_secret_texts(x, into)
    elif isinstance(v, dict):
        for x in v.values():
            collect_secret_texts(x, into)
    elif isinstance(v, (str, int, float)) and not isinstance(v, bool):
        text = v if isinstance(v, str) else format_number(v)
        if len(text) >= 3:  # as the engine's secrets: masking "1" would garble the output
            into.add(text)


def render_value(v: Any) -> str:
    """A value as HCL-ish text for messages and ``inspect``."""
    if isinstance(v, str):
        return v
    if v is None:
        return "null"
    if isinstance(v, (bool, int, float)):
        return format_number(v) if not isinstance(v, bool) else ("true" if v else "false")
    if v is UNKNOWN:
        return "<unknown>"
    import json

    return json.dumps(v, default=str)


# -- evaluation -------------------------------------------------------------------------


def evaluate(expr: S.Expr, scope: Scope) -> Any:
    try:
        return _Eval(scope).eval(expr)
    except RecursionError:
        raise EvalError("the expression is too deeply nested", expr.line, expr.col) from None


def _interp_str(v: Any, e: S.Expr) -> str:
    try:
        return to_str(v)
    except ConvError:
        if v is None:
            raise EvalError("cannot insert null into a string (the interpolated value is null)",
                            e.line, e.col) from None
        raise EvalError(f"cannot insert a {type_of(v)} value into a string; convert it first "
                        "(join(), jsonencode() or an index)", e.line, e.col) from None


class _Eval:
    def __init__(self, scope: Scope, budget: limits.Budget | None = None):
        self.scope = scope
        self.budget = budget if budget is not None else limits.current()

    def eval(self, e: S.Expr) -> Any:
        b = self.budget
        b.steps += 1
        if b.steps > limits.MAX_STEPS:
            if b.exhausted:
                raise AlreadyReported("the step budget is spent", e.line, e.col)
            b.exhausted = True
            raise EvalError(str(b.too_many_steps()), e.line, e.col)
        m = getattr(self, "e_" + type(e).__name__)
        return m(e)

    def with_scope(self, extra: dict[str, Any]) -> _Eval:
        return _Eval(self.scope.child(extra), self.budget)

    def limited(self, v: Any, e: S.Expr, what: str) -> Any:
        """``v`` if it is within Kiln's size limits, else a located error."""
        try:
            limits.check_value(v, what)
        except limits.LimitError as err:
            raise EvalError(str(err), e.line, e.col) from None
        return v

    # -- leaves ------------------------------------------------------------------------
    def e_Literal(self, e: S.Literal) -> Any:
        return e.value

    def e_Paren(self, e: S.Paren) -> Any:
        return self.eval(e.expr)

    def e_VarRef(self, e: S.VarRef) -> Any:
        names = self.scope.names
        if e.name in names:
            v = names[e.name]
            return v
        if e.name in self.scope.forbidden:
            raise EvalError(self.scope.forbidden[e.name], e.line, e.col)
        hint = did_you_mean(e.name, list(names))
        raise EvalError(f'unknown name "{e.name}"{hint}: references start with var., local., '
                        "source., build., path. or packer.", e.line, e.col)

    def value_of(self, v: Any, e: S.Expr) -> Any:
        if isinstance(v, Namespace):
            return v.as_object()
        return v

    def full(self, e: S.Expr) -> Any:
        return self.value_of(self.eval(e), e)

    # -- templates ---------------------------------------------------------------------
    def e_Template(self, e: S.Template) -> Any:
        parts = e.parts
        if len(parts) == 1 and isinstance(parts[0], S.Expr) and not isinstance(
                parts[0], (S.TemplateIf, S.TemplateFor)):
            return self.full(parts[0])  # "${x}" is x itself, of any type
        out: list[str] = []
        if self.template_parts(parts, out) is UNKNOWN:
            return UNKNOWN
        n = sum(map(len, out))
        try:
            limits.check_string(n, "the string")
            self.budget.render(n)
        except limits.LimitError as err:
            raise EvalError(str(err), e.line, e.col) from None
        return "".join(out)

    def template_parts(self, parts: list, out: list[str]) -> Any:
        unknown = False
        for p in parts:
            if isinstance(p, str):
                out.append(p)
            elif isinstance(p, S.TemplateIf):
                c = self.full(p.cond)
                if c is UNKNOWN:
                    unknown = True
                    continue
                try:
                    cond = to_bool(c)
                except ConvError as err:
                    raise EvalError(f"the %{{ if }} condition must be a bool: {err}", p.line,
                                    p.col) from None
                if self.template_parts(p.then if cond else p.else_, out) is UNKNOWN:
                    unknown = True
            elif isinstance(p, S.TemplateFor):
                coll = self.full(p.coll)
                if coll is UNKNOWN:
                    unknown = True
                    continue
                for k, v in self.iterate(coll, p.coll):
                    extra = {p.val_var: v}
                    if p.key_var:
                        extra[p.key_var] = k
                    if self.with_scope(extra).template_parts(p.body, out) is UNKNOWN:
                        unknown = True
            else:
                v = self.full(p)
                if v is UNKNOWN:
                    unknown = True
                    continue
                out.append(_interp_str(v, p))
        return UNKNOWN if unknown else None

    def iterate(self, coll: Any, e: S.Expr) -> list[tuple[Any, Any]]:
        if isinstance(coll, list):
            return list(enumerate(coll))
        if isinstance(coll, dict):
            return [(k, coll[k]) for k in sorted(coll)]
        if coll is None:
            raise EvalError("cannot iterate over null", e.line, e.col)
        raise EvalError(f"cannot iterate over a {type_of(coll)} value; a list, set, map or "
                        "object is required", e.line, e.col)

    # -- traversal ---------------------------------------------------------------------
    def e_GetAttr(self, e: S.GetAttr) -> Any:
        obj = self.eval(e.obj)
        return self.get_attr(obj, e.name, e)

    def get_attr(self, obj: Any, name: str, e: S.Expr) -> Any:
        if obj is UNKNOWN:
            return UNKNOWN
        if isinstance(obj, Namespace):
            try:
                return obj.lookup(name)
            except KeyError:
                raise EvalError(obj.missing(name), e.line, e.col) from None
        if isinstance(obj, dict):
            if name in obj:
                return obj[name]
            raise EvalError(f'the object has no attribute "{name}"{did_you_mean(name, obj)}',
                            e.line, e.col)
        if isinstance(obj, list):
            raise EvalError(f'cannot read attribute "{name}" of a list; use an index ([0]) or a '
                            f"splat ([*].{name})", e.line, e.col)
        if obj is None:
            raise EvalError(f'cannot read attribute "{name}" of null', e.line, e.col)
        raise EvalError(f'cannot read attribute "{name}" of a {type_of(obj)} value', e.line, e.col)

    def e_Index(self, e: S.Index) -> Any:
        obj = self.full(e.obj)
        key = self.full(e.key)
        return self.index(obj, key, e)

    def index(self, obj: Any, key: Any, e: S.Expr) -> Any:
        if obj is UNKNOWN or key is UNKNOWN:
            return UNKNOWN
        if isinstance(obj, list):
            try:
                k = to_number(key)
            except ConvError:
                raise EvalError(f"a list index must be a number, got {type_of(key)}", e.line,
                                e.col) from None
            if not float(k).is_integer():
                raise EvalError(f"a list index must be a whole number, got {k}", e.line, e.col)
            k = int(k)
            if k < 0 or k >= len(obj):
                raise EvalError(f"index {k} is out of range for a list of {len(obj)} element"
                                f"{'s' if len(obj) != 1 else ''}", e.line, e.col)
            return obj[k]
        if isinstance(obj, dict):
            try:
                k = to_str(key)
            except ConvError:
                raise EvalError(f"a map key must be a string, got {type_of(key)}", e.line,
                                e.col) from None
            if k not in obj:
                raise EvalError(f'the map has no key "{k}"{did_you_mean(k, obj)}', e.line, e.col)
            return obj[k]
        if obj is None:
            raise EvalError("cannot index null", e.line, e.col)
        raise EvalError(f"cannot index a {type_of(obj)} value", e.line, e.col)

    def e_Splat(self, e: S.Splat) -> Any:
        obj = self.full(e.obj)
        if obj is UNKNOWN:
            return UNKNOWN
        if obj is None:
            return []
        items = obj if isinstance(obj, list) else [obj]
        out = []
        for item in items:
            v = item
            for kind, arg in e.steps:
                if kind == "attr":
                    v = self.get_attr(v, arg, e)
                else:
                    v = self.index(v, self.full(arg), arg)
            out.append(v)
        return out

    # -- calls -------------------------------------------------------------------------
    def e_Call(self, e: S.Call) -> Any:
        name = e.name
        if name == "can":
            if len(e.args) != 1:
                raise EvalError("can() takes exactly one argument", e.line, e.col)
            try:
                v = self.full(e.args[0])
            except EvalError:
                return False
            return UNKNOWN if v is UNKNOWN else True
        if name == "try":
            if not e.args:
                raise EvalError("try() needs at least one argument", e.line, e.col)
            last: EvalError | None = None
            for a in e.args:
                try:
                    return self.full(a)
                except EvalError as err:
                    last = err
            assert last is not None
            raise EvalError(f"no argument of try() could be evaluated; the last one failed: "
                            f"{last.message}", e.line, e.col)
        fn = self.scope.funcs.get(name)
        if fn is None:
            if name in self.scope.forbidden_funcs:
                raise EvalError(self.scope.forbidden_funcs[name], e.line, e.col)
            hint = did_you_mean(name, list(self.scope.funcs))
            raise EvalError(f'unknown function "{name}"{hint}', e.line, e.col)
        args = [self.full(a) for a in e.args]
        if e.expand_final:
            if not args or not isinstance(args[-1], list):
                raise EvalError(f"the last argument of {name}(...) must be a list to expand it",
                                e.line, e.col)
            args = args[:-1] + list(args[-1])
        arity = _arity_problem(fn, len(args))
        if arity:
            raise EvalError(f"{name}() {arity}", e.line, e.col)
        if any(a is UNKNOWN for a in args) and not getattr(fn, "accepts_unknown", False):
            return UNKNOWN
        try:
            if name in _WRITES_OUT:  # shared values would be written out once per reference
                limits.check_expanded(args, f"the arguments of {name}()")
            return self.limited(fn(*args), e, f"the result of {name}()")
        except limits.LimitError as err:
            raise EvalError(f"{name}(): {err}", e.line, e.col) from None
        except RecursionError:
            raise EvalError(f"{name}(): the value is too deeply nested", e.line, e.col) from None
        except MemoryError:
            raise EvalError(f"{name}(): the result does not fit in memory", e.line,
                            e.col) from None
        except FuncError as err:
            raise EvalError(f"{name}(): {err}", e.line, e.col) from None
        except ConvError as err:
            raise EvalError(f"{name}(): {err}", e.line, e.col) from None
        except TypeError as err:
            raise EvalError(f"{name}(): invalid argument ({err})", e.line, e.col) from None
        except (ValueError, OverflowError, ArithmeticError, IndexError, KeyError,
                AttributeError) as err:
            raise EvalError(f"{name}(): {err}", e.line, e.col) from None

    # -- operators ---------------------------------------------------------------------
    def e_Conditional(self, e: S.Conditional) -> Any:
        c = self.full(e.cond)
        if c is UNKNOWN:
            return UNKNOWN
        try:
            cond = to_bool(c)
        except ConvError as err:
            raise EvalError(f"the condition must be a bool: {err}", e.cond.line, e.cond.col) from None
        return self.full(e.a if cond else e.b)

    def e_Unary(self, e: S.Unary) -> Any:
        v = self.full(e.a)
        if v is UNKNOWN:
            return UNKNOWN
        try:
            if e.op == "!":
                return not to_bool(v)
            return norm_number(-to_number(v))
        except ConvError as err:
            raise EvalError(f'the operand of "{e.op}" is invalid: {err}', e.a.line, e.a.col) from None

    def e_Binary(self, e: S.Binary) -> Any:
        op = e.op
        if op in ("&&", "||"):
            a = self.full(e.a)
            if a is UNKNOWN:
                return UNKNOWN
            ab = self._bool(a, e.a, op)
            if op == "&&" and not ab:
                return False
            if op == "||" and ab:
                return True
            b = self.full(e.b)
            if b is UNKNOWN:
                return UNKNOWN
            return self._bool(b, e.b, op)
        a = self.full(e.a)
        b = self.full(e.b)
        if a is UNKNOWN or b is UNKNOWN:
            return UNKNOWN
        if op == "==":
            return hcl_equal(a, b)
        if op == "!=":
            return not hcl_equal(a, b)
        x = self._num(a, e.a, op)
        y = self._num(b, e.b, op)
        if op == "<":
            return x < y
        if op == ">":
            return x > y
        if op == "<=":
            return x <= y
        if op == ">=":
            return x >= y
        if op == "+":
            return _sized(norm_number(x + y), e)
        if op == "-":
            return _sized(norm_number(x - y), e)
        if op == "*":  # operands are within _MAX_INT_BITS: the product is cheap
            return _sized(norm_number(x * y), e)
        if op == "/":
            if y == 0:
                raise EvalError("division by zero", e.b.line, e.b.col)
            return norm_number(x / y)
        if op == "%":
            if y == 0:
                raise EvalError("modulo by zero", e.b.line, e.b.col)
            return norm_number(math.fmod(x, y)) if isinstance(x, float) or isinstance(y, float) \
                else int(math.fmod(x, y))
        raise EvalError(f"unsupported operator {op}", e.line, e.col)

    def _bool(self, v: Any, e: S.Expr, op: str) -> bool:
        try:
            return to_bool(v)
        except ConvError as err:
            raise EvalError(f'the operands of "{op}" must be bools: {err}', e.line, e.col) from None

    def _num(self, v: Any, e: S.Expr, op: str) -> int | float:
        try:
            return to_number(v)
        except ConvError as err:
            raise EvalError(f'the operands of "{op}" must be numbers: {err}', e.line, e.col) from None

    # -- collections -------------------------------------------------------------------
    def e_TupleCons(self, e: S.TupleCons) -> Any:
        return [self.full(x) for x in e.items]  # as long as the source: no limit needed

    def e_ObjectCons(self, e: S.ObjectCons) -> Any:
        out: dict[str, Any] = {}
        for k, v in e.items:
            key = self.object_key(k)
            if key is UNKNOWN:
                return UNKNOWN
            if key in out:
                raise EvalError(f'the key "{key}" is defined twice in this object', k.line, k.col)
            out[key] = self.full(v)
        return out

    def object_key(self, k: S.Expr) -> Any:
        if isinstance(k, S.Literal) and isinstance(k.value, str):
            return k.value
        kv = self.full(k)
        if kv is UNKNOWN:
            return UNKNOWN
        try:
            return to_str(kv)
        except ConvError:
            raise EvalError(f"an object key must be a string, got {type_of(kv)}", k.line,
                            k.col) from None

    def e_ForExpr(self, e: S.ForExpr) -> Any:
        coll = self.full(e.coll)
        if coll is UNKNOWN:
            return UNKNOWN
        pairs = self.iterate(coll, e.coll)
        if e.is_object:
            obj: dict[str, Any] = {}
            for k, v in pairs:
                inner = self.with_scope({e.val_var: v, **({e.key_var: k} if e.key_var else {})})
                if e.cond is not None and not self._cond(inner, e.cond):
                    continue
                key = inner.full(e.key_expr)
                if key is UNKNOWN:
                    return UNKNOWN
                try:
                    key = to_str(key)
                except ConvError:
                    raise EvalError("the key of a for expression must be a string", e.key_expr.line,
                                    e.key_expr.col) from None
                val = inner.full(e.val_expr)
                if e.group:
                    obj.setdefault(key, []).append(val)
                else:
                    if key in obj:
                        raise EvalError(f'the for expression produces the key "{key}" twice; add '
                                        '"..." after the value to group them', e.key_expr.line,
                                        e.key_expr.col)
                    obj[key] = val
            return obj
        out = []
        for k, v in pairs:
            inner = self.with_scope({e.val_var: v, **({e.key_var: k} if e.key_var else {})})
            if e.cond is not None and not self._cond(inner, e.cond):
                continue
            out.append(inner.full(e.val_expr))
        return self.limited(out, e, "the list")

    def _cond(self, inner: _Eval, cond: S.Expr) -> bool:
        c = inner.full(cond)
        if c is UNKNOWN:
            return False
        try:
            return to_bool(c)
        except ConvError as err:
            raise EvalError(f"the if clause of a for expression must be a bool: {err}", cond.line,
                            cond.col) from None


#: functions that write their arguments out whole (a value shared a million times inside
#: another is written a million times)
_WRITES_OUT = frozenset({"jsonencode", "yamlencode", "join", "format", "formatlist", "flatten",
                         "tostring", "csvdecode"})
#: HCL numbers have 512 bits of precision; larger integers are approximated, never grown
_MAX_INT_BITS = 1024


def _sized(v: Any, e: S.Expr) -> Any:
    if isinstance(v, int) and not isinstance(v, bool) and v.bit_length() > _MAX_INT_BITS:
        try:
            return float(v)
        except OverflowError:
            return math.inf if v > 0 else -math.inf
    return v


_ARITY: dict[Any, tuple[int, int | None]] = {}


def _arity_problem(fn: Callable[..., Any], n: int) -> str:
    """``takes 2 arguments, got 3`` when a call cannot match the function's parameters."""
    spec = _ARITY.get(fn)
    if spec is None:
        import inspect

        try:
            params = inspect.signature(fn).parameters.values()
        except (TypeError, ValueError):
            return ""
        lo, hi = 0, 0
        for p in params:
            if p.kind == p.VAR_POSITIONAL:
                hi = None  # type: ignore[assignment]
            elif p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
                if p.default is p.empty:
                    lo += 1
                if hi is not None:
                    hi += 1
        spec = (lo, hi)
        _ARITY[fn] = spec
    lo, hi = spec
    if n < lo or (hi is not None and n > hi):
        if hi == lo:
            want = f"{lo} argument{'s' if lo != 1 else ''}"
        elif hi is None:
            want = f"at least {lo} argument{'s' if lo != 1 else ''}"
        else:
            want = f"{lo} to {hi} arguments"
        return f"takes {want}, got {n}"
    return ""
