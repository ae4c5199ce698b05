"""shell and file provisioners, run for real over the local communicator."""

from __future__ import annotations

import os
import threading
import time

import build_context
import pytest
from build_context import decode, problems_of
from kiln.backend.engine.ledger import Ledger
from kiln.backend.plugins.communicators.local import LocalCommunicator
from kiln.backend.plugins.provisioners.file import FileProvisioner
from kiln.backend.plugins.provisioners.shell import ShellProvisioner, flatten_env_vars
from kiln.backend.sdk.communicator import DISCONNECTED, CommunicatorError
from kiln.backend.sdk.plugin import Cancelled, PrepareContext, StepError
from kiln.backend.template.decode import ConfigProblems

# --------------------------------------------------------------------------- helpers


class Run(build_context.Run):
    """With a local communicator."""

    def __init__(self, build_name: str = "box", build_type: str = "null"):
        super().__init__(build_name, build_type, "run-1", ledger=Ledger("run-1"))
        self.comm = LocalCommunicator()

    def provision(self, cls, config: dict, data: dict | None = None, comm=None):
        p = cls(decode(cls, config))
        p.prepare(PrepareContext(".", self.ctx.build_name, self.ctx.build_type))
        p.provision(self.ctx, self.ctx.ui, comm or self.comm, dict(data or {}))
        return p


@pytest.fixture
def run(tmp_path, monkeypatch) -> Run:
    monkeypatch.chdir(tmp_path)
    return Run()


# --------------------------------------------------------------------------- shell: config


def test_shell_config_rules():
    assert "nothing to run" in problems_of(ShellProvisioner, {})
    assert "nothing to run" in problems_of(ShellProvisioner, {"inline": []})
    assert "script and scripts" in problems_of(ShellProvisioner, {"script": "a", "scripts": ["b"]})
    assert "inline cannot be combined" in problems_of(ShellProvisioner,
                                                      {"inline": ["x"], "script": "a"})
    assert "'NOEQUALS' is not of the form KEY=value" in problems_of(
        ShellProvisioner, {"inline": ["x"], "environment_vars": ["NOEQUALS"]})
    assert "not of the form" in problems_of(ShellProvisioner,
                                            {"inline": ["x"], "environment_vars": ["=v"]})


def test_shell_defaults_follow_packer():
    cfg = decode(ShellProvisioner, {"inline": ["true"]})
    assert cfg.path().startswith("/tmp/script_") and cfg.path().endswith(".sh")
    assert cfg.path() == cfg.path()  # chosen once
    assert cfg.command_template() == "chmod +x {{.Path}}; {{.Vars}} {{.Path}}"
    assert cfg.exit_codes() == [0]
    assert cfg.start_retry_timeout == 300
    env_file = decode(ShellProvisioner, {"inline": ["true"], "use_env_var_file": True})
    assert env_file.command_template() == "chmod +x {{.Path}}; . {{.EnvVarFile}} && {{.Path}}"
    assert env_file.var_format() == "export %s='%s'\n"
    custom = decode(ShellProvisioner, {"inline": ["true"], "remote_folder": "/var/tmp",
                                       "remote_file": "x.sh"})
    assert custom.path() == "/var/tmp/x.sh"


def test_prepare_rejects_missing_script(run):
    p = ShellProvisioner(decode(ShellProvisioner, {"scripts": ["nope.sh"]}))
    with pytest.raises(ConfigProblems, match="nope.sh"):
        p.prepare(PrepareContext(".", "b", "null"))


def test_env_var_string_is_sorted_and_quoted_as_packer():
    cfg = decode(ShellProvisioner, {
        "inline": ["true"],
        "environment_vars": ["ZED=last", "QUOTE=it's", "EMPTY=", "EQ=a=b", "OVER=list"],
        "env": {"OVER": "map", "ALPHA": "1"},
    })
    text = flatten_env_vars(cfg, "box", "docker", {})
    assert text == (
        "ALPHA='1' EMPTY='' EQ='a=b' OVER='map' PACKER_BUILDER_TYPE='docker' "
        "PACKER_BUILD_NAME='box' QUOTE='it'\"'\"'s' ZED='last' "
    )
    http = flatten_env_vars(cfg, "box", "docker", {
        "PackerHTTPAddr": "1.2.3.4:80", "PackerHTTPIP": "ERR_HTTP_IP_NOT_IMPLEMENTED_BY_BUILDER"})
    assert "PACKER_HTTP_ADDR='1.2.3.4:80'" in http and "PACKER_HTTP_IP" not in http


