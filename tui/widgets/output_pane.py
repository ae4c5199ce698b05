"""The output pane: the view, its title bar and search/filter line."""

from __future__ import annotations

from typing import Callable

from rich.text import Text
from textual.containers import Horizontal, Vertical
from textual.widget import Widget
from textual.widgets import Input, Static

from .output import SEPARATOR, OutputView


class BarText(Widget):
    """One line of text that redraws without a layout pass (it changes several times a second)."""

    DEFAULT_CSS = "BarText { height: 1; }"

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self.text = Text()

    def set(self, text: Text) -> None:
        if text != self.text:
            self.text = text
            self.refresh()

    def render(self) -> Text:
        return self.text


class OutputPane(Vertical):
    """Title, sticky failure summary, the view, and a status bar with the "+N new lines" badge."""

    ALLOW_MAXIMIZE = True  # z zooms it

    DEFAULT_CSS = """
    OutputPane { height: 1fr; }
    OutputPane > #summary {
        display: none;
        height: auto;
        max-height: 9;
        padding: 0 1;
        background: $error 15%;
        border-left: thick $error;
    }
    OutputPane > #summary.-paused { background: $warning 15%; border-left: thick $warning; }
    OutputPane > #summary.-kept { background: $warning 15%; border-left: thick $warning; }
    OutputPane > #summary.-shown { display: block; }
    OutputPane > OutputView { height: 1fr; }
    OutputPane > #bar { height: 1; background: $panel; }
    OutputPane > #bar > #info { width: 1fr; color: $foreground-muted; padding: 0 1; }
    OutputPane > #bar > #badge { width: 36; padding: 0 1; text-align: right; }
    OutputPane > #bar > #badge.-paused { background: $warning; color: $background; text-style: bold; }
    OutputPane > #prompt { display: none; height: 1; border: none; padding: 0 1; }
    OutputPane > #prompt.-shown { display: block; }
    """

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self.prompt_kind = ""
        self.on_save_path: Callable[[str], None] | None = None
        self._summary: tuple[Text | None, str] = (None, "")

    def compose(self):
        # kept as attributes: the app may still update them while the screen is closing
        self.summary = Static(id="summary")
        self.view = OutputView(id="view")
        self.info = BarText(id="info")
        self.badge = BarText(id="badge")
        self.prompt = Input(id="prompt")
        yield self.summary
        yield self.view
        with Horizontal(id="bar"):
            yield self.info
            yield self.badge
        yield self.prompt

    def set_summary(self, text: Text | None, kind: str = "failed") -> None:
        if (text, kind) == self._summary:
            return
        self._summary = (text, kind)
        s = self.summary
        if text is None:
            s.remove_class("-shown")
            return
        s.update(text)
        s.set_class(kind == "paused", "-paused")
        s.set_class(kind == "kept", "-kept")
        s.add_class("-shown")

    def update_bar(self) -> None:
        v = self.view
        info = self.info
        badge = self.badge
        if v.static:
            info.set(Text())
            badge.set(Text())
            badge.remove_class("-paused")
            return
        parts = []
        if v.buffer is not None and v.buffer.base:
            parts.append(f"{v.buffer.base:,} earlier lines only in the log file")
        if v.filter:
            parts.append(
                f"filter “{v.filter}”: {sum(1 for r in v._frows if r != SEPARATOR):,} lines"
            )
        if v.search:
            i, n = v.match_position()
            parts.append(f"“{v.search}”: {i}/{n} (n/N)" if n else f"“{v.search}”: no match")
        if not parts:
            parts.append(f"{v.row_count:,} lines")
        info.set(Text("  ·  ".join(parts), no_wrap=True, overflow="ellipsis"))
        if not v.follow:
            n = v.new_lines
            msg = f"+{n:,} new lines · end to follow" if n else "paused · end to follow"
            badge.set(Text(msg, justify="right"))
            badge.add_class("-paused")
        else:
            badge.set(Text("following" if v.buffer is not None else "", justify="right"))
            badge.remove_class("-paused")

    def open_prompt(self, kind: str, value: str = "") -> None:
        self.prompt_kind = kind
        p = self.prompt
        p.placeholder = {
            "search": "search the output (enter: find, escape: close)",
            "filter": "keep only lines containing… (empty: show all)",
            "save": "save the log to this file",
        }.get(kind, "")
        p.value = value
        p.add_class("-shown")
        p.focus()

    def close_prompt(self) -> None:
        self.prompt_kind = ""
        p = self.prompt
        p.remove_class("-shown")
        self.view.focus()

    def on_output_view_changed(self, _: OutputView.Changed) -> None:
        self.update_bar()

    def on_output_view_prompt(self, msg: OutputView.Prompt) -> None:
        v = self.view
        if msg.kind == "search":
            self.open_prompt("search", v.search)
        elif msg.kind == "filter":
            self.open_prompt("filter", v.filter)

    def on_key(self, event) -> None:
        if event.key == "escape" and self.prompt_kind:
            event.stop()
            self.close_prompt()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        kind, value = self.prompt_kind, event.value
        v = self.view
        if kind == "search":
            self.close_prompt()
            if value and not v.set_search(value):
                self.notify(f"“{value}” is not in this output", severity="warning", timeout=3)
        elif kind == "filter":
            self.close_prompt()
            v.set_filter(value)
        elif kind == "save":
            self.close_prompt()
            if value.strip() and self.on_save_path is not None:
                self.on_save_path(value.strip())
