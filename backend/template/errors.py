"""Template problems: every one names file, line, column and key path."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable

from .source import Loc


@dataclass(frozen=True, slots=True)
class Problem:
    loc: Loc
    message: str
    severity: str = "error"  # or "warning"
    snippet: str = ""  # optional source excerpt (line + caret) shown under the message

    def format(self) -> str:
        head = str(self.loc)
        if self.loc.path:
            head += f": {self.loc.path}"
        text = f"{head}: {self.message}" if head else self.message
        if self.severity == "warning":
            text = f"{head}: warning: {self.message}"
        if self.snippet:
            text += "\n" + self.snippet
        return text


class TemplateError(Exception):
    """One or more problems that make a template unusable."""

    def __init__(self, problems: Iterable[Problem] | Problem | str, loc: Loc | None = None):
        if isinstance(problems, str):
            problems = [Problem(loc or Loc(""), problems)]
        elif isinstance(problems, Problem):
            problems = [problems]
        seen: set[tuple] = set()
        self.problems: list[Problem] = []
        for p in problems:  # the same problem found for several builds is shown once
            key = (p.loc.file, p.loc.line, p.loc.col, p.loc.path, p.message)
            if key not in seen:
                seen.add(key)
                self.problems.append(p)
        super().__init__(self.format())

    def format(self) -> str:
        return "\n".join(p.format() for p in self.problems)


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    """`` (did you mean "x"?)`` when a near name exists, else ``""``."""
    import difflib  # only when there is a problem to explain

    best = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.75)
    return f' (did you mean "{best[0]}"?)' if best else ""


def caret_snippet(text: str, line: int, col: int) -> str:
    """The offending line and the one before it, with a caret under ``col``."""
    lines = text.splitlines() or [""]
    out = []
    if 1 < line <= len(lines) + 1:
        out.append(f"{line - 1:5d}: {_clip(lines[line - 2])}")
    if 1 <= line <= len(lines):
        out.append(f"{line:5d}: {_clip(lines[line - 1])}")
        out.append(" " * (6 + max(col, 1)) + "^")
    return "\n".join(out)


def _clip(s: str, width: int = 200) -> str:
    s = s.replace("\t", " ")
    return s if len(s) <= width else s[: width - 3] + "..."


# C0 and C1 controls (ESC, NUL, OSC's BEL...), DEL, and the bidirectional overrides that
# make text read differently from what it is
_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_CONTROLS_ALL = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def _escape(m: re.Match[str]) -> str:
    c = ord(m.group(0))
    return f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}"


def printable(text: str, newlines: bool = True) -> str:
    """``text`` with control characters shown as ``\\x1b``-style escapes, so template text
    cannot move the cursor, retitle the terminal or hide itself; tabs and newlines stay
    unless ``newlines`` is False."""
    pattern = _CONTROLS if newlines else _CONTROLS_ALL
    return pattern.sub(_escape, text) if pattern.search(text) else text
