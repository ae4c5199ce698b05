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
import re
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from rich.text import Text
from textual import work
from textual.app import App, SuspendNotSupported
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import DataTable, Footer, Header
from textual.worker import Worker, WorkerState

from tui import keys, status
from tui.bridge import DRAIN_INTERVAL, Bridge
from tui.clock import Clock, fmt_ago, fmt_duration
from tui.commands import KilnCommands
from tui.discovery import (
    ProblemView,
    TemplateEntry,
    discover,
    display_name,
    mtime_of,
    relative,
    validate,
)
from tui.history import history_status, live_runs, read_log, write_log
from tui.model import (
    MARK,
    STDERR,
    STDOUT,
    UI,
    UI_ERROR,
    BuildModel,
    OutputBuffer,
    StageModel,
    apply,
)
from tui.widgets.output import OutputPane, OutputView
from tui.widgets.tables import BuildsTable, StagesTable, build_row, stage_row
from tui.widgets.templates import NodeRef, TemplatesPane

HISTORY_ROWS = 12
SUMMARY_ERROR_LINES = 5  # lines of a multi-line error the sticky summary shows
#: answers a retry asks for when the template changed around the failed provisioner
RETRY_CHOICES = frozenset({"matched", "from-changed"})
#: what removes a kept machine (the engine prints the same command when it keeps one)
KEPT_CLEANUP = "kiln cleanup -all"
BAR_PERIOD = 0.25  # seconds between updates of the output pane's line count while streaming


@dataclass
class SessionRecord:
    sid: str
    session: Any  # backend.engine.session.Session
    entry_path: str
    mode: str  # build | null | file
    target: str = ""
    builds: list[str] = field(default_factory=list)  # build keys
    done: bool = False
    unsubscribe: Any = None


# -- messages from worker threads ----------------------------------------------------------


class Discovered(Message):
    def __init__(self, entries: list[TemplateEntry]) -> None:
        super().__init__()
        self.entries = entries


class Validated(Message):
    def __init__(self, entry: TemplateEntry) -> None:
        super().__init__()
        self.entry = entry


class LaunchFailed(Message):
    def __init__(
        self, entry_path: str, title: str, problems: list[ProblemView], mode: str = "build"
    ) -> None:
        super().__init__()
        self.entry_path = entry_path
        self.mode = mode
        self.title = title
        self.problems = problems


class HistoryLoaded(Message):
    def __init__(self, rows: list[BuildModel]) -> None:
        super().__init__()
        self.rows = rows


class LogLoaded(Message):
    def __init__(self, key: str, buffer: OutputBuffer, stages: list[StageModel]) -> None:
        super().__init__()
        self.key = key
        self.buffer = buffer
        self.stages = stages


