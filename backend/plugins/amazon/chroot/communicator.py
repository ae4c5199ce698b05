"""The chroot communicator: provisioners run inside a mounted image tree on this host.

Commands run as ``chroot ROOT /bin/sh -c COMMAND``, passed through the build's
``command_wrapper`` (``{{.Command}}`` is the command, e.g. ``sudo {{.Command}}``). Files are
copied by Kiln itself; every path in the tree is resolved inside it (mounts.resolve_in_root),
so an image whose ``/etc`` is a symlink to a host path cannot make an upload write, or a
download read, outside the tree.
"""

from __future__ import annotations

import os
import shlex
import shutil
import stat
from typing import Any, Callable, Iterable

from ....sdk.communicator import Communicator, CommunicatorError
from ...communicators.local import run_process
from .mounts import OutsideRoot, makedirs_in_root, resolve_in_root

_CHUNK = 1 << 20


class ChrootCommunicator(Communicator):
    type_name = "chroot"
    #: upload() sets the mode itself
    upload_sets_mode = True

    def __init__(self, root: str, wrap: Callable[[str], str] | None = None,
                 ledger: Any = None):
        self.root = os.path.realpath(root)
        self.wrap = wrap or (lambda command: command)
        self.ledger = ledger

    # -- commands -----------------------------------------------------------------
    def chroot_command(self, command: str) -> str:
        return self.wrap(f"chroot {shlex.quote(self.root)} /bin/sh -c {shlex.quote(command)}")

    def run(self, command, output, cancel, *, stdin=None, timeout=None) -> int:
        return run_process(["/bin/sh", "-c", self.chroot_command(command)], output, cancel,
                           stdin=stdin, timeout=timeout, ledger=self.ledger)

    # -- files ----------------------------------------------------------------------
    def _host(self, path: str, follow_last: bool = True) -> str:
        try:
            return resolve_in_root(self.root, path, follow_last=follow_last)
        except OSError as e:
            raise CommunicatorError(f"{path} in the chroot: {e.strerror or e}") from e

    def _parent(self, path: str) -> str:
        parent = os.path.dirname(path.rstrip("/")) or "/"
        try:
            return makedirs_in_root(self.root, parent)
        except OSError as e:
            raise CommunicatorError(f"cannot create {parent} in the chroot: "
                                    f"{e.strerror or e}") from e

    def _open_new(self, host: str, mode: int) -> int:
        """A descriptor to write ``host``; a symlink planted there is never followed."""
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            return os.open(host, flags, mode)
        except OSError as e:
            if e.errno not in (40, 20):  # ELOOP: the final component is a link
                raise
            os.unlink(host)
            return os.open(host, flags | os.O_EXCL, mode)

    def upload(self, dst: str, src: str | bytes, mode: int | None = None) -> None:
        try:
            self._parent(dst)
            host = self._host(dst)
            if os.path.isdir(host) and not os.path.islink(host):
                name = os.path.basename(src) if isinstance(src, str) else ""
                if not name:
                    raise CommunicatorError(f"upload to {dst} failed: it is a directory")
                host = self._host(os.path.join(dst, name))
            if isinstance(src, (bytes, bytearray)):
                want = 0o644 if mode is None else mode
            else:
                want = stat.S_IMODE(os.stat(src).st_mode) if mode is None else mode
            fd = self._open_new(host, 0o600)
            with os.fdopen(fd, "wb") as f:
                if isinstance(src, (bytes, bytearray)):
                    f.write(src)
                else:
                    with open(src, "rb") as s:
                        shutil.copyfileobj(s, f, _CHUNK)
                os.fchmod(f.fileno(), want)
        except CommunicatorError:
            raise
        except OSError as e:
            raise CommunicatorError(f"upload to {dst} failed: {e.strerror or e}") from e

    def upload_dir(self, dst: str, src: str, exclude: Iterable[str] = ()) -> None:
        # rsync rules: "src/" copies the contents into dst, "src" the directory itself
        base = src.rstrip("/") or "/"
        target = dst if src.endswith("/") else os.path.join(dst, os.path.basename(base))
        skip = shutil.ignore_patterns(*exclude) if exclude else None
        try:
            for here, dirs, files in os.walk(base):
                rel = os.path.relpath(here, base)
                inside = target if rel == "." else os.path.join(target, rel)
                makedirs_in_root(self.root, inside)
                ignored = skip(here, dirs + files) if skip else set()
                dirs[:] = [d for d in dirs if d not in ignored
                           and not os.path.islink(os.path.join(here, d))]
                for name in sorted(os.listdir(here)):
                    if name in ignored:
                        continue
                    path = os.path.join(here, name)
                    if os.path.islink(path):
                        link = self._host(os.path.join(inside, name), follow_last=False)
                        if os.path.lexists(link):
                            os.unlink(link)
                        os.symlink(os.readlink(path), link)
                    elif os.path.isfile(path):
                        self.upload(os.path.join(inside, name), path)
        except CommunicatorError:
            raise
        except OSError as e:
            raise CommunicatorError(f"upload of {src} to {dst} failed: {e.strerror or e}") from e

    def download(self, src: str, dst: str) -> None:
        host = self._host(src)
        try:
            fd = os.open(host, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            with os.fdopen(fd, "rb") as s:
                if not stat.S_ISREG(os.fstat(s.fileno()).st_mode):
                    raise CommunicatorError(f"download of {src} failed: not a regular file")
                with open(dst, "wb") as f:
                    shutil.copyfileobj(s, f, _CHUNK)
        except CommunicatorError:
            raise
        except OSError as e:
            raise CommunicatorError(f"download of {src} failed: {e.strerror or e}") from e

    def download_dir(self, src: str, dst: str, exclude: Iterable[str] = ()) -> None:
        base = self._host(src.rstrip("/") or "/")
        target = dst if src.endswith("/") else os.path.join(dst, os.path.basename(
            src.rstrip("/")))
        skip = shutil.ignore_patterns(*exclude) if exclude else None
        try:
            if not os.path.isdir(base) or os.path.islink(base):
                raise CommunicatorError(f"download of {src} failed: not a directory")
            # os.walk does not follow links: a link in the tree is copied as a link
            for here, dirs, files in os.walk(base):
                rel = os.path.relpath(here, base)
                out = target if rel == "." else os.path.join(target, rel)
                os.makedirs(out, exist_ok=True)
                ignored = skip(here, dirs + files) if skip else set()
                dirs[:] = [d for d in dirs if d not in ignored]
                for name in [d for d in dirs if os.path.islink(os.path.join(here, d))]:
                    files.append(name)  # a link to a directory: copied as the link
                for name in files:
                    if name in ignored:
                        continue
                    path = os.path.join(here, name)
                    dest = os.path.join(out, name)
                    if os.path.islink(path):
                        if os.path.lexists(dest):
                            os.unlink(dest)
                        os.symlink(os.readlink(path), dest)
                    elif os.path.isfile(path):
                        self.download(os.path.join(src, os.path.relpath(path, base)), dest)
        except CommunicatorError:
            raise
        except OSError as e:
            raise CommunicatorError(f"download of {src} failed: {e.strerror or e}") from e

    def connection_data(self) -> dict[str, str]:
        return {"ConnType": "chroot", "Host": "localhost"}

    def access_hint(self) -> str:
        return f"chroot {shlex.quote(self.root)} /bin/sh"


__all__ = ["ChrootCommunicator", "OutsideRoot"]
