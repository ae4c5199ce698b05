"""The docker builder: a container from an image, provisioned, committed or exported (steps
in steps.py, configuration in config.py, engine helpers in driver.py)."""

from __future__ import annotations

import re

from ...sdk.config import ConfigProblems
from ...sdk.plugin import PROVISION, Artifact, Builder
from .config import CHANGE_INSTRUCTIONS, PLACEHOLDERS, DockerConfig, parse_run_command
from .driver import BUILDER_ID, IMPORT_BUILDER_ID, DockerImageArtifact, export_artifact
from .steps import (
    CommitStep,
    ConnectStep,
    EngineStep,
    ExportStep,
    PullStep,
    RunContainerStep,
    TempDirStep,
    _Shared,
)


class DockerBuilder(Builder):
    type_name = "docker"
    builder_id = BUILDER_ID
    Config = DockerConfig
    generated_keys = ("ImageSha256", "SourceImageDigest")
    deferred_keys = ("run_command",)

    def prepare(self, ctx) -> list[str]:
        """Check run_command's flags now rather than after the image was pulled."""
        args = [re.sub(r"\{\{.*?\}\}", "x", str(a)) for a in self.config.run_command]
        try:
            parse_run_command(args)
        except ValueError as e:
            raise ConfigProblems([("run_command", str(e))]) from None
        except OSError:
            pass  # an --env-file that appears later is read at run time
        # Packer hands the changes to the engine unchecked, and so does Kiln: a newer engine
        # may take more; what this list lacks most likely fails at the commit
        return [f"changes: {change!r}: docker commit takes only "
                f"{', '.join(CHANGE_INSTRUCTIONS)}; the engine will most likely refuse this "
                "when the container is committed"
                for change in self.config.changes if self.config.commit
                and (change.split(None, 1) or [""])[0].upper() not in CHANGE_INSTRUCTIONS]

    def steps(self, ctx) -> list:
        for key, value in PLACEHOLDERS.items():
            ctx.generated_data.setdefault(key, value)
        shared = _Shared(self.config)
        steps: list = [EngineStep(shared), TempDirStep(shared)]
        if self.config.pull:
            steps.append(PullStep(shared))
        steps += [RunContainerStep(shared), ConnectStep(shared), PROVISION]
        if self.config.commit:
            steps.append(CommitStep(shared))
        elif self.config.export_path:
            steps.append(ExportStep(shared))
        return steps

    def artifact(self, ctx) -> Artifact | None:
        state = {"generated_data": dict(ctx.generated_data)}
        if self.config.commit:
            image_id = ctx.state.get("image_id")
            if not image_id:
                return None
            return DockerImageArtifact(IMPORT_BUILDER_ID, image_id, state)
        if self.config.export_path:
            return export_artifact(self.config.export_path, state)
        return export_artifact("", state)

    def communicator_config(self):
        return self.config
