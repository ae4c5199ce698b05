"""The ansible provisioner: run ``ansible-playbook`` on this host against the machine.

Packer starts an SSH server of its own (the "proxy adapter") and lets Ansible
talk to the machine through the communicator. Kiln connects Ansible to the
machine directly instead:

* ssh communicator: the inventory names the machine's Host, Port and User, and
  Ansible logs in with the communicator's private key (written to a 0600 temp
  file when only the key text is known, removed afterwards), its SSH agent, or
  its password (through sshpass, or Ansible's paramiko connection without it);
* local communicator: ``ansible_connection=local``;
* docker communicator: ``ansible_connection=community.docker.docker`` when that
  collection is installed.

``use_proxy`` and the proxy-only keys (``local_port``, ``ssh_host_key_file``,
``ssh_authorized_key_file``, ``ansible_proxy_key_type``, ``sftp_command``,
``use_sftp``) are accepted so Packer templates validate, and have no effect.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ...sdk.communicator import CommunicatorError
from ...sdk.config import ConfigProblems, Deferred, opt
from ...sdk.plugin import PrepareContext, Provisioner, StepError
from ..shell_local_common import render_runtime

if TYPE_CHECKING:
    from ...sdk.context import BuildContext, StageUI

DEFAULT_INVENTORY_LINE = (
    "{{ .HostAlias }} ansible_host={{ .Host }} ansible_user={{ .User }} ansible_port={{ .Port }}\n"
)
_HTTP_UNSET = "ERR_HTTP_ADDR_NOT_IMPLEMENTED_BY_BUILDER"
# values after these keys are hidden in the "Executing Ansible" line, as Packer does
_SECRET_ARG = re.compile(r"((?:ansible_)?(?:password|become_pass(?:word)?|ssh_pass)=)(\S+)")

_version_cache: dict[str, str] = {}
_version_lock = threading.Lock()


@dataclass
class AnsibleConfig:
    playbook_file: str = opt(required=True, doc="the playbook to run (a local file)")
    command: str = opt("ansible-playbook", doc="the executable that runs the playbook")
    extra_arguments: list[str] = opt(
        default_factory=list,
        doc="more arguments for the command, one per item, not passed through a shell",
    )
    ansible_env_vars: list[str] = opt(
        default_factory=list, doc='"KEY=value" items set in Ansible\'s environment'
    )
    ansible_ssh_extra_args: list[str] = opt(
        default_factory=lambda: ["-o IdentitiesOnly=yes"], doc="given to --ssh-extra-args"
    )
    groups: list[str] = opt(default_factory=list, doc="inventory groups the machine is in")
    empty_groups: list[str] = opt(default_factory=list, doc="inventory groups with no hosts")
    host_alias: str = opt("default", doc="the machine's name in the inventory")
    user: str = opt("", doc="the user Ansible logs in as (default: the communicator's user)")
    local_port: int = opt(0, doc="Packer's proxy port; Kiln has no proxy (ignored)")
    ssh_host_key_file: str = opt("", doc="Packer's proxy host key (ignored by Kiln)")
    ssh_authorized_key_file: str = opt("", doc="Packer's proxy client key (ignored by Kiln)")
    ansible_proxy_key_type: str = opt("ECDSA", doc="Packer's proxy key type (ignored by Kiln)")
    sftp_command: str = opt(
        "/usr/lib/sftp-server -e", doc="Packer's proxy SFTP server (ignored by Kiln)"
    )
    use_sftp: bool = opt(False, doc="Packer's proxy transfer mode (ignored by Kiln)")
    skip_version_check: bool = opt(False, doc="do not run `<command> --version` at prepare")
    inventory_directory: str = opt("", doc="where the generated inventory file is written")
    inventory_file_template: Deferred = opt(
        Deferred(""), doc="template of the generated inventory ({{ .HostAlias }} {{ .Host }} ...)"
    )
    inventory_file: str = opt("", doc="use this inventory instead of generating one")
    keep_inventory_file: bool = opt(False, doc="leave the generated inventory file in place")
    galaxy_file: str = opt("", doc="requirements file for ansible-galaxy, installed first")
    galaxy_command: str = opt("ansible-galaxy", doc="the ansible-galaxy executable")
    galaxy_force_install: bool = opt(False, doc="ansible-galaxy --force")
    galaxy_force_with_deps: bool = opt(False, doc="ansible-galaxy --force-with-deps")
    roles_path: str = opt("", doc="where galaxy installs roles (ANSIBLE_ROLES_PATH)")
    collections_path: str = opt(
        "", doc="where galaxy installs collections (ANSIBLE_COLLECTIONS_PATH)"
    )
    use_proxy: bool | None = opt(
        None, doc="Packer's proxy adapter; Kiln always connects Ansible to the machine directly"
    )
    ansible_winrm_use_http: bool = opt(False, doc="WinRM over HTTP (Kiln has no WinRM)")

    def check(self) -> None:
        problems: list[tuple[str, str]] = []
        for kv in self.ansible_env_vars:
            if "=" not in kv or kv.startswith("="):
                problems.append(
                    (
                        "ansible_env_vars",
                        f"ansible_env_vars item {kv!r} is not in the form KEY=value",
                    )
                )
        if self.ansible_proxy_key_type and self.ansible_proxy_key_type.upper() not in (
            "ECDSA",
            "RSA",
        ):
            problems.append(
                (
                    "ansible_proxy_key_type",
                    "ansible_proxy_key_type must be ECDSA or "
                    f"RSA, not {self.ansible_proxy_key_type!r}",
                )
            )
        if not 0 <= self.local_port <= 65535:
            problems.append(("local_port", f"local_port {self.local_port} is not a TCP port"))
        if not self.host_alias:
            problems.append(("host_alias", "host_alias cannot be empty"))
        if self.inventory_file and self.inventory_file_template:
            problems.append(
                (
                    "inventory_file_template",
                    "inventory_file_template makes a new "
                    "inventory; it cannot be combined with inventory_file",
                )
            )
        if problems:
            raise ConfigProblems(problems)


def _exists(problems: list[tuple[str, str]], key: str, path: str, directory: bool = False) -> None:
    if not path:
        return
    if directory:
        if not os.path.isdir(path):
            problems.append((key, f"{key}: {path} is not a directory"))
    elif not os.path.isfile(path):
        problems.append(
            (
                key,
                f"{key}: {path} is invalid: "
                + ("it is a directory" if os.path.isdir(path) else "no such file"),
            )
        )


def ansible_version(command: str) -> str:
    """The first line of ``<command> --version`` (cached); StepError if it cannot run."""
    with _version_lock:
        if command in _version_cache:
            return _version_cache[command]
    try:
        r = subprocess.run(
            [command, "--version"],
            capture_output=True,
            text=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
        )
    except FileNotFoundError:
        raise StepError(
            f'Error running "{command} --version": {command} not found; install '
            "Ansible (pip install 'ansible-core<2.20') or set skip_version_check"
        ) from None
    except (OSError, subprocess.TimeoutExpired) as e:
        raise StepError(f'Error running "{command} --version": {e}') from e
    if r.returncode != 0:
        tail = (r.stderr or r.stdout).strip().splitlines()[-1:] or [""]
        raise StepError(
            f'Error running "{command} --version": exit status {r.returncode} {tail[0]}'
        )
    first = (r.stdout.strip().splitlines() or [""])[0]
    with _version_lock:
        _version_cache[command] = first
    return first


class AnsibleProvisioner(Provisioner):
    type_name = "ansible"
    Config = AnsibleConfig
    deferred_keys = ("inventory_file_template",)

    config: AnsibleConfig

    def prepare(self, ctx: PrepareContext) -> list[str]:
        c = self.config
        problems: list[tuple[str, str]] = []
        _exists(problems, "playbook_file", ctx.resolve(c.playbook_file) if c.playbook_file else "")
        _exists(problems, "galaxy_file", ctx.resolve(c.galaxy_file) if c.galaxy_file else "")
        _exists(
            problems, "inventory_file", ctx.resolve(c.inventory_file) if c.inventory_file else ""
        )
        _exists(
            problems,
            "inventory_directory",
            ctx.resolve(c.inventory_directory) if c.inventory_directory else "",
            directory=True,
        )
        if problems:
            raise ConfigProblems(problems)
        if not c.skip_version_check:
            try:
                ansible_version(c.command)
            except StepError as e:
                raise ConfigProblems([("command", str(e))]) from None
        warnings = []
        if c.use_proxy:
            warnings.append(
                "ansible: use_proxy is set, but Kiln has no proxy adapter: Ansible "
                "connects to the machine directly"
            )
        return warnings

    def describe(self) -> str:
        return self.config.playbook_file

    # -- provisioning ---------------------------------------------------------------
    def provision(self, ctx: BuildContext, ui: StageUI, comm: Any, data: dict[str, Any]) -> None:
        c = self.config
        data = dict(data or {})
        ctx.cancel.check()
        ui.say("Provisioning with Ansible...")
        playbook = os.path.abspath(os.path.expanduser(c.playbook_file))
        if not os.path.isfile(playbook):
            raise StepError(f"playbook_file {playbook} does not exist")
        temps: list[str] = []
        try:
            conn = self._connection(ctx, ui, comm, data, temps)
            env = self._environment(ctx, data)
            if c.galaxy_file:
                self._galaxy(ctx, ui, env)
            inventory = self._inventory(ctx, ui, data, conn, temps)
            argv = self._argv(ctx, data, conn, inventory, playbook)
            self._run(ctx, ui, argv, env, c.command)
        finally:
            for path in temps:
                ctx.remove_temp(path)

    def _connection(
        self, ctx: BuildContext, ui: StageUI, comm: Any, data: dict[str, Any], temps: list[str]
    ) -> dict[str, Any]:
        """How Ansible reaches the machine: inventory variables and extra arguments."""
        c = self.config
        ctype = (data.get("ConnType") or getattr(comm, "type_name", "") or "none").lower()
        if ctype == "ssh":
            host, port = str(data.get("Host") or ""), str(data.get("Port") or "22")
            user = c.user or str(data.get("User") or "")
            if not host or not user:
                raise StepError("the ssh communicator gave no Host/User for Ansible to connect to")
            conn: dict[str, Any] = {
                "type": "ssh",
                "host": host,
                "port": port,
                "user": user,
                "extra_vars": [],
                "vars": {},
            }
            key_file = str(data.get("SSHPrivateKeyFile") or "")
            key_text = str(data.get("SSHPrivateKey") or "")
            password = str(data.get("Password") or "")
            if key_file:
                conn["key"] = os.path.expanduser(key_file)
            elif key_text:
                path = ctx.temp_file(
                    prefix="kiln-ansible-key-", content=key_text.encode(), mode=0o600
                )
                temps.append(path)
                conn["key"] = path
            elif password:
                ctx.add_secret(password)
                secret = ctx.temp_file(
                    prefix="kiln-ansible-pass-",
                    suffix=".json",
                    mode=0o600,
                    content=json.dumps({"ansible_password": password}).encode(),
                )
                temps.append(secret)
                conn["extra_vars"].append(f"@{secret}")
                if shutil.which("sshpass") is None:
                    # ssh needs sshpass for passwords; Ansible's paramiko connection does not
                    conn["vars"]["ansible_connection"] = "paramiko"
            bastion = getattr(getattr(comm, "settings", None), "bastion", None)
            if bastion is not None:
                conn["proxy_command"] = self._bastion_command(ctx, bastion, temps)
            how = "key" if "key" in conn else "password" if password else "SSH agent"
            ui.say(
                f"Connecting Ansible directly to {user}@{host}:{port} over SSH ({how} of the "
                "communicator; Kiln has no proxy adapter)"
            )
            return conn
        if ctype == "local":
            return {
                "type": "local",
                "host": "127.0.0.1",
                "port": "",
                "user": c.user or "",
                "extra_vars": [],
                "vars": {
                    "ansible_connection": "local",
                    "ansible_python_interpreter": "{{ ansible_playbook_python }}",
                },
            }
        if ctype == "docker":
            container = str(getattr(comm, "container_id", "") or data.get("ID") or "")
            if not self._has_docker_connection(env_command=c.command):
                raise StepError(
                    "Ansible cannot reach a docker container without the "
                    "community.docker collection: ansible-galaxy collection install "
                    "community.docker (or use the ssh communicator)"
                )
            return {
                "type": "docker",
                "host": container,
                "port": "",
                "user": c.user or "",
                "extra_vars": [],
                "vars": {"ansible_connection": "community.docker.docker"},
            }
        raise StepError(
            f'the ansible provisioner cannot reach the machine over the "{ctype}" '
            "communicator; use ssh, local or docker"
        )

    def _bastion_command(self, ctx: BuildContext, b: Any, temps: list[str]) -> str:
        """ssh's ProxyCommand through the communicator's bastion (ProxyJump would not use
        our key for the jump: ``-i`` does not reach it)."""
        argv = ["ssh", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                "-o", "BatchMode=yes", "-p", str(b.port)]
        if b.key_file:
            argv += ["-i", b.key_file, "-o", "IdentitiesOnly=yes"]
        elif b.key_text:
            path = ctx.temp_file(prefix="kiln-ansible-bastion-key-", content=b.key_text.encode(),
                                 mode=0o600)
            temps.append(path)
            argv += ["-i", path, "-o", "IdentitiesOnly=yes"]
        elif not b.agent:
            raise StepError("Ansible cannot log in to the bastion with a password: give the "
                            "bastion a key (ssh_bastion_private_key_file) or use "
                            "ssh_bastion_agent_auth")
        argv += ["-W", "%h:%p", f"{b.user}@{b.host}"]
        return shlex.join(argv)

    def _has_docker_connection(self, env_command: str) -> bool:
        doc = (
            os.path.join(os.path.dirname(env_command), "ansible-doc")
            if os.sep in env_command
            else "ansible-doc"
        )
        try:
            r = subprocess.run(
                [doc, "-t", "connection", "-l", "community.docker"],
                text=True,
                capture_output=True,
                timeout=60,
                stdin=subprocess.DEVNULL,
            )
        except (OSError, subprocess.TimeoutExpired):
            return False
        return "community.docker.docker" in r.stdout

    def _environment(self, ctx: BuildContext, data: dict[str, Any]) -> dict[str, str]:
        c = self.config
        env = dict(os.environ)
        env["ANSIBLE_HOST_KEY_CHECKING"] = "False"
        env["ANSIBLE_FORCE_COLOR"] = "1"  # the UI renders ANSI colours
        env["PYTHONUNBUFFERED"] = "1"  # lines as they happen, not in 4 KiB blocks
        if c.roles_path:
            env["ANSIBLE_ROLES_PATH"] = os.path.abspath(os.path.expanduser(c.roles_path))
        if c.collections_path:
            env["ANSIBLE_COLLECTIONS_PATH"] = os.path.abspath(
                os.path.expanduser(c.collections_path)
            )
        for kv in c.ansible_env_vars:
            key, _, value = render_runtime(ctx, kv, data, "ansible_env_vars").partition("=")
            env[key] = value
        user_keys = {kv.partition("=")[0] for kv in c.ansible_env_vars}
        no_color = getattr(ctx.options, "color", True) is False
        if ("ANSIBLE_NOCOLOR" in user_keys or no_color) and "ANSIBLE_FORCE_COLOR" not in user_keys:
            env.pop("ANSIBLE_FORCE_COLOR", None)  # Ansible lets FORCE_COLOR win over NOCOLOR
        return env

    def _galaxy(self, ctx: BuildContext, ui: StageUI, env: dict[str, str]) -> None:
        c = self.config
        req = os.path.abspath(os.path.expanduser(c.galaxy_file))
        roles, collections = _requirements_kinds(req)
        runs = []
        if roles:
            argv = [c.galaxy_command, "install", "-r", req]
            if c.roles_path:
                argv += ["-p", env["ANSIBLE_ROLES_PATH"]]
            runs.append(argv)
        if collections:
            argv = [c.galaxy_command, "collection", "install", "-r", req]
            if c.collections_path:
                argv += ["-p", env["ANSIBLE_COLLECTIONS_PATH"]]
            runs.append(argv)
        for argv in runs:
            if c.galaxy_force_install:
                argv.append("--force")
            if c.galaxy_force_with_deps:
                argv.append("--force-with-deps")
            self._run(ctx, ui, argv, env, c.galaxy_command, label="Executing Ansible Galaxy")

    def _inventory(
        self,
        ctx: BuildContext,
        ui: StageUI,
        data: dict[str, Any],
        conn: dict[str, Any],
        temps: list[str],
    ) -> str:
        c = self.config
        if c.inventory_file:
            return os.path.abspath(os.path.expanduser(c.inventory_file))
        values = dict(data)
        values.update(
            HostAlias=c.host_alias, Host=conn["host"], Port=conn["port"], User=conn["user"]
        )
        if c.inventory_file_template:
            line = render_runtime(ctx, str(c.inventory_file_template), values, "inventory_file_template")
        else:
            parts = [c.host_alias]
            if conn["type"] == "ssh":
                parts += [
                    f"ansible_host={conn['host']}",
                    f"ansible_user={conn['user']}",
                    f"ansible_port={conn['port']}",
                ]
            elif conn["type"] == "docker":
                parts.append(f"ansible_host={conn['host']}")
                if conn["user"]:
                    parts.append(f"ansible_user={conn['user']}")
            parts += [f"{k}={_inventory_value(v)}" for k, v in conn["vars"].items()]
            line = " ".join(parts) + "\n"
        if not line.endswith("\n"):
            line += "\n"
        text = line
        for group in c.groups:
            text += f"[{group}]\n{line}"
        for group in c.empty_groups:
            text += f"[{group}]\n"
        directory = (
            os.path.abspath(os.path.expanduser(c.inventory_directory))
            if c.inventory_directory
            else None
        )
        if directory is None and not c.keep_inventory_file:
            # tracked in the ledger: `kiln cleanup` removes it if Kiln is killed
            path = ctx.temp_file(prefix="packer-provisioner-ansible", content=text.encode(),
                                 mode=0o600)
        else:
            fd, path = tempfile.mkstemp(prefix="packer-provisioner-ansible", dir=directory)
            with os.fdopen(fd, "w") as f:
                f.write(text)
        if c.keep_inventory_file:
            ui.say(f"Keeping the generated inventory file: {path}")
        else:
            temps.append(path)
        return path

    def _argv(
        self,
        ctx: BuildContext,
        data: dict[str, Any],
        conn: dict[str, Any],
        inventory: str,
        playbook: str,
    ) -> list[str]:
        c = self.config
        argv = [
            c.command,
            "-e",
            f'packer_build_name="{ctx.build_name}"',
            "-e",
            f"packer_builder_type={ctx.build_type}",
        ]
        http = data.get("PackerHTTPAddr")
        if http and http != _HTTP_UNSET:
            argv += ["-e", f"packer_http_addr={http}"]
        if conn["type"] == "ssh":
            ssh_args = " ".join(c.ansible_ssh_extra_args)
            if conn.get("proxy_command"):
                ssh_args = f"{ssh_args} -o ProxyCommand={shlex.quote(conn['proxy_command'])}"
                ssh_args = ssh_args.strip()
            if ssh_args:
                # Ansible splits this value shell-style; Packer wraps it in '...', which
                # turns several options into one broken word
                argv += ["--ssh-extra-args", ssh_args]
        argv += [render_runtime(ctx, a, data, "extra_arguments") for a in c.extra_arguments]
        for ev in conn["extra_vars"]:
            argv += ["-e", ev]
        if conn.get("key"):
            argv += ["-e", f"ansible_ssh_private_key_file={conn['key']}"]
        argv += ["-i", inventory, playbook]
        return argv

    def _run(
        self,
        ctx: BuildContext,
        ui: StageUI,
        argv: list[str],
        env: dict[str, str],
        command: str,
        label: str = "Executing Ansible",
    ) -> None:
        from ..communicators.local import run_process

        shown = _SECRET_ARG.sub(r"\1*****", shlex.join(argv))
        ui.say(f"{label}: {shown}")
        try:
            code = run_process(argv, ui.output, ctx.cancel, env=env, ledger=ctx.ledger)
        except CommunicatorError as e:
            raise StepError(f"{e} (is Ansible installed? pip install 'ansible-core<2.20')") from e
        ctx.cancel.check()
        if code != 0:
            raise StepError(f"{os.path.basename(command)} exited with status {code}")


# --------------------------------------------------------------------------- helpers



def _inventory_value(v: Any) -> str:
    s = str(v)
    return f"'{s}'" if any(ch.isspace() for ch in s) else s


def _requirements_kinds(path: str) -> tuple[bool, bool]:
    """(has roles, has collections) in an ansible-galaxy requirements file."""
    try:
        import yaml

        with open(path, encoding="utf-8") as f:
            doc = yaml.safe_load(f)
    except (OSError, ValueError) as e:
        raise StepError(f"cannot read galaxy_file {path}: {e}") from e
    except Exception as e:  # noqa: BLE001 - yaml's errors
        raise StepError(f"galaxy_file {path} is not valid YAML: {e}") from e
    if isinstance(doc, list):  # the old format: a list of roles
        return bool(doc), False
    if isinstance(doc, dict):
        return bool(doc.get("roles")), bool(doc.get("collections"))
    return False, False
