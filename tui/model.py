"""What the dashboard knows about builds: one reducer turns engine events into it.

Only the UI thread touches these objects (the bridge hands events over). Times
are read from the app clock when the UI sees an event, so snapshots with a
fake clock are stable; the engine's own durations are in the logs and history.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from dataclasses import dataclass, field
from itertools import repeat
from typing import Any

#: stream codes kept per line; MARK is the dashboard's own stage separator line
STDOUT, STDERR, UI, UI_ERROR, MARK = 0, 1, 2, 3, 4
STREAMS = {"stdout": STDOUT, "stderr": STDERR, "ui": UI, "ui-error": UI_ERROR}
STREAM_BITS = 3

_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[@-Z\\-_]")
_CTRL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1a\x1c-\x1f\x7f]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")


def clean(line: str) -> str:
    """What a terminal would show of a line: after the last CR, tabs expanded,
    invalid bytes (kept as surrogates by the engine) as U+FFFD, no control
    characters except ESC (ANSI styles are rendered, never interpreted as markup)."""
    if "\r" in line:
        line = line.rstrip("\r")
        cut = line.rfind("\r")
        if cut >= 0:
            line = line[cut + 1 :]
    if "\t" in line:
        line = line.expandtabs(8)
    try:
        line.encode("utf-8")
    except UnicodeEncodeError:
        line = _SURROGATE.sub("\ufffd", line)
    if _CTRL.search(line):
        line = _CTRL.sub("", line)
    return line


def plain(line: str) -> str:
    """The line as text: cleaned, ANSI sequences removed."""
    if "\x1b" in line:
        line = _ANSI.sub("", line)
    return clean(line)


class OutputBuffer:
    """Lines of one build, bounded in memory (the full output is in the build's log file).

    Lines are kept as received (plain ``str``), with a parallel list of codes
    ``(stage + 1) << 3 | stream``; ANSI is converted only for lines on screen.
    Indexes are absolute (line number since the build started) so views keep
    pointing at the same lines when old ones are dropped.
    """

    def __init__(self, max_lines: int = 50_000, wrap_all: bool = False):
        self.lines: list[str] = []
        self.codes: list[int] = []
        self.base = 0  # absolute index of lines[0]
        self.total = 0  # lines ever appended
        self.width = 0  # longest line seen (characters)
        self.max_lines = max_lines
        self.stage_rows: dict[int, list[int]] = {}
        #: lines the view wraps (Kiln's own messages; every line of a text like the welcome):
        #: command output keeps one row per line and scrolls sideways
        self.wrap_all = wrap_all
        self.msg_rows: list[int] = []

    def __len__(self) -> int:
        return len(self.lines)

    def append(self, stage: int | None, stream: int, lines: list[str]) -> None:
        n = len(lines)
        if not n:
            return
        st = -1 if stage is None else stage
        start = self.total
        self.lines.extend(lines)
        self.codes.extend(repeat((st + 1) << STREAM_BITS | stream, n))
        self.rows_of(st).extend(range(start, start + n))
        if self.wrap_all or stream in (UI, UI_ERROR, MARK):
            self.msg_rows.extend(range(start, start + n))
        self.total = start + n
        w = max(map(len, lines))
        if w > self.width:
            self.width = w
        if len(self.lines) > self.max_lines + self.max_lines // 10:
            self.prune()

    def prune(self) -> None:
        drop = len(self.lines) - self.max_lines
        if drop <= 0:
            return
        del self.lines[:drop]
        del self.codes[:drop]
        self.base += drop
        for rows in (*self.stage_rows.values(), self.msg_rows):
            k = bisect_left(rows, self.base)
            if k:
                del rows[:k]

    def rows_of(self, stage: int | None) -> list[int]:
        """Absolute indexes of a stage's lines (the same list object for the buffer's life)."""
        st = -1 if stage is None else stage
        rows = self.stage_rows.get(st)
        if rows is None:
            rows = self.stage_rows[st] = []
        return rows

    def line(self, a: int) -> str:
        return self.lines[a - self.base]

    def code(self, a: int) -> int:
        return self.codes[a - self.base]

    def tail(
        self, stage: int | None, n: int, streams: tuple[int, ...] = (STDOUT, STDERR, UI_ERROR)
    ) -> list[str]:
        """The last ``n`` lines of a stage (plain text) from the given streams."""
        rows = self.rows_of(stage) if stage is not None else range(self.base, self.total)
        out: list[str] = []
        for a in reversed(rows):
            if a < self.base:
                break
            if self.code(a) & 7 in streams:
                out.append(plain(self.line(a)))
                if len(out) >= n:
                    break
        out.reverse()
        return out


@dataclass
class StageModel:
    index: int
    name: str
    kind: str
    status: str = "pending"
    source: str = ""
    started: float | None = None
    ended: float | None = None
    error: str = ""
    expected: float | None = None  # median seconds from history
    progress: tuple[str, float | None, float | None] | None = None
    attempts: int = 0

    def elapsed(self, now: float) -> float | None:
        if self.started is None:
            return None
        end = self.ended if self.ended is not None else now
        return max(0.0, end - self.started)


@dataclass
class BuildModel:
    key: str
    name: str
    session_id: str
    template_path: str
    mode: str = "build"  # build | null | file | history
    target: str = ""  # what a debug run ran on ("this host", "container 8e81a2b3")
    template_name: str = ""  # as the Templates pane shows it
    build_type: str = ""
    status: str = "pending"
    started: float | None = None
    ended: float | None = None
    error: str = ""
    stages: list[StageModel] = field(default_factory=list)
    question: dict[str, Any] | None = None
    kept: bool = False
    access_hint: str = ""
    log_path: str = ""
    run_id: str = ""
    output: OutputBuffer = field(default_factory=OutputBuffer)
    history_ts: float | None = None  # when a history row's run started
    duration: float | None = None  # history rows: duration recorded
    resources: dict[str, str] = field(default_factory=dict)  # ident -> kind, while held
    failed_stage: int | None = None
    db_path: str = ""  # history rows: the history database they came from
    log_requested: bool = False  # history rows: the log is being (or was) read

    @property
    def live(self) -> bool:
        return self.mode != "history" and self.status in (
            "pending",
            "running",
            "cancelling",
            "paused",
        )

    @property
    def label(self) -> str:
        """``retry-test.json › docker``, with where a debug run ran: builds of several
        templates may share a name, and a debug run must not pass for a real build."""
        base = f"{self.template_name} › {self.name}" if self.template_name else self.name
        if self.mode == "null":
            return f"{base} · provisioners on {self.target or 'the null builder'}"
        if self.mode == "file":
            return f"{base} · post-processors on {self.target or 'a stand-in'}"
        if self.mode == "dev":
            return f"{base} · dev" + (f" ({self.target} changed)" if self.target else "")
        return base

    def skipped_provisioners(self) -> int:
        """Provisioners the user skipped (s) in a build that went on."""
        return sum(1 for s in self.stages if s.kind == "provisioner" and s.status == "skipped")

    @property
    def status_words(self) -> str:
        """``succeeded, 1 skipped``: what the build's status word leaves out."""
        if self.status == "succeeded" and (n := self.skipped_provisioners()):
            return f"succeeded, {n} skipped"
        return self.status

    def stage(self, index: int | None) -> StageModel | None:
        if index is None:
            return None
        for st in self.stages:
            if st.index == index:
                return st
        return None

    def current_stage(self) -> StageModel | None:
        for st in self.stages:
            if st.status in ("running", "paused"):
                return st
        if self.failed_stage is not None:
            return self.stage(self.failed_stage)
        return None

    def elapsed(self, now: float) -> float | None:
        if self.duration is not None and self.mode == "history":
            return self.duration
        if self.started is None:
            return None
        end = self.ended if self.ended is not None else now
        return max(0.0, end - self.started)


