"""A subset of Go's ``text/template`` as Packer's legacy (JSON) templates use it.

Supported syntax
    text with ``{{ action }}``; trim markers ``{{- `` / `` -}}``; comments ``{{/* ... */}}``;
    function calls with space-separated arguments; ``"quoted"`` strings with Go escapes,
    ```raw``` strings, ``'c'`` characters, integer/float literals, ``true``/``false``/``nil``;
    pipelines ``a | f x`` (the piped value becomes the last argument of ``f``); parenthesised
    sub-pipelines ``(f x)``; ``.`` and field chains ``.A.B`` on the data (a mapping, or an
    object's attributes); variables ``$``, ``$x := ...``, ``$x = ...``; control structures
    ``if`` / ``else if`` / ``else`` / ``with`` / ``range`` (with ``$i, $e :=``, ``break``,
    ``continue``) / ``end``; Go's built-in functions ``and or not eq ne lt le gt ge len index
    slice print printf println html js urlquery call``. ``define``/``template``/``block``
    are rejected with a :class:`TemplateSyntaxError`.

Semantics follow Go: a missing map key (or nil data) is the value ``<no value>``; an
undefined function is a *parse* error ``function "x" not defined``; functions are called
with the arguments as evaluated (str/int/float/bool) and their result is printed the Go way
(``true``, ``42``, ``1.5``, ``[a b]``, ``map[k:v]``).
"""

from __future__ import annotations

import functools
import inspect
import re
import urllib.parse
from collections.abc import Callable, Collection, Mapping
from decimal import Decimal
from typing import Any

from . import limits
from .golang import go_quote

__all__ = [
    "TemplateSyntaxError",
    "RenderError",
    "Tmpl",
    "NO_VALUE",
    "BUILTIN_NAMES",
    "parse",
    "render",
    "render_until_stable",
    "check",
    "protect_fields",
    "format_value",
    "go_type",
    "truth",
]


# --------------------------------------------------------------------------- errors


def _line_col(text: str, offset: int) -> tuple[int, int]:
    offset = max(0, min(offset, len(text)))
    line = text.count("\n", 0, offset) + 1
    col = offset - (text.rfind("\n", 0, offset) + 1) + 1
    return line, col


class TemplateSyntaxError(ValueError):
    """The template text cannot be parsed. ``offset`` is 0-based in the template text;
    ``line``/``column`` (1-based) are filled in when the text is known."""

    def __init__(self, message: str, offset: int = 0, text: str | None = None):
        super().__init__(message)
        self.message = message
        self.offset = offset
        self.line, self.column = _line_col(text, offset) if text is not None else (0, 0)


class RenderError(ValueError):
    """Executing a template failed (usually a function error). ``str()`` is the user-facing
    message; ``offset`` is where in the template the failing call is, ``function`` its name."""

    def __init__(self, message: str, *, offset: int | None = None, function: str | None = None):
        super().__init__(message)
        self.message = message
        self.offset = offset
        self.function = function

    def __str__(self) -> str:
        return self.message


class _NoValue:
    """Go's invalid ``reflect.Value``: what a missing map key evaluates to."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "NO_VALUE"

    def __str__(self) -> str:
        return "<no value>"

    def __bool__(self) -> bool:
        return False


NO_VALUE: Any = _NoValue()
_MISSING: Any = object()  # "no final (piped) value"


# --------------------------------------------------------------------------- value helpers


def _go_float(v: float) -> str:
    """Go's ``%v`` for a float64 (shortest representation, ``%e`` form for big/small)."""
    if v != v:
        return "NaN"
    if v in (float("inf"), float("-inf")):
        return "+Inf" if v > 0 else "-Inf"
    if v == 0:
        return "-0" if str(v).startswith("-") else "0"
    sign, digits, exp = Decimal(repr(v)).as_tuple()
    ds = "".join(map(str, digits)).rstrip("0") or "0"
    assert isinstance(exp, int)
    point = len(digits) + exp  # position of the decimal point relative to ds start
    x = point - 1  # scientific exponent
    neg = "-" if sign else ""
    if x < -4 or x >= 6:  # Go's %v uses %e form outside this range
        mant = ds[0] + ("." + ds[1:] if len(ds) > 1 else "")
        return f"{neg}{mant}e{'-' if x < 0 else '+'}{abs(x):02d}"
    if point <= 0:
        return f"{neg}0.{'0' * -point}{ds}"
    if point >= len(ds):
        return f"{neg}{ds}{'0' * (point - len(ds))}"
    return f"{neg}{ds[:point]}.{ds[point:]}"


def format_value(v: Any) -> str:
    """Print a value the way Go's ``fmt.Print`` would inside a template."""
    if isinstance(v, str):
        return v
    if v is NO_VALUE:
        return "<no value>"
    if v is None:
        return "<nil>"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return _go_float(v)
    if isinstance(v, (list, tuple)):
        return "[" + " ".join(format_value(x) for x in v) + "]"
    if isinstance(v, Mapping):
        items = sorted(v.items(), key=lambda kv: (str(type(kv[0])), kv[0]))
        return "map[" + " ".join(f"{format_value(k)}:{format_value(x)}" for k, x in items) + "]"
    return str(v)


def truth(v: Any) -> bool:
    """Go template truthiness: false, 0, nil, empty string/list/map and ``<no value>`` are
    false."""
    if v is NO_VALUE or v is None:
        return False
    if isinstance(v, (bool, int, float, str, list, tuple, dict, Mapping, set, frozenset)):
        return bool(v)
    return True


def go_type(v: Any) -> str:
    if isinstance(v, str):
        return "string"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float64"
    if v is None or v is NO_VALUE:
        return "<nil>"
    if isinstance(v, (list, tuple)):
        return "[]interface {}"
    if isinstance(v, Mapping):
        return "map[string]interface {}"
    return type(v).__name__


# --------------------------------------------------------------------------- lexer

# token kinds
_TEXT, _LDELIM, _RDELIM, _EOF = "text", "{{", "}}", "EOF"
_IDENT, _FIELD, _VAR, _DOT = "identifier", "field", "variable", "."
_STRING, _NUMBER, _CHAR, _BOOL, _NIL = "string", "number", "character", "bool", "nil"
_PIPE, _LPAREN, _RPAREN, _DECLARE, _ASSIGN, _COMMA = "|", "(", ")", ":=", "=", ","
_KEYWORD = "keyword"

