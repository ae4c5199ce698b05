"""The builder's steps as the runner runs them and a user follows them: the events of each
stage, a failing cleanup reported and the rest still cleaned up, a builder that cannot plan,
-debug pausing before each step, a cancel mid-step, kiln dev stopping after provisioning."""

from __future__ import annotations

import json
import threading
from pathlib import Path

from kiln.backend.engine.prepare import Options
from kiln.backend.engine.session import Session, load_template
from kiln.backend.sdk.communicator import MockCommunicator
from kiln.backend.sdk.plugin import PROVISION, Artifact, Builder, Step, StepError


class Rec(Step):
    def __init__(self, title: str, log: list, *, fail: str = "", cleanup_fails: bool = False):
        self.title = title
        self.log = log
        self.fail = fail
        self.cleanup_fails = cleanup_fails

    def run(self, ctx):
        self.log.append(f"run {self.title}")
        ctx.ui.say(f"{self.title} says hi")
        ctx.communicator = MockCommunicator()
        if self.fail == "error":
            raise StepError(f"{self.title} refused")
        if self.fail == "crash":
            raise KeyError("k")
        if self.fail == "wait":
            ctx.cancel.sleep(30)

    def cleanup(self, ctx):
        self.log.append(f"cleanup {self.title}")
        if self.cleanup_fails:
            raise StepError(f"{self.title} will not go")


class RecBuilder(Builder):
    type_name = "rec"
    builder_id = "test.rec"
    Config = dict

    def __init__(self, log: list, steps=None, artifact_fails=False, plan_fails=False):
        super().__init__({})
        self.log = log
        self._steps = steps
        self.artifact_fails = artifact_fails
        self.plan_fails = plan_fails

    def steps(self, ctx):
        if self.plan_fails:
            raise TypeError("no plan")
        self.log.append(f"ctx {ctx.build_name} {ctx.build_type} {ctx.run_id == ctx.run_id}")
        return self._steps

    def artifact(self, ctx):
        if self.artifact_fails:
            raise StepError("no artifact")
        return Artifact(self.builder_id, id="rec-1", string="recorded")


def rec_session(tmp_path: Path, steps_of, provisioners=None, post=None, **opts):
    doc = {"builders": [{"type": "null", "name": "b", "communicator": "none"}],
           "provisioners": provisioners if provisioners is not None else
           [{"type": "shell-local", "inline": ["echo prov"]}]}
    if post:
        doc["post-processors"] = post
    path = tmp_path / "t.json"
    path.write_text(json.dumps(doc, indent=2))
    options = Options(state_dir=str(tmp_path / ".kiln"), **opts)
    s = Session(load_template(str(path), options), options)
    log: list = []
    s.builds[0].builder = steps_of(log)
    events: list = []
    s.bus.subscribe(events.append)
    return s, events, log


def of(events, kind):
    return [e.data for e in events if e.type == kind]


def lines(events, stream=None):
    return [ln for e in events if e.type == "output"
            and (stream is None or e.data["stream"] == stream) for ln in e.data["lines"]]


def test_durations_are_seconds_to_the_microsecond(tmp_path):
    s, events, log = rec_session(
        tmp_path, lambda log: RecBuilder(log, [Rec("A", log), PROVISION]),
        provisioners=[{"type": "shell-local", "inline": ["sleep 0.05"]}])
    assert s.run().exit_code == 0
    [prov] = [d for d in of(events, "stage.finished") if d["kind"] == "provisioner"]
    [done] = of(events, "build.finished")
    for d in (prov["duration"], done["duration"], done["stages"][1]["duration"]):
        assert isinstance(d, float) and 0.05 <= d < 5 and round(d, 6) == d


