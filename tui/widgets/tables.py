"""The builds and stages panes (DataTables fed from the model, cells as Rich Text)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

from rich.text import Text
from textual.message import Message
from textual.widgets import DataTable

from .. import status
from ..clock import fmt_ago, fmt_duration, fmt_left
from ..model import BuildModel, StageModel

BAR_WIDTH = 8


@dataclass(frozen=True)
class Col:
    """A column: ``width`` None takes the room left; below ``shown_from`` table columns it is
    left out; below ``narrow_from`` it is ``narrow`` wide and its cells are cut to that."""

    label: str
    key: str
    width: int | None
    shown_from: int = 0
    narrow_from: int = 0
    narrow: int = 0


class SyncedTable(DataTable):
    """A DataTable redrawn from rows of Text cells, keeping the cursor on the same key.

    Cells are Rich ``Text`` (never strings: DataTable reads strings as markup and
    names from templates may contain brackets). Columns fit the table's width: the
    flexible one takes what is left, and narrow tables drop or shrink the others.
    """

    COLUMNS: Sequence[Col] = ()
    FLEX_MIN = 10

    class Resized(Message):
        """The columns were rebuilt for a new width: the rows must be added again."""

    def __init__(self, **kw) -> None:
        super().__init__(cursor_type="row", zebra_stripes=False, **kw)
        self._keys: list[str] = []
        self._cells: dict[str, tuple] = {}
        self.syncing = False
        self._layout: tuple[tuple[int, int], ...] = ()  # (column index, width) shown

    def on_mount(self) -> None:
        self._add_columns(self._fit(self.size.width or 80))

    def _fit(self, width: int) -> tuple[tuple[int, int], ...]:
        shown = []
        for i, c in enumerate(self.COLUMNS):
            if width < c.shown_from:
                continue
            w = c.narrow if c.narrow and width < c.narrow_from else c.width
            shown.append((i, w))
        fixed = sum(w for _i, w in shown if w)
        room = width - 2 - fixed - 2 * self.cell_padding * len(shown)  # 2: scrollbar
        flex = max(self.FLEX_MIN, room)
        return tuple((i, w if w else flex) for i, w in shown)

    def _add_columns(self, layout: tuple[tuple[int, int], ...]) -> None:
        self._layout = layout
        for i, w in layout:
            c = self.COLUMNS[i]
            label = "" if c.narrow and w == c.narrow else c.label
            self.add_column(Text(label), key=c.key, width=w)

    def on_resize(self) -> None:
        layout = self._fit(self.size.width)
        if layout != self._layout:
            self.clear(columns=True)
            self._add_columns(layout)
            self._keys = []
            self._cells = {}
            self.post_message(self.Resized())

    def _shown(self, cells: tuple) -> tuple:
        out = []
        for i, w in self._layout:
            cell = cells[i]
            c = self.COLUMNS[i]
            if c.narrow and w == c.narrow and isinstance(cell, Text) and cell.cell_len > w:
                cell = cell[:w]
            out.append(cell)
        return tuple(out)

    def sync(self, rows: list[tuple[str, tuple]], select: str | None = None) -> None:
        """Show ``rows`` [(key, cells for every column)]; keep (or move) the cursor to
        ``select``."""
        self.syncing = True
        try:
            rows = [(k, self._shown(cells)) for k, cells in rows]
            keys = [k for k, _ in rows]
            current = self.current_key()
            cols = [self.COLUMNS[i].key for i, _w in self._layout]
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

    def width_of(self, key: str) -> int:
        """The width a column has now (0 when it is left out)."""
        for i, w in self._layout:
            if self.COLUMNS[i].key == key:
                return w
        return 0

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
        Col("status", "status", 12, narrow_from=56, narrow=1),
        Col("build", "build", None),
        Col("stage", "stage", 14, shown_from=64),
        Col("time", "time", 6),
    )
    FLEX_MIN = 12


class StagesTable(SyncedTable):
    COLUMNS = (
        Col("#", "n", 2),
        Col("status", "status", 12, narrow_from=64, narrow=1),
        Col("stage", "stage", None),
        Col("time", "time", 6),
        Col("progress", "progress", 26, shown_from=40, narrow_from=96, narrow=8),
    )
    FLEX_MIN = 16


def build_row(v: Mapping[str, str], b: BuildModel, now: float) -> tuple:
    st = b.current_stage()
    if b.mode == "history":
        stage = Text(
            fmt_ago(now - b.history_ts) if b.history_ts else "",
            style=status.theme_style(v, "foreground-muted"),
        )
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
    skipped = b.skipped_provisioners() if b.status == "succeeded" else 0
    if skipped:  # "succeeded, 1 skipped": with the name, which every width shows
        name.append(f" · {skipped} skipped", style=status.theme_style(v, "warning"))
    return (status.status_text(v, shown), name, stage, Text(fmt_duration(b.elapsed(now))))


def stage_row(
    v: Mapping[str, str], s: StageModel, now: float, progress: int = 26, root: str = ""
) -> tuple:
    shown = s.name.replace(root.rstrip("/") + "/", "") if root else s.name  # paths: relative
    name = Text(shown, no_wrap=True, overflow="ellipsis")
    if s.kind == "builder":
        name.stylize(status.theme_style(v, "foreground-muted"))
    return (
        Text(str(s.index + 1)),
        status.status_text(v, s.status),
        name,
        Text(fmt_duration(s.elapsed(now))),
        progress_cell(v, s, now, progress),
    )


def progress_cell(v: Mapping[str, str], s: StageModel, now: float, width: int = 26) -> Text:
    """A bar whose expected length comes from history: "━━━━╸────  about 40 s left".
    In a narrow column (the bar's width) the bar alone, or "~40s" for a pending stage."""
    elapsed = s.elapsed(now) or 0.0
    muted = status.theme_style(v, "foreground-muted")
    if width <= BAR_WIDTH + 2:
        return _narrow_progress(v, s, elapsed, muted)
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


def _narrow_progress(v: Mapping[str, str], s: StageModel, elapsed: float, muted) -> Text:
    if s.status == "succeeded":
        return _bar(v, 1.0, "success", "")
    if s.status in ("failed", "crashed"):
        return _bar(v, 1.0, "error", "")
    if s.status in ("skipped", "cancelled"):
        return Text("")
    if s.status == "pending":
        return Text(f"~{fmt_duration(s.expected)}" if s.expected else "", style=muted)
    if s.status == "paused":
        return Text("waiting", style=status.style(v, "paused"))
    if s.progress is not None and s.progress[2]:
        _msg, cur, total = s.progress
        return _bar(v, min(1.0, (cur or 0) / total), "accent", "")
    if s.expected:
        late = elapsed >= s.expected
        return _bar(v, 0.99 if late else elapsed / s.expected, "warning" if late else "accent", "")
    return Text("no est.", style=muted)


def _bar(v: Mapping[str, str], frac: float, colour: str, label: str) -> Text:
    filled = int(round(frac * BAR_WIDTH))
    t = Text(no_wrap=True, overflow="ellipsis")
    t.append("━" * filled, style=status.theme_style(v, colour))
    t.append("━" * (BAR_WIDTH - filled), style=status.theme_style(v, "foreground-muted", dim=True))
    if label:
        t.append("  " + label)
    return t
