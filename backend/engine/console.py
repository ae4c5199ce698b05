"""Packer-style console output, ``-machine-readable`` lines, and JSON Lines events.

Human output follows Packer 1.6.6 line for line (``==> name: ...`` for Kiln's
own lines, ``    name: ...`` for command output, one colour per build), so CI
scripts written for Packer keep working. Kiln adds a per-build stage timing
table and the log file paths after Packer's summary.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from datetime import datetime
from typing import IO, Any

from backend.template.golang import durafmt

from .events import SCHEMA, Event

COLORS = (32, 36, 35, 33, 34)
RED = 31


class Writer:
    """Serialized writes of text to a binary stream, invalid UTF-8 passed through."""

    def __init__(self, stream: IO[Any] | None = None):
        stream = stream or sys.stdout
        self._buf = getattr(stream, "buffer", None)
        self._text = stream
        self.lock = threading.RLock()

    def write(self, text: str) -> None:
        with self.lock:
            if self._buf is not None:
                self._buf.write(text.encode("utf-8", "surrogateescape"))
                self._buf.flush()
            else:
                self._text.write(text)
                self._text.flush()


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
            self.w.write(text + "\n")

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
                    out.append(self._c(f"{b}: output will be in this color.", self.colors[b])
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
        target = self._target(build, stage)
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
            for line in lines:
                if stream == "stdout":
                    text, code, bold = f"    {target}: {line}", color, False
                elif stream == "ui":
                    text, code, bold = f"==> {target}: {line}", color, True
                else:
                    text, code, bold = f"==> {target}: {line}", RED, True
                parts.append(ts + self._c(text.rstrip(" "), code, bold) + "\n")
        if parts:
            self.w.write("".join(parts))

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
            self.w.write(self._c(text, code) + "\n")

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
            lines.append(f"--> {name}: {r.status} in {r.duration:.2f}s")
            width = max((len(s.name) for s in ran), default=10)
            width = min(width, 60)
            for s in ran:
                nm = s.name if len(s.name) <= 60 else s.name[:57] + "..."
                lines.append(f"      {nm:<{width}}  {s.duration:8.2f}s  {s.status}")
            log = session.log_paths.get(name)
            if log:
                lines.append(f"      log: {log}")
        self.w.write("\n".join(lines) + "\n")


def session_mask(session: Any, build: str, text: str) -> str:
    r = session.runners.get(build)
    return r.mask(text) if r is not None else text


class JsonEventWriter:
    """``--events FILE|-``: every event as one JSON object per line."""

    def __init__(self, stream: IO[str], close: bool = False):
        self.stream = stream
        self._close = close
        self.lock = threading.Lock()

    def __call__(self, ev: Event) -> None:
        d = ev.to_dict()
        if ev.type == "run.started":
            d["schema"] = SCHEMA
        try:
            line = json.dumps(d, ensure_ascii=False)
            line.encode("utf-8")
        except UnicodeEncodeError:  # invalid bytes from a command: keep them as \udcXX escapes
            line = json.dumps(d, ensure_ascii=True)
        with self.lock:
            self.stream.write(line + "\n")
            if ev.type != "output":
                self.stream.flush()

    def close(self) -> None:
        with self.lock:
            self.stream.flush()
            if self._close:
                self.stream.close()
