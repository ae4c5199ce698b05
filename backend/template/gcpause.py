"""Pause Python's cyclic garbage collector while a template is loaded and prepared.

Loading builds millions of small, acyclic objects (nodes, locations, configs) that all
stay alive; every full collection would walk all of them again, so with the collector
on, a 300,000-provisioner template spent half its time, and more the larger it got, in
collections that freed nothing. Reference counting still frees everything at once; the
collector resumes (and catches up) when the last loader on any thread is done.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_depth = 0
_resume = False


@contextmanager
def paused() -> Iterator[None]:
    global _depth, _resume
    with _lock:
        if _depth == 0:
            _resume = gc.isenabled()
            gc.disable()
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _resume:
                gc.enable()
