"""Channel plumbing for commands: splicing tunnels, signals, stdin, the remote pid filter,
CRLF feeding."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    pass
from .connect import _close_quietly

CHUNK = 256 * 1024


def _splice(a: Any, b: Any) -> None:
    """Copy bytes both ways between two socket-likes until either side ends."""

    def pump(src: Any, dst: Any) -> None:
        try:
            while True:
                data = src.recv(CHUNK)
                if not data:
                    break
                dst.sendall(data)
        except Exception:  # noqa: BLE001 - either side went away
            pass
        finally:
            _close_quietly(src)
            _close_quietly(dst)

    for src, dst in ((a, b), (b, a)):
        threading.Thread(target=pump, args=(src, dst), name="kiln-ssh-splice", daemon=True).start()


def _send_signal(chan: Any, name: str) -> None:
    """RFC 4254 "signal" request (OpenSSH delivers it only to non-root sessions)."""
    from paramiko.common import cMSG_CHANNEL_REQUEST
    from paramiko.message import Message

    try:
        m = Message()
        m.add_byte(cMSG_CHANNEL_REQUEST)
        m.add_int(chan.remote_chanid)
        m.add_string("signal")
        m.add_boolean(False)
        m.add_string(name)
        chan.transport._send_user_message(m)
    except Exception:  # noqa: BLE001 - best effort
        pass


def _send_stdin(chan: Any, data: bytes) -> None:
    try:
        chan.sendall(data)
        chan.shutdown_write()
    except Exception:  # noqa: BLE001 - the command may exit without reading its input
        pass


class _PidFilter:
    """Takes our ``<tag><pid>`` line out of stdout (it is the first line we wrote)."""

    LIMIT = 64 * 1024

    def __init__(self, tag: str, feed: Callable[[bytes], None]):
        self.tag = tag.encode()
        self.next = feed
        self.pid: int | None = None
        self._buf = b""
        self._done = False

    def feed(self, data: bytes) -> None:
        if self._done:
            self.next(data)
            return
        buf = self._buf + data
        at = buf.find(self.tag)
        if at >= 0 and (at == 0 or buf[at - 1 : at] == b"\n"):
            end = buf.find(b"\n", at)
            if end < 0:
                self._buf = buf
                return
            try:
                self.pid = int(buf[at + len(self.tag) : end])
            except ValueError:
                self.pid = None
            self._done = True
            self._buf = b""
            rest = buf[:at] + buf[end + 1 :]
            if rest:
                self.next(rest)
            return
        if len(buf) > self.LIMIT:  # someone else's output; stop looking
            self._done = True
            self._buf = b""
            self.next(buf)
            return
        self._buf = buf

    def flush(self) -> None:
        if self._buf:
            buf, self._buf = self._buf, b""
            self._done = True
            self.next(buf)


def _crlf_feeder(feed: Callable[[bytes], None]) -> Callable[[bytes], None]:
    """A PTY ends lines with CRLF: turn them into LF (a CR split across chunks included)."""
    held = [b""]

    def f(data: bytes) -> None:
        data = held[0] + data
        if data.endswith(b"\r"):
            held[0], data = b"\r", data[:-1]
        else:
            held[0] = b""
        feed(data.replace(b"\r\n", b"\n"))

    return f
