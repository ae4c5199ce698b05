"""Run one template through Packer 1.6.6 and through Kiln, and list what differs.

Each tool builds in its own fresh copy of the template's directory (so relative
paths in templates resolve the same way) with ``-machine-readable``. What is
compared:

* the exit code;
* the provisioners' and post-processors' command output: the ``ui,message``
  lines (``    <target>: <line>``), per target, in order (builds run in
  parallel, so only the order within one target is fixed);
* which builds reported an error;
* the artifacts each successful build listed (builder id, id, files, string);
* every file the run created or changed in its directory: same set of paths,
  same permission bits, same contents -- archives (tar, zip, and gzip, bgzf,
  xz, bzip2 or lz4 streams) are opened and compared member by member;
  manifests are compared as JSON with ``build_time`` and the run uuids masked.

The work directory's own path is replaced by ``<WORKDIR>`` everywhere, so
output that mentions absolute paths compares equal.
"""

from __future__ import annotations

import bz2
import gzip
import io
import json
import lzma
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]

#: directories the tools keep for themselves; never compared
PRIVATE_DIRS = (".kiln", "packer_cache")

WORKDIR = "<WORKDIR>"


# --------------------------------------------------------------------------- machine-readable


@dataclass(frozen=True)
class MachineLine:
    target: str
    type: str
    data: tuple[str, ...]


def unescape(field_text: str) -> str:
    return (field_text.replace("%!(PACKER_COMMA)", ",").replace("\\n", "\n")
            .replace("\\r", "\r"))


def parse_machine(stdout: str) -> list[MachineLine]:
    """``<time>,<target>,<type>,<data>...`` lines; anything else is ignored."""
    out = []
    for line in stdout.splitlines():
        parts = line.split(",")
        if len(parts) < 3 or not parts[0].isdigit():
            continue
        out.append(MachineLine(parts[1], parts[2], tuple(unescape(p) for p in parts[3:])))
    return out


def command_output(lines: list[MachineLine]) -> dict[str, list[str]]:
    """Output of commands per target: ``ui,message`` lines ``    <target>: <text>``."""
    out: dict[str, list[str]] = {}
    for m in lines:
        if m.type != "ui" or len(m.data) < 2 or m.data[0] != "message":
            continue
        text = m.data[1]
        if not text.startswith("    "):
            continue
        if ": " in text:
            target, _, rest = text[4:].partition(": ")
        elif text.endswith(":"):  # an empty line: Packer trims the space after the colon
            target, rest = text[4:-1], ""
        else:
            continue
        out.setdefault(target, []).append(rest)
    return out


#: what differs between any two runs in UI lines: temp script names and durations
UI_MASKS = (
    (re.compile(r"/tmp/(?:kiln-[0-9a-f]+-[0-9a-f]+/)?packer-shell\w+"), "<SCRIPT>"),
    (re.compile(r"(finished|errored) after [^:.]*"), r"\1 after <TIME>"),
    (re.compile(r"Wait completed after .*"), "Wait completed after <TIME>"),
)


def ui_lines(lines: list[MachineLine], masks=UI_MASKS) -> list[str]:
    """Every UI line (``say``, ``message``, ``error``) with ``masks`` applied, as
    ``kind: text``; a multi-line message gives one line per line."""
    out = []
    for m in lines:
        if m.type != "ui" or len(m.data) < 2:
            continue
        text = m.data[1]
        for pattern, repl in masks:
            text = pattern.sub(repl, text)
        out += [f"{m.data[0]}: {line}" for line in text.split("\n")]
    return out


def errored_builds(lines: list[MachineLine]) -> list[str]:
    return sorted({m.target for m in lines if m.type == "error" and m.target})