_KEYWORDS = frozenset(
    ["if", "else", "end", "range", "with", "break", "continue", "define", "template", "block"]
)
_SPACE = " \t\r\n"
_TERMINATORS = frozenset(" \t\r\n.,|:()=")
_NUM_RE = re.compile(
    r"[+-]?(?:0[xX][0-9a-fA-F_]+|0[oO][0-7_]+|0[bB][01_]+"
    r"|(?:[0-9][0-9_]*)?(?:\.[0-9_]*)?(?:[eE][+-]?[0-9_]+)?)"
)
_SIMPLE_ESCAPES = {
    "a": "\a",
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "v": "\v",
    "\\": "\\",
}

# A token: (kind, value, start offset, preceded by space, end offset)
_Tok = tuple


def _is_alnum(c: str) -> bool:
    return c == "_" or c.isalpha() or c.isdecimal()


def _u_plus(c: str) -> str:
    return f"U+{ord(c):04X} {c!r}" if c.isprintable() else f"U+{ord(c):04X}"


def _unquote(body: str, quote: str, pos: int, text: str) -> str:
    """Decode the inside of a Go interpreted string (``quote='"'``) or char literal."""
    if "\\" not in body:
        return body
    out = bytearray()
    i, n = 0, len(body)
    what = "quoted string" if quote == '"' else "character constant"
    bad = TemplateSyntaxError(f"invalid syntax in {what}", pos, text)
    while i < n:
        c = body[i]
        if c != "\\":
            out += c.encode("utf-8", "surrogatepass")
            i += 1
            continue
        if i + 1 >= n:
            raise bad
        e = body[i + 1]
        i += 2
        if e in _SIMPLE_ESCAPES:
            out += _SIMPLE_ESCAPES[e].encode()
        elif e == quote:
            out += e.encode()
        elif e == "x":
            h = body[i : i + 2]
            if len(h) != 2 or not all(ch in "0123456789abcdefABCDEF" for ch in h):
                raise bad
            out.append(int(h, 16))
            i += 2
        elif e in "01234567":
            o = body[i - 1 : i + 2]
            if len(o) != 3 or not all(ch in "01234567" for ch in o) or int(o, 8) > 255:
                raise bad
            out.append(int(o, 8))
            i += 2
        elif e in "uU":
            size = 4 if e == "u" else 8
            h = body[i : i + size]
            if len(h) != size or not all(ch in "0123456789abcdefABCDEF" for ch in h):
                raise bad
            cp = int(h, 16)
            if cp > 0x10FFFF or 0xD800 <= cp <= 0xDFFF:
                raise bad
            out += chr(cp).encode()
            i += size
        else:
            raise bad
    return out.decode("utf-8", "replace")


def _lex(text: str) -> list[_Tok]:
    toks: list[_Tok] = []
    append = toks.append
    pos, n = 0, len(text)

    def err(msg: str, at: int) -> TemplateSyntaxError:
        return TemplateSyntaxError(msg, at, text)

    def at_right_delim(i: int) -> tuple[bool, bool]:
        if text.startswith("}}", i):
            return True, False
        if i + 1 < n and text[i] in _SPACE and text[i + 1] == "-" and text.startswith("}}", i + 2):
            return True, True
        return False, False

    while True:
        start = text.find("{{", pos)
        if start < 0:
            if pos < n:
                append((_TEXT, text[pos:], pos, False, n))
            break
        inner = start + 2
        trim_left = inner + 1 < n and text[inner] == "-" and text[inner + 1] in _SPACE
        seg = text[pos:start]
        if trim_left:
            seg = seg.rstrip(_SPACE)
            inner += 2
        if seg:
            append((_TEXT, seg, pos, False, pos + len(seg)))
        # comment
        if text.startswith("/*", inner):
            close = text.find("*/", inner + 2)
            if close < 0:
                raise err("unclosed comment", start)
            is_delim, trim_right = at_right_delim(close + 2)
            if not is_delim:
                raise err("comment ends before closing delimiter", close + 2)
            pos = close + 2 + (4 if trim_right else 2)
            if trim_right:
                while pos < n and text[pos] in _SPACE:
                    pos += 1
            continue
        append((_LDELIM, None, start, False, inner))
        i = inner
        depth = 0
        spaced = False
        while True:
            is_delim, trim_right = at_right_delim(i)
            if is_delim:
                if depth:
                    raise err("unclosed left paren", i)
                end = i + (4 if trim_right else 2)
                append((_RDELIM, None, i, spaced, end))
                pos = end
                if trim_right:
                    while pos < n and text[pos] in _SPACE:
                        pos += 1
                break
            if i >= n:
                raise err("unclosed action", start)
            c = text[i]
            if c in _SPACE:
                j = i
                while j < n and text[j] in _SPACE:
                    j += 1
                # when the run ends just before "-}}", its last space belongs to the marker
                i = j - 1 if text.startswith("-}}", j) else j
                spaced = True
                continue
            t0 = i
            if c == "|":
                append((_PIPE, c, i, spaced, i + 1))
                i += 1
            elif c == "(":
                depth += 1
                append((_LPAREN, c, i, spaced, i + 1))
                i += 1
            elif c == ")":
                depth -= 1
                if depth < 0:
                    raise err("unexpected right paren", i)
                append((_RPAREN, c, i, spaced, i + 1))
                i += 1
            elif c == ",":
                append((_COMMA, c, i, spaced, i + 1))
                i += 1
            elif c == "=":
                append((_ASSIGN, c, i, spaced, i + 1))
                i += 1
            elif c == ":":
                if not text.startswith(":=", i):
                    raise err("expected :=", i)
                append((_DECLARE, ":=", i, spaced, i + 2))
                i += 2
            elif c == '"':
                j = i + 1
                while True:
                    if j >= n or text[j] == "\n":
                        raise err("unterminated quoted string", i)
                    if text[j] == "\\":
                        j += 2
                        continue
                    if text[j] == '"':
                        break
                    j += 1
                val = _unquote(text[i + 1 : j], '"', i, text)
                append((_STRING, val, i, spaced, j + 1))
                i = j + 1
            elif c == "`":
                j = text.find("`", i + 1)
                if j < 0:
                    raise err("unterminated raw quoted string", i)
                append((_STRING, text[i + 1 : j].replace("\r", ""), i, spaced, j + 1))
                i = j + 1
            elif c == "'":
                j = i + 1
                while True:
                    if j >= n or text[j] == "\n":
                        raise err("unterminated character constant", i)
                    if text[j] == "\\":
                        j += 2
                        continue
                    if text[j] == "'":
                        break
                    j += 1
                val = _unquote(text[i + 1 : j], "'", i, text)
                if len(val) != 1:
                    raise err(f"malformed character constant: {text[i : j + 1]}", i)
                append((_CHAR, ord(val), i, spaced, j + 1))
                i = j + 1
            elif c == "$" or (c == "." and not (i + 1 < n and "0" <= text[i + 1] <= "9")):
                j = i + 1
                while j < n and _is_alnum(text[j]):
                    j += 1
                if j < n and text[j] not in _TERMINATORS and not at_right_delim(j)[0]:
                    raise err(f"bad character {_u_plus(text[j])}", j)
                name = text[i + 1 : j]
                if c == "$":
                    append((_VAR, "$" + name, i, spaced, j))
                elif name:
                    append((_FIELD, name, i, spaced, j))
                else:
                    append((_DOT, ".", i, spaced, j))
                i = j
            elif c in "+-." or "0" <= c <= "9":
                m = _NUM_RE.match(text, i)
                j = m.end() if m else i
                while j < n and _is_alnum(text[j]):
                    j += 1  # swallow the rest so the error shows the whole word
                word = text[i:j]
                if not m or m.end() != j or not any(ch.isdigit() for ch in word):
                    raise err(f"bad number syntax: {go_quote(word or c)}", i)
                append((_NUMBER, _number(word, i, text), i, spaced, j))
                i = j
            elif _is_alnum(c):
                j = i + 1
                while j < n and _is_alnum(text[j]):
                    j += 1
                if j < n and text[j] not in _TERMINATORS and not at_right_delim(j)[0]:
                    raise err(f"bad character {_u_plus(text[j])}", j)
                word = text[i:j]
                if word in ("true", "false"):
                    append((_BOOL, word == "true", i, spaced, j))
                elif word == "nil":
                    append((_NIL, None, i, spaced, j))
                elif word in _KEYWORDS:
                    append((_KEYWORD, word, i, spaced, j))
                else:
                    append((_IDENT, word, i, spaced, j))
                i = j
            elif c.isascii() and c.isprintable():
                raise err(f'unexpected "{c}" in operand', i)
            else:
                raise err(f"unrecognized character in action: {_u_plus(c)}", i)
            assert i > t0
            spaced = False
    append((_EOF, None, n, False, n))
    return toks


