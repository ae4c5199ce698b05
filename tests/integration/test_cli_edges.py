"""`kiln` as a process at its edges: many at once, closed pipes, full disks, bad flags."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from backend.engine.history import recent_runs

KILN = [sys.executable, "-m", "backend.cli"]


def write(path: Path, doc: dict) -> Path:
    path.write_text(json.dumps(doc))
    return path


def echo_template(tmp_path: Path) -> Path:
    return write(tmp_path / "t.json", {
        "builders": [{"type": "null", "communicator": "none"}],
        "provisioners": [{"type": "shell-local", "inline": ["echo hello"]}],
    })


def test_ten_builds_at_once_each_record_their_end(tmp_path):
    """Each process writes run.finished and its history row before it exits."""
    tpl = echo_template(tmp_path)
    for rnd in range(3):
        procs = []
        for i in range(10):
            ev = tmp_path / f"ev{rnd}-{i}.jsonl"
            procs.append((ev, subprocess.Popen([*KILN, "build", "-color=false", "-events", str(ev),
                                                str(tpl)], stdout=subprocess.DEVNULL,
                                               stderr=subprocess.PIPE, text=True)))
        for ev, p in procs:
            _, err = p.communicate(timeout=180)
            assert p.returncode == 0, err
            last = json.loads(ev.read_text().splitlines()[-1])
            assert last["type"] == "run.finished" and last["status"] == "succeeded", ev
    runs = recent_runs(str(tmp_path / ".kiln" / "history.db"), limit=100)
    assert len(runs) == 30
    assert {r["status"] for r in runs} == {"succeeded"}
    assert all(r["finished"] for r in runs)
