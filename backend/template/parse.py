"""Reading template files into :class:`~backend.template.source.Node` trees.

Every value (and every mapping key) keeps its exact 1-based line and column and
its key path (``builders[0].type``), so later checks can point at the source.

* :func:`read_template_text` reads a file defensively (size limit, binary
  detection, UTF-8 with a clear error, BOM handling).
* :func:`parse_json` is a strict, iterative (no recursion, so no
  ``RecursionError``) JSON parser driven by regular expressions.
* :func:`parse_yaml` builds nodes from PyYAML's event stream (the C parser when
  available), resolving scalars the way ``yaml.SafeLoader`` does.
* :func:`load_node` picks the format by file extension.

Any input yields either a Node or a :class:`TemplateError`; syntax errors carry
one Problem with a caret snippet, while duplicate keys (and, for YAML,
non-string keys and unsupported tags) are collected and raised together.
"""

from __future__ import annotations

import codecs
import os
import re
from bisect import bisect_right
from typing import Any, NoReturn

from .errors import Problem, TemplateError
from .source import Loc, Node, join_path
from .textlines import (  # noqa: F401 - MAX_DEPTH, MAX_ALIAS_EXPANSION: the limits, public here
    _JSON_BREAKS,
    _YAML_BREAKS,
    MAX_ALIAS_EXPANSION,
    MAX_DEPTH,
    _a,
    _describe_char,
    _line_col,
    _Lines,
)

__all__ = [
    "MAX_BYTES",
    "MAX_DEPTH",
    "MAX_ALIAS_EXPANSION",
    "read_template_text",
    "parse_json",
    "parse_json_value",
    "parse_yaml",
    "load_node",
]

MAX_BYTES = 16 * 1024 * 1024
YAML_EXTENSIONS = (".yaml", ".yml")


# --------------------------------------------------------------------------------------
# Reading files


