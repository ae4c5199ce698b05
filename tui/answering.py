"""Acting on a build: answering a paused build (retry, skip, clean up, keep), cancelling,
editing the template, copying or saving the output."""

from __future__ import annotations

import os
import re
import subprocess

from textual.app import SuspendNotSupported

from . import keys
from .discovery import (
    relative,
)
from .history import write_log
from .messages import RETRY_CHOICES
from .model import (
    BuildModel,
)
from .widgets.output_pane import OutputPane
from .widgets.tables import BuildsTable, StagesTable


class Answering:
    """Part of KilnApp (app.py): its attributes are the app's."""

    def _key_of(self, binding_id: str) -> str:
        from .screens.help import display_key

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
        from .screens.dialogs import RetryChoiceScreen

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
        from .editor import editor_argv, editor_command

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

    # -- output: copy, save ---------------------------------------------------------------
    def action_iam_policy(self, _how: str = "") -> None:
        picked = self._entry_for_action()
        if picked is None:
            return
        entry, _build = picked
        from ..backend.api import NoAwsError, iam_policy_texts
        from ..backend.template.errors import TemplateError
        from .screens.iam import IamPolicyScreen

        try:
            explain, policy = iam_policy_texts(entry.path)
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

