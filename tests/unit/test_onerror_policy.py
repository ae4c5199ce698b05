"""The -on-error policies as a user sees them: whether the machine is cleaned up or kept,
what the ledger says for `kiln cleanup`, when the error-cleanup provisioner runs, and
the lines and statuses of the run."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest
from kiln.backend.engine.ledger import Ledger, orphaned
from kiln.backend.engine.prepare import Options
from kiln.backend.engine.session import Session, load_template
from kiln.backend.sdk.communicator import MockCommunicator
from kiln.backend.sdk.plugin import PROVISION, Artifact, Builder, Step


class CreateMachine(Step):
    """A 'machine' is a directory: recorded in the ledger before it exists, removed and
    released by its cleanup, as a real builder's instance would be."""

    title = "Create machine"

    def __init__(self, where: Path):
        self.where = where
        self.entry: int | None = None

    def run(self, ctx):
        self.entry = ctx.ledger.record("test-machine", str(self.where))
        self.where.mkdir()
        ctx.communicator = MockCommunicator()
        ctx.ui.say("Machine is up")

    def cleanup(self, ctx):
        if self.where.exists():
            self.where.rmdir()
            ctx.ui.say("Machine removed")
        if self.entry is not None:
            ctx.ledger.release(self.entry)


class MachineBuilder(Builder):
    type_name = "machine"
    builder_id = "test.machine"
    Config = dict

    def __init__(self, where: Path):
        super().__init__({})
        self.where = where

    def steps(self, ctx):
        return [CreateMachine(self.where), PROVISION]

    def artifact(self, ctx):
        return Artifact(self.builder_id, id="m", string="machine")


def machine_session(tmp_path: Path, provisioners: list, error_cleanup: dict | None = None,
                    **opts) -> tuple[Session, list, Path]:
    doc: dict = {"builders": [{"type": "null", "communicator": "none"}],
                 "provisioners": provisioners}
    if error_cleanup:
        doc["error-cleanup-provisioner"] = error_cleanup
    path = tmp_path / "t.json"
    path.write_text(json.dumps(doc))
    options = Options(state_dir=str(tmp_path / ".kiln"), **opts)
    s = Session(load_template(str(path), options), options)
    machine = tmp_path / "machine"
    s.builds[0].builder = MachineBuilder(machine)
    events: list = []
    s.bus.subscribe(events.append)
    return s, events, machine


def errors(events) -> list[str]:
    return [ln for e in events if e.type == "output" and e.data["stream"] == "ui-error"
            for ln in e.data["lines"]]


def said(events) -> list[str]:
    return [ln for e in events if e.type == "output" for ln in e.data["lines"]]


def finished(events) -> list[tuple[str, str]]:
    return [(e.data["name"], e.data["status"]) for e in events if e.type == "stage.finished"]


def kept_entries(s: Session) -> list:
    return [e for e in Ledger("probe").entries(s.run_id) if e.kind == "test-machine"]


FAIL = [{"type": "shell-local", "inline": ["echo first"]},
        {"type": "shell-local", "inline": ["exit 7"]},
        {"type": "shell-local", "inline": ["echo never"]}]
EXIT7 = "Script exited with non-zero exit status: 7. Allowed exit codes are: [0]"


def cleanup_prov(marker: Path) -> dict:
    return {"type": "shell-local", "inline": [f"echo collected > {marker}"]}


def test_on_error_cleanup_removes_the_machine_and_runs_the_error_cleanup_provisioner(tmp_path):
    marker = tmp_path / "collected"
    s, events, machine = machine_session(tmp_path, FAIL, cleanup_prov(marker))
    result = s.run()
    assert result.exit_code == 1
    r = result.results["null"]
    assert (r.status, r.error, r.kept) == ("failed", EXIT7, False)
    assert not machine.exists() and marker.read_text() == "collected\n"
    assert kept_entries(s) == []
    assert "never" not in said(events) and "Machine removed" in said(events)
    assert finished(events) == [
        ("Create machine", "succeeded"), ("shell-local: echo first", "succeeded"),
        ("shell-local: exit 7", "failed"), (f"error-cleanup: shell-local: echo collected > {marker}",
                                            "succeeded"), ("shell-local: echo never", "skipped")]
    assert not any("kept" in ln for ln in errors(events))


