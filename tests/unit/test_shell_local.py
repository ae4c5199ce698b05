"""shell-local provisioner and post-processor, run for real on this host."""

from __future__ import annotations

import os
import stat
import threading
import time

import build_context
import pytest
from build_context import decode, plugin
from kiln.backend.engine.ledger import Ledger
from kiln.backend.plugins.postprocessors.shell_local import ShellLocalPostProcessor
from kiln.backend.plugins.provisioners.shell_local import ShellLocalProvisioner
from kiln.backend.plugins.shell_local_common import runtime_os, windows_to_wsl_path
from kiln.backend.sdk.plugin import Artifact, Cancelled, PrepareContext, StepError
from kiln.backend.template.decode import ConfigProblems

# --------------------------------------------------------------------------- factory


class Run(build_context.Run):
    def __init__(self, build_name: str = "null", build_type: str = "null", run_id: str = "run-1"):
        super().__init__(build_name, build_type, run_id, ledger=Ledger(run_id),
                         user_vars={"uv": "user-value"})

    def provision(self, config: dict, data: dict | None = None) -> ShellLocalProvisioner:
        p = plugin(ShellLocalProvisioner, config)
        p.prepare(PrepareContext(".", self.ctx.build_name, self.ctx.build_type))
        p.provision(self.ctx, self.ctx.ui, None, {} if data is None else data)
        return p


@pytest.fixture
def run(tmp_path, monkeypatch) -> Run:
    monkeypatch.chdir(tmp_path)
    return Run()


def script(path, body: str, mode: int = 0o755) -> str:
    path.write_text(body)
    path.chmod(mode)
    return str(path)


# --------------------------------------------------------------------------- config


@pytest.mark.parametrize("config, message", [
    ({}, "one of command, inline, script or scripts"),
    ({"inline": ["a"], "script": "x.sh"}, "only one of"),
    ({"command": "a", "inline": ["b"]}, "only one of"),
    ({"script": "a", "scripts": ["b"]}, "only one of"),
    ({"inline": ["a"], "only_on": ["linux", "plan9"]}, "unknown OS 'plan9'"),
    ({"inline": ["a"], "environment_vars": ["NOEQUALS"]}, "NOEQUALS"),
    ({"inline": ["a"], "environment_vars": ["=value"]}, "=value"),
    ({"inline": ["a"], "use_linux_pathing": True}, "only with script"),
    ({"script": "/tmp/x.sh", "use_linux_pathing": True}, "drive"),
])
def test_config_rules(config, message):
    with pytest.raises(ConfigProblems) as e:
        decode(ShellLocalProvisioner, config)
    assert message in str(e.value)


def test_every_documented_key_decodes():
    c = decode(ShellLocalProvisioner, {
        "inline": ["a"], "execute_command": ["/bin/sh", "-c", "{{.Vars}} {{.Script}}"],
        "inline_shebang": "/bin/bash", "environment_vars": ["A=1"], "env": {"B": "2"},
        "env_var_format": "%s=%s ", "only_on": ["linux"], "valid_exit_codes": [0, 1],
        "tempfile_extension": ".sh", "use_linux_pathing": False, "binary": False,
    })
    # execute_command is left for run time: it needs .Script and .Vars
    assert c.execute_command == ["/bin/sh", "-c", "{{.Vars}} {{.Script}}"]
    assert c.extension() == "sh"


def test_check_is_idempotent():
    c = decode(ShellLocalProvisioner, {"command": "echo x"})
    c.check()
    c.check()
    assert c.inline_lines() == ["echo x"]


def test_wsl_path_conversion():
    assert windows_to_wsl_path("C:\\Users\\me\\x.sh") == "/mnt/c/Users/me/x.sh"
    assert windows_to_wsl_path("D:/a/b") == "/mnt/d/a/b"


def test_prepare_rejects_missing_script(tmp_path):
    p = plugin(ShellLocalProvisioner, {"scripts": [str(tmp_path / "nope.sh")]})
    with pytest.raises(ConfigProblems) as e:
        p.prepare(PrepareContext(".", "null", "null"))
    assert "nope.sh" in str(e.value)


