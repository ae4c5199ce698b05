"""``kiln fmt``: rewrite HCL2 files (``.pkr.hcl``, ``.pkrvars.hcl``) in the canonical layout.

A token-level formatter (the scanner of :mod:`.lex`), so comments, heredocs and the
text inside strings are kept byte for byte. The layout:

* two-space indentation from bracket nesting (a line with a net opening raises the indent
  of the lines below by one step, however many brackets it opens);
* one space around ``=``, ``?``, ``:``, ``=>`` and binary operators, after commas, none
  inside brackets, before commas, around ``.`` or between a function name and ``(``;
* the ``=`` of consecutive one-line ``name = value`` lines aligned, and their trailing
  comments too;
* no trailing spaces, no blank lines at the start or end of the file, at most one blank
  line in a row, exactly one blank line between top-level blocks, a final newline.

Formatting is idempotent, and a result is only used when its tokens are the input's tokens
(whitespace aside), so a formatter bug can never change what a template means.

Command line (Packer's ``fmt``)::

    kiln fmt [-check] [-diff] [-write=true] [-recursive] PATH...|-

``-check`` writes nothing and exits 3 when some file is not formatted; ``-`` formats
standard input to standard output. Exit 1 on errors (unreadable files, syntax errors).
"""

from __future__ import annotations

from . import lex as L

__all__ = ["format_text", "FormatError"]


EXTENSIONS = (".pkr.hcl", ".pkrvars.hcl")
_KEYWORDS = ("for", "in", "if")
_OPENERS = ("{", "[", "(")
_CLOSERS = ("}", "]", ")")


class FormatError(Exception):
    def __init__(self, message: str, line: int = 0, col: int = 0):
        super().__init__(message)
        self.message = message
        self.line = line
        self.col = col


class _Atom:
    __slots__ = ("kind", "text")

    def __init__(self, kind: str, text: str):
        self.kind = kind
        self.text = text

    def is_p(self, *texts: str) -> bool:
        return self.kind == L.PUNCT and self.text in texts

    def __repr__(self) -> str:
        return f"{self.kind}:{self.text!r}"


def _lines(text: str, tokens: list[L.Token]) -> list[list[_Atom]]:
    """Tokens grouped into physical lines of atoms; a string or heredoc is one atom."""
    lines: list[list[_Atom]] = [[]]
    i = 0
    n = len(tokens)
    while i < n:
        t = tokens[i]
        if t.kind == L.EOF:
            break
        if t.kind == L.NEWLINE:
            lines.append([])
            i += 1
            continue
        if t.kind in (L.OQUOTE, L.OHEREDOC):
            depth = 0
            j = i
            while j < n:
                k = tokens[j].kind
                if k in (L.OQUOTE, L.OHEREDOC):
                    depth += 1
                elif k in (L.CQUOTE, L.CHEREDOC):
                    depth -= 1
                    if depth == 0:
                        break
                j += 1
            end = tokens[j].end if j < n else len(text)
            kind = "STR" if t.kind == L.OQUOTE else "HEREDOC"
            lines[-1].append(_Atom(kind, text[t.pos:end]))
            i = j + 1
            continue
        lines[-1].append(_Atom(t.kind, t.text.rstrip() if t.kind == L.COMMENT else t.text))
        i += 1
    return lines


def _unary_position(before: _Atom | None) -> bool:
    """Whether a ``-``/``!`` after ``before`` is a unary operator."""
    if before is None:
        return True
    if before.kind in ("IDENT",):
        return before.text in _KEYWORDS
    if before.kind in (L.NUMBER, "STR", "HEREDOC"):
        return False
    return not before.is_p(")", "]", "}")


def _space(prev: _Atom, nxt: _Atom, before_prev: _Atom | None) -> str:
    if nxt.kind == L.COMMENT or prev.kind == L.COMMENT:
        return " "
    if nxt.is_p(",", ")", "]", "..."):
        return ""
    if prev.is_p("(", "["):
        return ""
    if prev.is_p("{"):
        return "" if nxt.is_p("}") else " "
    if nxt.is_p("}"):
        return " "
    if nxt.is_p(".") or prev.is_p("."):
        return ""
    if prev.is_p("!") or (prev.is_p("-") and _unary_position(before_prev)):
        return ""
    if nxt.is_p("[", "("):
        if prev.kind == "IDENT" and prev.text not in _KEYWORDS:
            return ""
        if prev.kind in ("STR",) or prev.is_p(")", "]", "*"):
            return ""
        return " "
    return " "


def _render(atoms: list[_Atom]) -> str:
    out: list[str] = []
    for i, a in enumerate(atoms):
        if i:
            out.append(_space(atoms[i - 1], a, atoms[i - 2] if i >= 2 else None))
        out.append(a.text)
    return "".join(out)


def _brackets(atoms: list[_Atom]) -> int:
    n = 0
    for a in atoms:
        if a.kind == L.PUNCT:
            if a.text in _OPENERS:
                n += 1
            elif a.text in _CLOSERS:
                n -= 1
        elif a.kind == "HEREDOC":
            break
    return n


