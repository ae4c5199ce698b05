"""Packer-style console output, ``-machine-readable`` lines, and JSON Lines events.

Human output follows Packer 1.6.6 line for line (``==> name: ...`` for Kiln's
own lines, ``    name: ...`` for command output, one colour per build), so CI
scripts written for Packer keep working. Kiln adds a per-build stage timing
table and the log file paths after Packer's summary.
"""

from __future__ import annotations

import errno
import json
import os
import sys
import threading
import time
from collections import deque
from datetime import datetime
from typing import IO, Any, Callable

from ..template.errors import printable
from ..template.golang import durafmt
from .events import SCHEMA, Event

COLORS = (32, 36, 35, 33, 34)
RED = 31


class Writer:
    """Text to a terminal, a pipe or a file, written by a thread of its own.

    Nothing that renders the build ever waits for whoever reads the output: ``write``
    queues and returns. When more than ``limit`` bytes wait, command output (written
    with ``droppable``) is counted instead of queued, and once the reader has caught up
    ``notice(key, count)`` says what was not shown (the log has it all). Kiln's own
    lines are always queued. A reader that went away (a closed pipe) ends the writing
    quietly (``closed``); another write error (a full disk) is kept in ``error`` and
    later text is discarded. Invalid UTF-8 from commands is passed through as bytes.
    """

    LIMIT = 4 * 1024 * 1024

    def __init__(self, stream: IO[Any] | None = None, limit: int = LIMIT,
                 notice: Callable[[Any, int], str] | None = None):
        stream = stream or sys.stdout
        self.stream = stream
        self._buf = getattr(stream, "buffer", None)
        self._text = stream
        self.limit = limit
        self.notice = notice
        self.closed = False
        self.error: OSError | None = None
        self.dropped_total = 0
        self._q: deque[str] = deque()
        self._queued = 0
        self._writing = False
        self._dropped: dict[Any, int] = {}
        self._gaps: set[Any] = set()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None

    def write(self, text: str, droppable: bool = False, key: Any = None, count: int = 1) -> None:
        if not text:
            return
        with self._cond:
            if self.closed or self.error is not None:
                return
            if droppable and (self._q or self._writing) and self._queued + len(text) > self.limit:
                self._dropped[key] = self._dropped.get(key, 0) + count
                self.dropped_total += count
                if key not in self._gaps:  # where the output stops: the notice goes there
                    self._gaps.add(key)
                    self._q.append(_Gap(key))
                return
            self._q.append(text)
            self._queued += len(text)
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="kiln-console",
                                                daemon=True)
                self._thread.start()
            self._cond.notify_all()

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._q:
                    self._cond.wait()
                item = self._q.popleft()
                if isinstance(item, _Gap):
                    self._gaps.discard(item.key)
                    n = self._dropped.pop(item.key, 0)
                    text = self.notice(item.key, n) if self.notice is not None and n else ""
                    size = 0
                else:
                    text = item
                    size = len(item)
                self._writing = True
            try:
                if text:
                    self._write_now(text)
            except OSError as e:
                with self._cond:
                    if isinstance(e, BrokenPipeError) or e.errno == errno.EPIPE:
                        self.closed = True  # the reader is gone (| head): stop quietly
                    else:
                        self.error = e
                    self._q.clear()
                    self._queued = size
            with self._cond:
                self._writing = False
                self._queued -= size
                self._cond.notify_all()

    def _write_now(self, text: str) -> None:
        if self._buf is not None:
            self._buf.write(text.encode("utf-8", "surrogateescape"))
            self._buf.flush()
        else:
            self._text.write(text)
            self._text.flush()

    def drain(self, timeout: float | None = None) -> bool:
        """Wait until everything queued is written (or cannot be); False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while (self._q or self._writing) and not self.closed and self.error is None:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._cond.wait(left)
        return True


class _Gap:
    """Where output of ``key`` was dropped; written as the writer's notice."""

    __slots__ = ("key",)

    def __init__(self, key: Any):
        self.key = key


