"""The file provisioner: copy files and directories to or from the machine.

Upload: a directory source goes through ``upload_dir`` (a trailing ``/`` copies
its contents, without it the directory itself, as rsync); a file goes to
``destination``, or into it when ``destination`` ends in ``/``. Download: a
source ending in ``/`` or holding a glob goes through ``download_dir``; a
``destination`` ending in ``/`` receives the file under its own name.
Sources and destination are rendered at run time with the build's generated
data (``{{ build `ID` }}``).
"""

from __future__ import annotations

import os
import posixpath
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ...sdk.communicator import CommunicatorError
from ...sdk.config import ConfigProblems, opt
from ...sdk.plugin import PrepareContext, Provisioner, StepError
from ..shell_local_common import render_runtime, unusable_paths

if TYPE_CHECKING:
    from ...sdk.context import BuildContext, StageUI

DIRECTIONS = ("download", "upload")


@dataclass
class FileConfig:
    source: str = opt("", doc="local path (upload) or remote path (download)")
    sources: list[str] = opt(default_factory=list, doc="several sources, copied in order")
    content: str = opt("", doc="text to upload as the destination file")
    destination: str = opt("", doc="where to copy to (required)")
    direction: str = opt("upload", doc="upload (default) or download")
    generated: bool = opt(False, doc="the source is made earlier in the build: do not check "
                          "that it exists at prepare time")

    def all_sources(self) -> list[str]:
        out = list(self.sources)
        if self.source:
            out.append(self.source)
        return out

    def check(self) -> None:
        problems: list[tuple[str, str]] = []
        direction = self.direction or "upload"
        if direction not in DIRECTIONS:
            problems.append(("direction", f"direction must be upload or download, not "
                             f"{self.direction!r}"))
        sources = self.all_sources()
        if self.content and sources:
            problems.append(("content", "content cannot be combined with source or sources"))
        if not sources and not self.content:
            problems.append(("source", "give a source (or sources, or content) to copy"))
        if self.content and direction == "download":
            problems.append(("content", "content can only be uploaded, not downloaded"))
        if not self.destination:
            problems.append(("destination", "destination must be given"))
        if problems:
            raise ConfigProblems(problems)



class FileProvisioner(Provisioner):
    type_name = "file"
    Config = FileConfig

    config: FileConfig

    def prepare(self, ctx: PrepareContext) -> list[str]:
        cfg = self.config
        if (cfg.direction or "upload") != "upload" or cfg.generated:
            return []
        known = [src for src in cfg.all_sources() if "{{" not in src]  # others: at run time
        problems = unusable_paths(known, "sources" if cfg.sources else "source", "source")
        if problems:
            raise ConfigProblems(problems)
        return []

    def describe(self) -> str:
        cfg = self.config
        sources = cfg.all_sources()
        src = "(content)" if cfg.content else sources[0] if sources else ""
        if len(sources) > 1:
            src += f" (+{len(sources) - 1})"
        arrow = "<=" if cfg.direction == "download" else "=>"
        return f"{src} {arrow} {cfg.destination}" if cfg.direction != "download" \
            else f"{cfg.destination} {arrow} {src}"

    def provision(self, ctx: BuildContext, ui: StageUI, comm: Any, data: dict[str, Any]) -> None:
        if comm is None:
            raise StepError("the file provisioner needs a communicator, and the builder gave none")
        data = dict(data or {})
        ctx.cancel.check()
        if (self.config.direction or "upload") == "download":
            self._download(ctx, ui, comm, data)
        else:
            self._upload(ctx, ui, comm, data)

    # -- upload -----------------------------------------------------------------------
    def _upload(self, ctx: BuildContext, ui: StageUI, comm: Any, data: dict[str, Any]) -> None:
        cfg = self.config
        dst_template = render_runtime(ctx, cfg.destination, data, "destination")
        temps: list[str] = []
        try:
            sources = cfg.all_sources()
            if cfg.content:
                temps.append(ctx.temp_file(prefix="kiln-file-content",
                                           content=cfg.content.encode("utf-8", "surrogateescape"),
                                           mode=0o644))
                sources = list(temps)
            for raw in sources:
                ctx.cancel.check()
                src = raw if raw in temps else render_runtime(ctx, raw, data, "source")
                dst = dst_template
                ui.say(f"Uploading {src} => {dst}")
                try:
                    if os.path.isdir(src):
                        comm.upload_dir(dst, src)
                        continue
                    if dst.endswith("/"):
                        dst = dst + os.path.basename(src)
                    if not os.path.exists(src):
                        raise StepError(f"Upload failed: source {src} does not exist")
                    comm.upload(dst, src)
                except CommunicatorError as e:
                    ui.error(f"Upload failed: {e}")
                    raise StepError(f"Upload failed: {e}") from e
        finally:
            for path in temps:
                ctx.remove_temp(path)

    # -- download ---------------------------------------------------------------------
    def _download(self, ctx: BuildContext, ui: StageUI, comm: Any, data: dict[str, Any]) -> None:
        cfg = self.config
        dst_template = render_runtime(ctx, cfg.destination, data, "destination")
        for raw in cfg.all_sources():
            ctx.cancel.check()
            src = render_runtime(ctx, raw, data, "source")
            dst = dst_template
            ui.say(f"Downloading {src} => {dst}")
            is_dir = src.endswith("/") or any(c in src for c in "*?[")
            if dst.endswith("/") and not src.endswith("/") and not src.endswith("*"):
                dst = os.path.join(dst, posixpath.basename(src))
            try:
                if is_dir:
                    os.makedirs(dst, mode=0o755, exist_ok=True)
                    comm.download_dir(src, dst)
                    continue
                parent = os.path.dirname(dst)
                if parent:
                    os.makedirs(parent, mode=0o755, exist_ok=True)
                comm.download(src, dst)
                os.chmod(dst, 0o644)
            except OSError as e:
                raise StepError(f"Download failed: cannot write {dst}: {e.strerror or e}") from e
            except CommunicatorError as e:
                ui.error(f"Download failed: {e}")
                raise StepError(f"Download failed: {e}") from e
