"""The ansible and ansible-local provisioners with a real ansible-playbook."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
from pathlib import Path
from typing import Any

import pytest
from build_context import masking_context
from kiln.backend.engine.context import BuildContext
from kiln.backend.plugins.communicators.config import CommunicatorConfig
from kiln.backend.plugins.communicators.local import LocalCommunicator
from kiln.backend.plugins.provisioners.ansible import AnsibleConfig, AnsibleProvisioner
from kiln.backend.plugins.provisioners.ansible_local import (
    AnsibleLocalConfig,
    AnsibleLocalProvisioner,
)
from kiln.backend.plugins.ssh.communicator import connect_ssh
from kiln.backend.sdk.plugin import PrepareContext, StepError
from kiln.backend.template.decode import ConfigProblems, Duration
from kiln_services import Sshd, forward_tcp

pytestmark = pytest.mark.ansible

ANSI = re.compile(r"\x1b\[[0-9;]*m")
# the machine is this host: name its system Python, so interpreter discovery cannot pick a
# pyenv shim that only works in the developer's login shell
TARGET_PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable


@pytest.fixture(scope="module", autouse=True)
def ansible_installed() -> None:
    if shutil.which("ansible-playbook") is None:
        reason = "ansible-playbook not installed: pip install 'ansible-core<2.20'"
        if os.environ.get("CI", "").lower() not in ("", "0", "false", "no"):
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)


def make_ctx() -> BuildContext:
    return masking_context("ans")


def output(ctx: BuildContext) -> list[str]:
    return [
        ANSI.sub("", line)
        for ev in ctx.bus.replay()
        if ev.type == "output"
        for line in ev.data["lines"]
    ]


def project(root: Path, task: str = "") -> Path:
    """A playbook whose role writes files into {{ target_dir }} on the machine."""
    (root / "roles" / "writer" / "tasks").mkdir(parents=True)
    (root / "roles" / "writer" / "templates").mkdir(parents=True)
    (root / "roles" / "writer" / "templates" / "motd.j2").write_text(
        "built by {{ packer_build_name }} ({{ packer_builder_type }}) as {{ ansible_user_id }}\n"
    )
    (root / "roles" / "writer" / "tasks" / "main.yml").write_text(
        textwrap.dedent("""\
        - name: a directory
          ansible.builtin.file:
            path: "{{ target_dir }}/etc"
            state: directory
            mode: "0755"
        - name: a templated file
          ansible.builtin.template:
            src: motd.j2
            dest: "{{ target_dir }}/etc/motd"
            mode: "0640"
        - name: a line
          ansible.builtin.lineinfile:
            path: "{{ target_dir }}/etc/hosts.kiln"
            line: "10.0.0.1 kiln"
            create: true
            mode: "0644"
        """)
        + task
    )
    book = root / "playbook.yml"
    book.write_text(
        textwrap.dedent("""\
        - name: provision
          hosts: web
          gather_facts: true
          roles:
            - writer
        """)
    )
    return book


def ssh_comm(sshd: Sshd, ctx: BuildContext, **kw: Any):
    kw.setdefault("ssh_private_key_file", sshd.private_key_path)
    cfg = CommunicatorConfig(
        communicator="ssh",
        ssh_host=sshd.host,
        ssh_port=sshd.port,
        ssh_username=kw.pop("ssh_username", sshd.user),
        ssh_timeout=Duration(20),
        **kw,
    )
    return connect_ssh(ctx, cfg, sshd.host)


def provisioner(**kw: Any) -> AnsibleProvisioner:
    kw["ansible_env_vars"] = [
        f"ANSIBLE_PYTHON_INTERPRETER={TARGET_PYTHON}",
        *kw.get("ansible_env_vars", []),
    ]
    p = AnsibleProvisioner(AnsibleConfig(**kw))
    p.config.check()
    p.prepare(PrepareContext(os.getcwd(), "ans", "null"))
    return p


# --------------------------------------------------------------------------- ansible


@pytest.mark.ssh
def test_playbook_with_role_changes_the_machine_over_ssh(sshd: Sshd, tmp_path: Path) -> None:
    book = project(tmp_path / "proj")
    target = tmp_path / "target"
    ctx = make_ctx()
    comm = ssh_comm(sshd, ctx)
    try:
        p = provisioner(
            playbook_file=str(book),
            groups=["web"],
            empty_groups=["db"],
            extra_arguments=["-e", f"target_dir={target}"],
            ansible_env_vars=["ANSIBLE_NOCOLOR=1"],
        )
        data = {"ID": "Null", **comm.connection_data()}
        p.provision(ctx, ctx.ui, comm, data)
    finally:
        comm.close()
    assert (target / "etc" / "motd").read_text() == "built by ans (null) as root\n"
    assert oct((target / "etc" / "motd").stat().st_mode & 0o777) == "0o640"
    assert (target / "etc" / "hosts.kiln").read_text() == "10.0.0.1 kiln\n"
    out = output(ctx)
    assert "Provisioning with Ansible..." in out
    executing = next(line for line in out if line.startswith("Executing Ansible: "))
    assert "-e 'packer_build_name=\"ans\"' -e packer_builder_type=null" in executing
    assert f"ansible_ssh_private_key_file={sshd.private_key_path}" in executing
    assert any(line.startswith("PLAY RECAP") for line in out)
    assert any(re.match(r"default\s+: ok=\d+\s+changed=3 ", line) for line in out)


@pytest.mark.ssh
def test_key_text_only_is_written_to_a_private_temp_file(sshd: Sshd, tmp_path: Path) -> None:
    book = project(tmp_path / "proj")
    ctx = make_ctx()
    comm = ssh_comm(sshd, ctx)
    try:
        data = {**comm.connection_data(), "SSHPrivateKeyFile": ""}  # as with a temporary key
        p = provisioner(
            playbook_file=str(book),
            groups=["web"],
            extra_arguments=["-e", f"target_dir={tmp_path / 't'}"],
        )
        p.provision(ctx, ctx.ui, comm, data)
    finally:
        comm.close()
    executing = next(x for x in output(ctx) if x.startswith("Executing Ansible: "))
    key = re.search(r"ansible_ssh_private_key_file=(\S+)", executing).group(1)
    assert "kiln-ansible-key-" in key
    assert not os.path.exists(key)  # removed afterwards
    assert (tmp_path / "t" / "etc" / "motd").exists()


@pytest.mark.ssh
def test_password_communicator(sshd: Sshd, tmp_path: Path) -> None:
    # pytest's tmp dirs are private to root: the password user writes into its own dir
    shared = Path(tempfile.mkdtemp(prefix="kiln-ansible-pw-"))
    shared.chmod(0o777)
    book = tmp_path / "who.yml"
    book.write_text(
        textwrap.dedent(f"""\
        - hosts: default
          gather_facts: false
          tasks:
            - ansible.builtin.command: whoami
              register: who
            - ansible.builtin.copy:
                content: "{{{{ who.stdout }}}}\\n"
                dest: "{shared}/who-{{{{ who.stdout }}}}"
        """)
    )
    ctx = make_ctx()
    comm = ssh_comm(
        sshd,
        ctx,
        ssh_username=sshd.password_user,
        ssh_password=sshd.password,
        ssh_private_key_file="",
    )
    try:
        provisioner(playbook_file=str(book)).provision(ctx, ctx.ui, comm, comm.connection_data())
        assert (shared / f"who-{sshd.password_user}").read_text() == f"{sshd.password_user}\n"
    finally:
        comm.close()
        shutil.rmtree(shared, ignore_errors=True)
    assert sshd.password not in "\n".join(output(ctx))


@pytest.mark.ssh
def test_failing_task_fails_with_ansibles_message(sshd: Sshd, tmp_path: Path) -> None:
    book = project(
        tmp_path / "proj",
        task=textwrap.dedent("""\
        - name: refuse
          ansible.builtin.fail:
            msg: "kiln-test: the disk is not big enough"
        """),
    )
    ctx = make_ctx()
    comm = ssh_comm(sshd, ctx)
    try:
        p = provisioner(
            playbook_file=str(book),
            groups=["web"],
            extra_arguments=["-e", f"target_dir={tmp_path / 't'}"],
        )
        with pytest.raises(StepError, match=r"^ansible-playbook exited with status 2$"):
            p.provision(ctx, ctx.ui, comm, comm.connection_data())
    finally:
        comm.close()
    text = "\n".join(output(ctx))
    assert "kiln-test: the disk is not big enough" in text
    assert "failed=1" in text


def test_prepare_checks(tmp_path: Path) -> None:
    with pytest.raises(ConfigProblems, match="playbook_file: .*no such file"):
        provisioner(playbook_file=str(tmp_path / "missing.yml"))
    (tmp_path / "p.yml").write_text("- hosts: all\n  tasks: []\n")
    with pytest.raises(ConfigProblems, match="no-such-ansible-playbook"):
        provisioner(playbook_file=str(tmp_path / "p.yml"), command="no-such-ansible-playbook")
    provisioner(
        playbook_file=str(tmp_path / "p.yml"),
        command="no-such-ansible-playbook",
        skip_version_check=True,
    )
    with pytest.raises(ConfigProblems, match="KEY=value"):
        AnsibleConfig(playbook_file="x", ansible_env_vars=["NOEQUALS"]).check()
    with pytest.raises(ConfigProblems, match="ECDSA or RSA"):
        AnsibleConfig(playbook_file="x", ansible_proxy_key_type="DSA").check()


def test_local_communicator_and_inventory_template(tmp_path: Path) -> None:
    book = tmp_path / "local.yml"
    book.write_text(
        textwrap.dedent(f"""\
        - hosts: builders
          gather_facts: false
          tasks:
            - ansible.builtin.copy:
                content: "{{{{ inventory_hostname }}}} {{{{ flavour }}}}\\n"
                dest: "{tmp_path}/local-out"
        """)
    )
    ctx = make_ctx()
    inv_dir = tmp_path / "inv"
    inv_dir.mkdir()
    p = provisioner(
        playbook_file=str(book),
        groups=["builders"],
        host_alias="kiln-box",
        inventory_directory=str(inv_dir),
        keep_inventory_file=True,
        extra_arguments=["-e", "flavour={{ build `ConnType` }}"],
    )
    p.config.extra_arguments = ["-e", "flavour={{.ConnType}}"]  # as prepare renders it
    p.provision(ctx, ctx.ui, LocalCommunicator(), {"ConnType": "local", "Host": "localhost"})
    assert (tmp_path / "local-out").read_text() == "kiln-box local\n"
    kept = list(inv_dir.iterdir())
    assert len(kept) == 1 and kept[0].name.startswith("packer-provisioner-ansible")
    assert "[builders]\nkiln-box ansible_connection=local" in kept[0].read_text()


def test_none_communicator_is_refused(tmp_path: Path) -> None:
    (tmp_path / "p.yml").write_text("- hosts: all\n  tasks: []\n")
    ctx = make_ctx()
    from kiln.backend.sdk.communicator import NoneCommunicator

    with pytest.raises(StepError, match='"none" communicator'):
        provisioner(playbook_file=str(tmp_path / "p.yml")).provision(
            ctx, ctx.ui, NoneCommunicator(), {}
        )


# --------------------------------------------------------------------------- ansible-local


def test_ansible_local_over_the_local_communicator(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("ANSIBLE_PYTHON_INTERPRETER", TARGET_PYTHON)
    proj = tmp_path / "proj"
    book = project(proj)
    (proj / "group_vars").mkdir()
    (proj / "group_vars" / "web.yml").write_text(f"target_dir: {tmp_path / 'target'}\n")
    staging = tmp_path / "staging"
    cfg = AnsibleLocalConfig(
        playbook_file=str(book),
        role_paths=[str(proj / "roles" / "writer")],
        group_vars=str(proj / "group_vars"),
        inventory_groups=["web"],
        staging_directory=str(staging),
        clean_staging_directory=True,
        extra_arguments=["-e", "extra_from_template={{.ID}}"],
    )
    cfg.check()
    p = AnsibleLocalProvisioner(cfg)
    p.prepare(PrepareContext(os.getcwd(), "ans", "null"))
    ctx = make_ctx()
    p.provision(ctx, ctx.ui, LocalCommunicator(), {"ID": "Null"})
    motd = tmp_path / "target" / "etc" / "motd"
    assert motd.read_text().startswith("built by ans (null) as ")
    out = output(ctx)
    executing = next(x for x in out if x.startswith("Executing Ansible: "))
    assert executing.startswith(f"Executing Ansible: cd {staging} && ANSIBLE_FORCE_COLOR=1 ")
    assert "-e extra_from_template=Null -c local -i " in executing
    assert "Removing staging directory..." in out
    assert not staging.exists()


def test_ansible_local_missing_command_is_exit_127(tmp_path: Path) -> None:
    (tmp_path / "p.yml").write_text("- hosts: all\n  tasks: []\n")
    cfg = AnsibleLocalConfig(
        playbook_file=str(tmp_path / "p.yml"),
        command="kiln-no-such-ansible",
        staging_directory=str(tmp_path / "st"),
    )
    ctx = make_ctx()
    with pytest.raises(StepError, match="kiln-no-such-ansible could not be found"):
        AnsibleLocalProvisioner(cfg).provision(ctx, ctx.ui, LocalCommunicator(), {})


@pytest.mark.ssh
def test_ansible_local_over_ssh_with_playbook_dir(sshd: Sshd, tmp_path: Path) -> None:
    proj = tmp_path / "proj"
    project(proj)
    (proj / "site.yml").write_text(
        textwrap.dedent(f"""\
        - hosts: all
          gather_facts: true
          tasks:
            - ansible.builtin.include_role:
                name: writer
              vars:
                target_dir: {tmp_path / "remote-target"}
        """)
    )
    ctx = make_ctx()
    comm = ssh_comm(sshd, ctx)
    try:
        cfg = AnsibleLocalConfig(
            playbook_file=str(proj / "site.yml"),
            playbook_dir=str(proj),
            staging_directory=str(tmp_path / "remote-staging"),
            command=f"PATH={Path(sys.executable).parent}:$PATH "
            "ANSIBLE_FORCE_COLOR=1 PYTHONUNBUFFERED=1 ansible-playbook",
            extra_arguments=["-e", f"ansible_python_interpreter={TARGET_PYTHON}"],
        )
        AnsibleLocalProvisioner(cfg).provision(ctx, ctx.ui, comm, comm.connection_data())
    finally:
        comm.close()
    assert (tmp_path / "remote-target" / "etc" / "hosts.kiln").exists()
    assert (tmp_path / "remote-staging" / "roles" / "writer" / "tasks" / "main.yml").exists()


def _forwarder(target: tuple[str, int]):
    """A TCP forwarder on 127.0.0.1:<free port> to ``target``; returns (port, stop)."""
    lst = socket.socket()
    lst.bind(("127.0.0.1", 0))
    lst.listen(8)
    stop = threading.Event()
    threading.Thread(target=forward_tcp, args=(lst, target, stop), daemon=True).start()
    return lst.getsockname()[1], stop


@pytest.mark.ssh
def test_through_the_communicators_bastion(sshd: Sshd, tmp_path: Path) -> None:
    """The bastion is the same sshd seen on another port (ssh refuses a jump to itself)."""
    port, stop = _forwarder((sshd.host, sshd.port))
    book = tmp_path / "b.yml"
    book.write_text(
        textwrap.dedent(f"""\
        - hosts: default
          gather_facts: false
          tasks:
            - ansible.builtin.copy:
                content: "through the bastion\\n"
                dest: {tmp_path}/via-bastion
        """)
    )
    ctx = make_ctx()
    comm = ssh_comm(
        sshd, ctx, ssh_bastion_host=sshd.host, ssh_bastion_port=port, ssh_bastion_username="root"
    )
    try:
        provisioner(playbook_file=str(book)).provision(ctx, ctx.ui, comm, comm.connection_data())
    finally:
        comm.close()
        stop.set()
    assert (tmp_path / "via-bastion").read_text() == "through the bastion\n"
    executing = next(x for x in output(ctx) if x.startswith("Executing Ansible: "))
    assert f"-W %h:%p root@{sshd.host}" in executing


def test_galaxy_file_installs_roles_first(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("ANSIBLE_PYTHON_INTERPRETER", TARGET_PYTHON)
    role = tmp_path / "src" / "kilnrole"
    (role / "tasks").mkdir(parents=True)
    (role / "meta").mkdir()
    (role / "tasks" / "main.yml").write_text(
        f'- ansible.builtin.copy:\n    content: "from galaxy\\n"\n    dest: {tmp_path}/galaxy-out\n'
    )
    (role / "meta" / "main.yml").write_text(
        "galaxy_info:\n  author: kiln\n  description: test\n  license: MIT\n"
        "  min_ansible_version: '2.9'\n  role_name: kilnrole\n"
    )
    subprocess.run(
        ["tar", "-C", str(tmp_path / "src"), "-czf", str(tmp_path / "kilnrole.tar.gz"), "kilnrole"],
        check=True,
    )
    req = tmp_path / "requirements.yml"
    req.write_text(f"roles:\n  - src: file://{tmp_path}/kilnrole.tar.gz\n    name: kilnrole\n")
    book = tmp_path / "site.yml"
    book.write_text("- hosts: all\n  gather_facts: false\n  roles:\n    - kilnrole\n")
    ctx = make_ctx()
    p = provisioner(
        playbook_file=str(book), galaxy_file=str(req), roles_path=str(tmp_path / "roles")
    )
    p.provision(ctx, ctx.ui, LocalCommunicator(), {"ConnType": "local"})
    assert (tmp_path / "roles" / "kilnrole" / "tasks" / "main.yml").exists()
    assert (tmp_path / "galaxy-out").read_text() == "from galaxy\n"
    out = output(ctx)
    galaxy = next(i for i, x in enumerate(out) if x.startswith("Executing Ansible Galaxy: "))
    playbook = next(i for i, x in enumerate(out) if x.startswith("Executing Ansible: "))
    assert galaxy < playbook