def _mark(b: BuildModel, stage: int | None, text: str) -> None:
    b.output.append(stage, MARK, [text])


def apply(b: BuildModel, ev, now: float) -> str | None:
    """Apply one engine event to a build. Returns a notable change for the app:
    "failed" (a stage failed), "paused", "finished", "started" or None."""
    t = ev.type
    d = ev.data
    if t == "output":
        b.output.append(d.get("stage"), STREAMS.get(d.get("stream"), STDOUT), d.get("lines") or [])
        return None
    if t == "progress":
        st = b.stage(d.get("stage"))
        if st is not None:
            st.progress = (d.get("message") or "", d.get("current"), d.get("total"))
        return None
    if t == "build.started":
        b.status = "running"
        b.started = now
        b.build_type = d.get("build_type", b.build_type)
        b.stages = [
            StageModel(s["index"], s["name"], s["kind"], source=s.get("source", ""))
            for s in d.get("stages", [])
        ]
        return "started"
    if t == "build.replanned":
        # a retry re-read the template: the stages from d["stage"] on are the new plan
        frm = d["stage"]
        old = {st.index: st for st in b.stages}
        stages = []
        for sd in d.get("stages", []):
            prev = old.get(sd["index"])
            if sd["index"] < frm and prev is not None:
                stages.append(prev)
                continue
            st = StageModel(sd["index"], sd["name"], sd["kind"], status=sd.get("status", "pending"),
                            source=sd.get("source", ""))
            if sd["index"] == frm and d.get("retried") and prev is not None:
                st.attempts = prev.attempts  # the same provisioner, tried again
                st.expected = prev.expected
            stages.append(st)
        b.stages = stages
        b.failed_stage = None  # the build goes on; the engine says how in its next line
        return None
    if t == "stage.added":
        b.stages.append(StageModel(d["index"], d["name"], d["kind"], source=d.get("source", "")))
        return None
    if t == "stage.started":
        st = b.stage(d["stage"])
        if st is None:
            st = StageModel(d["stage"], d.get("name", ""), d.get("kind", ""))
            b.stages.append(st)
        st.name = d.get("name") or st.name  # a retried provisioner shows its edited command
        st.status = "running"
        st.started = now
        st.ended = None
        st.error = ""
        st.attempts += 1
        n = len(b.stages)
        again = f" (attempt {st.attempts})" if st.attempts > 1 else ""
        src = f"  {st.source}" if st.source else ""
        _mark(b, st.index, f"── {st.index + 1}/{n} {st.name}{again}{src}")
        if b.failed_stage == st.index:
            b.failed_stage = None
        return None
    if t == "stage.finished":
        st = b.stage(d["stage"])
        if st is None:
            return None
        st.status = d.get("status", "succeeded")
        st.error = d.get("error") or ""
        if st.started is not None:
            st.ended = now
        if st.status in ("failed", "crashed"):
            b.failed_stage = st.index
            return "failed"
        if b.failed_stage == st.index:  # skipped or retried into success
            b.failed_stage = None
        return None
    if t == "stage.status":
        st = b.stage(d.get("stage"))
        if st is not None:
            st.status = d.get("status", st.status)
        return None
    if t == "build.status":
        b.status = d.get("status", b.status)
        if b.status == "cancelling":
            _mark(b, None, "── cancelling: cleaning up what the build created…")
        return None
    if t == "paused":
        b.question = {k: d.get(k) for k in ("stage", "prompt", "choices", "error", "details")}
        b.status = "paused"
        if d.get("stage") is not None:
            b.failed_stage = d.get("stage")
        return "paused"
    if t == "answered":
        b.question = None
        if b.status == "paused":
            b.status = "running"
        _mark(b, d.get("stage"), f"── answered: {d.get('choice')}")
        return None
    if t == "resource":
        if d.get("action") == "created":
            b.resources[d.get("ident", "")] = d.get("kind", "")
        else:
            b.resources.pop(d.get("ident", ""), None)
        return None
    if t == "build.finished":
        b.status = d.get("status", "failed")
        b.error = d.get("error") or ""
        b.kept = bool(d.get("kept"))
        b.access_hint = d.get("access_hint") or ""
        b.question = None
        b.ended = now
        if b.started is None:
            b.started = now
        end = f"── build {'kept its machine' if b.kept else b.status}"
        if b.error and b.status != "succeeded":
            end += f": {b.error.splitlines()[0][:300]}"
        _mark(b, None, end)
        return "finished"
    return None
