"""Events: everything observable about a run, and the bus that carries them.

The dashboard, the console printer, ``-machine-readable``, ``--events`` JSON
Lines, per-build log files and the SQLite history are all subscribers of one
stream. Every event has ``type``, ``ts`` (Unix seconds, float), ``seq`` (per run,
from 1) and ``run``; what else each type carries, and the status words, are declared
in :mod:`.schema` (one dataclass per event type, the ``Status`` enum).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable

from .schema import SCHEMA, Status  # noqa: F401 - SCHEMA: the stream's version, public here

STATUSES = tuple(s.value for s in Status)


@dataclass(slots=True)
class Event:
    type: str
    data: dict[str, Any]
    ts: float = field(default_factory=time.time)
    seq: int = 0
    run: str = ""

    def to_dict(self) -> dict[str, Any]:
        d = {"type": self.type, "ts": round(self.ts, 6), "seq": self.seq, "run": self.run}
        d.update(self.data)
        return d

    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)


Subscriber = Callable[[Event], None]


class EventBus:
    """Synchronous fan-out. Subscribers must be quick; slow ones queue internally.

    ``publish`` is thread-safe and keeps order: events are delivered under one
    lock, so every subscriber sees the same sequence. A late subscriber gets
    the history replayed (output is kept up to ``replay_output_lines`` lines
    per build; everything else in full).
    """

    def __init__(self, run_id: str = "", replay_output_lines: int = 20000):
        self.run_id = run_id
        self._lock = threading.RLock()
        self._subs: list[Subscriber] = []
        self._seq = 0
        self._history: list[Event] = []
        self._output: dict[str, deque[Event]] = {}
        self._output_lines: dict[str, int] = {}
        self._replay_cap = replay_output_lines
        self.errors: list[BaseException] = []
        #: views that failed (a full disk under the log...): their ``view_name`` -> first error
        self.failed_views: dict[str, BaseException] = {}

    def subscribe(self, sub: Subscriber, replay: bool = True) -> Callable[[], None]:
        with self._lock:
            if replay:
                for ev in self.replay():
                    self._deliver(sub, ev)
            self._subs.append(sub)
        return lambda: self.unsubscribe(sub)

    def unsubscribe(self, sub: Subscriber) -> None:
        with self._lock:
            if sub in self._subs:
                self._subs.remove(sub)

    def replay(self) -> list[Event]:
        with self._lock:
            out = list(self._history)
            for q in self._output.values():
                out.extend(q)
        out.sort(key=lambda e: e.seq)
        return out

    def publish(self, type: str, **data: Any) -> Event:
        with self._lock:
            self._seq += 1
            ev = Event(type, data, time.time(), self._seq, self.run_id)
            if type == "output":
                b = data.get("build", "")
                q = self._output.setdefault(b, deque())
                q.append(ev)
                n = self._output_lines.get(b, 0) + len(data.get("lines", ()))
                while n > self._replay_cap and len(q) > 1:
                    n -= len(q.popleft().data.get("lines", ()))
                self._output_lines[b] = n
            else:
                self._history.append(ev)
            for sub in self._subs:
                self._deliver(sub, ev)
            return ev

    def _deliver(self, sub: Subscriber, ev: Event) -> None:
        try:
            sub(ev)
        except Exception as e:  # one broken view must not stop a build
            self.errors.append(e)
            name = getattr(sub, "view_name", "")
            if name and name not in self.failed_views:
                self.failed_views[name] = e