def test_on_error_abort_keeps_the_machine_and_tells_the_ledger(tmp_path):
    marker = tmp_path / "collected"
    s, events, machine = machine_session(tmp_path, FAIL, cleanup_prov(marker), on_error="abort")
    result = s.run()
    assert result.exit_code == 1
    r = result.results["null"]
    assert (r.status, r.error, r.kept) == ("failed", EXIT7, True)
    assert machine.is_dir() and not marker.exists()
    [entry] = kept_entries(s)
    assert entry.kept and entry.ident == str(machine) and entry.build == "null"
    # `kiln cleanup` lists what was kept on purpose once asked to
    assert [e.ident for e in orphaned(Ledger("another"), include_kept=True)
            if e.kind == "test-machine"] == [str(machine)]
    assert errors(events)[-3:] == ["Build failed; the machine is kept as it is (no cleanup):",
                                   f"  test-machine {machine}",
                                   "When you are done, remove it with: kiln cleanup -all"]
    assert "Provisioning step had errors: Running the cleanup provisioner, if present..." \
        not in said(events)
    build_finished = [e.data for e in events if e.type == "build.finished"][0]
    assert build_finished["kept"] is True and build_finished["status"] == "failed"
    # the kept machine is not the run's temporary directory: that one goes
    made = [e.data["ident"] for e in events if e.type == "resource"
            and e.data["kind"] == "tempdir" and e.data["action"] == "created"]
    assert made and not any(os.path.exists(d) for d in made)


def test_on_error_run_cleanup_provisioner_runs_it_then_keeps_the_machine(tmp_path):
    marker = tmp_path / "collected"
    s, events, machine = machine_session(tmp_path, FAIL, cleanup_prov(marker),
                                         on_error="run-cleanup-provisioner")
    result = s.run()
    assert result.exit_code == 1
    r = result.results["null"]
    assert (r.status, r.error, r.kept) == ("failed", EXIT7, True)
    assert machine.is_dir() and marker.read_text() == "collected\n"
    [entry] = kept_entries(s)
    assert entry.kept
    assert (f"error-cleanup: shell-local: echo collected > {marker}", "succeeded") \
        in finished(events)
    assert "Machine removed" not in said(events)
    assert errors(events)[-2] == f"  test-machine {machine}"


def test_a_failing_error_cleanup_provisioner_is_reported_with_the_original_error(tmp_path):
    s, events, machine = machine_session(
        tmp_path, FAIL, {"type": "shell-local", "inline": ["exit 9"]})
    result = s.run()
    r = result.results["null"]
    assert r.status == "failed" and not r.kept and not machine.exists()
    assert r.error == ("Cleanup failed: Script exited with non-zero exit status: 9. Allowed exit "
                       f"codes are: [0]. Original Provisioning error: {EXIT7}")
    assert ("error-cleanup: shell-local: exit 9", "failed") in finished(events)
    added = [e.data for e in events if e.type == "stage.added"]
    assert [(a["build"], a["name"], a["kind"], a["status"]) for a in added] == [
        ("null", "error-cleanup: shell-local: exit 9", "provisioner", "pending")]
    assert [e.data["status"] for e in events if e.type == "build.finished"] == ["failed"]


def test_run_cleanup_provisioner_keeps_the_machine_when_the_cleanup_provisioner_fails(tmp_path):
    s, events, machine = machine_session(
        tmp_path, FAIL, {"type": "shell-local", "inline": ["exit 9"]},
        on_error="run-cleanup-provisioner")
    result = s.run()
    r = result.results["null"]
    assert r.status == "failed" and r.kept and machine.is_dir()
    assert r.error.startswith("Cleanup failed: Script exited with non-zero exit status: 9.")


