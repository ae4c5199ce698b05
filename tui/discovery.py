"""Find the templates in a directory and validate them (in a worker thread).

A template is a ``*.json`` or ``*.yaml``/``*.yml`` file with a ``builders``
key, a ``*.pkr.hcl``/``*.pkr.json`` file, or a directory of them (Packer loads
a directory of HCL2 files as one template; the target directory itself is one
when it holds more than one such file).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from dataclasses import dataclass, field

HCL_SUFFIXES = (".pkr.hcl", ".pkr.json")
SKIP_DIRS = {".kiln", ".git", "node_modules", "__pycache__", ".venv", "venv"}
MAX_BYTES = 4 * 1024 * 1024


@dataclass
class ProblemView:
    text: str  # "file:line:col: path: message", file relative to the dashboard's directory
    file: str = ""  # absolute
    line: int = 0
    severity: str = "error"


@dataclass
class TemplateEntry:
    path: str  # absolute
    name: str  # as shown (relative to the dashboard's directory)
    format: str  # json | yaml | hcl2
    status: str = "validating"  # validating | valid | invalid
    builds: list[tuple[str, str, int]] = field(default_factory=list)  # (name, type, line)
    problems: list[ProblemView] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    description: str = ""
    mtime: float = 0.0
    provisioners: int = 0
    post_processors: int = 0
    #: builds whose provisioners already run on this host (null, local or no communicator)
    local_builds: list[str] = field(default_factory=list)
    #: the provisioners, one line each ("shell at t.json:7: echo hi"), for warnings
    provisioner_lines: list[str] = field(default_factory=list)

    @property
    def build_names(self) -> list[str]:
        return [b[0] for b in self.builds]


def _looks_like_template(path: str) -> bool:
    try:
        if os.path.getsize(path) > MAX_BYTES:
            return False
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read()
    except OSError:
        return False
    if "builders" not in text:
        return False
    if path.endswith(".json"):
        try:
            data = json.loads(text)
        except ValueError:
            # a broken JSON template is still a template: say what is wrong with it
            return bool(re.search(r'"builders"\s*:', text))
        return isinstance(data, dict) and "builders" in data
    return bool(re.search(r"^builders\s*:", text, re.M))


def _has_hcl(directory: str) -> list[str]:
    try:
        return sorted(n for n in os.listdir(directory) if n.endswith(HCL_SUFFIXES))
    except OSError:
        return []


def discover(target: str) -> list[TemplateEntry]:
    """Templates in ``target`` (a directory) or ``target`` itself (a file)."""
    target = os.path.abspath(target)
    if os.path.isfile(target):
        return [_entry(target, os.path.dirname(target))]
    if not os.path.isdir(target):
        return []
    root = target
    out: list[TemplateEntry] = []
    names = sorted(os.listdir(root))
    hcl_files = [n for n in names if n.endswith(HCL_SUFFIXES)]
    if len(hcl_files) > 1:
        out.append(_entry(root, root))
    for n in names:
        p = os.path.join(root, n)
        if n.endswith(HCL_SUFFIXES):
            if len(hcl_files) == 1:
                out.append(_entry(p, root))
            continue
        if os.path.isdir(p):
            if n not in SKIP_DIRS and not n.startswith(".") and _has_hcl(p):
                out.append(_entry(p, root))
            continue
        if n.endswith((".json", ".yaml", ".yml")) and _looks_like_template(p):
            out.append(_entry(p, root))
    return out


def _entry(path: str, root: str) -> TemplateEntry:
    if os.path.isdir(path) or path.endswith(HCL_SUFFIXES):
        fmt = "hcl2"
    elif path.endswith((".yaml", ".yml")):
        fmt = "yaml"
    else:
        fmt = "json"
    return TemplateEntry(path=path, name=display_name(path, root), format=fmt, mtime=mtime_of(path))


def display_name(path: str, root: str) -> str:
    """A template as the dashboard names it: relative to its directory, ``dir/`` for HCL2
    directories."""
    name = os.path.relpath(path, root)
    if name.startswith(".." + os.sep):
        name = path
    if os.path.isdir(path):
        name = (name if name != "." else os.path.basename(path.rstrip(os.sep))) + "/"
    return name


def mtime_of(path: str) -> float:
    """Newest modification time of a template file, or of the HCL2 files of a directory."""
    try:
        if os.path.isdir(path):
            times = [os.path.getmtime(os.path.join(path, n)) for n in _has_hcl(path)]
            return max(times, default=os.path.getmtime(path))
        return os.path.getmtime(path)
    except OSError:
        return 0.0


def relative(text: str, root: str) -> str:
    """Paths under ``root`` shortened to relative ones (problem texts, hints)."""
    prefix = root.rstrip(os.sep) + os.sep
    return text.replace(prefix, "")


def validate(
    entry: TemplateEntry,
    root: str,
    vars_: dict[str, str] | None = None,
    var_files: tuple[str, ...] = (),
) -> TemplateEntry:
    """Load and prepare every build, as ``kiln validate`` does; returns the entry filled in.

    Runs in a worker thread: it imports the engine and the plugins it needs.
    """
    from ..backend.api import Options, summary, validate
    from ..backend.template.errors import TemplateError

    mtime = mtime_of(entry.path)
    opts = Options(vars=dict(vars_ or {}), var_files=tuple(var_files))
    problems: list[ProblemView] = []
    builds: list[tuple[str, str, int]] = []
    warnings: list[str] = []
    description = ""
    counts = (0, 0)
    local: list[str] = []
    lines: list[str] = []
    try:
        result = validate(entry.path, opts)
        tpl = result.template
        description = tpl.description
        local = [b.name for b in tpl.builds if _runs_here(b)]
        lines = [summary(p, 100) for p in tpl.provisioners]
        counts = (
            sum(len(b.provisioners) for b in tpl.builds),
            sum(len(c) for b in tpl.builds for c in b.post_processors),
        )
        builds = [(b.name, b.type, b.loc.line) for b in tpl.builds]
        warnings += result.warnings
        problems += [_problem(p, root) for p in result.problems]
    except TemplateError as e:
        problems += [_problem(p, root) for p in e.problems]
    except ModuleNotFoundError as e:
        problems.append(
            ProblemView(f"{entry.name}: cannot load this template here: {e}", entry.path)
        )
    except Exception as e:  # a template that breaks the loader is still shown, with why
        problems.append(ProblemView(f"{entry.name}: {type(e).__name__}: {e}", entry.path))
    if not builds and not problems:
        problems.append(ProblemView(f"{entry.name}: the template has no builds", entry.path))
    errors = [p for p in problems if p.severity == "error"]
    return dataclasses.replace(
        entry,
        builds=builds,
        problems=problems,
        warnings=[relative(w, root) for w in warnings],
        description=description,
        status="invalid" if errors else "valid",
        mtime=mtime,
        provisioners=counts[0],
        post_processors=counts[1],
        local_builds=local,
        provisioner_lines=lines,
    )


def _runs_here(build) -> bool:
    """A null build talking to this host (or to nothing): its provisioners are meant for here."""
    if build.type != "null" or not build.config.is_map:
        return False
    comm = build.config.get("communicator")
    return comm is not None and comm.value in ("local", "none")


def _problem(p, root: str) -> ProblemView:
    text = relative(p.format(), root)
    return ProblemView(text, p.loc.file, p.loc.line, getattr(p, "severity", "error"))
