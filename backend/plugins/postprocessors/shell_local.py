"""The shell-local post-processor: run commands or scripts on this host after a build.

Same options as the provisioner. The generated data comes from the input
artifact, and the input artifact is passed on unchanged (use artifice to
replace it). For old templates, a one-element ``execute_command`` (or a plain
string) is run through ``sh -c``.
"""

from __future__ import annotations

from dataclasses import dataclass

from ...sdk.plugin import Artifact, PostProcessor, PrepareContext
from ..shell_local_common import ShellLocalConfig, run_shell_local


@dataclass
class ShellLocalPPConfig(ShellLocalConfig):
    def exec_argv_template(self) -> list[str]:
        if len(self.execute_command) == 1:
            return ["sh", "-c", str(self.execute_command[0])]
        return super().exec_argv_template()


class ShellLocalPostProcessor(PostProcessor):
    type_name = "shell-local"
    Config = ShellLocalPPConfig
    deferred_keys = ("execute_command",)
    default_keep = (True, True)

    config: ShellLocalPPConfig

    def prepare(self, ctx: PrepareContext) -> list[str]:
        self.config.check_scripts_exist()
        return []

    def post_process(self, ctx, ui, artifact: Artifact) -> Artifact:
        run_shell_local(self.config, ctx, ui, artifact.state("generated_data") or {})
        return artifact

    def describe(self) -> str:
        return self.config.describe()

