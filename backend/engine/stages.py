"""What a build is made of and how it ends: stages, the result, the failure a step raises."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from ..sdk.communicator import CommunicatorError
from ..sdk.plugin import Artifact, Cancelled, StepError
from .schema import Status

#: the choices offered when a provisioner fails with -on-error=ask
CHOICES = ("retry", "skip", "cleanup", "abort")


@dataclass
class Stage:
    index: int
    name: str
    kind: str  # builder | provisioner | post-processor | cleanup
    status: str = Status.PENDING
    started: float = 0.0
    duration: float = 0.0
    error: str = ""
    ref: Any = None
    source: str = ""  # template file:line of a provisioner / post-processor

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "name": self.name, "kind": self.kind, "status": self.status,
                "source": self.source}


class BuildFailed(Exception):
    """The build failed; ``keep`` is True when resources are kept on purpose."""

    def __init__(self, message: str, keep: bool = False):
        super().__init__(message)
        self.keep = keep


@dataclass
class BuildResult:
    name: str
    status: str = Status.PENDING
    error: str = ""
    duration: float = 0.0
    artifacts: list[Artifact] = field(default_factory=list)
    kept: bool = False
    access_hint: str = ""
    log_path: str = ""


def _artifact_dict(a: Artifact, mask: Callable[[str], str]) -> dict[str, Any]:
    return {"builder_id": a.builder_id, "id": mask(a.id()), "files": a.files(), "string": mask(a.string())}


def _status_of(e: BaseException) -> str:
    if isinstance(e, Cancelled):
        return Status.CANCELLED
    if isinstance(e, (StepError, CommunicatorError, BuildFailed)):
        return Status.FAILED
    return Status.CRASHED


def _message(e: BaseException) -> str:
    text = str(e)
    return text if text else type(e).__name__
