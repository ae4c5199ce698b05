"""The event schema: the status words and one dataclass per event type.

This module is the one place an event's fields are declared. The README's event table and
the JSON Schema file (``events.schema.json`` beside this module) are generated from it:
``python -m kiln.backend.engine.schema --write`` rewrites both, and a test fails when they
or a ``publish`` call in the engine drift from it.

Every event also carries ``type``, ``ts`` (Unix seconds), ``seq`` (per run, from 1) and
``run`` (the run id, also ``PACKER_RUN_UUID``).
"""

from __future__ import annotations

import json
import sys
import typing
from dataclasses import MISSING, dataclass, field, fields
from enum import StrEnum
from pathlib import Path
from typing import Any, ClassVar, Literal

SCHEMA = "kiln.events/1"


class Status(StrEnum):
    """What a build or a stage is doing, or how it ended."""

    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    #: a step, provisioner or post-processor said no
    FAILED = "failed"
    SKIPPED = "skipped"
    #: a docker build reused an earlier build's result of this provisioner
    CACHED = "cached"
    #: cleaning up after a cancel
    CANCELLING = "cancelling"
    #: the user stopped it
    CANCELLED = "cancelled"
    #: Kiln or the infrastructure broke
    CRASHED = "crashed"
    #: waiting for an answer
    PAUSED = "paused"


STATUS_DOCS = {Status.FAILED: "a step said no",
               Status.CACHED: "a docker build reused an earlier build's result of this "
                              "provisioner", Status.CANCELLED: "you stopped it",
               Status.CRASHED: "Kiln or the infrastructure broke",
               Status.PAUSED: "waiting for an answer"}

StageKind = Literal["builder", "provisioner", "post-processor"]
Stream = Literal["ui", "ui-error", "stdout", "stderr"]


def doc(text: str, default: Any = MISSING) -> Any:
    """A field with its description (for the README table and the JSON Schema)."""
    if default is MISSING:
        return field(metadata={"doc": text})
    return field(default=default, metadata={"doc": text})


@dataclass(frozen=True)
class StageInfo:
    index: int = doc("the stage's position in the build, from 0")
    name: str = doc("what the stage is (a step title, `shell-local: echo hi`)")
    kind: StageKind = doc("builder, provisioner or post-processor")
    status: Status = doc("the stage's status")
    source: str = doc("template file:line of a provisioner or post-processor, else empty")


@dataclass(frozen=True)
class StageSummary:
    name: str = doc("the stage's name")
    kind: StageKind = doc("builder, provisioner or post-processor")
    status: Status = doc("how the stage ended")
    duration: float = doc("seconds")


@dataclass(frozen=True)
class RunOptions:
    on_error: str = doc("cleanup, abort, ask or run-cleanup-provisioner")
    parallel_builds: int = doc("0: no limit")
    debug: bool = doc("-debug")
    force: bool = doc("-force")


# -- the events ----------------------------------------------------------------------------


@dataclass(frozen=True)
class RunStarted:
    type: ClassVar[str] = "run.started"
    template: str = doc("the template's path")
    builds: list[str] = doc("the selected builds' names, in order")
    build_types: dict[str, str] = doc("build name -> builder type")
    options: RunOptions = doc("the options that change how the run goes")
    log_dir: str | None = doc("where the build logs are written")
    schema: str = doc(f'`"{SCHEMA}"` (written to -events files)', SCHEMA)


@dataclass(frozen=True)
class BuildStarted:
    type: ClassVar[str] = "build.started"
    build: str = doc("the build's name")
    build_type: str = doc("the builder type")
    stages: list[StageInfo] = doc("the build's stages as planned")


@dataclass(frozen=True)
class StageAdded:
    type: ClassVar[str] = "stage.added"
    build: str = doc("the build's name")
    index: int = doc("the new stage's position")
    name: str = doc("the stage's name")
    kind: StageKind = doc("builder, provisioner or post-processor")
    status: Status = doc("the stage's status")
    source: str = doc("template file:line, else empty")


@dataclass(frozen=True)
class StageStarted:
    type: ClassVar[str] = "stage.started"
    build: str = doc("the build's name")
    stage: int = doc("the stage's index")
    name: str = doc("the stage's name")
    kind: StageKind = doc("builder, provisioner or post-processor")


