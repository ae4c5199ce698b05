"""`kiln` as a process at its edges: many at once, closed pipes, full disks, bad flags."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from kiln.backend.engine.history import recent_runs

KILN = [sys.executable, "-m", "kiln.backend.cli"]


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


def wait_for(pred, timeout=60.0):
    import time

    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    raise AssertionError("timed out")


def last_event(path: Path) -> dict:
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return {}
    try:
        return json.loads(lines[-1]) if lines else {}
    except json.JSONDecodeError:
        return {}


def test_a_reader_that_stops_reading_does_not_stall_the_build(tmp_path):
    tpl = write(tmp_path / "t.json", {
        "builders": [{"type": "null", "communicator": "none"}],
        "provisioners": [{"type": "shell-local", "inline": ["seq 1 500000"]}],
    })
    ev = tmp_path / "ev.jsonl"
    proc = subprocess.Popen([*KILN, "build", "-color=false", "-events", str(ev), str(tpl)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        # nobody reads stdout meanwhile: the build finishes all the same
        wait_for(lambda: last_event(ev).get("type") == "run.finished", timeout=120)
        assert last_event(ev)["status"] == "succeeded"
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    text = out.decode()
    assert proc.returncode == 0, err.decode()
    assert "lines of output suppressed (the terminal did not keep up); the log has everything:" in text
    assert "Build 'null' finished" in text and text.rstrip().splitlines()[-1].startswith("      log: ")
    log = next((tmp_path / ".kiln" / "logs").glob("*/*.log")).read_text().splitlines()
    assert "1" in log and "500000" in log  # the log has every line


def test_ctrl_c_cancels_while_the_terminal_is_blocked(tmp_path):
    import signal
    import time
    import uuid

    tag = f"kiln-blocked-{uuid.uuid4().hex[:8]}"
    started = tmp_path / "started"
    tpl = write(tmp_path / "t.json", {
        "builders": [{"type": "null", "communicator": "none"}],
        "provisioners": [{"type": "shell-local", "inline": [
            "seq 1 500000", f"touch {started}", f"sh -c 'sleep 60; echo {tag}'"]}],
    })
    ev = tmp_path / "ev.jsonl"
    proc = subprocess.Popen([*KILN, "build", "-color=false", "-events", str(ev), str(tpl)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: started.exists(), timeout=120)
        t0 = time.monotonic()
        proc.send_signal(signal.SIGINT)
        wait_for(lambda: last_event(ev).get("type") == "run.finished", timeout=20)
        assert time.monotonic() - t0 < 15
        assert last_event(ev)["status"] == "cancelled"
        ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
        assert tag not in ps  # the provisioner was stopped, though stdout is still blocked
        proc.stdout.close()  # the reader goes away (| sleep 60 killed by the same ^C)
        proc.wait(timeout=15)
        err = proc.stderr.read().decode()
    finally:
        proc.kill()
    assert proc.returncode == 1
    assert "Traceback" not in err


def test_ctrl_c_stops_reading_a_data_source_even_when_started_ignored(tmp_path):
    """A CI runner may start jobs with SIGINT ignored (background jobs of a script); an
    explicit interrupt still stops Kiln, as it stops Packer."""
    import signal
    import socket
    import time

    lst = socket.socket()
    lst.bind(("127.0.0.1", 0))
    lst.listen(4)
    lst.settimeout(30)
    try:
        (tmp_path / "t.pkr.hcl").write_text(
            f'data "http" "slow" {{\n  url = "http://127.0.0.1:{lst.getsockname()[1]}/"\n}}\n'
            'source "null" "a" {\n  communicator = "none"\n}\n'
            'build {\n  sources = ["source.null.a"]\n  provisioner "shell-local" {\n'
            '    inline = ["echo ${data.http.slow.body}"]\n  }\n}\n')
        proc = subprocess.Popen(
            [*KILN, "build", "-color=false", str(tmp_path / "t.pkr.hcl")],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
        conn, _ = lst.accept()  # the lookup has started
        t0 = time.time()
        proc.send_signal(signal.SIGINT)
        try:
            out, _ = proc.communicate(timeout=30)
        finally:
            proc.kill()
            conn.close()
        assert time.time() - t0 < 5, out
        assert proc.returncode == 1
        assert "Interrupted while reading the template; nothing was built." in out
    finally:
        lst.close()


def slow_build(tmp_path: Path, tag: str) -> Path:
    started = tmp_path / "started"
    return write(tmp_path / "t.json", {
        "builders": [{"type": "null", "communicator": "none"}],
        "provisioners": [{"type": "shell-local", "inline": [
            f"touch {started}", f"sh -c 'sleep 60; echo {tag}'"]}],
    })


def procs_with(tag: str) -> list[str]:
    out = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout
    return [ln for ln in out.splitlines() if tag in ln and "ps -eo" not in ln]


def test_a_closed_terminal_cancels_the_build_with_cleanup(tmp_path):
    import signal
    import uuid

    tag = f"kiln-hup-{uuid.uuid4().hex[:8]}"
    tpl = slow_build(tmp_path, tag)
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    proc = subprocess.Popen([*KILN, "build", "-color=false", str(tpl)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "TMPDIR": str(tmp)})
    try:
        wait_for(lambda: (tmp_path / "started").exists() and procs_with(tag))
        proc.send_signal(signal.SIGHUP)
        out, _ = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 1, out
    assert "Cancelling build after receiving hangup" in out
    assert "Cleanly cancelled builds after being interrupted." in out
    wait_for(lambda: not procs_with(tag), timeout=10)
    assert list(tmp.iterdir()) == []
    runs = recent_runs(str(tmp_path / ".kiln" / "history.db"))
    assert runs[0]["status"] == "cancelled"


def test_nohup_keeps_the_build_going_on_hangup(tmp_path):
    import signal
    import time
    import uuid

    tag = f"kiln-nohup-{uuid.uuid4().hex[:8]}"
    tpl = slow_build(tmp_path, tag)
    proc = subprocess.Popen([*KILN, "build", "-color=false", str(tpl)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL,
                            preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_IGN))
    try:
        wait_for(lambda: (tmp_path / "started").exists() and procs_with(tag))
        proc.send_signal(signal.SIGHUP)
        time.sleep(1)
        assert proc.poll() is None and procs_with(tag)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 1
    finally:
        proc.kill()
    wait_for(lambda: not procs_with(tag), timeout=10)


# -- closed pipes, full disks, bad paths and values: a message, an exit code, no traceback ------


def run_kiln(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([*KILN, *args], capture_output=True, text=True, timeout=120, **kw)


def test_a_reader_that_closes_the_pipe_ends_output_quietly(tmp_path):
    tpl = write(tmp_path / "t.json", {
        "builders": [{"type": "null", "communicator": "none"}],
        "provisioners": [{"type": "shell-local", "inline": ["seq 1 100000"]}],
    })
    ev = tmp_path / "ev.jsonl"
    proc = subprocess.Popen([*KILN, "build", "-color=false", "-events", str(ev), str(tpl)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        first = proc.stdout.readline()  # `| head -1`
        proc.stdout.close()
        assert proc.wait(timeout=60) == 0  # the build succeeded: its exit code, not the pipe's
        err = proc.stderr.read().decode()
    finally:
        proc.kill()
    assert first.startswith(b"==> null: Running local shell script")  # -color=false: no colour lines
    assert err == ""
    assert last_event(ev)["status"] == "succeeded"


def test_a_full_disk_under_stdout_is_a_message_not_a_traceback(tmp_path):
    tpl = echo_template(tmp_path)
    with open("/dev/full", "w") as full:
        built = subprocess.run([*KILN, "build", "-color=false", str(tpl)], stdout=full,
                               stderr=subprocess.PIPE, text=True, timeout=120)
        checked = subprocess.run([*KILN, "validate", str(tpl)], stdout=full,
                                 stderr=subprocess.PIPE, text=True, timeout=120)
    assert built.returncode == 0  # the build itself worked; the log has its output
    assert "Warning: output could not be written: No space left on device; the build logs " \
           "have everything: " in built.stderr
    assert checked.returncode == 1
    assert checked.stderr == "Error: cannot write to standard output: No space left on device\n"
    for p in (built, checked):
        assert "Traceback" not in p.stderr and "Exception ignored" not in p.stderr


def test_an_events_file_that_cannot_be_written_stops_before_building(tmp_path):
    tpl = echo_template(tmp_path)
    p = run_kiln("build", "-events", "/nonexistent/x.jsonl", str(tpl))
    assert p.returncode == 1
    assert p.stderr == ("Error: cannot write the events file /nonexistent/x.jsonl: No such file "
                        "or directory\n")
    assert not (tmp_path / ".kiln").exists()  # nothing ran


def test_a_state_dir_that_cannot_be_used_is_named_as_such(tmp_path):
    tpl = echo_template(tmp_path)
    p = run_kiln("build", "-state-dir", "/proc/kiln-state", str(tpl))
    assert p.returncode == 1
    assert "Error: cannot use the state directory /proc/kiln-state:" in p.stderr
    assert "cannot read" not in p.stderr and "Traceback" not in p.stderr
    p = run_kiln("build", str(tpl), env={**os.environ, "KILN_STATE_DIR": "/proc/kiln-ledger"})
    assert p.returncode == 1
    assert "Error: cannot open the resource ledger in /proc/kiln-ledger:" in p.stderr
    p = run_kiln("cleanup", env={**os.environ, "KILN_STATE_DIR": "/proc/kiln-ledger"})
    assert p.returncode == 1 and "Traceback" not in p.stderr


def test_bad_flag_values_are_usage_errors(tmp_path):
    p = run_kiln("history", "-n", "abc", str(tmp_path))
    assert (p.returncode, p.stderr) == (1, 'Error: invalid value "abc" for flag -n: expected a '
                                           "whole number\n")
    p = run_kiln("history", "-n=0", str(tmp_path))
    assert p.returncode == 1 and "expected 1 or more" in p.stderr


def test_control_characters_from_the_template_are_shown_escaped(tmp_path):
    tpl = write(tmp_path / "t.json", {
        "builders": [{"type": "null", "name": "web\u001b[2J", "communicator": "none"}],
        "provisioners": [{"type": "shell-local", "inline": ["true # \u001b]0;pwned\u0007\u0000"]}],
    })
    p = run_kiln("build", "-color=false", str(tpl))
    assert p.returncode == 0, p.stderr
    assert "\x1b" not in p.stdout and "\x07" not in p.stdout and "\x00" not in p.stdout
    assert "shell-local: true # \\x1b]0;pwned\\x07\\x00" in p.stdout  # the timing table
    assert "--> web\\x1b[2J: succeeded" in p.stdout
    h = run_kiln("history", str(tmp_path))
    assert "\x1b" not in h.stdout and "web\\x1b[2J" in h.stdout


# -- history: crashed runs and retention --------------------------------------------------------


def test_a_killed_run_shows_as_crashed_in_history(tmp_path):
    import signal
    import uuid

    tag = f"kiln-crash-{uuid.uuid4().hex[:8]}"
    tpl = slow_build(tmp_path, tag)
    proc = subprocess.Popen([*KILN, "build", "-color=false", str(tpl)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: (tmp_path / "started").exists() and procs_with(tag))
        proc.kill()
        proc.wait()
    finally:
        proc.kill()
        subprocess.run([*KILN, "cleanup"], capture_output=True, timeout=60)  # its sleep
        for line in procs_with(tag):
            os.kill(int(line.split()[0]), signal.SIGKILL)
    h = run_kiln("history", str(tmp_path))
    assert h.returncode == 0
    first = h.stdout.splitlines()[0]
    assert " crashed " in first and "running" not in h.stdout, h.stdout
    runs = json.loads(run_kiln("history", "-json", str(tmp_path)).stdout)
    assert runs[0]["status"] == "crashed" and runs[0]["builds"][0]["status"] == "crashed"


def test_history_keeps_the_newest_runs_and_prunes_the_rest(tmp_path):
    tpl = echo_template(tmp_path)
    env = {**os.environ, "KILN_HISTORY_KEEP": "3"}
    for _ in range(5):
        assert run_kiln("build", "-color=false", str(tpl), env=env).returncode == 0
    state = tmp_path / ".kiln"
    runs = recent_runs(str(state / "history.db"), limit=100)
    assert len(runs) == 3  # the default retention, here 3, applies after each run
    assert sorted(p.name for p in (state / "logs").iterdir()) == sorted(r["id"] for r in runs)
    p = run_kiln("history", "-prune", "-keep", "1", str(tmp_path))
    assert p.returncode == 0
    assert p.stdout.startswith("Pruned 2 runs and 2 log directories from ")
    left = recent_runs(str(state / "history.db"), limit=100)
    assert [r["id"] for r in left] == [runs[0]["id"]]  # the newest
    assert [p.name for p in (state / "logs").iterdir()] == [runs[0]["id"]]
    bad = run_kiln("history", "-keep", "1", str(tmp_path))
    assert bad.returncode == 1 and "-keep goes with -prune" in bad.stderr


def test_an_events_file_on_a_full_disk_is_reported(tmp_path):
    tpl = echo_template(tmp_path)
    p = run_kiln("build", "-color=false", "-events", "/dev/full", str(tpl))
    assert p.returncode == 0  # the build itself worked
    assert "Warning: the events file could not be written: No space left on device" in p.stderr
    assert "Traceback" not in p.stderr
