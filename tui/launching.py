"""Starting runs from the dashboard: a build, the provisioners on the null builder, the
post-processors on the file builder (each a session of its own), and what a failed start says."""

from __future__ import annotations

import os
import threading
import time
import uuid
from typing import Any

from textual import work

from . import keys
from .clock import fmt_ago
from .discovery import (
    ProblemView,
    TemplateEntry,
    display_name,
    relative,
)
from .messages import (
    LaunchFailed,
    SessionRecord,
)
from .model import (
    BuildModel,
)


class Launching:
    """Part of KilnApp (app.py): its attributes are the app's."""

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
        from .screens.dialogs import ConfirmScreen

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
        from ..backend.api import Options, check_builds

        only = (build,) if build else ()
        problem = check_builds(entry.path, Options(only=only, vars=dict(self.vars),
                                                   var_files=self.var_files))
        if problem:
            self.notify(f"{entry.name}: {problem}", severity="error", timeout=8)
            return
        from .devmode import DashboardDev

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
        from ..backend.api import NullTarget, kept_machines

        here_ok = bool(entry.builds) and all(n in entry.local_builds for n in entry.build_names)
        host = NullTarget("local")
        ours: list[tuple[str, Any]] = []
        others: list[tuple[str, Any]] = []
        notes: list[str] = []
        runs = {rec.session.run_id: rec.entry_path for rec in self.sessions.values()}
        runs.update({h.run_id: h.template_path for h in self.history})
        try:
            from ..backend.api import Ledger

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

        from .screens.dialogs import TargetPicker

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

        from .screens.dialogs import ConfirmScreen

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
        from ..backend.api import default_state_dir, last_artifacts

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
        from .screens.dialogs import ArtifactPicker

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
        from ..backend.api import Options, Session, default_state_dir, load_template
        from ..backend.template.errors import TemplateError

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
                from ..backend.api import provisioners_on_null

                tpl = provisioners_on_null(tpl, target, builds=[builds] if builds else None)
                opts.state_dir = os.path.join(state, "debug-runs")
            if mode == "file":
                from ..backend.api import (
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

