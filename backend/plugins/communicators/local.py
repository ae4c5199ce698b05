"""Run processes on this host: the local communicator and shell-local's runner."""

from __future__ import annotations

import os
import selectors
import shutil
import signal
import stat
import subprocess
import tempfile
import threading
import time
from typing import Any, Callable, Iterable, Sequence

from ...sdk.communicator import Communicator, CommunicatorError, LineSplitter, OutputFn
from ...sdk.process import SPAWN_LOCK, process_start

KILL_GRACE = 3.0  # seconds between SIGTERM and SIGKILL on cancel



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
    ledger: Any = None,
) -> int:
    """Start ``argv`` in its own process group, stream its output, return its exit code.

    On cancel the whole group gets SIGTERM, then SIGKILL after a grace period,
    so nothing the command started is left running. Negative return codes are
    mapped to 128+signal as a shell would report them. With a ``ledger`` the group
    is recorded while it runs, so ``kiln cleanup`` stops it if Kiln is killed.
    ``argv`` given as one string runs through ``/bin/sh -c`` (``shell`` says so too).
    """
    command = ["/bin/sh", "-c", argv] if isinstance(argv, str) else list(argv)
    if ledger is not None:
        # Nothing may run before it is in the ledger, or a kill -9 of Kiln in between would
        # leave it running unseen: the command waits for a line on stdin, written once its
        # process group is recorded; if Kiln dies first, stdin ends and it never starts.
        _check_runnable(command[0], env, cwd)
        popen_argv: list[str] = ["/bin/sh", "-c", 'read _ && exec "$@"', "kiln", *command]
    else:
        popen_argv = command
    try:
        with SPAWN_LOCK:
            proc = subprocess.Popen(
                popen_argv,
                stdin=subprocess.PIPE if stdin is not None or ledger is not None
                else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=env,
                cwd=cwd,
                start_new_session=True,
            )
    except OSError as e:
        raise CommunicatorError(f"cannot start {command[0]}: {e.strerror or e}") from e

    def kill() -> None:
        _kill_group(proc)

    entry = None
    if ledger is not None:
        try:
            entry = ledger.record("process", str(proc.pid),
                                  data={"start": process_start(proc.pid), "command": _name(argv)})
        except Exception:  # noqa: BLE001 - the command runs anyway; only the record is lost
            entry = None
    unregister = cancel.on_cancel(kill) if cancel is not None else (lambda: None)
    try:
        feed = (b"\n" if ledger is not None else b"") + (stdin or b"")
        if proc.stdin is not None:
            try:
                proc.stdin.write(feed)
                proc.stdin.close()
            except BrokenPipeError:
                pass
        _pump(proc, output, timeout, kill)
        code = proc.wait()
    finally:
        unregister()
        if entry is not None:
            try:
                ledger.release(entry)
            except Exception:  # noqa: BLE001 - kiln cleanup finds a group that is gone
                pass
    return 128 - code if code < 0 else code


def _check_runnable(program: str, env: dict[str, str] | None, cwd: str | None) -> None:
    """The error Popen would give for a program that cannot run (the gate's shell would only
    say "not found" with exit status 127)."""
    if "/" in program:
        path = os.path.join(cwd or ".", program)
        if not os.path.exists(path):
            raise CommunicatorError(f"cannot start {program}: No such file or directory")
        if os.path.isdir(path) or not os.access(path, os.X_OK):
            raise CommunicatorError(f"cannot start {program}: Permission denied")
        return
    search = (env if env is not None else os.environ).get("PATH", os.defpath)
    if shutil.which(program, path=search) is None:
        raise CommunicatorError(f"cannot start {program}: No such file or directory")


