"""What the dashboard's workers post back to the app, what it keeps of each session, and the
settings its parts share."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from textual.message import Message

from .discovery import (
    ProblemView,
    TemplateEntry,
)
from .model import (
    BuildModel,
    OutputBuffer,
    StageModel,
)


@dataclass
class SessionRecord:
    sid: str
    session: Any  # backend.engine.session.Session
    entry_path: str
    mode: str  # build | null | file
    target: str = ""
    builds: list[str] = field(default_factory=list)  # build keys
    done: bool = False
    unsubscribe: Any = None


class Discovered(Message):
    def __init__(self, entries: list[TemplateEntry]) -> None:
        super().__init__()
        self.entries = entries


class Validated(Message):
    def __init__(self, entry: TemplateEntry) -> None:
        super().__init__()
        self.entry = entry


class LaunchFailed(Message):
    def __init__(
        self, entry_path: str, title: str, problems: list[ProblemView], mode: str = "build"
    ) -> None:
        super().__init__()
        self.entry_path = entry_path
        self.mode = mode
        self.title = title
        self.problems = problems


class HistoryLoaded(Message):
    def __init__(self, rows: list[BuildModel]) -> None:
        super().__init__()
        self.rows = rows


class LogLoaded(Message):
    def __init__(self, key: str, buffer: OutputBuffer, stages: list[StageModel]) -> None:
        super().__init__()
        self.key = key
        self.buffer = buffer
        self.stages = stages


HISTORY_ROWS = 12


SUMMARY_ERROR_LINES = 5  # lines of a multi-line error the sticky summary shows


#: answers a retry asks for when the template changed around the failed provisioner
RETRY_CHOICES = frozenset({"matched", "from-changed"})


#: what removes a kept machine (the engine prints the same command when it keeps one)
KEPT_CLEANUP = "kiln cleanup -all"


BAR_PERIOD = 0.25  # seconds between updates of the output pane's line count while streaming


def _set_title(widget, title: str) -> None:
    if widget.border_title != title:
        widget.border_title = title
