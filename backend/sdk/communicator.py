"""The communicator interface and the output plumbing every implementation shares.

A communicator runs commands on the machine being built, streaming stdout and
stderr as lines, and copies files and directories to and from it. The local,
docker and ssh communicators differ only in how they start a command, feed
bytes and report the exit status; line splitting, decoding and cancellation
live here once.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Callable, Iterable

if TYPE_CHECKING:
    from .cancel import CancelToken

#: exit status reported when the connection dropped mid-command (Packer's value)
DISCONNECTED = 2300218

OutputFn = Callable[[str, list[str]], None]  # (stream, lines)


class CommunicatorError(Exception):
    """The communicator could not do what was asked (as opposed to a command failing)."""


class LineSplitter:
    """Turns byte chunks of one stream into complete text lines.

    Bytes are decoded as UTF-8 with ``surrogateescape`` so invalid bytes survive
    to the log file unchanged. Carriage returns are kept; the console shows only
    the text after the last one, the log keeps everything. A line longer than
    ``max_line`` without a newline is passed on in pieces; when ``emit`` takes
    ``partial=True`` (it has ``accepts_partial``), each piece says the line goes
    on, so the log can keep the line whole.
    """

    __slots__ = ("stream", "emit", "_buf", "max_line", "_partial")

    def __init__(self, stream: str, emit: OutputFn, max_line: int = 4 * 1024 * 1024):
        self.stream = stream
        self.emit = emit
        self._buf = b""
        self.max_line = max_line
        self._partial = bool(getattr(emit, "accepts_partial", False))

    def feed(self, data: bytes) -> None:
        if not data:
            return
        buf = self._buf + data if self._buf else data
        cut = buf.rfind(b"\n")
        if cut < 0:
            if len(buf) > self.max_line:  # a very long line without newline: pass it on
                end = _utf8_boundary(buf)
                self._buf = buf[end:]
                self._send([buf[:end].decode("utf-8", "surrogateescape")], True)
            else:
                self._buf = buf
            return
        self._buf = buf[cut + 1 :]
        text = buf[:cut].decode("utf-8", "surrogateescape")
        self._send(text.split("\n"), False)

    def _send(self, lines: list[str], partial: bool) -> None:
        if partial and self._partial:
            self.emit(self.stream, lines, partial=True)  # type: ignore[call-arg]
        else:
            self.emit(self.stream, lines)

    def flush(self) -> None:
        if self._buf:
            buf, self._buf = self._buf, b""
            self._send([buf.decode("utf-8", "surrogateescape")], False)


def _utf8_boundary(buf: bytes) -> int:
    """Where to cut ``buf`` so that no UTF-8 character is split (its end if none is)."""
    i = len(buf) - 1
    while i >= 0 and len(buf) - i <= 3 and buf[i] & 0xC0 == 0x80:
        i -= 1
    if i >= 0 and buf[i] >= 0xC0:
        need = 2 if buf[i] < 0xE0 else 3 if buf[i] < 0xF0 else 4
        if len(buf) - i < need:
            return i
    return len(buf)


class Communicator(ABC):
    """How provisioners reach the machine."""

    type_name: str = ""

    @abstractmethod
    def run(
        self,
        command: str,
        output: OutputFn,
        cancel: CancelToken,
        *,
        stdin: bytes | None = None,
        timeout: float | None = None,
    ) -> int:
        """Run ``command`` through the machine's shell; stream lines; return the exit status."""

    @abstractmethod
    def upload(self, dst: str, src: str | bytes, mode: int | None = None) -> None:
        """Copy a local file (path) or ``bytes`` to ``dst`` on the machine."""

    @abstractmethod
    def upload_dir(self, dst: str, src: str, exclude: Iterable[str] = ()) -> None:
        """Copy a local directory. ``src`` ending in ``/`` copies its contents (rsync rules)."""

    @abstractmethod
    def download(self, src: str, dst: str) -> None:
        """Copy a file from the machine to the local path ``dst``."""

    def download_dir(self, src: str, dst: str, exclude: Iterable[str] = ()) -> None:
        raise CommunicatorError(f"downloading directories is not supported by the {self.type_name} communicator")

    def close(self) -> None:  # noqa: B027 - optional hook
        pass

    def private_folder(self) -> str | None:
        """A directory on the machine that only this build can reach, for scripts and
        staging files, when the machine is shared with other users (this host); None
        means Packer's default paths (``/tmp``) are used."""
        return None

    def connection_data(self) -> dict[str, str]:
        """Generated data for provisioners (Host, Port, User, ConnType...)."""
        return {"ConnType": self.type_name}

    def access_hint(self) -> str:
        """A command the user can type to get into the machine, if there is one."""
        return ""


class NoMachineError(CommunicatorError):
    """The build has no machine to talk to; retrying cannot help."""

    retryable = False


class NoneCommunicator(Communicator):
    """``communicator: none``: commands 'succeed' without running; files fail.

    Packer's shell provisioner retries its upload here for five minutes; Kiln
    fails at once and says why.
    """

    type_name = "none"
    _HINT = ("the build has no machine (communicator \"none\"); use shell-local, or set "
             "\"communicator\": \"local\" to run on this host")

    def run(self, command, output, cancel, *, stdin=None, timeout=None) -> int:
        return 0

    def upload(self, dst, src, mode=None) -> None:
        raise NoMachineError(f"cannot upload to {dst}: {self._HINT}")

    def upload_dir(self, dst, src, exclude=()) -> None:
        raise NoMachineError(f"cannot upload to {dst}: {self._HINT}")

    def download(self, src, dst) -> None:
        raise NoMachineError(f"cannot download {src}: {self._HINT}")

    def download_dir(self, src, dst, exclude=()) -> None:
        raise NoMachineError(f"cannot download {src}: {self._HINT}")

    def connection_data(self) -> dict[str, str]:
        return {}


class MockCommunicator(NoneCommunicator):
    """The file builder's communicator: everything 'succeeds', nothing happens."""

    type_name = "mock"

    def upload(self, dst, src, mode=None) -> None:
        return None

    def upload_dir(self, dst, src, exclude=()) -> None:
        return None

    def download(self, src, dst) -> None:
        return None

    def download_dir(self, src, dst, exclude=()) -> None:
        return None