def test_a_cancelled_build_is_cleaned_up_even_with_run_cleanup_provisioner(tmp_path):
    s, events, machine = machine_session(
        tmp_path, [{"type": "shell-local", "inline": ["sleep 30"]}],
        cleanup_prov(tmp_path / "collected"), on_error="run-cleanup-provisioner")
    started = threading.Event()
    s.bus.subscribe(lambda e: e.type == "stage.started" and e.data["kind"] == "provisioner"
                    and started.set())
    s.start()
    assert started.wait(10)
    s.cancel("interrupt")
    result = s.wait(20)
    r = result.results["null"]
    assert r.status == "cancelled" and not r.kept and not machine.exists()
    assert kept_entries(s) == []
    assert not (tmp_path / "collected").exists()


def test_an_unknown_on_error_mode_cleans_up(tmp_path):
    s, events, machine = machine_session(tmp_path, FAIL, on_error="whatever")
    result = s.run()
    assert result.results["null"].status == "failed" and not machine.exists()


@pytest.mark.parametrize("answer, kept", [("abort", True), ("cleanup", False)])
def test_asked_abort_keeps_and_asked_cleanup_removes(tmp_path, answer, kept):
    s, events, machine = machine_session(tmp_path, FAIL, on_error="ask")
    asked = threading.Event()
    s.bus.subscribe(lambda e: e.type == "paused" and asked.set())
    s.start()
    assert asked.wait(10)
    [question] = [e.data for e in events if e.type == "paused"]
    assert question["prompt"] == "Provisioner 'shell-local: exit 7' failed"
    assert question["error"] == EXIT7
    assert question["choices"] == ["retry", "skip", "cleanup", "abort"]
    assert not s.answer("null", "bogus")
    assert s.answer("null", answer)
    result = s.wait(20)
    r = result.results["null"]
    assert (r.status, r.kept, machine.exists()) == ("failed", kept, kept)
    assert [e.data["choice"] for e in events if e.type == "answered"] == [answer]
    assert [e.data["status"] for e in events if e.type == "stage.status"] == ["paused", "running"]
    assert len(kept_entries(s)) == (1 if kept else 0)
    [stage] = [e.data for e in events if e.type == "stage.finished"
               and e.data["name"] == "shell-local: exit 7"]
    assert (stage["status"], stage["error"]) == ("failed", EXIT7)


def test_the_file_builder_runs_no_error_cleanup_provisioner(tmp_path):
    marker = tmp_path / "collected"
    path = tmp_path / "t.json"
    path.write_text(json.dumps({
        "builders": [{"type": "file", "target": str(tmp_path / "out"), "content": "x"}],
        "provisioners": [{"type": "shell-local", "inline": ["exit 7"]}],
        "error-cleanup-provisioner": cleanup_prov(marker)}))
    options = Options(state_dir=str(tmp_path / ".kiln"))
    s = Session(load_template(str(path), options), options)
    events: list = []
    s.bus.subscribe(events.append)
    result = s.run()
    assert result.exit_code == 1 and not marker.exists()
    assert "Provisioning step had errors: Running the cleanup provisioner, if present..." \
        not in said(events)


@pytest.mark.parametrize("mode", ["abort", "run-cleanup-provisioner"])
def test_a_kept_build_with_nothing_to_show_says_cleanup_was_skipped(tmp_path, mode):
    path = tmp_path / "t.json"
    path.write_text(json.dumps({"builders": [{"type": "null", "communicator": "none"}],
                                "provisioners": FAIL}))
    options = Options(state_dir=str(tmp_path / ".kiln"), on_error=mode)
    s = Session(load_template(str(path), options), options)
    events: list = []
    s.bus.subscribe(events.append)
    result = s.run()
    assert result.results["null"].kept
    assert errors(events)[-1] == f"Build failed; cleanup skipped (on-error {mode})."


class HintedComm(MockCommunicator):
    def __init__(self, hint):
        super().__init__()
        self.hint = hint

    def access_hint(self):
        if isinstance(self.hint, Exception):
            raise self.hint
        return self.hint


@pytest.mark.parametrize("hint, shown", [("ssh -p 2222 me@127.0.0.1", "ssh -p 2222 me@127.0.0.1"),
                                         (OSError("gone"), "")])
