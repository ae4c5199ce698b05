"""The output pane: a line-based view over a build's :class:`OutputBuffer`.

Like Textual's ``Log`` (and Toolong's ``LogLines``) it stores plain lines and
renders only the rows on screen, so it keeps up with hundreds of thousands of
lines a second. ANSI colours are rendered with ``Text.from_ansi`` for visible
rows only; nothing is ever read as Rich/Textual markup, so ``[bold red]`` shows
as written. It follows the tail until the user scrolls up, then counts the new
lines ("+N new lines") until ``end`` resumes following.


The pane around it (title bar, search line) is in output_pane.py."""

from __future__ import annotations

import time
from bisect import bisect_left, bisect_right
from collections import deque
from typing import Callable, Iterable

from rich.style import Style
from rich.text import Text
from textual.binding import Binding
from textual.cache import LRUCache
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

from .. import keys
from ..model import MARK, STDERR, STREAM_BITS, UI, UI_ERROR, OutputBuffer, clean, plain

GUTTER = 2


CONTEXT = 2  # lines of context around filter matches


SEPARATOR = -1  # a row standing for "lines left out here" in a filtered view


MISSING = -2  # a row whose line is no longer in memory (dropped since the last sync)


FLOOD_LINES = 2000  # new lines in one tick that make it a flood


FLOOD_PERIOD = 0.1  # seconds between repaints during a flood


