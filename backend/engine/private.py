"""Files only this user can read: state (logs, history, ledger, events) and temporary files.

State lives in 0700 directories as 0600 files. Temporary files of a run live in one
0700 directory per run, made under the system temp directory with a random name that is
written to the ledger before the directory exists; every file in it is created with
``O_CREAT | O_EXCL | O_NOFOLLOW``, so no name another user planted is ever reused or
followed.
"""

from __future__ import annotations

import os
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