_BOMS = (
    # UTF-32 first: the UTF-32-LE BOM starts with the UTF-16-LE one.
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
_CONTROL_BYTES = bytes(b for b in range(32) if b not in b"\t\n\r\x0b\x0c") + b"\x7f"
_CONTROL_CHARS = re.compile("[\x00-\x08\x0e-\x1f\x7f]")
_SAMPLE = 8192


def _file_problem(
    path: str, message: str, line: int = 0, col: int = 0, snippet: str = ""
) -> TemplateError:
    return TemplateError(Problem(Loc(path, line, col), message, snippet=snippet))


def _mostly_binary(sample: bytes) -> bool:
    """True when at least 10% of a sample is control bytes or invalid UTF-8."""
    if not sample:
        return False
    bad = len(sample) - len(sample.translate(None, _CONTROL_BYTES))
    bad += sample.decode("utf-8", "replace").count("\ufffd")
    return bad * 10 >= len(sample)


def _looks_utf16(sample: bytes) -> bool:
    if len(sample) < 4:
        return False
    even, odd = sample[0::2], sample[1::2]
    return even.count(0) * 4 >= len(even) * 3 or odd.count(0) * 4 >= len(odd) * 3


def read_template_text(path: str) -> str:
    """Read a template file as text.

    Rejects files over :data:`MAX_BYTES`, binary files (NUL bytes or mostly
    control characters) and invalid UTF-8 (naming line, column and byte
    offset). A UTF-8 byte-order mark is stripped; UTF-16/UTF-32 files with a
    byte-order mark are decoded.
    """
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_BYTES + 1)
            size = len(data)
            if size > MAX_BYTES:
                try:
                    size = max(os.fstat(f.fileno()).st_size, size)
                except OSError:
                    pass
    except IsADirectoryError:
        raise _file_problem(path, "cannot read template: this is a directory, not a file") from None
    except FileNotFoundError:
        raise _file_problem(path, "cannot read template: no such file") from None
    except OSError as e:
        raise _file_problem(path, f"cannot read template: {e.strerror or e}") from None
    except ValueError as e:  # e.g. an embedded NUL in the path
        raise _file_problem(path, f"cannot read template: {e}") from None

    if size > MAX_BYTES:
        exact = "more than " if size == MAX_BYTES + 1 else ""
        raise _file_problem(
            path,
            f"template file is too large ({exact}{size:,} bytes; the limit is {MAX_BYTES:,} "
            f"bytes = {MAX_BYTES // (1024 * 1024)} MiB). Templates are small text files: "
            "check that this is the file you meant, and move large data into files that "
            "the template refers to.",
        )

    codec, body, skip = "utf-8", data, 0
    for bom, name in _BOMS:
        if data.startswith(bom):
            codec, body, skip = name, data[len(bom) :], len(bom)
            break

    if codec == "utf-8":
        sample = body[:_SAMPLE]
        nul = body.find(b"\0")
        if nul >= 0:
            if _looks_utf16(sample):
                raise _file_problem(
                    path,
                    "this looks like UTF-16 text without a byte-order mark; "
                    "save the template as UTF-8",
                    1,
                    1,
                )
            prefix = body[:nul].decode("utf-8", "replace")
            line, col = _line_col(prefix, len(prefix))
            if _mostly_binary(sample):
                msg = (
                    "this is not a text file: it contains binary data "
                    f"(NUL byte at byte offset {nul + skip})"
                )
            else:
                msg = (
                    f"the file contains a NUL byte at byte offset {nul + skip}; "
                    "a template must be UTF-8 text (is this a binary file?)"
                )
            raise _file_problem(path, msg, line, col)
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as e:
            if _mostly_binary(sample):
                raise _file_problem(
                    path,
                    "this is not a text file: it contains binary data "
                    f"(invalid UTF-8 at byte offset {e.start + skip})",
                    *_decoded_line_col(body, e.start, codec),
                ) from None
            line, col = _decoded_line_col(body, e.start, codec)
            bad = body[e.start : max(e.end, e.start + 1)][:4]
            shown = " ".join(f"0x{b:02x}" for b in bad)
            raise _file_problem(
                path,
                f"invalid UTF-8 at line {line}, column {col} (byte offset "
                f"{e.start + skip}: {shown}); a template must be UTF-8 text",
                line,
                col,
                _Lines(body.decode("utf-8", "replace")).snippet(line, col),
            ) from None
        sample_text = text[:_SAMPLE]
        if sample_text and len(_CONTROL_CHARS.findall(sample_text)) * 10 >= len(sample_text):
            m = _CONTROL_CHARS.search(text)
            assert m is not None
            line, col = _line_col(text, m.start())
            raise _file_problem(
                path, "this is not a text file: it is mostly control characters", line, col
            )
        return text

    try:
        text = body.decode(codec)
    except UnicodeDecodeError as e:
        line, col = _decoded_line_col(body, e.start, codec)
        raise _file_problem(
            path,
            f"invalid {codec[:6].upper()} text at line {line}, column {col} "
            f"(byte offset {e.start + skip}): {e.reason}",
            line,
            col,
        ) from None
    nul = text.find("\0")
    if nul >= 0:
        line, col = _line_col(text, nul)
        raise _file_problem(
            path, "the file contains a NUL character; a template must be text", line, col
        )
    return text


def _decoded_line_col(body: bytes, offset: int, codec: str) -> tuple[int, int]:
    prefix = body[:offset].decode(codec, "replace")
    return _line_col(prefix, len(prefix))


def bom_warning(path: str) -> str | None:
    """A warning when the JSON file at ``path`` starts with a byte-order mark: Kiln reads
    it, Packer 1.6.6 stops at it ("invalid character 'ï' looking for beginning of value")."""
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError:
        return None
    if not any(head.startswith(bom) for bom, _ in _BOMS):
        return None
    return (f"{path} starts with a byte-order mark; Kiln reads past it, but Packer rejects "
            "the template: save it as UTF-8 without a BOM to keep it usable with Packer")


def load_node(path: str) -> Node:
    """Read and parse a template file: YAML for ``.yaml``/``.yml``, else JSON."""
    text = read_template_text(path)
    if os.path.splitext(path)[1].lower() in YAML_EXTENSIONS:
        return parse_yaml(text, path)
    return parse_json(text, path)


# --------------------------------------------------------------------------------------
# JSON


