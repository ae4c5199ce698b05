"""The ansible-local provisioner: copy playbooks to the machine and run Ansible there.

Everything goes through the communicator (ssh, docker or local): the playbook
files, roles, variables, galaxy requirements and an inventory are uploaded to
``staging_directory``; then ``cd <staging> && <command> <playbook> ... -c local
-i <inventory>`` runs on the machine, once per playbook. The machine needs
Ansible installed.
"""

from __future__ import annotations

import os
import posixpath
import shlex
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ...sdk.communicator import CommunicatorError
from ...sdk.config import ConfigProblems, opt
from ...sdk.plugin import PrepareContext, Provisioner, StepError
from ..shell_local_common import render_runtime

if TYPE_CHECKING:
    from ...sdk.context import BuildContext, StageUI

DEFAULT_COMMAND = "ANSIBLE_FORCE_COLOR=1 PYTHONUNBUFFERED=1 ansible-playbook"
DEFAULT_STAGING_PARENT = "/tmp/packer-provisioner-ansible-local"
_HTTP_UNSET = "ERR_HTTP_ADDR_NOT_IMPLEMENTED_BY_BUILDER"


@dataclass
class AnsibleLocalConfig:
    playbook_file: str = opt("", doc="the playbook to run (local file, uploaded)")
    playbook_files: list[str] = opt(default_factory=list, doc="several playbooks, run in order")
    playbook_dir: str = opt(
        "", doc="a local directory uploaded as the staging directory's contents"
    )
    playbook_paths: list[str] = opt(
        default_factory=list, doc="directories uploaded next to the playbook (staging/<name>)"
    )
    role_paths: list[str] = opt(
        default_factory=list, doc="role directories, uploaded to staging/roles/<name>"
    )
    collection_paths: list[str] = opt(
        default_factory=list, doc="collection directories, uploaded to staging/collections/<name>"
    )
    group_vars: str = opt("", doc="directory uploaded to staging/group_vars")
    host_vars: str = opt("", doc="directory uploaded to staging/host_vars")
    command: str = opt(DEFAULT_COMMAND, doc="the command that runs a playbook on the machine")
    extra_arguments: list[str] = opt(
        default_factory=list, doc="more arguments, joined with spaces into the remote command line"
    )
    staging_directory: str = opt(
        "", doc=f"where files go on the machine ({DEFAULT_STAGING_PARENT}/<uuid>)"
    )
    clean_staging_directory: bool = opt(False, doc="remove the staging directory afterwards")
    inventory_file: str = opt("", doc="a local inventory file to upload and use")
    inventory_groups: list[str] = opt(
        default_factory=list, doc="groups 127.0.0.1 is put in in the generated inventory"
    )
    galaxy_file: str = opt("", doc="requirements file for ansible-galaxy, run on the machine")
    galaxy_command: str = opt("ansible-galaxy", doc="the ansible-galaxy command on the machine")
    galaxy_force_install: bool = opt(False, doc="ansible-galaxy --force")
    galaxy_roles_path: str = opt("", doc="where galaxy installs roles (staging/roles)")
    galaxy_collections_path: str = opt("", doc="where galaxy installs collections")

    def __post_init__(self) -> None:
        if not self.staging_directory:
            from ...template.funcs import time_ordered_uuid

            self._staging = posixpath.join(DEFAULT_STAGING_PARENT, time_ordered_uuid())
        else:
            self._staging = self.staging_directory

    def staging(self, comm: Any = None) -> str:
        if not self.staging_directory:
            # on this host, inside a private directory rather than a guessable /tmp path
            private = comm.private_folder() if comm is not None else None
            if private:
                return posixpath.join(private, posixpath.basename(self._staging))
        return self._staging

    def playbooks(self) -> list[str]:
        return [self.playbook_file] if self.playbook_file else list(self.playbook_files)

    def check(self) -> None:
        problems: list[tuple[str, str]] = []
        if self.playbook_file and self.playbook_files:
            problems.append(
                ("playbook_files", "either playbook_file or playbook_files can be given, not both")
            )
        elif not self.playbook_file and not self.playbook_files:
            problems.append(
                ("playbook_file", "either playbook_file or playbook_files must be given")
            )
        if problems:
            raise ConfigProblems(problems)


