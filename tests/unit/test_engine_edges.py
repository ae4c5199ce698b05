"""The engine at its edges: the end of a run, slow views, masking across boundaries."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

from backend.engine.prepare import Options
from backend.engine.session import Session, load_template


def write(path: Path, doc: dict) -> Path:
    path.write_text(json.dumps(doc))
    return path


def null_template(tmp_path: Path, *lines: str) -> Path:
    return write(tmp_path / "t.json", {
        "builders": [{"type": "null", "communicator": "none"}],
        "provisioners": [{"type": "shell-local", "inline": list(lines) or ["true"]}],
    })


def session(path: Path, **opts) -> Session:
    options = Options(state_dir=str(path.parent / ".kiln"), **opts)
    return Session(load_template(str(path), options), options)


# -- the end of a run ----------------------------------------------------------------------


def test_wait_returns_only_after_run_finished_reached_every_subscriber(tmp_path):
    s = session(null_template(tmp_path))
    delivered = threading.Event()

    def slow_view(ev):
        if ev.type == "run.finished":
            time.sleep(0.6)  # a loaded disk under the history database
            delivered.set()

    s.bus.subscribe(slow_view)
    s.start()
    result = None
    while result is None:
        result = s.wait(0.05)  # the CLI's polling loop
    assert delivered.is_set(), "wait() returned before run.finished was delivered"
    assert result.exit_code == 0


def test_a_crash_in_the_session_still_finishes_the_run(tmp_path, monkeypatch):
    s = session(null_template(tmp_path))
    seen = []
    s.bus.subscribe(lambda ev: seen.append(ev.type))

    def broken(*a, **k):
        raise RuntimeError("scheduler bug")

    monkeypatch.setattr(s, "_run_build", broken)
    s.start()
    result = s.wait(20)
    assert result is not None and result.exit_code == 1
    assert seen[-1] == "run.finished"
    from backend.engine.history import recent_runs

    run = recent_runs(str(tmp_path / ".kiln" / "history.db"))[0]
    assert run["status"] == "crashed" and run["finished"]