class _Line:
    __slots__ = ("atoms", "indent", "lead", "assign", "comment", "depth_before", "depth_after")


    def __init__(self, atoms: list[_Atom]):
        self.atoms = atoms
        self.indent = 0
        self.lead: list[_Atom] = atoms
        self.assign: list[_Atom] | None = None
        self.comment: _Atom | None = None
        self.depth_before = 0
        self.depth_after = 0


def format_text(text: str) -> str:
    """The canonical form of ``text``; FormatError on syntax errors."""
    from . import syntax as S

    try:
        tokens = L.tokenize(text)
    except L.LexError as e:
        raise FormatError(e.message, e.line, e.col) from None
    try:
        S.parse_config(text)
    except S.HCLSyntaxError as e:
        raise FormatError(e.message, e.line, e.col) from None
    raw_lines = _lines(text, tokens)
    lines = [_Line(a) for a in raw_lines]

    # cells: trailing comment, then the "= value" of one-line assignments
    for ln in lines:
        atoms = ln.atoms
        if len(atoms) > 1 and atoms[-1].kind == L.COMMENT and atoms[-1].text.startswith(("#", "//")):
            ln.comment = atoms[-1]
            atoms = atoms[:-1]
        ln.lead = atoms
        for i, a in enumerate(atoms):
            if i > 0 and a.is_p("="):
                if _brackets(atoms[i:]) == 0:
                    ln.lead, ln.assign = atoms[:i], atoms[i:]
                break

    # indentation: the indent stack of net bracket changes per line
    stack: list[int] = []
    for ln in lines:
        ln.depth_before = len(stack)
        if not ln.atoms:
            continue
        net = _brackets(ln.atoms)
        if net > 0:
            ln.indent = len(stack)
            stack.append(net)
        elif net < 0:
            closed = -net
            while closed > 0 and stack:
                if closed >= stack[-1]:
                    closed -= stack[-1]
                    stack.pop()
                else:
                    stack[-1] -= closed
                    closed = 0
            ln.indent = len(stack)
        else:
            ln.indent = len(stack)
        ln.depth_after = len(stack)

    # render; align the "=" of chains of assignment lines, then their trailing comments
    leads = ["  " * ln.indent + _render(ln.lead) if ln.atoms else "" for ln in lines]
    _align(lines, leads, lambda ln: ln.assign is not None)
    bodies = [lead + (" " + _render(ln.assign) if ln.assign is not None else "")
              for lead, ln in zip(leads, lines, strict=True)]
    _align(lines, bodies, lambda ln: ln.comment is not None)
    bodies = [b + (" " + ln.comment.text.rstrip() if ln.comment is not None else "")
              for b, ln in zip(bodies, lines, strict=True)]
    bodies = [b if ln.atoms and ln.atoms[-1].kind == "HEREDOC" else b.rstrip()
              for b, ln in zip(bodies, lines, strict=True)]

    # blank lines: none at the ends, never two in a row, one between top-level blocks
    out: list[str] = []
    for k, ln in enumerate(lines):
        blank = not ln.atoms
        if blank:
            if out and out[-1] != "":
                out.append("")
            continue
        if out and out[-1] != "" and ln.depth_before == 0 and _ends_top_block(lines, k):
            out.append("")
        out.append(bodies[k])
    while out and out[-1] == "":
        out.pop()
    result = "\n".join(out) + "\n" if out else ""
    _check_same_tokens(text, result)
    return result


def _align(lines: list[_Line], texts: list[str], member) -> None:
    """Pad ``texts`` of each run of consecutive member lines to the same width."""
    i = 0
    while i < len(lines):
        if not member(lines[i]):
            i += 1
            continue
        j = i
        while j < len(lines) and member(lines[j]):
            j += 1
        width = max(len(texts[k]) for k in range(i, j))
        for k in range(i, j):
            texts[k] = texts[k].ljust(width)
        i = j


def _ends_top_block(lines: list[_Line], k: int) -> bool:
    """Whether the last non-blank line before line k closed (or was) a top-level block."""
    j = k - 1
    while j >= 0 and not lines[j].atoms:
        j -= 1
    if j < 0:
        return False
    prev = lines[j]
    if prev.depth_after != 0:
        return False
    last = prev.atoms[-1] if prev.comment is None else (prev.atoms[-2] if len(prev.atoms) > 1
                                                        else prev.atoms[-1])
    return last.is_p("}")


def _significant(text: str) -> list[tuple[str, str]]:
    out = []
    for t in L.tokenize(text):
        if t.kind == L.NEWLINE:
            continue
        text = t.text.rstrip() if t.kind in (L.COMMENT, L.CHEREDOC) else t.text
        out.append((t.kind, text))
    return out


def _check_same_tokens(before: str, after: str) -> None:
    if _significant(before) != _significant(after):
        raise FormatError("internal error: formatting would change the tokens of the file; "
                          "the file was left as it is")


# -- command line -------------------------------------------------------------------------


