"""Closing the terminal (SIGHUP) or SIGTERM with a build running: the dashboard leaves as
quit does, cancelling the build and cleaning up, instead of leaving it running."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest
from tui_helpers import null_builder, shell, write_template

pytestmark = pytest.mark.tui

ROOT = Path(__file__).resolve().parents[2]


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _drain(fd: int, until: float) -> None:
    while time.monotonic() < until:
        r, _, _ = select.select([fd], [], [], 0.1)
        if r:
            try:
                if not os.read(fd, 65536):
                    return
            except OSError:
                return


@pytest.mark.parametrize("sig", [signal.SIGHUP, signal.SIGTERM])
def test_a_closed_terminal_cancels_the_running_build(proj, tmp_path, sig):
    pidfile = tmp_path / "pid"
    write_template(
        proj / "slow.json", [null_builder("slow")], [shell(f"echo $$ > {pidfile}", "sleep 60")]
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT), TERM="xterm-256color")
    env["KILN_CONFIG_DIR"] = str(tmp_path / "config")
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    proc = subprocess.Popen(
        [sys.executable, "-m", "kiln.backend.cli", "tui", str(proj)],
        stdin=slave, stdout=slave, stderr=slave, env=env, close_fds=True,
        start_new_session=True,
    )
    os.close(slave)
    try:
        deadline = time.monotonic() + 60
        while not (pidfile.exists() and pidfile.read_text().strip()):
            assert time.monotonic() < deadline, "the build never started"
            _drain(master, time.monotonic() + 0.5)
            os.write(master, b"b")  # until the templates are found, b does nothing
        script = int(pidfile.read_text())
        assert _alive(script)
        proc.send_signal(sig)
        end = time.monotonic() + 30
        while proc.poll() is None and time.monotonic() < end:
            _drain(master, time.monotonic() + 0.2)
        assert proc.poll() is not None, "the dashboard did not exit"
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        os.close(master)
    assert not _alive(script)  # the provisioner was stopped with its build
    from kiln.backend.engine.history import recent_runs
    from kiln.backend.engine.ledger import Ledger

    (run,) = recent_runs(str(proj / ".kiln" / "history.db"))
    assert run["status"] == "cancelled", run
    led = Ledger("test-reader")
    try:
        assert led.entries(run["id"]) == []  # nothing left for kiln cleanup
    finally:
        led.close()