_WS = re.compile(r"[ \t\n\r]*")
_STR_FAST = re.compile(r'"([^"\\\x00-\x1f]*)"')
_STR_CHUNK = re.compile(r'[^"\\\x00-\x1f]*')
_KEY_FAST = re.compile(r'"([^"\\\x00-\x1f]*)"[ \t\n\r]*:[ \t\n\r]*')
_SEP = re.compile(r"[ \t\n\r]*([,}\]])[ \t\n\r]*")
_NUM = re.compile(r"-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?")
_NUM_TAIL = re.compile(r"[0-9A-Za-z_.+-]+")
_WORD = re.compile(r"[A-Za-z0-9_$.+-]{2,}")
_SURROGATE = re.compile("[\ud800-\udfff]")
_HEX4 = re.compile(r"[0-9a-fA-F]{4}")
_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}
_LITERALS = {"t": ("true", True), "f": ("false", False), "n": ("null", None)}
_LITERAL_WORDS = ("true", "false", "null")
_WORD_HINTS = {
    "true": "JSON booleans are lowercase: true, false",
    "false": "JSON booleans are lowercase: true, false",
    "null": "JSON's null is lowercase: null",
    "none": "JSON's null is written null",
    "nan": "JSON has no NaN or Infinity",
    "infinity": "JSON has no NaN or Infinity",
    "-infinity": "JSON has no NaN or Infinity",
}


