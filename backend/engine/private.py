"""Files only this user can read: state (logs, history, ledger, events) and temporary files.

State lives in 0700 directories as 0600 files. Temporary files of a run live in one
0700 directory per run, made under the system temp directory with a random name that is
written to the ledger before the directory exists; every file in it is created with
``O_CREAT | O_EXCL | O_NOFOLLOW``, so no name another user planted is ever reused or
followed.
"""

from __future__ import annotations

import os
import secrets
import shutil
import stat
import tempfile
import threading
import weakref
from typing import Any

_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def makedirs_private(path: str) -> str:
    """``mkdir -p`` whose new directories are 0700; an existing directory is left as it is."""
    path = os.path.abspath(path)
    missing = []
    p = path
    while not os.path.isdir(p):
        missing.append(p)
        parent = os.path.dirname(p)
        if parent == p:
            break
        p = parent
    for d in reversed(missing):
        try:
            os.mkdir(d, 0o700)
        except FileExistsError:
            if not os.path.isdir(d):
                raise
    return path


def open_private(path: str, truncate: bool = False, encoding: str | None = "utf-8",
                 **kw: Any):
    """Open ``path`` for writing (append, or truncate), creating it 0600."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC | (os.O_TRUNC if truncate else os.O_APPEND)
    fd = os.open(path, flags, 0o600)
    try:
        if encoding is None:
            return os.fdopen(fd, "wb" if truncate else "ab", **kw)
        return os.fdopen(fd, "w" if truncate else "a", encoding=encoding, **kw)
    except BaseException:
        os.close(fd)
        raise


def touch_private(path: str) -> None:
    """Create ``path`` 0600 if it does not exist (SQLite then keeps that mode for its
    -wal and -shm files)."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600))
    except FileExistsError:
        pass


class PrivateTemp:
    """The temporary directory of one run: 0700, a random name, in the ledger before it exists.

    Every temporary file and directory Kiln makes on this host goes inside it, so another
    local user can neither guess, pre-create, replace nor read any of them. ``close()``
    removes it (so does ``kiln cleanup`` after a ``kill -9``, from the ledger record).
    """

    def __init__(self, ledger: Any = None, run_id: str = "", parent: str | None = None):
        self.ledger = ledger
        self.run_id = run_id
        self._parent = parent
        self._path: str | None = None
        self._entry: int | None = None
        self._lock = threading.Lock()
        self._finalizer: weakref.finalize | None = None

    @property
    def path(self) -> str:
        """The directory (made on first use)."""
        with self._lock:
            if self._path is None:
                self._path = self._make()
            return self._path

    def _make(self) -> str:
        parent = self._parent or tempfile.gettempdir()
        tag = "".join(c for c in self.run_id[:8] if c.isalnum()) or "run"
        for _ in range(100):
            path = os.path.join(parent, f"kiln-{tag}-{secrets.token_hex(8)}")
            entry = self.ledger.record("tempdir", path) if self.ledger is not None else None
            try:
                os.mkdir(path, 0o700)  # fails on anything already there, symlinks included
            except FileExistsError:
                if entry is not None:
                    self.ledger.release(entry)
                continue
            except BaseException:
                if entry is not None:
                    self.ledger.release(entry)
                raise
            self._entry = entry
            # a context nobody closes (a test, a crash in a caller) still leaves nothing behind
            self._finalizer = weakref.finalize(self, shutil.rmtree, path, True)
            return path
        raise FileExistsError(f"cannot make a private temporary directory in {parent}")

    def new_name(self, prefix: str = "kiln-", suffix: str = "") -> str:
        """A fresh path inside the directory (nothing is created)."""
        return os.path.join(self.path, f"{_safe(prefix)}{secrets.token_hex(6)}{_safe(suffix)}")

    def close(self, keep: bool = False) -> None:
        """Remove the directory, or with ``keep`` (a kept machine's key file is inside)
        leave it, marked kept in the ledger for ``kiln cleanup -all``."""
        with self._lock:
            path, self._path = self._path, None
            finalizer, self._finalizer = self._finalizer, None
            entry, self._entry = self._entry, None
        if path is None:
            return
        if keep:
            if finalizer is not None:
                finalizer.detach()
            if entry is not None and self.ledger is not None:
                self.ledger.keep(entry)
            return
        if finalizer is not None:
            finalizer()
        if entry is not None and self.ledger is not None:
            try:
                self.ledger.release(entry)
            except Exception:  # a closed ledger: kiln cleanup finds the (now empty) record
                pass


def create_exclusive(path: str, content: bytes | None, mode: int) -> None:
    """Create ``path`` (it must not exist; a symlink there is not followed) with ``content``."""
    fd = os.open(path, _CREATE, 0o600)
    with os.fdopen(fd, "wb") as f:
        if content:
            f.write(content)
        os.fchmod(f.fileno(), mode)


def _safe(part: str) -> str:
    return part.replace("/", "_").replace("\0", "_")


def owned_by_us(path: str) -> bool:
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return st.st_uid == os.geteuid() and not stat.S_ISLNK(st.st_mode)