def test_each_stage_starts_and_finishes_in_order_with_its_source(tmp_path):
    s, events, log = rec_session(
        tmp_path, lambda log: RecBuilder(log, [Rec("A", log), PROVISION, Rec("B", log)]),
        post=[{"type": "shell-local", "name": "say", "inline": ["echo pp"]},
              {"type": "shell-local", "inline": ["echo pp2"]}])
    result = s.run()
    assert result.exit_code == 0
    assert log == ["ctx b null True", "run A", "run B", "cleanup B", "cleanup A"]
    [started] = of(events, "build.started")
    assert started["build"] == "b" and started["build_type"] == "null"
    assert [(st["index"], st["name"], st["kind"], st["status"], st["source"])
            for st in started["stages"]] == [
        (0, "A", "builder", "pending", ""),
        (1, "shell-local: echo prov", "provisioner", "pending", "t.json:10"),
        (2, "B", "builder", "pending", ""),
        (3, "say (shell-local)", "post-processor", "pending", "t.json:18"),
        (4, "shell-local", "post-processor", "pending", "t.json:25")]
    assert [(d["stage"], d["name"], d["kind"]) for d in of(events, "stage.started")] == [
        (0, "A", "builder"), (1, "shell-local: echo prov", "provisioner"), (2, "B", "builder"),
        (3, "say (shell-local)", "post-processor"), (4, "shell-local", "post-processor")]
    finished = of(events, "stage.finished")
    assert [(d["stage"], d["status"], d["error"]) for d in finished] == [
        (0, "succeeded", ""), (1, "succeeded", ""), (2, "succeeded", ""), (3, "succeeded", ""),
        (4, "succeeded", "")]
    assert all(d["duration"] >= 0 and round(d["duration"], 6) == d["duration"]
               for d in finished)
    assert "A says hi" in lines(events) and "Running post-processor: say (type shell-local)" \
        in lines(events)
    # each step's lines belong to its stage
    [hi] = [e.data for e in events if e.type == "output" and e.data["lines"] == ["A says hi"]]
    assert hi["stage"] == 0 and hi["stream"] == "ui"
    [done] = of(events, "build.finished")
    assert done["status"] == "succeeded" and done["error"] == "" and not done["kept"]
    assert [(st["name"], st["status"]) for st in done["stages"]] == [
        ("A", "succeeded"), ("shell-local: echo prov", "succeeded"), ("B", "succeeded"),
        ("say (shell-local)", "succeeded"), ("shell-local", "succeeded")]
    assert done["duration"] >= 0


def test_a_failed_step_ends_the_build_and_the_rest_is_skipped(tmp_path):
    s, events, log = rec_session(
        tmp_path, lambda log: RecBuilder(log, [Rec("A", log), Rec("B", log, fail="error"),
                                               PROVISION, Rec("C", log)]))
    result = s.run()
    r = result.results["b"]
    assert (r.status, r.error) == ("failed", "B refused")
    assert log[1:] == ["run A", "run B", "cleanup B", "cleanup A"]
    assert "B refused" in lines(events, "ui-error")
    finished = [(d["name"], d["status"], d["error"], d["duration"])
                for d in of(events, "stage.finished")]
    assert finished[1][:3] == ("B", "failed", "B refused")
    assert finished[2:] == [("shell-local: echo prov", "skipped", "", 0.0),
                            ("C", "skipped", "", 0.0)]
    assert [(d["build"], d["stage"]) for d in of(events, "stage.finished")][2:] == \
        [("b", 2), ("b", 3)]
    [done] = of(events, "build.finished")
    assert [(st["name"], st["kind"], st["status"]) for st in done["stages"]] == [
        ("A", "builder", "succeeded"), ("B", "builder", "failed"),
        ("shell-local: echo prov", "provisioner", "skipped"), ("C", "builder", "skipped")]


def test_a_crashing_step_is_a_crash_with_its_exception(tmp_path):
    s, events, log = rec_session(
        tmp_path, lambda log: RecBuilder(log, [Rec("A", log, fail="crash"), PROVISION]))
    result = s.run()
    r = result.results["b"]
    assert (r.status, r.error) == ("crashed", "Kiln crashed: KeyError: 'k'")
    assert "Kiln crashed: KeyError: 'k'" in lines(events, "ui-error")
    assert [(d["name"], d["status"]) for d in of(events, "stage.finished")][0] == \
        ("A", "crashed")
    log_text = Path(s.log_paths["b"]).read_text()
    assert "Traceback" in log_text and "KeyError: 'k'" in log_text


def test_a_cleanup_that_fails_is_reported_and_the_others_still_run(tmp_path):
    s, events, log = rec_session(
        tmp_path, lambda log: RecBuilder(log, [Rec("A", log), Rec("B", log, cleanup_fails=True),
                                               PROVISION]))
    result = s.run()
    assert result.exit_code == 0
    assert log[-2:] == ["cleanup B", "cleanup A"]
    [line] = [e.data for e in events if e.type == "output"
              and e.data["lines"] == ["Cleanup of B failed: B will not go"]]
    assert line["stream"] == "ui-error" and line["stage"] == 1


def test_a_builder_that_cannot_plan_its_steps_is_a_crash(tmp_path):
    s, events, log = rec_session(tmp_path, lambda log: RecBuilder(log, plan_fails=True))
    result = s.run()
    r = result.results["b"]
    assert (r.status, r.error) == ("crashed", "TypeError: no plan")
    [started] = of(events, "build.started")
    # no builder stage; the provisioners never ran
    assert [st["kind"] for st in started["stages"]] == []
    assert of(events, "stage.started") == []