def test_a_kept_machine_says_how_to_get_into_it(tmp_path, hint, shown):
    s, events, machine = machine_session(tmp_path, FAIL, on_error="abort")
    builder = s.builds[0].builder
    step = builder.steps(None)[0]
    real_run = step.run

    def run(ctx):
        real_run(ctx)
        ctx.communicator = HintedComm(hint)

    step.run = run
    builder.steps = lambda ctx: [step, PROVISION]
    result = s.run()
    r = result.results["null"]
    assert r.kept and r.access_hint == shown
    [finished] = [e.data for e in events if e.type == "build.finished"]
    assert finished["access_hint"] == shown
    tail = errors(events)[-4:] if shown else errors(events)[-3:]
    expected = ["Build failed; the machine is kept as it is (no cleanup):",
                f"  test-machine {machine}"]
    if shown:
        expected.append(f"Get into it with: {shown}")
    assert tail == expected + ["When you are done, remove it with: kiln cleanup -all"]


def test_a_retry_after_an_edit_that_breaks_the_template_asks_again(tmp_path):
    s, events, machine = machine_session(tmp_path, FAIL, on_error="ask")
    asked = []
    gate = threading.Condition()

    def on_question(runner, q):
        with gate:
            asked.append(q)
            gate.notify_all()

    s.on_question = on_question
    s.start()

    def wait_for(n):
        with gate:
            assert gate.wait_for(lambda: len(asked) >= n, 10)

    wait_for(1)
    path = tmp_path / "t.json"
    path.write_text("{ not json")
    assert s.answer("null", "retry")
    wait_for(2)
    assert asked[1]["prompt"] == "The template could not be read again: fix it, then retry"
    assert str(path) in asked[1]["error"]
    assert asked[1]["choices"] == ["retry", "skip", "cleanup", "abort"]
    assert s.answer("null", "cleanup")
    result = s.wait(20)
    assert result.results["null"].status == "failed" and not machine.exists()
    assert [e.data["choice"] for e in events if e.type == "answered"] == ["retry", "cleanup"]


def ask_then(tmp_path, edit: dict, answers: list[str]):
    """Fail under -on-error=ask, write ``edit`` as the template, answer in turn; returns the
    questions asked, the events and the result."""
    s, events, machine = machine_session(tmp_path, FAIL, on_error="ask")
    asked: list = []
    gate = threading.Condition()

    def on_question(runner, q):
        with gate:
            asked.append(q)
            gate.notify_all()

    s.on_question = on_question
    s.start()
    for i, answer in enumerate(answers):
        with gate:
            assert gate.wait_for(lambda n=i: len(asked) > n, 10), asked
        if i == 0:
            (tmp_path / "t.json").write_text(json.dumps(edit))
        assert s.answer("null", answer), (answer, asked[-1])
    result = s.wait(20)
    assert result is not None
    return asked, events, result, machine


NULL = {"type": "null", "communicator": "none"}


def test_a_retry_when_the_build_was_renamed_says_so(tmp_path):
    asked, events, result, _ = ask_then(
        tmp_path, {"builders": [{**NULL, "name": "other"}], "provisioners": FAIL},
        ["retry", "cleanup"])
    assert asked[1]["prompt"] == "The template could not be read again: fix it, then retry"
    assert f"build 'null' is no longer in {tmp_path / 't.json'}" in asked[1]["error"]
    assert result.results["null"].status == "failed"


def test_a_retry_with_nothing_left_to_run_says_so(tmp_path):
    asked, events, result, _ = ask_then(
        tmp_path, {"builders": [NULL], "provisioners": FAIL[:1]}, ["retry", "skip"])
    assert asked[1]["error"].endswith("\nNo provisioner is left to run: skip, clean up or keep "
                                      "the machine, or edit the template again.")
    assert result.exit_code == 0


