"""Paths inside a chroot tree, mounts and what holds them: what the chroot builder, its
communicator and its reapers share.

A source image is untrusted: any of its directories may be a symlink such as
``/etc -> /host/etc``. Every path inside the tree is resolved the way the kernel would
resolve it for a process chrooted there (absolute links restart at the root, ``..``
never climbs above it), so nothing Kiln copies, creates or mounts lands outside the tree.
"""

from __future__ import annotations

import errno
import os
import stat
import subprocess
import time

MAX_LINKS = 40  # what Linux allows on one lookup (ELOOP after that)


class OutsideRoot(OSError):
    """A path in the chroot cannot be resolved safely."""


def resolve_in_root(root: str, path: str, follow_last: bool = True) -> str:
    """The host path of ``path`` as seen inside the chroot at ``root``.

    Symlinks are followed inside the tree only; components that do not exist yet are
    appended as they are (the caller creates them, with :func:`makedirs_in_root`).
    ``follow_last`` False leaves a final symlink itself (to replace or read it)."""
    root = os.path.realpath(root)
    parts = [p for p in path.split("/") if p not in ("", ".")]
    done: list[str] = []
    links = 0
    while parts:
        name = parts.pop(0)
        if name == "..":
            if done:
                done.pop()
            continue
        host = os.path.join(root, *done, name)
        try:
            st = os.lstat(host)
        except FileNotFoundError:
            done.append(name)
            continue
        if stat.S_ISLNK(st.st_mode) and (parts or follow_last):
            links += 1
            if links > MAX_LINKS:
                raise OutsideRoot(errno.ELOOP, f"too many symbolic links resolving {path} "
                                  "in the chroot")
            target = os.readlink(host)
            if target.startswith("/"):
                done = []
            parts = [p for p in target.split("/") if p not in ("", ".")] + parts
            continue
        done.append(name)
    return os.path.join(root, *done)


def makedirs_in_root(root: str, path: str, mode: int = 0o755, _depth: int = 0) -> str:
    """Create directory ``path`` inside the chroot (each level resolved inside the tree);
    returns its host path. A component that is a file, not a directory, is an error."""
    real_root = os.path.realpath(root)
    parts = [p for p in path.split("/") if p not in ("", ".")]
    cur = "/"
    host = real_root
    for name in parts:
        cur = os.path.join(cur, name)
        host = resolve_in_root(root, cur)
        if os.path.isdir(host) and not os.path.islink(host):
            continue
        try:
            os.mkdir(host, mode)
        except FileNotFoundError:
            # a link led to a directory that does not exist yet: make it, in the tree
            if _depth > MAX_LINKS:
                raise OutsideRoot(errno.ELOOP, f"too many symbolic links creating {path}") \
                    from None
            makedirs_in_root(root, os.path.dirname(host[len(real_root):]) or "/", mode,
                             _depth + 1)
            os.mkdir(host, mode)
        except FileExistsError:
            if not os.path.isdir(host) or os.path.islink(host):
                raise NotADirectoryError(errno.ENOTDIR, f"{cur} in the chroot is not a "
                                         "directory", cur) from None
    return host


# --------------------------------------------------------------------------- mounts


def _unescape(field: str) -> str:
    """/proc/self/mountinfo writes space, tab, newline and backslash as octal escapes."""
    out = []
    i = 0
    while i < len(field):
        if field[i] == "\\" and len(field[i + 1:i + 4]) == 3 and field[i + 1:i + 4].isdigit():
            out.append(chr(int(field[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def mounts() -> list[tuple[str, str]]:
    """(mount point, source) of every mount this process sees, in mount order."""
    out = []
    try:
        with open("/proc/self/mountinfo") as f:
            for line in f:
                fields = line.split()
                sep = fields.index("-")
                out.append((_unescape(fields[4]), _unescape(fields[sep + 2])))
    except (OSError, ValueError, IndexError):
        return []
    return out


def mounted_under(path: str) -> list[str]:
    """Mount points at or below ``path``, deepest (latest) first: the order to unmount."""
    path = os.path.realpath(path).rstrip("/") or "/"
    found = [m for m, _src in mounts() if m == path or m.startswith(path + "/")]
    seen: list[str] = []
    for m in reversed(found):
        if m not in seen:
            seen.append(m)
    return seen


def is_mounted(path: str) -> bool:
    real = os.path.realpath(path)
    return any(m == real for m, _src in mounts())


def holders(path: str, limit: int = 10) -> list[str]:
    """``pid N (name)`` of processes whose root, working directory, program or open files
    are at or below ``path``: what keeps a mount busy."""
    prefix = os.path.realpath(path).rstrip("/")
    out: list[str] = []
    me = os.getpid()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        base = f"/proc/{entry}"
        links = [f"{base}/root", f"{base}/cwd", f"{base}/exe"]
        try:
            links += [f"{base}/fd/{fd}" for fd in os.listdir(f"{base}/fd")]
        except OSError:
            pass
        for link in links:
            try:
                target = os.readlink(link)
            except OSError:
                continue
            if target == prefix or target.startswith(prefix + "/"):
                try:
                    with open(f"{base}/comm") as f:
                        name = f.read().strip()
                except OSError:
                    name = "?"
                out.append(f"pid {entry} ({name})")
                break
        if len(out) >= limit:
            break
    return out


class MountBusy(RuntimeError):
    """A mount could not be removed because processes still use it."""


def unmount(path: str, attempts: int = 10, delay: float = 0.2) -> None:
    """Unmount ``path`` if it is mounted; a busy mount raises MountBusy naming its holders.

    A mount that is busy for a moment (a process just exiting) gets a few tries."""
    for attempt in range(attempts):
        if not is_mounted(path):
            return
        r = subprocess.run(["umount", path], capture_output=True, text=True,
                           stdin=subprocess.DEVNULL)
        if r.returncode == 0 or not is_mounted(path):
            return
        if attempt + 1 < attempts:
            time.sleep(delay)
    who = holders(path)
    detail = (r.stderr or r.stdout).strip().splitlines()
    raise MountBusy(f"{path} is still mounted ({detail[-1] if detail else 'umount failed'})"
                    + (f"; held by {', '.join(who)}" if who else "")
                    + ": stop those processes, then run kiln cleanup")


def unmount_tree(path: str) -> None:
    """Unmount everything at or below ``path``, deepest first."""
    errors = []
    for m in mounted_under(path):
        try:
            unmount(m)
        except MountBusy as e:
            errors.append(str(e))
    if errors:
        raise MountBusy("; ".join(errors))