@dataclass(frozen=True)
class StageStatus:
    type: ClassVar[str] = "stage.status"
    build: str = doc("the build's name")
    stage: int = doc("the stage's index")
    status: Status = doc("the stage's new status (paused while a question waits)")


@dataclass(frozen=True)
class StageFinished:
    type: ClassVar[str] = "stage.finished"
    build: str = doc("the build's name")
    stage: int = doc("the stage's index")
    name: str = doc("the stage's name")
    kind: StageKind = doc("builder, provisioner or post-processor")
    status: Status = doc("how the stage ended")
    duration: float = doc("seconds")
    error: str = doc("why it failed, else empty")


@dataclass(frozen=True)
class Output:
    type: ClassVar[str] = "output"
    build: str = doc("the build's name")
    stage: int | None = doc("the stage's index (null: the build's own lines)")
    stream: Stream = doc("ui, ui-error, stdout or stderr")
    lines: list[str] = doc("the lines, masked")
    partial: bool = doc("only when true: the last line is a piece of a longer line that goes on "
                        "in the next event (lines over 4 MiB come in pieces; the log keeps "
                        "them whole)", False)


@dataclass(frozen=True)
class Progress:
    type: ClassVar[str] = "progress"
    build: str = doc("the build's name")
    stage: int | None = doc("the stage's index")
    message: str = doc("what is going on")
    current: float | None = doc("how far (null when unknown)")
    total: float | None = doc("of how much (null when unknown)")


@dataclass(frozen=True)
class Paused:
    type: ClassVar[str] = "paused"
    build: str = doc("the build's name")
    stage: int | None = doc("the stage that failed")
    prompt: str = doc("the question")
    error: str = doc("what failed")
    choices: list[str] = doc("the answers (retry, skip, cleanup, abort...)")
    details: dict[str, str] = doc("what each choice does, when the word is not enough", None)


@dataclass(frozen=True)
class Answered:
    type: ClassVar[str] = "answered"
    build: str = doc("the build's name")
    stage: int | None = doc("the stage the question was about")
    choice: str = doc("the answer")


@dataclass(frozen=True)
class BuildReplanned:
    type: ClassVar[str] = "build.replanned"
    build: str = doc("the build's name")
    stage: int = doc("the first stage that changed")
    retried: bool = doc("the failed provisioner was found again and is retried")
    reason: str = doc("what the retry found in the template re-read from disk")
    stages: list[StageInfo] = doc("the build's stages from now on")


@dataclass(frozen=True)
class BuildStatus:
    type: ClassVar[str] = "build.status"
    build: str = doc("the build's name")
    status: Status = doc("the build's new status (cancelling while it cleans up)")


@dataclass(frozen=True)
class Resource:
    type: ClassVar[str] = "resource"
    build: str = doc("the build's name (empty: the run's own)")
    action: Literal["created", "released"] = doc("created or released")
    kind: str = doc("what it is (docker-container, aws-instance, tempfile...)")
    ident: str = doc("its id or path")


@dataclass(frozen=True)
class ArtifactMade:
    type: ClassVar[str] = "artifact"
    build: str = doc("the build's name")
    builder_id: str = doc("Packer's builder id of the artifact")
    id: str = doc("the artifact's id")
    files: list[str] = doc("its files")
    string: str = doc("how Packer describes it")


@dataclass(frozen=True)
class BuildFinished:
    type: ClassVar[str] = "build.finished"
    build: str = doc("the build's name")
    status: Status = doc("how the build ended")
    duration: float = doc("seconds")
    error: str = doc("why it failed, else empty")
    kept: bool = doc("its machine was kept (on-error abort)")
    access_hint: str = doc("how to get into the kept machine")
    stages: list[StageSummary] = doc("every stage, how it ended and how long it took")


@dataclass(frozen=True)
class RunFinished:
    type: ClassVar[str] = "run.finished"
    status: Status = doc("how the run ended")
    exit_code: int = doc("kiln build's exit code")
    duration: float = doc("seconds")


