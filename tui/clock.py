"""The app's one clock: every elapsed time and "about N s left" reads it.

Tests pass a :class:`FakeClock` so snapshots do not change from run to run.
"""

from __future__ import annotations

import time


class Clock:
    def now(self) -> float:
        return time.time()


class FakeClock(Clock):
    """A clock that moves only when told to."""

    def __init__(self, start: float = 1_767_225_600.0):  # 2026-01-01T00:00:00Z
        self._now = start

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += seconds


def fmt_duration(seconds: float | None) -> str:
    """4.2s, 42s, 3m05s, 1h02m."""
    if seconds is None:
        return ""
    s = max(0.0, seconds)
    if s < 10:
        return f"{s:.1f}s"
    if s < 60:
        return f"{int(s)}s"
    if s < 3600:
        m, sec = divmod(int(s), 60)
        return f"{m}m{sec:02d}s"
    h, rest = divmod(int(s), 3600)
    return f"{h}h{rest // 60:02d}m"


def fmt_left(seconds: float) -> str:
    """'about 40 s left' / 'about 3 min left'."""
    s = max(1, round(seconds))
    if s < 60:
        return f"about {s} s left"
    return f"about {round(s / 60)} min left"


def fmt_ago(seconds: float) -> str:
    s = max(0, int(seconds))
    if s < 60:
        return "just now"
    if s < 3600:
        return f"{s // 60} min ago"
    if s < 86400:
        return f"{s // 3600} h ago"
    return f"{s // 86400} d ago"
