"""Engine threads -> UI thread: a thread-safe deque the UI drains on a timer.

Bus subscribers are called from engine threads, so they only append to a
deque (no locks held, no widget calls, never one ``call_from_thread`` per
line). The app drains it 20 times a second, at most ``max_lines`` output lines
per tick so a flood of output cannot freeze the screen; the rest waits for the
next tick, in order.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Callable

#: drain period of the UI timer (seconds)
DRAIN_INTERVAL = 0.05


class Bridge:
    def __init__(self, max_lines: int = 25_000):
        self._queue: deque[tuple[str, Any]] = deque()
        self.max_lines = max_lines
        self.delivered = 0  # output lines drained into the UI

    def subscriber(self, key: str) -> Callable[[Any], None]:
        """A bus subscriber tagging events with ``key`` (the dashboard's session id)."""
        append = self._queue.append

        def on_event(ev: Any) -> None:
            append((key, ev))

        return on_event

    def attach(self, key: str, bus: Any) -> Callable[[], None]:
        return bus.subscribe(self.subscriber(key), replay=True)

    def __len__(self) -> int:
        return len(self._queue)

    def drain(self, max_lines: int | None = None) -> list[tuple[str, Any]]:
        """Events in order, up to ``max_lines`` output lines (a big batch is split)."""
        budget = self.max_lines if max_lines is None else max_lines
        out: list[tuple[str, Any]] = []
        q = self._queue
        while q and budget > 0:
            key, ev = q.popleft()
            if ev.type == "output":
                lines = ev.data.get("lines") or ()
                n = len(lines)
                if n > budget:
                    head, rest = _split(ev, budget)
                    q.appendleft((key, rest))  # only this thread pops; producers append right
                    ev, n = head, budget
                budget -= n
                self.delivered += n
            out.append((key, ev))
        return out


def _split(ev: Any, n: int) -> tuple[Any, Any]:
    from ..backend.api import Event

    lines = ev.data["lines"]
    head = Event(ev.type, {**ev.data, "lines": lines[:n]}, ev.ts, ev.seq, ev.run)
    rest = Event(ev.type, {**ev.data, "lines": lines[n:]}, ev.ts, ev.seq, ev.run)
    return head, rest
