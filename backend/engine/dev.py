"""``kiln dev TEMPLATE``: build up to the end of the provisioners, keep the container, and
rerun on every save from the first provisioner whose inputs changed.

The template and every local input of every provisioner are watched (watchfiles, the
Rust ``notify`` backend: inotify here, no polling). Changes are debounced: a rerun starts
once nothing changed for ``QUIET`` seconds, or ``MAX_WAIT`` after the first change of a
stream of saves; editor temp files and ``.git``/``.kiln`` never count. Changes that arrive
during a run wait for it and then cause one rerun. Each run is an ordinary cached docker
build, so it starts from the cached image before the first provisioner whose key changed.
``q`` (or Ctrl-C) removes the dev container; a killed ``kiln dev`` leaves it in the ledger
for ``kiln cleanup``.
"""

from __future__ import annotations

import os
import re
import sys
import threading
import time
from collections.abc import Callable, Iterable
from contextlib import ExitStack
from typing import Any

QUIET = 0.5
MAX_WAIT = 3.0

#: editors' swap, backup and lock files: never a reason to rerun
EDITOR_TEMP = re.compile(
    r"(^\.?.*\.sw[a-p]$|^\.?.*\.sw[x-z]$|~$|^\.#|^#.*#$|^4913$|\.kate-swp$|"
    r"___jb_(tmp|old|bak)___$|^\.goutputstream-|\.crswap$|\.tmp$)")
IGNORED_DIRS = frozenset({".git", ".kiln", ".hg", ".svn", "__pycache__"})


def ignored(path: str) -> bool:
    parts = path.replace(os.sep, "/").split("/")
    if any(p in IGNORED_DIRS for p in parts[:-1]) or parts[-1] in IGNORED_DIRS:
        return True
    return bool(EDITOR_TEMP.search(parts[-1]))


class Debouncer:
    """Collects changed paths; ``take`` hands them over once nothing changed for ``quiet``
    seconds, or ``max_wait`` after the first of them (a steady stream still reruns)."""

    def __init__(self, quiet: float = QUIET, max_wait: float = MAX_WAIT,
                 clock: Callable[[], float] = time.monotonic):
        self.quiet = quiet
        self.max_wait = max_wait
        self.clock = clock
        self._lock = threading.Lock()
        self._pending: set[str] = set()
        self._first = 0.0
        self._last = 0.0

    def add(self, paths: Iterable[str]) -> None:
        paths = [p for p in paths if not ignored(p)]
        if not paths:
            return
        now = self.clock()
        with self._lock:
            if not self._pending:
                self._first = now
            self._pending.update(paths)
            self._last = now

    def take(self) -> set[str] | None:
        now = self.clock()
        with self._lock:
            if not self._pending:
                return None
            if now - self._last < self.quiet and now - self._first < self.max_wait:
                return None
            out, self._pending = self._pending, set()
            return out


class Inputs:
    """What a dev session watches: the template (and var files) and each provisioner's
    local inputs, as absolute paths; ``wants(path)`` says whether a change to it counts."""

    def __init__(self, files: Iterable[str], dirs: Iterable[str]):
        self.files = {os.path.abspath(f) for f in files}
        self.dirs = {os.path.abspath(d) for d in dirs}

    def wants(self, path: str) -> bool:
        path = os.path.abspath(path)
        if ignored(path):
            return False
        if path in self.files or path in self.dirs:
            return True
        return any(path.startswith(d.rstrip(os.sep) + os.sep) for d in self.dirs)

    def roots(self) -> list[str]:
        """Directories to watch: each input directory, and the directory of each file
        (editors replace a file by renaming a new one over it)."""
        out: set[str] = set(d for d in self.dirs if os.path.isdir(d))
        for f in self.files:
            parent = os.path.dirname(f)
            while parent and not os.path.isdir(parent):
                parent = os.path.dirname(parent)
            if parent:
                out.add(parent)
        return sorted(out)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Inputs) and (self.files, self.dirs) == (other.files, other.dirs)

    def __len__(self) -> int:
        return len(self.files) + len(self.dirs)


