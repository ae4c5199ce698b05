"""The engine: stage order, cleanup order, on-error policies, retry of one provisioner, events."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from kiln.backend.engine.events import EventBus
from kiln.backend.engine.ledger import Ledger
from kiln.backend.engine.prepare import Options, PreparedBuild
from kiln.backend.engine.session import Session, load_template
from kiln.backend.sdk.plugin import PROVISION, Artifact, Builder, Step, StepError
from kiln.backend.template.model import BuildDef
from kiln.backend.template.source import Loc, Node

# -- a builder whose steps record what happens -------------------------------------------------


@dataclass
class RecConfig:
    pass


class RecStep(Step):
    def __init__(self, name: str, log: list, fail: str = ""):
        self.title = name
        self.log = log
        self.fail = fail

    def run(self, ctx):
        self.log.append(f"run {self.title}")
        if self.fail == "error":
            raise StepError(f"{self.title} failed")
        if self.fail == "crash":
            raise ZeroDivisionError("boom")
        if self.fail == "wait":
            ctx.cancel.sleep(30)

    def cleanup(self, ctx):
        self.log.append(f"cleanup {self.title}")


class RecBuilder(Builder):
    type_name = "rec"
    builder_id = "test.rec"
    Config = RecConfig

    def __init__(self, log, fail_at: str = "", how: str = "error"):
        super().__init__(RecConfig())
        self.log = log
        self.fail_at = fail_at
        self.how = how

    def steps(self, ctx):
        steps = [RecStep(n, self.log, self.how if n == self.fail_at else "") for n in ("A", "B")]
        return steps[:1] + [steps[1], PROVISION, RecStep("C", self.log, self.how if self.fail_at == "C" else "")]

    def artifact(self, ctx):
        return Artifact(self.builder_id, id="rec", string="recorded")


def rec_session(tmp_path, fail_at="", how="error", on_error="cleanup"):
    tpl = tmp_path / "t.json"
    tpl.write_text('{"builders":[{"type":"null","communicator":"none"}]}')
    template = load_template(str(tpl), Options())
    log: list[str] = []
    bdef = BuildDef(0, "rec", "rec", "rec", Node({}, Loc(str(tpl))), Loc(str(tpl)))
    pb = PreparedBuild(bdef, RecBuilder(log, fail_at, how), [], None, [], [], [])
    s = Session(template, Options(on_error=on_error, state_dir=str(tmp_path / ".kiln")), builds=[pb])
    return s, log


def test_steps_run_in_order_and_clean_up_in_reverse(tmp_path):
    s, log = rec_session(tmp_path)
    result = s.run()
    assert result.exit_code == 0
    assert log == ["run A", "run B", "run C", "cleanup C", "cleanup B", "cleanup A"]


def test_failed_step_is_cleaned_up_too(tmp_path):
    s, log = rec_session(tmp_path, fail_at="B")
    result = s.run()
    assert result.exit_code == 1
    assert result.results["rec"].status == "failed"
    assert result.results["rec"].error == "B failed"
    assert log == ["run A", "run B", "cleanup B", "cleanup A"]


def test_unexpected_exception_is_a_crash_and_still_cleans_up(tmp_path):
    s, log = rec_session(tmp_path, fail_at="C", how="crash")
    result = s.run()
    assert result.results["rec"].status == "crashed"
    assert "ZeroDivisionError" in result.results["rec"].error
    assert log[-3:] == ["cleanup C", "cleanup B", "cleanup A"]


def test_cancel_stops_the_running_step_and_cleans_up(tmp_path):
    s, log = rec_session(tmp_path, fail_at="B", how="wait")
    s.start()
    deadline = time.time() + 5
    while "run B" not in log and time.time() < deadline:
        time.sleep(0.01)
    t0 = time.time()
    s.cancel("interrupt")
    result = s.wait(10)
    assert time.time() - t0 < 2
    assert result.results["rec"].status == "cancelled"
    assert result.interrupted and result.exit_code == 1
    assert log == ["run A", "run B", "cleanup B", "cleanup A"]


def test_abort_keeps_everything_and_marks_the_ledger(tmp_path):
    s, log = rec_session(tmp_path, fail_at="C", on_error="abort")
    result = s.run()
    assert result.results["rec"].kept
    assert not [x for x in log if x.startswith("cleanup")]


# -- real templates with shell-local ----------------------------------------------------------


def write(path: Path, doc: dict) -> Path:
    path.write_text(json.dumps(doc, indent=2))
    return path


def marker_template(tmp_path: Path, second: str) -> Path:
    marker = tmp_path / "marker.txt"
    return write(tmp_path / "t.json", {
        "builders": [{"type": "null", "communicator": "none"}],
        "provisioners": [
            {"type": "shell-local", "inline": [f"echo one >> {marker}"]},
            {"type": "shell-local", "inline": [second.format(marker=marker)]},
            {"type": "shell-local", "inline": [f"echo three >> {marker}"]},
        ],
    })


def start_session(path: Path, **opts) -> tuple[Session, list]:
    options = Options(state_dir=str(path.parent / ".kiln"), **opts)
    s = Session(load_template(str(path), options), options)
    events: list = []
    s.bus.subscribe(events.append)
    s.start()
    return s, events


def wait_for(pred, timeout=10.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return True
        time.sleep(0.02)
    raise AssertionError("timed out")


def test_retry_runs_only_the_failed_provisioner_with_the_edited_template(tmp_path):
    path = marker_template(tmp_path, "echo broken >> {marker}; exit 3")
    s, events = start_session(path, on_error="ask")
    wait_for(lambda: s.pending_questions())
    q = s.pending_questions()[0]
    assert q["choices"] == ["retry", "skip", "cleanup", "abort"]
    assert "exit status: 3" in q["error"]
    # the user fixes the second provisioner in the file, then asks for a retry
    marker_template(tmp_path, "echo fixed >> {marker}")
    assert s.answer("null", "retry")
    result = s.wait(20)
    assert result.exit_code == 0, result.results["null"].error
    assert (tmp_path / "marker.txt").read_text().split() == ["one", "broken", "fixed", "three"]
    started = [e.data["name"] for e in events if e.type == "stage.started"]
    assert sum("echo one" in n for n in started) == 1  # the first provisioner did not run again
    paused = [e for e in events if e.type == "paused"]
    assert len(paused) == 1
    assert started[-2].startswith("shell-local: echo fixed")  # the retried stage shows the edit


def test_skip_carries_on_with_the_next_provisioner(tmp_path):
    path = marker_template(tmp_path, "exit 1")
    s, events = start_session(path, on_error="ask")
    wait_for(lambda: s.pending_questions())
    s.answer("null", "skip")
    result = s.wait(20)
    assert result.exit_code == 0
    assert (tmp_path / "marker.txt").read_text().split() == ["one", "three"]
    statuses = [e.data["status"] for e in events if e.type == "stage.finished" and e.data["kind"] == "provisioner"]
    assert statuses == ["succeeded", "skipped", "succeeded"]


def test_cleanup_answer_fails_the_build_and_cancel_while_paused_cleans_up(tmp_path):
    path = marker_template(tmp_path, "exit 1")
    s, _ = start_session(path, on_error="ask")
    wait_for(lambda: s.pending_questions())
    s.answer("null", "cleanup")
    result = s.wait(20)
    assert result.exit_code == 1 and result.results["null"].status == "failed"
    assert (tmp_path / "marker.txt").read_text().split() == ["one"]

    (tmp_path / "marker.txt").unlink()
    s, _ = start_session(path, on_error="ask")
    wait_for(lambda: s.pending_questions())
    s.cancel("interrupt")
    result = s.wait(20)
    assert result.exit_code == 1


def test_error_cleanup_provisioner_runs_after_a_failure(tmp_path):
    marker = tmp_path / "m"
    path = write(tmp_path / "t.json", {
        "builders": [{"type": "null", "communicator": "none"}],
        "provisioners": [{"type": "shell-local", "inline": ["exit 2"]}],
        "error-cleanup-provisioner": {"type": "shell-local", "inline": [f"echo collected logs > {marker}"]},
    })
    s, events = start_session(path)
    result = s.wait(20)
    assert result.exit_code == 1
    assert marker.read_text() == "collected logs\n"
    lines = [ln for e in events if e.type == "output" for ln in e.data["lines"]]
    assert "Provisioning step had errors: Running the cleanup provisioner, if present..." in lines


def test_max_retries_reruns_a_flaky_provisioner(tmp_path):
    counter = tmp_path / "count"
    path = write(tmp_path / "t.json", {
        "builders": [{"type": "null", "communicator": "none"}],
        "provisioners": [{"type": "shell-local", "max_retries": 3, "inline": [
            f"echo x >> {counter}", f"test $(wc -l < {counter}) -ge 2"]}],
    })
    s, events = start_session(path)
    result = s.wait(30)
    assert result.exit_code == 0
    assert counter.read_text().count("x") == 2
    errors = [ln for e in events if e.type == "output" and e.data["stream"] == "ui-error" for ln in e.data["lines"]]
    assert any("retrying with 3 trie(s) left" in ln for ln in errors)


def test_timeout_stops_a_slow_provisioner(tmp_path):
    path = write(tmp_path / "t.json", {
        "builders": [{"type": "null", "communicator": "none"}],
        "provisioners": [{"type": "shell-local", "timeout": "1s", "inline": ["sleep 30"]}],
    })
    t0 = time.time()
    s, _ = start_session(path)
    result = s.wait(30)
    assert time.time() - t0 < 8
    assert result.exit_code == 1
    assert "timed out" in result.results["null"].error


def test_parallel_builds_run_at_once_and_events_are_complete(tmp_path):
    path = write(tmp_path / "t.json", {
        "builders": [{"type": "null", "name": f"b{i}", "communicator": "none"} for i in range(6)],
        "provisioners": [{"type": "shell-local", "inline": ["sleep 1", "echo done {{build_name}}"]}],
    })
    t0 = time.time()
    s, events = start_session(path)
    result = s.wait(30)
    assert result.exit_code == 0
    assert time.time() - t0 < 4
    types = [e.type for e in events]
    assert types[0] == "run.started" and types[-1] == "run.finished"
    assert types.count("build.finished") == 6
    seqs = [e.seq for e in events]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    for i in range(6):
        out = [ln for e in events if e.type == "output" and e.data["build"] == f"b{i}" for ln in e.data["lines"]]
        assert f"done b{i}" in out


def test_history_records_runs_builds_and_stages(tmp_path):
    from kiln.backend.engine.history import recent_runs, stage_durations

    path = marker_template(tmp_path, "echo two >> {marker}")
    s, _ = start_session(path)
    s.wait(20)
    db = str(tmp_path / ".kiln" / "history.db")
    runs = recent_runs(db)
    assert runs[0]["status"] == "succeeded" and runs[0]["builds"][0]["status"] == "succeeded"
    assert Path(runs[0]["builds"][0]["log"]).is_file()
    durations = stage_durations(db, "null")
    assert len(durations) == 4  # the connect step and three provisioners


def test_history_survives_two_runs_writing_at_once(tmp_path):
    path = write(tmp_path / "t.json", {
        "builders": [{"type": "null", "name": f"b{i}", "communicator": "none"} for i in range(4)],
        "provisioners": [{"type": "shell-local", "inline": ["echo {{build_name}}"]} for _ in range(5)],
    })
    sessions = [start_session(path)[0] for _ in range(2)]
    for s in sessions:
        assert s.wait(30).exit_code == 0
    from kiln.backend.engine.history import recent_runs

    runs = recent_runs(str(tmp_path / ".kiln" / "history.db"))
    assert len(runs) == 2 and all(len(r["builds"]) == 4 for r in runs)


def test_late_subscribers_get_the_history_replayed():
    bus = EventBus("r")
    bus.publish("run.started", builds=["x"])
    bus.publish("output", build="x", stage=0, stream="stdout", lines=["a", "b"])
    seen = []
    bus.subscribe(seen.append)
    assert [e.type for e in seen] == ["run.started", "output"]


def test_ledger_is_empty_after_a_successful_run(tmp_path):
    path = marker_template(tmp_path, "echo two >> {marker}")
    s, events = start_session(path)
    s.wait(20)
    created = [e for e in events if e.type == "resource" and e.data["action"] == "created"]
    released = [e for e in events if e.type == "resource" and e.data["action"] == "released"]
    assert created and len(created) == len(released)
    assert Ledger("probe").entries(s.run_id) == []


def test_secrets_are_masked_in_events_logs_and_history(tmp_path):
    secret = "correct-horse-battery"
    path = write(tmp_path / "t.json", {
        "variables": {"pw": secret}, "sensitive-variables": ["pw"],
        "builders": [{"type": "null", "communicator": "none"}],
        "provisioners": [{"type": "shell-local", "inline": ["echo the password is {{user `pw`}}", "exit 1"]}],
    })
    s, events = start_session(path)
    s.wait(20)
    dump = json.dumps([e.to_dict() for e in events])
    assert secret not in dump and "<sensitive>" in dump
    for f in (tmp_path / ".kiln").rglob("*"):
        if f.is_file():
            assert secret.encode() not in f.read_bytes(), f


def test_answering_from_another_thread_is_safe(tmp_path):
    path = marker_template(tmp_path, "exit 1")
    s, _ = start_session(path, on_error="ask")
    wait_for(lambda: s.pending_questions())
    results = []
    threads = [threading.Thread(target=lambda c=c: results.append(s.answer("null", c))) for c in ("skip", "cleanup")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [False, True]
    assert s.wait(20) is not None


@pytest.mark.parametrize("choice", ["nonsense"])
def test_invalid_answers_are_refused(tmp_path, choice):
    path = marker_template(tmp_path, "exit 1")
    s, _ = start_session(path, on_error="ask")
    wait_for(lambda: s.pending_questions())
    assert not s.answer("null", choice)
    assert s.answer("null", "cleanup")
    s.wait(20)


def test_cancel_while_paused_is_cancelled_not_failed(tmp_path):
    path = marker_template(tmp_path, "exit 1")
    s, events = start_session(path, on_error="ask")
    wait_for(lambda: s.pending_questions())
    s.cancel("interrupt", build="null")
    result = s.wait(20)
    assert result.results["null"].status == "cancelled"
    finished = [e.data["status"] for e in events if e.type == "stage.finished" and e.data["kind"] == "provisioner"]
    assert finished[:2] == ["succeeded", "cancelled"]


def test_history_records_a_kept_machine(tmp_path):
    from kiln.backend.engine.history import recent_runs

    path = marker_template(tmp_path, "exit 1")
    s, _ = start_session(path, on_error="ask")
    wait_for(lambda: s.pending_questions())
    s.answer("null", "abort")
    s.wait(20)
    build = recent_runs(str(tmp_path / ".kiln" / "history.db"))[0]["builds"][0]
    assert build["status"] == "failed" and build["kept"] is True
