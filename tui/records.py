"""Past runs in the dashboard: the history rows of every template, and a build's log."""

from __future__ import annotations

import os

from textual import work

from .discovery import (
    display_name,
)
from .history import history_status, live_runs, read_log
from .messages import (
    HISTORY_ROWS,
    HistoryLoaded,
    LogLoaded,
)
from .model import (
    BuildModel,
    StageModel,
)


class Records:
    """Part of KilnApp (app.py): its attributes are the app's."""

    # -- history --------------------------------------------------------------------------
    def _load_history(self) -> None:
        ours = {rec.session.run_id for rec in self.sessions.values()}
        self._history_worker([e.path for e in self.templates.entries], ours)

    @work(thread=True, exit_on_error=False, group="history", exclusive=True)
    def _history_worker(self, paths: list[str], ours: set[str]) -> None:
        from ..backend.api import default_state_dir, recent_runs

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
        from ..backend.api import stages_of

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

