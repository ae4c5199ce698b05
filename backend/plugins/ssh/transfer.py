"""File transfers over SSH: scp (send and receive, as OpenSSH's scp speaks it) and sftp
helpers."""

from __future__ import annotations

import fnmatch
import os
import posixpath
import shlex
import stat
from typing import TYPE_CHECKING, Any, BinaryIO, Callable, Iterable

from ...sdk.communicator import (
    CommunicatorError,
)

if TYPE_CHECKING:
    pass
from .channels import CHUNK
from .connect import _describe


def _q(path: str) -> str:
    return shlex.quote(path)


def _glob_quote(pattern: str) -> str:
    """Quote a file-name pattern for the remote shell, leaving * ? [ ] active."""
    out = []
    for ch in pattern:
        out.append(ch if ch in "*?[]" or ch.isalnum() or ch in "._-+,@%=:" else "\\" + ch)
    return "".join(out)


def _excluded(name: str, exclude: list[str]) -> bool:
    return any(fnmatch.fnmatch(name, p) for p in exclude)


def _transfer_error(e: BaseException) -> str:
    if isinstance(e, FileNotFoundError) or (isinstance(e, OSError) and e.errno == 2):
        return "no such file or directory"
    if isinstance(e, PermissionError) or (isinstance(e, OSError) and e.errno == 13):
        return "permission denied"
    return _describe(e)


def _read_line(chan: Any) -> bytes:
    buf = bytearray()
    while True:
        c = chan.recv(1)
        if not c:
            raise CommunicatorError("scp: the connection closed unexpectedly")
        if c == b"\n":
            return bytes(buf)
        buf += c


def _recv_exact(chan: Any, n: int, sink: Callable[[bytes], Any] | None = None) -> bytes:
    got = bytearray() if sink is None else None
    left = n
    while left:
        data = chan.recv(min(left, CHUNK))
        if not data:
            raise CommunicatorError("scp: the connection closed in the middle of a file")
        left -= len(data)
        if sink is None:
            got += data  # type: ignore[operator]
        else:
            sink(data)
    return bytes(got) if got is not None else b""


def _scp_ack(chan: Any) -> None:
    c = chan.recv(1)
    if c == b"\0":
        return
    if not c:
        err = _stderr_text(chan)
        hint = "the remote scp ended without answering (is scp installed on the machine?)"
        raise CommunicatorError(f"scp: {err or hint}")
    msg = _read_line(chan).decode("utf-8", "replace").strip()
    raise CommunicatorError(msg.removeprefix("scp: ") if msg else "scp failed")


def _stderr_text(chan: Any) -> str:
    out = b""
    try:
        while chan.recv_stderr_ready():
            out += chan.recv_stderr(65536)
    except Exception:  # noqa: BLE001
        pass
    return out.decode("utf-8", "replace").strip()


def _scp_finish(chan: Any) -> None:
    chan.shutdown_write()
    status = chan.recv_exit_status()
    if status not in (0, -1):
        err = _stderr_text(chan)
        raise CommunicatorError(f"scp exited with status {status}{': ' + err if err else ''}")


def _check_name(name: str) -> None:
    if "\n" in name or "/" in name or not name:
        raise CommunicatorError(f"scp cannot transfer a file named {name!r}")


def _scp_time(chan: Any, mtime: float) -> None:
    chan.sendall(f"T{int(mtime)} 0 {int(mtime)} 0\n".encode())
    _scp_ack(chan)


def _scp_send_file(chan: Any, name: str, f: BinaryIO, size: int, mode: int, mtime: float) -> None:
    _check_name(name)
    _scp_time(chan, mtime)
    chan.sendall(f"C{mode & 0o7777:04o} {size} {name}\n".encode("utf-8", "surrogateescape"))
    _scp_ack(chan)
    left = size
    while left > 0:
        chunk = f.read(min(CHUNK, left))
        if not chunk:
            raise CommunicatorError(f"{name} became shorter while it was being uploaded")
        chan.sendall(chunk)
        left -= len(chunk)
    chan.sendall(b"\0")
    _scp_ack(chan)


def _scp_send_children(chan: Any, path: str, exclude: list[str]) -> None:
    for entry in sorted(os.scandir(path), key=lambda e: e.name):
        if _excluded(entry.name, exclude):
            continue
        full = os.path.join(path, entry.name)
        try:
            st = os.stat(full)  # follows symlinks, like scp
        except OSError:
            continue  # a dangling link
        if stat.S_ISDIR(st.st_mode):
            _scp_send_dir(chan, full, entry.name, exclude)
        elif stat.S_ISREG(st.st_mode):
            with open(full, "rb") as f:
                _scp_send_file(
                    chan, entry.name, f, st.st_size, stat.S_IMODE(st.st_mode), st.st_mtime
                )


