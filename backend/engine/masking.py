"""Secrets masked as ``<sensitive>``: in one text, and in output that arrives piece by piece.

A value may be printed across several lines (a PEM key, ``cat``-ed line by line) or cut
where a very long line is split into pieces; :class:`StreamMask` holds back just enough
of a stream's tail (the lines or characters that could be the start of a secret) to see
every value whole before anything is published.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable

MASK = "<sensitive>"
#: lines of a multi-line secret at least this long (and without spaces) are masked alone too
FRAGMENT_MIN = 16


class Masker:
    """The secret values of a build. Callable: ``masker(text)`` returns ``text`` masked.

    ``extra`` is a list that may grow while the build runs (``ctx.add_secret``); the
    tables are rebuilt when its length changes.
    """

    def __init__(self, values: Iterable[str] = (), extra: list[str] | None = None):
        self._base = [v for v in values if v]
        self.extra: list[str] = extra if extra is not None else []
        self._seen = -1
        self._lock = threading.Lock()
        self._values: list[str] = []
        self._starts: list[tuple[str, ...]] = []
        self.longest = 0
        self._refresh()

    def _refresh(self) -> None:
        if len(self.extra) == self._seen:
            return
        with self._lock:
            if len(self.extra) == self._seen:
                return
            self._seen = len(self.extra)
            found: set[str] = set()
            starts: list[tuple[str, ...]] = []
            for v in self._base + list(self.extra):
                # a value's leading or trailing newline is the line's end, not the secret
                core = v.strip("\r\n")
                if not core:
                    continue
                found.add(core)
                if "\n" in core:
                    lf = core.replace("\r\n", "\n")
                    for form in (core, lf, lf.replace("\n", "\r\n")):
                        found.add(form)
                    for line in lf.split("\n"):
                        line = line.strip()
                        if len(line) >= FRAGMENT_MIN and not any(c.isspace() for c in line):
                            found.add(line)
                    # the ways the value can stop at the end of a line: "l1\n", "l1\nl2\n"...
                    lines = lf.split("\n")
                    starts.append(tuple("\n".join(lines[:i]) + "\n" for i in range(1, len(lines))))
            self._values = sorted(found, key=len, reverse=True)
            self._starts = starts
            self.longest = len(self._values[0]) if self._values else 0

    @property
    def values(self) -> list[str]:
        self._refresh()
        return self._values

    def __call__(self, text: str) -> str:
        for s in self.values:
            if s in text:
                text = text.replace(s, MASK)
        return text

    def hold(self, text: str, partial: bool) -> int:
        """Where ``text`` can safely be cut: everything before the result holds no part of a
        secret that may continue after ``text`` ends."""
        values = self.values
        if not values:
            return len(text)
        cut = len(text)
        if partial:  # the line goes on: its last characters may start a secret
            line_start = text.rfind("\n") + 1
            cut = max(line_start, len(text) - (self.longest - 1))
        else:
            for starts in self._starts:
                for head in reversed(starts):  # the longest beginning that fits wins
                    if len(text) - len(head) < cut and text.endswith(head):
                        cut = len(text) - len(head)
                        break
        # never cut through a value that is already there whole
        moved = True
        while moved and cut > 0:
            moved = False
            for s in values:
                lo = max(0, cut - len(s) + 1)
                at = text.find(s, lo, cut + len(s) - 1)
                if 0 <= at < cut < at + len(s):
                    cut = at
                    moved = True
        return cut


class StreamMask:
    """Masks one output stream whose lines arrive in batches (and long lines in pieces).

    ``feed`` returns the lines that can be published now and whether the last of them
    is unfinished (a piece of a long line); ``flush`` returns what was held back.
    """

    def __init__(self, mask: Callable[[str], str]):
        self.mask = mask
        self._buf = ""

    def feed(self, lines: list[str], partial: bool = False) -> tuple[list[str], bool]:
        text = self._buf + "\n".join(lines) + ("" if partial else "\n")
        hold = getattr(self.mask, "hold", None)
        cut = hold(text, partial) if hold is not None else len(text)
        self._buf = text[cut:]
        return _lines(self.mask(text[:cut]))

    def flush(self) -> tuple[list[str], bool]:
        text, self._buf = self._buf, ""
        if not text:
            return [], False
        return _lines(self.mask(text))

    @property
    def holding(self) -> bool:
        return bool(self._buf)


def _lines(text: str) -> tuple[list[str], bool]:
    if not text:
        return [], False
    if text.endswith("\n"):
        return text[:-1].split("\n"), False
    return text.split("\n"), True
