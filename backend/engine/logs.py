"""One log file per build with every line it printed, bytes intact."""

from __future__ import annotations

import os
import re
import threading
import time

from .events import Event
from .private import open_private

_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def log_file_name(build: str) -> str:
    return (_SAFE.sub("_", build) or "build") + ".log"


class BuildLogs:
    """Event subscriber writing ``<dir>/<build>.log``.

    Command output is written exactly as received (ANSI escapes, carriage
    returns and invalid UTF-8 bytes included); Kiln's own lines start with
    ``==> ``, and stage boundaries with ``--- ``.
    """

    #: text of other streams kept back while a long line is still arriving, at most
    HELD_MAX = 16 * 1024 * 1024
    view_name = "the build logs"

    def __init__(self, directory: str, builds: list[str]):
        self.directory = directory
        self.paths = {b: os.path.join(directory, log_file_name(b)) for b in builds}
        self._files: dict[str, object] = {}
        self._lock = threading.Lock()
        self._names: dict[tuple[str, int], str] = {}
        # build -> the (stage, stream) whose last line is still arriving in pieces, and
        # what other streams said meanwhile (written once the line is whole)
        self._open: dict[str, tuple[object, str]] = {}
        self._held: dict[str, list[str]] = {}
        self._held_size: dict[str, int] = {}

    def _file(self, build: str):
        f = self._files.get(build)
        if f is None:
            path = self.paths.get(build) or os.path.join(self.directory, log_file_name(build))
            self.paths[build] = path
            f = open_private(path, errors="surrogateescape", buffering=1 << 16)
            self._files[build] = f
        return f

    def __call__(self, ev: Event) -> None:
        t = ev.type
        if t == "output":
            stream = ev.data["stream"]
            lines = ev.data["lines"]
            build = ev.data["build"]
            partial = bool(ev.data.get("partial"))
            if stream in ("ui", "ui-error"):
                text = "".join(f"==> {x}\n" for x in lines)
            else:
                text = "\n".join(lines) + ("" if partial else "\n")
            with self._lock:
                self._write(build, (ev.data.get("stage"), stream), text, partial)
        elif t == "stage.started":
            self._names[(ev.data["build"], ev.data["stage"])] = ev.data["name"]
            self._line(ev, f"--- {_ts(ev.ts)} stage {ev.data['stage'] + 1} started: {ev.data['name']} ({ev.data['kind']})")
        elif t == "stage.finished":
            if ev.data["status"] == "skipped" and (ev.data["build"], ev.data["stage"]) not in self._names:
                return
            err = f": {ev.data['error']}" if ev.data.get("error") else ""
            self._line(ev, f"--- {_ts(ev.ts)} stage {ev.data['stage'] + 1} {ev.data['status']} after "
                       f"{ev.data['duration']:.3f}s: {ev.data['name']}{err}")
            with self._lock:
                f = self._files.get(ev.data["build"])
                if f is not None:
                    f.flush()
        elif t == "build.started":
            self._line(ev, f"--- {_ts(ev.ts)} build {ev.data['build']} ({ev.data['build_type']}) started")
        elif t == "build.finished":
            err = f": {ev.data['error']}" if ev.data.get("error") else ""
            self._line(ev, f"--- {_ts(ev.ts)} build {ev.data['build']} {ev.data['status']} after "
                       f"{ev.data['duration']:.3f}s{err}")
            with self._lock:
                f = self._files.get(ev.data["build"])
                if f is not None:
                    f.flush()
        elif t == "build.replanned":
            self._line(ev, f"--- {_ts(ev.ts)} re-planned from stage {ev.data['stage'] + 1}")
        elif t == "paused":
            self._line(ev, f"--- {_ts(ev.ts)} paused: {ev.data['prompt']} ({', '.join(ev.data['choices'])})")
        elif t == "answered":
            self._line(ev, f"--- {_ts(ev.ts)} answered: {ev.data['choice']}")

    def _write(self, build: str, source: tuple[object, str] | None, text: str,
               partial: bool = False) -> None:
        """Write ``text``; a long line arriving in pieces stays whole in the file."""
        f = self._file(build)
        opened = self._open.get(build)
        if opened is not None and source != opened:
            held = self._held.setdefault(build, [])
            held.append(text)
            self._held_size[build] = self._held_size.get(build, 0) + len(text)
            if self._held_size[build] <= self.HELD_MAX:
                return
            f.write("\n")  # the line never ended: keep the rest readable
            partial = False
            text = ""
            source = opened
        f.write(text)
        if partial:
            self._open[build] = source  # type: ignore[assignment]
            return
        if opened is not None and source == opened:
            del self._open[build]
            f.write("".join(self._held.pop(build, [])))
            self._held_size.pop(build, None)

    def _line(self, ev: Event, text: str) -> None:
        b = ev.data.get("build")
        if not b:
            return
        with self._lock:
            self._write(b, None, text + "\n")

    def write_raw(self, build: str, text: str) -> None:
        with self._lock:
            self._write(build, None, text if text.endswith("\n") else text + "\n")

    def close(self) -> None:
        with self._lock:
            for build, f in self._files.items():
                if build in self._open:  # the line never ended
                    del self._open[build]
                    try:
                        f.write("\n" + "".join(self._held.pop(build, [])))
                    except OSError:
                        pass
            for f in self._files.values():
                try:
                    f.close()
                except OSError:
                    pass
            self._files.clear()


def _ts(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(t))
