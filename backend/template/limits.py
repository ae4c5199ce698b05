"""How much work and memory a template may make Kiln spend.

``kiln validate`` (and the dashboard, which validates every template of a directory)
must stay quick and small whatever a template says: a value doubled forty times, a
``format("%0999999999d", 1)``, a loop over a loop. Every rendered string and built
collection has a size limit, and while one template is loaded (a :func:`scope`) the
text rendered and the expression steps evaluated add up against a budget. Going over
is a located error, never a ``MemoryError`` or a hang.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

#: characters in one rendered string (a variable, a field, a function's result)
MAX_STRING = 16 * 1024 * 1024
#: elements of one list or map
MAX_ITEMS = 1_000_000
#: a width or precision in a format verb
MAX_WIDTH = 1024 * 1024
#: characters rendered, in all, while one template is loaded and checked
MAX_RENDERED = 128 * 1024 * 1024
#: expression steps evaluated while one template is loaded and checked
MAX_STEPS = 5_000_000


class LimitError(ValueError):
    """A template asked for more than Kiln's limits allow."""


def size_text(n: int) -> str:
    if n >= 1024 * 1024 and n % (1024 * 1024) == 0:
        return f"{n // (1024 * 1024)} MiB"
    return f"{n:,} characters"


class Budget:
    __slots__ = ("steps", "rendered", "exhausted")

    def __init__(self) -> None:
        self.steps = 0
        self.rendered = 0
        self.exhausted = False  # the step limit was reached (and said so once)

    def render(self, n: int) -> None:
        """Count ``n`` characters of rendered text."""
        self.rendered += n
        if self.rendered > MAX_RENDERED:
            raise LimitError(f"the template renders more than {size_text(MAX_RENDERED)} of "
                             "text in all (Kiln's limit); a value is probably repeated or "
                             "doubled many times")

    def too_many_steps(self) -> LimitError:
        return LimitError(f"evaluating the template takes more than {MAX_STEPS:,} steps "
                          "(Kiln's limit); look for loops over large collections")


_local = threading.local()


def current() -> Budget:
    """The budget of the template being loaded on this thread (a fresh one outside a
    :func:`scope`: then only the per-value limits apply across calls)."""
    b = getattr(_local, "budget", None)
    return b if b is not None else Budget()


@contextmanager
def scope() -> Iterator[Budget]:
    """One budget for everything done inside (nested scopes share the outer one)."""
    b = getattr(_local, "budget", None)
    if b is not None:
        yield b
        return
    b = _local.budget = Budget()
    try:
        yield b
    finally:
        _local.budget = None


def check_string(n: int, what: str = "the value") -> None:
    if n > MAX_STRING:
        raise LimitError(f"{what} would be {n:,} characters long, more than Kiln's limit of "
                         f"{size_text(MAX_STRING)}")


def check_items(n: int, what: str = "the collection") -> None:
    if n > MAX_ITEMS:
        raise LimitError(f"{what} would have {n:,} elements, more than Kiln's limit of "
                         f"{MAX_ITEMS:,}")


def check_width(n: int, what: str = "the width") -> None:
    if n > MAX_WIDTH:
        raise LimitError(f"{what} {n:,} is larger than Kiln's limit of {size_text(MAX_WIDTH)}")


def check_value(v: Any, what: str = "the value") -> None:
    """The size of one value itself (not of what it holds: that was checked as it was made)."""
    if isinstance(v, str):
        check_string(len(v), what)
    elif isinstance(v, (list, dict)):
        check_items(len(v), what)


def expanded_size(v: Any, limit: int) -> int:
    """How big ``v`` is written out (characters of strings plus elements), counting a value
    each time it is referenced; stops counting past ``limit``. Linear in the number of
    distinct values, however often they are shared."""
    memo: dict[int, int] = {}

    def size(x: Any) -> int:
        if isinstance(x, str):
            return len(x) + 2
        if isinstance(x, (list, dict)):
            key = id(x)
            got = memo.get(key)
            if got is not None:
                return got
            total = 2
            for item in (x.values() if isinstance(x, dict) else x):
                total += size(item) + 1
                if total > limit:
                    break
            if isinstance(x, dict):
                total += sum(len(k) + 3 for k in x)
            memo[key] = total
            return total
        return 8

    return size(v)


def check_expanded(args: Any, what: str) -> None:
    n = expanded_size(args, MAX_STRING)
    if n > MAX_STRING:
        raise LimitError(f"{what} would be more than {size_text(MAX_STRING)} written out "
                         "(Kiln's limit)")