class AnsibleLocalProvisioner(Provisioner):
    type_name = "ansible-local"
    Config = AnsibleLocalConfig

    config: AnsibleLocalConfig

    def prepare(self, ctx: PrepareContext) -> list[str]:
        c = self.config
        problems: list[tuple[str, str]] = []

        def need(key: str, path: str, directory: bool = False) -> None:
            if not path:
                return
            p = ctx.resolve(path)
            ok = os.path.isdir(p) if directory else os.path.isfile(p)
            if not ok:
                kind = "directory" if directory else "file"
                problems.append(
                    (
                        key,
                        f"{key}: {path} is not a {kind}"
                        + ("" if os.path.exists(p) else " (it does not exist)"),
                    )
                )

        need("playbook_file", c.playbook_file)
        for p in c.playbook_files:
            need("playbook_files", p)
        need("playbook_dir", c.playbook_dir, True)
        for p in c.playbook_paths:
            need("playbook_paths", p, True)
        for p in c.role_paths:
            need("role_paths", p, True)
        for p in c.collection_paths:
            need("collection_paths", p, True)
        need("group_vars", c.group_vars, True)
        need("host_vars", c.host_vars, True)
        need("inventory_file", c.inventory_file)
        need("galaxy_file", c.galaxy_file)
        if problems:
            raise ConfigProblems(problems)
        return []

    def describe(self) -> str:
        books = self.config.playbooks()
        return books[0] + (f" (+{len(books) - 1})" if len(books) > 1 else "") if books else ""

    # -- provisioning ---------------------------------------------------------------
    def provision(self, ctx: BuildContext, ui: StageUI, comm: Any, data: dict[str, Any]) -> None:
        c = self.config
        if comm is None:
            raise StepError("the ansible-local provisioner needs a communicator")
        data = dict(data or {})
        staging = c.staging(comm)
        ui.say("Provisioning with Ansible...")
        try:
            self._stage(ctx, ui, comm, staging)
            inventory = self._upload_inventory(ctx, ui, comm, staging)
            if c.galaxy_file:
                self._galaxy(ctx, ui, comm, staging)
            for book in c.playbooks():
                ctx.cancel.check()
                remote_book = posixpath.join(staging, os.path.basename(book))
                self._execute(ctx, ui, comm, data, staging, remote_book, inventory)
        except CommunicatorError as e:
            raise StepError(str(e)) from e
        if c.clean_staging_directory:
            ui.say("Removing staging directory...")
            self._remote(
                ctx, ui, comm, f"rm -rf {shlex.quote(staging)}", "remove the staging directory"
            )

    def _stage(self, ctx: BuildContext, ui: StageUI, comm: Any, staging: str) -> None:
        c = self.config
        if c.playbook_dir:
            ui.say("Uploading Playbook directory to Ansible staging directory...")
            self._mkdir(ctx, ui, comm, staging)
            comm.upload_dir(staging, _abs(c.playbook_dir) + "/")
        else:
            ui.say("Creating Ansible staging directory...")
            self._mkdir(ctx, ui, comm, staging)
        for book in c.playbooks():
            ui.say(
                "Uploading main Playbook file..."
                if book == c.playbook_file
                else f"Uploading playbook file {book}..."
            )
            comm.upload(posixpath.join(staging, os.path.basename(book)), _abs(book))
        if c.group_vars:
            ui.say("Uploading group_vars directory...")
            self._upload_dir(ctx, ui, comm, posixpath.join(staging, "group_vars"), c.group_vars)
        if c.host_vars:
            ui.say("Uploading host_vars directory...")
            self._upload_dir(ctx, ui, comm, posixpath.join(staging, "host_vars"), c.host_vars)
        for path in c.role_paths:
            ui.say(f"Uploading role directory: {path}")
            name = os.path.basename(_abs(path))
            self._upload_dir(ctx, ui, comm, posixpath.join(staging, "roles", name), path)
        for path in c.collection_paths:
            ui.say(f"Uploading collection directory: {path}")
            name = os.path.basename(_abs(path))
            self._upload_dir(ctx, ui, comm, posixpath.join(staging, "collections", name), path)
        for path in c.playbook_paths:
            ui.say(f"Uploading playbook directory: {path}")
            name = os.path.basename(_abs(path))
            self._upload_dir(ctx, ui, comm, posixpath.join(staging, name), path)

    def _upload_dir(self, ctx: BuildContext, ui: StageUI, comm: Any, dst: str, src: str) -> None:
        self._mkdir(ctx, ui, comm, dst)
        comm.upload_dir(dst, _abs(src) + "/")  # contents into dst

    def _upload_inventory(self, ctx: BuildContext, ui: StageUI, comm: Any, staging: str) -> str:
        c = self.config
        if c.inventory_file:
            ui.say("Uploading inventory file...")
            remote = posixpath.join(staging, os.path.basename(c.inventory_file))
            comm.upload(remote, _abs(c.inventory_file))
            return remote
        if c.inventory_groups:
            text = "".join(f"[{g}]\n127.0.0.1\n" for g in c.inventory_groups)
        else:
            text = "127.0.0.1\n"
        remote = posixpath.join(staging, "packer-provisioner-ansible-local-inventory")
        comm.upload(remote, text.encode())
        return remote

    def _galaxy(self, ctx: BuildContext, ui: StageUI, comm: Any, staging: str) -> None:
        c = self.config
        ui.say("Uploading galaxy file...")
        remote = posixpath.join(staging, os.path.basename(c.galaxy_file))
        comm.upload(remote, _abs(c.galaxy_file))
        roles = c.galaxy_roles_path or posixpath.join(staging, "roles")
        force = " --force" if c.galaxy_force_install else ""
        cmd = (
            f"cd {shlex.quote(staging)} && {c.galaxy_command} install -r "
            f"{shlex.quote(remote)} -p {shlex.quote(roles)}{force}"
        )
        ui.say(f"Executing Ansible Galaxy: {cmd}")
        self._remote(ctx, ui, comm, cmd, "install the galaxy requirements", galaxy=True)
        if c.galaxy_collections_path:
            cmd = (
                f"cd {shlex.quote(staging)} && {c.galaxy_command} collection install -r "
                f"{shlex.quote(remote)} -p {shlex.quote(c.galaxy_collections_path)}{force}"
            )
            ui.say(f"Executing Ansible Galaxy: {cmd}")
            self._remote(ctx, ui, comm, cmd, "install the galaxy collections", galaxy=True)

    def _execute(
        self,
        ctx: BuildContext,
        ui: StageUI,
        comm: Any,
        data: dict[str, Any],
        staging: str,
        playbook: str,
        inventory: str,
    ) -> None:
        c = self.config
        env = []
        if c.collection_paths or c.galaxy_collections_path:
            paths = [posixpath.join(staging, "collections")] if c.collection_paths else []
            if c.galaxy_collections_path:
                paths.append(c.galaxy_collections_path)
            env.append(f"ANSIBLE_COLLECTIONS_PATH={shlex.quote(':'.join(paths))}")
        if c.galaxy_roles_path:
            env.append(f"ANSIBLE_ROLES_PATH={shlex.quote(c.galaxy_roles_path)}")
        extra_vars = f"packer_build_name={ctx.build_name} packer_builder_type={ctx.build_type}"
        http = data.get("PackerHTTPAddr")
        if http and http != _HTTP_UNSET:
            extra_vars += f" packer_http_addr={http}"
        extra = " ".join(render_runtime(ctx, a, data, "extra_arguments") for a in c.extra_arguments)
        command = render_runtime(ctx, c.command, data, "command")
        parts = [
            f"cd {shlex.quote(staging)} &&",
            *env,
            command,
            shlex.quote(playbook),
            "--extra-vars",
            shlex.quote(extra_vars),
        ]
        if extra:
            parts.append(extra)
        parts += ["-c", "local", "-i", shlex.quote(inventory)]
        cmd = " ".join(parts)
        ui.say(f"Executing Ansible: {cmd}")
        code = comm.run(cmd, ui.output, ctx.cancel)
        ctx.cancel.check()
        if code == 127:
            raise StepError(
                f"{command} could not be found. Verify that it is available on the "
                "PATH after connecting to the machine."
            )
        if code != 0:
            raise StepError(f"Non-zero exit status: {code}")

    def _mkdir(self, ctx: BuildContext, ui: StageUI, comm: Any, path: str) -> None:
        self._remote(ctx, ui, comm, f"mkdir -p {shlex.quote(path)}", f"create {path}")

    def _remote(
        self, ctx: BuildContext, ui: StageUI, comm: Any, cmd: str, what: str, galaxy: bool = False
    ) -> None:
        code = comm.run(cmd, ui.output, ctx.cancel)
        ctx.cancel.check()
        if code == 127 and galaxy:
            raise StepError(f"{self.config.galaxy_command} could not be found on the machine")
        if code != 0:
            raise StepError(f"cannot {what} on the machine: exit status {code}")


def _abs(path: str) -> str:
    return os.path.abspath(os.path.expanduser(path))