def template_inputs(path: str, options: Any) -> tuple[Inputs, str]:
    """The inputs of ``path`` as the template stands now; with a message when it cannot
    be read (then only the template itself is watched)."""
    from ..template.errors import TemplateError
    from .cachekeys import local_inputs
    from .prepare import Preparer, select_builds
    from .registry import load_template

    files: set[str] = set(options.var_files)
    dirs: set[str] = set()
    if os.path.isdir(path):
        dirs.add(path)
    else:
        files.add(path)
    try:
        template = load_template(path, options, evaluate_data=True)
        prep = Preparer(template, options)
        builds = prep.prepare(select_builds(template, options.only, options.except_))
    except (TemplateError, OSError) as e:
        return Inputs(files, dirs), str(e)
    for b in builds:
        for p in b.provisioners:
            for item in local_inputs(p.definition.type, p.plugin.config):
                (dirs if os.path.isdir(item) else files).add(item)
    return Inputs(files, dirs), ""


class Watcher:
    """A watchfiles thread feeding a :class:`Debouncer` with the changes ``inputs`` wants."""

    def __init__(self, inputs: Inputs, debouncer: Debouncer):
        self.inputs = inputs
        self.debouncer = debouncer
        self.stop_event = threading.Event()
        self.ready = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="kiln-dev-watch", daemon=True)

    def start(self) -> Watcher:
        self.thread.start()
        return self

    def _run(self) -> None:
        import watchfiles

        roots = self.inputs.roots()
        if not roots:
            self.ready.set()
            return
        try:
            gen = watchfiles.watch(*roots, watch_filter=lambda _c, p: self.inputs.wants(p),
                                   debounce=50, step=10, stop_event=self.stop_event,
                                   rust_timeout=200, yield_on_timeout=True,
                                   raise_interrupt=False, recursive=True)
            first = True
            for changes in gen:
                if first:
                    first = False
                    self.ready.set()
                if changes:
                    self.debouncer.add(p for _c, p in changes)
        except BaseException as e:  # reported by the loop
            self.error = e
        finally:
            self.ready.set()

    def stop(self) -> None:
        self.stop_event.set()
        self.thread.join(5)


class KeyReader:
    """``q`` on the terminal (or a line ``q`` on a pipe) asks to stop."""

    def __init__(self, on_quit: Callable[[], None]):
        self.on_quit = on_quit
        self._saved: Any = None
        self.fd = -1

    def start(self) -> None:
        stdin = sys.stdin
        if stdin is None or stdin.closed:
            return
        try:
            self.fd = stdin.fileno()
        except (OSError, ValueError):
            return
        if os.isatty(self.fd):
            import termios
            import tty

            try:
                self._saved = termios.tcgetattr(self.fd)
                tty.setcbreak(self.fd)
            except termios.error:
                self._saved = None
        threading.Thread(target=self._read, name="kiln-dev-keys", daemon=True).start()

    def _read(self) -> None:
        while True:
            try:
                data = os.read(self.fd, 64)
            except OSError:
                return
            if not data:
                return
            if b"q" in data.lower():
                self.on_quit()
                return

    def restore(self) -> None:
        if self._saved is not None:
            import termios

            try:
                termios.tcsetattr(self.fd, termios.TCSADRAIN, self._saved)
            except termios.error:
                pass
            self._saved = None