def artifacts(lines: list[MachineLine]) -> dict[str, list[dict[str, Any]]]:
    """Per build, the artifacts listed at the end: builder-id, id, string, files."""
    out: dict[str, list[dict[str, Any]]] = {}
    for m in lines:
        if m.type != "artifact" or len(m.data) < 2:
            continue
        index, key, rest = int(m.data[0]), m.data[1], m.data[2:]
        arts = out.setdefault(m.target, [])
        while len(arts) <= index:
            arts.append({"builder-id": None, "id": None, "string": None, "files": []})
        if key == "file":
            arts[index]["files"].append(rest[1] if len(rest) > 1 else "")
        elif key == "nil":
            arts[index]["nil"] = True
        elif key in ("builder-id", "id", "string"):
            arts[index][key] = rest[0] if rest else ""
    return out


# --------------------------------------------------------------------------- running


@dataclass
class ToolRun:
    tool: str
    workdir: Path
    exit_code: int
    stdout: str
    stderr: str
    before: dict[str, tuple[int, bytes]] = field(default_factory=dict)
    after: dict[str, tuple[int, bytes]] = field(default_factory=dict)

    @property
    def machine(self) -> list[MachineLine]:
        return parse_machine(self.masked(self.stdout))

    def masked(self, text: str) -> str:
        return text.replace(str(self.workdir), WORKDIR)

    def changed_files(self) -> dict[str, tuple[int, bytes]]:
        """Files created or changed by the run: path -> (permission bits, content)."""
        return {p: v for p, v in self.after.items() if self.before.get(p) != v}

    def describe(self) -> str:
        return (f"{self.tool} exit {self.exit_code} in {self.workdir}\n--- stdout\n"
                f"{self.stdout[-6000:]}\n--- stderr\n{self.stderr[-3000:]}")


def snapshot(root: Path) -> dict[str, tuple[int, bytes]]:
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = os.path.relpath(dirpath, root)
        if rel_dir == ".":
            dirnames[:] = [d for d in dirnames if d not in PRIVATE_DIRS]
        for name in filenames:
            path = os.path.join(dirpath, name)
            rel = os.path.normpath(os.path.join(rel_dir, name))
            try:
                st = os.lstat(path)
                data = os.readlink(path).encode() if os.path.islink(path) else \
                    Path(path).read_bytes()
            except OSError:
                continue
            out[rel] = (st.st_mode & 0o7777, data)
    return out


def packer_command(packer: str) -> list[str]:
    return [packer, "build", "-machine-readable"]


def kiln_command() -> list[str]:
    return [sys.executable, "-m", "kiln.backend.cli", "build", "-machine-readable"]


def kiln_env(base: dict[str, str]) -> dict[str, str]:
    env = dict(base)
    env["PYTHONPATH"] = str(REPO_ROOT) + (os.pathsep + env["PYTHONPATH"]
                                          if env.get("PYTHONPATH") else "")
    return env


def run_build(tool: str, command: list[str], source_dir: Path, template: str,
              args: list[str] | tuple[str, ...] = (), env: dict[str, str] | None = None,
              timeout: float = 120, parent: Path | None = None) -> ToolRun:
    """Copy ``source_dir`` to a fresh directory and run ``command + args + [template]`` in it."""
    workdir = Path(tempfile.mkdtemp(prefix=f"diff-{tool}-", dir=parent))
    shutil.copytree(source_dir, workdir, dirs_exist_ok=True, symlinks=True)
    before = snapshot(workdir)
    try:
        proc = subprocess.run(
            [*command, *args, template], cwd=workdir, env=env, capture_output=True,
            text=True, timeout=timeout, stdin=subprocess.DEVNULL,
        )
        code, out, err = proc.returncode, proc.stdout, proc.stderr
    except subprocess.TimeoutExpired as e:
        code = -1
        out = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        err = f"timed out after {timeout}s"
    return ToolRun(tool, workdir, code, out, err, before, snapshot(workdir))


# --------------------------------------------------------------------------- contents


