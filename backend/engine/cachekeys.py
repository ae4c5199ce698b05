"""Cache keys of provisioners: pure functions from a build's inputs to digests.

The key of provisioner k digests the key of k-1, the provisioner's type, its rendered
configuration and the content of every local file it reads (relative path, mode and bytes;
never mtimes). The first key is the base image's ID plus the builder settings that shape
the container. Each key comes from a *manifest*, a JSON-able description of those inputs,
so that ``kiln cache why`` can show which input changed as a diff of two manifests.

Sensitive values never enter a manifest in plain text: each occurrence is replaced by an
HMAC of the value under a per-machine secret (``machine_secret``), so a changed secret
still changes the key but the key, the manifest and anything stored from them tell nothing.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import hmac
import json
import os
import stat
from typing import Any

#: bump when the manifest's shape changes: old entries then simply miss
KEY_VERSION = 1

#: provisioners whose effect is only on the machine and whose inputs the key can name
CACHEABLE = frozenset({"shell", "file", "ansible", "ansible-local"})

#: builder settings that do not change the container the provisioners run in (what to do
#: with it afterwards, how to log in to a registry, where the docker binary is)
BUILDER_IGNORED = frozenset({
    "commit", "discard", "export_path", "author", "message", "pull", "docker_path", "login",
    "login_server", "login_username", "login_password", "ecr_login", "aws_access_key",
    "aws_secret_key", "aws_token", "aws_profile",
})

#: the files beside an ansible playbook that it reads without naming them
ANSIBLE_BESIDE = ("roles", "group_vars", "host_vars", "library", "module_utils", "filter_plugins",
                  "files", "templates", "vars", "tasks", "handlers", "collections",
                  "ansible.cfg", "requirements.yml")

SECRET_FILE = "cache-secret"
#: files hashed per uploaded directory at most: a key must be bounded work
MAX_FILES = 200_000


class CacheInputError(Exception):
    """An input of a key cannot be read (a directory too large, say)."""


# -- the per-machine secret ------------------------------------------------------------


def machine_secret(state_dir: str) -> bytes:
    """The 32-byte secret under ``state_dir`` (made 0600 on first use, never via a symlink)."""
    os.makedirs(state_dir, mode=0o700, exist_ok=True)
    path = os.path.join(state_dir, SECRET_FILE)
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        fd = -1
    if fd < 0:
        secret = os.urandom(32)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0),
                         0o600)
        except FileExistsError:  # another process made it first: use theirs
            return machine_secret(state_dir)
        try:
            os.write(fd, secret.hex().encode())
        finally:
            os.close(fd)
        return secret
    try:
        st = os.fstat(fd)
        if st.st_mode & 0o077:
            os.fchmod(fd, 0o600)
        data = os.read(fd, 256).decode("ascii", "replace").strip()
    finally:
        os.close(fd)
    try:
        secret = bytes.fromhex(data)
    except ValueError:
        secret = b""
    if len(secret) < 16:
        raise CacheInputError(f"the cache secret {path} is damaged; remove it (the cache then "
                              "starts afresh)")
    return secret


def seal(value: str, secret: bytes) -> str:
    """What stands for a sensitive value in a manifest."""
    return "<sensitive:" + hmac.new(secret, value.encode(), hashlib.sha256).hexdigest()[:24] + ">"


def redact(obj: Any, secrets: list[str], secret: bytes) -> Any:
    """``obj`` with every occurrence of a sensitive value sealed (longest values first)."""
    values = sorted({s for s in secrets if s}, key=len, reverse=True)
    if not values:
        return obj
    seals = {v: seal(v, secret) for v in values}

    def walk(x: Any) -> Any:
        if isinstance(x, str):
            for v in values:
                if v in x:
                    x = x.replace(v, seals[v])
            return x
        if isinstance(x, dict):
            return {walk(k): walk(v) for k, v in x.items()}
        if isinstance(x, list):
            return [walk(v) for v in x]
        return x

    return walk(obj)


# -- configurations ----------------------------------------------------------------------


def plain(value: Any) -> Any:
    """A configuration value as JSON-able data (dataclasses field by field, strings as text)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)
                if not f.name.startswith("_")}
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, str):
        return str(value)
    if value is None or isinstance(value, (bool, int, float)):
        return value
    return str(value)


def builder_settings(config: Any) -> dict[str, Any]:
    """The builder settings that shape the container the provisioners run in."""
    data = plain(config)
    return {k: v for k, v in data.items() if k not in BUILDER_IGNORED}


def base_manifest(image_id: str, builder_type: str, settings: dict[str, Any]) -> dict[str, Any]:
    return {"version": KEY_VERSION, "base_image": image_id, "builder": builder_type,
            "settings": settings}


# -- local inputs ------------------------------------------------------------------------


def uncacheable_reason(ptype: str, config: Any) -> str:
    """Why this provisioner cannot be cached ("" when it can)."""
    if ptype not in CACHEABLE:
        what = {"shell-local": "it runs on this machine, not in the container",
                "breakpoint": "it waits for the user"}.get(ptype, "its inputs are not known")
        return f"{ptype} is never cached: {what}"
    if ptype == "file" and str(getattr(config, "direction", "upload") or "upload") == "download":
        return "a file download is never cached: its result is on this machine"
    if ptype == "file" and getattr(config, "generated", False):
        return "a file with generated = true is never cached: its source is made during the build"
    return ""