class DevLoop:
    def __init__(self, path: str, options: Any, out: Callable[[str], None] | None = None,
                 quiet: float = QUIET, max_wait: float = MAX_WAIT):
        self.path = path
        self.options = options
        self.say = out or (lambda text: print(text, flush=True))
        self.debouncer = Debouncer(quiet, max_wait)
        self.quit = threading.Event()
        self.kept: list[tuple[Any, ExitStack]] = []
        self._kept_lock = threading.Lock()
        self.watcher: Watcher | None = None
        self.runs = 0
        self._removing: threading.Thread | None = None
        options.cache = True
        options.dev = self._on_kept

    def _on_kept(self, runner: Any, stack: ExitStack) -> None:
        with self._kept_lock:
            self.kept.append((runner, stack))

    def take_kept(self) -> list[tuple[Any, ExitStack]]:
        with self._kept_lock:
            kept, self.kept = self.kept, []
        return kept

    def remove_containers(self, kept: list[tuple[Any, ExitStack]] | None = None) -> None:
        if kept is None:
            kept = self.take_kept()
        sessions = []
        for runner, stack in reversed(kept):
            try:
                stack.close()
            except Exception as e:  # the ledger still lists it: kiln cleanup retries
                self.say(f"==> dev: could not remove the container of {runner.name}: {e}")
            if runner.session not in sessions:
                sessions.append(runner.session)
        for session in sessions:
            try:
                session.close_held()
            except Exception as e:  # noqa: BLE001
                self.say(f"==> dev: could not remove the run's temporary files: {e}")

    def _watch(self, inputs: Inputs) -> None:
        if self.watcher is not None and self.watcher.inputs == inputs \
                and self.watcher.thread.is_alive():
            return
        if self.watcher is not None:
            self.watcher.stop()
        self.watcher = Watcher(inputs, self.debouncer).start()
        self.watcher.ready.wait(10)

    def build_once(self) -> int:
        """Run one build; a front end says how (the terminal's kiln build, the dashboard's
        session)."""
        raise NotImplementedError


    def stop(self) -> None:
        """End the loop from another thread; ``loop`` then removes the containers."""
        self.quit.set()

    def loop(self) -> int:
        code = 0
        try:
            inputs, problem = template_inputs(self.path, self.options)
            self._watch(inputs)
            while not self.quit.is_set():
                if problem:
                    self.say(f"==> dev: {problem}")
                    code = 1
                else:
                    code = self.build_once()
                    if self.quit.is_set():
                        break
                inputs, problem = template_inputs(self.path, self.options)
                self._watch(inputs)
                self.watching(inputs)
                changed = self._wait_for_change()
                if changed is None:
                    break
                self.changed(changed)
                # the old container goes while the new one starts: a save shows sooner
                self._removing = threading.Thread(target=self.remove_containers,
                                                  args=(self.take_kept(),),
                                                  name="kiln-dev-remove", daemon=True)
                self._removing.start()
        except KeyboardInterrupt:
            pass
        finally:
            if self.watcher is not None:
                self.watcher.stop()
            if self._removing is not None:
                self._removing.join()
            if self.kept:
                self.say("==> dev: removing the dev container")
            self.remove_containers()
        return code

    def watching(self, inputs: Inputs) -> None:
        hints = [r.ctx.access_hint for r, _ in self.kept if r.ctx.access_hint]
        up = f"; the container is up: {hints[0]}" if hints else ""
        self.say(f"==> dev: watching {len(inputs)} input(s) for changes{up}. "
                 "Press q or Ctrl-C to stop (the container is removed).")

    def changed(self, paths: set[str]) -> None:
        self.say(f"==> dev: changed: {describe_changes(paths)}; building again")

    def _wait_for_change(self) -> set[str] | None:
        while not self.quit.is_set():
            batch = self.debouncer.take()
            if batch:
                return batch
            if self.watcher is not None and self.watcher.error is not None:
                raise RuntimeError(f"the file watcher stopped: {self.watcher.error}")
            self.quit.wait(0.02)
        return None


def describe_changes(paths: Iterable[str], start: str | None = None) -> str:
    shown = sorted(os.path.relpath(p, start) for p in paths)
    more = f" and {len(shown) - 5} more" if len(shown) > 5 else ""
    return ", ".join(shown[:5]) + more


def check_builds(path: str, options: Any) -> str:
    """Why ``kiln dev`` cannot work on this template ("" when it can)."""
    from ..template.errors import TemplateError
    from .prepare import select_builds
    from .provcache import CACHED_BUILDERS
    from .registry import load_template

    try:
        template = load_template(path, options, syntax_only=False)
    except TemplateError as e:
        return str(e)
    except OSError as e:
        return f"cannot read {path}: {e.strerror or e}"
    builds = select_builds(template, options.only, options.except_)
    if not builds:
        return "no build selected (-only/-except)"
    other = [f"{b.name} ({b.type})" for b in builds if b.type not in CACHED_BUILDERS]
    if other:
        return ("kiln dev works on docker builds, whose provisioners it can cache and rerun; "
                f"leave these out with -only/-except: {', '.join(other)}")
    return ""