def test_custom_env_var_format():
    cfg = decode(ShellProvisioner, {"inline": ["true"], "environment_vars": ["A=1"],
                                    "env_var_format": "export %s=\"%s\"; "})
    assert flatten_env_vars(cfg, "b", "t", {}).startswith('export A="1"; ')


# --------------------------------------------------------------------------- shell: running


def test_inline_runs_with_env_and_output(run, tmp_path):
    out = tmp_path / "out.txt"
    run.provision(ShellProvisioner, {
        "inline": [f"echo \"$GREETING|$PACKER_BUILD_NAME|$PACKER_BUILDER_TYPE\" > {out}",
                   "echo to-stdout", "echo to-stderr >&2"],
        "environment_vars": ["GREETING=it's here"],
    })
    assert out.read_text() == "it's here|box|null\n"
    assert "to-stdout" in run.lines("stdout")
    assert "to-stderr" in run.lines("stderr")
    said = run.lines("ui")
    assert any(x.startswith("Provisioning with shell script: ") for x in said)


def test_inline_lines_render_generated_data(run, tmp_path):
    out = tmp_path / "id.txt"
    run.provision(ShellProvisioner, {"inline": [f"echo {{{{.ID}}}} > {out}"]}, data={"ID": "abc"})
    assert out.read_text() == "abc\n"


def test_scripts_run_in_order_and_are_removed(run, tmp_path):
    log = tmp_path / "log"
    s1 = tmp_path / "one.sh"
    s2 = tmp_path / "two.sh"
    s1.write_text(f"#!/bin/sh\necho one >> {log}\r\n")  # CRLF is converted unless binary
    s2.write_text(f"#!/bin/sh\necho two >> {log}\n")
    remote = tmp_path / "remote.sh"
    run.provision(ShellProvisioner, {"scripts": [str(s1), str(s2)], "remote_path": str(remote)})
    assert log.read_text() == "one\ntwo\n"
    assert not remote.exists()
    said = run.lines("ui")
    assert f"Provisioning with shell script: {s1}" in said
    assert f"Provisioning with shell script: {s2}" in said


def test_skip_clean_and_inline_shebang(run, tmp_path):
    remote = tmp_path / "kept.sh"
    run.provision(ShellProvisioner, {"inline": ["echo hi"], "remote_path": str(remote),
                                     "skip_clean": True, "inline_shebang": "/bin/sh -x"})
    text = remote.read_text()
    assert text == "#!/bin/sh -x\necho hi\n"
    assert os.stat(remote).st_mode & 0o777 == 0o755
    # -x traces commands on stderr
    assert "+ echo hi" in run.lines("stderr")


def test_inline_with_own_shebang_is_kept(run, tmp_path):
    remote = tmp_path / "kept.sh"
    run.provision(ShellProvisioner, {"inline": ["#!/bin/sh", "echo hi"], "remote_path": str(remote),
                                     "skip_clean": True})
    assert remote.read_text() == "#!/bin/sh\necho hi\n"


def test_exit_code_outside_valid_codes_fails(run):
    with pytest.raises(StepError) as exc:
        run.provision(ShellProvisioner, {"inline": ["exit 2"]})
    assert str(exc.value) == "Script exited with non-zero exit status: 2. Allowed exit codes are: [0]"
    run.provision(ShellProvisioner, {"inline": ["exit 2"], "valid_exit_codes": [0, 2]})
    with pytest.raises(StepError, match=r"status: 1\. Allowed exit codes are: \[0 2\]"):
        run.provision(ShellProvisioner, {"inline": ["exit 1"], "valid_exit_codes": [0, 2]})


def test_inline_shebang_default_stops_on_first_error(run, tmp_path):
    marker = tmp_path / "after"
    with pytest.raises(StepError, match="status: 1"):
        run.provision(ShellProvisioner, {"inline": ["false", f"touch {marker}"]})
    assert not marker.exists()