def _scp_send_dir(chan: Any, path: str, name: str, exclude: list[str]) -> None:
    _check_name(name)
    st = os.stat(path)
    _scp_time(chan, st.st_mtime)
    chan.sendall(f"D{stat.S_IMODE(st.st_mode):04o} 0 {name}\n".encode("utf-8", "surrogateescape"))
    _scp_ack(chan)
    _scp_send_children(chan, path, exclude)
    chan.sendall(b"E\n")
    _scp_ack(chan)


class _ScpReceiver:
    """The receiving side of ``scp -f``: files and directory records into ``dst``."""

    def __init__(
        self,
        chan: Any,
        dst: str,
        single_file: bool,
        contents: bool = False,
        exclude: Iterable[str] = (),
    ):
        self.chan = chan
        self.dst = dst
        self.single = single_file
        self.contents = contents
        self.exclude = list(exclude)
        self.stack: list[str] = []
        self.skip_depth = 0

    def run(self) -> None:
        chan = self.chan
        chan.sendall(b"\0")
        mtime: float | None = None
        dir_times: list[tuple[str, float | None]] = []
        got_any = False
        while True:
            first = chan.recv(1)
            if not first:
                break
            if first in (b"\x01", b"\x02"):
                msg = _read_line(chan).decode("utf-8", "replace").strip()
                raise CommunicatorError(msg.removeprefix("scp: ") or "scp failed")
            line = (first + _read_line(chan)).decode("utf-8", "surrogateescape")
            kind = line[0]
            if kind == "T":
                mtime = float(line[1:].split()[0])
                chan.sendall(b"\0")
                continue
            if kind == "E":
                path, t = dir_times.pop()
                if path and t is not None:
                    os.utime(path, (t, t))
                if self.skip_depth:
                    self.skip_depth -= 1
                else:
                    self.stack.pop()
                chan.sendall(b"\0")
                continue
            if kind not in "CD":
                raise CommunicatorError(f"scp: unexpected reply {line[:60]!r}")
            mode_s, size_s, name = line[1:].split(" ", 2)
            mode, size = int(mode_s, 8), int(size_s)
            if "/" in name or name in ("..",):
                raise CommunicatorError(f"scp: refusing the unsafe name {name!r}")
            skipping = self.skip_depth > 0 or _excluded(name, self.exclude)
            if kind == "D":
                if skipping:
                    self.skip_depth += 1
                    dir_times.append(("", None))
                else:
                    if not self.stack and self.contents:
                        path = self.dst
                    else:
                        path = os.path.join(self.stack[-1] if self.stack else self.dst, name)
                    os.makedirs(path, exist_ok=True)
                    os.chmod(path, mode | 0o700)  # we must be able to write inside it
                    self.stack.append(path)
                    dir_times.append((path, mtime))
                mtime = None
                chan.sendall(b"\0")
                continue
            # a file
            if self.single:
                path = self.dst
            else:
                path = os.path.join(self.stack[-1] if self.stack else self.dst, name)
            chan.sendall(b"\0")
            if skipping:
                _recv_exact(chan, size, lambda _d: None)
            else:
                with open(path, "wb") as f:
                    _recv_exact(chan, size, f.write)
                _apply_attrs(path, mode, mtime)
            _scp_ack(chan)
            chan.sendall(b"\0")
            mtime = None
            got_any = True
        chan.shutdown_write()
        status = chan.recv_exit_status()
        if status not in (0, -1):
            err = _stderr_text(chan)
            raise CommunicatorError(
                err.removeprefix("scp: ") if err else f"scp exited with status {status}"
            )
        if self.single and not got_any:
            raise CommunicatorError("scp sent no file")
        for path, t in dir_times:  # directories left open by a truncated stream
            if path and t is not None:
                os.utime(path, (t, t))


def _apply_attrs(path: str, mode: int | None, mtime: float | None) -> None:
    try:
        if mode is not None:
            os.chmod(path, stat.S_IMODE(mode))
        if mtime is not None:
            os.utime(path, (mtime, mtime))
    except OSError:
        pass


def _sftp_mkdir_p(sftp: Any, path: str) -> None:
    parts = [p for p in path.split("/") if p]
    cur = "/" if path.startswith("/") else ""
    for p in parts:
        cur = posixpath.join(cur, p) if cur else p
        try:
            st = sftp.stat(cur)
            if not stat.S_ISDIR(st.st_mode or 0):
                raise CommunicatorError(f"cannot create {path}: {cur} is not a directory")
        except FileNotFoundError:
            sftp.mkdir(cur)
        except OSError as e:
            if getattr(e, "errno", None) == 2:
                sftp.mkdir(cur)
            else:
                raise
