"""The file builder: writes one file (from content or a source) as the artifact.

It exists to debug provisioners and, above all, post-processors in seconds:
shell-local provisioners run, remote ones talk to a communicator that does
nothing.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass

from ...sdk.communicator import MockCommunicator
from ...sdk.config import ConfigProblems, opt
from ...sdk.plugin import PROVISION, Artifact, Builder, Step, StepError


@dataclass
class FileConfig:
    target: str = opt(required=True, doc="path of the file to create")
    source: str = opt("", doc="file to copy into target")
    content: str = opt("", doc="text to write into target")

    def check(self) -> None:
        if self.source and self.content:
            raise ConfigProblems([("content", "cannot specify source file AND content")])


class WriteFileStep(Step):
    title = "Write file"

    def __init__(self, config: FileConfig):
        self.config = config

    def run(self, ctx) -> None:
        c = self.config
        parent = os.path.dirname(c.target)
        try:
            if parent:
                os.makedirs(parent, mode=0o755, exist_ok=True)
            if c.source:
                ctx.ui.say(f"Copying {c.source} to {c.target}")
                with open(c.source, "rb") as src, open(c.target, "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
                ctx.ui.say(f"Copied {os.path.getsize(c.target)} bytes")
            else:
                fd = os.open(c.target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                with os.fdopen(fd, "w") as f:
                    f.write(c.content)
        except OSError as e:
            raise StepError(f"cannot write {c.target}: {e.strerror or e}") from e
        ctx.communicator = MockCommunicator()


class FileBuilder(Builder):
    type_name = "file"
    builder_id = "packer.file"
    Config = FileConfig
    error_cleanup = False  # as Packer's: its provisioners run without the provision step

    def prepare(self, ctx) -> list[str]:
        c = self.config
        if c.source and not os.path.exists(c.source):
            from ...sdk.config import ConfigProblems

            raise ConfigProblems([("source", f"source file {c.source} does not exist")])
        if not c.source and not c.content:
            return ["both source and content are empty; the target will be an empty file"]
        return []

    def steps(self, ctx) -> list:
        ctx.instance_id = "File"
        return [WriteFileStep(self.config), PROVISION]

    def artifact(self, ctx) -> Artifact:
        return Artifact(self.builder_id, id="File", files=[self.config.target],
                        files_must_exist=True,
                        string=f"Stored file: {self.config.target}")
