"""A run as the CLI and the dashboard see it through the session: the run's first and last
events, exit codes and statuses, parallel builds, cancelling one build or all, crashes
outside a build, temporary files swept, logs, history and the state directory."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import pytest
from kiln.backend.engine.history import recent_runs
from kiln.backend.engine.ledger import Ledger
from kiln.backend.engine.prepare import Options
from kiln.backend.engine.session import Session, StateDirError, default_state_dir, load_template
from kiln.backend.template.errors import TemplateError


def write(path: Path, doc: dict) -> Path:
    path.write_text(json.dumps(doc))
    return path


def null_builds(tmp_path: Path, n: int, *lines: str, **extra) -> Path:
    return write(tmp_path / "t.json", {
        "builders": [{"type": "null", "name": f"b{i}", "communicator": "none"}
                     for i in range(n)],
        "provisioners": [{"type": "shell-local", "inline": list(lines) or ["true"]}],
        **extra})


def session(path: Path, **opts) -> tuple[Session, list]:
    opts.setdefault("state_dir", str(path.parent / ".kiln"))
    options = Options(**opts)
    s = Session(load_template(str(path), options), options)
    events: list = []
    s.bus.subscribe(events.append)
    return s, events


def of(events, kind: str) -> list[dict]:
    return [e.data for e in events if e.type == kind]


def test_a_successful_run_from_first_event_to_last(tmp_path):
    path = null_builds(tmp_path, 2, "echo {{build_name}}")
    s, events = session(path, on_error="abort", force=True)
    result = s.run()
    assert result.exit_code == 0 and not result.interrupted
    assert set(result.results) == {"b0", "b1"}
    assert all(r.status == "succeeded" for r in result.results.values())
    assert 0 < result.duration < 30
    [started] = of(events, "run.started")
    assert started == {"template": str(path), "builds": ["b0", "b1"],
                       "build_types": {"b0": "null", "b1": "null"},
                       "options": {"on_error": "abort", "parallel_builds": 0, "debug": False,
                                   "force": True},
                       "log_dir": str(tmp_path / ".kiln" / "logs" / s.run_id)}
    assert events[0].type == "run.started" and events[-1].type == "run.finished"
    assert of(events, "run.finished")[0]["status"] == "succeeded"
    assert of(events, "run.finished")[0]["exit_code"] == 0
    assert all(e.run == s.run_id for e in events)
    assert os.environ.get("PACKER_RUN_UUID")
    # every build's output is in its log, and the run in the history
    for name in ("b0", "b1"):
        assert name in Path(s.log_paths[name]).read_text()
        assert s.log_paths[name] == str(tmp_path / ".kiln" / "logs" / s.run_id / f"{name}.log")
    [run] = recent_runs(str(tmp_path / ".kiln" / "history.db"))
    assert run["status"] == "succeeded" and len(run["builds"]) == 2
    assert s.done and s.wait(0) is result


def test_a_failed_build_fails_the_run(tmp_path):
    path = write(tmp_path / "t.json", {
        "builders": [{"type": "null", "name": "ok", "communicator": "none"},
                     {"type": "null", "name": "bad", "communicator": "none"}],
        "provisioners": [{"type": "shell-local", "inline": ["test {{build_name}} = ok"]}]})
    s, events = session(path)
    result = s.run()
    assert result.exit_code == 1 and not result.interrupted
    assert result.results["ok"].status == "succeeded"
    assert result.results["bad"].status == "failed"
    assert of(events, "run.finished")[0]["status"] == "failed"
    assert of(events, "run.finished")[0]["exit_code"] == 1


def test_parallel_builds_limits_how_many_run_at_once(tmp_path):
    marks = tmp_path / "marks"
    path = null_builds(tmp_path, 3, f"echo start >> {marks}", "sleep 0.6",
                       f"echo end >> {marks}")
    s, events = session(path, parallel_builds=1)
    assert s.run().exit_code == 0
    # one at a time: every start is followed by its end
    assert marks.read_text().split() == ["start", "end"] * 3
    marks.unlink()
    # no limit: each build goes on only once all three have started
    all_started = f"[ $(grep -c start {marks}) -ge 3 ]"
    path = null_builds(tmp_path, 3, f"echo start >> {marks}",
                       f"for i in $(seq 300); do {all_started} && break; sleep 0.1; done",
                       all_started)
    s, events = session(path, parallel_builds=0)
    result = s.run()
    assert result.exit_code == 0, {n: r.error for n, r in result.results.items()}


def test_cancelling_the_run_cancels_every_build_and_the_ones_not_started(tmp_path):
    path = null_builds(tmp_path, 3, "sleep 30")
    s, events = session(path, parallel_builds=1)
    started = threading.Event()
    s.bus.subscribe(lambda e: e.type == "stage.started" and e.data["kind"] == "provisioner"
                    and started.set())
    s.start()
    assert started.wait(10)
    t0 = time.monotonic()
    s.cancel("interrupt")
    result = s.wait(20)
    assert result is not None and time.monotonic() - t0 < 10
    assert result.exit_code == 1 and result.interrupted
    assert result.results["b0"].status == "cancelled"
    for name in ("b1", "b2"):
        assert (result.results[name].status, result.results[name].error) == \
            ("cancelled", "not started: the run was cancelled")
    assert of(events, "run.finished")[0]["status"] == "cancelled"


def test_cancelling_one_build_leaves_the_others_running(tmp_path):
    path = write(tmp_path / "t.json", {
        "builders": [{"type": "null", "name": "slow", "communicator": "none"},
                     {"type": "null", "name": "quick", "communicator": "none"}],
        "provisioners": [{"type": "shell-local",
                          "inline": ["if [ {{build_name}} = slow ]; then sleep 30; fi"]}]})
    s, events = session(path)
    started = threading.Event()
    s.bus.subscribe(lambda e: e.type == "stage.started" and e.data["build"] == "slow"
                    and e.data["kind"] == "provisioner" and started.set())
    s.start()
    assert started.wait(10)
    s.cancel("stop", build="nosuch")  # an unknown build changes nothing
    s.cancel("stop", build="slow")
    result = s.wait(20)
    assert result.results["slow"].status == "cancelled"
    assert result.results["quick"].status == "succeeded"
    assert result.exit_code == 1 and not result.interrupted
    # the builds the user stopped one by one make a cancelled run
    assert of(events, "run.finished")[0]["status"] == "cancelled"


def test_questions_and_answers_go_to_the_build_that_asked(tmp_path):
    path = null_builds(tmp_path, 1, "exit 3")
    s, events = session(path, on_error="ask")
    asked: list = []
    s.on_question = lambda runner, q: asked.append((runner.name, q["prompt"]))
    s.start()
    deadline = time.monotonic() + 10
    while not s.pending_questions() and time.monotonic() < deadline:
        time.sleep(0.02)
    [question] = s.pending_questions()
    assert question["build"] == "b0" and asked == [("b0", question["prompt"])]
    assert not s.answer("nosuch", "skip")
    assert s.answer("b0", "skip")
    result = s.wait(20)
    assert result.exit_code == 0 and s.pending_questions() == []


def test_a_crash_outside_the_runner_is_a_crashed_build_and_run(tmp_path, monkeypatch):
    from kiln.backend.engine.build import BuildRunner

    def broken(self):
        raise RuntimeError("runner broke")

    monkeypatch.setattr(BuildRunner, "run", broken)
    path = null_builds(tmp_path, 1)
    s, events = session(path)
    result = s.run()
    assert result.exit_code == 1
    r = result.results["b0"]
    assert (r.status, r.error) == ("crashed", "Kiln crashed: RuntimeError: runner broke")
    [finished] = of(events, "build.finished")
    assert finished == {"build": "b0", "status": "crashed", "duration": 0.0,
                        "error": "Kiln crashed: RuntimeError: runner broke", "kept": False,
                        "access_hint": "", "stages": []}
    assert of(events, "run.finished")[0]["status"] == "crashed"
    log = Path(s.log_paths["b0"]).read_text()
    assert "Traceback" in log and "RuntimeError: runner broke" in log


def test_a_build_thread_that_cannot_start_is_reported_as_such(tmp_path, monkeypatch):
    """Out of threads: the run still finishes, with the reason the user can act on."""
    import kiln.backend.engine.session as session_module

    class NoThreads(threading.Thread):
        def start(self):
            if self.name.startswith("kiln-build-"):
                raise RuntimeError("can't start new thread")
            super().start()

    monkeypatch.setattr(session_module.threading, "Thread", NoThreads)
    path = null_builds(tmp_path, 2)
    s, events = session(path)
    result = s.run()
    assert result.exit_code == 1
    assert of(events, "run.finished")[0]["status"] == "crashed"
    assert {r.status for r in result.results.values()} == {"crashed"}
    assert result.results["b0"].error == \
        "not started: Kiln crashed: RuntimeError: can't start new thread"


def test_temporary_files_a_plugin_left_are_removed_when_the_build_ends(tmp_path):
    path = null_builds(tmp_path, 1)
    s, events = session(path)
    left = []

    def leave_a_file(e):
        if e.type == "stage.started" and e.data["kind"] == "provisioner":
            runner = s.runners["b0"]
            left.append(runner.ctx.temp_file("left-", ".txt"))

    s.bus.subscribe(leave_a_file)
    assert s.run().exit_code == 0
    assert left and not os.path.exists(left[0])
    assert not os.path.exists(s.temp.path) if s.temp._path else True
    assert Ledger("probe").entries(s.run_id) == []
    resources = [(r["build"], r["kind"], r["action"], r["ident"]) for r in of(events, "resource")
                 if r["ident"] == left[0]]
    assert resources == [("b0", "tempfile", "created", left[0]),
                         ("b0", "tempfile", "released", left[0])]


def test_a_template_with_problems_is_refused_with_all_of_them(tmp_path):
    path = write(tmp_path / "t.json", {
        "builders": [{"type": "null", "communicator": "none", "bogus": 1}],
        "provisioners": [{"type": "shell-local", "inline": ["true"], "nope": 2}]})
    options = Options(state_dir=str(tmp_path / ".kiln"))
    template = load_template(str(path), options)
    with pytest.raises(TemplateError) as err:
        Session(template, options)
    text = str(err.value)
    assert 'unknown configuration key "bogus"' in text and 'unknown configuration key "nope"' in text


def test_only_and_except_choose_the_builds(tmp_path):
    path = null_builds(tmp_path, 3)
    s, _ = session(path, only=("b1",))
    assert [b.name for b in s.builds] == ["b1"]
    s, _ = session(path, except_=("b1",))
    assert [b.name for b in s.builds] == ["b0", "b2"]


def test_an_unusable_state_directory_is_a_clear_error(tmp_path):
    path = null_builds(tmp_path, 1)
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(StateDirError) as err:
        session(path, state_dir=str(blocker / "state"))
    assert str(err.value).startswith(f"cannot use the state directory {blocker / 'state'}: ")
    assert str(err.value).endswith(" (-state-dir chooses another)")


def test_an_unusable_ledger_directory_is_a_clear_error(tmp_path, monkeypatch):
    path = null_builds(tmp_path, 1)
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("KILN_STATE_DIR", str(blocker / "kiln"))
    with pytest.raises(StateDirError) as err:
        session(path)
    assert str(err.value).startswith(
        f"cannot open the resource ledger in {blocker / 'kiln'}: ")
    assert str(err.value).endswith(" (KILN_STATE_DIR chooses another directory)")


def test_history_is_pruned_to_the_runs_kept(tmp_path, monkeypatch):
    monkeypatch.setenv("KILN_HISTORY_KEEP", "2")
    path = null_builds(tmp_path, 1)
    for _ in range(4):
        s, _ = session(path)
        assert s.run().exit_code == 0
    assert len(recent_runs(str(tmp_path / ".kiln" / "history.db"))) == 2
    assert len(list((tmp_path / ".kiln" / "logs").iterdir())) == 2


def test_without_history_nothing_is_written(tmp_path):
    path = null_builds(tmp_path, 1)
    options = Options(state_dir=str(tmp_path / ".kiln"))
    s = Session(load_template(str(path), options), options, history=False)
    assert s.run().exit_code == 0
    assert s.log_paths == {} and s.warnings == []
    assert not (tmp_path / ".kiln" / "history.db").exists()


def test_a_history_that_cannot_be_written_is_a_warning_not_a_failure(tmp_path):
    path = null_builds(tmp_path, 1)
    (tmp_path / ".kiln" / "history.db").mkdir(parents=True)
    s, events = session(path)
    assert s.run().exit_code == 0
    assert len(s.warnings) == 1 and s.warnings[0].startswith("history is not recorded: ")


def test_the_runs_temporary_directory_is_recorded_and_removed(tmp_path):
    path = null_builds(tmp_path, 1)
    s, events = session(path)
    made = []

    def make_dirs(e):
        if e.type == "stage.started" and e.data["kind"] == "provisioner":
            made.append(s.runners["b0"].ctx.temp_dir("left-"))

    s.bus.subscribe(make_dirs)
    assert s.run().exit_code == 0
    top = os.path.dirname(made[0])
    dirs = [(r["kind"], r["action"], r["ident"]) for r in of(events, "resource")
            if r["kind"] == "tempdir"]
    assert ("tempdir", "created", top) in dirs and ("tempdir", "released", top) in dirs
    assert ("tempdir", "released", made[0]) in dirs
    assert not os.path.exists(made[0]) and not os.path.exists(top)


def test_the_default_state_directory_is_next_to_the_template(tmp_path):
    path = null_builds(tmp_path, 1)
    assert default_state_dir(str(path)) == str(tmp_path / ".kiln")
    assert default_state_dir(str(tmp_path)) == str(tmp_path / ".kiln")
    options = Options()
    s = Session(load_template(str(path), options), options)
    assert s.state_dir == str(tmp_path / ".kiln")
    s.run()
    assert (tmp_path / ".kiln" / "history.db").is_file()