def _number(word: str, pos: int, text: str) -> int | float:
    s = word.replace("_", "")
    body = s.lstrip("+-")
    try:
        if re.fullmatch(r"0[0-7]+", body):
            v: int | float = int(body, 8)
            return -v if s.startswith("-") else v
        if re.fullmatch(r"[0-9]+|0[xX][0-9a-fA-F]+|0[oO][0-7]+|0[bB][01]+", body):
            v = int(body, 0)
            return -v if s.startswith("-") else v
        return float(s)
    except ValueError:
        raise TemplateSyntaxError(f"bad number syntax: {go_quote(word)}", pos, text) from None


# --------------------------------------------------------------------------- parse tree


class _Node:
    __slots__ = ()


class _Text(_Node):
    __slots__ = ("text",)

    def __init__(self, text: str):
        self.text = text


class _Pipe(_Node):
    __slots__ = ("decl", "is_assign", "cmds", "pos", "src")

    def __init__(self, decl, is_assign, cmds, pos, src):
        self.decl, self.is_assign, self.cmds, self.pos, self.src = decl, is_assign, cmds, pos, src


class _Action(_Node):
    __slots__ = ("pipe", "pos")

    def __init__(self, pipe: _Pipe, pos: int):
        self.pipe, self.pos = pipe, pos


class _Control(_Node):
    __slots__ = ("kind", "pipe", "body", "else_body", "pos")

    def __init__(self, kind, pipe, body, else_body, pos):
        self.kind, self.pipe, self.body, self.else_body, self.pos = (
            kind,
            pipe,
            body,
            else_body,
            pos,
        )


class _Break(_Node):
    __slots__ = ()


class _Continue(_Node):
    __slots__ = ()


class _Cmd(_Node):
    __slots__ = ("args", "pos", "src")

    def __init__(self, args, pos, src):
        self.args, self.pos, self.src = args, pos, src


class _Ident(_Node):
    __slots__ = ("name", "pos", "src")

    def __init__(self, name, pos, src):
        self.name, self.pos, self.src = name, pos, src


class _Field(_Node):
    __slots__ = ("names", "pos", "src")

    def __init__(self, names, pos, src):
        self.names, self.pos, self.src = names, pos, src


class _Var(_Node):
    __slots__ = ("name", "names", "pos", "src")

    def __init__(self, name, names, pos, src):
        self.name, self.names, self.pos, self.src = name, names, pos, src


class _Chain(_Node):
    __slots__ = ("node", "names", "pos", "src")

    def __init__(self, node, names, pos, src):
        self.node, self.names, self.pos, self.src = node, names, pos, src


class _Dot(_Node):
    __slots__ = ("pos", "src")

    def __init__(self, pos):
        self.pos, self.src = pos, "."


class _Lit(_Node):
    __slots__ = ("value", "is_nil", "pos", "src")

    def __init__(self, value, is_nil, pos, src):
        self.value, self.is_nil, self.pos, self.src = value, is_nil, pos, src


_OPERAND_START = frozenset(
    [_IDENT, _FIELD, _VAR, _DOT, _STRING, _NUMBER, _CHAR, _BOOL, _NIL, _LPAREN]
)


def _describe(tok: _Tok) -> str:
    kind, val = tok[0], tok[1]
    if kind == _EOF:
        return "EOF"
    if kind == _RDELIM:
        return "}}"
    if kind == _KEYWORD:
        return f"<{val}>"
    if kind == _STRING:
        return go_quote(val)
    if kind in (_IDENT, _FIELD, _VAR, _NUMBER, _BOOL):
        return f"{'.' if kind == _FIELD else ''}{format_value(val)}"
    return f'"{kind}"'


