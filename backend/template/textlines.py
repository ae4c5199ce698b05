"""What the JSON and YAML readers share: their limits, line positions and caret snippets."""

from __future__ import annotations

import re
from bisect import bisect_right

from .errors import caret_snippet

MAX_DEPTH = 256
MAX_ALIAS_EXPANSION = 100_000  # extra values YAML aliases may create ("billion laughs" guard)



def _line_col(text: str, pos: int) -> tuple[int, int]:
    """1-based line and column of ``text[pos]``, counting only ``\\n`` as a line break."""
    line_start = text.rfind("\n", 0, pos) + 1
    return text.count("\n", 0, pos) + 1, pos - line_start + 1


_JSON_BREAKS = re.compile(r"\n")
_YAML_BREAKS = re.compile("\r\n|[\n\r\x85\u2028\u2029]")
# Characters str.splitlines() (used by caret_snippet) would treat as line breaks.
_SPLITLINES_CHARS = re.compile("[\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")


# Shown as U+FFFD in snippets: control characters (which could drive the terminal) and
# lone surrogates (which cannot be printed or encoded).
_UNSHOWABLE = re.compile("[\x00-\x08\x0e-\x1f\x7f-\x9f\ud800-\udfff]")
_SNIPPET_WIDTH = 200  # caret_snippet clips lines to this many characters


class _Lines:
    """Line boundaries of a text, for positions and caret snippets."""

    __slots__ = ("text", "starts")

    def __init__(self, text: str, breaks: re.Pattern[str] = _JSON_BREAKS):
        self.text = text
        self.starts = [0]
        self.starts += [m.end() for m in breaks.finditer(text)]

    def line_col(self, pos: int) -> tuple[int, int]:
        i = bisect_right(self.starts, pos)
        return i, pos - self.starts[i - 1] + 1

    def line_text(self, line: int) -> str:
        """The text of a 1-based line, without its line break."""
        starts = self.starts
        seg = self.text[starts[line - 1] : starts[line] if line < len(starts) else len(self.text)]
        if seg.endswith("\r\n"):
            return seg[:-2]
        if seg and seg[-1] in "\n\r\x85\u2028\u2029":
            return seg[:-1]
        return seg

    def snippet(self, line: int, col: int) -> str:
        """``caret_snippet`` output, with line numbers that match ours.

        ``caret_snippet`` splits with ``str.splitlines()``, which knows more line
        breaks than JSON or YAML do, so hand it just the two relevant lines.
        """
        if not 1 <= line <= len(self.starts):
            return ""
        wanted = [self.line_text(i) for i in range(max(line - 1, 1), line + 1)]
        if col > _SNIPPET_WIDTH - 50 and len(wanted[-1]) > _SNIPPET_WIDTH:
            # A long (e.g. minified) line: show a window around the column.
            cut = col - 100
            wanted = ["..." + s[cut:] if len(s) > cut else "" for s in wanted]
            col -= cut - 3
        wanted = [_UNSHOWABLE.sub("\ufffd", _SPLITLINES_CHARS.sub(" ", s)) for s in wanted]
        if not wanted[-1]:
            wanted[-1] = " "  # caret_snippet drops a trailing empty line (and its caret)
        excerpt = "\n" * (line - len(wanted)) + "\n".join(wanted)
        return caret_snippet(excerpt, line, col)


def _a(type_name: str) -> str:
    if type_name == "null":
        return "null"
    return ("an " if type_name[0] in "aeiou" else "a ") + type_name


def _describe_char(c: str) -> str:
    if c == "'":
        return '"\'"'
    if c.isprintable() and not c.isspace():
        return f"'{c}'"
    return f"U+{ord(c):04X}"