def no_color_env() -> bool:
    """PACKER_NO_COLOR or NO_COLOR set to anything but an empty string."""
    return bool(os.environ.get("PACKER_NO_COLOR") or os.environ.get("NO_COLOR"))


def machine_escape(s: str) -> str:
    return s.replace(",", "%!(PACKER_COMMA)").replace("\r", "\\r").replace("\n", "\\n")


def _last_cr(line: str) -> str:
    line = line.rstrip()
    if "\r" in line:
        line = line.rsplit("\r", 1)[1]
    return line


class ConsoleRenderer:
    """Event subscriber that prints what Packer prints."""

    def __init__(self, writer: Writer, *, color: bool = True, machine: bool = False,
                 timestamps: bool = False, debug: bool = False):
        self.w = writer
        # as Packer: -color=false drops the colour set-up ("NAME: output will be in this
        # color."); PACKER_NO_COLOR, and NO_COLOR (no-color.org), only drop the escape codes
        self.color_lines = color and not machine
        self.color = self.color_lines and not no_color_env()
        self.machine = machine
        self.timestamps = timestamps
        self.debug = debug
        self.colors: dict[str, int] = {}
        self.pp_types: dict[tuple[str, int], str] = {}
        self._progress: dict[tuple[str, int], tuple[float, str]] = {}
        #: build -> log file, named when output had to be suppressed
        self.log_paths: dict[str, str] = {}
        self.log_dir = ""
        if writer.notice is None:
            writer.notice = self.suppressed

    # -- formatting ----------------------------------------------------------------
    def _c(self, text: str, code: int, bold: bool = True) -> str:
        if not self.color:
            return text
        return f"\033[{1 if bold else 0};{code}m{text}\033[0m"

    def _ts(self) -> str:
        if not self.timestamps:
            return ""
        # local time in RFC 3339, as Go prints it (an offset of zero is written "Z")
        stamp = datetime.now().astimezone().isoformat(timespec="seconds")
        return stamp.removesuffix("+00:00") + ("Z" if stamp.endswith("+00:00") else "") + ": "

    def _mline(self, target: str, kind: str, *data: str) -> str:
        return ",".join([str(int(time.time())), target, kind, *(machine_escape(d) for d in data)]) + "\n"

    def say_plain(self, text: str, error: bool = False) -> None:
        """A line from the command itself (no build target)."""
        if self.machine:
            self.w.write(self._mline("", "ui", "error" if error else "say", text))
        else:
            self.w.write(printable(text) + "\n")

    def mline(self, target: str, kind: str, *data: str) -> None:
        if self.machine:
            self.w.write(self._mline(target, kind, *data))

    # -- events ----------------------------------------------------------------------
    def __call__(self, ev: Event) -> None:
        t = ev.type
        if t == "output":
            self._output(ev)
        elif t == "run.started":
            builds = ev.data["builds"]
            for i, b in enumerate(builds):
                self.colors[b] = COLORS[i % len(COLORS)]
            if self.machine:
                return
            out = []
            if self.debug:
                out.append("Debug mode enabled. Builds will not be parallelized.\n")
            if self.color_lines:
                for b in builds:
                    out.append(self._c(f"{printable(b)}: output will be in this color.", self.colors[b])
                               + "\n")
                if builds:
                    out.append("\n")
            if out:
                self.w.write("".join(out))
        elif t in ("build.started", "build.replanned"):  # a retry may move later stages
            for st in ev.data["stages"]:
                if st["kind"] == "post-processor":
                    self.pp_types[(ev.data["build"], st["index"])] = st["name"].split(" (")[-1].rstrip(")")
        elif t == "progress":
            key = (ev.data["build"], ev.data["stage"])
            now = time.monotonic()
            last = self._progress.get(key)
            msg = ev.data["message"]
            # Packer prints no progress: a step still reporting it after 5 s gets a line
            # (then one every 5 s), so a long wait shows it is alive and a short one is quiet
            if last is None:
                self._progress[key] = (now, "")
            elif now - last[0] >= 5.0 and msg != last[1]:
                self._progress[key] = (now, msg)
                self._emit_lines(ev.data["build"], ev.data["stage"], "ui", [msg])
        elif t == "build.finished":
            self._build_finished(ev)

    def _target(self, build: str, stage: int | None) -> str:
        pp = self.pp_types.get((build, stage)) if stage is not None else None
        return f"{build} ({pp})" if pp else build

    def _output(self, ev: Event) -> None:
        d = ev.data
        self._emit_lines(d["build"], d.get("stage"), d["stream"], d["lines"])

    def _emit_lines(self, build: str, stage: int | None, stream: str, lines: list[str]) -> None:
        target = printable(self._target(build, stage), False)
        color = self.colors.get(build, COLORS[0])
        ts = self._ts()
        parts = []
        if stream in ("stdout", "stderr"):
            lines = [_last_cr(line) for line in lines]  # empty lines stay, as in Packer 1.6.6
        # as Packer, an empty line has no space after the colon ("    null:")
        if self.machine:
            kind = {"ui": "say", "ui-error": "error", "stdout": "message", "stderr": "error"}[stream]
            prefix = "    " if stream == "stdout" else "==> "
            for line in lines:
                parts.append(self._mline("", "ui", kind,
                                         f"{ts}{prefix}{target}: {line}".rstrip(" ")))
        else:
            if stream in ("ui", "ui-error"):  # Kiln's lines may quote template text
                lines = [printable(line, False) for line in lines]
            for line in lines:
                if stream == "stdout":
                    text, code, bold = f"    {target}: {line}", color, False
                elif stream == "ui":
                    text, code, bold = f"==> {target}: {line}", color, True
                else:
                    text, code, bold = f"==> {target}: {line}", RED, True
                parts.append(ts + self._c(text.rstrip(" "), code, bold) + "\n")
        if parts:
            # a command's output may be dropped when the terminal cannot keep up (the log
            # has it); Kiln's own lines never are
            self.w.write("".join(parts), droppable=stream in ("stdout", "stderr"), key=build,
                         count=len(parts))

    def suppressed(self, build: str, count: int) -> str:
        """The line that replaces output the terminal could not take in time."""
        log = self.log_paths.get(build)
        where = f"; the log has everything: {log}" if log else ""
        text = (f"{count} line{'s' if count != 1 else ''} of output suppressed (the terminal "
                f"did not keep up){where}")
        if self.machine:
            return self._mline("", "ui", "error", f"==> {build}: {text}")
        return self._c(f"==> {build}: {text}", RED) + "\n"

    def _build_finished(self, ev: Event) -> None:
        d = ev.data
        b = d["build"]
        dur = durafmt(d["duration"])
        if d["status"] == "succeeded":
            text, code, kind = f"Build '{b}' finished after {dur}.", self.colors.get(b, COLORS[0]), "say"
        else:
            err = d.get("error") or d["status"]
            text, code, kind = f"Build '{b}' errored after {dur}: {err}", RED, "error"
        if self.machine:
            self.w.write(self._mline("", "ui", kind, text))
        else:
            self.w.write(self._c(printable(text), code) + "\n")

    # -- the end-of-run summary ------------------------------------------------------
    def summary(self, session: Any, result: Any, timings: bool = True) -> None:
        self.say_plain(f"\n==> Wait completed after {durafmt(result.duration)}")
        if result.interrupted:
            self.say_plain("Cleanly cancelled builds after being interrupted.")
        errors = [(n, r) for n, r in result.results.items() if r.status != "succeeded"]
        if errors and not result.interrupted:
            self.mline("", "error-count", str(len(errors)))
            self.say_plain("\n==> Some builds didn't complete successfully and had errors:", error=True)
            for n, r in errors:
                self.mline(n, "error", r.error)
                self.say_plain(f"--> {n}: {r.error}", error=True)
        ok = [(n, r) for n, r in result.results.items() if r.status == "succeeded" and r.artifacts]
        if not result.interrupted:
            if ok:
                self.say_plain("\n==> Builds finished. The artifacts of successful builds are:")
                for n, r in ok:
                    self.mline(n, "artifact-count", str(len(r.artifacts)))
                    for i, a in enumerate(r.artifacts):
                        files = a.files()
                        self.mline(n, "artifact", str(i), "builder-id", a.builder_id)
                        self.mline(n, "artifact", str(i), "id", session_mask(session, n, a.id()))
                        self.mline(n, "artifact", str(i), "string", session_mask(session, n, a.string()))
                        self.mline(n, "artifact", str(i), "files-count", str(len(files)))
                        for j, f in enumerate(files):
                            self.mline(n, "artifact", str(i), "file", str(j), f)
                        self.mline(n, "artifact", str(i), "end")
                        self.say_plain(f"--> {n}: {session_mask(session, n, a.string())}")
            else:
                self.say_plain("\n==> Builds finished but no artifacts were created.")
        if self.machine or not timings:
            return
        self._timings(session)

    def _timings(self, session: Any) -> None:
        if not session.runners:
            return
        lines = ["", "==> Stage timings (Kiln):"]
        for name, runner in session.runners.items():
            ran = [s for s in runner.stages if s.status != "pending"]
            if not ran:
                continue
            r = runner.result
            lines.append(f"--> {printable(name, False)}: {r.status} in {r.duration:.2f}s")
            # template text: control characters are shown, never sent to the terminal
            names = [printable(s.name, False) for s in ran]
            width = max((len(n) for n in names), default=10)
            width = min(width, 60)
            for s, nm in zip(ran, names, strict=True):
                nm = nm if len(nm) <= 60 else nm[:57] + "..."
                lines.append(f"      {nm:<{width}}  {s.duration:8.2f}s  {s.status}")
            log = session.log_paths.get(name)
            if log:
                lines.append(f"      log: {log}")
        self.w.write("\n".join(lines) + "\n")


