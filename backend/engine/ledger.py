"""The resource ledger: what a run created and has not cleaned up yet.

A step records a resource *before* creating it and releases the record after
its cleanup removed it. Whatever a killed run (``kill -9``, power loss) left is
still listed, and ``kiln cleanup`` reaps it with the reaper registered for its
kind. The ledger is one SQLite file under the Kiln state directory
(``$KILN_STATE_DIR``, else ``$XDG_STATE_HOME/kiln``, else ``~/.local/state/kiln``),
so ``kiln cleanup`` finds resources whichever directory a build ran from.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import stat
import threading
import time
from typing import Any, Callable

from ..sdk.reaper import LedgerEntry
from .private import makedirs_private, touch_private

SCHEMA = """
CREATE TABLE IF NOT EXISTS resources (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL,
    pid INTEGER NOT NULL,
    build TEXT NOT NULL DEFAULT '',
    kind TEXT NOT NULL,
    ident TEXT NOT NULL,
    data TEXT NOT NULL DEFAULT '{}',
    created REAL NOT NULL,
    kept INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS resources_run ON resources(run_id);
"""

# the engine's own kinds; a plugin declares a reaper for each kind it records (entry point
# "reaper.<kind>" in the kiln.plugins group, see kiln.backend.sdk.reaper)
REAPERS: dict[str, Callable[[LedgerEntry], None]] = {}


#: kinds whose records need not survive a power loss (nothing of them does)
VOLATILE_KINDS = frozenset({"process"})


def state_dir() -> str:
    d = os.environ.get("KILN_STATE_DIR")
    if not d:
        base = os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state")
        d = os.path.join(base, "kiln")
    makedirs_private(d)
    return d




class Ledger:
    def __init__(self, run_id: str, path: str | None = None, on_change: Callable[[str, str, str, str], None] | None = None):
        self.run_id = run_id
        self.path = path or os.path.join(state_dir(), "ledger.db")
        self.pid = os.getpid()
        self._lock = threading.Lock()
        self._db = _connect(self.path)
        self.on_change = on_change

    def record(self, kind: str, ident: str, build: str = "", data: dict[str, Any] | None = None) -> int:
        """Write the entry (and fsync through SQLite) before the resource is created.

        A process needs no fsync: a power loss that would lose the record ends the
        process too; a ``kill -9`` of Kiln leaves the record in the OS's cache.
        """
        durable = kind not in VOLATILE_KINDS
        with self._lock:
            if not durable:
                self._db.execute("PRAGMA synchronous=OFF")
            cur = self._db.execute(
                "INSERT INTO resources(run_id, pid, build, kind, ident, data, created) VALUES (?,?,?,?,?,?,?)",
                (self.run_id, self.pid, build, kind, ident, json.dumps(data or {}), time.time()),
            )
            self._db.commit()
            if not durable:
                self._db.execute("PRAGMA synchronous=FULL")
            rid = int(cur.lastrowid)
        if self.on_change:
            self.on_change("created", build, kind, ident)
        return rid

    def update(self, entry_id: int, ident: str | None = None, data: dict[str, Any] | None = None) -> None:
        """Fill in what is known only after creation (an instance id, say)."""
        with self._lock:
            if ident is not None:
                self._db.execute("UPDATE resources SET ident=? WHERE id=?", (ident, entry_id))
            if data is not None:
                self._db.execute("UPDATE resources SET data=? WHERE id=?", (json.dumps(data), entry_id))
            self._db.commit()

    def release(self, entry_id: int) -> None:
        with self._lock:
            row = self._db.execute("SELECT build, kind, ident FROM resources WHERE id=?", (entry_id,)).fetchone()
            durable = row is None or row[1] not in VOLATILE_KINDS
            if not durable:
                self._db.execute("PRAGMA synchronous=OFF")
            self._db.execute("DELETE FROM resources WHERE id=?", (entry_id,))
            self._db.commit()
            if not durable:
                self._db.execute("PRAGMA synchronous=FULL")
        if row and self.on_change:
            self.on_change("released", row[0], row[1], row[2])

    def release_ident(self, ident: str) -> None:
        with self._lock:
            rows = self._db.execute(
                "SELECT id FROM resources WHERE run_id=? AND ident=?", (self.run_id, ident)
            ).fetchall()
        for (rid,) in rows:
            self.release(rid)

    def keep(self, entry_id: int | None = None, build: str | None = None) -> None:
        """Mark resources as deliberately kept (on-error abort): ``kiln cleanup`` still lists them."""
        with self._lock:
            if entry_id is not None:
                self._db.execute("UPDATE resources SET kept=1 WHERE id=?", (entry_id,))
            elif build is not None:
                self._db.execute("UPDATE resources SET kept=1 WHERE run_id=? AND build=?", (self.run_id, build))
            self._db.commit()

    def entries(self, run_id: str | None = None) -> list[LedgerEntry]:
        with self._lock:
            if run_id:
                rows = self._db.execute("SELECT * FROM resources WHERE run_id=? ORDER BY id", (run_id,)).fetchall()
            else:
                rows = self._db.execute("SELECT * FROM resources ORDER BY id").fetchall()
        return [_entry(r) for r in rows]

    def close(self) -> None:
        with self._lock:
            self._db.close()


class BuildLedger:
    """The ledger as one build sees it: every record is filed under that build.

    Two builds may share a ``build_name`` (HCL2 builds of one source), so records
    are keyed by the build's unique name whatever a plugin passes.
    """

    def __init__(self, ledger: Ledger, build: str):
        self._ledger = ledger
        self.build = build

    def record(self, kind: str, ident: str, build: str = "", data: dict[str, Any] | None = None) -> int:
        return self._ledger.record(kind, ident, build=self.build, data=data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ledger, name)


def _connect(path: str) -> sqlite3.Connection:
    makedirs_private(os.path.dirname(path) or ".")
    touch_private(path)
    db = sqlite3.connect(path, timeout=30, check_same_thread=False, isolation_level="DEFERRED")
    db.execute("PRAGMA journal_mode=WAL")
    # FULL: a record written before a resource is created must survive a power loss too
    # (NORMAL in WAL mode may lose the last commits)
    db.execute("PRAGMA synchronous=FULL")
    db.executescript(SCHEMA)
    return db


def _entry(r: tuple) -> LedgerEntry:
    return LedgerEntry(r[0], r[1], r[2], r[3], r[4], r[5], json.loads(r[6] or "{}"), r[7], bool(r[8]))


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def orphaned(ledger: Ledger, include_kept: bool = False, include_live: bool = False) -> list[LedgerEntry]:
    """Entries whose run is no longer alive (or every entry with ``include_live``).

    What was kept on purpose is listed with ``include_kept`` even while the process that
    kept it still runs (a dashboard left open): that run has finished with it."""
    out = []
    for e in ledger.entries():
        if e.run_id == ledger.run_id:
            continue
        if e.kept and not include_kept:
            continue
        if not include_live and not e.kept and pid_alive(e.pid):
            continue
        out.append(e)
    return out


def reap(entry: LedgerEntry) -> None:
    target = REAPERS.get(entry.kind)
    if target is None:
        from . import registry

        target = registry.reaper(entry.kind)
    if target is None:
        raise RuntimeError(f"no reaper for resources of kind {entry.kind!r}")
    target(entry)


def reap_path(entry: LedgerEntry) -> None:
    p = entry.ident
    try:
        st = os.lstat(p)
    except FileNotFoundError:
        return
    if st.st_uid != os.geteuid():  # not what we made: someone took the name since
        raise RuntimeError(f"{p} belongs to another user; left in place")
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(p, ignore_errors=True)
    else:
        os.remove(p)


def reap_process(entry: LedgerEntry) -> None:
    """SIGKILL the process group a killed run left running.

    The group's id is its first process's id; if a process with that id runs now but
    started at another time, the id was given to someone else and nothing is sent.
    """
    import signal

    from ..sdk.process import process_start

    try:
        pgid = int(entry.ident)
    except ValueError:
        return
    then = entry.data.get("start")
    now = process_start(pgid)
    if then is not None and now is not None and now != then:
        return
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


REAPERS.update(tempfile=reap_path, tempdir=reap_path, process=reap_process)
