"""A debug run of a template's post-processors (the dashboard's ``o``) that never touches
what a real build made.

The builder is swapped for a file builder that hands the chains a stand-in of the real
builder's own artifact type (an image for a docker build that commits, a tar for one that
exports, an AMI id for amazon-ebs, a file otherwise), or a copy of the last real build's
artifact when the user picks it. Everything the post-processors write goes to a scratch
directory of the run's own: output paths are re-rooted there, shell-local runs there, docker
tags get a ``kiln-debug-<run>`` tag instead of the template's, docker-push does not push,
and an artifact from outside the run is never destroyed. Docker images the run made are
removed when it ends; the scratch directory stays, and its path is printed.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import sqlite3
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

from ..sdk.plugin import Artifact, PostProcessor
from ..template.model import BuildDef, PostProcessorDef, Template
from ..template.source import Node, from_plain
from . import registry
from .prepare import Options, PreparedBuild, Preparer, select_builds
from .session import Session

#: keep this many scratch directories of earlier runs
KEEP_SCRATCH = 10
#: post-processor type -> keys naming files it writes (re-rooted into the scratch directory)
OUTPUT_KEYS = {"manifest": ("output",), "compress": ("output",), "checksum": ("output",),
               "docker-save": ("path",)}
#: what a key left out of the template defaults to, where the default is a file
OUTPUT_DEFAULTS = {
    ("manifest", "output"): "packer-manifest.json",
    ("compress", "output"): "packer_{{.BuildName}}_{{.BuilderType}}",
    ("checksum", "output"): "packer_{{.BuildName}}_{{.BuilderType}}_{{.ChecksumType}}.checksum",
}
#: a builder type -> the builder ids of its own artifact (to find it in history)
OWN_ARTIFACTS = {
    "docker": ("packer.post-processor.docker-import", "packer.docker"),
    "file": ("packer.file",),
    "null": ("fnoeding.null",),
    "amazon-ebs": ("mitchellh.amazonebs",),
    "amazon-chroot": ("mitchellh.amazon.chroot",),
    "amazon-instance": ("mitchellh.amazon.instance",),
}


@dataclass
class RealArtifact:
    """The artifact of the last successful real build, as history recorded it."""

    build: str
    builder_id: str
    id: str
    files: list[str]
    string: str
    started: float

    def describe(self) -> str:
        return self.string or self.id or ", ".join(self.files)


@dataclass
class DebugScope:
    """What one post-processor debug run may write, and what it must leave alone."""

    scratch: str
    tag: str  # the docker tag every docker tag of the run is replaced with
    protected: set[str] = field(default_factory=set)  # artifact ids from outside the run
    #: (build, image id or name, ledger entry) the run made in the docker engine, in order
    images: list[tuple[str, str, int | None]] = field(default_factory=list)

    def made(self, ref: str) -> bool:
        return any(r == ref for _b, r, _e in self.images)

    def inside(self, path: str) -> bool:
        root = os.path.realpath(self.scratch)
        return os.path.realpath(path) == root or os.path.realpath(path).startswith(root + os.sep)


def last_artifacts(history_db: str, template_path: str) -> dict[str, RealArtifact]:
    """Build name -> the builder's own artifact from the latest successful run of the
    template that recorded one (a debug run's history lives elsewhere)."""
    if not os.path.exists(history_db):
        return {}
    try:
        db = sqlite3.connect(f"file:{history_db}?mode=ro", uri=True, timeout=5)
    except sqlite3.Error:
        return {}
    try:
        rows = db.execute(
            "SELECT a.build, a.builder_id, a.artifact_id, a.files, a.description, r.started, "
            "b.type FROM artifacts a JOIN runs r ON r.id = a.run_id "
            "JOIN builds b ON b.run_id = a.run_id AND b.name = a.build "
            "WHERE r.template = ? AND b.status = 'succeeded' ORDER BY r.started DESC, a.rowid",
            (template_path,)).fetchall()
    except sqlite3.Error:
        return {}
    finally:
        db.close()
    out: dict[str, RealArtifact] = {}
    for build, bid, aid, files, desc, started, btype in rows:
        if build in out or bid not in OWN_ARTIFACTS.get(btype, ()):
            continue
        try:
            names = [f for f in json.loads(files) if isinstance(f, str)]
        except ValueError:
            names = []
        # relative names are the build's working directory's: this one, or the template's
        base = os.path.dirname(os.path.abspath(template_path))
        names = [f if not f or os.path.exists(f) else os.path.join(base, f) for f in names]
        if any(f and not os.path.exists(f) for f in names):
            continue  # gone since: nothing to start from
        out[build] = RealArtifact(build, bid, aid, names, desc, started)
    return out


def new_scratch(state_dir: str) -> str:
    """A private scratch directory under ``<state>/pp-debug`` (older ones beyond
    KEEP_SCRATCH are removed)."""
    parent = os.path.join(state_dir, "pp-debug")
    os.makedirs(parent, mode=0o700, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = tempfile.mkdtemp(prefix=f"{stamp}-", dir=parent)
    try:
        old = sorted((e for e in os.scandir(parent) if e.is_dir(follow_symlinks=False)),
                     key=lambda e: e.name)
        for e in old[:-KEEP_SCRATCH]:
            shutil.rmtree(e.path, ignore_errors=True)
    except OSError:
        pass
    return path


# -- the template: builders swapped, outputs re-rooted ------------------------------------


def artifact_kind(b: BuildDef) -> str:
    """What the real builder hands its post-processors: docker-image, docker-tar, ami, null,
    or file."""
    cfg = b.config.to_plain() if b.config.is_map else {}
    if b.type == "docker":
        if cfg.get("commit"):
            return "docker-image"
        return "docker-tar" if cfg.get("export_path") else "docker-none"
    if b.type.startswith("amazon-"):
        return "ami"
    if b.type == "null":
        return "null"
    return "file"


def postprocessors_on_file(template: Template, scope: DebugScope,
                           builds: list[str] | None = None) -> Template:
    """Every (selected) build's builder replaced by the file builder writing
    ``<scratch>/<build>.stand-in``; provisioners dropped; post-processors confined to the
    scratch directory (see the module's docstring)."""
    out = []
    for b in template.builds:
        if builds and b.name not in builds:
            continue
        target = os.path.join(scope.scratch, f"{_safe(b.name)}.stand-in")
        content = (f"stand-in artifact for build {b.name} ({b.type}), made by kiln for "
                   "post-processor debugging\n")
        loc = b.loc
        config = Node({"target": Node(target, loc), "content": Node(content, loc)}, loc)
        chains = tuple(tuple(_confine(pp, scope) for pp in chain) for chain in b.post_processors)
        out.append(dataclasses.replace(b, index=len(out), type="file", config=config,
                                       provisioners=(), error_cleanup=None,
                                       post_processors=chains))
    return dataclasses.replace(template, builds=tuple(out))


def _confine(pp: PostProcessorDef, scope: DebugScope) -> PostProcessorDef:
    if not pp.config.is_map:
        return pp
    items = dict(pp.config.value)
    loc = pp.config.loc
    for key in OUTPUT_KEYS.get(pp.type, ()):
        node = items.get(key)
        value = node.value if node is not None else OUTPUT_DEFAULTS.get((pp.type, key))
        if isinstance(value, str) and value:
            path = rooted(scope.scratch, value)
            items[key] = Node(path, node.loc if node else loc.child(key))
            # the directories the real run writes into exist there (a build made them)
            literal = os.path.dirname(path.split("{{", 1)[0])
            if scope.inside(literal):
                os.makedirs(literal, exist_ok=True)
    if pp.type == "docker-tag":
        items.pop("tag", None)
        items["tags"] = from_plain([scope.tag], loc.child("tags"))
    elif pp.type == "docker-import":
        items["tag"] = Node(scope.tag, loc.child("tag"))
    elif pp.type == "artifice" and isinstance(items.get("files"), Node) and items["files"].is_list:
        # files a shell-local before it made are in the scratch directory now
        items["files"] = Node([Node(_rel_in(scope.scratch, n.value), n.loc)
                               if isinstance(n.value, str) else n
                               for n in items["files"].value], items["files"].loc)
    return dataclasses.replace(pp, config=Node(items, loc, pp.config.key_locs))


def rooted(scratch: str, path: str) -> str:
    """``path`` (relative or absolute, maybe with ``{{ }}``) moved under ``scratch``; ``..``
    cannot climb out of it."""
    parts = [p for p in path.replace("\\", "/").split("/") if p not in ("", ".")]
    parts = ["__" if p == ".." else p for p in parts]
    return os.path.join(scratch, *parts) if parts else scratch


def _rel_in(scratch: str, path: str) -> str:
    return path if os.path.isabs(path) or path.startswith("{{") else rooted(scratch, path)


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in name)


# -- preparing the run ---------------------------------------------------------------------


def prepare_postprocessor_run(
    template: Template, options: Options, scope: DebugScope, builds: list[str] | None = None,
    real: dict[str, RealArtifact] | None = None,
) -> tuple[Template, list[PreparedBuild], list[str]]:
    """The debug run's template and prepared builds (stand-in builders, guarded
    post-processors), and warnings. ``real``: build -> the last build's artifact to start
    from instead of a stand-in."""
    from ..template.errors import TemplateError

    kinds = {b.name: (artifact_kind(b), b) for b in template.builds}
    swapped = postprocessors_on_file(template, scope, builds)
    prep = Preparer(swapped, options)
    prepared = prep.prepare(select_builds(swapped, (), ()))
    if prep.problems:
        raise TemplateError(prep.problems)
    options.workdir = scope.scratch  # shell-local commands run there
    stand_in = registry.lookup("debug", "stand-in-builder")
    for pb in prepared:
        kind, original = kinds[pb.name]
        pick = (real or {}).get(pb.name)
        if pick is not None:
            scope.protected.add(pick.id)
        pb.builder = stand_in(pb.builder.config, kind, original, scope, pick,
                              guard=lambda art: GuardedArtifact(art, scope))
        for chain in pb.chains:
            for ppp in chain:
                ppp.plugin = GuardedPostProcessor(ppp.plugin, ppp.definition.type, scope)
    return swapped, prepared, list(prep.warnings)


# -- guards -------------------------------------------------------------------------------


class GuardedArtifact(Artifact):
    """An artifact of the debug run: destroying it removes only what the run made."""

    def __init__(self, inner: Artifact, scope: DebugScope):
        super().__init__(inner.builder_id)
        self.inner = inner
        self.scope = scope

    def id(self) -> str:
        return self.inner.id()

    def files(self) -> list[str]:
        return self.inner.files()

    def string(self) -> str:
        return self.inner.string()

    def state(self, name: str) -> Any:
        return self.inner.state(name)

    def destroy(self) -> None:
        if self.inner.id() in self.scope.protected:
            return  # the last real build's: never removed
        if any(f and not self.scope.inside(f) for f in self.inner.files()):
            return  # files from outside the scratch directory (artifice can name any)
        if self.inner.builder_id.startswith("packer.post-processor.docker"):
            return  # images: what the run made goes when it ends (remove_images)
        self.inner.destroy()


class GuardedPostProcessor(PostProcessor):
    """A post-processor of the debug run: its output is guarded, docker names it made are
    recorded for removal, and docker-push does not push."""

    def __init__(self, inner: PostProcessor, type_name: str, scope: DebugScope):
        super().__init__(inner.config)
        self.inner = inner
        self.type = type_name
        self.scope = scope
        self.default_keep = inner.default_keep  # type: ignore[misc]

    def post_process(self, ctx, ui, artifact: Artifact) -> Artifact | None:
        if self.type == "docker-push":
            repo = artifact.id()
            ui.say(f"Not pushed: a debug run never pushes to a registry (it would push {repo}).")
            return artifact
        if self.type == "shell-local":
            ui.say(f"Running in the scratch directory {self.scope.scratch}")
        before = _files_in(self.scope.scratch)
        try:
            out = self.inner.post_process(ctx, ui, artifact)
        finally:
            after = _files_in(self.scope.scratch)
            for path in sorted(p for p, stamp in after.items() if before.get(p) != stamp):
                ui.say(f"Wrote {_shown(path)}")
        if out is None:
            return None
        if self.type in ("docker-tag", "docker-import") and not self.scope.made(out.id()):
            self.scope.images.append((ctx.build_name, out.id(), None))
        return out if isinstance(out, GuardedArtifact) else GuardedArtifact(out, self.scope)


def _shown(path: str) -> str:
    """A path as the user would type it from where Kiln runs."""
    rel = os.path.relpath(path)
    return path if rel.startswith("..") else rel


def _files_in(root: str, limit: int = 2000) -> dict[str, tuple[float, int]]:
    """path -> (mtime, size) of the files under ``root`` (bounded: a listing, not a backup)."""
    out: dict[str, tuple[float, int]] = {}
    for d, _dirs, files in os.walk(root):
        for name in files:
            p = os.path.join(d, name)
            try:
                st = os.lstat(p)
            except OSError:
                continue
            out[p] = (st.st_mtime, st.st_size)
            if len(out) >= limit:
                return out
    return out


class PostProcessorSession(Session):
    """A session of a post-processor debug run: when a build ends, what it made in the docker
    engine goes (its scratch directory stays)."""

    def __init__(self, template: Template, options: Options, builds: list[PreparedBuild],
                 scope: DebugScope, **kw: Any):
        self.scope = scope
        super().__init__(template, options, builds=builds, **kw)

    def _run_build(self, runner: Any, sem: Any) -> None:
        try:
            super()._run_build(runner, sem)
        finally:
            from .context import StageUI

            say = StageUI(self.bus, runner.name, None, runner.mask).say
            try:
                remove_images = registry.lookup("debug", "remove-stand-in-images")
                remove_images(self.scope, runner.ctx.build_name, say, self.ledger)
            except Exception as e:  # noqa: BLE001 - reported; kiln cleanup has the ledger
                say(f"Could not remove the run's images: {e}")