class _Parser:
    def __init__(self, text: str):
        self.text = text
        self.toks = _lex(text)
        self.i = 0
        self.vars: list[str] = ["$"]
        self.range_depth = 0
        self.dot_depth = 0
        self.funcs: dict[str, int] = {}
        self.fields: set[str] = set()

    def err(self, msg: str, pos: int) -> TemplateSyntaxError:
        return TemplateSyntaxError(msg, pos, self.text)

    def next(self) -> _Tok:
        t = self.toks[self.i]
        self.i += 1
        return t

    def peek(self, k: int = 0) -> _Tok:
        return self.toks[min(self.i + k, len(self.toks) - 1)]

    def unexpected(self, tok: _Tok, context: str) -> TemplateSyntaxError:
        return self.err(f"unexpected {_describe(tok)} in {context}", tok[2])

    def expect_rdelim(self, context: str) -> None:
        t = self.next()
        if t[0] != _RDELIM:
            raise self.unexpected(t, context)

    # list of nodes up to {{end}} / {{else}} / EOF
    def parse_list(self) -> tuple[list[_Node], str, _Tok]:
        nodes: list[_Node] = []
        while True:
            t = self.next()
            kind = t[0]
            if kind == _TEXT:
                nodes.append(_Text(t[1]))
                continue
            if kind == _EOF:
                return nodes, "eof", t
            t2 = self.peek()
            if t2[0] == _KEYWORD:
                kw = t2[1]
                self.next()
                if kw == "end":
                    self.expect_rdelim("end")
                    return nodes, "end", t2
                if kw == "else":
                    return nodes, "else", t2
                if kw in ("if", "with", "range"):
                    nodes.append(self.parse_control(kw, t2[2]))
                    continue
                if kw in ("break", "continue"):
                    if not self.range_depth:
                        raise self.err(f"{{{{{kw}}}}} outside {{{{range}}}}", t2[2])
                    self.expect_rdelim(kw)
                    nodes.append(_Break() if kw == "break" else _Continue())
                    continue
                raise self.err(f"'{kw}' is not supported", t2[2])
            nodes.append(_Action(self.parse_pipeline("command", _RDELIM), t[2]))

    def parse_control(self, kind: str, pos: int) -> _Control:
        mark = len(self.vars)
        pipe = self.parse_pipeline(kind, _RDELIM)
        if kind == "range":
            self.range_depth += 1
        if kind != "if":
            self.dot_depth += 1
        body, term, tt = self.parse_list()
        if kind == "range":
            self.range_depth -= 1
        if kind != "if":
            self.dot_depth -= 1
        else_body = None
        if term == "eof":
            raise self.err(f"unexpected EOF: {{{{{kind}}}}} has no matching {{{{end}}}}", pos)
        if term == "else":
            nt = self.peek()
            if nt[0] == _KEYWORD and nt[1] == kind and kind in ("if", "with"):
                self.next()
                else_body = [self.parse_control(kind, nt[2])]
            else:
                self.expect_rdelim("else")
                else_body, term2, tt2 = self.parse_list()
                if term2 == "else":
                    raise self.err("expected end; found {{else}}", tt2[2])
                if term2 == "eof":
                    raise self.err(
                        f"unexpected EOF: {{{{{kind}}}}} has no matching {{{{end}}}}", pos
                    )
        del self.vars[mark:]
        return _Control(kind, pipe, body, else_body, pos)

    def parse_pipeline(self, context: str, end: str) -> _Pipe:
        start = self.peek()[2]
        decl: list[str] = []
        is_assign = False
        t = self.peek()
        if t[0] == _VAR:
            t1 = self.peek(1)
            if t1[0] in (_DECLARE, _ASSIGN):
                self.i += 2
                is_assign = t1[0] == _ASSIGN
                if is_assign:
                    self.use_var(t)
                decl.append(t[1])
                if not is_assign:
                    self.vars.append(t[1])
            elif t1[0] == _COMMA:
                t2, t3 = self.peek(2), self.peek(3)
                if context != "range":
                    raise self.err(f"too many declarations in {context}", t1[2])
                if t2[0] != _VAR or t3[0] != _DECLARE:
                    raise self.err("range can only initialize variables", t2[2])
                self.i += 4
                decl += [t[1], t2[1]]
                self.vars += [t[1], t2[1]]
        cmds: list[_Cmd] = []
        while True:
            t = self.peek()
            if t[0] == end:
                self.next()
                break
            if t[0] not in _OPERAND_START:
                if t[0] == _RDELIM and end == _RPAREN:
                    raise self.err("unclosed left paren", t[2])
                raise self.unexpected(t, context)
            cmds.append(self.parse_command())
        if not cmds:
            raise self.err(f"missing value for {context}", start)
        for n, cmd in enumerate(cmds[1:], start=2):
            if isinstance(cmd.args[0], (_Lit, _Dot)):
                raise self.err(f"non executable command in pipeline stage {n}", cmd.pos)
        end_pos = self.toks[self.i - 1][2]
        return _Pipe(decl, is_assign, cmds, start, self.text[start:end_pos].strip())

    def parse_command(self) -> _Cmd:
        args: list[_Node] = []
        start = self.peek()[2]
        while True:
            op = self.parse_operand()
            if op is None:
                raise self.unexpected(self.peek(), "operand")
            args.append(op)
            t = self.peek()
            if t[0] in (_RDELIM, _RPAREN):
                break
            if t[0] == _PIPE:
                self.next()
                if self.peek()[0] in (_RDELIM, _RPAREN):
                    raise self.err("missing command after |", t[2])
                break
            if not t[3]:
                raise self.unexpected(t, "operand")
        end = self.toks[self.i - 1][4]
        return _Cmd(args, start, self.text[start:end].rstrip(" |"))

    def parse_operand(self) -> _Node | None:
        node = self.parse_term()
        if node is None:
            return None
        t = self.peek()
        if t[0] == _FIELD and not t[3]:
            names = []
            while self.peek()[0] == _FIELD and not self.peek()[3]:
                names.append(self.next()[1])
            end = self.toks[self.i - 1][4]
            src = self.text[node.pos : end]
            if isinstance(node, _Field):
                node = _Field(node.names + tuple(names), node.pos, src)
            elif isinstance(node, _Var):
                node = _Var(node.name, node.names + tuple(names), node.pos, src)
            elif isinstance(node, (_Lit, _Dot)):
                raise self.err(f"unexpected . after term {node.src!r}", t[2])
            else:
                node = _Chain(node, tuple(names), node.pos, src)
        if isinstance(node, _Field) and not self.dot_depth:
            self.fields.add(node.names[0])
        elif isinstance(node, _Var) and node.name == "$" and node.names:
            self.fields.add(node.names[0])
        return node

    def parse_term(self) -> _Node | None:
        t = self.peek()
        kind, val, pos, end = t[0], t[1], t[2], t[4]
        src = self.text[pos:end]
        if kind == _IDENT:
            self.next()
            self.funcs.setdefault(val, pos)
            return _Ident(val, pos, src)
        if kind == _FIELD:
            self.next()
            return _Field((val,), pos, src)
        if kind == _VAR:
            self.next()
            self.use_var(t)
            return _Var(val, (), pos, src)
        if kind == _DOT:
            self.next()
            return _Dot(pos)
        if kind == _NIL:
            self.next()
            return _Lit(None, True, pos, src)
        if kind in (_STRING, _NUMBER, _CHAR, _BOOL):
            self.next()
            return _Lit(val, False, pos, src)
        if kind == _LPAREN:
            self.next()
            pipe = self.parse_pipeline("parenthesized pipeline", _RPAREN)
            pipe.src = self.text[pos : self.toks[self.i - 1][4]]
            return pipe
        return None

    def use_var(self, tok: _Tok) -> None:
        if tok[1] not in self.vars:
            raise self.err(f"undefined variable {go_quote(tok[1])}", tok[2])