class _JSONParser:
    __slots__ = ("text", "file", "n", "lines", "starts", "stack", "problems")

    def __init__(self, text: str, file: str):
        self.text = text
        self.file = file
        self.n = len(text)
        self.lines = _Lines(text)
        self.starts = self.lines.starts
        # Open containers: [node, is_map, current key]
        self.stack: list[list[Any]] = []
        self.problems: list[Problem] = []

    # -- locations and errors ------------------------------------------------------
    def loc(self, pos: int, path: str) -> Loc:
        starts = self.starts
        i = bisect_right(starts, pos)
        return Loc(self.file, i, pos - starts[i - 1] + 1, path)

    def fail(self, pos: int, message: str, path: str | None = None) -> NoReturn:
        if path is None:
            path = self.stack[-1][0].loc.path if self.stack else ""
        loc = self.loc(pos, path)
        raise TemplateError(
            Problem(loc, f"invalid JSON: {message}", snippet=self.lines.snippet(loc.line, loc.col))
        )

    def fail_eof(self) -> NoReturn:
        """Report a premature end, just after the last thing in the file."""
        end = len(self.text.rstrip(" \t\n\r"))
        msg = "unexpected end of file"
        if self.stack:
            opened = self.stack[-1][0].loc
            bracket = "{" if self.stack[-1][1] else "["
            msg += f" ('{bracket}' at line {opened.line}, column {opened.col} is never closed)"
        elif not self.text.strip(" \t\n\r"):
            msg += " (the file is empty)"
        self.fail(end, msg)

    def found(self, pos: int) -> str:
        if pos >= self.n:
            return "end of file"
        m = _WORD.match(self.text, pos)
        if m:
            word = m.group()
            shown = f"'{word[:20]}{'...' if len(word) > 20 else ''}'"
            hint = None if word in _LITERAL_WORDS else _WORD_HINTS.get(word.lower())
            return f"{shown} ({hint})" if hint else shown
        c = self.text[pos]
        if c == "'":
            return '"\'" (JSON strings use double quotes)'
        if c == "/" and self.text.startswith(("//", "/*"), pos):
            return "'/' (comments are not allowed in JSON)"
        return _describe_char(c)

    def ws(self, pos: int) -> int:
        return _WS.match(self.text, pos).end()

    # -- tokens --------------------------------------------------------------------
    def string(self, pos: int) -> tuple[str, int]:
        """The string whose opening quote is at ``pos`` and the position after it."""
        text, n = self.text, self.n
        m = _STR_FAST.match(text, pos)
        if m:
            return m.group(1), m.end()
        chunks: list[str] = []
        i = pos + 1
        while True:
            j = _STR_CHUNK.match(text, i).end()
            if j > i:
                chunks.append(text[i:j])
            if j >= n:
                self.fail(pos, "unterminated string (missing closing quote)")
            c = text[j]
            if c == '"':
                return "".join(chunks), j + 1
            if c != "\\":
                if c == "\n" or c == "\r":
                    self.fail(j, "line break inside a string (missing closing quote? write \\n)")
                self.fail(
                    j, f"control character {_describe_char(c)} inside a string must be escaped"
                )
            e = text[j + 1 : j + 2]
            if e in _ESCAPES:
                chunks.append(_ESCAPES[e])
                i = j + 2
            elif e == "u":
                cp, i = self.unicode_escape(j)
                chunks.append(cp)
            elif not e:
                self.fail(pos, "unterminated string (missing closing quote)")
            else:
                self.fail(j, f"invalid escape sequence '\\{e}' in a string")

    def unicode_escape(self, j: int) -> tuple[str, int]:
        """Decode ``\\uXXXX`` at ``j`` (a surrogate pair when one follows)."""
        text = self.text
        if not _HEX4.match(text, j + 2):
            self.fail(j, "invalid \\u escape (expected 4 hex digits)")
        code = int(text[j + 2 : j + 6], 16)
        if 0xD800 <= code <= 0xDBFF:
            if text.startswith("\\u", j + 6) and _HEX4.match(text, j + 8):
                low = int(text[j + 8 : j + 12], 16)
                if 0xDC00 <= low <= 0xDFFF:
                    return chr(0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)), j + 12
            return "\ufffd", j + 6  # lone surrogate: replaced, as Go does
        if 0xDC00 <= code <= 0xDFFF:
            return "\ufffd", j + 6
        return chr(code), j + 6

    def number(self, pos: int) -> tuple[int | float, int]:
        text = self.text
        m = _NUM.match(text, pos)
        tail = _NUM_TAIL.match(text, m.end() if m else pos)
        if m is None or tail is not None:
            end = tail.end() if tail else pos + 1
            token = text[pos:end]
            if len(token) > 30:
                token = token[:27] + "..."
            self.fail(pos, f"invalid number '{token}'")
        s = m.group()
        if m.group(1) or m.group(2):
            v = float(s)
            if v in (float("inf"), float("-inf")):
                self.fail(pos, f"number out of range '{s[:30]}'")
            return v, m.end()
        try:
            return int(s), m.end()
        except ValueError:  # more digits than int() accepts
            self.fail(pos, "number has too many digits")

    # -- structure -----------------------------------------------------------------
    def key(self, pos: int, frame: list[Any], comma: int = -1) -> tuple[int, str]:
        """Parse ``"key":`` at ``pos`` for the object in ``frame``.

        Returns the position of the value and the value's path.
        """
        text = self.text
        m = _KEY_FAST.match(text, pos)
        if m:
            key = m.group(1)
            vpos = m.end()
        else:
            if pos >= self.n:
                self.fail_eof()
            c = text[pos]
            if c != '"':
                if c == "}" and comma >= 0:
                    self.fail(comma, "trailing comma before '}' is not allowed in JSON")
                self.fail(pos, f"expected a string key in double quotes, found {self.found(pos)}")
            key, end = self.string(pos)
            end = self.ws(end)
            if end >= self.n:
                self.fail_eof()
            if text[end] != ":":
                self.fail(end, f"expected ':' after object key, found {self.found(end)}")
            vpos = self.ws(end + 1)
        node: Node = frame[0]
        key_locs = node.key_locs
        assert key_locs is not None
        path = join_path(node.loc.path, key)
        first = key_locs.get(key)
        if first is None:
            key_locs[key] = self.loc(pos, path)
        else:
            kloc = self.loc(pos, path)
            self.problems.append(
                Problem(
                    kloc,
                    f'duplicate key "{key}" (first defined at line {first.line})',
                    snippet=self.lines.snippet(kloc.line, kloc.col),
                )
            )
        frame[2] = key
        return vpos, path

    def parse(self) -> Node:
        text, n, stack = self.text, self.n, self.stack
        bad = _SURROGATE.search(text)
        if bad:  # only possible for text that did not come from a file
            self.fail(bad.start(), f"invalid character {_describe_char(bad.group())} (not Unicode)")
        loc = self.loc
        file, starts = self.file, self.starts
        key_fast = _KEY_FAST.match
        pos = self.ws(0)
        path = ""
        while True:
            # ---- one value starting at `pos`, whose key path is `path`
            if pos >= n:
                self.fail_eof()
            ch = text[pos]
            if ch == '"':
                m = _STR_FAST.match(text, pos)
                if m:
                    i = bisect_right(starts, pos)
                    node = Node(m.group(1), Loc(file, i, pos - starts[i - 1] + 1, path))
                    pos = m.end()
                else:
                    node = Node(None, loc(pos, path))
                    node.value, pos = self.string(pos)
            elif ch == "{" or ch == "[":
                if len(stack) >= MAX_DEPTH:
                    self.fail(pos, f"nesting is too deep (more than {MAX_DEPTH} levels)", "")
                start = loc(pos, path)
                pos = self.ws(pos + 1)
                if ch == "{":
                    node = Node({}, start, {})
                    if pos < n and text[pos] == "}":
                        pos += 1
                    else:
                        frame: list[Any] = [node, True, None]
                        stack.append(frame)
                        pos, path = self.key(pos, frame)
                        continue
                else:
                    node = Node([], start)
                    if pos < n and text[pos] == "]":
                        pos += 1
                    else:
                        stack.append([node, False, None])
                        path = start.path + "[0]"
                        continue
            elif ch in "-0123456789":
                node = Node(None, loc(pos, path))
                node.value, pos = self.number(pos)
            elif ch in _LITERALS and text.startswith(_LITERALS[ch][0], pos):
                word, value = _LITERALS[ch]
                node = Node(value, loc(pos, path))
                pos += len(word)
            else:
                self.fail(pos, f"expected a value, found {self.found(pos)}")

            # ---- the value is complete: hand it to the enclosing containers
            while stack:
                frame = stack[-1]
                parent = frame[0]
                m = _SEP.match(text, pos)
                sep = m.group(1) if m else ""
                if frame[1]:
                    parent.value[frame[2]] = node
                    if sep == ",":
                        pos = m.end()
                        km = key_fast(text, pos)
                        key = km.group(1) if km else None
                        if key is None or key in parent.key_locs:
                            pos, path = self.key(pos, frame, m.start(1))
                        else:  # fast path of self.key()
                            ppath = parent.loc.path
                            path = f"{ppath}.{key}" if ppath else key
                            i = bisect_right(starts, pos)
                            parent.key_locs[key] = Loc(file, i, pos - starts[i - 1] + 1, path)
                            frame[2] = key
                            pos = km.end()
                        break
                    if sep != "}":
                        self.expected(pos, "',' or '}' after object member")
                else:
                    items = parent.value
                    items.append(node)
                    if sep == ",":
                        pos = m.end()
                        if pos < n and text[pos] == "]":
                            self.fail(
                                m.start(1), "trailing comma before ']' is not allowed in JSON"
                            )
                        path = f"{parent.loc.path}[{len(items)}]"
                        break
                    if sep != "]":
                        self.expected(pos, "',' or ']' after list element")
                pos = m.end()
                stack.pop()
                node = parent
            else:
                break

        pos = self.ws(pos)
        if pos < n:
            self.fail(pos, f"trailing data after the JSON value, found {self.found(pos)}")
        if self.problems:
            raise TemplateError(self.problems)
        return node

    def expected(self, pos: int, what: str) -> NoReturn:
        pos = self.ws(pos)
        if pos >= self.n:
            self.fail_eof()
        self.fail(pos, f"expected {what}, found {self.found(pos)}")


def parse_json_value(text: str, file: str) -> Node:
    """Parse any JSON value (the top level need not be an object)."""
    if text.startswith("\ufeff"):
        text = text[1:]
    return _JSONParser(text, file).parse()


def parse_json(text: str, file: str) -> Node:
    """Parse a JSON template; the top level must be an object."""
    if text.startswith("\ufeff"):
        text = text[1:]
    parser = _JSONParser(text, file)
    node = parser.parse()
    if not node.is_map:
        raise TemplateError(
            Problem(
                node.loc,
                f"a template must be a JSON object at the top level, not {_a(node.type_name())}",
                snippet=parser.lines.snippet(node.loc.line, node.loc.col),
            )
        )
    return node


# --------------------------------------------------------------------------------------
# YAML (its own module, imported only when a YAML file is read)


def parse_yaml(text: str, file: str) -> Node:
    """Parse a YAML template; the top level must be a mapping."""
    from .parse_yaml import parse_yaml as _parse

    return _parse(text, file)
