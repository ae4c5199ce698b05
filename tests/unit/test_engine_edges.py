"""The engine at its edges: the end of a run, slow views, masking across boundaries."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
from kiln.backend.engine.prepare import Options
from kiln.backend.engine.session import Session, load_template


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
    from kiln.backend.engine.history import recent_runs

    run = recent_runs(str(tmp_path / ".kiln" / "history.db"))[0]
    assert run["status"] == "crashed" and run["finished"]


# -- masking across lines and pieces -------------------------------------------------------

PEM = (
    "-----BEGIN OPENSSH PRIVATE KEY-----\n"
    "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n"
    "QyNTUxOQAAACBq3g5uC1zWJ8pVcT0DdUQ2zKd0Xj0vQ1pQ3pZq2yZq8wAAAJiIoXe8iKF3\n"
    "vAAAAAtzc2gtZWQyNTUxOQAAACBq3g5uC1zWJ8pVcT0DdUQ2zKd0Xj0vQ1pQ3pZq2yZq8w\n"
    "-----END OPENSSH PRIVATE KEY-----\n"
)
BODY = [ln for ln in PEM.splitlines() if not ln.startswith("-----")]


def stage_ui(secrets):
    from kiln.backend.engine.context import StageUI
    from kiln.backend.engine.events import EventBus
    from kiln.backend.engine.masking import Masker

    bus = EventBus("r")
    events = []
    bus.subscribe(events.append)
    return StageUI(bus, "b", 0, Masker(secrets)), events


def text_of(events, stream="stdout") -> str:
    """The stream as a log would hold it: pieces of a long line joined again."""
    out = []
    for e in events:
        if e.type == "output" and e.data["stream"] == stream:
            out.append("\n".join(e.data["lines"]) + ("" if e.data.get("partial") else "\n"))
    return "".join(out)


def test_a_multi_line_secret_printed_line_by_line_is_masked():
    ui, events = stage_ui([PEM])
    ui.output("stdout", ["before"])
    for line in PEM.splitlines():  # `cat key` through a pipe: one line per read
        ui.output("stdout", [line])
    ui.output("stdout", ["after"])
    ui.flush()
    text = text_of(events)
    for line in BODY:
        assert line not in text
    assert text == "before\n<sensitive>\nafter\n"


def test_a_body_line_printed_alone_is_masked_too():
    ui, events = stage_ui([PEM])
    ui.output("stdout", [f"line two is {BODY[1]}", "-----BEGIN OPENSSH PRIVATE KEY-----", "not a key"])
    ui.flush()
    text = text_of(events)
    assert BODY[1] not in text and "not a key" in text


def test_a_secret_cut_where_a_long_line_is_split_is_masked():
    from kiln.backend.sdk.communicator import LineSplitter

    secret = "s3cr3t-VALUE-42"
    for cut in range(1, len(secret)):
        ui, events = stage_ui([secret])
        split = LineSplitter("stdout", ui.output, max_line=64)
        split.feed(b"x" * 60 + secret[:cut].encode())  # over 64 bytes: a piece goes out
        split.feed(secret[cut:].encode() + b"y" * 100)
        split.feed(b"z\n")
        split.flush()
        ui.flush()
        text = text_of(events)
        assert text == "x" * 60 + "<sensitive>" + "y" * 100 + "z\n", cut
        pieces = [ln for e in events if e.type == "output" for ln in e.data["lines"]]
        assert all(secret[:4] not in p and secret[-4:] not in p for p in pieces), cut


def test_a_long_line_stays_whole_in_the_log(tmp_path):
    path = null_template(tmp_path, "head -c 5000000 /dev/zero | tr '\\0' a; echo; echo done")
    s = session(path)
    s.start()
    assert s.wait(120).exit_code == 0
    log = Path(next(iter(s.log_paths.values()))).read_text()
    assert "a" * 5_000_000 + "\n" in log
    lines = [ln for ln in log.splitlines() if ln.startswith("a")]
    assert [len(ln) for ln in lines] == [5_000_000]


def test_a_multi_line_secret_variable_is_masked_in_console_log_and_events(tmp_path):
    import os
    import subprocess
    import sys

    path = write(tmp_path / "t.json", {
        "variables": {"key": PEM},
        "sensitive-variables": ["key"],
        "builders": [{"type": "null", "communicator": "none"}],
        "provisioners": [{"type": "shell-local", "environment_vars": ["KEY={{user `key`}}"],
                          "inline": ['printf "%s\\n" "$KEY" | while read -r l; do echo "$l"; '
                                     "sleep 0.02; done"]}],
    })
    ev = tmp_path / "ev.jsonl"
    proc = subprocess.run([sys.executable, "-m", "kiln.backend.cli", "build", "-color=false",
                           "-events", str(ev), str(path)], capture_output=True, text=True,
                          timeout=120, env=os.environ)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    log = next((tmp_path / ".kiln" / "logs").glob("*/*.log")).read_text()
    for where in (proc.stdout, log, ev.read_text()):
        assert "<sensitive>" in where
        for line in BODY:
            assert line not in where


# -- processes left by a killed run ----------------------------------------------------------


def test_the_process_reaper_kills_the_recorded_group_and_not_a_newcomer():
    import subprocess

    from kiln.backend.engine.ledger import LedgerEntry, reap_process
    from kiln.backend.plugins.communicators.local import process_start

    proc = subprocess.Popen(["sh", "-c", "sleep 30 & sleep 30"], start_new_session=True)
    try:
        start = process_start(proc.pid)
        assert start is not None
        # the id now belongs to a process that started at another time: left alone
        reap_process(LedgerEntry(1, "r", 1, "", "process", str(proc.pid), {"start": start - 1},
                                 0.0, False))
        assert proc.poll() is None
        reap_process(LedgerEntry(1, "r", 1, "", "process", str(proc.pid), {"start": start},
                                 0.0, False))
        assert proc.wait(timeout=10) == -9
    finally:
        proc.kill()


def test_a_run_is_alive_only_while_its_own_process_runs():
    import os
    import socket

    from kiln.backend.engine.history import run_alive
    from kiln.backend.plugins.communicators.local import process_start

    me, host, start = os.getpid(), socket.gethostname(), process_start(os.getpid())
    assert run_alive(me, host, start)
    assert not run_alive(me, host, start - 1)  # the id was given to a later process
    assert run_alive(me, "another-machine", start - 1)  # cannot tell: not called crashed


def test_a_command_never_runs_unrecorded_when_kiln_dies_at_the_worst_moment(tmp_path):
    """Kiln killed right after starting a command, before its record is written: the
    command must not run at all (it would be left running where kiln cleanup cannot see)."""
    import subprocess
    import sys
    import time

    marker = tmp_path / "ran"
    script = tmp_path / "die.py"
    script.write_text(
        "import os\n"
        "from kiln.backend.sdk.cancel import CancelToken\n"
        "from kiln.backend.plugins.communicators.local import run_process\n"
        "class DiesWhileRecording:\n"
        "    def record(self, *a, **k):\n"
        "        os._exit(9)  # as a kill -9 would, at the worst moment\n"
        f"run_process(['sh', '-c', 'sleep 0.5; touch {marker}'], lambda s, l: None, "
        "CancelToken(), ledger=DiesWhileRecording())\n")
    import os

    root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run([sys.executable, str(script)], timeout=60, env=env)
    assert proc.returncode == 9
    time.sleep(1.5)
    assert not marker.exists()


def test_a_recorded_command_gets_its_stdin_whole(tmp_path):
    from kiln.backend.plugins.communicators.local import run_process
    from kiln.backend.sdk.cancel import CancelToken
    from kiln.backend.sdk.communicator import CommunicatorError

    class Records:
        def __init__(self):
            self.kinds = []

        def record(self, kind, ident, build="", data=None):
            self.kinds.append(kind)
            return 1

        def release(self, entry):
            pass

    got = []
    ledger = Records()
    code = run_process(["sh", "-c", "cat; echo done"], lambda s, lines: got.extend(lines),
                       CancelToken(), stdin=b"line one\nline two\n", ledger=ledger)
    assert code == 0 and got == ["line one", "line two", "done"] and ledger.kinds == ["process"]
    with pytest.raises(CommunicatorError, match="cannot start no-such-program: No such file"):
        run_process(["no-such-program"], lambda s, lines: None, CancelToken(), ledger=ledger)