def test_describe():
    assert plugin(ShellLocalProvisioner, {"inline": ["echo hi", "x"]}).describe() == \
        "echo hi (+1 lines)"
    assert plugin(ShellLocalProvisioner, {"command": "make"}).describe() == "make"
    assert plugin(ShellLocalProvisioner, {"script": "a.sh"}).describe() == "a.sh"
    assert plugin(ShellLocalProvisioner, {"scripts": ["a.sh", "b.sh"]}).describe() == \
        "a.sh (+1 scripts)"


# --------------------------------------------------------------------------- inline


def test_inline_runs_with_shebang_and_mode_0700_then_is_removed(run):
    run.provision({
        "inline": ["echo first", "echo second >&2"],
        "inline_shebang": "/bin/sh -eu",
        "execute_command": ["/bin/sh", "-c",
                            "stat -c %a {{.Script}}; head -1 {{.Script}}; echo {{.Script}}; "
                            "{{.Vars}} {{.Script}}"],
    })
    out = run.lines("stdout")
    assert out[0] == "700"
    assert out[1] == "#!/bin/sh -eu"
    path = out[2]
    assert os.path.basename(path).startswith("packer-shell")
    assert out[3:] == ["first"]
    assert run.lines("stderr") == ["second"]
    assert run.lines("ui") == [f"Running local shell script: {path}"]
    assert not os.path.exists(path)
    assert run.ledger.entries() == []  # the temp script was recorded and released


def test_default_shebang_and_extension(run):
    run.provision({"inline": ["true"], "tempfile_extension": ".bash",
                   "execute_command": ["/bin/sh", "-c", "head -1 {{.Script}}; echo {{.Script}}"]})
    shebang, path = run.lines("stdout")
    assert shebang == "#!/bin/sh -e"
    assert path.endswith(".bash") and not path.endswith("..bash")


def test_inline_is_rendered_with_generated_data_and_functions(run):
    run.provision({"inline": ["echo {{.ID}} {{build_name}} {{build_type}} {{user `uv`}}",
                              "echo {{build `ID`}}"]}, data={"ID": "Null"})
    assert run.lines("stdout") == ["Null null null user-value", "Null"]


def test_command_form_is_one_inline_line(run):
    run.provision({"command": "echo from-command"})
    assert run.lines("stdout") == ["from-command"]


def test_inline_shell_exits_on_first_error(run):
    with pytest.raises(StepError):
        run.provision({"inline": ["false", "echo not-reached"]})
    assert "not-reached" not in run.lines("stdout")


# --------------------------------------------------------------------------- environment


def test_vars_string_is_sorted_and_quoted(run):
    run.provision({
        "inline": ["true"],
        "environment_vars": ["ZED=last", "QUOTE=it's $HOME `x`", "EMPTY=", "EQ=a=b"],
        "execute_command": ["/bin/echo", "{{.Vars}}"],
    })
    assert run.lines("stdout") == [
        "EMPTY='' EQ='a=b' PACKER_BUILDER_TYPE='null' PACKER_BUILD_NAME='null' "
        "QUOTE='it'\"'\"'s $HOME `x`' ZED='last' "
    ]


def test_env_values_survive_the_shell_exactly(run):
    run.provision({
        "inline": ['printf "%s|%s|%s\\n" "$QUOTE" "$SPACES" "$PACKER_BUILD_NAME"'],
        "environment_vars": ["QUOTE=it's $HOME `x` \"q\"", "SPACES= a  b "],
    })
    assert run.lines("stdout") == ["it's $HOME `x` \"q\"| a  b |null"]


def test_env_map_overrides_environment_vars(run):
    run.provision({"inline": ['echo "$A $B"'], "environment_vars": ["A=list", "B=list"],
                   "env": {"A": "map'd"}})
    assert run.lines("stdout") == ["map'd list"]


def test_env_vars_are_rendered_at_run_time(run):
    run.provision({"inline": ['echo "$HOSTID"'], "environment_vars": ["HOSTID={{.ID}}-x"]},
                  data={"ID": "i-123"})
    assert run.lines("stdout") == ["i-123-x"]


def test_custom_env_var_format(run):
    run.provision({"inline": ['echo "$A"'], "environment_vars": ["A=1"],
                   "env_var_format": "export %s=\"%s\"; ",
                   "execute_command": ["/bin/sh", "-c", "{{.Vars}} echo \"[{{.Vars}}]\"; "
                                       "{{.Vars}} {{.Script}}"]})
    assert run.lines("stdout")[-1] == "1"
    assert run.lines("stdout")[0].startswith("[export A=1; export PACKER_BUILDER_TYPE=null;")


