"""Run processes on this host: the local communicator and shell-local's runner."""

from __future__ import annotations

import os
import selectors
import shutil
import signal
import subprocess
import threading
import time
from typing import Iterable, Sequence

from .base import Communicator, CommunicatorError, LineSplitter, OutputFn

KILL_GRACE = 3.0  # seconds between SIGTERM and SIGKILL on cancel

#: Held while a child process is spawned and while a script file is written. A
#: child forked while another thread still has a script open for writing keeps
#: that descriptor until it execs, and running the script then fails with
#: "Text file busy" (ETXTBSY); serialising the two makes that impossible.
SPAWN_LOCK = threading.Lock()


def run_process(
    argv: Sequence[str] | str,
    output: OutputFn,
    cancel,
    *,
    env: dict[str, str] | None = None,
    cwd: str | None = None,
    stdin: bytes | None = None,
    shell: bool = False,
    timeout: float | None = None,
) -> int:
    """Start ``argv`` in its own process group, stream its output, return its exit code.

    On cancel the whole group gets SIGTERM, then SIGKILL after a grace period,
    so nothing the command started is left running. Negative return codes are
    mapped to 128+signal as a shell would report them.
    """
    try:
        with SPAWN_LOCK:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=env,
                cwd=cwd,
                shell=shell,
                start_new_session=True,
            )
    except OSError as e:
        raise CommunicatorError(f"cannot start {argv if isinstance(argv, str) else argv[0]}: {e.strerror or e}") from e

    def kill() -> None:
        _kill_group(proc)

    unregister = cancel.on_cancel(kill) if cancel is not None else (lambda: None)
    try:
        if stdin is not None:
            try:
                proc.stdin.write(stdin)
                proc.stdin.close()
            except BrokenPipeError:
                pass
        _pump(proc, output, timeout, kill)
        code = proc.wait()
    finally:
        unregister()
    return 128 - code if code < 0 else code


def _pump(proc: subprocess.Popen, output: OutputFn, timeout: float | None, kill) -> None:
    sel = selectors.DefaultSelector()
    splitters = {}
    for stream, pipe in (("stdout", proc.stdout), ("stderr", proc.stderr)):
        os.set_blocking(pipe.fileno(), False)
        sel.register(pipe, selectors.EVENT_READ, stream)
        splitters[stream] = LineSplitter(stream, output)
    deadline = time.monotonic() + timeout if timeout else None
    open_pipes = 2
    while open_pipes:
        wait = None if deadline is None else max(0.0, deadline - time.monotonic())
        events = sel.select(wait if wait is None else min(wait, 1.0))
        if deadline is not None and time.monotonic() >= deadline:
            kill()
            deadline = None
        for key, _ in events:
            try:
                data = os.read(key.fileobj.fileno(), 1 << 16)
            except BlockingIOError:
                continue
            if data:
                splitters[key.data].feed(data)
            else:
                sel.unregister(key.fileobj)
                key.fileobj.close()
                splitters[key.data].flush()
                open_pipes -= 1
    sel.close()


def _kill_group(proc: subprocess.Popen) -> None:
    """SIGTERM the process group now, SIGKILL whatever is left after a grace period.

    Returns at once (the SIGKILL comes from a timer), so cancelling many commands
    takes one grace period, not one per command.
    """
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        return

    def finish() -> None:
        try:
            proc.wait(KILL_GRACE)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # anything left in the group
        except (ProcessLookupError, PermissionError):
            pass

    threading.Thread(target=finish, name="kiln-kill", daemon=True).start()


class LocalCommunicator(Communicator):
    """``communicator: local`` on the null builder: provision this very host."""

    type_name = "local"

    def __init__(self, shell: str = "/bin/sh", env: dict[str, str] | None = None):
        self.shell = shell
        self.env = env

    def run(self, command, output, cancel, *, stdin=None, timeout=None) -> int:
        return run_process([self.shell, "-c", command], output, cancel, env=self.env, stdin=stdin, timeout=timeout)

    def upload(self, dst: str, src: str | bytes, mode: int | None = None) -> None:
        try:
            parent = os.path.dirname(dst)
            if parent:
                os.makedirs(parent, exist_ok=True)
            if isinstance(src, (bytes, bytearray)):
                with open(dst, "wb") as f:
                    f.write(src)
            else:
                shutil.copyfile(src, dst)
                shutil.copymode(src, dst)
            if mode is not None:
                os.chmod(dst, mode)
        except OSError as e:
            raise CommunicatorError(f"upload to {dst} failed: {e.strerror or e}") from e

    def upload_dir(self, dst: str, src: str, exclude: Iterable[str] = ()) -> None:
        # rsync rules: "src/" copies the contents into dst, "src" copies the directory itself
        target = dst if src.endswith("/") else os.path.join(dst, os.path.basename(src.rstrip("/")))
        try:
            shutil.copytree(src.rstrip("/") or "/", target, dirs_exist_ok=True, symlinks=True,
                            ignore=shutil.ignore_patterns(*exclude) if exclude else None)
        except (OSError, shutil.Error) as e:
            raise CommunicatorError(f"upload of {src} to {dst} failed: {e}") from e

    def download(self, src: str, dst: str) -> None:
        try:
            shutil.copyfile(src, dst)
        except OSError as e:
            raise CommunicatorError(f"download of {src} failed: {e.strerror or e}") from e

    def download_dir(self, src: str, dst: str, exclude: Iterable[str] = ()) -> None:
        self.upload_dir(dst, src, exclude)

    def connection_data(self) -> dict[str, str]:
        return {"ConnType": "local", "Host": "localhost"}
