"""Logs and history for the dashboard: earlier runs' rows, log files read back and saved.

The engine writes one log file per build (``==>`` for its own lines, ``---`` for stage
boundaries) and a SQLite history; these helpers turn them into what the panes show.
"""

from __future__ import annotations

import os
import re

from .model import MARK, STDOUT, UI, UI_ERROR, BuildModel, OutputBuffer


def history_status(build_status: str, run: dict) -> str:
    """A build still "running" in a run whose process is gone was killed: crashed."""
    if build_status in ("running", "pending", "paused", "cancelling") and not run.get("alive"):
        return "crashed"
    return build_status


def live_runs(db: str) -> set[str]:
    """Ids of unfinished runs whose process is still alive."""
    import sqlite3

    from ..backend.api import pid_alive

    if not os.path.exists(db):
        return set()
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        rows = con.execute("SELECT id, pid FROM runs WHERE finished IS NULL").fetchall()
    finally:
        con.close()
    return {rid for rid, pid in rows if pid and pid_alive(int(pid))}


_STAGE_START = re.compile(r"^--- \S+ stage (\d+) started: ")
_STAGE_END = re.compile(
    r"^--- \S+ stage (\d+) (?:succeeded|failed|skipped|cancelled|crashed|cached) after "
)


def read_log(path: str, max_lines: int = 50_000) -> OutputBuffer:
    """A build's log file as an output buffer (stages from the ``---`` lines), its last lines."""
    buf = OutputBuffer(max_lines)
    if not path or not os.path.exists(path):
        buf.append(None, UI_ERROR, [f"the log file {path or '(none)'} is gone"])
        return buf
    from collections import deque

    with open(path, encoding="utf-8", errors="surrogateescape") as f:
        tail = deque(f, maxlen=max_lines)
    stage: int | None = None
    for raw in tail:
        line = raw.rstrip("\n")
        m = _STAGE_START.match(line)
        if m:
            stage = int(m.group(1)) - 1
            buf.append(stage, MARK, [line[4:]])
            continue
        if line.startswith("--- "):
            buf.append(stage, MARK, [line[4:]])
            if _STAGE_END.match(line):
                stage = None
            continue
        if line.startswith("==> "):
            buf.append(stage, UI, [line[4:]])
        else:
            buf.append(stage, STDOUT, [line])
    return buf


def write_log(b: BuildModel, stage: int | None, path: str) -> int:
    """Save a stage's (or the whole build's) full log; from disk when memory lost lines."""
    lines: list[str] | None = None
    if b.output.base and b.log_path and os.path.exists(b.log_path):
        with open(b.log_path, encoding="utf-8", errors="surrogateescape") as f:
            disk = [x.rstrip("\n") for x in f]
        if stage is None:
            lines = disk
        else:
            lines, inside = [], False
            for x in disk:
                m = _STAGE_START.match(x)
                if m and int(m.group(1)) - 1 == stage:
                    inside = True
                if inside:
                    lines.append(x)
                m = _STAGE_END.match(x)
                if m and int(m.group(1)) - 1 == stage:
                    inside = False
    if lines is None:
        buf = b.output
        rows = buf.rows_of(stage) if stage is not None else range(buf.base, buf.total)
        lines = []
        for a in rows:
            code = buf.code(a) & 7
            text = buf.line(a)
            if code in (UI, UI_ERROR):
                text = "==> " + text
            elif code == MARK:
                text = "--- " + text.removeprefix("── ")
            lines.append(text)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w", encoding="utf-8", errors="surrogateescape") as f:
        f.write("\n".join(lines) + ("\n" if lines else ""))
    return len(lines)