# --------------------------------------------------------------------------- execution


class _BreakSignal(Exception):
    pass


class _ContinueSignal(Exception):
    pass


def _arity_problem(fn: Callable, name: str, nargs: int) -> str | None:
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return None
    try:
        sig.bind(*range(nargs))
        return None
    except TypeError:
        pass
    required = total = 0
    variadic = False
    for p in sig.parameters.values():
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            total += 1
            if p.default is p.empty:
                required += 1
        elif p.kind == p.VAR_POSITIONAL:
            variadic = True
    if variadic:
        return f"wrong number of args for {name}: want at least {required} got {nargs}"
    if required == total:
        return f"wrong number of args for {name}: want {required} got {nargs}"
    return f"wrong number of args for {name}: want {required} to {total} got {nargs}"


def _invoke(fn: Callable, name: str, args: list, pos: int) -> Any:
    try:
        return fn(*args)
    except RenderError as e:
        if e.offset is None:
            e.offset = pos
        if e.function is None:
            e.function = name
        raise
    except ValueError as e:
        msg = e.message if isinstance(e, TemplateSyntaxError) else str(e)
        raise RenderError(msg, offset=pos, function=name) from e
    except TypeError as e:
        problem = _arity_problem(fn, name, len(args)) or f"error calling {name}: {e}"
        raise RenderError(problem, offset=pos, function=name) from e
    except Exception as e:  # a bug in a function: report it as Go reports a panic
        raise RenderError(f"error calling {name}: {e}", offset=pos, function=name) from e


class _Exec:
    __slots__ = ("funcs", "vars", "size")

    def __init__(self, funcs: Mapping[str, Callable[..., Any]], data: Any):
        self.funcs = funcs
        self.vars: list[list[Any]] = [["$", data]]
        self.size = 0  # characters written so far: a loop may not build gigabytes

    def grow(self, n: int, pos: int) -> None:
        self.size += n
        if self.size > limits.MAX_STRING:
            raise RenderError(f"the rendered text would be more than "
                              f"{limits.size_text(limits.MAX_STRING)} long (Kiln's limit)",
                              offset=pos)

    # ---- walking
    def walk(self, nodes: list[_Node], dot: Any, out: list[str]) -> None:
        for node in nodes:
            tp = type(node)
            if tp is _Text:
                out.append(node.text)  # type: ignore[attr-defined]
                self.grow(len(node.text), 0)  # type: ignore[attr-defined]
            elif tp is _Action:
                pipe = node.pipe  # type: ignore[attr-defined]
                val = self.pipeline(pipe, dot)
                if not pipe.decl:
                    text = val if type(val) is str else format_value(val)
                    out.append(text)
                    self.grow(len(text), node.pos)  # type: ignore[attr-defined]
            elif tp is _Control:
                self.control(node, dot, out)  # type: ignore[arg-type]
            elif tp is _Break:
                raise _BreakSignal
            elif tp is _Continue:
                raise _ContinueSignal

    def control(self, node: _Control, dot: Any, out: list[str]) -> None:
        mark = len(self.vars)
        if node.kind == "range":
            self.range(node, dot, out, mark)
            return
        val = self.pipeline(node.pipe, dot)
        if truth(val):
            self.walk(node.body, val if node.kind == "with" else dot, out)
        elif node.else_body is not None:
            self.walk(node.else_body, dot, out)
        del self.vars[mark:]

    def range(self, node: _Control, dot: Any, out: list[str], mark: int) -> None:
        val = self.pipeline(node.pipe, dot, declare=False)
        items = _range_items(val, node.pipe.pos)
        decl = node.pipe.decl
        if not items:
            if node.else_body is not None:
                self.walk(node.else_body, dot, out)
            return
        try:
            for key, elem in items:
                if len(decl) == 1:
                    self.vars.append([decl[0], elem])
                elif len(decl) == 2:
                    self.vars.append([decl[0], key])
                    self.vars.append([decl[1], elem])
                try:
                    self.walk(node.body, elem, out)
                except _ContinueSignal:
                    pass
                del self.vars[mark:]
        except _BreakSignal:
            pass
        del self.vars[mark:]

    # ---- evaluation
    def pipeline(self, pipe: _Pipe, dot: Any, declare: bool = True) -> Any:
        val = _MISSING
        for cmd in pipe.cmds:
            val = self.command(cmd, dot, val)
        if declare and pipe.decl:
            if pipe.is_assign:
                self.set_var(pipe.decl[0], val)
            else:
                for name in pipe.decl:
                    self.vars.append([name, val])
        return val

    def lookup(self, node: _Var) -> Any:
        for name, value in reversed(self.vars):
            if name == node.name:
                return value
        raise RenderError(f"undefined variable: {node.name}", offset=node.pos)

    def set_var(self, name: str, value: Any) -> None:
        for entry in reversed(self.vars):
            if entry[0] == name:
                entry[1] = value
                return
        raise RenderError(f"undefined variable: {name}")  # pragma: no cover

    def command(self, cmd: _Cmd, dot: Any, final: Any) -> Any:
        first = cmd.args[0]
        tp = type(first)
        if tp is _Ident:
            return self.call(first.name, cmd.args[1:], dot, final, first.pos)  # type: ignore
        if tp is _Field:
            return self.fields(dot, first.names, cmd.args[1:], dot, final, first.pos)  # type: ignore
        if tp is _Var:
            recv = self.lookup(first)  # type: ignore[arg-type]
            if first.names:  # type: ignore[attr-defined]
                return self.fields(recv, first.names, cmd.args[1:], dot, final, first.pos)  # type: ignore
            self.not_a_function(cmd, final)
            return recv
        if tp is _Chain:
            recv = self.arg(first.node, dot)  # type: ignore[attr-defined]
            return self.fields(recv, first.names, cmd.args[1:], dot, final, first.pos)  # type: ignore
        if tp is _Lit and first.is_nil:  # type: ignore[attr-defined]
            raise RenderError("nil is not a command", offset=cmd.pos)
        self.not_a_function(cmd, final)
        return self.arg(first, dot)

    def not_a_function(self, cmd: _Cmd, final: Any) -> None:
        if len(cmd.args) > 1 or final is not _MISSING:
            first = cmd.args[0]
            raise RenderError(
                f"can't give argument to non-function {first.src}",  # type: ignore[attr-defined]
                offset=cmd.pos,
            )

    def arg(self, node: _Node, dot: Any) -> Any:
        tp = type(node)
        if tp is _Lit:
            return node.value  # type: ignore[attr-defined]
        if tp is _Field:
            return self.fields(dot, node.names, (), dot, _MISSING, node.pos)  # type: ignore
        if tp is _Dot:
            return dot
        if tp is _Var:
            recv = self.lookup(node)  # type: ignore[arg-type]
            if node.names:  # type: ignore[attr-defined]
                return self.fields(recv, node.names, (), dot, _MISSING, node.pos)  # type: ignore
            return recv
        if tp is _Ident:
            return self.call(node.name, (), dot, _MISSING, node.pos)  # type: ignore
        if tp is _Pipe:
            return self.pipeline(node, dot)  # type: ignore[arg-type]
        if tp is _Chain:
            recv = self.arg(node.node, dot)  # type: ignore[attr-defined]
            return self.fields(recv, node.names, (), dot, _MISSING, node.pos)  # type: ignore
        raise AssertionError(node)  # pragma: no cover

    def fields(self, recv, names, arg_nodes, dot, final, pos) -> Any:
        for name in names[:-1]:
            recv = self.field(recv, name, None, pos)
        args = None
        if arg_nodes or final is not _MISSING:
            args = [self.arg(a, dot) for a in arg_nodes]
            if final is not _MISSING:
                args.append(final)
        return self.field(recv, names[-1], args, pos)

    def field(self, recv: Any, name: str, args: list | None, pos: int) -> Any:
        if recv is NO_VALUE or recv is None:
            return NO_VALUE
        if isinstance(recv, Mapping):
            if args is not None:
                raise RenderError(f"{name} is not a method but has arguments", offset=pos)
            try:
                return recv[name]
            except KeyError:
                return NO_VALUE
        if name.startswith("_") or isinstance(
            recv, (str, bytes, int, float, bool, list, tuple, set, frozenset)
        ):
            raise RenderError(f"can't evaluate field {name} in type {go_type(recv)}", offset=pos)
        attr = getattr(recv, name, _MISSING)
        if attr is _MISSING:
            raise RenderError(f"can't evaluate field {name} in type {go_type(recv)}", offset=pos)
        if inspect.ismethod(attr) or inspect.isbuiltin(attr):
            return _invoke(attr, name, args or [], pos)
        if args is not None:
            raise RenderError(f"{name} is not a method but has arguments", offset=pos)
        return attr

    def call(self, name: str, arg_nodes, dot: Any, final: Any, pos: int) -> Any:
        fn = self.funcs.get(name)
        if fn is None:
            if name in ("and", "or"):
                return self.and_or(name, arg_nodes, dot, final, pos)
            fn = _BUILTINS.get(name)
            if fn is None:
                raise TemplateSyntaxError(f'function "{name}" not defined', pos)
            args = [self.arg(a, dot) for a in arg_nodes]
            if final is not _MISSING:
                args.append(final)
            return _invoke(fn, name, args, pos)
        args = [self.arg(a, dot) for a in arg_nodes]
        if final is not _MISSING:
            args.append(final)
        for a in args:
            if a is NO_VALUE:
                raise RenderError("invalid value; expected string", offset=pos, function=name)
        return _invoke(fn, name, args, pos)

    def and_or(self, name: str, arg_nodes, dot: Any, final: Any, pos: int) -> Any:
        count = len(arg_nodes) + (final is not _MISSING)
        if not count:
            raise RenderError(
                f"wrong number of args for {name}: want at least 1 got 0",
                offset=pos,
                function=name,
            )
        want = name == "and"
        val: Any = None
        for node in arg_nodes:
            val = self.arg(node, dot)
            if truth(val) != want:
                return val
        if final is not _MISSING:
            val = final
        return val