class OutputView(ScrollView, can_focus=True):
    """Rows of one build's output: all of it, or one stage's, optionally filtered."""

    COMPONENT_CLASSES = {
        "output--stderr",
        "output--ui",
        "output--ui-error",
        "output--mark",
        "output--match",
        "output--match-current",
        "output--separator",
    }
    DEFAULT_CSS = """
    OutputView {
        background: $surface;
        scrollbar-gutter: stable;
    }
    OutputView > .output--stderr { color: $error; text-style: dim; }
    OutputView > .output--ui { color: $accent; text-style: bold; }
    OutputView > .output--ui-error { color: $error; text-style: bold; }
    OutputView > .output--mark { color: $text-secondary; }
    OutputView > .output--match { background: $warning 40%; }
    OutputView > .output--match-current { background: $warning; color: $background; }
    OutputView > .output--separator { color: $text-muted; }
    """
    BINDINGS = [
        Binding("up", "scroll_up", "Up", show=False),
        Binding("down", "scroll_down", "Down", show=False),
        Binding("pageup", "page_up", "Page up", show=False),
        Binding("pagedown", "page_down", "Page down", show=False),
        Binding("left", "scroll_left", "Left", show=False),
        Binding("right", "scroll_right", "Right", show=False),
        *keys.bindings("output"),
    ]

    class Changed(Message):
        """Follow state, new-line count, search or filter changed (the pane redraws its bar)."""

        def can_replace(self, message: Message) -> bool:
            return isinstance(message, OutputView.Changed)  # a burst of them: one redraw

    class Prompt(Message):
        """The user asked for the search, filter or save prompt."""

        def __init__(self, kind: str) -> None:
            super().__init__()
            self.kind = kind

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.buffer: OutputBuffer | None = None
        self.stage: int | None = None
        self.follow = True
        self.new_lines = 0
        self.search = ""
        self.filter = ""
        self.match_abs: int | None = None
        self.on_save: Callable[[], None] | None = None
        self.on_copy: Callable[[], None] | None = None
        self.on_scope: Callable[[], None] | None = None
        self.static = False  # a help or problems text, not a build's output
        self._rows_src: list[int] | None = None  # None: every line of the buffer
        self._frows: list[int] = []  # filtered rows (absolute indexes, SEPARATOR)
        self._fed = 0  # absolute index up to which the filter has seen lines
        self._recent: deque[int] = deque(maxlen=CONTEXT)
        self._skipped = 0
        self._after = 0
        self._seen_total = 0
        self._seen_base = 0
        self._count = 0
        self._cache: LRUCache[tuple[int, bool], Strip] = LRUCache(1024)
        self._crop_cache: LRUCache[tuple[int, bool, int, int], Strip] = LRUCache(512)
        self._base_style: Style | None = None
        self._moving = False
        self._stick_pending = False
        self._sync_pending = False
        self._synced_at = 0.0
        self._match_cache: tuple[tuple, tuple[int, int]] | None = None
        # wrapped lines (Kiln's messages; all of a static text): line rows that take more
        # than one screen row, how many more, and prefix sums to map rows both ways
        self._wrap_width = 0
        self._wrap_fed = 0  # absolute index up to which message lines were measured
        self._wrap_rows: list[int] = []
        self._wrap_extra: list[int] = []
        self._wrap_cum: list[int] = [0]
        self._wrap_vstart: list[int] = []
        self._wrap_abs: set[int] = set()
        self._wrap_cache: LRUCache[tuple[int, bool, int], list[Strip]] = LRUCache(256)

    # -- what is shown ------------------------------------------------------------------
    def show(
        self,
        buffer: OutputBuffer | None,
        stage: int | None = None,
        *,
        keep_filter: bool = True,
        static: bool = False,
    ) -> None:
        """Show ``buffer`` (one stage of it, or all when ``stage`` is None) from its end."""
        same = buffer is self.buffer and stage == self.stage
        self.static = static
        self.buffer = buffer
        self.stage = stage
        if not keep_filter:
            self.filter = ""
            self.search = ""
        self._rows_src = None if buffer is None or stage is None else buffer.rows_of(stage)
        self._cache.clear()
        self._crop_cache.clear()
        self._wrap_cache.clear()
        self.match_abs = None
        self._refilter()
        self._seen_total = buffer.total if buffer else 0
        self._seen_base = buffer.base if buffer else 0
        self._count = self.row_count
        self._rewrap()
        self._set_virtual_size()
        if not same:
            self.follow = not static  # a text is read from its top, a build's output followed
            self.new_lines = 0
            if static:
                self.scroll_home(animate=False, immediate=True)
        if self.follow:
            self._to_end()
        self.refresh()
        self.post_message(self.Changed())

    @property
    def row_count(self) -> int:
        b = self.buffer
        if b is None:
            return 0
        if self.filter:
            return len(self._frows)
        if self._rows_src is None:
            return len(b.lines)
        return len(self._rows_src)

    def abs_at(self, row: int) -> int:
        """Absolute line index shown at ``row``: SEPARATOR for a filter's gap, MISSING for a
        line the buffer dropped since the view last synced (the mapping is the synced one)."""
        b = self.buffer
        if b is None or row < 0:
            return MISSING
        if self.filter:
            if row >= len(self._frows):
                return MISSING
            a = self._frows[row]
            if a == SEPARATOR:
                return a
        elif self._rows_src is None:
            a = self._seen_base + row
        else:
            if row >= len(self._rows_src):
                return MISSING
            a = self._rows_src[row]
        return a if b.base <= a < b.total else MISSING

    def row_of(self, a: int) -> int | None:
        """The row showing absolute line ``a`` (or the nearest after it)."""
        if self.buffer is None:
            return None
        if self.filter:
            rows = [r for r in self._frows if r != SEPARATOR]
            k = bisect_left(rows, a)
            if k >= len(rows):
                return None
            return self._frows.index(rows[k])
        if self._rows_src is None:
            return a - self._seen_base if a >= self._seen_base else 0
        k = bisect_left(self._rows_src, a)
        return k if k < len(self._rows_src) else None

    def source_rows(self) -> Iterable[int]:
        b = self.buffer
        if b is None:
            return ()
        if self._rows_src is None:
            return range(b.base, b.total)
        return self._rows_src

    def visible_abs(self) -> list[int]:
        """Absolute indexes of the rows shown (after the filter), separators left out."""
        return [a for a in map(self.abs_at, range(self._count)) if a >= 0]

    # -- new lines ----------------------------------------------------------------------
    def sync(self) -> None:
        """The buffer got lines (or dropped old ones): update size, follow, count, badge.

        In a flood (thousands of lines a tick) the view repaints at most 10 times a
        second; nobody reads that fast, and each repaint costs the engine CPU time.
        """
        b = self.buffer
        if b is None or (b.total == self._seen_total and b.base == self._seen_base):
            return
        now = time.monotonic()
        if b.total - self._seen_total > FLOOD_LINES and now - self._synced_at < FLOOD_PERIOD:
            if not self._sync_pending:
                self._sync_pending = True
                self.set_timer(FLOOD_PERIOD, self._pending_sync)
            return
        self._synced_at = now
        anchor = None
        if not self.follow and self._count:
            top = min(self._v2l(int(self.scroll_y))[0], self._count - 1)
            anchor = self._anchor_abs(top)
        if self.filter:
            new = self._new_source_lines()
            self._feed(new)
            if b.base != self._seen_base:
                k = 0
                while k < len(self._frows) and (
                    self._frows[k] == SEPARATOR or self._frows[k] < b.base
                ):
                    k += 1
                del self._frows[:k]
        before = self._count
        pruned = b.base != self._seen_base
        self._seen_total = b.total
        self._seen_base = b.base
        self._count = self.row_count
        if pruned:
            self._rewrap()
        else:
            self._wrap_feed()
        self._set_virtual_size()
        if self.follow:
            self._to_end()
        else:
            added = self._count - before
            if pruned and anchor is not None:
                row = self.row_of(anchor)
                y = self._l2v(row or 0)
                added += max(0, int(self.scroll_y) - y)
                self._moving = True
                try:
                    self.scroll_to(y=y, animate=False, immediate=True, force=True)
                finally:
                    self._moving = False
            if added > 0:
                self.new_lines += added
                self.post_message(self.Changed())
        self.refresh()

    def _pending_sync(self) -> None:
        self._sync_pending = False
        self._synced_at = 0.0
        self.sync()

    def _anchor_abs(self, row: int) -> int | None:
        for r in range(row, min(row + 5, self._count)):
            a = self.abs_at(r)
            if a >= 0:
                return a
        return None

    def _new_source_lines(self) -> Iterable[int]:
        b = self.buffer
        assert b is not None
        start = max(self._fed, b.base)
        if self._rows_src is None:
            return range(start, b.total)
        k = bisect_left(self._rows_src, start)
        return self._rows_src[k:]

    def _set_virtual_size(self) -> None:
        """Grow the scrollable size without a layout pass of the whole screen.

        Setting ``virtual_size`` normally lays out every widget again (Textual's
        Log does this on each write); at 20 updates a second that is most of the
        cost of streaming output. Only a scrollbar appearing or going needs it.
        """
        width = GUTTER + (self.buffer.width if self.buffer else 0)
        if self.buffer is not None and self.buffer.wrap_all:
            width = 0  # every line wraps: nothing to scroll sideways
        size = Size(width, self._count + self._wrap_cum[-1])
        if size == self.virtual_size:
            return
        if not self.is_mounted or not self.container_size:
            self.virtual_size = size
            return
        shown = (self.show_horizontal_scrollbar, self.show_vertical_scrollbar)
        self.set_reactive(OutputView.virtual_size, size)
        self._scroll_update(size)  # scrollbar visibility and thumb sizes (textual 8.2.8, pinned)
        if (self.show_horizontal_scrollbar, self.show_vertical_scrollbar) != shown:
            self.refresh(layout=True)
        else:
            self.refresh()

    def _to_end(self) -> None:
        self._moving = True
        try:
            self.scroll_end(animate=False, immediate=True, x_axis=False, force=True)
        finally:
            self._moving = False
        if not self.follow or not self._stick_pending:
            # the layout (a scrollbar appearing) may move the end: stick to it after the refresh
            self._stick_pending = True
            self.call_after_refresh(self._stick)
        self.follow = True
        if self.new_lines:
            self.new_lines = 0
            self.post_message(self.Changed())

    def _stick(self) -> None:
        self._stick_pending = False
        if self.follow and self.scroll_y != self.max_scroll_y:
            self._moving = True
            try:
                self.scroll_end(animate=False, immediate=True, x_axis=False, force=True)
            finally:
                self._moving = False

    def on_resize(self) -> None:
        if self._wrap_target() != self._wrap_width:
            self._rewrap()
            self._set_virtual_size()
            self.refresh()
        if self.follow:
            self._to_end()

    # -- wrapping (Kiln's own messages, static texts) -------------------------------------
    def _wrap_target(self) -> int:
        return max(0, self.scrollable_content_region.width)

    def _rewrap(self) -> None:
        """Measure every message line in view again (a new buffer, stage, width or prune)."""
        self._wrap_width = self._wrap_target()
        self._wrap_rows, self._wrap_extra, self._wrap_cum = [], [], [0]
        self._wrap_vstart, self._wrap_abs = [], set()
        self._wrap_cache.clear()
        b = self.buffer
        self._wrap_fed = b.base if b is not None else 0
        self._wrap_feed()

    def _wrap_feed(self) -> None:
        """Measure the message lines that arrived since the last call (they come last)."""
        b = self.buffer
        width = self._wrap_width
        if b is None or self.filter or width <= GUTTER + 4:
            if b is not None:
                self._wrap_fed = b.total
            return
        msgs = b.msg_rows
        if not msgs or msgs[-1] < self._wrap_fed:
            self._wrap_fed = b.total
            return
        k = bisect_left(msgs, max(self._wrap_fed, b.base))
        stage = self.stage
        for a in msgs[k:]:
            if len(b.lines[a - b.base]) + GUTTER <= width and "\t" not in b.lines[a - b.base]:
                continue  # fits (a cheap test first: most messages are short)
            if stage is not None and (b.code(a) >> STREAM_BITS) - 1 != stage:
                continue
            rows = len(self._wrapped(a, False))
            if rows <= 1:
                continue
            row = self.row_of(a)
            if row is None:
                continue
            self._wrap_rows.append(row)
            self._wrap_extra.append(rows - 1)
            self._wrap_vstart.append(row + self._wrap_cum[-1])
            self._wrap_cum.append(self._wrap_cum[-1] + rows - 1)
            self._wrap_abs.add(a)
        self._wrap_fed = b.total

    def _wrapped(self, a: int, current: bool) -> list[Strip]:
        key = (a, current, self._wrap_width)
        strips = self._wrap_cache.get(key)
        if strips is None:
            text = self._text_of(a, self.base_style)
            text.no_wrap, text.overflow = False, "fold"  # words first; a long path folds
            lines = text.wrap(
                self.app.console, max(1, self._wrap_width - GUTTER), overflow="fold"
            )
            strips = []
            for i, line in enumerate(lines):
                line.no_wrap, line.end = True, ""
                pad = Text(" " * GUTTER) if i else Text("")
                row = Text.assemble(pad, line, no_wrap=True, end="")
                row.stylize_before(self.base_style)
                strips.append(Strip(row.render(self.app.console), row.cell_len))
            self._wrap_cache[key] = strips
        return strips

    def _v2l(self, v: int) -> tuple[int, int]:
        """Screen row -> (line row, row within that line)."""
        k = bisect_right(self._wrap_vstart, v) - 1
        if k < 0:
            return v, 0
        start, extra = self._wrap_vstart[k], self._wrap_extra[k]
        if v <= start + extra:
            return self._wrap_rows[k], v - start
        return v - self._wrap_cum[k + 1], 0

    def _l2v(self, row: int) -> int:
        """Line row -> the screen row where it starts."""
        return row + self._wrap_cum[bisect_left(self._wrap_rows, row)]

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        if self._moving:
            return
        if new_value >= self.max_scroll_y:
            if not self.follow or self.new_lines:
                self.follow = True
                self.new_lines = 0
                self.post_message(self.Changed())
        elif new_value < old_value and self.follow:
            self.follow = False
            self.post_message(self.Changed())

    # -- filter (keeps CONTEXT lines around each match) ------------------------------------
    def _refilter(self) -> None:
        self._frows = []
        self._recent.clear()
        self._skipped = 0
        self._after = 0
        self._fed = self.buffer.base if self.buffer else 0
        if self.filter and self.buffer is not None:
            self._feed(self.source_rows())

    def _feed(self, rows: Iterable[int]) -> None:
        b = self.buffer
        if b is None or not self.filter:
            return
        term = self.filter.casefold()
        out = self._frows
        recent = self._recent
        last = self._fed - 1
        for a in rows:
            last = a
            if term in plain(b.line(a)).casefold():
                if out and self._skipped > len(recent):
                    out.append(SEPARATOR)
                out.extend(recent)
                recent.clear()
                out.append(a)
                self._skipped = 0
                self._after = CONTEXT
            elif self._after > 0:
                out.append(a)
                self._after -= 1
            else:
                recent.append(a)
                self._skipped += 1
        self._fed = last + 1

    def set_filter(self, term: str) -> None:
        self.filter = term
        self._cache.clear()
        self._crop_cache.clear()
        self._wrap_cache.clear()
        self._refilter()
        self._count = self.row_count
        self._rewrap()
        self._set_virtual_size()
        self.follow = True
        self.new_lines = 0
        self._to_end()
        self.refresh()
        self.post_message(self.Changed())

    # -- search -----------------------------------------------------------------------
    def set_search(self, term: str) -> bool:
        self.search = term
        self.match_abs = None
        self._cache.clear()
        self._crop_cache.clear()
        self._wrap_cache.clear()
        self.refresh()
        found = bool(term) and self.find(forward=True, from_top=not self.follow)
        self.post_message(self.Changed())
        return found

    def find(self, forward: bool = True, from_top: bool = False) -> bool:
        """Move to the next (previous) line containing the search term; wraps around."""
        b = self.buffer
        if not self.search or b is None or not self._count:
            return False
        term = self.search.casefold()
        n = self._count
        if self.match_abs is not None and (cur := self.row_of(self.match_abs)) is not None:
            start = cur
        elif from_top:
            top = self._v2l(int(self.scroll_y))[0]
            start = top - 1 if forward else self._v2l(int(self.scroll_y) + self.size.height)[0]
        else:
            start = n if forward else n
        step = 1 if forward else -1
        for i in range(1, n + 1):
            row = (start + step * i) % n
            a = self.abs_at(row)
            if a >= 0 and term in plain(b.line(a)).casefold():
                self.match_abs = a
                self._cache.clear()
                self._crop_cache.clear()
                self._wrap_cache.clear()
                self.scroll_to_row(row)
                self.post_message(self.Changed())
                return True
        return False

    def match_position(self) -> tuple[int, int]:
        """(index of the current match among matching lines, number of matching lines).

        Counted when the search or the current match changes, not on every new line.
        """
        b = self.buffer
        if not self.search or b is None:
            return (0, 0)
        key = (self.search, self.match_abs, self.filter, self.stage, id(b))
        if self._match_cache is not None and self._match_cache[0] == key:
            return self._match_cache[1]
        pos = self._count_matches()
        self._match_cache = (key, pos)
        return pos

    def _count_matches(self) -> tuple[int, int]:
        b = self.buffer
        assert b is not None
        term = self.search.casefold()
        hits = [
            a
            for a in map(self.abs_at, range(self._count))
            if a >= 0 and term in plain(b.line(a)).casefold()
        ]
        if self.match_abs in hits:
            return (hits.index(self.match_abs) + 1, len(hits))
        return (0, len(hits))

    def scroll_to_row(self, row: int, center: bool = True) -> None:
        """Show ``row`` (centred); this pauses following unless the row is at the end."""
        h = max(1, self.size.height)
        v = self._l2v(row)
        y = max(0, v - h // 2) if center else v
        if y < self.max_scroll_y:
            self.follow = False
        self._moving = True
        try:
            self.scroll_to(y=y, animate=False, immediate=True, force=True)
        finally:
            self._moving = False
        if self.scroll_y >= self.max_scroll_y:
            self.follow = True
            self.new_lines = 0
        self.refresh()
        self.post_message(self.Changed())

    def scroll_to_abs(self, a: int) -> None:
        row = self.row_of(a)
        if row is not None:
            self.scroll_to_row(row)

    # -- actions ----------------------------------------------------------------------
    def action_follow(self) -> None:
        self._to_end()
        self.refresh()
        self.post_message(self.Changed())

    def action_top(self) -> None:
        self.scroll_to_row(0, center=False)

    def action_search(self) -> None:
        self.post_message(self.Prompt("search"))

    def action_filter(self) -> None:
        self.post_message(self.Prompt("filter"))

    def action_next_match(self) -> None:
        if not self.search:
            self.post_message(self.Prompt("search"))
        elif not self.find(forward=True):
            self.app.bell()

    def action_previous_match(self) -> None:
        if not self.search:
            self.post_message(self.Prompt("search"))
        elif not self.find(forward=False):
            self.app.bell()

    def action_clear(self) -> None:
        if self.filter:
            self.set_filter("")
        if self.search:
            self.set_search("")

    def action_copy(self) -> None:
        if self.on_copy:
            self.on_copy()

    def action_save(self) -> None:
        if self.on_save:
            self.on_save()

    def action_toggle_scope(self) -> None:
        if self.on_scope:
            self.on_scope()

    def text_of_view(self, limit: int = 20_000) -> tuple[str, int]:
        """Plain text of the rows shown (the last ``limit``), and how many were left out."""
        b = self.buffer
        if b is None:
            return "", 0
        rows = [a for a in map(self.abs_at, range(self._count)) if a >= 0]
        left_out = max(0, len(rows) - limit)
        rows = rows[left_out:]
        return "\n".join(_copy_text(b, a) for a in rows) + "\n", left_out

    # -- rendering --------------------------------------------------------------------
    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._cache.clear()
        self._crop_cache.clear()
        self._wrap_cache.clear()
        self._base_style = None

    @property
    def base_style(self) -> Style:
        """``rich_style`` walks every ancestor on each call: computed once per style change."""
        if self._base_style is None:
            self._base_style = self.rich_style
        return self._base_style

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        row, sub = self._v2l(scroll_y + y)
        width = self.size.width
        base = self.base_style
        if self.buffer is None or row >= self._count or row < 0:
            return Strip.blank(width, base)
        a = self.abs_at(row)
        if a == MISSING:
            return Strip.blank(width, base)
        current = a == self.match_abs
        if a in self._wrap_abs:
            strips = self._wrapped(a, current)
            if sub >= len(strips):
                return Strip.blank(width, base)
            return strips[sub].crop_extend(0, width, base)
        ckey = (a, current, scroll_x, width)
        cropped = self._crop_cache.get(ckey)
        if cropped is not None:
            return cropped
        key = (a, current)
        strip = self._cache.get(key)
        if strip is None:
            strip = self._render_abs(a, base)
            self._cache[key] = strip
        cropped = strip.crop_extend(scroll_x, scroll_x + width, base)
        self._crop_cache[ckey] = cropped
        return cropped

    def _render_abs(self, a: int, base: Style) -> Strip:
        full = self._text_of(a, base)
        return Strip(full.render(self.app.console), full.cell_len)

    def _text_of(self, a: int, base: Style) -> Text:
        """Line ``a`` as shown: gutter, ANSI styles, stream colours, search highlights."""
        get = self.get_component_rich_style
        if a == SEPARATOR:
            text = Text("  ┄┄┄", style=get("output--separator"), no_wrap=True, end="")
            text.stylize_before(base)
            return text
        b = self.buffer
        assert b is not None
        line = clean(b.line(a))
        stream = b.code(a) & 7
        if "\x1b" in line:
            text = Text.from_ansi(line, no_wrap=True, end="")
        else:
            text = Text(line, no_wrap=True, end="")
        if stream == STDERR:
            gutter = Text("▌ ", style=get("output--stderr"))
        elif stream == UI:
            gutter = Text("› ", style=get("output--ui"))
            text.stylize_before(Style(bold=True))
        elif stream == UI_ERROR:
            gutter = Text("✗ ", style=get("output--ui-error"))
            text.stylize_before(get("output--ui-error"))
        elif stream == MARK:
            gutter = Text("")
            text.stylize_before(get("output--mark"))
        else:
            gutter = Text("  ")
        if self.search:
            style = get("output--match-current") if a == self.match_abs else get("output--match")
            _highlight(text, self.search, style)
        full = Text.assemble(gutter, text, no_wrap=True, end="")
        full.stylize_before(base)
        return full


def _highlight(text: Text, term: str, style: Style) -> None:
    hay = text.plain.casefold()
    needle = term.casefold()
    if len(hay) != len(text.plain):  # casefold changed lengths (ß...): fall back to exact case
        hay, needle = text.plain, term
    start = 0
    while needle:
        i = hay.find(needle, start)
        if i < 0:
            break
        text.stylize(style, i, i + len(needle))
        start = i + len(needle)


def _copy_text(b: OutputBuffer, a: int) -> str:
    stream = b.code(a) & 7
    text = plain(b.line(a))
    if stream in (UI, UI_ERROR):
        return "==> " + text
    return text
