"""Build history in an embedded SQLite database (``.kiln/history.db``).

Runs, builds, stages (status and duration) and artifacts, plus the path of each
build's log. Safe for several runs writing at once (WAL, busy timeout). The
dashboard reads stage durations of earlier runs to estimate progress.

A run still "running" whose process is gone (``kill -9``, a power cut) is shown as
``crashed``. History and logs are kept for the newest :data:`DEFAULT_KEEP` runs
(``$KILN_HISTORY_KEEP``, 0 for all); older ones are pruned after each run.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import sqlite3
import threading
import time
from typing import Any

from .events import Event, EventBus
from .private import makedirs_private, touch_private

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY, template TEXT NOT NULL, started REAL NOT NULL, finished REAL,
    status TEXT NOT NULL DEFAULT 'running', exit_code INTEGER, options TEXT NOT NULL DEFAULT '{}',
    pid INTEGER
);
CREATE TABLE IF NOT EXISTS builds (
    run_id TEXT NOT NULL, name TEXT NOT NULL, type TEXT NOT NULL DEFAULT '', status TEXT NOT NULL,
    started REAL NOT NULL, duration REAL, error TEXT NOT NULL DEFAULT '', log TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (run_id, name)
);
CREATE TABLE IF NOT EXISTS stages (
    run_id TEXT NOT NULL, build TEXT NOT NULL, idx INTEGER NOT NULL, name TEXT NOT NULL,
    kind TEXT NOT NULL, status TEXT NOT NULL, started REAL, duration REAL, error TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (run_id, build, idx)
);
CREATE TABLE IF NOT EXISTS artifacts (
    run_id TEXT NOT NULL, build TEXT NOT NULL, builder_id TEXT NOT NULL, artifact_id TEXT NOT NULL,
    files TEXT NOT NULL, description TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS stages_name ON stages(build, name, status);
"""


