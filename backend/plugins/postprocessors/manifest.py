"""The manifest post-processor: record each build's artifact in a JSON file.

Every invocation appends one entry to ``builds`` and sets ``last_run_uuid``.
Entries accumulate across runs; with ``-force`` a file written by another run
is started afresh. The file is written the way Packer writes it (two-space
indent, ``<``, ``>`` and ``&`` escaped, no final newline) so tools that read
Packer's manifests read ours.
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass
from typing import Any

from ...sdk.config import opt
from ...sdk.plugin import Artifact, PostProcessor, StepError
from ..shell_local_common import render_runtime

DEFAULT_OUTPUT = "packer-manifest.json"
LOCK_TRIES = 3
LOCK_STEP = 0.2  # seconds; the n-th try waits n * LOCK_STEP

# builds of one Kiln run are threads of one process: the lock file alone would
# let two of them interleave after its few retries, this lock does not
_path_locks: dict[str, threading.Lock] = {}
_path_locks_guard = threading.Lock()


@dataclass
class ManifestConfig:
    output: str = opt(DEFAULT_OUTPUT, doc="path of the manifest file")
    strip_path: bool = opt(False, doc="record file names without their directory")
    strip_time: bool = opt(False, doc="leave build_time out of the entry")
    custom_data: dict[str, str] | None = opt(None, doc="extra key/values; may use the "
                                             "artifact's generated data")

    def path(self) -> str:
        return self.output or DEFAULT_OUTPUT


class ManifestPostProcessor(PostProcessor):
    type_name = "manifest"
    Config = ManifestConfig
    default_keep = (True, True)
    builder_id = "packer.post-processor.manifest"

    config: ManifestConfig

    def post_process(self, ctx, ui, artifact: Artifact) -> Artifact:
        c = self.config
        data = artifact.state("generated_data") or {}
        custom = None
        if c.custom_data is not None:
            custom = {k: render_runtime(ctx, v, data, f"custom_data {k!r}")
                      for k, v in c.custom_data.items()}
        entry = build_entry(artifact, ctx.build_name, ctx.build_type, ctx.run_id,
                            strip_path=c.strip_path, strip_time=c.strip_time, custom=custom)
        update_manifest(c.path(), entry, ctx.run_id, force=bool(getattr(ctx.options, "force",
                                                                          False)))
        return artifact


def build_entry(artifact: Artifact, build_name: str, build_type: str, run_id: str, *,
                strip_path: bool = False, strip_time: bool = False,
                custom: dict[str, str] | None = None, now: float | None = None) -> dict:
    """One ``builds`` item, keys in Packer's order."""
    files = None
    for name in artifact.files():
        try:
            size = os.stat(name).st_size
        except OSError:
            size = 0
        files = (files or []) + [{"name": os.path.basename(name) if strip_path else name,
                                  "size": size}]
    entry: dict[str, Any] = {"name": build_name, "builder_type": build_type}
    build_time = 0 if strip_time else int(now if now is not None else time.time())
    if build_time:
        entry["build_time"] = build_time
    entry["files"] = files
    entry["artifact_id"] = artifact.id()
    entry["packer_run_uuid"] = run_id
    entry["custom_data"] = dict(sorted(custom.items())) if custom is not None else None
    return entry


def update_manifest(path: str, entry: dict, run_id: str, force: bool) -> None:
    """Add ``entry`` to the manifest at ``path`` under its lock file."""
    key = os.path.abspath(path)
    with _path_locks_guard:
        plock = _path_locks.setdefault(key, threading.Lock())
    with plock:
        lock_path = path + ".lock"
        locked = _acquire_lock_file(lock_path)
        try:
            try:
                with open(path, "rb") as f:
                    raw = f.read()
            except FileNotFoundError:
                raw = b""
            except OSError as e:
                raise StepError(f"cannot read the manifest {path}: {e.strerror or e}") from e
            manifest = parse_manifest(raw, path) if raw else {"builds": None,
                                                              "last_run_uuid": ""}
            if force and manifest["last_run_uuid"] != run_id:
                manifest = {"builds": None, "last_run_uuid": ""}
            builds = list(manifest["builds"] or [])
            builds.append(entry)
            text = go_json({"builds": builds, "last_run_uuid": run_id})
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o664)
                with os.fdopen(fd, "wb") as f:
                    f.write(text.encode("utf-8", "surrogateescape"))
            except OSError as e:
                raise StepError(f"cannot write the manifest {path}: {e.strerror or e}") from e
        finally:
            if locked:
                try:
                    os.remove(lock_path)
                except OSError:
                    pass


def _acquire_lock_file(lock_path: str) -> bool:
    """Create the lock file exclusively; after the last try go on without it (as Packer)."""
    for attempt in range(LOCK_TRIES):
        time.sleep(attempt * LOCK_STEP)
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            continue
        except OSError:
            return False
        os.close(fd)
        return True
    return False


# --------------------------------------------------------------------------- reading


_ENTRY_FIELDS = ("name", "builder_type", "build_time", "files", "artifact_id",
                 "packer_run_uuid", "custom_data")