def _decompress(data: bytes) -> tuple[str, bytes] | None:
    if data[:2] == b"\x1f\x8b":
        return "gzip", gzip.decompress(data)
    if data[:6] == b"\xfd7zXZ\x00":
        return "xz", lzma.decompress(data)
    if data[:3] == b"BZh":
        return "bzip2", bz2.decompress(data)
    if data[:4] == b"\x04\x22\x4d\x18":
        try:
            import lz4.frame
        except ImportError:
            return "lz4", data  # cannot open it here; compare the bytes
        return "lz4", lz4.frame.decompress(data)
    return None


def _is_tar(data: bytes) -> bool:
    return len(data) >= 512 and (data[257:262] == b"ustar" or
                                 (len(data) >= 1024 and not data.strip(b"\0")))


def describe_content(data: bytes, masked: str = "", depth: int = 0) -> Any:
    """A comparable description: archives by member (an archive inside one is described
    the same way), manifests as masked JSON, else bytes."""
    layers = []
    dec = _decompress(data)
    if dec is not None:
        layers.append(dec[0])
        data = dec[1]
    if _is_tar(data):
        members = []
        if data.strip(b"\0"):  # an archive with no entries is only end-of-archive blocks
            with tarfile.open(fileobj=io.BytesIO(data)) as t:
                for m in t:
                    body = t.extractfile(m).read() if m.isfile() else b""
                    size: Any = m.size
                    if depth < 2 and m.name.endswith(COMPRESSED_SUFFIXES):
                        body, size = describe_content(body, masked, depth + 1), "<compressed>"
                    else:
                        body = _mask_compressed_checksums(body)
                    members.append((m.name, m.type, m.mode, m.mtime, size, body))
        return {"layers": layers, "tar": members}
    if data[:4] == b"PK\x03\x04" or data[:4] == b"PK\x05\x06":
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            return {"layers": layers, "zip": [
                (i.filename, describe_content(z.read(i), masked, depth + 1)
                 if depth < 2 and i.filename.endswith(COMPRESSED_SUFFIXES)
                 else _mask_compressed_checksums(z.read(i)))
                for i in z.infolist()]}
    manifest = _manifest(data)
    if manifest is not None:
        return {"layers": layers, "manifest": manifest}
    data = _mask_compressed_checksums(data)
    if masked:
        data = data.replace(masked.encode(), WORKDIR.encode())
    return {"layers": layers, "bytes": data}


def _manifest(data: bytes) -> Any | None:
    try:
        doc = json.loads(data)
    except ValueError:
        return None
    if not isinstance(doc, dict) or "builds" not in doc or "last_run_uuid" not in doc:
        return None
    return normalize_manifest(doc, data)


#: a compressor's output size depends on its implementation, not on the data
COMPRESSED_SUFFIXES = (".gz", ".tgz", ".zip", ".xz", ".lz4", ".bgzf", ".bzip2", ".bz2")


def _mask_compressed_size(f: Any) -> Any:
    if isinstance(f, dict) and str(f.get("name", "")).endswith(COMPRESSED_SUFFIXES):
        return {**f, "size": "<compressed size>"}
    return f


_CHECKSUM_LINE = re.compile(rb"^([0-9a-f]{32,128})\t(.+)$")


def _mask_compressed_checksums(data: bytes) -> bytes:
    """In a checksum post-processor's file, the sum of a compressed file depends on the
    compressor, not on the data: mask it (the file names and the other sums stay)."""
    lines = data.split(b"\n")
    if not lines or not all(_CHECKSUM_LINE.match(x) for x in lines if x):
        return data
    out = []
    for line in lines:
        m = _CHECKSUM_LINE.match(line)
        if m and m.group(2).decode("utf-8", "replace").endswith(COMPRESSED_SUFFIXES):
            line = b"<sum of compressed data>\t" + m.group(2)
        out.append(line)
    return b"\n".join(out)


