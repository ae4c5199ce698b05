"""Engine events into the model and the panes: the drain (20 times a second), notable
changes, and redrawing only what changed."""

from __future__ import annotations

import os
import re
import time

from rich.text import Text

from . import status
from .clock import fmt_duration
from .discovery import (
    relative,
)
from .messages import (
    BAR_PERIOD,
    HISTORY_ROWS,
    KEPT_CLEANUP,
    RETRY_CHOICES,
    SUMMARY_ERROR_LINES,
    SessionRecord,
    _set_title,
)
from .model import (
    STDERR,
    STDOUT,
    BuildModel,
    apply,
)
from .widgets.tables import build_row, stage_row


class Refreshing:
    """Part of KilnApp (app.py): its attributes are the app's."""

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
            from ..backend.api import stage_durations

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