def test_a_retry_runs_the_edited_provisioner_and_masks_its_new_secret(tmp_path):
    fixed = [FAIL[0], {"type": "shell-local", "inline": ["echo fixed {{user `tok`}}"]}, FAIL[2],
             {"type": "shell-local", "inline": ["echo added"]}]
    asked, events, result, machine = ask_then(
        tmp_path, {"variables": {"tok": "fresh-secret-99"}, "sensitive-variables": ["tok"],
                   "builders": [NULL], "provisioners": fixed}, ["retry"])
    assert result.exit_code == 0 and not machine.exists()
    out = said(events)
    assert "fixed <sensitive>" in out and "never" in out and "added" in out
    assert "fresh-secret-99" not in json.dumps([e.to_dict() for e in events])
    [replanned] = [e.data for e in events if e.type == "build.replanned"]
    assert replanned["stage"] == 2 and replanned["retried"] is True
    assert replanned["build"] == "null"
    assert [st["name"] for st in replanned["stages"]][1:] == [
        "shell-local: echo first", "shell-local: echo fixed <sensitive>",
        "shell-local: echo never", "shell-local: echo added"]
    assert [st["index"] for st in replanned["stages"]] == [0, 1, 2, 3, 4]
    assert replanned["reason"] in out
    assert finished(events)[-3:] == [("shell-local: echo fixed <sensitive>", "succeeded"),
                                     ("shell-local: echo never", "succeeded"),
                                     ("shell-local: echo added", "succeeded")]


def test_skip_says_so_and_the_paused_stage_goes_back_to_running(tmp_path):
    s, events, machine = machine_session(tmp_path, FAIL, on_error="ask")
    asked = threading.Event()
    s.bus.subscribe(lambda e: e.type == "paused" and asked.set())
    s.start()
    assert asked.wait(10)
    assert s.answer("null", "skip")
    assert not s.answer("null", "abort")  # answered already
    result = s.wait(20)
    assert result.exit_code == 0
    assert "Skipped; carrying on with the next stage." in said(events)
    assert [(e.data["stage"], e.data["status"]) for e in events if e.type == "stage.status"] \
        == [(2, "paused"), (2, "running")]
    assert [(e.data["stage"], e.data["choice"]) for e in events if e.type == "answered"] == \
        [(2, "skip")]
    assert ("shell-local: exit 7", "skipped") in finished(events)
    [skipped] = [e.data for e in events if e.type == "stage.finished"
                 and e.data["name"] == "shell-local: exit 7"]
    assert skipped["error"] == EXIT7


def test_a_cancel_while_asking_cleans_up_and_keeps_the_error(tmp_path):
    s, events, machine = machine_session(tmp_path, FAIL, on_error="ask")
    asked = threading.Event()
    s.bus.subscribe(lambda e: e.type == "paused" and asked.set())
    s.start()
    assert asked.wait(10)
    s.cancel()
    result = s.wait(20)
    r = result.results["null"]
    assert (r.status, r.error) == ("cancelled", "cancelled")
    assert not machine.exists() and kept_entries(s) == []
    [stage] = [e.data for e in events if e.type == "stage.finished"
               and e.data["name"] == "shell-local: exit 7"]
    assert (stage["status"], stage["error"]) == ("cancelled", EXIT7)


def test_the_kept_list_names_only_this_builds_machines(tmp_path):
    s, events, machine = machine_session(tmp_path, FAIL, on_error="abort")
    builder = s.builds[0].builder
    step = builder.steps(None)[0]
    real_run = step.run

    def run(ctx):
        real_run(ctx)
        ctx.ledger.record("tempfile", str(tmp_path / "scratch"))
        s.ledger.record("test-machine", "another-builds", build="other")

    step.run = run
    builder.steps = lambda ctx: [step, PROVISION]
    result = s.run()
    assert result.results["null"].kept
    assert errors(events)[-3:] == ["Build failed; the machine is kept as it is (no cleanup):",
                                   f"  test-machine {machine}",
                                   "When you are done, remove it with: kiln cleanup -all"]


def test_the_error_cleanup_provisioner_has_its_own_timeout(tmp_path):
    s, events, machine = machine_session(
        tmp_path, FAIL, {"type": "shell-local", "timeout": "1s", "inline": ["sleep 30"]})
    result = s.run()
    r = result.results["null"]
    assert r.error == (f"Cleanup failed: provisioner timed out after 1s. Original Provisioning "
                       f"error: {EXIT7}")
