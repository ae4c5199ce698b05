"""The builds and stages panes (DataTables fed from the model, cells as Rich Text)."""

from __future__ import annotations

from typing import Mapping, Sequence

from rich.text import Text
from textual.message import Message
from textual.widgets import DataTable

from tui import status
from tui.clock import fmt_ago, fmt_duration, fmt_left
from tui.model import BuildModel, StageModel

BAR_WIDTH = 8


class SyncedTable(DataTable):
    """A DataTable redrawn from rows of Text cells, keeping the cursor on the same key.

    Cells are Rich ``Text`` (never strings: DataTable reads strings as markup and
    names from templates may contain brackets).
    """

    #: (label, key, width); one column has width None: it takes the room that is left
    COLUMNS: Sequence[tuple[str, str, int | None]] = ()
    FLEX_MIN = 10

    class Resized(Message):
        """The columns were rebuilt for a new width: the rows must be added again."""

    def __init__(self, **kw) -> None:
        super().__init__(cursor_type="row", zebra_stripes=False, **kw)
        self._keys: list[str] = []
        self._cells: dict[str, tuple] = {}
        self.syncing = False
        self._flex = self.FLEX_MIN

    def on_mount(self) -> None:
        self._add_columns()

    def _add_columns(self) -> None:
        for label, key, width in self.COLUMNS:
            self.add_column(Text(label), key=key, width=width or self._flex)

    def on_resize(self) -> None:
        fixed = sum(w for _, _, w in self.COLUMNS if w)
        room = (
            self.size.width - 2 - fixed - 2 * self.cell_padding * len(self.COLUMNS)
        )  # 2: scrollbar
        flex = max(self.FLEX_MIN, room)
        if flex != self._flex:
            self._flex = flex
            self.clear(columns=True)
            self._add_columns()
            self._keys = []
            self._cells = {}
            self.post_message(self.Resized())

    def sync(self, rows: list[tuple[str, tuple]], select: str | None = None) -> None:
        """Show ``rows`` [(key, cells)]; keep (or move) the cursor to ``select``."""
        self.syncing = True
        try:
            keys = [k for k, _ in rows]
            current = self.current_key()
            cols = [c[1] for c in self.COLUMNS]
            if keys != self._keys:
                self.clear()
                for k, cells in rows:
                    self.add_row(*cells, key=k)
                self._keys = keys
                self._cells = dict(rows)
                want = select or current
                if want in keys:
                    self.move_cursor(row=keys.index(want), animate=False)
            else:
                for k, cells in rows:
                    old = self._cells.get(k)
                    if old == cells:
                        continue
                    for i, cell in enumerate(cells):
                        if old is None or old[i] != cell:
                            self.update_cell(k, cols[i], cell)
                    self._cells[k] = cells
                if select is not None and select in keys and select != current:
                    self.move_cursor(row=keys.index(select), animate=False)
        finally:
            self.syncing = False

    def current_key(self) -> str | None:
        if (
            not self._keys
            or self.cursor_row is None
            or not (0 <= self.cursor_row < len(self._keys))
        ):
            return None
        return self._keys[self.cursor_row]


class BuildsTable(SyncedTable):
    COLUMNS = (
        ("status", "status", 12),
        ("build", "build", None),
        ("stage", "stage", 14),
        ("time", "time", 6),
    )
    FLEX_MIN = 12


class StagesTable(SyncedTable):
    COLUMNS = (
        ("#", "n", 2),
        ("status", "status", 12),
        ("stage", "stage", None),
        ("time", "time", 6),
        ("progress", "progress", 26),
    )
    FLEX_MIN = 16


def build_row(v: Mapping[str, str], b: BuildModel, now: float) -> tuple:
    st = b.current_stage()
    if b.mode == "history":
        stage = Text(
            fmt_ago(now - b.history_ts) if b.history_ts else "",
            style=status.theme_style(v, "foreground-muted"),
        )
    elif b.status == "succeeded" and (skipped := b.skipped_provisioners()):
        stage = Text(f"{skipped} skipped", style=status.theme_style(v, "warning"))
    elif b.status == "succeeded":
        stage = Text(f"{len(b.stages)} stages", style=status.theme_style(v, "foreground-muted"))
    elif st is not None:
        stage = Text(f"{st.index + 1}/{len(b.stages)} {st.name}", no_wrap=True, overflow="ellipsis")
    else:
        stage = Text("")
    shown = "kept" if b.kept and b.status == "failed" else b.status
    name = Text(b.label, no_wrap=True, overflow="ellipsis")
    if b.mode == "history":
        name.stylize(status.theme_style(v, "foreground-muted"))
    return (status.status_text(v, shown), name, stage, Text(fmt_duration(b.elapsed(now))))


def stage_row(v: Mapping[str, str], s: StageModel, now: float) -> tuple:
    name = Text(s.name, no_wrap=True, overflow="ellipsis")
    if s.kind == "builder":
        name.stylize(status.theme_style(v, "foreground-muted"))
    return (
        Text(str(s.index + 1)),
        status.status_text(v, s.status),
        name,
        Text(fmt_duration(s.elapsed(now))),
        progress_cell(v, s, now),
    )


def progress_cell(v: Mapping[str, str], s: StageModel, now: float) -> Text:
    """A bar whose expected length comes from history: "━━━━╸────  about 40 s left"."""
    elapsed = s.elapsed(now) or 0.0
    muted = status.theme_style(v, "foreground-muted")
    if s.status in ("succeeded",):
        return _bar(v, 1.0, "success", "")
    if s.status in ("failed", "crashed"):
        return _bar(v, 1.0, "error", "")
    if s.status in ("skipped", "cancelled"):
        return Text("")
    if s.status == "pending":
        return Text(f"usually {fmt_duration(s.expected)}" if s.expected else "", style=muted)
    # running / paused / cancelling
    if s.progress is not None and s.progress[2]:
        msg, cur, total = s.progress
        frac = min(1.0, (cur or 0) / total) if total else 0.0
        return _bar(v, frac, "accent", msg or f"{frac:.0%}")
    if s.expected:
        if elapsed < s.expected:
            return _bar(
                v, min(elapsed / s.expected, 0.99), "accent", fmt_left(s.expected - elapsed)
            )
        return _bar(v, 0.99, "warning", f"longer than usual ({fmt_duration(s.expected)})")
    if s.status == "paused":
        return Text("waiting for you", style=status.style(v, "paused"))
    if s.progress is not None and s.progress[0]:
        return Text(s.progress[0], style=muted, no_wrap=True, overflow="ellipsis")
    return Text("no estimate yet", style=muted)


def _bar(v: Mapping[str, str], frac: float, colour: str, label: str) -> Text:
    filled = int(round(frac * BAR_WIDTH))
    t = Text(no_wrap=True, overflow="ellipsis")
    t.append("━" * filled, style=status.theme_style(v, colour))
    t.append("━" * (BAR_WIDTH - filled), style=status.theme_style(v, "foreground-muted", dim=True))
    if label:
        t.append("  " + label)
    return t