@dataclass(frozen=True)
class OutputDropped:
    type: ClassVar[str] = "output.dropped"
    build: str = doc("the build whose output was left out")
    lines: int = doc("how many lines (only with `-events -`, when the reader of standard "
                     "output fell behind; never on the bus; the log has them)")


EVENTS: dict[str, type] = {cls.type: cls for cls in (
    RunStarted, BuildStarted, StageAdded, StageStarted, StageStatus, StageFinished, Output,
    Progress, Paused, Answered, BuildReplanned, BuildStatus, Resource, ArtifactMade,
    BuildFinished, RunFinished, OutputDropped,
)}

#: fields only some events of a type carry
OPTIONAL = {("run.started", "schema"), ("output", "partial"), ("paused", "details")}


# -- generated documents ---------------------------------------------------------------------


def _json_type(tp: Any) -> dict[str, Any]:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is type(None):
        return {"type": "null"}
    if origin is typing.Union or (origin is not None and str(origin) == "<class 'types.UnionType'>"):
        return {"anyOf": [_json_type(a) for a in args]}
    if origin is Literal:
        return {"enum": list(args)}
    if origin is list:
        return {"type": "array", "items": _json_type(args[0])}
    if origin is dict:
        return {"type": "object", "additionalProperties": _json_type(args[1])}
    if tp is Status:
        return {"$ref": "#/$defs/status"}
    if isinstance(tp, type) and hasattr(tp, "__dataclass_fields__"):
        return {"$ref": f"#/$defs/{tp.__name__}"}
    return {str: {"type": "string"}, int: {"type": "integer"}, float: {"type": "number"},
            bool: {"type": "boolean"}}[tp]


def _object(cls: type, event: str | None = None) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    props: dict[str, Any] = {}
    required: list[str] = []
    if event is not None:
        props.update(type={"const": event}, ts={"type": "number"}, seq={"type": "integer"},
                     run={"type": "string"})
        required += ["type", "ts", "seq", "run"]
    for f in fields(cls):
        props[f.name] = {**_json_type(hints[f.name]), "description": f.metadata["doc"]}
        if (event, f.name) not in OPTIONAL:
            required.append(f.name)
    return {"type": "object", "properties": props, "required": required,
            "additionalProperties": False}


def json_schema() -> dict[str, Any]:
    defs: dict[str, Any] = {"status": {"enum": [s.value for s in Status]}}
    for cls in (StageInfo, StageSummary, RunOptions):
        defs[cls.__name__] = _object(cls)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA,
        "title": "Kiln's event stream (kiln build -events FILE), one object per line",
        "oneOf": [{"$ref": f"#/$defs/{name}"} for name in EVENTS],
        "$defs": {**defs, **{name: _object(cls, name) for name, cls in EVENTS.items()}},
    }


def readme_table() -> str:
    rows = ["| type | fields |", "| --- | --- |"]
    for name, cls in EVENTS.items():
        parts = []
        for f in fields(cls):
            optional = " (optional)" if (name, f.name) in OPTIONAL else ""
            parts.append(f"`{f.name}`{optional}: {f.metadata['doc']}")
        rows.append(f"| `{name}` | {'; '.join(parts)} |")
    statuses = ", ".join(f"`{s.value}`" + (f" ({STATUS_DOCS[s]})" if s in STATUS_DOCS else "")
                         for s in Status)
    return "\n".join(rows) + f"\n\nStatuses: {statuses}.\n"


SCHEMA_FILE = Path(__file__).with_name("events.schema.json")
README_BEGIN = "<!-- event table: generated by python -m kiln.backend.engine.schema --write -->\n"
README_END = "<!-- end of the generated event table -->\n"


def schema_text() -> str:
    return json.dumps(json_schema(), indent=2) + "\n"


def readme_with_table(readme: str) -> str:
    start = readme.index(README_BEGIN) + len(README_BEGIN)
    end = readme.index(README_END)
    return readme[:start] + "\n" + readme_table() + "\n" + readme[end:]


def main(argv: list[str]) -> int:
    readme = Path(argv[argv.index("--readme") + 1]) if "--readme" in argv else None
    if "--write" not in argv:
        print(schema_text(), end="")
        return 0
    SCHEMA_FILE.write_text(schema_text())
    if readme is not None:
        readme.write_text(readme_with_table(readme.read_text()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