def normalize_manifest(doc: dict, raw: bytes = b"") -> dict:
    """Mask times, run uuids and the sizes of compressed files; builds of parallel runs
    sorted by name (each build's own entries keep their order). The raw layout (key
    order, final newline, indent) is kept so a formatting difference still shows."""
    builds = []
    uuids: dict[str, str] = {}

    def mask_uuid(u: str) -> str:
        return uuids.setdefault(u, f"<uuid{len(uuids)}>") if u else u

    for b in doc.get("builds") or []:
        b = dict(b)
        if isinstance(b.get("files"), list):
            b["files"] = [_mask_compressed_size(f) for f in b["files"]]
        if "build_time" in b:
            b["build_time"] = "<time>" if b["build_time"] else b["build_time"]
        b["packer_run_uuid"] = mask_uuid(b.get("packer_run_uuid", ""))
        builds.append(b)
    builds.sort(key=lambda b: str(b.get("name")))
    out = {"builds": builds, "last_run_uuid": mask_uuid(doc.get("last_run_uuid", "")),
           "key_order": list(doc), "entry_key_order": [list(b) for b in builds]}
    if raw:
        out["ends_with_newline"] = raw.endswith(b"\n")
        out["indent"] = raw[:12]
    return out


# --------------------------------------------------------------------------- comparing


def compare(ref: ToolRun, ours: ToolRun, normalize: Any = None,
            same_content: Any = None) -> list[str]:
    """Every difference between the reference (Packer) run and ours, as readable lines.

    ``normalize(text) -> text``, when given, is applied to every machine-readable field and
    to the text of every file first (to mask what differs from run to run, such as
    container ids). ``same_content(path) -> bool``, when given, says which written files
    must have the same contents (the others need only exist in both runs)."""
    diffs: list[str] = []
    if ref.exit_code != ours.exit_code:
        diffs.append(f"exit code: packer {ref.exit_code}, kiln {ours.exit_code}")

    ref_m, our_m = ref.machine, ours.machine
    if normalize is not None:
        ref_m = [MachineLine(m.target, m.type, tuple(normalize(d) for d in m.data)) for m in ref_m]
        our_m = [MachineLine(m.target, m.type, tuple(normalize(d) for d in m.data)) for m in our_m]
    a, b = command_output(ref_m), command_output(our_m)
    for target in sorted(set(a) | set(b)):
        if a.get(target, []) != b.get(target, []):
            diffs.append(f"command output of {target!r}:\n  packer {a.get(target, [])}\n"
                         f"  kiln   {b.get(target, [])}")

    if errored_builds(ref_m) != errored_builds(our_m):
        diffs.append(f"errored builds: packer {errored_builds(ref_m)}, "
                     f"kiln {errored_builds(our_m)}")

    ra, oa = artifacts(ref_m), artifacts(our_m)
    for build in sorted(set(ra) | set(oa)):
        if ra.get(build) != oa.get(build):
            diffs.append(f"artifacts of {build!r}:\n  packer {ra.get(build)}\n"
                         f"  kiln   {oa.get(build)}")

    rf, of = ref.changed_files(), ours.changed_files()
    if set(rf) != set(of):
        diffs.append(f"files written: only packer {sorted(set(rf) - set(of))}, "
                     f"only kiln {sorted(set(of) - set(rf))}")
    for path in sorted(set(rf) & set(of)):
        (rmode, rdata), (omode, odata) = rf[path], of[path]
        if rmode != omode:
            diffs.append(f"mode of {path}: packer {rmode:o}, kiln {omode:o}")
        if same_content is not None and not same_content(path):
            continue
        if normalize is not None:
            rdata, odata = _normalized(rdata, normalize), _normalized(odata, normalize)
        rd = describe_content(rdata, str(ref.workdir))
        od = describe_content(odata, str(ours.workdir))
        if rd != od:
            diffs.append(f"content of {path}:\n  packer {_short(rd)}\n  kiln   {_short(od)}")
    return diffs


def _normalized(data: bytes, normalize: Any) -> bytes:
    try:
        return normalize(data.decode("utf-8")).encode("utf-8")
    except UnicodeDecodeError:
        return data


def _short(v: Any, limit: int = 1500) -> str:
    s = repr(v)
    return s if len(s) <= limit else s[:limit] + "..."
