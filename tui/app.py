"""The Kiln dashboard: templates, builds, stages and live output in one screen.

Engine threads never touch widgets: each session's event bus feeds a
:class:`~tui.bridge.Bridge` (a deque) and a 20 Hz timer drains it into the model
(:mod:`tui.model`) and redraws what changed. Long work (loading templates,
starting sessions, reading logs) runs in thread workers that post messages.
The backend is imported only inside those workers, so the first frame is
painted before any of it is loaded.
"""

from __future__ import annotations

import os
import time
from typing import Any

from textual import work
from textual.app import App
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, Footer, Header
from textual.worker import Worker, WorkerState

from . import keys
from .answering import Answering
from .bridge import DRAIN_INTERVAL, Bridge
from .clock import Clock
from .commands import KilnCommands
from .discovery import (
    ProblemView,
    TemplateEntry,
    discover,
    mtime_of,
    validate,
)
from .launching import Launching
from .messages import (
    Discovered,
    SessionRecord,
    Validated,
)
from .model import (
    MARK,
    STDERR,
    STDOUT,
    UI,
    UI_ERROR,
    BuildModel,
    OutputBuffer,
)
from .records import Records
from .refreshing import Refreshing
from .widgets.output import OutputView
from .widgets.output_pane import OutputPane
from .widgets.tables import BuildsTable, StagesTable
from .widgets.templates import NodeRef, TemplatesPane

# -- messages from worker threads ----------------------------------------------------------


