"""Cancellation: one token per run (and per build), polled by steps and heard by commands."""

from __future__ import annotations

import threading
from typing import Callable

from .errors import Cancelled


class CancelToken:
    """Set once; wakes waiters and calls every registered callback (kill a process...)."""

    def __init__(self, parent: CancelToken | None = None):
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._callbacks: dict[int, Callable[[], None]] = {}
        self._next = 0
        self.reason = ""
        if parent is not None:
            parent.on_cancel(lambda: self.cancel(parent.reason))

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def cancel(self, reason: str = "cancelled") -> None:
        with self._lock:
            if self._event.is_set():
                return
            self.reason = reason
            self._event.set()
            callbacks = list(self._callbacks.values())
        for cb in callbacks:
            try:
                cb()
            except Exception:  # a failing kill must not stop the others
                pass

    def on_cancel(self, cb: Callable[[], None]) -> Callable[[], None]:
        """Register ``cb``; returns a function that unregisters it. Runs now if already set."""
        with self._lock:
            if not self._event.is_set():
                key = self._next
                self._next += 1
                self._callbacks[key] = cb
                return lambda: self._callbacks.pop(key, None)
        cb()
        return lambda: None

    def check(self) -> None:
        if self._event.is_set():
            raise Cancelled(self.reason or "cancelled")

    def wait(self, timeout: float | None) -> bool:
        """Sleep up to ``timeout`` seconds; True if cancelled meanwhile."""
        return self._event.wait(timeout)

    def sleep(self, seconds: float) -> None:
        """Sleep, raising Cancelled as soon as the token is set."""
        if self._event.wait(seconds):
            raise Cancelled(self.reason or "cancelled")
