"""The build runner as a user sees it, on the file and null builders: provisioners through
the builder's communicator, the post-processor chains (which artifacts survive, which files
are removed), the artifact events and the summary lines, secrets added while a build runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from kiln.backend.cli import main
from kiln.backend.engine.prepare import Options
from kiln.backend.engine.session import Session, load_template


def write(path: Path, doc: dict) -> Path:
    path.write_text(json.dumps(doc, indent=2))
    return path


def run_session(path: Path, **opts):
    options = Options(state_dir=str(path.parent / ".kiln"), **opts)
    s = Session(load_template(str(path), options), options)
    events: list = []
    s.bus.subscribe(events.append)
    result = s.run()
    return result, events


def of_type(events, kind: str) -> list[dict]:
    return [e.data for e in events if e.type == kind]


def lines(events, stream: str | None = None) -> list[str]:
    return [ln for e in events if e.type == "output"
            and (stream is None or e.data["stream"] == stream) for ln in e.data["lines"]]


def cli_build(capsys, tmp_path: Path, doc: dict, *flags: str) -> tuple[int, list[str]]:
    path = write(tmp_path / "t.json", doc)
    code = main(["build", "-color=false", *flags, str(path)])
    return code, capsys.readouterr().out.splitlines()


def file_builder(tmp_path: Path, **extra) -> dict:
    return {"type": "file", "target": str(tmp_path / "out.txt"), "content": "hello", **extra}


# -- provisioners through the builder's communicator -------------------------------------------


def test_remote_provisioners_run_through_the_builders_communicator(tmp_path):
    src = tmp_path / "src.txt"
    src.write_text("payload")
    path = write(tmp_path / "t.json", {
        "builders": [file_builder(tmp_path)],
        "provisioners": [
            {"type": "shell", "inline": ["echo hi"]},
            {"type": "file", "source": str(src), "destination": "/tmp/dst.txt"},
            {"type": "shell-local", "inline": ["echo local"]},
        ],
    })
    result, events = run_session(path)
    assert result.exit_code == 0, result.results["file"].error
    finished = [(d["kind"], d["status"]) for d in of_type(events, "stage.finished")]
    assert finished == [("builder", "succeeded")] + [("provisioner", "succeeded")] * 3
    out = lines(events)
    assert f"Uploading {src} => /tmp/dst.txt" in out
    assert "local" in out


def test_a_build_without_a_communicator_fails_its_remote_provisioner_with_a_clear_error(tmp_path):
    from kiln.backend.engine.prepare import PreparedBuild
    from kiln.backend.sdk.plugin import PROVISION, Artifact, Builder
    from kiln.backend.template.model import BuildDef
    from kiln.backend.template.source import Loc, Node

    class NoMachine(Builder):
        type_name = "nomachine"
        builder_id = "test.nomachine"
        Config = dict

        def steps(self, ctx):
            return [PROVISION]

        def artifact(self, ctx):
            return Artifact(self.builder_id, id="x", string="x")

    path = write(tmp_path / "t.json", {
        "builders": [{"type": "null", "communicator": "none"}],
        "provisioners": [{"type": "shell-local", "inline": ["echo local"]},
                         {"type": "shell", "inline": ["echo hi"]}],
    })
    options = Options(state_dir=str(tmp_path / ".kiln"))
    template = load_template(str(path), options)
    real = Session(template, options).builds[0]
    bdef = BuildDef(0, "nomachine", "nomachine", "nomachine", Node({}, Loc(str(path))),
                    Loc(str(path)))
    pb = PreparedBuild(bdef, NoMachine({}), real.provisioners, None, [], [], [])
    s = Session(template, options, builds=[pb])
    events: list = []
    s.bus.subscribe(events.append)
    result = s.run()
    assert result.exit_code == 1
    # shell-local needs no communicator and runs; shell needs one and fails, located
    statuses = [d["status"] for d in of_type(events, "stage.finished")]
    assert statuses == ["succeeded", "failed"]
    assert "local" in lines(events)
    assert result.results["nomachine"].error == \
        "no communicator found for provisioners: the builder connected to nothing"


# -- the post-processor chains -----------------------------------------------------------------


def test_a_post_processor_that_replaces_the_artifact_removes_the_builders_file(tmp_path, capsys):
    out = tmp_path / "out.txt"
    archive = tmp_path / "out.tar.gz"
    code, text = cli_build(capsys, tmp_path, {
        "builders": [file_builder(tmp_path)],
        "post-processors": [{"type": "compress", "output": str(archive)}],
    })
    assert code == 0
    assert archive.is_file() and not out.exists()
    summary = text[text.index("==> Builds finished. The artifacts of successful builds are:") + 1:]
    assert summary[0] == f"--> file: compressed artifacts in: {archive}"
    assert not any("Stored file" in ln for ln in summary[:2])


def test_keep_input_artifact_keeps_the_builders_file_and_lists_it_first(tmp_path, capsys):
    out = tmp_path / "out.txt"
    archive = tmp_path / "out.tar.gz"
    code, text = cli_build(capsys, tmp_path, {
        "builders": [file_builder(tmp_path)],
        "post-processors": [{"type": "compress", "output": str(archive),
                             "keep_input_artifact": True}],
    })
    assert code == 0
    assert archive.is_file() and out.read_text() == "hello"
    summary = text[text.index("==> Builds finished. The artifacts of successful builds are:") + 1:]
    assert summary[:2] == [f"--> file: Stored file: {out}",
                           f"--> file: compressed artifacts in: {archive}"]


def test_keep_input_artifact_false_removes_what_a_post_processor_would_keep(tmp_path):
    out = tmp_path / "out.txt"
    extra = tmp_path / "extra.txt"
    extra.write_text("x")
    path = write(tmp_path / "t.json", {
        "builders": [file_builder(tmp_path)],
        "post-processors": [{"type": "artifice", "files": [str(extra)],
                             "keep_input_artifact": False}],
    })
    result, events = run_session(path)
    assert result.exit_code == 0
    assert not out.exists() and extra.exists()
    assert [a["files"] for a in of_type(events, "artifact")] == [[str(extra)]]


def test_a_forced_keep_wins_over_keep_input_artifact_false(tmp_path):
    out = tmp_path / "out.txt"
    path = write(tmp_path / "t.json", {
        "builders": [file_builder(tmp_path)],
        "post-processors": [{"type": "checksum", "checksum_types": ["md5"],
                             "output": str(tmp_path / "sum.{{.ChecksumType}}"),
                             "keep_input_artifact": False}],
    })
    result, events = run_session(path)
    assert result.exit_code == 0
    assert out.read_text() == "hello"
    artifacts = of_type(events, "artifact")
    assert [a["builder_id"] for a in artifacts] == ["packer.file", "packer.post-processor.checksum"]


def test_a_chain_keeps_or_removes_the_artifact_before_each_post_processor(tmp_path):
    out = tmp_path / "out.txt"
    kept_in, gone_in = tmp_path / "kept.txt", tmp_path / "gone.txt"
    kept_in.write_text("k")
    gone_in.write_text("g")
    path = write(tmp_path / "t.json", {
        "builders": [file_builder(tmp_path)],
        "post-processors": [
            [{"type": "artifice", "files": [str(kept_in)]},
             {"type": "compress", "output": str(tmp_path / "k.tar.gz"), "keep_input_artifact": True}],
            [{"type": "artifice", "files": [str(gone_in)]},
             {"type": "compress", "output": str(tmp_path / "g.tar.gz")}],
        ],
    })
    result, events = run_session(path)
    assert result.exit_code == 0, result.results["file"].error
    # the first chain kept artifice's artifact, the second destroyed it; artifice keeps the
    # builder's artifact by default
    assert kept_in.exists() and not gone_in.exists() and out.exists()
    files = [a["files"] for a in of_type(events, "artifact")]
    assert files == [[str(out)], [str(kept_in)], [str(tmp_path / "k.tar.gz")],
                     [str(tmp_path / "g.tar.gz")]]
    assert [a.files() for a in result.results["file"].artifacts] == files


def test_a_failing_post_processor_fails_the_build_and_the_next_chains_still_run(tmp_path, capsys):
    done = tmp_path / "second-chain-ran"
    code, text = cli_build(capsys, tmp_path, {
        "builders": [file_builder(tmp_path)],
        "post-processors": [
            [{"type": "shell-local", "inline": ["exit 3"]},
             {"type": "shell-local", "inline": [f"touch {tmp_path / 'never'}"]}],
            {"type": "shell-local", "inline": [f"touch {done}"]},
        ],
    })
    assert code == 1
    message = ("Post-processor failed: Script exited with non-zero exit status: 3. "
               "Allowed exit codes are: [0]")
    assert f"==> file (shell-local): {message}" in text
    assert f"--> file: {message}" in text
    assert "==> Builds finished but no artifacts were created." in text
    assert done.exists() and not (tmp_path / "never").exists()
    assert not any("crash" in ln.lower() for ln in text)


def test_a_post_processor_crash_is_reported_with_its_exception(tmp_path):
    path = write(tmp_path / "t.json", {
        "builders": [file_builder(tmp_path)],
        "post-processors": [{"type": "compress", "output": str(tmp_path / "x.tar.gz")}],
    })
    from kiln.backend.plugins.postprocessors.compress import CompressPostProcessor

    def boom(self, ctx, ui, artifact):
        raise KeyError("lost")

    mp = pytest.MonkeyPatch()
    mp.setattr(CompressPostProcessor, "post_process", boom)
    try:
        result, events = run_session(path)
    finally:
        mp.undo()
    assert result.exit_code == 1
    assert result.results["file"].status == "failed"
    assert result.results["file"].error == "Post-processor failed: KeyError: 'lost'"
    assert "Post-processor failed: KeyError: 'lost'" in lines(events, "ui-error")
    assert of_type(events, "artifact") == []
    # the builder's artifact is gone: the chain abandoned it and nothing kept it
    assert not (tmp_path / "out.txt").exists()


def test_a_post_processor_returning_nothing_abandons_its_chain(tmp_path):
    path = write(tmp_path / "t.json", {
        "builders": [file_builder(tmp_path)],
        "post-processors": [[{"type": "compress", "output": str(tmp_path / "x.tar.gz")},
                             {"type": "shell-local", "inline": ["echo second"]}]],
    })
    from kiln.backend.plugins.postprocessors.compress import CompressPostProcessor

    mp = pytest.MonkeyPatch()
    mp.setattr(CompressPostProcessor, "post_process", lambda self, ctx, ui, a: None)
    try:
        result, events = run_session(path)
    finally:
        mp.undo()
    assert result.exit_code == 0
    assert of_type(events, "artifact") == []
    assert "second" not in lines(events)
    statuses = [(d["name"], d["status"]) for d in of_type(events, "stage.finished")]
    assert statuses == [("Write file", "succeeded"), ("compress", "succeeded"),
                        ("shell-local", "skipped")]


# -- artifact events and the summary -----------------------------------------------------------


def test_artifact_events_are_sent_only_for_a_successful_build(tmp_path):
    ok = write(tmp_path / "t.json", {"builders": [file_builder(tmp_path)]})
    result, events = run_session(ok)
    assert result.exit_code == 0
    assert of_type(events, "artifact") == [{
        "build": "file", "builder_id": "packer.file", "id": "File",
        "files": [str(tmp_path / "out.txt")], "string": f"Stored file: {tmp_path / 'out.txt'}"}]
    finished = of_type(events, "build.finished")[0]
    assert finished["status"] == "succeeded" and finished["error"] == ""

    bad = write(tmp_path / "t.json", {
        "builders": [file_builder(tmp_path)],
        "provisioners": [{"type": "shell-local", "inline": ["exit 1"]}]})
    result, events = run_session(bad)
    assert result.exit_code == 1
    assert of_type(events, "artifact") == []
    assert [e.type for e in events].index("build.finished") > 0


def test_secrets_added_while_a_build_runs_join_the_templates_secrets(tmp_path):
    """A plugin's ctx.add_secret (a generated password) is masked, and so are the template's
    sensitive variables still."""
    from kiln.backend.plugins.provisioners.shell_local import ShellLocalProvisioner

    template_secret, runtime_secret = "template-pass-1234", "runtime-pass-5678"
    real = ShellLocalProvisioner.provision

    def provision(self, ctx, ui, comm, data):
        ctx.add_secret(runtime_secret)
        return real(self, ctx, ui, comm, data)

    path = write(tmp_path / "t.json", {
        "variables": {"pw": template_secret}, "sensitive-variables": ["pw"],
        "builders": [{"type": "null", "communicator": "none"}],
        "provisioners": [{"type": "shell-local", "inline": [
            # the run-time secret is not in the template's text: the script makes it
            "echo tpl={{user `pw`}} run=$(printf 'runtime-pass-%s' 5678)", "exit 4"]}],
    })
    mp = pytest.MonkeyPatch()
    mp.setattr(ShellLocalProvisioner, "provision", provision)
    try:
        result, events = run_session(path)
    finally:
        mp.undo()
    assert "tpl=<sensitive> run=<sensitive>" in lines(events)
    dump = json.dumps([e.to_dict() for e in events])
    assert template_secret not in dump and runtime_secret not in dump
    [log] = (tmp_path / ".kiln" / "logs").glob("*/null.log")
    text = log.read_text()
    assert "tpl=<sensitive> run=<sensitive>" in text
    assert template_secret not in text and runtime_secret not in text


def test_a_cancel_during_a_post_processor_abandons_every_chain(tmp_path):
    import threading

    path = write(tmp_path / "t.json", {
        "builders": [file_builder(tmp_path)],
        "post-processors": [[{"type": "shell-local", "inline": ["sleep 30"]},
                             {"type": "shell-local", "inline": ["echo never-1"]}],
                            [{"type": "shell-local", "inline": ["echo never-2"]},
                             {"type": "shell-local", "inline": ["echo never-3"]}]]})
    options = Options(state_dir=str(tmp_path / ".kiln"))
    s = Session(load_template(str(path), options), options)
    events: list = []
    s.bus.subscribe(events.append)
    started = threading.Event()
    s.bus.subscribe(lambda e: e.type == "stage.started" and e.data["kind"] == "post-processor"
                    and started.set())
    s.start()
    assert started.wait(10)
    s.cancel("interrupt")
    result = s.wait(20)
    r = result.results["file"]
    assert result.exit_code == 1 and result.interrupted
    assert (r.status, r.error) == ("failed", "context canceled; context canceled")
    pps = [(d["status"], d["error"]) for d in of_type(events, "stage.finished")
           if d["kind"] == "post-processor"]
    # one "context canceled" per chain, however many post-processors it had left
    assert pps == [("cancelled", "cancelled"), ("skipped", ""), ("skipped", ""), ("skipped", "")]
    assert not {"never-1", "never-2", "never-3"} & set(lines(events))
    assert of_type(events, "artifact") == []


def test_a_failing_post_processors_stage_says_why(tmp_path):
    path = write(tmp_path / "t.json", {
        "builders": [file_builder(tmp_path)],
        "post-processors": [[{"type": "shell-local", "inline": ["exit 3"]},
                             {"type": "shell-local", "inline": ["echo never"]}]]})
    result, events = run_session(path)
    pps = [(d["status"], d["error"]) for d in of_type(events, "stage.finished")
           if d["kind"] == "post-processor"]
    assert pps == [("failed", "Script exited with non-zero exit status: 3. Allowed exit codes "
                              "are: [0]"), ("skipped", "")]
    [done] = of_type(events, "build.finished")
    assert done["status"] == "failed"


def test_a_crashing_post_processor_leaves_its_traceback_in_the_log(tmp_path):
    from kiln.backend.plugins.postprocessors.compress import CompressPostProcessor

    path = write(tmp_path / "t.json", {
        "builders": [file_builder(tmp_path)],
        "post-processors": [{"type": "compress", "output": str(tmp_path / "x.tar.gz")}]})

    def boom(self, ctx, ui, artifact):
        raise KeyError("lost")

    mp = pytest.MonkeyPatch()
    mp.setattr(CompressPostProcessor, "post_process", boom)
    try:
        result, events = run_session(path)
    finally:
        mp.undo()
    [pp] = [d for d in of_type(events, "stage.finished") if d["kind"] == "post-processor"]
    assert (pp["status"], pp["error"]) == ("failed", "KeyError: 'lost'")
    [log] = (tmp_path / ".kiln" / "logs").glob("*/file.log")
    text = log.read_text()
    assert "Traceback (most recent call last)" in text and "KeyError: 'lost'" in text


def test_an_artifact_that_cannot_be_removed_fails_the_build_with_the_reason(tmp_path):
    out = tmp_path / "out.txt"
    extra = tmp_path / "extra.txt"
    extra.write_text("x")
    # the builder's file is gone before the post-processor drops the builder's artifact
    path = write(tmp_path / "t.json", {
        "builders": [file_builder(tmp_path)],
        "provisioners": [{"type": "shell-local", "inline": [f"rm {out}"]}],
        "post-processors": [{"type": "artifice", "files": [str(extra)],
                             "keep_input_artifact": False}]})
    result, events = run_session(path)
    r = result.results["file"]
    assert (r.status, r.error) == (
        "failed", f"Error destroying builder artifact: remove {out}: no such file or directory")
    # a later post-processor dropping the compress output it was given
    archive = tmp_path / "a.tar.gz"
    path = write(tmp_path / "t.json", {
        "builders": [file_builder(tmp_path)],
        "post-processors": [[
            {"type": "compress", "output": str(archive), "keep_input_artifact": True},
            {"type": "shell-local", "inline": [f"rm {archive}"]},
            {"type": "artifice", "files": [str(extra)], "keep_input_artifact": False}]]})
    result, events = run_session(path)
    r = result.results["file"]
    assert (r.status, r.error) == (
        "failed", f"Failed cleaning up prior artifact: remove {archive}: no such file or "
                  "directory; pp is artifice")


def test_provisioners_get_the_builds_generated_data(tmp_path):
    path = write(tmp_path / "t.json", {
        "builders": [file_builder(tmp_path)],
        "provisioners": [{"type": "shell-local", "inline": ["echo id={{build `ID`}}"]}]})
    result, events = run_session(path)
    assert "id=File" in lines(events)
