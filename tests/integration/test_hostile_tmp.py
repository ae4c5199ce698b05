"""Another local user plants links and files in /tmp: Kiln never writes through them.

These run the real shell provisioner over the real local communicator (the
``templates/null-local.json`` set-up), as root, the way the attack would hit.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
import uuid
from pathlib import Path

import build_context
import pytest
from build_context import decode
from kiln.backend.engine import private
from kiln.backend.engine.ledger import Ledger, LedgerEntry, reap_path
from kiln.backend.engine.private import PrivateTemp
from kiln.backend.plugins.communicators.local import LocalCommunicator
from kiln.backend.plugins.provisioners.ansible_local import AnsibleLocalProvisioner
from kiln.backend.plugins.provisioners.shell import ShellProvisioner
from kiln.backend.sdk.plugin import PrepareContext, StepError

KILN = [sys.executable, "-m", "kiln.backend.cli"]


class Run(build_context.Run):
    def __init__(self) -> None:
        super().__init__("box", "null", "run-hostile", ledger=Ledger("run-hostile"))
        # what `communicator: local` gets from the null builder
        self.comm = LocalCommunicator(private_dir=lambda: self.ctx.temp_dir(prefix="kiln-local-"))

    def shell(self, config: dict) -> ShellProvisioner:
        p = ShellProvisioner(decode(ShellProvisioner, config))
        p.prepare(PrepareContext(".", "box", "null"))
        return p

    def provision(self, p) -> None:
        p.provision(self.ctx, self.ctx.ui, self.comm, {})


@pytest.fixture
def run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = Run()
    yield r
    r.comm.close()
    r.ctx.temp.close()


@pytest.fixture
def planted():
    """Paths planted in /tmp by "another user"; removed afterwards."""
    paths: list[str] = []
    yield paths
    for p in paths:
        if os.path.islink(p) or os.path.isfile(p):
            os.remove(p)


def victim(tmp_path: Path) -> Path:
    v = tmp_path / "root-owned-config"
    v.write_text("precious\n")
    v.chmod(0o600)
    return v


def test_a_link_at_the_predictable_script_name_is_not_followed(run, tmp_path, planted):
    p = run.shell({"inline": ["echo ran as $(id -u)"], "use_env_var_file": True})
    target = victim(tmp_path)
    for name in (p.config._random_file, p.config._env_file):  # the names Packer's scheme picks
        path = f"/tmp/{name}"
        if os.path.lexists(path):
            pytest.skip(f"{path} exists already")
        os.symlink(target, path)
        planted.append(path)
    run.provision(p)
    assert f"ran as {os.geteuid()}" in run.lines("stdout")
    assert target.read_text() == "precious\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600  # not made 0755 either
    assert all(os.path.islink(x) for x in planted)


def test_a_file_planted_at_the_predictable_name_is_not_run(run, tmp_path, planted):
    p = run.shell({"inline": ["echo ran"]})
    path = f"/tmp/{p.config._random_file}"
    if os.path.lexists(path):
        pytest.skip(f"{path} exists already")
    marker = tmp_path / "pwned"
    Path(path).write_text(f"#!/bin/sh\ntouch {marker}\necho PWNED\n")
    os.chmod(path, 0o777)
    planted.append(path)
    run.provision(p)
    assert "ran" in run.lines("stdout") and "PWNED" not in run.lines("stdout")
    assert not marker.exists()
    assert Path(path).read_text().endswith("echo PWNED\n")  # neither reused nor truncated


def test_the_running_script_is_private_to_its_owner(run):
    p = run.shell({"inline": ['stat -c "%a %u" "$0" "$(dirname "$0")" "$(dirname "$(dirname "$0")")"'],
                   "execute_command": "{{.Vars}} sh {{.Path}}"})
    run.provision(p)
    script, folder, run_dir = run.lines("stdout")
    me = str(os.geteuid())
    # nobody else can reach the file (its directories are 0700), however its own bits read
    assert folder == f"700 {me}" and run_dir == f"700 {me}"
    assert script.split()[1] == me


def test_an_explicit_path_in_tmp_never_reuses_what_is_there(run, tmp_path, planted):
    target = victim(tmp_path)
    path = f"/tmp/kiln-test-{uuid.uuid4().hex}.sh"
    os.symlink(target, path)
    planted.append(path)
    p = run.shell({"inline": ["echo ran"], "remote_path": path})
    t0 = time.monotonic()
    with pytest.raises(StepError, match="refusing to write .* already exists"):
        run.provision(p)
    assert time.monotonic() - t0 < 10  # a clear error at once, not 5 minutes of retries
    assert target.read_text() == "precious\n"
    os.remove(path)
    Path(path).write_text("echo PWNED\n")
    os.chmod(path, 0o666)
    with pytest.raises(StepError, match="refusing to write"):
        run.provision(p)
    assert Path(path).read_text() == "echo PWNED\n"


def test_an_explicit_new_path_in_tmp_is_created_owner_only(run, planted):
    path = f"/tmp/kiln-test-{uuid.uuid4().hex}.sh"
    planted.append(path)
    p = run.shell({"inline": ['stat -c "%a %u" "$0"'], "remote_path": path, "skip_clean": True,
                   "execute_command": "{{.Vars}} sh {{.Path}}"})
    run.provision(p)
    assert run.lines("stdout") == [f"700 {os.geteuid()}"]


def test_ansible_local_stages_in_a_private_directory(run):
    p = AnsibleLocalProvisioner(decode(AnsibleLocalProvisioner, {"playbook_file": "site.yml"}))
    staging = p.config.staging(run.comm)
    assert not staging.startswith("/tmp/packer-provisioner-ansible-local")
    parent = os.path.dirname(staging)
    st = os.stat(parent)
    assert stat.S_IMODE(st.st_mode) == 0o700 and st.st_uid == os.geteuid()
    # away from this host (ssh, docker), Packer's staging path is kept
    assert p.config.staging(None).startswith("/tmp/packer-provisioner-ansible-local/")


def test_a_planted_guess_of_the_run_directory_is_skipped(monkeypatch, tmp_path, planted):
    guesses = iter(["0" * 16])
    real = private.secrets.token_hex
    monkeypatch.setattr(private.secrets, "token_hex", lambda n: next(guesses, None) or real(n))
    trap = tmp_path / "attacker-dir"
    trap.mkdir()
    guessed = f"/tmp/kiln-guess-{'0' * 16}"
    if os.path.lexists(guessed):
        pytest.skip(f"{guessed} exists already")
    os.symlink(trap, guessed)
    planted.append(guessed)
    temp = PrivateTemp(None, "guess")
    try:
        assert temp.path != guessed
        st = os.lstat(temp.path)
        assert stat.S_ISDIR(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o700
        assert st.st_uid == os.geteuid()
        assert list(trap.iterdir()) == []
    finally:
        temp.close()
    assert not os.path.exists(temp.path if temp._path else "/nonexistent")


def test_temp_files_are_created_exclusively_with_their_mode(run):
    path = run.ctx.temp_file(prefix="k-", content=b"secret", mode=0o640)
    st = os.lstat(path)
    assert stat.S_IMODE(st.st_mode) == 0o640 and st.st_uid == os.geteuid()
    assert stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode) == 0o700
    os.remove(path)
    os.symlink("/etc/hostname", path)  # even inside the private directory, never followed
    with pytest.raises(FileExistsError):
        private.create_exclusive(path, b"x", 0o600)
    os.remove(path)


def test_cleanup_leaves_a_path_another_user_took_over(tmp_path):
    other = tmp_path / "taken"
    other.write_text("theirs")
    os.chown(other, 65534, 65534)
    entry = LedgerEntry(1, "r", 1, "", "tempfile", str(other), {}, 0.0, False)
    with pytest.raises(RuntimeError, match="another user"):
        reap_path(entry)
    assert other.read_text() == "theirs"


def test_the_bundled_local_template_leaves_nothing_in_tmp(tmp_path):
    repo = Path(__file__).resolve().parents[2]
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    proc = subprocess.run([*KILN, "build", "-color=false", "-state-dir", str(tmp_path / ".kiln"),
                           str(repo / "templates" / "null-local.json")],
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "TMPDIR": str(tmp)}, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert list(tmp.iterdir()) == []