def connect(path: str) -> sqlite3.Connection:
    makedirs_private(os.path.dirname(path) or ".")
    touch_private(path)
    db = sqlite3.connect(path, timeout=30, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA busy_timeout=30000")
    db.executescript(SCHEMA)
    run_cols = {r[1] for r in db.execute("PRAGMA table_info(runs)")}
    if "proc_start" not in run_cols:  # databases from before crashed runs were told apart
        try:
            db.execute("ALTER TABLE runs ADD COLUMN host TEXT NOT NULL DEFAULT ''")
            db.execute("ALTER TABLE runs ADD COLUMN proc_start INTEGER")
            db.commit()
        except sqlite3.OperationalError:
            pass  # another process added them first
    cols = {r[1] for r in db.execute("PRAGMA table_info(builds)")}
    if "kept" not in cols:  # databases from before machines could be kept
        try:
            db.execute("ALTER TABLE builds ADD COLUMN kept INTEGER NOT NULL DEFAULT 0")
            db.execute("ALTER TABLE builds ADD COLUMN access_hint TEXT NOT NULL DEFAULT ''")
            db.commit()
        except sqlite3.OperationalError:
            pass  # another process added them first
    return db


class History:
    view_name = "the run history"

    def __init__(self, path: str):
        self.path = path
        self._db = connect(path)
        self._lock = threading.Lock()
        self._run_id = ""
        self._logs: dict[str, str] = {}
        self._unsub = None

    def attach(self, bus: EventBus, template: str, logs: dict[str, str]) -> None:
        self._template = template
        self._logs = logs
        self._unsub = bus.subscribe(self, replay=True)

    def _exec(self, sql: str, args: tuple) -> None:
        with self._lock:
            for attempt in range(5):
                try:
                    self._db.execute(sql, args)
                    self._db.commit()
                    return
                except sqlite3.OperationalError:
                    if attempt == 4:
                        raise
                    time.sleep(0.1 * (attempt + 1))

    def __call__(self, ev: Event) -> None:
        d = ev.data
        t = ev.type
        if t == "run.started":
            self._run_id = ev.run
            self._exec("INSERT OR REPLACE INTO runs(id, template, started, options, pid, host, "
                       "proc_start) VALUES (?,?,?,?,?,?,?)",
                       (ev.run, self._template, ev.ts, json.dumps(d.get("options", {})), os.getpid(),
                        socket.gethostname(), _process_start(os.getpid())))
        elif t == "build.started":
            self._exec("INSERT OR REPLACE INTO builds(run_id, name, type, status, started, log) VALUES (?,?,?,?,?,?)",
                       (ev.run, d["build"], d["build_type"], "running", ev.ts, self._logs.get(d["build"], "")))
            for st in d["stages"]:
                self._exec("INSERT OR REPLACE INTO stages(run_id, build, idx, name, kind, status) VALUES (?,?,?,?,?,?)",
                           (ev.run, d["build"], st["index"], st["name"], st["kind"], "pending"))
        elif t == "build.replanned":  # a retry re-read the template: stages from here on changed
            self._exec("DELETE FROM stages WHERE run_id=? AND build=? AND idx>=?",
                       (ev.run, d["build"], d["stage"]))
            for st in d["stages"]:
                if st["index"] >= d["stage"]:
                    self._exec("INSERT OR REPLACE INTO stages(run_id, build, idx, name, kind, status) "
                               "VALUES (?,?,?,?,?,?)",
                               (ev.run, d["build"], st["index"], st["name"], st["kind"], st["status"]))
        elif t == "stage.added":
            self._exec("INSERT OR REPLACE INTO stages(run_id, build, idx, name, kind, status) VALUES (?,?,?,?,?,?)",
                       (ev.run, d["build"], d["index"], d["name"], d["kind"], "pending"))
        elif t == "stage.started":
            self._exec("UPDATE stages SET status='running', started=?, name=? "
                       "WHERE run_id=? AND build=? AND idx=?",
                       (ev.ts, d["name"], ev.run, d["build"], d["stage"]))
        elif t == "stage.finished":
            self._exec("UPDATE stages SET status=?, duration=?, error=? WHERE run_id=? AND build=? AND idx=?",
                       (d["status"], d["duration"], d.get("error", ""), ev.run, d["build"], d["stage"]))
        elif t == "build.finished":
            self._exec("UPDATE builds SET status=?, duration=?, error=?, kept=?, access_hint=? "
                       "WHERE run_id=? AND name=?",
                       (d["status"], d["duration"], d.get("error", ""), int(bool(d.get("kept"))),
                        d.get("access_hint", ""), ev.run, d["build"]))
        elif t == "artifact":
            self._exec("INSERT INTO artifacts VALUES (?,?,?,?,?,?)",
                       (ev.run, d["build"], d["builder_id"], d["id"], json.dumps(d["files"]), d["string"]))
        elif t == "run.finished":
            self._exec("UPDATE runs SET finished=?, status=?, exit_code=? WHERE id=?",
                       (ev.ts, d["status"], d["exit_code"], ev.run))

    def close(self) -> None:
        if self._unsub:
            self._unsub()
        with self._lock:
            self._db.close()


# -- reading --------------------------------------------------------------------------


def recent_runs(path: str, limit: int = 20) -> list[dict[str, Any]]:
    if not os.path.exists(path):
        return []
    db = connect(path)
    try:
        mark_crashed(db)
        runs = db.execute("SELECT id, template, started, finished, status, exit_code FROM runs "
                          "ORDER BY started DESC LIMIT ?", (limit,)).fetchall()
        out = []
        for r in runs:
            builds = db.execute("SELECT name, type, status, duration, error, log, kept, access_hint "
                                "FROM builds WHERE run_id=? ORDER BY started", (r[0],)).fetchall()
            out.append({
                "id": r[0], "template": r[1], "started": r[2], "finished": r[3], "status": r[4],
                "exit_code": r[5],
                "builds": [{"name": b[0], "type": b[1], "status": b[2], "duration": b[3], "error": b[4],
                            "log": b[5], "kept": bool(b[6]), "access_hint": b[7]} for b in builds],
            })
        return out
    finally:
        db.close()


# -- runs whose process is gone ---------------------------------------------------------------

UNFINISHED = ("running", "pending", "paused", "cancelling")


def _process_start(pid: int) -> int | None:
    from ..sdk.process import process_start

    return process_start(pid)


def run_alive(pid: int | None, host: str | None, proc_start: int | None) -> bool:
    """Whether the process that recorded a run still runs (a run of another machine is
    taken as alive: this one cannot tell)."""
    from .ledger import pid_alive

    if host and host != socket.gethostname():
        return True
    if not pid or not pid_alive(int(pid)):
        return False
    now = _process_start(int(pid))
    return proc_start is None or now is None or now == proc_start


def mark_crashed(db: sqlite3.Connection) -> int:
    """Record runs left "running" by a process that is gone as ``crashed``; how many."""
    rows = db.execute("SELECT id, pid, host, proc_start FROM runs WHERE status='running' "
                      "AND finished IS NULL").fetchall()
    gone = [r[0] for r in rows if not run_alive(r[1], r[2], r[3])]
    if not gone:
        return 0
    marks = ",".join("?" * len(UNFINISHED))
    try:
        for rid in gone:
            db.execute("UPDATE runs SET status='crashed' WHERE id=? AND status='running'", (rid,))
            db.execute(f"UPDATE builds SET status='crashed', error=CASE WHEN error='' THEN "
                       f"'Kiln stopped before the build ended (killed or crashed)' ELSE error END "
                       f"WHERE run_id=? AND status IN ({marks})", (rid, *UNFINISHED))
            db.execute(f"UPDATE stages SET status='crashed' WHERE run_id=? AND status IN ({marks}) "
                       "AND status != 'pending'", (rid, *UNFINISHED))
        db.commit()
    except sqlite3.OperationalError:  # a read-only history: shown as it is
        db.rollback()
        return 0
    return len(gone)


# -- retention -----------------------------------------------------------------------------------

#: runs (with their logs) kept in a state directory; older ones are pruned after each run
DEFAULT_KEEP = 100


def default_keep() -> int:
    """``$KILN_HISTORY_KEEP`` (0 keeps everything), else :data:`DEFAULT_KEEP`."""
    raw = os.environ.get("KILN_HISTORY_KEEP", "")
    try:
        return max(0, int(raw)) if raw.strip() else DEFAULT_KEEP
    except ValueError:
        return DEFAULT_KEEP


def prune(state_dir: str, keep: int) -> tuple[int, int]:
    """Keep the newest ``keep`` runs (and every run still going); remove the others' rows and
    log directories, and log directories no run refers to. (runs removed, log dirs removed)"""
    path = os.path.join(state_dir, "history.db")
    logs = os.path.join(state_dir, "logs")
    removed_runs: list[str] = []
    known: set[str] = set()
    if os.path.exists(path):
        db = connect(path)
        try:
            mark_crashed(db)
            rows = db.execute("SELECT id, status, pid, host, proc_start FROM runs "
                              "ORDER BY started DESC").fetchall()
            for i, (rid, status, pid, host, start) in enumerate(rows):
                going = status == "running" and run_alive(pid, host, start)
                if i < keep or going:
                    known.add(rid)
                else:
                    removed_runs.append(rid)
            for rid in removed_runs:
                for table, col in (("stages", "run_id"), ("builds", "run_id"),
                                   ("artifacts", "run_id"), ("runs", "id")):
                    db.execute(f"DELETE FROM {table} WHERE {col}=?", (rid,))
            db.commit()
        finally:
            db.close()
    removed_dirs = 0
    if os.path.isdir(logs):
        recent = time.time() - 3600  # a run that has not written its history row yet
        for name in os.listdir(logs):
            d = os.path.join(logs, name)
            if name in known or not os.path.isdir(d) or os.path.islink(d):
                continue
            try:
                if name not in removed_runs and os.stat(d).st_mtime > recent:
                    continue
            except OSError:
                continue
            shutil.rmtree(d, ignore_errors=True)
            removed_dirs += 1
    return len(removed_runs), removed_dirs


def stage_durations(path: str, build: str, limit: int = 5) -> dict[str, float]:
    """Median duration of each stage name over the last successful runs of ``build``."""
    if not os.path.exists(path):
        return {}
    db = connect(path)
    try:
        rows = db.execute(
            "SELECT s.name, s.duration FROM stages s JOIN runs r ON r.id = s.run_id "
            "WHERE s.build=? AND s.status='succeeded' AND s.duration IS NOT NULL "
            "ORDER BY r.started DESC", (build,)).fetchall()
    finally:
        db.close()
    by: dict[str, list[float]] = {}
    for name, dur in rows:
        lst = by.setdefault(name, [])
        if len(lst) < limit:
            lst.append(dur)
    return {k: sorted(v)[len(v) // 2] for k, v in by.items()}


def stages_of(path: str, run_id: str, build: str) -> list[dict[str, Any]]:
    if not os.path.exists(path):
        return []
    db = connect(path)
    try:
        rows = db.execute("SELECT idx, name, kind, status, duration, error FROM stages WHERE run_id=? AND build=? "
                          "ORDER BY idx", (run_id, build)).fetchall()
    finally:
        db.close()
    return [{"index": r[0], "name": r[1], "kind": r[2], "status": r[3], "duration": r[4] or 0.0,
             "error": r[5]} for r in rows]