def _range_items(val: Any, pos: int) -> list[tuple[Any, Any]]:
    if val is NO_VALUE or val is None:
        return []
    if isinstance(val, (list, tuple)):
        return list(enumerate(val))
    if isinstance(val, Mapping):
        try:
            keys = sorted(val)
        except TypeError:
            keys = sorted(val, key=str)
        return [(k, val[k]) for k in keys]
    if isinstance(val, bool):
        raise RenderError(f"range can't iterate over {format_value(val)}", offset=pos)
    if isinstance(val, int):
        return [(i, i) for i in range(val)]
    if isinstance(val, (set, frozenset)):
        return list(enumerate(sorted(val)))
    raise RenderError(f"range can't iterate over {format_value(val)}", offset=pos)


# --------------------------------------------------------------------------- builtins


def _b_not(x: Any) -> bool:
    return not truth(x)


def _b_len(x: Any) -> int:
    if isinstance(x, str):
        return len(x.encode("utf-8"))
    if isinstance(x, (list, tuple, Mapping, set, frozenset, bytes)):
        return len(x)
    raise RenderError(f"len of type {go_type(x)}")


def _b_index(item: Any, *indices: Any) -> Any:
    if item is None or item is NO_VALUE:
        raise RenderError("index of untyped nil")
    for idx in indices:
        if isinstance(item, Mapping):
            try:
                item = item[idx]
            except KeyError:
                item = NO_VALUE
            except TypeError:
                raise RenderError(f"value has type {go_type(idx)}; should be string") from None
        elif isinstance(item, (str, list, tuple)):
            if not isinstance(idx, int) or isinstance(idx, bool):
                raise RenderError(f"cannot index slice/array with type {go_type(idx)}")
            seq = item.encode("utf-8") if isinstance(item, str) else item
            if not 0 <= idx < len(seq):
                raise RenderError(f"index out of range: {idx}")
            item = seq[idx]
        elif item is NO_VALUE or item is None:
            raise RenderError("index of untyped nil")
        else:
            raise RenderError(f"can't index item of type {go_type(item)}")
    return item