def _name(argv: Sequence[str] | str) -> str:
    return (argv if isinstance(argv, str) else " ".join(argv))[:200]


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
    """``communicator: local`` on the null builder: provision this very host.

    This host is shared with other local users, so scripts and staging files go to a
    private 0700 directory of the build by default (``private_folder``), and an upload to
    a directory others can write to (``/tmp``) never reuses or follows a path that is
    already there: it is created exclusively, readable by its owner alone.
    """

    type_name = "local"
    #: upload() sets the mode itself: no separate ``chmod`` through a path that could change
    upload_sets_mode = True

    def __init__(self, shell: str = "/bin/sh", env: dict[str, str] | None = None,
                 private_dir: Callable[[], str] | None = None, ledger: Any = None):
        self.shell = shell
        self.env = env
        self.ledger = ledger
        self._make_private = private_dir
        self._private: str | None = None
        self._owns_private = False
        self._lock = threading.Lock()

    def private_folder(self) -> str:
        with self._lock:
            if self._private is None:
                if self._make_private is not None:
                    self._private = self._make_private()
                else:
                    self._private = tempfile.mkdtemp(prefix="kiln-local-")
                    self._owns_private = True
            return self._private

    def close(self) -> None:
        with self._lock:
            if self._owns_private and self._private:
                shutil.rmtree(self._private, ignore_errors=True)
                self._private = None

    def run(self, command, output, cancel, *, stdin=None, timeout=None) -> int:
        return run_process([self.shell, "-c", command], output, cancel, env=self.env, stdin=stdin,
                           timeout=timeout, ledger=self.ledger)

    def upload(self, dst: str, src: str | bytes, mode: int | None = None) -> None:
        try:
            parent = os.path.dirname(os.path.abspath(dst))
            os.makedirs(parent, exist_ok=True)
            if isinstance(src, (bytes, bytearray)):
                want = 0o644 if mode is None else mode
            else:
                want = stat.S_IMODE(os.stat(src).st_mode) if mode is None else mode
            if shared_directory(parent):
                fd = _create_in_shared(dst)
                want &= 0o700  # others could read secrets in it, or change it before it runs
            else:
                fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
            with os.fdopen(fd, "wb") as f:
                if isinstance(src, (bytes, bytearray)):
                    with SPAWN_LOCK:  # a script: no child may inherit it open for writing
                        f.write(src)
                        f.flush()
                        os.fchmod(f.fileno(), want)
                else:
                    with open(src, "rb") as s:
                        shutil.copyfileobj(s, f, 1 << 20)
                    os.fchmod(f.fileno(), want)
        except OSError as e:
            raise CommunicatorError(f"upload to {dst} failed: {e.strerror or e}") from e

    def upload_dir(self, dst: str, src: str, exclude: Iterable[str] = ()) -> None:
        # rsync rules: "src/" copies the contents into dst, "src" copies the directory itself
        target = dst if src.endswith("/") else os.path.join(dst, os.path.basename(src.rstrip("/")))
        try:
            target = os.path.abspath(target)
            parent = os.path.dirname(target)
            os.makedirs(parent, exist_ok=True)
            if shared_directory(parent):
                # made here and now, so nobody else's files or links are inside it
                _refuse_existing(target)
                os.mkdir(target, 0o700)
            elif os.path.isdir(target) and shared_directory(target):
                raise CommunicatorError(
                    f"upload to {target} refused: other users can write to that directory; "
                    "upload into a directory only you can write to")
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


class SharedPathRefused(CommunicatorError):
    """A path in a directory other users can write to already exists; retrying cannot help."""

    retryable = False


def _refuse_existing(path: str) -> None:
    if os.path.lexists(path):
        raise SharedPathRefused(
            f"refusing to write {path}: it already exists in a directory other users can "
            "write to, so it may have been planted (a symlink or a file another user can "
            "change); remove it, or leave remote_folder/remote_path unset so Kiln uses a "
            "private directory")


def _create_in_shared(path: str) -> int:
    """A descriptor of the new file ``path``; never an existing file, never through a link."""
    _refuse_existing(path)
    try:
        return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                       0o600)
    except FileExistsError:
        _refuse_existing(path)
        raise


def shared_directory(path: str) -> bool:
    """True when a user other than us (or root) could add, replace or change entries of
    ``path``: it, or a directory on the way to it, is theirs or writable by them (a
    sticky directory such as /tmp protects what is below it, not its own entries)."""
    me = os.geteuid()
    try:
        real = os.path.realpath(path)
        st = os.stat(real)
    except OSError:
        return True
    if st.st_uid not in (0, me) or st.st_mode & 0o022:
        return True
    # a symlink on the way that another user made could point anywhere
    cur = os.path.abspath(path)
    while True:
        try:
            lst = os.lstat(cur)
        except OSError:
            return True
        if stat.S_ISLNK(lst.st_mode) and lst.st_uid not in (0, me):
            return True
        parent = os.path.dirname(cur)
        if parent == cur:
            break
        cur = parent
    cur = os.path.dirname(real)
    while True:
        try:
            ast = os.stat(cur)
        except OSError:
            return True
        if ast.st_uid not in (0, me):
            return True
        if ast.st_mode & 0o022 and not ast.st_mode & stat.S_ISVTX:
            return True
        parent = os.path.dirname(cur)
        if parent == cur:
            return False
        cur = parent
