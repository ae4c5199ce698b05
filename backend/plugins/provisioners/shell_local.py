"""The shell-local provisioner: run commands or scripts on the machine running Kiln.

The communicator is ignored, so it works with ``communicator: none`` and with
the file builder. See :mod:`backend.plugins.shell_local_common` for the work.
"""

from __future__ import annotations

from typing import Any

from ...sdk.plugin import PrepareContext, Provisioner
from ..shell_local_common import ShellLocalConfig, run_shell_local


class ShellLocalProvisioner(Provisioner):
    type_name = "shell-local"
    Config = ShellLocalConfig
    deferred_keys = ("execute_command",)
    needs_communicator = False

    config: ShellLocalConfig

    def prepare(self, ctx: PrepareContext) -> list[str]:
        self.config.check_scripts_exist()
        return []

    def provision(self, ctx, ui, comm: Any, data: dict[str, Any]) -> None:
        run_shell_local(self.config, ctx, ui, data)

    def describe(self) -> str:
        return self.config.describe()