def test_execute_command_is_rendered(run, tmp_path):
    out = tmp_path / "cmd.txt"
    run.provision(ShellProvisioner, {
        "inline": ["echo \"$1 $MYVAR\""],
        "environment_vars": ["MYVAR=v1"],
        "execute_command": f"{{{{.Vars}}}} sh {{{{.Path}}}} {{{{.ID}}}} > {out}",
    }, data={"ID": "i-123"})
    assert out.read_text() == "i-123 v1\n"


def test_use_env_var_file(run, tmp_path):
    out = tmp_path / "env.txt"
    folder = tmp_path / "remote"
    folder.mkdir()
    run.provision(ShellProvisioner, {
        "inline": [f"echo \"$A|$B\" > {out}"],
        "environment_vars": ["A=x y", "B=it's"],
        "use_env_var_file": True,
        "remote_folder": str(folder),
    })
    assert out.read_text() == "x y|it's\n"
    assert list(folder.iterdir()) == []  # script and env file removed


def test_pause_after(run):
    t = time.monotonic()
    run.provision(ShellProvisioner, {"inline": ["true"], "pause_after": "300ms"})
    assert time.monotonic() - t >= 0.3
    assert "Pausing 300ms after this provisioner..." in run.lines("ui")


def test_cancel_kills_the_script(run, tmp_path):
    started = tmp_path / "started"
    threading.Timer(0.5, run.ctx.cancel.cancel).start()
    t = time.monotonic()
    with pytest.raises(Cancelled):
        run.provision(ShellProvisioner, {"inline": [f"touch {started}", "sleep 30"]})
    assert time.monotonic() - t < 10
    assert started.exists()


class FlakyUploads(LocalCommunicator):
    """The local communicator whose first uploads fail like a dropped connection."""

    def __init__(self, failures: int, retryable: bool = True):
        super().__init__()
        self.failures = failures
        self.retryable = retryable
        self.uploads = 0

    def upload(self, dst, src, mode=None):
        self.uploads += 1
        if self.uploads <= self.failures:
            err = CommunicatorError("connection refused")
            err.retryable = self.retryable
            raise err
        super().upload(dst, src, mode)


def test_communicator_errors_are_retried(run, tmp_path, monkeypatch):
    monkeypatch.setattr("kiln.backend.plugins.provisioners.shell.RETRY_INTERVAL", 0.05)
    out = tmp_path / "ok"
    comm = FlakyUploads(2)
    run.provision(ShellProvisioner, {"inline": [f"touch {out}"]}, comm=comm)
    assert out.exists() and comm.uploads == 3
    assert any("connection refused" in x for x in run.lines("ui-error"))


def test_retry_gives_up_after_start_retry_timeout(run, monkeypatch):
    monkeypatch.setattr("kiln.backend.plugins.provisioners.shell.RETRY_INTERVAL", 0.05)
    t = time.monotonic()
    with pytest.raises(StepError, match="connection refused"):
        run.provision(ShellProvisioner, {"inline": ["true"], "start_retry_timeout": "300ms"},
                      comm=FlakyUploads(1000))
    assert 0.2 < time.monotonic() - t < 5


def test_non_retryable_errors_fail_at_once(run):
    comm = FlakyUploads(1000, retryable=False)
    with pytest.raises(StepError, match="connection refused"):
        run.provision(ShellProvisioner, {"inline": ["true"]}, comm=comm)
    assert comm.uploads == 1


class DropsConnection(LocalCommunicator):
    """Reports a dropped connection for the script itself (as after a reboot)."""

    def run(self, command, output, cancel, **kw):
        if "chmod +x" in command:
            return DISCONNECTED
        return super().run(command, output, cancel, **kw)


def test_disconnect_needs_expect_disconnect(run):
    with pytest.raises(StepError, match="disconnected unexpectedly"):
        run.provision(ShellProvisioner, {"inline": ["true"]}, comm=DropsConnection())
    run.provision(ShellProvisioner, {"inline": ["true"], "expect_disconnect": True},
                  comm=DropsConnection())
    run.provision(ShellProvisioner, {"inline": ["true"], "valid_exit_codes": [0, DISCONNECTED]},
                  comm=DropsConnection())


# --------------------------------------------------------------------------- file: config