def test_http_vars_only_when_the_builder_has_them(run):
    data = {"PackerHTTPAddr": "127.0.0.1:8000", "PackerHTTPIP": "127.0.0.1",
            "PackerHTTPPort": "8000"}
    run.provision({"inline": ["true"], "execute_command": ["/bin/echo", "{{.Vars}}"]}, data)
    unset = {"PackerHTTPAddr": "ERR_HTTP_ADDR_NOT_IMPLEMENTED_BY_BUILDER",
             "PackerHTTPIP": "ERR_HTTP_IP_NOT_IMPLEMENTED_BY_BUILDER",
             "PackerHTTPPort": "ERR_HTTP_PORT_NOT_IMPLEMENTED_BY_BUILDER"}
    run.provision({"inline": ["true"], "execute_command": ["/bin/echo", "{{.Vars}}"]}, unset)
    with_http, without = run.lines("stdout")
    assert "PACKER_HTTP_ADDR='127.0.0.1:8000' PACKER_HTTP_IP='127.0.0.1' " \
           "PACKER_HTTP_PORT='8000' " in with_http
    assert "HTTP" not in without


def test_child_inherits_kiln_environment_but_not_user_vars(run, monkeypatch):
    monkeypatch.setenv("KILN_TEST_INHERITED", "yes")
    run.provision({
        "inline": ['echo "$KILN_TEST_INHERITED|$PACKER_RUN_UUID|${UVAR-unset}"'],
        "environment_vars": ["UVAR=1"],
        # without {{.Vars}} the user's variables do not reach the script
        "execute_command": ["/bin/sh", "-c", "{{.Script}}"],
    })
    assert run.lines("stdout") == ["yes|run-1|unset"]


# --------------------------------------------------------------------------- execute_command


def test_execute_command_elements_are_rendered(run):
    run.provision({
        "inline": ["true"],
        "execute_command": ["/bin/echo", "{{.Script}}", "{{.Command}}", "{{.ID}}",
                            "{{build_name}}", "{{.Missing}}"],
    }, data={"ID": "Null"})
    (line,) = run.lines("stdout")
    s, c, i, b, m = line.split(" ", 4)
    assert s == c and os.path.isabs(s)
    assert (i, b, m) == ("Null", "null", "<no value>")


def test_argv_is_run_without_an_extra_shell(run):
    run.provision({"inline": ["true"], "execute_command": ["/bin/echo", "a;b", "$HOME"]})
    assert run.lines("stdout") == ["a;b $HOME"]


def test_scripts_run_in_order_with_absolute_paths(run, tmp_path):
    os.mkdir(tmp_path / "s")
    script(tmp_path / "s" / "one.sh", '#!/bin/sh\necho "one $0 $A"\n')
    script(tmp_path / "s" / "two.sh", '#!/bin/sh\necho two\n')
    run.provision({"scripts": ["s/one.sh", "s/two.sh"], "environment_vars": ["A=1"]})
    assert run.lines("ui") == ["Running local shell script: s/one.sh",
                               "Running local shell script: s/two.sh"]
    assert run.lines("stdout") == [f"one {tmp_path}/s/one.sh 1", "two"]


def test_single_script_key(run, tmp_path):
    script(tmp_path / "x.sh", "#!/bin/sh\necho x-ran\n")
    run.provision({"script": "x.sh"})
    assert run.lines("stdout") == ["x-ran"]


def test_script_is_not_made_executable(run, tmp_path):
    script(tmp_path / "x.sh", "#!/bin/sh\necho x\n", mode=0o644)
    with pytest.raises(StepError, match="status: 126"):
        run.provision({"script": "x.sh"})


def test_unstartable_command_is_a_step_error(run):
    with pytest.raises(StepError, match="could not run"):
        run.provision({"inline": ["true"], "execute_command": ["/nonexistent/shell"]})


# --------------------------------------------------------------------------- exit codes, only_on