def _b_slice(item: Any, *indices: Any) -> Any:
    if not isinstance(item, (str, list, tuple)):
        raise RenderError(f"can't slice item of type {go_type(item)}")
    if len(indices) > 3 or (len(indices) == 3 and isinstance(item, str)):
        raise RenderError("too many slice indexes")
    for i in indices:
        if not isinstance(i, int) or isinstance(i, bool):
            raise RenderError(f"cannot index slice/array with type {go_type(i)}")
    seq = item.encode("utf-8") if isinstance(item, str) else item
    idx = list(indices[:2])
    lo = idx[0] if idx else 0
    hi = idx[1] if len(idx) > 1 else len(seq)
    if not 0 <= lo <= hi <= len(seq):
        raise RenderError(f"invalid slice index: {lo} > {hi}" if lo > hi else "index out of range")
    out = seq[lo:hi]
    return out.decode("utf-8", "replace") if isinstance(out, bytes) else out


def _kind(v: Any) -> str:
    if v is None or v is NO_VALUE:
        return "nil"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float"
    if isinstance(v, str):
        return "string"
    return "other"


def _b_eq(a: Any, *others: Any) -> bool:
    if not others:
        raise RenderError("missing argument for comparison")
    ka = _kind(a)
    for b in others:
        kb = _kind(b)
        if ka == "nil" or kb == "nil":
            if ka == kb:
                return True
            continue
        if ka == "other" or kb == "other":
            try:
                if a == b:
                    return True
            except Exception:  # noqa: BLE001
                raise RenderError("non-comparable types") from None
            continue
        if ka != kb:
            raise RenderError("incompatible types for comparison")
        if a == b:
            return True
    return False


def _b_ne(a: Any, b: Any) -> bool:
    return not _b_eq(a, b)


def _ordered(a: Any, b: Any) -> None:
    ka, kb = _kind(a), _kind(b)
    if ka not in ("int", "float", "string") or kb not in ("int", "float", "string"):
        raise RenderError("invalid type for comparison")
    if ka != kb:
        raise RenderError("incompatible types for comparison")


def _b_lt(a: Any, b: Any) -> bool:
    _ordered(a, b)
    return a < b


def _b_le(a: Any, b: Any) -> bool:
    _ordered(a, b)
    return a <= b


def _b_gt(a: Any, b: Any) -> bool:
    _ordered(a, b)
    return a > b


def _b_ge(a: Any, b: Any) -> bool:
    _ordered(a, b)
    return a >= b


def _sprint(*args: Any) -> str:
    out = []
    for i, a in enumerate(args):
        if i and not isinstance(a, str) and not isinstance(args[i - 1], str):
            out.append(" ")
        out.append(format_value(a))
    return "".join(out)


def _sprintln(*args: Any) -> str:
    return " ".join(format_value(a) for a in args) + "\n"


_PRINTF_RE = re.compile(r"%([-+# 0]*)(\d*)(?:\.(\d*))?(.?)", re.S)


def _bad_verb(verb: str, a: Any) -> str:
    return f"%!{verb}({go_type(a)}={format_value(a)})"


def _sprintf(fmt: Any, *args: Any) -> str:
    if not isinstance(fmt, str):
        raise RenderError(f"wrong type for value; expected string; got {go_type(fmt)}")
    out: list[str] = []
    argi = 0
    pos = 0
    for m in _PRINTF_RE.finditer(fmt):
        out.append(fmt[pos : m.start()])
        pos = m.end()
        flags, width, prec, verb = m.groups()
        if verb == "%":
            out.append("%")
            continue
        if not verb:
            out.append("%!(NOVERB)")
            continue
        if argi >= len(args):
            out.append(f"%!{verb}(MISSING)")
            continue
        a = args[argi]
        argi += 1
        if (width and int(width) > limits.MAX_WIDTH) or (prec and int(prec) > limits.MAX_WIDTH):
            raise RenderError(f"printf: the width or precision in %{flags}{width}"
                              f"{'.' + prec if prec is not None else ''}{verb} is larger than "
                              f"Kiln's limit of {limits.size_text(limits.MAX_WIDTH)}")
        spec = "%" + flags + width + (f".{prec}" if prec is not None else "")
        is_int = isinstance(a, int) and not isinstance(a, bool)
        if verb in "doxXc" and is_int:
            s = chr(a) if verb == "c" else (spec + verb) % a
        elif verb == "b" and is_int:
            s = (spec.replace("0", "") + "s") % format(a, "b")
        elif verb in "xX" and isinstance(a, str):
            s = a.encode("utf-8").hex()
            s = s.upper() if verb == "X" else s
        elif verb in "eEfFgG" and isinstance(a, (int, float)) and not isinstance(a, bool):
            if not isinstance(a, float):
                s = _bad_verb(verb, a)
            elif verb in "gG" and prec is None:
                s = _go_float(a)
            else:
                s = (spec + verb) % a
        elif (verb == "s" and not isinstance(a, (bool, int, float))) or verb == "v":
            s = (
                (spec.replace("0", "") + "s") % format_value(a)
                if width or prec
                else format_value(a)
            )
        elif verb == "q" and isinstance(a, str):
            s = go_quote(a)
        elif verb == "q" and is_int:
            s = "'" + go_quote(chr(a))[1:-1].replace("'", "\\'") + "'"
        elif verb == "t" and isinstance(a, bool):
            s = "true" if a else "false"
        elif verb == "T":
            s = go_type(a)
        else:
            s = _bad_verb(verb, a)
        out.append(s)
    out.append(fmt[pos:])
    if argi < len(args):
        extra = ", ".join(f"{go_type(a)}={format_value(a)}" for a in args[argi:])
        out.append(f"%!(EXTRA {extra})")
    return "".join(out)


def _args_text(args: tuple) -> str:
    if len(args) == 1 and isinstance(args[0], str):
        return args[0]
    return _sprint(*args)


def _b_html(*args: Any) -> str:
    s = _args_text(args)
    table = {"<": "&lt;", ">": "&gt;", "&": "&amp;", "'": "&#39;", '"': "&#34;", "\0": "\ufffd"}
    return "".join(table.get(c, c) for c in s)


def _b_js(*args: Any) -> str:
    s = _args_text(args)
    out = []
    for c in s:
        if c in "\\'\"":
            out.append("\\" + c)
        elif c in "<>&=`":
            out.append(f"\\u{ord(c):04X}")
        elif c == "\n":
            out.append("\\n")
        elif c == "\r":
            out.append("\\r")
        elif c == "\t":
            out.append("\\t")
        elif ord(c) < 0x20:
            out.append(f"\\u{ord(c):04X}")
        else:
            out.append(c)
    return "".join(out)


