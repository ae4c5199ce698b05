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

    def __init__(self, directory: str, builds: list[str]):
        self.directory = directory
        self.paths = {b: os.path.join(directory, log_file_name(b)) for b in builds}
        self._files: dict[str, object] = {}
        self._lock = threading.Lock()
        self._names: dict[tuple[str, int], str] = {}

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
            with self._lock:
                f = self._file(ev.data["build"])
                if stream in ("ui", "ui-error"):
                    f.write("".join(f"==> {x}\n" for x in lines))
                else:
                    f.write("\n".join(lines))
                    f.write("\n")
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
        elif t == "paused":
            self._line(ev, f"--- {_ts(ev.ts)} paused: {ev.data['prompt']} ({', '.join(ev.data['choices'])})")
        elif t == "answered":
            self._line(ev, f"--- {_ts(ev.ts)} answered: {ev.data['choice']}")

    def _line(self, ev: Event, text: str) -> None:
        b = ev.data.get("build")
        if not b:
            return
        with self._lock:
            self._file(b).write(text + "\n")

    def write_raw(self, build: str, text: str) -> None:
        with self._lock:
            self._file(build).write(text if text.endswith("\n") else text + "\n")

    def close(self) -> None:
        with self._lock:
            for f in self._files.values():
                try:
                    f.close()
                except OSError:
                    pass
            self._files.clear()


def _ts(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(t))
