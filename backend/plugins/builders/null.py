"""The null builder: no machine of its own; provisioners run over its communicator.

``communicator: none`` runs nothing (shell-local still works); ``local`` runs
shell and file provisioners on this host (Kiln's addition); ``ssh`` connects to
an existing host, which is how provisioners are tried against a kept machine.
"""

from __future__ import annotations

from dataclasses import dataclass

from ...sdk.config import ConfigProblems
from ...sdk.plugin import PROVISION, Artifact, Builder, Step
from ..communicators.config import CommunicatorConfig


@dataclass
class NullConfig(CommunicatorConfig):
    def check(self) -> None:
        problems = self.communicator_problems()
        ctype = self.communicator_type()
        if ctype == "ssh":
            problems += self.require_ssh_login(need_host=True)
        elif ctype not in ("none", "local", "ssh", "docker"):
            problems.append(("communicator", f'the null builder cannot use the "{ctype}" communicator'))
        if ctype == "docker" and not self.docker_container():
            problems.append(("communicator", 'communicator "docker" on the null builder needs the '
                             "container id or name in ssh_host"))
        if problems:
            raise ConfigProblems(problems)

    def docker_container(self) -> str:
        return self.ssh_host


class ConnectStep(Step):
    """Open the communicator the config asks for (Packer's StepConnect)."""

    title = "Connect"

    def __init__(self, config: CommunicatorConfig, builder_host: str = ""):
        self.config = config
        self.builder_host = builder_host

    def run(self, ctx) -> None:
        from ..communicators.connect import connect

        ctx.communicator = connect(ctx, self.config, host=self.builder_host)

    def cleanup(self, ctx) -> None:
        comm = ctx.communicator
        if comm is not None:
            comm.close()


class NullBuilder(Builder):
    type_name = "null"
    builder_id = "fnoeding.null"
    Config = NullConfig

    def prepare(self, ctx) -> list[str]:
        problems = self.config.file_problems()
        if problems:
            raise ConfigProblems(problems)
        return []

    def steps(self, ctx) -> list:
        ctx.instance_id = "Null"
        return [ConnectStep(self.config), PROVISION]

    def artifact(self, ctx) -> Artifact:
        return Artifact(
            self.builder_id,
            id="Null",
            string="Did not export anything. This is the null builder",
            state={"generated_data": {"ID": "Null"}},
        )

    def communicator_config(self):
        return self.config
