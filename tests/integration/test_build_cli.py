"""`kiln build` as a process: signals, kill -9 + cleanup, output fidelity, machine-readable, events."""

from __future__ import annotations

import glob
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

from kiln.backend.engine.ledger import Ledger

KILN = [sys.executable, "-m", "kiln.backend.cli"]


def write(path: Path, doc: dict) -> Path:
    path.write_text(json.dumps(doc, indent=2))
    return path


def wait_for(pred, timeout=15.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    raise AssertionError("timed out")


def procs_with(tag: str) -> list[str]:
    out = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout
    return [ln for ln in out.splitlines() if tag in ln and "ps -eo" not in ln]


def kiln_temp_files(tmpdir: Path) -> set[str]:
    return set(glob.glob(os.path.join(tmpdir, "*")))


def private_tmp(tmp_path: Path) -> tuple[Path, dict]:
    """Kiln's temp files go to a directory of this test alone (TMPDIR)."""
    d = tmp_path / "tmp"
    d.mkdir()
    return d, {**os.environ, "TMPDIR": str(d)}


def slow_template(tmp_path: Path, tag: str) -> Path:
    started = tmp_path / "started"
    return write(tmp_path / "t.json", {
        "builders": [{"type": "null", "communicator": "none"}, {"type": "null", "name": "two", "communicator": "none"}],
        "provisioners": [{"type": "shell-local", "inline": [
            f"touch {started}", f"sh -c 'sleep 60; echo {tag}' & sleep 60 # {tag}"]}],
    })


def test_sigint_cancels_cleans_up_and_exits_1(tmp_path):
    tag = f"kiln-sig-{uuid.uuid4().hex[:8]}"
    path = slow_template(tmp_path, tag)
    tmpdir, env = private_tmp(tmp_path)
    proc = subprocess.Popen([*KILN, "build", "-color=false", str(path)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=env)
    wait_for(lambda: (tmp_path / "started").exists() and len(procs_with(tag)) >= 2)
    t0 = time.time()
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 1, out
    assert time.time() - t0 < 10
    assert "Cancelling build after receiving interrupt" in out
    assert "Cleanly cancelled builds after being interrupted." in out
    wait_for(lambda: not procs_with(tag), timeout=5)  # the whole process group is gone
    assert kiln_temp_files(tmpdir) == set()
    assert all(e.run_id.startswith("cleanup") or not e.ident.startswith("/tmp/packer-shell")
               for e in Ledger("probe").entries())


def test_interrupt_while_a_data_source_is_read_stops_at_once(tmp_path):
    """An HTTP server that accepts and never answers: the lookup would wait 60 s."""
    import socket

    lst = socket.socket()
    lst.bind(("127.0.0.1", 0))
    lst.listen(4)
    lst.settimeout(30)  # kiln connects within this, or the test fails clearly
    try:
        (tmp_path / "t.pkr.hcl").write_text(
            f'data "http" "slow" {{\n  url = "http://127.0.0.1:{lst.getsockname()[1]}/"\n}}\n'
            'source "null" "a" {\n  communicator = "none"\n}\n'
            'build {\n  sources = ["source.null.a"]\n  provisioner "shell-local" {\n'
            '    inline = ["echo ${data.http.slow.body}"]\n  }\n}\n')
        for sig in (signal.SIGINT, signal.SIGTERM):
            proc = subprocess.Popen([*KILN, "build", "-color=false", str(tmp_path / "t.pkr.hcl")],
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            conn, _ = lst.accept()  # the lookup has started
            t0 = time.time()
            proc.send_signal(sig)
            out, _ = proc.communicate(timeout=30)
            conn.close()
            assert time.time() - t0 < 5, out
            assert proc.returncode == 1, out
            assert "Interrupted while reading the template; nothing was built." in out
            assert "Traceback" not in out
    finally:
        lst.close()


def test_second_interrupt_does_not_abandon_cleanup(tmp_path):
    tag = f"kiln-sig2-{uuid.uuid4().hex[:8]}"
    path = slow_template(tmp_path, tag)
    tmpdir, env = private_tmp(tmp_path)
    proc = subprocess.Popen([*KILN, "build", "-color=false", str(path)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=env)
    wait_for(lambda: (tmp_path / "started").exists() and len(procs_with(tag)) >= 2)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 1
    wait_for(lambda: not procs_with(tag), timeout=5)
    assert kiln_temp_files(tmpdir) == set()


def test_interrupts_while_kiln_exits_after_cleanup_change_nothing(tmp_path):
    """Ctrl-C pressed again and again while an interrupted build finishes: Kiln still exits
    1 with its own message, never dies of the signal or prints a traceback (the handlers
    were put back before the process had exited)."""
    tag = f"kiln-sigexit-{uuid.uuid4().hex[:8]}"
    path = slow_template(tmp_path, tag)
    tmpdir, env = private_tmp(tmp_path)
    proc = subprocess.Popen([*KILN, "build", "-color=false", str(path)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env)
    wait_for(lambda: (tmp_path / "started").exists() and len(procs_with(tag)) >= 2)
    proc.send_signal(signal.SIGINT)
    deadline = time.monotonic() + 60
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            proc.send_signal(signal.SIGINT)
        except ProcessLookupError:
            break
        time.sleep(0.001)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 1, (proc.returncode, err.decode()[-2000:])
    assert b"Traceback" not in err and b"KeyboardInterrupt" not in err
    assert b"Cancelling build after receiving interrupt" in out + err
    wait_for(lambda: not procs_with(tag), timeout=5)
    assert kiln_temp_files(tmpdir) == set()


def test_kill_9_then_kiln_cleanup_removes_what_was_left(tmp_path):
    tag = f"kiln-k9-{uuid.uuid4().hex[:8]}"
    path = slow_template(tmp_path, tag)
    tmpdir, env = private_tmp(tmp_path)
    proc = subprocess.Popen([*KILN, "build", "-color=false", str(path)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=env)
    wait_for(lambda: (tmp_path / "started").exists())
    left = kiln_temp_files(tmpdir)
    assert left  # the run's private directory (the inline scripts inside) exists meanwhile
    scripts = set(glob.glob(os.path.join(tmpdir, "*", "*")))
    assert scripts
    proc.kill()
    proc.wait()
    entries = [e for e in Ledger("probe").entries() if e.pid == proc.pid]
    assert {e.ident for e in entries} >= left | scripts
    out = subprocess.run([*KILN, "cleanup"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "removed tempdir" in out.stdout
    assert kiln_temp_files(tmpdir) == set()
    assert [e for e in Ledger("probe").entries() if e.pid == proc.pid] == []
    # the provisioner's processes outlived Kiln in their own process group: cleanup stops them
    try:
        assert "removed process" in out.stdout
        wait_for(lambda: not procs_with(tag), timeout=5)
    finally:
        for line in procs_with(tag):
            os.kill(int(line.split()[0]), signal.SIGKILL)
    again = subprocess.run([*KILN, "cleanup"], capture_output=True, text=True, timeout=60)
    assert "Nothing to clean up." in again.stdout


def test_output_arrives_intact_in_the_log_and_console(tmp_path):
    gen = tmp_path / "gen.py"
    gen.write_text(
        "import sys\n"
        "w = sys.stdout.buffer.write\n"
        "w(b'\\x1b[31mred text\\x1b[0m\\n')\n"
        "w(b'invalid \\xff\\xfe bytes\\n')\n"
        "w(b'progress 10%\\rprogress 50%\\rprogress 100%\\n')\n"
        "w(b'[bold red]not markup[/]\\n')\n"
        "w(b'x' * 1048576 + b'\\n')\n"
        "w(b'last line without newline')\n"
    )
    path = write(tmp_path / "t.json", {
        "builders": [{"type": "null", "communicator": "none"}],
        "provisioners": [{"type": "shell-local", "inline": [f"{sys.executable} {gen}"]}],
    })
    proc = subprocess.run([*KILN, "build", "-color=false", str(path)], capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stdout[-2000:]
    out = proc.stdout
    assert b"    null: \x1b[31mred text\x1b[0m\n" in out
    assert b"    null: invalid \xff\xfe bytes\n" in out
    assert b"    null: progress 100%\n" in out and b"progress 10%" not in out  # as Packer: after the last \r
    assert b"    null: [bold red]not markup[/]\n" in out
    assert b"    null: " + b"x" * 1048576 + b"\n" in out
    assert b"    null: last line without newline\n" in out
    log = next((tmp_path / ".kiln" / "logs").rglob("null.log")).read_bytes()
    assert b"\x1b[31mred text\x1b[0m\n" in log
    assert b"invalid \xff\xfe bytes\n" in log
    assert b"progress 10%\rprogress 50%\rprogress 100%\n" in log  # the log keeps everything
    assert b"x" * 1048576 + b"\n" in log


def test_machine_readable_lines_follow_packers_format(tmp_path):
    path = write(tmp_path / "t.json", {
        "builders": [{"type": "null", "communicator": "none"}],
        "provisioners": [{"type": "shell-local", "inline": ["echo a,b", "echo err >&2"]}],
    })
    proc = subprocess.run([*KILN, "build", "-machine-readable", str(path)], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0
    lines = proc.stdout.splitlines()
    rows = [ln.split(",", 3) for ln in lines]
    assert all(r[0].isdigit() for r in rows), lines
    assert ",,ui,message,    null: a%!(PACKER_COMMA)b" in proc.stdout
    assert ",,ui,error,==> null: err" in proc.stdout
    assert ",null,artifact-count,1" in proc.stdout
    assert ",null,artifact,0,builder-id,fnoeding.null" in proc.stdout
    assert ",null,artifact,0,end" in proc.stdout
    assert "\x1b[" not in proc.stdout


def test_events_stream_is_json_lines_with_a_schema(tmp_path):
    path = write(tmp_path / "t.json", {
        "builders": [{"type": "null", "communicator": "none"}],
        "provisioners": [{"type": "shell-local", "inline": ["echo hi"]}, {"type": "shell-local", "inline": ["exit 3"]}],
    })
    events = tmp_path / "events.jsonl"
    proc = subprocess.run([*KILN, "build", f"-events={events}", str(path)], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 1
    evs = [json.loads(line) for line in events.read_text().splitlines()]
    assert evs[0]["type"] == "run.started" and evs[0]["schema"] == "kiln.events/1"
    assert evs[-1] == {**evs[-1], "type": "run.finished", "exit_code": 1, "status": "failed"}
    finished = [e for e in evs if e["type"] == "stage.finished"]
    assert [e["status"] for e in finished] == ["succeeded", "succeeded", "failed"]
    assert all(isinstance(e["duration"], float) for e in finished)
    assert "exit status: 3" in finished[-1]["error"]
    # -events - writes the stream to stdout and the console to stderr
    proc = subprocess.run([*KILN, "build", "-events", "-", str(path)], capture_output=True, text=True, timeout=60)
    assert all(json.loads(line) for line in proc.stdout.splitlines())
    assert "==> null:" in proc.stderr


def test_timing_summary_and_history_command(tmp_path):
    path = write(tmp_path / "t.json", {
        "builders": [{"type": "null", "communicator": "none"}],
        "provisioners": [{"type": "shell-local", "inline": ["sleep 0.3"]}],
    })
    proc = subprocess.run([*KILN, "build", "-color=false", str(path)], capture_output=True, text=True, timeout=60)
    assert "==> Stage timings (Kiln):" in proc.stdout
    assert "shell-local: sleep 0.3" in proc.stdout
    hist = subprocess.run([*KILN, "history", str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert hist.returncode == 0
    assert "succeeded" in hist.stdout and "log:" in hist.stdout


def test_ask_from_the_terminal_prompt(tmp_path):
    marker = tmp_path / "m"
    path = write(tmp_path / "t.json", {
        "builders": [{"type": "null", "communicator": "none"}],
        "provisioners": [{"type": "shell-local", "inline": [f"echo a >> {marker}", "exit 1"]},
                         {"type": "shell-local", "inline": [f"echo b >> {marker}"]}],
    })
    proc = subprocess.run([*KILN, "build", "-color=false", "-on-error=ask", str(path)], input="s\n",
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout
    assert "[r] retry this provisioner" in proc.stdout
    assert marker.read_text().split() == ["a", "b"]
    # with no answer (end of input) the build is cleaned up, as Packer does without a terminal
    proc = subprocess.run([*KILN, "build", "-color=false", "-on-error=ask", str(path)], input="",
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1


def test_exit_codes_and_usage():
    assert subprocess.run([*KILN, "--help"], capture_output=True).returncode == 0
    assert subprocess.run([*KILN, "nosuchcommand"], capture_output=True).returncode == 127
    assert subprocess.run([*KILN, "build"], capture_output=True).returncode == 1
    bad = subprocess.run([*KILN, "build", "-on-error=maybe", "x.json"], capture_output=True, text=True)
    assert bad.returncode == 1 and "expected one of" in bad.stderr


def test_a_selection_of_no_build_runs_nothing_and_succeeds(tmp_path):
    """As Packer: -only/-except that match no build is no error; Kiln says so."""
    path = write(tmp_path / "t.json", {
        "builders": [{"type": "null", "name": "a", "communicator": "none"}],
        "provisioners": [{"type": "shell-local", "inline": ["echo ran"]}],
    })
    events = tmp_path / "events.jsonl"
    proc = subprocess.run([*KILN, "build", "-only=b", f"-events={events}", str(path)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == ("Warning: -only/-except selected no build, so nothing was built; the "
                        "builds are: a")
    assert lines[1:3] == ["", lines[2]] and lines[2].startswith("==> Wait completed after ")
    assert lines[3:] == ["", "==> Builds finished but no artifacts were created."]
    kinds = [json.loads(x)["type"] for x in events.read_text().splitlines()]
    assert kinds == ["run.started", "run.finished"]
    assert json.loads(events.read_text().splitlines()[-1])["exit_code"] == 0