def test_file_config_rules():
    assert "destination must be given" in problems_of(FileProvisioner, {"source": "a"})
    assert "give a source" in problems_of(FileProvisioner, {"destination": "/x"})
    assert "cannot be combined" in problems_of(FileProvisioner,
                                               {"source": "a", "content": "x", "destination": "/x"})
    assert "upload or download" in problems_of(FileProvisioner,
                                               {"source": "a", "destination": "b", "direction": "x"})


def test_file_prepare_checks_sources_unless_generated(run):
    p = FileProvisioner(decode(FileProvisioner, {"source": "missing.txt", "destination": "/x"}))
    with pytest.raises(ConfigProblems, match="missing.txt"):
        p.prepare(PrepareContext(".", "b", "null"))
    p = FileProvisioner(decode(FileProvisioner, {"source": "missing.txt", "destination": "/x",
                                                 "generated": True}))
    assert p.prepare(PrepareContext(".", "b", "null")) == []


# --------------------------------------------------------------------------- file: running


@pytest.fixture
def tree(tmp_path):
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "a.txt").write_text("A")
    (src / "sub" / "b.txt").write_text("B")
    return src


def test_upload_file_to_path_and_to_dir(run, tmp_path):
    f = tmp_path / "f.txt"
    f.write_text("data")
    dst = tmp_path / "dst"
    dst.mkdir()
    run.provision(FileProvisioner, {"source": str(f), "destination": str(dst / "renamed.txt")})
    assert (dst / "renamed.txt").read_text() == "data"
    run.provision(FileProvisioner, {"source": str(f), "destination": str(dst) + "/"})
    assert (dst / "f.txt").read_text() == "data"
    assert f"Uploading {f} => {dst}/" in run.lines("ui")


def test_upload_dir_trailing_slash_rules(run, tmp_path, tree):
    with_dir = tmp_path / "d1"
    contents = tmp_path / "d2"
    run.provision(FileProvisioner, {"source": str(tree), "destination": str(with_dir)})
    run.provision(FileProvisioner, {"source": str(tree) + "/", "destination": str(contents)})
    assert (with_dir / "src" / "sub" / "b.txt").read_text() == "B"
    assert (contents / "sub" / "b.txt").read_text() == "B"
    assert not (contents / "src").exists()


def test_upload_content_and_sources(run, tmp_path):
    dst = tmp_path / "c.txt"
    run.provision(FileProvisioner, {"content": "hello {{.ID}}", "destination": str(dst)},
                  data={"ID": "x"})
    assert dst.read_text() == "hello {{.ID}}"  # content is not a template at run time
    a = tmp_path / "a"
    b = tmp_path / "b"
    a.write_text("1")
    b.write_text("2")
    out = tmp_path / "many"
    out.mkdir()
    run.provision(FileProvisioner, {"sources": [str(a), str(b)], "destination": str(out) + "/"})
    assert sorted(os.listdir(out)) == ["a", "b"]


def test_destination_rendered_with_generated_data(run, tmp_path):
    f = tmp_path / "f.txt"
    f.write_text("x")
    run.provision(FileProvisioner, {"source": str(f), "destination": str(tmp_path) + "/{{.ID}}.txt"},
                  data={"ID": "i-9"})
    assert (tmp_path / "i-9.txt").read_text() == "x"


def test_download_file_rules(run, tmp_path):
    remote = tmp_path / "remote.txt"
    remote.write_text("R")
    local = tmp_path / "local"
    run.provision(FileProvisioner, {"source": str(remote), "destination": str(local) + "/",
                                    "direction": "download"})
    assert (local / "remote.txt").read_text() == "R"
    assert os.stat(local / "remote.txt").st_mode & 0o777 == 0o644
    run.provision(FileProvisioner, {"source": str(remote), "destination": str(tmp_path / "x" / "y"),
                                    "direction": "download"})
    assert (tmp_path / "x" / "y").read_text() == "R"
    assert f"Downloading {remote} => {local}/" in run.lines("ui")


def test_download_dir(run, tmp_path, tree):
    out = tmp_path / "out"
    run.provision(FileProvisioner, {"source": str(tree) + "/", "destination": str(out),
                                    "direction": "download"})
    assert (out / "sub" / "b.txt").read_text() == "B"


def test_upload_failure_is_a_step_error(run, tmp_path):
    f = tmp_path / "f.txt"
    f.write_text("x")
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(StepError, match="Upload failed"):
        run.provision(FileProvisioner, {"source": str(f), "destination": str(blocker / "x")})