class KilnApp(App[int]):
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

    def action_build(self, _how: str = "") -> None:
        picked = self._entry_for_action()
        if picked is None:
            return
        entry, build = picked
        if entry.status == "invalid":
            n = len([p for p in entry.problems if p.severity == "error"])
            self.notify(
                f"{entry.name} has {n} problem{'s' if n != 1 else ''}; fix "
                f"{'them' if n != 1 else 'it'} first.",
                severity="error",
            )
            self.show_problems(entry)
            return
        self.build_path(entry.path, (build,) if build else ())

    def build_path(self, path: str, only: tuple[str, ...] = ()) -> None:
        """Build a template; when a build of it is already starting or running, ask first."""
        busy = self._launching.get(path, 0) + sum(
            1
            for b in self.builds.values()
            if b.live and b.mode == "build" and b.template_path == path
            and (not only or b.name in only)
        )
        if not busy:
            self.launch(path, "build", only=only)
            return
        from tui.screens.dialogs import ConfirmScreen

        entry = self.templates.entry(path)
        name = entry.name if entry else os.path.basename(path)
        what = f"{name} ({', '.join(only)})" if only else name

        def answered(yes: bool | None) -> None:
            if yes:
                self.launch(path, "build", only=only)

        self.push_screen(
            ConfirmScreen(
                f"{what} is already building",
                "Start another build of it? Both run at once: two machines, and the same "
                "output files written twice.",
                yes="Build again",
                no="Don't",
                danger=False,
                focus_yes=False,
            ),
            answered,
        )

    def action_dev(self, _how: str = "") -> None:
        """d: kiln dev on the selected docker template; d again stops it."""
        picked = self._entry_for_action()
        if picked is None:
            return
        entry, build = picked
        dev = self._dev.pop(entry.path, None)
        if dev is not None:
            self.notify(f"Stopping dev mode of {entry.name}; its container is removed.")
            threading.Thread(target=dev.stop_and_wait, daemon=True).start()
            return
        from backend.engine.dev import check_builds
        from backend.engine.prepare import Options

        only = (build,) if build else ()
        problem = check_builds(entry.path, Options(only=only, vars=dict(self.vars),
                                                   var_files=self.var_files))
        if problem:
            self.notify(f"{entry.name}: {problem}", severity="error", timeout=8)
            return
        from tui.devmode import DashboardDev

        dev = DashboardDev(self, entry.path, only)
        self._dev[entry.path] = dev
        self.notify(f"Dev mode for {entry.name}: building, then rerunning on every save.")
        dev.start()

    def action_provision_null(self, _how: str = "") -> None:
        """p: the template's provisioners on the null builder. A machine kept from a build of
        this template comes first; this host only by an explicit, warned choice when the
        template builds a container or a cloud machine."""
        picked = self._entry_for_action()
        if picked is None:
            return
        entry, build = picked
        if entry.status == "valid" and not entry.provisioners:
            self.notify(f"{entry.name} has no provisioners to run.", severity="warning", timeout=4)
            return
        from backend.engine.debugruns import NullTarget, kept_machines

        here_ok = bool(entry.builds) and all(n in entry.local_builds for n in entry.build_names)
        host = NullTarget("local")
        ours: list[tuple[str, Any]] = []
        others: list[tuple[str, Any]] = []
        notes: list[str] = []
        runs = {rec.session.run_id: rec.entry_path for rec in self.sessions.values()}
        runs.update({h.run_id: h.template_path for h in self.history})
        try:
            from backend.engine.ledger import Ledger

            led = Ledger("kiln-dashboard")
            try:
                kept = kept_machines(led.entries())
            finally:
                led.close()
            for t in kept:
                tpl = runs.get(t.run_id)
                if tpl == entry.path:
                    ours.append((f"{t.short()}, kept from {entry.name} › {t.build}", t))
                else:
                    where = f"{display_name(tpl, self.root)} › " if tpl else ""
                    others.append((f"{t.short()}, kept from {where}{t.build}", t))
        except Exception as e:  # noqa: BLE001 - the list is a convenience
            notes.append(f"kept machines could not be listed: {e}")
        configured, problems = keys.load_targets(self.config_dir)
        notes += problems
        for c in configured:
            if c.container:
                t = NullTarget("docker", container=c.container, label=f"{c.name} (container)")
            else:
                t = NullTarget(
                    "ssh",
                    host=c.host,
                    port=c.port,
                    user=c.user,
                    password=c.password,
                    private_key_file=c.private_key_file,
                    label=f"{c.name} ({c.user}@{c.host}:{c.port})",
                )
            others.append((t.describe(), t))
        if here_ok:
            targets = [("this host (local communicator)", host)] + ours + others
        else:
            kinds = ", ".join(sorted({t for _n, t, _l in entry.builds}))
            targets = ours + others + [(f"this host, not a {kinds} machine (asks first)", host)]
            if not ours:
                notes.append(
                    f"No machine is kept from a build of {entry.name}: build it, and when a "
                    f"provisioner fails press {self._key_of('keep')} to keep the machine."
                )
        if not configured:
            notes.append(f"Name more targets in {self.config_dir / 'targets.toml'}.")

        from tui.screens.dialogs import TargetPicker

        def chosen(choice: Any) -> None:
            if choice is None:
                return
            if choice.target.kind == "local" and not self._runs_here(entry, choice.build):
                self._confirm_this_host(entry, choice)
                return
            self._run_on_target(entry, choice)

        self.push_screen(TargetPicker(entry.name, targets, entry.build_names, build, notes), chosen)

    @staticmethod
    def _runs_here(entry: TemplateEntry, build: str | None) -> bool:
        names = [build] if build else entry.build_names
        return bool(names) and all(n in entry.local_builds for n in names)

    def _run_on_target(self, entry: TemplateEntry, choice: Any) -> None:
        self.launch(
            entry.path,
            "null",
            target=choice.target,
            builds=choice.build,
            target_label=choice.target.short(),
        )

    def _confirm_this_host(self, entry: TemplateEntry, choice: Any) -> None:
        """Say what would run where, as whom, before a container's or cloud machine's
        provisioners run on the user's own machine."""
        import getpass
        import socket

        from tui.screens.dialogs import ConfirmScreen

        try:
            user = getpass.getuser()
        except Exception:  # noqa: BLE001 - no name for this uid
            user = "?"
        uid = os.geteuid()
        names = [choice.build] if choice.build else entry.build_names
        kinds = ", ".join(
            f"a {t} machine (build {n})"
            for n, t, _l in entry.builds
            if n in names and n not in entry.local_builds
        )
        who = f"{user} (uid {uid})" + (", root: they can change anything here" if uid == 0 else "")
        lines = entry.provisioner_lines[:8]
        more = len(entry.provisioner_lines) - len(lines)
        body = (
            f"{entry.name} builds {kinds}; its provisioners were written for it.\n"
            f"Here they run on this host ({socket.gethostname()}), as {who}, in {os.getcwd()}:\n"
            + "".join(f"  {i + 1}. {line}\n" for i, line in enumerate(lines))
            + (f"  … and {more} more\n" if more > 0 else "")
            + "shell and file provisioners go through the local communicator: commands run "
            "here, files are copied here."
        )

        def answered(yes: bool | None) -> None:
            if yes:
                self._run_on_target(entry, choice)

        self.push_screen(
            ConfirmScreen(
                "Run these provisioners on this host?",
                relative(body, self.root),
                yes="Run them here",
                no="Cancel",
                danger=True,
                focus_yes=False,
            ),
            answered,
        )

    def action_postprocess_file(self, _how: str = "") -> None:
        picked = self._entry_for_action()
        if picked is None:
            return
        entry, build = picked
        if entry.status == "valid" and not entry.post_processors:
            self.notify(
                f"{entry.name} has no post-processors to run.", severity="warning", timeout=4
            )
            return
        from backend.engine.ppdebug import last_artifacts
        from backend.engine.session import default_state_dir

        try:
            real = last_artifacts(
                os.path.join(default_state_dir(entry.path), "history.db"), entry.path
            )
        except Exception:  # noqa: BLE001 - without history there is only the stand-in
            real = {}
        names = [build] if build else entry.build_names
        real = {n: a for n, a in real.items() if n in names}
        if not real:
            self.launch(entry.path, "file", builds=build, target_label="a stand-in")
            return
        from tui.screens.dialogs import ArtifactPicker

        first = max(real.values(), key=lambda a: a.started)
        ago = fmt_ago(time.time() - first.started)
        missing = [n for n in names if n not in real]
        options = [
            ("stand-in", "a stand-in of each builder's own artifact, made for this run"),
            (
                "last",
                f"the last build's artifact ({ago}): {first.describe().splitlines()[0]}"
                + (f"; a stand-in for {', '.join(missing)}" if missing else ""),
            ),
        ]
        note = (
            "Either way the outputs go to a new directory under .kiln/debug-runs/pp-debug/ "
            "and stay there: nothing outside it is written, the template's docker tags are "
            "replaced by a kiln-debug tag, docker-push does not push, and the last build's "
            "files are copied first, never changed."
        )

        def chosen(choice: str | None) -> None:
            if choice == "stand-in":
                self.launch(entry.path, "file", builds=build, target_label="a stand-in")
            elif choice == "last":
                self.launch(
                    entry.path,
                    "file",
                    builds=build,
                    target=real,
                    target_label="the last build's artifact",
                )

        self.push_screen(
            ArtifactPicker(f"Run the post-processors of {entry.name}", options, note), chosen
        )

    def launch(
        self,
        path: str,
        mode: str,
        *,
        only: tuple[str, ...] = (),
        target: Any = None,
        builds: str | None = None,
        target_label: str = "",
    ) -> None:
        entry = self.templates.entry(path)
        name = entry.name if entry else os.path.basename(path)
        what = {
            "build": "Building",
            "null": "Running the provisioners of",
            "file": "Running the post-processors of",
        }[mode]
        self.notify(f"{what} {name}{' (' + ', '.join(only) + ')' if only else ''}…", timeout=3)
        if mode == "build":  # until its session exists, a second b must still see it
            self._launching[path] = self._launching.get(path, 0) + 1
        self._launch_worker(path, mode, only, target, builds, target_label)

    def _launched(self, path: str, mode: str) -> None:
        if mode == "build" and self._launching.get(path):
            self._launching[path] -= 1
            if not self._launching[path]:
                del self._launching[path]

    @work(thread=True, exit_on_error=False, group="launch")
    def _launch_worker(
        self,
        path: str,
        mode: str,
        only: tuple[str, ...],
        target: Any,
        builds: str | None,
        target_label: str,
    ) -> None:
        from backend.engine.prepare import Options
        from backend.engine.session import Session, default_state_dir, load_template
        from backend.template.errors import TemplateError

        state = default_state_dir(path)
        opts = Options(on_error="ask", only=only, vars=dict(self.vars), var_files=self.var_files)
        title = {
            "build": "cannot start the build",
            "null": "cannot run the provisioners",
            "file": "cannot run the post-processors",
        }[mode]
        try:
            tpl = load_template(path, opts, evaluate_data=True)
            if mode == "null":
                from backend.engine.debugruns import provisioners_on_null

                tpl = provisioners_on_null(tpl, target, builds=[builds] if builds else None)
                opts.state_dir = os.path.join(state, "debug-runs")
            if mode == "file":
                from backend.engine.ppdebug import (
                    DebugScope,
                    PostProcessorSession,
                    new_scratch,
                    prepare_postprocessor_run,
                )

                opts.state_dir = os.path.join(state, "debug-runs")
                scope = DebugScope(new_scratch(opts.state_dir), f"kiln-debug-{uuid.uuid4().hex[:8]}")
                tpl, prepared, warnings = prepare_postprocessor_run(
                    tpl, opts, scope, builds=[builds] if builds else None, real=target
                )
                session = PostProcessorSession(tpl, opts, prepared, scope)
                session.warnings += warnings
            else:
                session = Session(tpl, opts)
        except TemplateError as e:
            self.post_message(
                LaunchFailed(
                    path,
                    title,
                    [
                        ProblemView(
                            relative(p.format(), self.root), p.loc.file, p.loc.line, p.severity
                        )
                        for p in e.problems
                    ],
                    mode,
                )
            )
            return
        except Exception as e:  # noqa: BLE001 - reported, never a crash of the dashboard
            self.post_message(
                LaunchFailed(path, title, [ProblemView(f"{type(e).__name__}: {e}", path)], mode)
            )
            return
        session.on_question = None  # the dashboard answers (the `paused` event tells it)
        rec = SessionRecord(uuid.uuid4().hex[:8], session, path, mode, target_label)
        self.call_from_thread(self._register_session, rec)
        rec.unsubscribe = self.bridge.attach(rec.sid, session.bus)
        session.start()

    def _register_session(self, rec: SessionRecord) -> None:
        self._launched(rec.entry_path, rec.mode)
        s = rec.session
        logs = s.log_paths
        first = None
        for pb in s.builds:
            key = f"{rec.sid}/{pb.name}"
            b = BuildModel(
                key=key,
                name=pb.name,
                session_id=rec.sid,
                template_path=rec.entry_path,
                mode=rec.mode,
                target=rec.target,
                template_name=display_name(rec.entry_path, self.root),
                build_type=pb.type,
                log_path=logs.get(pb.name, ""),
                run_id=s.run_id,
            )
            self.builds[key] = b
            rec.builds.append(key)
            first = first or key
        self.sessions[rec.sid] = rec
        for w in s.warnings:
            self.notify(relative(w, self.root), title="Warning", severity="warning", timeout=6)
        if first is not None:
            self.select_build(first, None)
        self.refresh_panes()
        self.refresh_bindings()

    def on_launch_failed(self, msg: LaunchFailed) -> None:
        self._launched(msg.entry_path, msg.mode)
        entry = self.templates.entry(msg.entry_path)
        self.notify(
            f"{entry.name if entry else msg.entry_path}: {msg.title}; see the output pane.",
            severity="error",
        )
        if entry is not None:
            import dataclasses

            self.show_problems(dataclasses.replace(entry, problems=msg.problems, warnings=[]))

    # -- the drain: engine events -> model -> widgets ---------------------------------------
    def drain(self) -> None:
        """20 times a second: engine events into the model, then redraw only what changed."""
        items = self.bridge.drain()
        if not items:
            return
        now = self.clock.now()
        state: set[str] = set()  # builds whose status or stages changed
        output: set[str] = set()  # builds that got lines
        notable: list[tuple[str, BuildModel]] = []
        finished_sessions: list[SessionRecord] = []
        builds = self.builds
        for sid, ev in items:
            if ev.type == "run.finished":
                rec = self.sessions.get(sid)
                if rec is not None:
                    rec.done = True
                    finished_sessions.append(rec)
                continue
            name = ev.data.get("build")
            if name is None:
                continue
            key = f"{sid}/{name}"
            b = builds.get(key)
            if b is None:
                continue
            what = apply(b, ev, now)
            if ev.type == "output":
                output.add(key)
                continue
            state.add(key)
            if ev.type == "build.started":
                self._expect(b, self.sessions.get(sid))
            elif ev.type == "stage.started":
                output.add(key)  # a stage separator line
            if what in ("failed", "paused", "finished"):
                notable.append((what, b))
        view = self.view
        for key in output:
            if view.buffer is builds[key].output:
                view.sync()
        for what, b in notable:
            self._notable(what, b)
        for rec in finished_sessions:
            if rec.unsubscribe:
                rec.unsubscribe()
            self._load_history()
        if state:
            if self.selected_build in state:
                self._update_summary()
                self._update_output_title()
            self.refresh_panes()
            keys_now = frozenset(k for k, b in builds.items() if b.question)
            if keys_now != self._question_keys or notable:
                self._question_keys = keys_now
                self._footer_waiting = self._waiting_selected()
                self.refresh_bindings()
        if self.selected_build in output or self.selected_build in state:
            t = time.monotonic()
            if (
                state or t - self._bar_at > BAR_PERIOD
            ):  # the line count need not move 20 times a second
                self._bar_at = t
                self.output.update_bar()
            elif not self._bar_pending:
                self._bar_pending = True
                self.set_timer(BAR_PERIOD, self._late_bar)

    def _late_bar(self) -> None:
        self._bar_pending = False
        self._bar_at = time.monotonic()
        self.output.update_bar()

    def _expect(self, b: BuildModel, rec: SessionRecord | None) -> None:
        """Expected stage lengths from earlier successful runs (for the progress bars)."""
        if rec is None:
            return
        try:
            from backend.engine.history import stage_durations

            med = stage_durations(os.path.join(rec.session.state_dir, "history.db"), b.name)
        except Exception:  # noqa: BLE001 - no estimate is fine
            return
        for st in b.stages:
            st.expected = med.get(st.name)

    def _notable(self, what: str, b: BuildModel) -> None:
        if what in ("failed", "paused") and b.failed_stage is not None:
            # failure first: select it, scroll its output to the error
            self.select_build(b.key, b.failed_stage, focus_error=True)
            if what == "paused" and RETRY_CHOICES & set((b.question or {}).get("choices") or []):
                self._ask_what_to_run(b)  # the answer to the r just pressed
            elif what == "paused" and (self.size.width >= 110 or self.screen.maximized):
                # a narrow screen has the summary (just selected) say it, not a toast over it
                q = b.question or {}
                r = self._key_of("retry")
                self.notify(
                    f"{b.label}: {q.get('prompt') or 'paused'} — {r} retries, "
                    f"{self._key_of('skip')} skips, {self._key_of('cleanup')} cleans up, "
                    f"{self._key_of('keep')} keeps the machine.",
                    severity="warning",
                    timeout=8,
                )
        elif what == "finished":
            if b.kept:
                hint = b.access_hint or "(nothing to get into: it ran on this host)"
                self.notify(
                    f"{b.label}: machine kept. Get into it with: {hint}",
                    severity="warning",
                    timeout=15,
                )
            elif b.status == "succeeded":
                self.notify(f"{b.label} succeeded", timeout=4)
            elif b.status == "cancelled":
                self.notify(f"{b.label} cancelled; cleanup done", severity="warning", timeout=4)
            else:
                self.notify(f"{b.label} {b.status}: {b.error}"[:300], severity="error", timeout=8)

    def tick(self) -> None:
        """Once a second: elapsed times and "about N s left" move on."""
        if any(b.live for b in self.builds.values()):
            self.refresh_panes()

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

    # -- redraw -------------------------------------------------------------------------
    def refresh_panes(self) -> None:
        v = self.variables()
        now = self.clock.now()
        session_rows = [
            (k, build_row(v, self.builds[k], now))  # newest run first
            for rec in reversed(list(self.sessions.values()))
            for k in rec.builds
        ]
        hist = [(h.key, build_row(v, h, now)) for h in self.history[:HISTORY_ROWS]]
        self.builds_table.sync(session_rows + hist, select=self.selected_build)
        b = self.current_build()
        if b is None:
            self.stages_table.sync([])
            self.stages_table.border_title = "Stages"
            return
        bar = self.stages_table.width_of("progress")
        rows = [(f"stage:{s.index}", stage_row(v, s, now, bar, self.root)) for s in b.stages]
        sel = f"stage:{self.selected_stage}" if self.selected_stage is not None else None
        if sel is None and not self.stages_table.has_focus:
            cur = b.current_stage()
            sel = f"stage:{cur.index}" if cur is not None else None
        self.stages_table.sync(rows, select=sel)
        from textual.markup import escape

        elapsed = fmt_duration(b.elapsed(now))
        _set_title(
            self.stages_table,
            escape(
                f"Stages · {b.label} · {status.plain(b.status)}"
                + (b.status_words[len(b.status) :] if b.status_words != b.status else "")
                + (f" · {elapsed}" if elapsed else "")
            ),
        )
        _set_title(
            self.builds_table, f"Builds · {sum(1 for x in self.builds.values() if x.live)} running"
        )

    def _update_summary(self) -> None:
        """The sticky summary: what failed, where in the template, the last lines, what to do."""
        b = self.current_build()
        if b is None or b.mode == "history" and b.status == "succeeded":
            self.output.set_summary(None)
            return
        v = self.variables()
        t = Text()
        kind = "failed"
        st = b.stage(b.failed_stage)
        if b.question:
            kind = "paused"
            q = b.question
            st = b.stage(q.get("stage")) or st
            t.append_text(status.status_text(v, "paused"))
            t.append(f"  {q.get('prompt') or 'waiting for an answer'}", style="bold")
        elif b.kept:
            kind = "kept"
            t.append_text(status.status_text(v, "kept"))
            t.append("  the machine is kept as it is", style="bold")
        elif st is not None and st.status in ("failed", "crashed"):
            t.append_text(status.status_text(v, st.status))
            t.append(f"  stage {st.index + 1}/{len(b.stages)}: {st.name}", style="bold")
        elif b.status in ("failed", "crashed") and b.error:
            t.append_text(status.status_text(v, b.status))
            t.append(f"  {b.label}", style="bold")
        else:
            self.output.set_summary(None)
            return
        if st is not None and st.source:
            t.append(f"  at {st.source}", style=status.theme_style(v, "accent"))
        error = (b.question or {}).get("error") or (st.error if st else "") or b.error
        if error:
            code = re.search(r"exit (?:status|code)[^0-9-]*(-?\d+)", error)
            t.append("\n")
            if code:
                t.append(f"exit code {code.group(1)} · ", style="bold")
            lines = relative(error, self.root).splitlines()
            t.append(lines[0][:400])
            for more in lines[1:SUMMARY_ERROR_LINES]:  # a located template error, a retry's why
                t.append("\n" + more[:400])
        if kind == "paused":
            choices = (b.question or {}).get("choices") or []
            if RETRY_CHOICES & set(choices):
                choices = ["which"] + [c for c in choices if c not in RETRY_CHOICES and c != "retry"]
            short = self.output.size.width < 100  # one line at 80 columns
            names = {
                "which": ("retry", "choose what to run"),
                "retry": ("retry", "retry" if short else "retry (re-reads the template)"),
                "skip": ("skip", "skip"),
                "cleanup": ("cleanup", "clean up"),
                "abort": ("keep", "keep" if short else "keep the machine"),
                "continue": ("retry", "continue"),
            }
            parts = [f"{self._key_of(names[c][0])} {names[c][1]}" for c in choices if c in names]
            t.append("\n" + (" · " if short else "  ·  ").join(parts), style="bold")
        elif kind == "kept":
            hint = b.access_hint or "nothing to get into: it ran on this host"
            t.append("\nGet into it with: ", style="bold")
            t.append(hint)
            t.append(f"\nRemove it later with: {KEPT_CLEANUP}")
        if st is not None:  # last, so a short terminal cuts these first
            for line in b.output.tail(st.index, 3, (STDOUT, STDERR)):
                t.append("\n│ ", style=status.theme_style(v, "foreground-muted"))
                t.append(line[:300])
        self.output.set_summary(t, kind)

    def _key_of(self, binding_id: str) -> str:
        from tui.screens.help import display_key

        return display_key(self.keymap.get(binding_id, keys.spec(binding_id).key).split(",")[0])

    # -- answering a paused build -----------------------------------------------------------
    def _paused_build(self) -> BuildModel | None:
        b = self.current_build()
        if b is not None and b.question:
            return b
        for b in self.builds.values():
            if b.question:
                return b
        return None

    def _answer(self, choice: str) -> None:
        b = self._paused_build()
        if b is None:
            self.notify("No build is waiting for an answer.", severity="warning", timeout=3)
            return
        choices = (b.question or {}).get("choices") or []
        if choice == "retry" and RETRY_CHOICES & set(choices):
            self._ask_what_to_run(b)
            return
        if choice == "retry" and "retry" not in choices and "continue" in choices:
            choice = "continue"
        if choice not in choices:
            self.notify(
                f"{b.label} cannot {choice} now (choices: {', '.join(choices)}).",
                severity="warning",
            )
            return
        self._send_answer(b, choice)

    def _send_answer(self, b: BuildModel, choice: str) -> None:
        rec = self.sessions.get(b.session_id)
        if rec is None or not rec.session.answer(b.name, choice):
            self.notify(f"{b.label} is no longer waiting.", severity="warning", timeout=3)
            return
        b.question = None
        b.status = "running" if choice != "cleanup" else "cancelling"
        if choice in ("cleanup", "abort"):
            self.selected_stage = None  # the cleanup happens in other stages: show it all
            self.show_selected()
        self._update_summary()
        self.refresh_panes()
        self.refresh_bindings()

    def _ask_what_to_run(self, b: BuildModel) -> None:
        """The template changed around the failed provisioner: the user says what runs."""
        from tui.screens.dialogs import RetryChoiceScreen

        if isinstance(self.screen, RetryChoiceScreen):
            return
        q = b.question or {}
        details = q.get("details") or {}
        options = [(c, details.get(c, c)) for c in ("matched", "from-changed") if c in q["choices"]]
        options.append(("retry", "read the template again (after more edits)"))
        options.append(("", "stay paused (r asks again; s, c and k still answer)"))
        key = b.key

        def chosen(choice: str | None) -> None:
            current = self.builds.get(key)
            if choice and current is not None and current.question is q:
                self._send_answer(current, choice)

        self.push_screen(
            RetryChoiceScreen(
                f"{b.label}: {q.get('prompt') or 'what should run?'}",
                relative(q.get("error") or "", self.root),
                [(c, relative(text, self.root)) for c, text in options],
            ),
            chosen,
        )

    def action_retry(self) -> None:
        self._answer("retry")

    def action_skip(self) -> None:
        self._answer("skip")

    def action_cleanup(self) -> None:
        self._answer("cleanup")

    def action_keep(self) -> None:
        self._answer("abort")

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

    def action_cancel(self, _how: str = "") -> None:
        b = self.current_build()
        if b is None or not b.live:
            live = [x for x in self.builds.values() if x.live]
            if len(live) != 1:
                self.notify("Select a running build to cancel.", severity="warning", timeout=3)
                return
            b = live[0]
        rec = self.sessions.get(b.session_id)
        if rec is None:
            return
        rec.session.cancel("cancelled from the dashboard", build=b.name)
        b.status = "cancelling"
        self.notify(f"Cancelling {b.label}; cleaning up…", timeout=3)
        self.select_build(b.key, None)  # cleanup output is in the builder's stages: show it all

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

    def _waiting_selected(self) -> bool:
        b = self.current_build()
        return b is not None and b.question is not None

    # -- edit ---------------------------------------------------------------------------
    def _edit_target(self) -> tuple[str, int] | None:
        focused = self.focused
        in_builds = focused is not None and any(
            isinstance(w, (BuildsTable, StagesTable, OutputPane))
            for w in focused.ancestors_with_self
        )
        b = self.current_build()
        if in_builds and b is not None and b.template_path and b.mode != "history":
            st = b.stage(self.selected_stage) or b.stage(b.failed_stage)
            line = 0
            if st is not None and st.source and ":" in st.source:
                try:
                    line = int(st.source.rsplit(":", 1)[1])
                except ValueError:
                    line = 0
            path = b.template_path
            if os.path.isdir(path) and st is not None and st.source:
                path = os.path.join(path, st.source.rsplit(":", 1)[0])
            return path, line
        ref = self.selected_ref()
        if ref is None:
            return None
        entry = self.templates.entry(ref.path)
        path = ref.path
        line = 0
        if ref.problem is not None and ref.problem.line:
            line = ref.problem.line
            path = ref.problem.file or path
        elif entry is not None and ref.kind == "build":
            line = next((ln for n, _t, ln in entry.builds if n == ref.build), 0)
        elif entry is not None and entry.problems:
            first = next((p for p in entry.problems if p.line), None)
            if first is not None:
                line, path = first.line, first.file or path
        if os.path.isdir(path):
            files = sorted(n for n in os.listdir(path) if n.endswith((".pkr.hcl", ".pkr.json")))
            path = os.path.join(path, files[0]) if files else path
        return path, line

    def action_edit(self, _how: str = "") -> None:
        picked = self._edit_target()
        if picked is None:
            self.notify("No template selected.", severity="warning")
            return
        path, line = picked
        from tui.editor import editor_argv, editor_command

        try:
            argv = editor_argv(editor_command(), path, line)
        except ValueError as e:  # unbalanced quotes in $EDITOR
            self.notify(f"cannot read $VISUAL/$EDITOR: {e}", severity="error")
            return
        try:
            with self.suspend():
                code = subprocess.call(argv)
        except SuspendNotSupported:  # headless (tests, screenshots): run it as it is
            code = subprocess.call(argv, stdin=subprocess.DEVNULL)
        except OSError as e:
            self.notify(
                f"cannot start {argv[0]}: {e.strerror or e} (set $EDITOR)", severity="error"
            )
            return
        if code:
            self.notify(f"{argv[0]} exited with {code}", severity="warning", timeout=4)
        for e in self.templates.entries:
            if e.path == path or (os.path.isdir(e.path) and path.startswith(e.path + os.sep)):
                self._validate(e)

    def action_iam_policy(self, _how: str = "") -> None:
        picked = self._entry_for_action()
        if picked is None:
            return
        entry, _build = picked
        from backend.iam.policy import NoAwsError, policy_texts
        from backend.template.errors import TemplateError
        from tui.screens.iam import IamPolicyScreen

        try:
            explain, policy = policy_texts(entry.path)
        except NoAwsError:
            self.notify(f"{entry.name} uses no AWS builder or data source: it needs no IAM "
                        "policy.", severity="warning", timeout=4)
            return
        except TemplateError:
            self.notify(f"{entry.name} has problems; fix them first.", severity="error")
            self.show_problems(entry)
            return
        except OSError as e:
            self.notify(f"cannot read {entry.name}: {e.strerror or e}", severity="error")
            return
        self.push_screen(IamPolicyScreen(entry.name, explain, policy))

    # -- output: copy, save ---------------------------------------------------------------
    def copy_output(self) -> None:
        text, left_out = self.view.text_of_view()
        if not text.strip():
            self.notify("Nothing to copy.", severity="warning", timeout=3)
            return
        self.copy_to_clipboard(text)
        n = text.count("\n")
        more = (
            f" (the last {n:,}; {left_out:,} earlier lines are in the log file)" if left_out else ""
        )
        self.notify(f"Copied {n:,} lines to the clipboard{more}.", timeout=3)

    def ask_save_path(self) -> None:
        b = self.current_build()
        if b is None or self.shown_problems:
            self.notify("Select a build first.", severity="warning", timeout=3)
            return
        st = b.stage(self.selected_stage)
        slug = re.sub(r"[^A-Za-z0-9._-]+", "-", f"{b.name}-stage{st.index + 1}" if st else b.name)
        default = os.path.join(self.root, f"{slug.strip('-')[:80]}.log")
        self.output.open_prompt("save", default)

    def save_output(self, path: str) -> None:
        b = self.current_build()
        if b is None:
            return
        path = os.path.abspath(os.path.join(self.root, os.path.expanduser(path)))
        try:
            n = write_log(b, self.selected_stage, path)
        except OSError as e:
            self.notify(f"cannot save {path}: {e.strerror or e}", severity="error")
            return
        self.notify(f"Saved {n:,} lines to {relative(path, self.root)}", timeout=4)

    # -- history --------------------------------------------------------------------------
    def _load_history(self) -> None:
        ours = {rec.session.run_id for rec in self.sessions.values()}
        self._history_worker([e.path for e in self.templates.entries], ours)

    @work(thread=True, exit_on_error=False, group="history", exclusive=True)
    def _history_worker(self, paths: list[str], ours: set[str]) -> None:
        from backend.engine.history import recent_runs
        from backend.engine.session import default_state_dir

        dbs = []
        for path in paths:
            db = os.path.join(default_state_dir(path), "history.db")
            if db not in dbs:
                dbs.append(db)
        rows: list[BuildModel] = []
        for db in dbs:
            try:
                runs = recent_runs(db, limit=HISTORY_ROWS)
                alive = live_runs(db)
            except Exception:  # noqa: BLE001 - a broken history db is not the dashboard's problem
                continue
            for r in runs:
                if r["id"] in ours:
                    continue
                r["alive"] = r["id"] in alive
                for bd in r["builds"]:
                    b = BuildModel(
                        key=f"h:{r['id']}/{bd['name']}",
                        name=bd["name"],
                        session_id="",
                        template_path=r["template"],
                        template_name=display_name(r["template"], self.root),
                        mode="history",
                        build_type=bd.get("type", ""),
                        status=history_status(bd["status"], r),
                        error=bd.get("error") or "",
                        log_path=bd.get("log") or "",
                        run_id=r["id"],
                        history_ts=r["started"],
                        duration=bd.get("duration"),
                        kept=bool(bd.get("kept")),
                        access_hint=bd.get("access_hint") or "",
                    )
                    b.db_path = db
                    rows.append(b)
        rows.sort(key=lambda b: b.history_ts or 0, reverse=True)
        self.post_message(HistoryLoaded(rows[:HISTORY_ROWS]))

    def on_history_loaded(self, msg: HistoryLoaded) -> None:
        old = {h.key: h for h in self.history}
        self.history = [old.get(h.key, h) for h in msg.rows]
        self.refresh_panes()

    @work(thread=True, exit_on_error=False, group="log")
    def _load_log(self, b: BuildModel) -> None:
        from backend.engine.history import stages_of

        stages = []
        try:
            for s in stages_of(b.db_path, b.run_id, b.name):
                st = StageModel(
                    s["index"], s["name"], s["kind"], status=s["status"], error=s["error"]
                )
                st.started, st.ended = 0.0, float(s["duration"] or 0.0)
                stages.append(st)
        except Exception:  # noqa: BLE001
            stages = []
        self.post_message(LogLoaded(b.key, read_log(b.log_path), stages))

    def on_log_loaded(self, msg: LogLoaded) -> None:
        b = self._history_row(msg.key)
        if b is None:
            return
        b.output = msg.buffer
        b.stages = msg.stages
        failed = [s for s in b.stages if s.status in ("failed", "crashed")]
        b.failed_stage = failed[-1].index if failed else None
        if self.selected_build == msg.key:
            self.show_selected()
            self.refresh_panes()

    # -- help, quit --------------------------------------------------------------------------
    def action_help(self) -> None:
        from tui.screens.help import HelpScreen

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
        from tui.screens.dialogs import ConfirmScreen

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

        from tui.screens.dialogs import WaitScreen

        self.push_screen(WaitScreen(rows, done, lambda: self.exit(0), self.variables))


def _set_title(widget, title: str) -> None:
    if widget.border_title != title:
        widget.border_title = title


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