def local_inputs(ptype: str, config: Any) -> list[str]:
    """The local files and directories a provisioner reads, as written in its config."""
    get = lambda name: getattr(config, name, None)  # noqa: E731
    paths: list[str] = []

    def add(*values: Any) -> None:
        for v in values:
            if isinstance(v, (list, tuple)):
                add(*v)
            elif isinstance(v, str) and v:
                paths.append(v)

    if ptype == "shell":
        add(get("script"), get("scripts"))
    elif ptype == "file":
        add(get("source"), get("sources"))
    elif ptype == "ansible":
        playbook = get("playbook_file")
        add(playbook, get("galaxy_file"), get("inventory_file"))
        if isinstance(playbook, str) and playbook:
            here = os.path.dirname(playbook) or "."
            add([os.path.join(here, name) for name in ANSIBLE_BESIDE
                 if os.path.lexists(os.path.join(here, name))])
    elif ptype == "ansible-local":
        add(get("playbook_file"), get("playbook_files"), get("playbook_dir"),
            get("playbook_paths"), get("role_paths"), get("collection_paths"), get("group_vars"),
            get("host_vars"), get("inventory_file"), get("galaxy_file"))
    seen: set[str] = set()
    out = []
    for p in paths:
        if p not in seen:
            seen.add(p)
            out.append(p)
    return out


def _file_entry(path: str) -> dict[str, Any]:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return {"mode": oct(stat.S_IMODE(os.stat(path).st_mode)), "sha256": h.hexdigest()}


def describe_path(path: str) -> dict[str, Any]:
    """A file's mode and digest; a directory's files by relative path (walked in order);
    a symlink inside a directory as its target. Never mtimes."""
    try:
        st = os.stat(path)
    except OSError as e:
        return {"missing": e.strerror or str(e)}
    if not stat.S_ISDIR(st.st_mode):
        try:
            return _file_entry(path)
        except OSError as e:
            return {"unreadable": e.strerror or str(e)}
    files: dict[str, Any] = {}
    count = 0
    for root, dirs, names in os.walk(path):
        dirs.sort()
        rel_root = os.path.relpath(root, path)
        for name in sorted(names) + [d for d in dirs if os.path.islink(os.path.join(root, d))]:
            count += 1
            if count > MAX_FILES:
                raise CacheInputError(f"{path} holds more than {MAX_FILES} files; the cache "
                                      "does not hash it (-cache=false builds without it)")
            full = os.path.join(root, name)
            rel = name if rel_root == "." else f"{rel_root}/{name}"
            if os.path.islink(full):
                files[rel] = {"symlink": os.readlink(full)}
                continue
            try:
                files[rel] = _file_entry(full)
            except OSError as e:
                files[rel] = {"unreadable": e.strerror or str(e)}
        rel_dirs = [d for d in dirs if not os.path.islink(os.path.join(root, d))]
        for d in rel_dirs:
            rel = d if rel_root == "." else f"{rel_root}/{d}"
            files[rel + "/"] = {"mode": oct(stat.S_IMODE(os.stat(os.path.join(root, d)).st_mode))}
        dirs[:] = rel_dirs
    return {"mode": oct(stat.S_IMODE(st.st_mode)), "files": files}


def provisioner_manifest(parent_key: str, ptype: str, config: Any,
                         secrets: list[str], secret: bytes) -> dict[str, Any]:
    """Everything provisioner's result depends on, with sensitive values sealed."""
    inputs = {p: describe_path(p) for p in local_inputs(ptype, config)}
    return {"parent": parent_key, "type": ptype,
            "config": redact(plain(config), secrets, secret),
            "inputs": redact(inputs, secrets, secret)}


def digest(manifest: dict[str, Any]) -> str:
    text = json.dumps(manifest, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()


def short(key: str) -> str:
    return key[:12]


def flatten(obj: Any, prefix: str = "") -> list[str]:
    """A manifest as ``path = value`` lines, so that each line of a diff names its input."""
    if isinstance(obj, dict) and obj:
        out: list[str] = []
        for k in sorted(obj):
            out += flatten(obj[k], f"{prefix}.{k}" if prefix and "/" not in k and "." not in k
                           else f"{prefix}[{json.dumps(k)}]" if prefix else str(k))
        return out
    if isinstance(obj, list) and obj:
        out = []
        for i, v in enumerate(obj):
            out += flatten(v, f"{prefix}[{i}]")
        return out
    return [f"{prefix} = {json.dumps(obj)}"]


def manifest_diff(old: dict[str, Any], new: dict[str, Any], label_old: str = "cached",
                  label_new: str = "now") -> list[str]:
    """The lines that differ between two manifests, as a unified diff of their flattened
    forms (the parent key left out: it says only that an earlier step changed)."""
    def lines(m: dict[str, Any]) -> list[str]:
        return flatten({k: v for k, v in m.items() if k != "parent"})

    return list(difflib.unified_diff(lines(old), lines(new), label_old, label_new, lineterm="",
                                     n=0))
