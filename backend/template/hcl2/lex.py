"""HCL native syntax scanner: text -> tokens with exact 1-based line/column.

One scanner serves the parser (:mod:`.syntax`) and the formatter (:mod:`.fmt`), so
both agree on where strings, heredocs, interpolations and comments start and end. Like
HCL's own scanner it is modal: inside a quoted string or a heredoc it yields literal chunks,
``${``/``%{`` open a nested expression mode, and the matching ``}`` returns to the template.

Nothing here raises anything but :class:`LexError` (a message and a position).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

__all__ = ["Token", "LexError", "tokenize", "tokenize_template", "decode_escapes"]

# token kinds
IDENT = "IDENT"
NUMBER = "NUMBER"
NEWLINE = "NEWLINE"
COMMENT = "COMMENT"
PUNCT = "PUNCT"  # {}[]()=,.… operators; ``text`` says which
OQUOTE = "OQUOTE"
CQUOTE = "CQUOTE"
QLIT = "QLIT"  # a chunk of a quoted string (escapes undecoded in text, decoded in value)
HLIT = "HLIT"  # one line (or part of a line) of a heredoc
OHEREDOC = "OHEREDOC"
CHEREDOC = "CHEREDOC"
TINTERP = "TINTERP"  # ${ or ${~
TCONTROL = "TCONTROL"  # %{ or %{~
TEND = "TEND"  # } or ~} closing an interpolation/directive
EOF = "EOF"

_OPERATORS = (
    "...", "==", "!=", "<=", ">=", "&&", "||", "=>",
    "{", "}", "[", "]", "(", ")", ",", ".", "=", "<", ">", "+", "-", "*", "/", "%", "!", "?", ":",
)
_IDENT_RE = re.compile(r"[^\W\d][\w-]*")
_NUMBER_RE = re.compile(r"[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_HEREDOC_RE = re.compile(r"<<(-?)([^\W\d][\w-]*)[ \t]*\r?\n")
_SPACE = " \t\r\ufeff"


@dataclass(slots=True)
class Token:
    kind: str
    text: str  # the exact source text
    line: int
    col: int
    pos: int
    value: str = ""  # decoded text of literals; the marker of heredocs
    trim_left: bool = False  # ``${~``/``%{~`` (TINTERP/TCONTROL) or ``~}`` (TEND)
    bol: bool = False  # HLIT: the chunk starts a heredoc line
    strip: bool = False  # OHEREDOC: ``<<-`` (indented heredoc)
    end_line: int = 0
    end_col: int = 0

    @property
    def end(self) -> int:
        return self.pos + len(self.text)

    def __repr__(self) -> str:
        return f"{self.kind}({self.text!r}@{self.line}:{self.col})"


@dataclass
class LexError(Exception):
    message: str
    line: int
    col: int
    pos: int = 0
    extra: list = field(default_factory=list)

    def __str__(self) -> str:
        return f"{self.line}:{self.col}: {self.message}"


_SIMPLE_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", '"': '"', "\\": "\\"}


def decode_escapes(raw: str) -> str:
    """Decode a quoted-string chunk: backslash escapes and ``$${``/``%%{``.

    Raises ValueError(offset, message) for an invalid escape."""
    if "\\" not in raw and "$${" not in raw and "%%{" not in raw:
        return raw
    out: list[str] = []
    i, n = 0, len(raw)
    while i < n:
        c = raw[i]
        if c == "\\":
            if i + 1 >= n:
                raise ValueError(i, "a backslash must be followed by an escape character")
            e = raw[i + 1]
            if e in _SIMPLE_ESCAPES:
                out.append(_SIMPLE_ESCAPES[e])
                i += 2
                continue
            if e in "uU":
                width = 4 if e == "u" else 8
                digits = raw[i + 2: i + 2 + width]
                if len(digits) != width or not all(d in "0123456789abcdefABCDEF" for d in digits):
                    raise ValueError(i, f"\\{e} must be followed by {width} hexadecimal digits")
                cp = int(digits, 16)
                if cp > 0x10FFFF or 0xD800 <= cp <= 0xDFFF:
                    raise ValueError(i, f"\\{e}{digits} is not a valid Unicode character")
                out.append(chr(cp))
                i += 2 + width
                continue
            raise ValueError(i, f'"\\{e}" is not a valid escape sequence (use \\\\ for a backslash)')
        if c in "$%" and raw.startswith(c + c + "{", i):
            out.append(c + "{")
            i += 3
            continue
        out.append(c)
        i += 1
    return "".join(out)


class _Lexer:
    def __init__(self, text: str):
        self.text = text
        self.n = len(text)
        self.pos = 0
        self.line = 1
        self.col = 1
        self.tokens: list[Token] = []
        # mode stack: ["normal", depth, is_template_expr] | ["quoted"] | ["heredoc", marker, bol]
        self.modes: list[list] = [["normal", 0, False]]

    # -- position helpers ---------------------------------------------------------------
    def advance(self, count: int) -> None:
        chunk = self.text[self.pos: self.pos + count]
        nl = chunk.count("\n")
        if nl:
            self.line += nl
            self.col = count - chunk.rfind("\n")
        else:
            self.col += count
        self.pos += count

    def emit(self, kind: str, length: int, **kw) -> Token:
        tok = Token(kind, self.text[self.pos: self.pos + length], self.line, self.col, self.pos, **kw)
        self.advance(length)
        tok.end_line, tok.end_col = self.line, self.col
        self.tokens.append(tok)
        return tok

    def error(self, message: str, pos: int | None = None) -> LexError:
        if pos is None:
            return LexError(message, self.line, self.col, self.pos)
        line = self.text.count("\n", 0, pos) + 1
        col = pos - (self.text.rfind("\n", 0, pos) + 1) + 1
        return LexError(message, line, col, pos)

    # -- driver -------------------------------------------------------------------------
    def run(self) -> list[Token]:
        while True:
            mode = self.modes[-1]
            if mode[0] == "normal":
                if not self.normal(mode):
                    break
            elif mode[0] == "quoted":
                self.quoted(mode)
            elif mode[0] == "raw":
                self.raw()
            else:
                self.heredoc(mode)
        self.tokens.append(Token(EOF, "", self.line, self.col, self.pos, end_line=self.line,
                                 end_col=self.col))
        return self.tokens

    def normal(self, mode: list) -> bool:
        text, n = self.text, self.n
        while self.pos < n and text[self.pos] in _SPACE:
            self.advance(1)
        if self.pos >= n:
            if len(self.modes) > 1:
                raise self.error("unexpected end of file inside an interpolation (missing \"}\")")
            return False
        c = text[self.pos]
        if c == "\n":
            self.emit(NEWLINE, 1)
            return True
        if c == "#" or text.startswith("//", self.pos):
            end = text.find("\n", self.pos)
            end = n if end < 0 else end
            if end > self.pos and text[end - 1] == "\r":
                end -= 1
            self.emit(COMMENT, end - self.pos)
            return True
        if text.startswith("/*", self.pos):
            end = text.find("*/", self.pos + 2)
            if end < 0:
                raise self.error("unterminated comment: /* has no closing */")
            self.emit(COMMENT, end + 2 - self.pos)
            return True
        if c == '"':
            self.emit(OQUOTE, 1)
            self.modes.append(["quoted", self.pos - 1])
            return True
        if c == "<" and text.startswith("<<", self.pos):
            m = _HEREDOC_RE.match(text, self.pos)
            if m:
                start = self.pos
                self.emit(OHEREDOC, m.end() - self.pos, value=m.group(2), strip=bool(m.group(1)))
                self.modes.append(["heredoc", m.group(2), True, start])
                return True
            if _HEREDOC_RE.match(text + "\n", self.pos) and text.find("\n", self.pos) < 0:
                raise self.error("a heredoc needs a line break after its marker")
        if c.isdigit():
            m = _NUMBER_RE.match(text, self.pos)
            assert m is not None
            self.emit(NUMBER, m.end() - self.pos)
            return True
        if c == "~" and text.startswith("~}", self.pos) and mode[2] and mode[1] == 0:
            self.emit(TEND, 2, trim_left=True)
            self.modes.pop()
            return True
        if c == "{":
            mode[1] += 1
            self.emit(PUNCT, 1)
            return True
        if c == "}":
            if mode[2] and mode[1] == 0:
                self.emit(TEND, 1)
                self.modes.pop()
                return True
            mode[1] = max(0, mode[1] - 1)
            self.emit(PUNCT, 1)
            return True
        m = _IDENT_RE.match(text, self.pos)
        if m:
            self.emit(IDENT, m.end() - self.pos)
            return True
        for op in _OPERATORS:
            if text.startswith(op, self.pos):
                self.emit(PUNCT, len(op))
                return True
        if c == "'":
            raise self.error("strings use double quotes (\"), not single quotes")
        raise self.error(f"invalid character {c!r}")

    def _template_open(self, pos: int) -> int:
        """Length of ``${``/``%{`` (+ ``~``) at pos, 0 when there is none."""
        t = self.text
        if t.startswith("${", pos) or t.startswith("%{", pos):
            return 3 if t.startswith("~", pos + 2) else 2
        return 0

    def quoted(self, mode: list) -> None:
        text, n = self.text, self.n
        start = self.pos
        i = start
        while i < n:
            c = text[i]
            if c == '"' or c == "\n":
                break
            if c == "\\":
                i += 2
                continue
            if c in "$%" and text.startswith(c + c + "{", i):
                i += 3
                continue
            if self._template_open(i):
                break
            i += 1
        i = min(i, n)
        if i > start:
            raw = text[start:i]
            try:
                value = decode_escapes(raw)
            except ValueError as e:
                off, msg = e.args
                raise self.error(msg, start + off) from None
            self.emit(QLIT, i - start, value=value)
        if i >= n:
            raise self.error("unterminated string: the closing quote (\") is missing", mode[1])
        c = text[i]
        if c == '"':
            self.emit(CQUOTE, 1)
            self.modes.pop()
        elif c == "\n":
            raise self.error("unterminated string: a quoted string cannot span lines "
                             "(close it with \" or use a heredoc <<EOF)", mode[1])
        else:
            length = self._template_open(i)
            kind = TINTERP if c == "$" else TCONTROL
            self.emit(kind, length, trim_left=length == 3)
            self.modes.append(["normal", 0, True])

    def raw(self) -> None:
        """A whole text as template content (a ``.pkr.json`` string): no escapes, ends at EOF."""
        text, n = self.text, self.n
        start = i = self.pos
        while i < n:
            if text[i] in "$%" and text.startswith(text[i] * 2 + "{", i):
                i += 3
                continue
            if self._template_open(i):
                break
            i += 1
        if i > start:
            raw = text[start:i]
            self.emit(QLIT, i - start, value=raw.replace("$${", "${").replace("%%{", "%{"))
        if i >= n:
            self.tokens.append(Token(CQUOTE, "", self.line, self.col, self.pos))
            self.modes.pop()
            return
        length = self._template_open(i)
        kind = TINTERP if text[i] == "$" else TCONTROL
        self.emit(kind, length, trim_left=length == 3)
        self.modes.append(["normal", 0, True])

    def heredoc(self, mode: list) -> None:
        text, n = self.text, self.n
        marker = mode[1]
        if self.pos >= n:
            raise self.error(f"unterminated heredoc: no line with the closing marker {marker}",
                             mode[3])
        if mode[2]:  # at the beginning of a line: the closing marker?
            eol = text.find("\n", self.pos)
            eol = n if eol < 0 else eol
            if text[self.pos: eol].strip() == marker:
                self.emit(CHEREDOC, eol - self.pos, value=marker)
                self.modes.pop()
                return
        start = self.pos
        bol = mode[2]
        i = start
        while i < n:
            c = text[i]
            if c == "\n":
                i += 1
                break
            if c in "$%" and text.startswith(c + c + "{", i):
                i += 3
                continue
            if self._template_open(i):
                break
            i += 1
        if i > start:
            raw = text[start:i]
            self.emit(HLIT, i - start, value=raw.replace("$${", "${").replace("%%{", "%{"), bol=bol)
            mode[2] = raw.endswith("\n")
            if mode[2] or i >= n:
                return
        if i >= n:
            return
        length = self._template_open(i)
        kind = TINTERP if text[i] == "$" else TCONTROL
        self.emit(kind, length, trim_left=length == 3)
        mode[2] = False
        self.modes.append(["normal", 0, True])


def tokenize(text: str) -> list[Token]:
    """All tokens of ``text`` (comments and newlines included), ending with EOF."""
    return _Lexer(text).run()


def tokenize_template(text: str) -> list[Token]:
    """Tokens of ``text`` read as template content: literals, ``${}`` and ``%{}``, then a
    (zero-width) CQUOTE and EOF."""
    lx = _Lexer(text)
    lx.modes.append(["raw"])
    return lx.run()