class KilnApp(Launching, Refreshing, Answering, Records, App[int]):
    CSS_PATH = "kiln.tcss"
    TITLE = "Kiln"
    BINDINGS = keys.bindings("app")
    COMMANDS = App.COMMANDS | {KilnCommands}
    ENABLE_COMMAND_PALETTE = True
    # below 110 columns the panes stack (kiln.tcss); below 32 rows the output gets the room
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (110, "-wide")]
    VERTICAL_BREAKPOINTS = [(0, "-short"), (32, "-tall")]

    def __init__(
        self,
        target: str = ".",
        *,
        clock: Clock | None = None,
        config_dir: str | os.PathLike | None = None,
        vars: dict[str, str] | None = None,
        var_files: tuple[str, ...] = (),
    ) -> None:
        super().__init__()
        self.target = os.path.abspath(target)
        self.root = self.target if os.path.isdir(self.target) else os.path.dirname(self.target)
        self.clock = clock or Clock()
        self.vars = dict(vars or {})
        self.var_files = tuple(var_files)
        self.config_dir = keys.config_dir(config_dir)
        self.keymap, self.config_problems = keys.load_keymap(self.config_dir)
        self.set_keymap(keys.with_twins(self.keymap))
        self.bridge = Bridge()
        self.builds: dict[str, BuildModel] = {}
        self.sessions: dict[str, SessionRecord] = {}
        self.history: list[BuildModel] = []
        self.selected_build: str | None = None
        self.selected_stage: int | None = None
        self.shown_problems: str | None = None  # template path whose problems the output shows
        self.ready_at: float | None = None
        self._validating: set[str] = set()
        self._launching: dict[str, int] = {}  # template path -> builds starting (b pressed)
        self._dev: dict[str, Any] = {}  # template path -> its dev mode (d), tui.devmode
        self._footer_waiting = False  # the footer last drawn for a build waiting for an answer
        self._last_rescan = 0.0
        self._quitting = False
        self._question_keys: frozenset[str] = frozenset()
        self._bar_at = 0.0
        self._bar_pending = False
        self.force_quit = False  # quit without waiting for cleanups (q on the wait screen)
        self.handle_signals = False  # kiln tui: SIGHUP/SIGTERM quit with cleanup (not in tests)
        self.sub_title = os.path.basename(self.root.rstrip(os.sep)) or self.root

    # -- layout ---------------------------------------------------------------------------
    def compose(self):
        yield Header()
        with Horizontal(id="main"):
            with Vertical(id="left"):
                yield TemplatesPane(id="templates")
                yield BuildsTable(id="builds")
            with Vertical(id="right"):
                yield StagesTable(id="stages")
                yield OutputPane(id="output")
        yield Footer(show_command_palette=False, compact=True)  # ctrl+p: in the help, the welcome

    # the main screen's panes (looked up once: a modal screen may be on top later)
    templates: TemplatesPane
    builds_table: BuildsTable
    stages_table: StagesTable
    output: OutputPane
    view: OutputView

    def on_mount(self) -> None:
        self.templates = self.query_one(TemplatesPane)
        self.builds_table = self.query_one(BuildsTable)
        self.stages_table = self.query_one(StagesTable)
        self.output = self.query_one(OutputPane)
        self.view = self.query_one(OutputView)
        self.templates.border_title = "Templates"
        self.builds_table.border_title = "Builds"
        self.stages_table.border_title = "Stages"
        self.output.border_title = "Output"
        view = self.view
        view.on_copy = self.copy_output
        view.on_save = self.ask_save_path
        view.on_scope = self.toggle_scope
        self.output.on_save_path = self.save_output
        self.templates.tree_widget.focus()
        if self.handle_signals:
            self._watch_hangup()
        self.set_interval(DRAIN_INTERVAL, self.drain)
        self.set_interval(1.0, self.tick)
        self.set_interval(2.0, self.watch_files)
        self.refresh_panes()
        self.show_selected()
        for p in self.config_problems:
            self.notify(p, title="Config", severity="warning", timeout=8)

    def on_ready(self) -> None:
        self.ready_at = time.time()
        if os.environ.get("KILN_TUI_EXIT_ON_READY"):
            self.exit(0)
            return
        # after the first frame: the workers import the engine, which would slow the first paint
        self._discover()

    def _watch_hangup(self) -> None:
        """The terminal closed (SIGHUP) or someone asked us to stop (SIGTERM): leave as quit
        does, so builds are cancelled and their machines removed, not left running."""
        import asyncio
        import signal

        try:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGHUP, signal.SIGTERM):
                loop.add_signal_handler(sig, self._hang_up)
        except (NotImplementedError, RuntimeError, ValueError):  # not the main thread (tests)
            pass

    def _hang_up(self) -> None:
        self._quitting = True
        self.exit(1)

    def on_unmount(self) -> None:
        """However the app ends (an error, a test failing, quit), builds still running are
        cancelled and cleaned up, unless the user chose to quit without waiting."""
        live = [r for r in self.sessions.values() if not r.session.done]
        for rec in live:
            rec.session.cancel("the dashboard closed")
        if not self.force_quit:
            for rec in live:
                rec.session.wait(60)
        devs, self._dev = list(self._dev.values()), {}
        for dev in devs:  # dev mode's containers go with the dashboard
            dev.stop_and_wait()

    def variables(self) -> dict[str, str]:
        return self.theme_variables

    # -- templates --------------------------------------------------------------------
    @work(thread=True, exit_on_error=False, group="discover")
    def _discover(self) -> None:
        self.post_message(Discovered(discover(self.target)))

    def on_discovered(self, msg: Discovered) -> None:
        old = {e.path: e for e in self.templates.entries}
        entries = []
        for e in msg.entries:
            prev = old.get(e.path)
            if prev is not None and prev.mtime == e.mtime and prev.status != "validating":
                entries.append(prev)
            else:
                entries.append(e)
                self._validate(e)
        if [e.path for e in entries] != [e.path for e in self.templates.entries] or not old:
            self.templates.set_entries(entries, self.variables())
            if not old:
                self._load_history()
        else:
            self.templates.entries = entries

    def _validate(self, entry: TemplateEntry) -> None:
        if entry.path in self._validating:
            return
        self._validating.add(entry.path)
        self._validate_worker(entry)

    @work(thread=True, exit_on_error=False, group="validate")
    def _validate_worker(self, entry: TemplateEntry) -> None:
        try:
            result = validate(entry, self.root, self.vars, self.var_files)
        except Exception as e:  # noqa: BLE001 - shown on the template, never a crash
            import dataclasses

            result = dataclasses.replace(
                entry,
                status="invalid",
                problems=[ProblemView(f"{entry.name}: {type(e).__name__}: {e}", entry.path)],
            )
        self.post_message(Validated(result))

    def on_validated(self, msg: Validated) -> None:
        self._validating.discard(msg.entry.path)
        entries = [msg.entry if e.path == msg.entry.path else e for e in self.templates.entries]
        self.templates.set_entries(entries, self.variables())
        if self.shown_problems == msg.entry.path:
            self.show_problems(msg.entry)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """Every worker error ends here: shown, never a crash of the dashboard."""
        if event.state == WorkerState.ERROR:
            err = event.worker.error
            self.notify(
                f"{event.worker.name or 'a background task'} failed: {type(err).__name__}: {err}",
                severity="error",
                timeout=10,
            )

    def template_entries(self) -> list[TemplateEntry]:
        return list(self.templates.entries)

    def watch_files(self) -> None:
        """Re-validate templates edited on disk; look for new ones now and then."""
        for e in self.templates.entries:
            if e.status != "validating" and mtime_of(e.path) != e.mtime:
                self._validate(e)
        now = time.monotonic()
        if now - self._last_rescan > 6:
            self._last_rescan = now
            self._discover()

    def on_templates_pane_rescan(self, _msg: TemplatesPane.Rescan) -> None:
        for e in self.templates.entries:
            self._validate(e)
        self._discover()
        self._load_history()
        self.notify("Looking for templates again…", timeout=2)

    def on_templates_pane_highlighted(self, msg: TemplatesPane.Highlighted) -> None:
        ref = msg.ref
        if ref is None or not self.templates.tree_widget.has_focus:
            return
        entry = self.templates.entry(ref.path)
        if entry is not None and (entry.problems or ref.kind in ("problem", "warning")):
            self.show_problems(entry, ref.problem)
        elif self.shown_problems is not None:
            self.shown_problems = None
            self.show_selected()

    def show_problems(self, entry: TemplateEntry, focus: ProblemView | None = None) -> None:
        """The template's problems in the output pane, each with file:line."""
        self.shown_problems = entry.path
        buf = OutputBuffer(wrap_all=True)
        errors = [p for p in entry.problems if p.severity == "error"]
        head = (
            f"{entry.name}: {len(errors)} problem{'s' if len(errors) != 1 else ''}"
            if errors
            else f"{entry.name}: valid"
        )
        buf.append(None, MARK, [f"── {head}"])
        focus_abs = None
        for p in entry.problems:
            if focus is not None and p.text == focus.text:
                focus_abs = buf.total
            buf.append(None, UI_ERROR if p.severity == "error" else UI, p.text.splitlines())
        for w in entry.warnings:
            buf.append(None, UI, [f"warning: {w}"])
        if errors:
            key = self.keymap.get("edit", "e").split(",")[0]
            buf.append(
                None, STDOUT, ["", f"Press {key} to open the template at the problem's line."]
            )
        self.output.border_title = f"Output · problems in {entry.name}"
        self.output.set_summary(None)
        self.view.show(buf, None, keep_filter=False, static=True)
        if focus_abs is not None:
            self.view.scroll_to_abs(focus_abs)

    # -- launching builds ---------------------------------------------------------------
    def selected_ref(self) -> NodeRef | None:
        ref = self.templates.selected()
        if ref is None and self.templates.entries:
            return NodeRef("template", self.templates.entries[0].path)
        return ref

    def _entry_for_action(self) -> tuple[TemplateEntry, str | None] | None:
        ref = self.selected_ref()
        entry = self.templates.entry(ref.path) if ref is not None else None
        if entry is None:
            self.notify("No template selected: pick one in the Templates pane.", severity="warning")
            return None
        return entry, (ref.build if ref is not None and ref.kind == "build" else None)


    # -- selection ----------------------------------------------------------------------
    def select_build(self, key: str, stage: int | None, focus_error: bool = False) -> None:
        self.selected_build = key
        self.selected_stage = stage
        self.shown_problems = None
        self._ensure_log(self.current_build())
        self.refresh_panes()
        self.show_selected()
        waiting = self._waiting_selected()
        if waiting != self._footer_waiting:  # the footer shows the answers while it waits
            self._footer_waiting = waiting
            self.refresh_bindings()
        if focus_error:
            self._scroll_to_error()

    def show_selected(self) -> None:
        b = self.builds.get(self.selected_build or "") or self._history_row(self.selected_build)
        if b is None:
            self.view.show(self._welcome(), None, static=True)
            self.output.border_title = "Output"
            self.output.set_summary(None)
            return
        self.view.show(b.output, self.selected_stage)
        self._update_output_title()
        self._update_summary()
        self.output.update_bar()

    def _welcome(self) -> OutputBuffer:
        k = self._key_of
        buf = OutputBuffer(wrap_all=True)  # it wraps to the pane's width
        buf.append(None, MARK, ["── Kiln"])
        buf.append(
            None,
            STDOUT,
            [
                "Pick a template on the left (or one of its builders), then press",
                "",
                f"  {k('build'):<3} to build it",
                f"  {k('provision-null'):<3} to run its provisioners on the null builder: on a machine "
                "kept from a failed build, a target from targets.toml, or this host",
                f"  {k('postprocess-file'):<3} to run its post-processors on the file builder, in a "
                "scratch directory",
                f"  {k('edit'):<3} to open it in $EDITOR",
                "",
                "When a provisioner fails, its build waits with the machine still up. Fix the "
                f"template, then press {k('retry')} to run just that provisioner again, "
                f"{k('skip')} to skip it, {k('cleanup')} to clean up, or {k('keep')} to keep the "
                "machine and get into it.",
                "",
                f"{k('help')} shows every key, ctrl+p finds any action by name, tab moves between "
                f"panes, {k('zoom')} zooms the one you are in.",
            ],
        )
        return buf

    def _history_row(self, key: str | None) -> BuildModel | None:
        for h in self.history:
            if h.key == key:
                return h
        return None

    def current_build(self) -> BuildModel | None:
        return self.builds.get(self.selected_build or "") or self._history_row(self.selected_build)

    def _update_output_title(self) -> None:
        b = self.current_build()
        if b is None:
            return
        st = b.stage(self.selected_stage)
        where = f"{st.index + 1}/{len(b.stages)} {st.name}" if st else "all stages"
        title = f"Output · {b.label} › {where}"
        if st is not None and st.source:
            title += f"  ({st.source})"
        from textual.markup import escape

        title = escape(title)
        if self.output.border_title != title:
            self.output.border_title = title

    def _scroll_to_error(self) -> None:
        b = self.current_build()
        v = self.view
        if b is None or v.buffer is None:
            return
        rows = b.output.rows_of(self.selected_stage) if self.selected_stage is not None else None
        src = rows if rows is not None else range(b.output.base, b.output.total)
        last_mark = None
        first_err = None
        for a in src:
            if a < b.output.base:
                continue
            code = b.output.code(a) & 7
            if code == MARK:
                last_mark = a
                first_err = None
            elif code == UI_ERROR and first_err is None and last_mark is not None:
                first_err = a
        if first_err is not None:
            v.scroll_to_abs(first_err)

    def on_synced_table_resized(self, _msg) -> None:
        self.refresh_panes()
        self._update_summary()  # its wording follows the width

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        table = event.data_table
        if not table.has_focus or event.row_key is None:
            return
        key = event.row_key.value
        if isinstance(table, BuildsTable):
            if key != self.selected_build:
                self.select_build(key, None)
        elif isinstance(table, StagesTable):
            idx = int(key.split(":", 1)[1])
            if idx != self.selected_stage:
                self.selected_stage = idx
                self.show_selected()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        table = event.data_table
        if isinstance(table, StagesTable) and event.row_key is not None:
            self.selected_stage = int(event.row_key.value.split(":", 1)[1])
            self.show_selected()
            if self.current_build() and self.current_build().mode == "history":
                return
            self.view.focus()
        elif isinstance(table, BuildsTable) and event.row_key is not None:
            key = event.row_key.value
            if key != self.selected_build:
                self.select_build(key, None)
            self._ensure_log(self.current_build())

    def on_descendant_focus(self, event) -> None:
        self._ensure_log(self.current_build())

    def _ensure_log(self, b: BuildModel | None) -> None:
        """A past run's stages and log are read when it is first selected."""
        if b is not None and b.mode == "history" and not b.log_requested and b.log_path:
            b.log_requested = True
            self._load_log(b)

    def toggle_scope(self) -> None:
        b = self.current_build()
        if b is None:
            return
        if self.selected_stage is None:
            st = b.current_stage() or (b.stages[-1] if b.stages else None)
            cursor = self.stages_table.current_key()
            if cursor is not None:
                st = b.stage(int(cursor.split(":", 1)[1])) or st
            self.selected_stage = st.index if st else None
        else:
            self.selected_stage = None
        self.show_selected()
        self.refresh_panes()


    def action_zoom(self) -> None:
        """The focused pane fills the screen; again (or escape) puts it back."""
        screen = self.screen
        if screen.maximized is not None:
            screen.minimize()
            return
        pane = None
        f = self.focused
        if f is not None:
            for w in f.ancestors_with_self:
                if isinstance(w, (TemplatesPane, BuildsTable, StagesTable, OutputPane)):
                    pane = w
                    break
        if pane is None:
            pane = self.output
            self.view.focus()
        screen.maximize(pane, container=False)


    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("retry", "skip", "cleanup", "keep"):
            b = self._paused_build()
            if b is None:
                return False
            choices = (b.question or {}).get("choices") or []
            want = {
                "retry": ("retry", "continue"),
                "skip": ("skip",),
                "cleanup": ("cleanup",),
                "keep": ("abort",),
            }[action]
            return any(c in choices for c in want)
        quiet = keys.QUIET in parameters
        if action == "cancel" and not any(b.live for b in self.builds.values()):
            return False
        if action in ("build", "provision_null", "postprocess_file", "cancel", "edit"):
            # while a build waits for an answer the footer shows the answers; these keys
            # still work, through their twin bindings (keys.quiet_when_paused)
            return quiet or not self._waiting_selected()
        return True


    # -- help, quit --------------------------------------------------------------------------
    def action_help(self) -> None:
        from .screens.help import HelpScreen

        if isinstance(self.screen, HelpScreen):
            return
        focused = ""
        f = self.focused
        if f is not None:
            for w in f.ancestors_with_self:
                if isinstance(w, TemplatesPane):
                    focused = "templates"
                elif isinstance(w, BuildsTable):
                    focused = "builds"
                elif isinstance(w, StagesTable):
                    focused = "stages"
                elif isinstance(w, OutputPane):
                    focused = "output"
                if focused:
                    break
        self.push_screen(HelpScreen(self.keymap, self.config_dir, focused, self.config_problems))

    def run_binding(self, binding_id: str) -> None:
        """Run the action of a binding by id (the command palette uses this)."""
        spec = keys.spec(binding_id)
        if spec.scope == "output":
            self.view.focus()
            self.call_later(self.view.run_action, spec.action)
        elif spec.scope == "templates":
            self.call_later(self.templates.run_action, spec.action)
        else:
            self.call_later(self.run_action, spec.action)

    def live_sessions(self) -> list[SessionRecord]:
        return [r for r in self.sessions.values() if not r.session.done]

    async def action_quit(self) -> None:
        if self._quitting:
            return
        live = [b for b in self.builds.values() if b.live]
        if not live and not self.live_sessions():
            self.exit(0)
            return
        n = len(live)
        from .screens.dialogs import ConfirmScreen

        def answered(yes: bool | None) -> None:
            if yes:
                self.cancel_all_and_exit()

        them = "them" if n != 1 else "it"
        self.push_screen(
            ConfirmScreen(
                f"{n} build{'s are' if n != 1 else ' is'} still running",
                f"Quit anyway? Kiln cancels {them} first and waits while {'they clean' if n != 1 else 'it cleans'} "
                "up (containers, instances, temp files).",
                yes="Cancel and quit",
                no="Keep running",
            ),
            answered,
        )

    def cancel_all_and_exit(self) -> None:
        self._quitting = True
        for rec in self.sessions.values():
            if not rec.session.done:
                rec.session.cancel("the dashboard is quitting")
        for b in self.builds.values():
            if b.live:
                b.status = "cancelling"

        def rows() -> list[tuple[str, str, str]]:
            out = []
            for rec in self.sessions.values():
                for k in rec.builds:
                    b = self.builds[k]
                    if b.started is None and b.status == "cancelling" and rec.session.done:
                        continue
                    last = b.output.tail(None, 1, (STDOUT, STDERR, UI, UI_ERROR))
                    out.append((b.label, b.status, last[0] if last else ""))
            return out

        def done() -> bool:
            return all(r.session.done for r in self.sessions.values()) and not len(self.bridge)

        from .screens.dialogs import WaitScreen

        self.push_screen(WaitScreen(rows, done, lambda: self.exit(0), self.variables))