def test_exit_code_outside_valid_codes_fails(run):
    with pytest.raises(StepError) as e:
        run.provision({"inline": ["echo bad", "exit 2"]})
    assert str(e.value) == "Script exited with non-zero exit status: 2. " \
        "Allowed exit codes are: [0]"
    assert run.lines("stdout") == ["bad"]


def test_valid_exit_codes(run):
    run.provision({"inline": ["exit 3"], "valid_exit_codes": [0, 3]})
    with pytest.raises(StepError, match=r"status: 0\. Allowed exit codes are: \[3 4\]"):
        run.provision({"inline": ["true"], "valid_exit_codes": [3, 4]})


def test_only_on_other_os_skips(run):
    other = "windows" if runtime_os() != "windows" else "linux"
    run.provision({"inline": ["echo ran"], "only_on": [other]})
    assert run.lines("stdout") == []
    assert "Skipping shell-local" in run.lines("ui")[0]
    run.provision({"inline": ["echo ran"], "only_on": [other, runtime_os()]})
    assert run.lines("stdout") == ["ran"]


# --------------------------------------------------------------------------- cancel


def test_cancel_kills_the_command_quickly(run, tmp_path):
    pidfile = tmp_path / "pid"
    errors: list[BaseException] = []

    def work():
        try:
            run.provision({"inline": [f"echo $$ > {pidfile}", "sleep 100"],
                           "execute_command": ["/bin/sh", "-c", "exec {{.Script}}"]})
        except BaseException as e:  # noqa: BLE001 - collected for the assertion
            errors.append(e)

    t = threading.Thread(target=work)
    start = time.monotonic()
    t.start()
    deadline = time.monotonic() + 10
    while not (pidfile.exists() and pidfile.read_text().strip()) and time.monotonic() < deadline:
        time.sleep(0.05)
    run.ctx.cancel.cancel("interrupted")
    t.join(15)
    assert not t.is_alive()
    assert time.monotonic() - start < 6
    assert errors and isinstance(errors[0], Cancelled)
    pid = int(pidfile.read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert run.ledger.entries() == []  # the temp script is gone even after a cancel


def test_already_cancelled_runs_nothing(run, tmp_path):
    run.ctx.cancel.cancel()
    with pytest.raises(Cancelled):
        run.provision({"inline": [f"touch {tmp_path}/ran"]})
    assert not (tmp_path / "ran").exists()


# --------------------------------------------------------------------------- post-processor


def pp_run(run: Run, config: dict, artifact: Artifact) -> Artifact:
    p = plugin(ShellLocalPostProcessor, config)
    p.prepare(PrepareContext(".", "null", "null"))
    return p.post_process(run.ctx, run.ctx.ui, artifact)


def test_pp_returns_input_artifact_and_uses_its_generated_data(run):
    art = Artifact("fnoeding.null", id="Null", state={"generated_data": {"ID": "Null"}})
    out = pp_run(run, {"inline": ["echo {{build `ID`}} {{.ID}} $PACKER_BUILD_NAME"]}, art)
    assert out is art
    assert run.lines("stdout") == ["Null Null null"]
    assert ShellLocalPostProcessor.default_keep == (True, True)


def test_pp_artifact_without_state_gives_no_value(run):
    pp_run(run, {"inline": ["echo '{{.ID}}'"]}, Artifact("packer.file", files=["x"]))
    assert run.lines("stdout") == ["<no value>"]


def test_pp_single_execute_command_runs_through_sh(run):
    art = Artifact("fnoeding.null", state={"generated_data": {"ID": "Null"}})
    pp_run(run, {"inline": ["echo body"],
                 "execute_command": ["echo EXEC {{.ID}}; {{.Vars}} {{.Script}}"]}, art)
    pp_run(run, {"inline": ["echo body2"], "execute_command": "echo STR; {{.Script}}"}, art)
    assert run.lines("stdout") == ["EXEC Null", "body", "STR", "body2"]


def test_pp_failure_is_a_step_error(run):
    with pytest.raises(StepError, match="status: 7"):
        pp_run(run, {"inline": ["exit 7"]}, Artifact("x"))


def test_pp_temp_script_mode(run):
    pp_run(run, {"inline": ["true"],
                 "execute_command": ["/bin/sh", "-c", "stat -c %a {{.Script}}"]}, Artifact("x"))
    assert run.lines("stdout") == [oct(stat.S_IRWXU)[2:]]
