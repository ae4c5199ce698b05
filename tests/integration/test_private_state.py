"""What a build leaves on this host is readable by its user alone: state and temp files."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

KILN = [sys.executable, "-m", "kiln.backend.cli"]


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def test_logs_history_events_and_ledger_are_private(tmp_path, kiln_state_dir):
    tpl = tmp_path / "t.json"
    tpl.write_text(json.dumps({
        "builders": [{"type": "null", "communicator": "none"}],
        "provisioners": [{"type": "shell-local", "inline": ["echo hello"]}],
    }))
    ledger_home = kiln_state_dir / "fresh"  # made by this run
    env = {**os.environ, "KILN_STATE_DIR": str(ledger_home)}
    old = os.umask(0o022)  # the usual umask: files would be 0644 without care
    try:
        proc = subprocess.run([*KILN, "build", "-color=false", "-events", str(tmp_path / "ev.jsonl"),
                               str(tpl)], capture_output=True, text=True, env=env, timeout=120)
    finally:
        os.umask(old)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    state = tmp_path / ".kiln"
    logs = list((state / "logs").glob("*/*.log"))
    assert logs and "hello" in logs[0].read_text()
    assert mode(state) == 0o700
    assert mode(state / "logs") == 0o700 and mode(logs[0].parent) == 0o700
    assert mode(logs[0]) == 0o600
    for db in state.glob("history.db*"):
        assert mode(db) == 0o600, db
    assert mode(tmp_path / "ev.jsonl") == 0o600
    assert mode(ledger_home) == 0o700
    for db in ledger_home.glob("ledger.db*"):
        assert mode(db) == 0o600, db