def test_a_builder_without_an_artifact_fails_after_cleaning_up(tmp_path):
    s, events, log = rec_session(
        tmp_path, lambda log: RecBuilder(log, [Rec("A", log), PROVISION], artifact_fails=True))
    result = s.run()
    r = result.results["b"]
    assert (r.status, r.error) == ("failed", "no artifact")
    assert log[-1] == "cleanup A" and of(events, "artifact") == []


def test_debug_pauses_before_each_step(tmp_path):
    s, events, log = rec_session(
        tmp_path, lambda log: RecBuilder(log, [Rec("A", log), PROVISION, Rec("B", log)]),
        provisioners=[], debug=True)
    prompts: list = []

    def answer(runner, q):
        prompts.append((q["prompt"], q["choices"], q["stage"]))
        threading.Thread(target=s.answer, args=("b", "continue")).start()

    s.on_question = answer
    s.start()
    result = s.wait(20)
    assert result is not None and result.exit_code == 0
    assert prompts == [("Pausing before step 'A'. Press enter to continue.", ["continue"], 0),
                       ("Pausing before step 'B'. Press enter to continue.", ["continue"], 1)]
    assert [d["choice"] for d in of(events, "answered")] == ["continue", "continue"]


def test_a_cancel_mid_step_cleans_up_and_says_so(tmp_path):
    s, events, log = rec_session(
        tmp_path, lambda log: RecBuilder(log, [Rec("A", log), Rec("B", log, fail="wait"),
                                               PROVISION]))
    started = threading.Event()
    s.bus.subscribe(lambda e: e.type == "stage.started" and e.data["name"] == "B"
                    and started.set())
    s.start()
    assert started.wait(10)
    s.cancel("interrupt")
    result = s.wait(20)
    r = result.results["b"]
    assert (r.status, r.error) == ("cancelled", "cancelled")
    assert log[-2:] == ["cleanup B", "cleanup A"]
    assert of(events, "build.status") == [{"build": "b", "status": "cancelling"}]
    assert [(d["name"], d["status"]) for d in of(events, "stage.finished")][:2] == [
        ("A", "succeeded"), ("B", "cancelled")]
    assert "B refused" not in lines(events) and not lines(events, "ui-error")


def test_kiln_dev_stops_after_the_provisioners_and_holds_the_machine(tmp_path):
    held: list = []

    def dev(runner, stack):
        held.append((runner.name, stack))

    s, events, log = rec_session(
        tmp_path, lambda log: RecBuilder(log, [Rec("A", log), PROVISION, Rec("Export", log)]),
        post=[{"type": "shell-local", "inline": ["echo pp"]}], dev=dev)
    result = s.run()
    assert result.exit_code == 0
    assert log[1:] == ["run A"]  # no export, no cleanup yet
    [(name, stack)] = held
    assert name == "b"
    assert [st["name"] for st in of(events, "build.started")[0]["stages"]] == [
        "A", "shell-local: echo prov"]
    assert "pp" not in lines(events)
    stack.close()
    assert log[-1] == "cleanup A"


def test_a_provisioner_label_hides_secrets(tmp_path):
    path = tmp_path / "t.json"
    path.write_text(json.dumps({
        "variables": {"pw": "hunter2-secret"}, "sensitive-variables": ["pw"],
        "builders": [{"type": "null", "communicator": "none"}],
        "provisioners": [{"type": "shell-local", "inline": ["echo {{user `pw`}}"]}]}))
    options = Options(state_dir=str(tmp_path / ".kiln"))
    s = Session(load_template(str(path), options), options)
    events: list = []
    s.bus.subscribe(events.append)
    s.run()
    names = [st["name"] for st in of(events, "build.started")[0]["stages"]]
    assert names == ["Connect", "shell-local: echo <sensitive>"]


def test_a_cancel_while_debug_mode_waits_before_a_step_ends_the_build(tmp_path):
    s, events, log = rec_session(
        tmp_path, lambda log: RecBuilder(log, [Rec("A", log), PROVISION]), provisioners=[],
        debug=True)
    asked = threading.Event()
    s.on_question = lambda runner, q: asked.set()
    s.start()
    assert asked.wait(10)
    s.cancel("interrupt")
    result = s.wait(10)
    assert result is not None, "the paused build did not stop"
    assert result.results["b"].status == "cancelled" and log[1:] == []
