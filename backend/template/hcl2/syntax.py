"""HCL native syntax: tokens -> bodies, blocks, attributes and expression trees.

A recursive-descent parser over :mod:`.lex` tokens. Every node keeps the 1-based line
and column where it starts, so evaluation errors point at the exact expression, and block
items stay in file order (which is the order provisioners run in).

:func:`parse_config` parses a file; :func:`parse_expression` parses a standalone
expression (``-var`` values of non-string variables, ``type = ...`` strings in JSON);
:func:`parse_template` parses a string as a template (``.pkr.json`` values). They raise
:class:`HCLSyntaxError` only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from . import lex as L

__all__ = [
    "HCLSyntaxError", "Body", "Attribute", "Block", "Expr", "parse_config", "parse_expression",
    "parse_template", "MAX_NESTING",
]

#: nesting deeper than this is rejected (keeps the recursive parser away from Python's limit)
MAX_NESTING = 64


class HCLSyntaxError(Exception):
    def __init__(self, message: str, line: int, col: int):
        super().__init__(f"{line}:{col}: {message}")
        self.message = message
        self.line = line
        self.col = col


# -- expression nodes ------------------------------------------------------------------


@dataclass(eq=False)
class Expr:
    line: int
    col: int

    def children(self) -> list[Expr]:
        return []


@dataclass(eq=False)
class Literal(Expr):
    value: Any = None


@dataclass(eq=False)
class TemplateIf(Expr):
    cond: Expr | None = None
    then: list = field(default_factory=list)
    else_: list = field(default_factory=list)


@dataclass(eq=False)
class TemplateFor(Expr):
    key_var: str | None = None
    val_var: str = ""
    coll: Expr | None = None
    body: list = field(default_factory=list)


@dataclass(eq=False)
class Template(Expr):
    #: str literals, Expr interpolations, TemplateIf/TemplateFor directives
    parts: list = field(default_factory=list)
    heredoc: bool = False

    def children(self) -> list[Expr]:
        return _template_children(self.parts)


def _template_children(parts: list) -> list[Expr]:
    out: list[Expr] = []
    for p in parts:
        if isinstance(p, TemplateIf):
            out.append(p.cond)
            out += _template_children(p.then) + _template_children(p.else_)
        elif isinstance(p, TemplateFor):
            out.append(p.coll)
            out += _template_children(p.body)
        elif isinstance(p, Expr):
            out.append(p)
    return out


@dataclass(eq=False)
class VarRef(Expr):
    name: str = ""


@dataclass(eq=False)
class GetAttr(Expr):
    obj: Expr | None = None
    name: str = ""

    def children(self) -> list[Expr]:
        return [self.obj]


@dataclass(eq=False)
class Index(Expr):
    obj: Expr | None = None
    key: Expr | None = None

    def children(self) -> list[Expr]:
        return [self.obj, self.key]


@dataclass(eq=False)
class Splat(Expr):
    obj: Expr | None = None
    #: ("attr", name) or ("index", Expr) applied to each element
    steps: list = field(default_factory=list)

    def children(self) -> list[Expr]:
        return [self.obj] + [s[1] for s in self.steps if s[0] == "index"]


@dataclass(eq=False)
class Call(Expr):
    name: str = ""
    args: list = field(default_factory=list)
    expand_final: bool = False

    def children(self) -> list[Expr]:
        return list(self.args)


@dataclass(eq=False)
class Conditional(Expr):
    cond: Expr | None = None
    a: Expr | None = None
    b: Expr | None = None

    def children(self) -> list[Expr]:
        return [self.cond, self.a, self.b]


@dataclass(eq=False)
class Binary(Expr):
    op: str = ""
    a: Expr | None = None
    b: Expr | None = None

    def children(self) -> list[Expr]:
        return [self.a, self.b]


@dataclass(eq=False)
class Unary(Expr):
    op: str = ""
    a: Expr | None = None

    def children(self) -> list[Expr]:
        return [self.a]


@dataclass(eq=False)
class TupleCons(Expr):
    items: list = field(default_factory=list)

    def children(self) -> list[Expr]:
        return list(self.items)


@dataclass(eq=False)
class ObjectCons(Expr):
    #: (key expr, value expr); a bare identifier key is a Literal string
    items: list = field(default_factory=list)

    def children(self) -> list[Expr]:
        return [e for kv in self.items for e in kv]


@dataclass(eq=False)
class ForExpr(Expr):
    key_var: str | None = None
    val_var: str = ""
    coll: Expr | None = None
    key_expr: Expr | None = None  # object for only
    val_expr: Expr | None = None
    cond: Expr | None = None
    group: bool = False
    is_object: bool = False

    def children(self) -> list[Expr]:
        return [e for e in (self.coll, self.key_expr, self.val_expr, self.cond) if e is not None]


@dataclass(eq=False)
class Paren(Expr):
    expr: Expr | None = None

    def children(self) -> list[Expr]:
        return [self.expr]


def walk(expr: Expr):
    """Every node of an expression tree, depth first."""
    stack = [expr]
    while stack:
        e = stack.pop()
        if e is None:
            continue
        yield e
        stack.extend(e.children())


# -- bodies -------------------------------------------------------------------------------


@dataclass(eq=False)
class Attribute:
    name: str
    expr: Expr
    line: int
    col: int


@dataclass(eq=False)
class Block:
    type: str
    labels: list[str]
    label_locs: list[tuple[int, int]]
    body: Body
    line: int
    col: int
    #: extra names visible inside this block (dynamic block iterators)
    scope: dict = field(default_factory=dict)


@dataclass(eq=False)
class Body:
    items: list = field(default_factory=list)
    line: int = 0
    col: int = 0
    end_line: int = 0
    end_col: int = 0

    @property
    def attributes(self) -> list[Attribute]:
        return [i for i in self.items if isinstance(i, Attribute)]

    @property
    def blocks(self) -> list[Block]:
        return [i for i in self.items if isinstance(i, Block)]

    def attr(self, name: str) -> Attribute | None:
        for i in self.items:
            if isinstance(i, Attribute) and i.name == name:
                return i
        return None


# -- parser -------------------------------------------------------------------------------

_BINARY_LEVELS = [("||",), ("&&",), ("==", "!="), ("<", ">", "<=", ">="), ("+", "-"), ("*", "/", "%")]
_LITERALS = {"true": True, "false": False, "null": None}


class _Parser:
    def __init__(self, tokens: list[L.Token]):
        self.toks = [t for t in tokens if t.kind != L.COMMENT]
        self.i = 0
        self.nl_ignore = [False]
        self.depth = 0

    # -- token access -------------------------------------------------------------------
    def _pos(self) -> int:
        j = self.i
        if self.nl_ignore[-1]:
            while self.toks[j].kind == L.NEWLINE:
                j += 1
        return j

    def peek(self) -> L.Token:
        return self.toks[self._pos()]

    def next(self) -> L.Token:
        j = self._pos()
        t = self.toks[j]
        self.i = j + 1 if t.kind != L.EOF else j
        return t

    def is_punct(self, text: str) -> bool:
        t = self.peek()
        return t.kind == L.PUNCT and t.text == text

    def accept(self, text: str) -> L.Token | None:
        if self.is_punct(text):
            return self.next()
        return None

    def expect(self, text: str, what: str = "") -> L.Token:
        t = self.peek()
        if t.kind == L.PUNCT and t.text == text:
            return self.next()
        raise self.error(t, f'expected "{text}"{what}, found {describe(t)}')

    def error(self, t: L.Token, message: str) -> HCLSyntaxError:
        return HCLSyntaxError(message, t.line, t.col)

    def enter(self, t: L.Token) -> None:
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise self.error(t, f"nesting is too deep (more than {MAX_NESTING} levels of blocks, "
                             "brackets or operators)")

    def leave(self) -> None:
        self.depth -= 1

    # -- bodies -------------------------------------------------------------------------
    def parse_body(self, closing: bool, opener: L.Token | None = None) -> Body:
        first = self.peek()
        body = Body(line=first.line, col=first.col)
        while True:
            t = self.peek()
            if t.kind == L.NEWLINE:
                self.next()
                continue
            if t.kind == L.EOF:
                if closing:
                    raise self.error(opener or t, 'this block is not closed: the file ends before '
                                     'its "}"')
                body.end_line, body.end_col = t.line, t.col
                return body
            if t.kind == L.PUNCT and t.text == "}":
                if not closing:
                    raise self.error(t, 'unexpected "}": there is no open block to close')
                body.end_line, body.end_col = t.line, t.col
                return body
            body.items.append(self.parse_item())

    def parse_item(self) -> Attribute | Block:
        t = self.next()
        if t.kind != L.IDENT:
            if t.kind == L.OQUOTE:
                raise self.error(t, "an argument or block name must not be quoted "
                                 "(write name = value, or type \"label\" { ... })")
            raise self.error(t, f"expected an argument or block definition, found {describe(t)}")
        nt = self.peek()
        if nt.kind == L.PUNCT and nt.text == "=":
            self.next()
            expr = self.parse_expr()
            self.end_of_item("argument")
            return Attribute(t.text, expr, t.line, t.col)
        labels: list[str] = []
        label_locs: list[tuple[int, int]] = []
        while True:
            lt = self.peek()
            if lt.kind == L.IDENT:
                self.next()
                labels.append(lt.text)
                label_locs.append((lt.line, lt.col))
            elif lt.kind == L.OQUOTE:
                labels.append(self.parse_label())
                label_locs.append((lt.line, lt.col))
            else:
                break
        ob = self.peek()
        if not (ob.kind == L.PUNCT and ob.text == "{"):
            if ob.kind == L.PUNCT and ob.text == ":":
                raise self.error(ob, f'use "=" to set the argument "{t.text}", not ":"')
            if not labels:
                raise self.error(ob, f'expected "=" or a block after "{t.text}", found {describe(ob)}')
            raise self.error(ob, f'expected "{{" to open the "{t.text}" block, found {describe(ob)}')
        self.next()
        self.enter(ob)
        self.nl_ignore.append(False)
        body = self.parse_body(closing=True, opener=t)
        self.nl_ignore.pop()
        self.expect("}")
        self.leave()
        self.end_of_item("block")
        return Block(t.text, labels, label_locs, body, t.line, t.col)

    def parse_label(self) -> str:
        open_tok = self.next()
        parts: list[str] = []
        while True:
            t = self.next()
            if t.kind == L.QLIT:
                parts.append(t.value)
            elif t.kind == L.CQUOTE:
                return "".join(parts)
            elif t.kind in (L.TINTERP, L.TCONTROL):
                raise self.error(t, "a block label must be a plain string: interpolation is not "
                                 "allowed here")
            else:
                raise self.error(open_tok, "unterminated block label")

    def end_of_item(self, what: str) -> None:
        t = self.peek()
        if t.kind in (L.NEWLINE, L.EOF):
            if t.kind == L.NEWLINE:
                self.next()
            return
        if t.kind == L.PUNCT and t.text == "}":
            return  # a one-line block: name { a = 1 }
        raise self.error(t, f"expected a line break after the {what}, found {describe(t)} "
                         "(put each argument and block on its own line)")

    # -- expressions --------------------------------------------------------------------
    def parse_expr(self) -> Expr:
        t = self.peek()
        self.enter(t)
        try:
            cond = self.parse_binary(0)
            if self.is_punct("?"):
                self.next()
                self.nl_ignore.append(True)
                a = self.parse_expr()
                self.expect(":", " in the conditional expression (cond ? a : b)")
                b = self.parse_expr()
                self.nl_ignore.pop()
                return Conditional(cond.line, cond.col, cond, a, b)
            return cond
        finally:
            self.leave()

    def parse_binary(self, level: int) -> Expr:
        if level >= len(_BINARY_LEVELS):
            return self.parse_unary()
        left = self.parse_binary(level + 1)
        ops = _BINARY_LEVELS[level]
        while True:
            t = self.peek()
            if t.kind == L.PUNCT and t.text in ops:
                self.next()
                right = self.parse_binary(level + 1)
                left = Binary(left.line, left.col, t.text, left, right)
            else:
                return left

    def parse_unary(self) -> Expr:
        t = self.peek()
        if t.kind == L.PUNCT and t.text in ("-", "!"):
            self.next()
            self.enter(t)
            operand = self.parse_unary()
            self.leave()
            return Unary(t.line, t.col, t.text, operand)
        return self.parse_postfix(self.parse_primary())

    def parse_postfix(self, e: Expr) -> Expr:
        while True:
            t = self.peek()
            if t.kind != L.PUNCT:
                return e
            if t.text == ".":
                self.next()
                nt = self.next()
                if nt.kind == L.IDENT:
                    e = GetAttr(e.line, e.col, e, nt.text)
                elif nt.kind == L.NUMBER and nt.text.isdigit():
                    e = Index(e.line, e.col, e, Literal(nt.line, nt.col, int(nt.text)))
                elif nt.kind == L.PUNCT and nt.text == "*":
                    e = Splat(e.line, e.col, e, self.splat_steps(attr_only=True))
                else:
                    raise self.error(nt, f'expected an attribute name after ".", found {describe(nt)}')
            elif t.text == "[":
                self.next()
                self.nl_ignore.append(True)
                if self.is_punct("*"):
                    self.next()
                    self.expect("]")
                    self.nl_ignore.pop()
                    e = Splat(e.line, e.col, e, self.splat_steps(attr_only=False))
                    continue
                key = self.parse_expr()
                self.expect("]", " to close the index")
                self.nl_ignore.pop()
                e = Index(e.line, e.col, e, key)
            else:
                return e

    def splat_steps(self, attr_only: bool) -> list:
        steps: list = []
        while True:
            t = self.peek()
            if t.kind == L.PUNCT and t.text == "." and self.toks[self._pos() + 1].kind == L.IDENT:
                self.next()
                steps.append(("attr", self.next().text))
            elif not attr_only and t.kind == L.PUNCT and t.text == "[":
                self.next()
                self.nl_ignore.append(True)
                key = self.parse_expr()
                self.expect("]")
                self.nl_ignore.pop()
                steps.append(("index", key))
            else:
                return steps

    def parse_primary(self) -> Expr:
        t = self.next()
        k = t.kind
        if k == L.NUMBER:
            text = t.text
            if "." in text or "e" in text or "E" in text:
                v: Any = float(text)
                if v.is_integer() and abs(v) < 2**53:
                    v = int(v)
            else:
                v = int(text)
            return Literal(t.line, t.col, v)
        if k == L.IDENT:
            if t.text in _LITERALS:
                return Literal(t.line, t.col, _LITERALS[t.text])
            if self.is_punct("("):
                return self.parse_call(t)
            return VarRef(t.line, t.col, t.text)
        if k == L.OQUOTE:
            parts = self.parse_template_parts(t, L.CQUOTE)
            return Template(t.line, t.col, parts, False)
        if k == L.OHEREDOC:
            parts = self.parse_template_parts(t, L.CHEREDOC)
            return Template(t.line, t.col, parts, True)
        if k == L.PUNCT:
            if t.text == "(":
                self.nl_ignore.append(True)
                inner = self.parse_expr()
                self.expect(")", " to close the parenthesis")
                self.nl_ignore.pop()
                return Paren(t.line, t.col, inner)
            if t.text == "[":
                return self.parse_tuple(t)
            if t.text == "{":
                return self.parse_object(t)
        if k == L.EOF:
            raise self.error(t, "unexpected end of input: an expression is missing")
        if k == L.NEWLINE:
            raise self.error(t, "an expression is missing before the end of the line")
        raise self.error(t, f"expected an expression, found {describe(t)}")

    def parse_call(self, name: L.Token) -> Expr:
        self.next()  # (
        self.nl_ignore.append(True)
        args: list[Expr] = []
        expand = False
        while not self.is_punct(")"):
            args.append(self.parse_expr())
            if self.accept("..."):
                expand = True
                self.accept(",")
                if not self.is_punct(")"):
                    raise self.error(self.peek(), '"..." may only follow the last argument')
                break
            if not self.accept(","):
                if not self.is_punct(")"):
                    raise self.error(self.peek(), f'expected "," or ")" in the arguments of '
                                     f'{name.text}(), found {describe(self.peek())}')
        self.expect(")")
        self.nl_ignore.pop()
        return Call(name.line, name.col, name.text, args, expand)

    def _is_for(self) -> bool:
        t = self.peek()
        return t.kind == L.IDENT and t.text == "for" and self._after(1).kind == L.IDENT

    def _after(self, n: int) -> L.Token:
        j = self._pos()
        seen = 0
        while j < len(self.toks) - 1:
            j += 1
            if self.toks[j].kind == L.NEWLINE:
                continue
            seen += 1
            if seen == n:
                break
        return self.toks[j]

    def parse_tuple(self, open_tok: L.Token) -> Expr:
        self.nl_ignore.append(True)
        if self._is_for():
            e = self.parse_for(open_tok, is_object=False)
            self.nl_ignore.pop()
            return e
        items: list[Expr] = []
        while not self.is_punct("]"):
            if self.peek().kind == L.EOF:
                raise self.error(open_tok, 'this list is not closed (missing "]")')
            items.append(self.parse_expr())
            if not self.accept(","):
                if not self.is_punct("]"):
                    raise self.error(self.peek(), f'expected "," or "]" in the list, found '
                                     f"{describe(self.peek())}")
        self.next()
        self.nl_ignore.pop()
        return TupleCons(open_tok.line, open_tok.col, items)

    def parse_object(self, open_tok: L.Token) -> Expr:
        self.nl_ignore.append(True)
        if self._is_for():
            e = self.parse_for(open_tok, is_object=True)
            self.nl_ignore.pop()
            return e
        self.nl_ignore[-1] = False
        items: list[tuple[Expr, Expr]] = []
        while True:
            t = self.peek()
            if t.kind == L.NEWLINE:
                self.next()
                continue
            if t.kind == L.PUNCT and t.text == "}":
                self.next()
                break
            if t.kind == L.EOF:
                raise self.error(open_tok, 'this object is not closed (missing "}")')
            self.nl_ignore.append(False)
            if t.kind == L.IDENT and self._after(1).kind == L.PUNCT and self._after(1).text in "=:":
                self.next()
                key: Expr = Literal(t.line, t.col, t.text)
            else:
                key = self.parse_expr()
            sep = self.peek()
            if not (sep.kind == L.PUNCT and sep.text in ("=", ":")):
                raise self.error(sep, f'expected "=" after the object key, found {describe(sep)}')
            self.next()
            value = self.parse_expr()
            self.nl_ignore.pop()
            items.append((key, value))
            t = self.peek()
            if t.kind == L.PUNCT and t.text == ",":
                self.next()
            elif t.kind == L.NEWLINE or (t.kind == L.PUNCT and t.text == "}"):
                pass
            else:
                raise self.error(t, f'expected a line break, "," or "}}" after the object item, '
                                 f"found {describe(t)}")
        self.nl_ignore.pop()
        return ObjectCons(open_tok.line, open_tok.col, items)

    def parse_for(self, open_tok: L.Token, is_object: bool) -> Expr:
        self.next()  # for
        first = self.next()
        key_var = None
        val_var = first.text
        if self.accept(","):
            second = self.next()
            if second.kind != L.IDENT:
                raise self.error(second, "expected a variable name after the comma in the for expression")
            key_var, val_var = first.text, second.text
        t = self.next()
        if not (t.kind == L.IDENT and t.text == "in"):
            raise self.error(t, f'expected "in" in the for expression, found {describe(t)}')
        coll = self.parse_expr()
        self.expect(":", " after the collection of the for expression")
        key_expr = None
        group = False
        if is_object:
            key_expr = self.parse_expr()
            self.expect("=>", " between key and value of the for expression")
        val_expr = self.parse_expr()
        if is_object and self.accept("..."):
            group = True
        cond = None
        t = self.peek()
        if t.kind == L.IDENT and t.text == "if":
            self.next()
            cond = self.parse_expr()
        self.expect("}" if is_object else "]", " to close the for expression")
        return ForExpr(open_tok.line, open_tok.col, key_var, val_var, coll, key_expr, val_expr,
                       cond, group, is_object)

    # -- templates ----------------------------------------------------------------------
    def parse_template_parts(self, open_tok: L.Token, close_kind: str) -> list:
        """Flat items, trimmed, then nested into if/for directives."""
        saved = self.nl_ignore
        self.nl_ignore = [False]
        flat: list = []  # ("lit", str, bol) | ("expr", Expr, ltrim, rtrim) | ("ctl", ...)
        heredoc_lines: list[list] = []
        while True:
            t = self.toks[self.i]
            if t.kind == close_kind:
                self.i += 1
                break
            if t.kind in (L.QLIT, L.HLIT):
                self.i += 1
                item = ["lit", t.value, t.bol]
                flat.append(item)
                if t.kind == L.HLIT:
                    heredoc_lines.append(item)
                continue
            if t.kind in (L.TINTERP, L.TCONTROL):
                self.i += 1
                self.nl_ignore = [True]
                if t.kind == L.TINTERP:
                    e = self.parse_expr()
                    end = self.expect_tend()
                    flat.append(["expr", e, t.trim_left, end.trim_left, t])
                else:
                    flat.append(self.parse_directive(t))
                self.nl_ignore = [False]
                continue
            raise self.error(open_tok if t.kind == L.EOF else t, "unterminated string")
        self.nl_ignore = saved
        if open_tok.kind == L.OHEREDOC and open_tok.strip:
            _strip_heredoc_indent(heredoc_lines)
        _apply_trims(flat)
        parts, stop = self.nest(flat, 0, ())
        return parts

    def expect_tend(self) -> L.Token:
        t = self.peek()
        if t.kind != L.TEND:
            raise self.error(t, f'expected "}}" to close the interpolation, found {describe(t)}')
        self.i += 1
        return t

    def parse_directive(self, open_tok: L.Token) -> list:
        kw = self.next()
        if kw.kind != L.IDENT or kw.text not in ("if", "else", "endif", "for", "endfor"):
            raise self.error(kw, "expected a template directive keyword (if, else, endif, for, "
                             f"endfor) after %{{, found {describe(kw)}")
        data: Any = None
        if kw.text == "if":
            data = self.parse_expr()
        elif kw.text == "for":
            first = self.next()
            if first.kind != L.IDENT:
                raise self.error(first, "expected a variable name after %{ for")
            key_var, val_var = None, first.text
            if self.accept(","):
                second = self.next()
                if second.kind != L.IDENT:
                    raise self.error(second, "expected a variable name after the comma")
                key_var, val_var = first.text, second.text
            t = self.next()
            if not (t.kind == L.IDENT and t.text == "in"):
                raise self.error(t, f'expected "in" in the %{{ for }} directive, found {describe(t)}')
            data = (key_var, val_var, self.parse_expr())
        end = self.expect_tend()
        return ["ctl", kw.text, data, open_tok.trim_left, end.trim_left, open_tok]

    def nest(self, flat: list, i: int, stops: tuple) -> tuple[list, int]:
        parts: list = []
        while i < len(flat):
            item = flat[i]
            if item[0] == "lit":
                if item[1]:
                    if parts and isinstance(parts[-1], str):
                        parts[-1] += item[1]
                    else:
                        parts.append(item[1])
                i += 1
            elif item[0] == "expr":
                parts.append(item[1])
                i += 1
            else:
                kw, tok = item[1], item[5]
                if kw in stops:
                    return parts, i
                if kw == "if":
                    then, j = self.nest(flat, i + 1, ("else", "endif"))
                    else_: list = []
                    if j < len(flat) and flat[j][1] == "else":
                        else_, j = self.nest(flat, j + 1, ("endif",))
                    if j >= len(flat) or flat[j][1] != "endif":
                        raise self.error(tok, "this %{ if } has no matching %{ endif }")
                    parts.append(TemplateIf(tok.line, tok.col, item[2], then, else_))
                    i = j + 1
                elif kw == "for":
                    body, j = self.nest(flat, i + 1, ("endfor",))
                    if j >= len(flat) or flat[j][1] != "endfor":
                        raise self.error(tok, "this %{ for } has no matching %{ endfor }")
                    key_var, val_var, coll = item[2]
                    parts.append(TemplateFor(tok.line, tok.col, key_var, val_var, coll, body))
                    i = j + 1
                else:
                    raise self.error(tok, f"%{{ {kw} }} without a matching opening directive")
        return parts, i


def _apply_trims(flat: list) -> None:
    for idx, item in enumerate(flat):
        if item[0] == "expr":
            ltrim, rtrim = item[2], item[3]
        elif item[0] == "ctl":
            ltrim, rtrim = item[3], item[4]
        else:
            continue
        if ltrim and idx > 0 and flat[idx - 1][0] == "lit":
            flat[idx - 1][1] = flat[idx - 1][1].rstrip(" \t\r\n")
        if rtrim and idx + 1 < len(flat) and flat[idx + 1][0] == "lit":
            flat[idx + 1][1] = flat[idx + 1][1].lstrip(" \t\r\n")


def _strip_heredoc_indent(lines: list[list]) -> None:
    """``<<-``: remove the smallest indentation of the non-blank lines from every line."""
    indents = []
    for item in lines:
        if not item[2]:
            continue
        text = item[1]
        stripped = text.lstrip(" \t")
        if stripped in ("", "\n", "\r\n"):
            continue  # blank lines do not count
        indents.append(len(text) - len(stripped))
    if not indents:
        return
    n = min(indents)
    for item in lines:
        if item[2]:
            text = item[1]
            ws = len(text) - len(text.lstrip(" \t"))
            item[1] = text[min(n, ws):]


def describe(t: L.Token) -> str:
    if t.kind == L.EOF:
        return "the end of the file"
    if t.kind == L.NEWLINE:
        return "a line break"
    if t.kind == L.OQUOTE:
        return "a string"
    if t.kind == L.OHEREDOC:
        return "a heredoc"
    if t.kind == L.NUMBER:
        return f"the number {t.text}"
    if t.kind == L.IDENT:
        return f'"{t.text}"'
    if t.kind == L.TEND:
        return '"}"'
    if t.kind in (L.TINTERP, L.TCONTROL):
        return f'"{t.text}"'
    return f'"{t.text}"'


def _tokens(text: str) -> list[L.Token]:
    try:
        return L.tokenize(text)
    except L.LexError as e:
        raise HCLSyntaxError(e.message, e.line, e.col) from None


def _guard(fn, *args):
    try:
        return fn(*args)
    except RecursionError:
        raise HCLSyntaxError(f"the input nests too deeply (more than {MAX_NESTING} levels)", 1, 1) \
            from None


def parse_config(text: str) -> Body:
    """A whole configuration file."""
    p = _Parser(_tokens(text))
    return _guard(p.parse_body, False)


def parse_expression(text: str) -> Expr:
    """One expression (surrounding blank lines allowed)."""
    p = _Parser(_tokens(text))
    p.nl_ignore = [True]

    def run() -> Expr:
        e = p.parse_expr()
        t = p.peek()
        if t.kind != L.EOF:
            raise p.error(t, f"unexpected {describe(t)} after the expression")
        return e

    return _guard(run)


def parse_template(text: str, line: int = 1, col: int = 1) -> Expr:
    """``text`` as the content of a template (no escapes: JSON already decoded them).

    Every position is reported as (line, col): the place of the JSON string."""
    try:
        toks = L.tokenize_template(text)
    except L.LexError as e:
        raise HCLSyntaxError(e.message, line, col) from None
    for t in toks:
        t.line, t.col = line, col
    p = _Parser(toks)
    opener = L.Token(L.OQUOTE, "", line, col, 0)
    parts = _guard(p.parse_template_parts, opener, L.CQUOTE)
    return Template(line, col, parts, False)