def _field_for(key: str, names: tuple[str, ...]) -> str | None:
    # Go's decoder matches an exact name first, then ignoring case
    if key in names:
        return key
    low = key.lower()
    for n in names:
        if n.lower() == low:
            return n
    return None


def parse_manifest(raw: bytes, path: str) -> dict:
    """Read an existing manifest into Packer's shape: unknown keys dropped, entries
    normalised (so a re-written file has exactly the known fields)."""
    def bad(why: str) -> StepError:
        return StepError(f"cannot parse the manifest {path}: {why}")

    try:
        doc = json.loads(raw.decode("utf-8", "replace"))
    except ValueError as e:
        raise bad(str(e)) from e
    if doc is None:
        return {"builds": None, "last_run_uuid": ""}
    if not isinstance(doc, dict):
        raise bad("the top level is not an object")
    out: dict[str, Any] = {"builds": None, "last_run_uuid": ""}
    for key, value in doc.items():
        field = _field_for(key, ("builds", "last_run_uuid"))
        if field == "last_run_uuid":
            if value is not None and not isinstance(value, str):
                raise bad("last_run_uuid is not a string")
            out[field] = value or ""
        elif field == "builds":
            if value is not None and not isinstance(value, list):
                raise bad("builds is not a list")
            out[field] = None if value is None else [_entry(e, bad) for e in value]
    return out


def _entry(raw: Any, bad) -> dict:
    e: dict[str, Any] = {"name": "", "builder_type": "", "build_time": 0, "files": None,
                         "artifact_id": "", "packer_run_uuid": "", "custom_data": None}
    if raw is None:
        return _ordered(e)
    if not isinstance(raw, dict):
        raise bad("an entry of builds is not an object")
    for key, value in raw.items():
        field = _field_for(key, _ENTRY_FIELDS)
        if field is None or value is None:
            continue
        if field == "build_time":
            if isinstance(value, bool) or not isinstance(value, (int, float)) or \
                    value != int(value):
                raise bad("build_time is not an integer")
            e[field] = int(value)
        elif field == "files":
            if not isinstance(value, list):
                raise bad("files is not a list")
            e[field] = [_file(f, bad) for f in value]
        elif field == "custom_data":
            if not isinstance(value, dict) or not all(isinstance(v, str) or v is None
                                                       for v in value.values()):
                raise bad("custom_data is not an object of strings")
            e[field] = {k: v or "" for k, v in value.items()}
        else:
            if not isinstance(value, str):
                raise bad(f"{field} is not a string")
            e[field] = value
    return _ordered(e)


def _file(raw: Any, bad) -> dict:
    f = {"name": "", "size": 0}
    if raw is None:
        return f
    if not isinstance(raw, dict):
        raise bad("an item of files is not an object")
    for key, value in raw.items():
        field = _field_for(key, ("name", "size"))
        if field is None or value is None:
            continue
        if field == "name":
            if not isinstance(value, str):
                raise bad("a file name is not a string")
            f["name"] = value
        else:
            if isinstance(value, bool) or not isinstance(value, (int, float)) or \
                    value != int(value):
                raise bad("a file size is not an integer")
            f["size"] = int(value)
    return f


def _ordered(e: dict) -> dict:
    out = {"name": e["name"], "builder_type": e["builder_type"]}
    if e["build_time"]:
        out["build_time"] = e["build_time"]
    out["files"] = e["files"]
    out["artifact_id"] = e["artifact_id"]
    out["packer_run_uuid"] = e["packer_run_uuid"]
    out["custom_data"] = dict(sorted(e["custom_data"].items())) \
        if e["custom_data"] is not None else None
    return out


# --------------------------------------------------------------------------- writing


_GO_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t",
               "<": "\\u003c", ">": "\\u003e", "&": "\\u0026",
               "\u2028": "\\u2028", "\u2029": "\\u2029"}


def go_json_string(s: str) -> str:
    """A JSON string as Go's encoder writes it (HTML-safe, other text left as UTF-8)."""
    out = ['"']
    for ch in s:
        esc = _GO_ESCAPES.get(ch)
        if esc is not None:
            out.append(esc)
        elif ch < " " or "\udc80" <= ch <= "\udcff":
            # control characters as \u00XX; undecodable bytes become U+FFFD as in Go
            out.append(f"\\u{ord(ch):04x}" if ch < " " else "\ufffd")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def go_json(value: Any, indent: str = "  ", level: int = 0) -> str:
    """``json.MarshalIndent(value, "", indent)`` for dicts, lists, str, int, bool, None."""
    pad = indent * (level + 1)
    end = indent * level
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, str):
        return go_json_string(value)
    if isinstance(value, dict):
        if not value:
            return "{}"
        items = [f"{pad}{go_json_string(str(k))}: {go_json(v, indent, level + 1)}"
                 for k, v in value.items()]
        return "{\n" + ",\n".join(items) + "\n" + end + "}"
    if isinstance(value, (list, tuple)):
        if not value:
            return "[]"
        items = [pad + go_json(v, indent, level + 1) for v in value]
        return "[\n" + ",\n".join(items) + "\n" + end + "]"
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")