def _b_urlquery(*args: Any) -> str:
    return urllib.parse.quote_plus(_args_text(args), safe="")


def _b_call(fn: Any, *args: Any) -> Any:
    if not callable(fn):
        raise RenderError(f"non-function of type {go_type(fn)}")
    return _invoke(fn, "call", list(args), 0)


_BUILTINS: dict[str, Callable[..., Any]] = {
    "not": _b_not,
    "len": _b_len,
    "index": _b_index,
    "slice": _b_slice,
    "eq": _b_eq,
    "ne": _b_ne,
    "lt": _b_lt,
    "le": _b_le,
    "gt": _b_gt,
    "ge": _b_ge,
    "print": _sprint,
    "println": _sprintln,
    "printf": _sprintf,
    "html": _b_html,
    "js": _b_js,
    "urlquery": _b_urlquery,
    "call": _b_call,
}

#: Go's built-in template functions: always defined (a caller's function of the same name wins).
BUILTIN_NAMES: frozenset[str] = frozenset(_BUILTINS) | {"and", "or"}


# --------------------------------------------------------------------------- public API


class Tmpl:
    """A parsed template. Immutable, so one instance can be shared between threads."""

    __slots__ = ("text", "has_actions", "_nodes", "_funcs", "_fields")

    def __init__(self, text: str):
        self.text = text
        if "{{" not in text:
            self._nodes: list[_Node] = [_Text(text)] if text else []
            self._funcs: dict[str, int] = {}
            self._fields: frozenset[str] = frozenset()
            #: False when rendering always returns the text unchanged (no action, comment
            #: or trim marker at all).
            self.has_actions = False
            return
        p = _Parser(text)
        nodes, term, tok = p.parse_list()
        if term != "eof":
            raise TemplateSyntaxError(f"unexpected {{{{{term}}}}}", tok[2], text)
        self._nodes = nodes
        self._funcs = p.funcs
        self._fields = frozenset(p.fields)
        self.has_actions = not (
            not nodes or (len(nodes) == 1 and type(nodes[0]) is _Text and nodes[0].text == text)
        )

    def function_names(self) -> set[str]:
        """Every function name the template calls (Go built-ins included)."""
        return set(self._funcs)

    def field_names(self) -> set[str]:
        """Top-level data fields referenced: ``.A.B`` and ``$.A`` give ``A`` (fields read
        inside ``with``/``range`` bodies, where ``.`` is rebound, are not included)."""
        return set(self._fields)

    def missing_functions(self, known: Collection[str]) -> list[tuple[str, int]]:
        """``(name, offset)`` of each called function that is neither in ``known`` nor a Go
        built-in, in order of first use."""
        return sorted(
            (
                (n, off)
                for n, off in self._funcs.items()
                if n not in known and n not in BUILTIN_NAMES
            ),
            key=lambda x: x[1],
        )

    def render(
        self, funcs: Mapping[str, Callable[..., Any]], data: Mapping[str, Any] | Any | None = None
    ) -> str:
        """Execute with ``funcs`` and ``data`` (``None`` = Go's nil data: fields give
        ``<no value>``). Raises :class:`TemplateSyntaxError` for an undefined function (Go
        reports that when parsing) and :class:`RenderError` for execution errors."""
        if not self.has_actions:
            return self.text
        for fname in self._funcs:
            if fname not in funcs and fname not in BUILTIN_NAMES:
                name, off = self.missing_functions(funcs)[0]
                raise TemplateSyntaxError(f'function "{name}" not defined', off, self.text)
        root = NO_VALUE if data is None else data
        out: list[str] = []
        _Exec(funcs, root).walk(self._nodes, root, out)
        text = "".join(out)
        try:
            limits.current().render(len(text))
        except limits.LimitError as e:
            raise RenderError(str(e)) from None
        return text

    def __repr__(self) -> str:
        return f"Tmpl({self.text!r})"


@functools.lru_cache(maxsize=8192)
def parse(text: str) -> Tmpl:
    """Parse (cached). Raises :class:`TemplateSyntaxError`."""
    return Tmpl(text)


def render(
    text: str, funcs: Mapping[str, Callable[..., Any]], data: Mapping[str, Any] | Any = None
) -> str:
    """Parse and execute ``text`` once. Text without ``{{`` is returned unchanged."""
    if "{{" not in text:
        return text
    return parse(text).render(funcs, data)


def render_until_stable(
    text: str,
    funcs: Mapping[str, Callable[..., Any]],
    data: Mapping[str, Any] | Any = None,
    limit: int = 100,
) -> str:
    """Packer's ``Render``: render again while the output differs from the input (a function
    may produce more template text, e.g. ``{{ build `ID` }}`` → ``{{.ID}}``)."""
    if "{{" not in text:
        return text
    for _ in range(limit):
        out = render(text, funcs, data)
        if out == text:
            return out
        text = out
    raise RenderError(f"template output still changing after {limit} renders: {text!r}")


def check(text: str, funcs_names: Collection[str]) -> list[str]:
    """Problems with ``text`` without executing it: the syntax error, or one
    ``function "x" not defined`` per unknown function. Empty when fine."""
    if "{{" not in text:
        return []
    try:
        tmpl = parse(text)
    except TemplateSyntaxError as e:
        return [e.message]
    return [f'function "{name}" not defined' for name, _ in tmpl.missing_functions(funcs_names)]


# Packer protects "{{ .Something }}" in variable values so that it survives for later stages.
_PROTECT_RE = re.compile(r"\{\{[\t\n\f\r ]?\.(.*?)[\t\n\f\r ]?\}\}")


def _identity(s: str) -> str:
    return s


def protect_fields(text: str) -> tuple[str, Callable[[str], str]]:
    """Hide every ``{{ .X }}`` / ``{{.X}}`` action (Packer's regex
    ``{{(\\s|)\\.(.*?)(\\s|)}}``) behind an inert placeholder. Render the returned text, then
    pass the result to the returned function to put the original actions back verbatim."""
    if "{{" not in text:
        return text, _identity
    found: dict[str, str] = {}

    def hide(m: re.Match[str]) -> str:
        orig = m.group(0)
        ph = found.get(orig)
        if ph is None:
            ph = found[orig] = f"\ue000{len(found)}\ue001"
        return ph

    hidden = _PROTECT_RE.sub(hide, text)
    if not found:
        return text, _identity
    pairs = [(ph, orig) for orig, ph in found.items()]

    def restore(s: str) -> str:
        for ph, orig in pairs:
            s = s.replace(ph, orig)
        return s

    return hidden, restore