def make_app(
    target: str = ".",
    clock: Clock | None = None,
    config_dir: str | os.PathLike | None = None,
    **kw: Any,
) -> KilnApp:
    """The app factory tests, screenshots and the CLI use."""
    return KilnApp(target, clock=clock, config_dir=config_dir, **kw)


def run_app(
    target: str = ".", *, vars: dict[str, str] | None = None, var_files: tuple[str, ...] = ()
) -> int:
    """``kiln`` / ``kiln tui [DIR|TEMPLATE]``. Returns the exit code.

    ``KILN_TUI_EXIT_ON_READY=1`` exits at the first frame and prints
    ``KILN_READY <unix time>`` (the startup benchmark); ``KILN_TUI_HEADLESS=1``
    runs without a terminal.
    """
    import sys

    if not os.path.exists(target):
        print(f"Error: {target}: no such file or directory", file=sys.stderr)
        return 1
    app = make_app(target, vars=vars, var_files=var_files)
    headless = os.environ.get("KILN_TUI_HEADLESS") == "1"
    app.handle_signals = True
    rc = app.run(headless=headless, size=(140, 40) if headless else None)
    if os.environ.get("KILN_TUI_EXIT_ON_READY") and app.ready_at is not None:
        print(f"KILN_READY {app.ready_at:.6f}", flush=True)
    return rc if isinstance(rc, int) else 0
