"""F1 / ?: every key (as remapped), what it does, its binding id, and where to remap it."""

from __future__ import annotations

from pathlib import Path

from rich.table import Table
from rich.text import Text
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from .. import keys

PANE_TIPS = {
    "templates": "Templates: the cursor picks what b, p, o, e and i act on; on a builder, b builds "
    "only that builder. / filters.",
    "builds": "Builds: this session's builds and recent ones from history. The cursor picks "
    "the build r, s, c, k and x act on.",
    "stages": "Stages: pick a stage to see only its output; the bar's length comes from "
    "earlier runs.",
    "output": "Output: scroll up to pause following (a badge counts new lines), end to follow "
    "again. / searches, n/N move between matches, f filters (keeping context).",
}


def display_key(key: str) -> str:
    names = {"question_mark": "?", "slash": "/", "escape": "esc", "shift+tab": "shift+tab"}
    return ", ".join(names.get(k.strip(), k.strip()) for k in key.split(","))


class HelpScreen(ModalScreen[None]):
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll {
        width: 110; max-width: 95%; height: auto; max-height: 95%;
        border: round $accent; background: $surface; padding: 0 1;
    }
    HelpScreen Static { width: 100%; }
    """
    BINDINGS = [Binding("escape,q,question_mark,f1", "dismiss", "Close", show=True)]

    def __init__(
        self,
        keymap: dict[str, str],
        config_dir: Path,
        focused: str = "",
        problems: list[str] | None = None,
    ) -> None:
        super().__init__()
        self.keymap = keymap
        self.config_dir = config_dir
        self.pane = focused
        self.problems = problems or []

    def compose(self):
        with VerticalScroll():
            yield Static(self._body(), id="help-body")

    def plain_text(self, width: int = 100) -> str:
        """The help as plain text (tests, and anyone who wants to grep it)."""
        import io

        from rich.console import Console

        console = Console(width=width, file=io.StringIO(), record=True, color_system=None)
        console.print(self._body())
        return console.export_text()

    def _body(self) -> Table:
        outer = Table.grid(padding=(0, 0))
        outer.add_column()
        outer.add_row(Text("Kiln dashboard keys", style="bold"))
        tip = PANE_TIPS.get(self.pane)
        if tip:
            outer.add_row(Text(tip, style="italic"))
        order = ["app", "templates", "output"]
        if self.pane in order:
            order.remove(self.pane)
            order.insert(0, self.pane)
        for scope in order:
            t = Table(box=None, show_header=False, pad_edge=False, padding=(0, 1), expand=True)
            t.add_column(width=16, style="bold")
            t.add_column(ratio=1)
            t.add_column(width=18, style="dim")
            for s in keys.SPECS:
                if s.scope != scope:
                    continue
                t.add_row(Text(display_key(self.keymap.get(s.id, s.key))), Text(s.help), Text(s.id))
            outer.add_row(Text(keys.SCOPE_TITLES[scope], style="bold underline"))
            outer.add_row(t)
        outer.add_row(
            Text("ctrl+p: every action by name · tab: next pane · arrows, page up/down: move")
        )
        outer.add_row(
            Text(
                'Remap keys in keys.toml (binding id = key, e.g. build = "B", retry = "ctrl+r,r"); '
                "targets for p in targets.toml"
            )
        )
        outer.add_row(
            Text(f"Config directory: {self.config_dir}", no_wrap=True, overflow="ellipsis")
        )
        for p in self.problems:
            outer.add_row(Text(p, style="bold"))
        return outer
