"""The resource ledger as `kiln cleanup` uses it: what a killed or aborted run left is listed
and removed with its kind's reaper, what a live run holds is not touched, what was kept on
purpose waits for -all, and the records say where each resource belongs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from kiln.backend.cli import main
from kiln.backend.engine import ledger as ledger_mod
from kiln.backend.engine.ledger import (
    BuildLedger,
    Ledger,
    orphaned,
    reap,
    reap_path,
    reap_process,
    state_dir,
)
from kiln.backend.sdk.reaper import LedgerEntry

DEAD_PID = 2 ** 22 + 12345  # above pid_max: no process has it


def left_by_a_dead_run(run_id: str, *records: tuple[str, str, str]) -> list[int]:
    """Records as a run killed with -9 leaves them: its pid no longer runs."""
    led = Ledger(run_id)
    led.pid = DEAD_PID
    ids = [led.record(kind, ident, build=build) for kind, ident, build in records]
    led.close()
    return ids


def cleanup(capsys, *flags: str) -> tuple[int, str, str]:
    code = main(["cleanup", *flags])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cleanup_removes_what_a_killed_run_left(tmp_path, capsys):
    f = tmp_path / "left.txt"
    f.write_text("x")
    d = tmp_path / "left-dir"
    (d / "sub").mkdir(parents=True)
    left_by_a_dead_run("dead", ("tempfile", str(f), "b1"), ("tempdir", str(d), ""))
    code, out, _ = cleanup(capsys, "-dry-run")
    assert code == 0
    assert out.splitlines() == [f"would remove tempfile {f} (build b1)",
                                f"would remove tempdir {d}"]
    assert f.exists() and d.exists()
    code, out, _ = cleanup(capsys)
    assert code == 0
    assert out.splitlines() == [f"removed tempfile {f} (build b1)", f"removed tempdir {d}"]
    assert not f.exists() and not d.exists()
    assert cleanup(capsys)[1] == "Nothing to clean up.\n"


def test_cleanup_leaves_a_live_runs_resources_alone(tmp_path, capsys):
    f = tmp_path / "busy.txt"
    f.write_text("x")
    live = Ledger("live")  # this process: still running
    live.record("tempfile", str(f))
    assert cleanup(capsys)[1] == "Nothing to clean up.\n"
    assert f.exists()
    assert [e.ident for e in orphaned(Ledger("x"), include_live=True)] == [str(f)]
    assert orphaned(live, include_live=True) == []  # never its own run


def test_what_was_kept_on_purpose_stays_until_all(tmp_path, capsys):
    kept = tmp_path / "kept"
    kept.mkdir()
    other = tmp_path / "other"
    other.mkdir()
    led = Ledger("aborted")  # an aborted run in a dashboard still open: alive, kept
    led.record("tempdir", str(kept), build="b")
    led.record("tempdir", str(other), build="c")
    led.keep(build="b")
    code, out, _ = cleanup(capsys)
    assert code == 0
    assert out.splitlines() == [
        "Nothing to clean up; 1 resource kept on purpose stay (kiln cleanup -all removes them "
        "too):", f"  kept tempdir {kept} (build b)"]
    code, out, _ = cleanup(capsys, "-all")
    assert out.splitlines() == [f"removed tempdir {kept} (build b)"]
    assert not kept.exists() and other.exists()


def test_keep_one_entry_or_a_builds_entries(tmp_path):
    led = Ledger("r")
    a = led.record("k", "a", build="b1")
    led.record("k", "b", build="b1")
    led.record("k", "c", build="b2")
    Ledger("other-run").record("k", "d", build="b1")
    led.keep(build="b1")
    assert [(e.ident, e.kept) for e in led.entries("r")] == [("a", True), ("b", True),
                                                             ("c", False)]
    assert [(e.ident, e.kept) for e in led.entries("other-run")] == [("d", False)]
    led2 = Ledger("r2")
    x = led2.record("k", "x")
    led2.record("k", "y")
    led2.keep(entry_id=x)
    led2.keep()  # neither: nothing changes
    assert [(e.ident, e.kept) for e in led2.entries("r2")] == [("x", True), ("y", False)]
    assert a != x


def test_records_say_what_where_and_when(tmp_path):
    events = []
    led = Ledger("r", on_change=lambda *a: events.append(a))
    t0 = time.time()
    rid = led.record("box", "pending", build="b", data={"zone": "a"})
    led.update(rid, ident="box-1")
    led.update(rid, data={"zone": "b"})
    [e] = led.entries("r")
    assert (e.id, e.run_id, e.pid, e.build, e.kind, e.ident, e.data, e.kept) == \
        (rid, "r", os.getpid(), "b", "box", "box-1", {"zone": "b"}, False)
    assert t0 - 1 <= e.created <= time.time() + 1
    assert led.entries() == [e] and led.entries("nope") == []
    led.release(rid)
    led.release(rid)  # twice: nothing more to say
    assert led.entries("r") == []
    assert events == [("created", "b", "box", "pending"), ("released", "b", "box", "box-1")]


def test_release_by_identity_releases_every_record_of_the_run(tmp_path):
    led = Ledger("r")
    led.record("k", "same")
    led.record("k2", "same")
    led.record("k", "other")
    Ledger("r-other").record("k", "same")
    led.release_ident("same")
    assert [e.ident for e in led.entries("r")] == ["other"]
    assert [e.ident for e in led.entries("r-other")] == ["same"]


def test_a_builds_ledger_files_every_record_under_that_build(tmp_path):
    led = Ledger("r")
    bl = BuildLedger(led, "docker.b1")
    bl.record("container", "c1", build="whatever-the-plugin-says")
    [e] = bl.entries("r")
    assert e.build == "docker.b1" and bl.run_id == "r"


def test_process_records_are_volatile_and_everything_else_durable(tmp_path):
    led = Ledger("r")
    pid_rec = led.record("process", "123", data={"start": 1})
    led.record("tempfile", "/x")
    led.release(pid_rec)
    assert [e.kind for e in led.entries("r")] == ["tempfile"]
    assert led._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL again


def test_the_ledger_lives_in_the_state_directory(tmp_path, monkeypatch):
    monkeypatch.setenv("KILN_STATE_DIR", str(tmp_path / "s"))
    assert state_dir() == str(tmp_path / "s")
    assert Ledger("r").path == str(tmp_path / "s" / "ledger.db")
    assert (tmp_path / "s").stat().st_mode & 0o777 == 0o700
    monkeypatch.delenv("KILN_STATE_DIR")
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "x"))
    assert state_dir() == str(tmp_path / "x" / "kiln")
    monkeypatch.delenv("XDG_STATE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert state_dir() == str(tmp_path / "home" / ".local" / "state" / "kiln")
    assert (tmp_path / "home" / ".local" / "state" / "kiln").is_dir()


def entry(kind: str, ident: str, **data) -> LedgerEntry:
    return LedgerEntry(1, "r", DEAD_PID, "b", kind, ident, data, 0.0, False)


def test_the_path_reaper_removes_files_and_folders_but_not_others(tmp_path, monkeypatch):
    f = tmp_path / "f"
    f.write_text("x")
    reap_path(entry("tempfile", str(f)))
    assert not f.exists()
    d = tmp_path / "d"
    (d / "e").mkdir(parents=True)
    reap(entry("tempdir", str(d)))
    assert not d.exists()
    reap_path(entry("tempfile", str(tmp_path / "gone")))  # already gone: fine
    theirs = tmp_path / "theirs"
    theirs.write_text("x")
    monkeypatch.setattr(os, "geteuid", lambda: os.getuid() + 1)
    with pytest.raises(RuntimeError, match="belongs to another user; left in place"):
        reap_path(entry("tempfile", str(theirs)))
    assert theirs.exists()


def test_a_kind_without_a_reaper_is_reported():
    with pytest.raises(RuntimeError, match="no reaper for resources of kind 'mystery'"):
        reap(entry("mystery", "x"))


def test_cleanup_reports_what_it_could_not_remove(tmp_path, capsys, monkeypatch):
    left_by_a_dead_run("dead", ("mystery", "m1", "b"), ("tempfile", str(tmp_path / "t"), ""))
    code, out, err = cleanup(capsys)
    assert code == 1
    assert err == "could not remove mystery m1 (build b): no reaper for resources of kind " \
        "'mystery'\n"
    assert out == f"removed tempfile {tmp_path / 't'}\n"
    # what could not be removed stays listed for the next try
    assert [e.ident for e in orphaned(Ledger("again"))] == ["m1"]


def test_the_process_reaper_kills_the_group_a_killed_run_left(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"],
                            start_new_session=True)
    try:
        from kiln.backend.sdk.process import process_start

        start = process_start(proc.pid)
        # a record naming another start time: the pid was reused, nothing is sent
        assert start is not None
        reap_process(entry("process", str(proc.pid), start=start + 1000))
        with pytest.raises(subprocess.TimeoutExpired):
            proc.wait(0.5)  # still running
        reap(entry("process", str(proc.pid), start=start))
        assert proc.wait(10) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    reap_process(entry("process", "not-a-pid"))
    reap_process(entry("process", str(DEAD_PID)))


def test_a_ledger_that_cannot_be_opened_is_a_clear_cleanup_error(tmp_path, capsys, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("KILN_STATE_DIR", str(blocker / "kiln"))
    code, out, err = cleanup(capsys)
    assert code == 1
    assert err.startswith(f"Error: cannot open the resource ledger in {blocker / 'kiln'}: ")


def test_the_engines_own_kinds_have_reapers():
    assert set(ledger_mod.REAPERS) >= {"tempfile", "tempdir", "process"}
    assert ledger_mod.VOLATILE_KINDS == frozenset({"process"})
    assert ledger_mod.pid_alive(os.getpid()) and not ledger_mod.pid_alive(DEAD_PID)
    assert ledger_mod.pid_alive(1)  # not ours to signal, but alive


def test_records_survive_the_process_that_wrote_them(tmp_path):
    path = Path(state_dir()) / "ledger.db"
    code = ("import os; from kiln.backend.engine.ledger import Ledger; "
            "Ledger('killed').record('tempfile', '/tmp/x'); os._exit(9)")
    env = dict(os.environ)
    assert subprocess.run([sys.executable, "-c", code], env=env, timeout=60).returncode == 9
    assert [e.ident for e in Ledger("probe", path=str(path)).entries("killed")] == ["/tmp/x"]


def test_orphaned_lists_dead_runs_after_live_ones_and_leaves_kept_ones_by_default(tmp_path):
    Ledger("live").record("tempfile", "/live")  # this process: alive, listed first
    [dead] = left_by_a_dead_run("dead", ("tempfile", "/dead", ""))
    [kept] = left_by_a_dead_run("dead-kept", ("tempfile", "/kept", ""))
    Ledger("dead-kept").keep(entry_id=kept)
    probe = Ledger("probe")
    assert [e.ident for e in orphaned(probe)] == ["/dead"]
    assert [e.ident for e in orphaned(probe, include_kept=True)] == ["/dead", "/kept"]
    assert [e.ident for e in orphaned(probe, include_live=True)] == ["/live", "/dead"]


def test_a_builds_ledger_keeps_the_data_of_each_record(tmp_path):
    bl = BuildLedger(Ledger("r"), "b")
    bl.record("container", "c1", data={"image": "busybox"})
    [e] = bl.entries("r")
    assert (e.build, e.data) == ("b", {"image": "busybox"})
