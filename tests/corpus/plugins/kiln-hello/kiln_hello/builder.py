"""The hello builder: writes a greeting into a file, as a step that records what it creates."""

from __future__ import annotations

import os
from dataclasses import dataclass

from kiln.backend.sdk.config import ConfigProblems, opt
from kiln.backend.sdk.context import BuildContext
from kiln.backend.sdk.plugin import PROVISION, Artifact, Builder, Step
from kiln.backend.sdk.reaper import LedgerEntry


@dataclass
class HelloConfig:
    greeting: str = opt("", required=True, doc="what to write")
    output: str = opt("hello.txt", doc="the file to write it to")

    def check(self) -> None:
        if self.greeting == "goodbye":
            raise ConfigProblems([("greeting", "a hello builder does not say goodbye")])


class WriteGreeting(Step):
    title = "Write greeting"

    def __init__(self, config: HelloConfig):
        self.config = config

    def run(self, ctx: BuildContext) -> None:
        path = os.path.abspath(self.config.output)
        if ctx.ledger is not None:
            ctx.ledger.record("hello-file", path)
        with open(path, "w") as f:
            f.write(self.config.greeting + "\n")
        ctx.ui.say(f"Wrote {self.config.greeting!r} to {path}")
        ctx.state["hello_path"] = path


class HelloBuilder(Builder):
    type_name = "hello"
    builder_id = "example.hello"
    Config = HelloConfig

    def steps(self, ctx: BuildContext) -> list[Step | object]:
        return [WriteGreeting(self.config), PROVISION]

    def artifact(self, ctx: BuildContext) -> Artifact | None:
        return Artifact(self.builder_id, id="hello", files=[ctx.state["hello_path"]],
                        string=f"the greeting in {ctx.state['hello_path']}")


def reap_file(entry: LedgerEntry) -> None:
    try:
        os.remove(entry.ident)
    except FileNotFoundError:
        pass