def session_mask(session: Any, build: str, text: str) -> str:
    r = session.runners.get(build)
    return r.mask(text) if r is not None else text


class JsonEventWriter:
    """``--events FILE|-``: every event as one JSON object per line.

    A file gets every event as it happens. Standard output goes through a
    :class:`Writer`, so a slow reader never holds the build up: when it falls behind,
    output and progress events are dropped and an ``output.dropped`` event (``build``,
    ``lines``) says so; every other event is always written.
    """

    view_name = "the events file"

    def __init__(self, stream: IO[str] | None = None, close: bool = False,
                 writer: Writer | None = None):
        self.stream = stream
        self.writer = writer
        self._close = close
        self.lock = threading.Lock()
        self._run = ""
        if writer is not None:
            writer.notice = self._dropped

    def __call__(self, ev: Event) -> None:
        d = ev.to_dict()
        self._run = ev.run
        if ev.type == "run.started":
            d["schema"] = SCHEMA
        line = _json_line(d)
        if self.writer is not None:
            lines = len(ev.data.get("lines", ())) if ev.type == "output" else 0
            self.writer.write(line + "\n", droppable=ev.type in ("output", "progress"),
                              key=ev.data.get("build", ""), count=lines)
            return
        with self.lock:
            self.stream.write(line + "\n")
            if ev.type != "output":
                self.stream.flush()

    def _dropped(self, build: Any, lines: int) -> str:
        return _json_line({"type": "output.dropped", "ts": round(time.time(), 6), "seq": 0,
                           "run": self._run, "build": build, "lines": lines}) + "\n"

    def close(self) -> None:
        if self.stream is None:
            return
        with self.lock:
            try:
                self.stream.flush()
            finally:
                if self._close:
                    try:
                        self.stream.close()
                    except OSError:
                        pass


def _json_line(d: dict[str, Any]) -> str:
    try:
        line = json.dumps(d, ensure_ascii=False)
        line.encode("utf-8")
    except UnicodeEncodeError:  # invalid bytes from a command: keep them as \udcXX escapes
        line = json.dumps(d, ensure_ascii=True)
    return line
