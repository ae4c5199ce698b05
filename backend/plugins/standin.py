"""The stand-in builder of a post-processor debug run (the dashboard's "run the template's
post-processors on the file builder"): the file builder, then what the real builder's
artifact would be (a tiny image, a tar, an AMI id that exists nowhere) or a copy of the last
real build's artifact. The engine (engine/ppdebug.py) finds it through the registry; its
``scope`` is the run's DebugScope (scratch directory, docker tag, images made) and ``guard``
wraps the artifact so that nothing outside the run can be touched.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tarfile
import time
from typing import Any, Callable

from ..sdk.plugin import PROVISION, Artifact, Step, StepError
from ..template.model import BuildDef
from .builders.file import FileBuilder, WriteFileStep


class StandInBuilder(FileBuilder):
    """The file builder of a post-processor debug run. It writes the stand-in file, then
    what the real builder's artifact is: an image, a tar, an AMI id; or a copy of the last
    real build's artifact."""

    def __init__(self, config: Any, kind: str, original: BuildDef, scope: Any,
                 real: Any | None, guard: Callable[[Artifact], Artifact]):
        super().__init__(config)
        self.guard = guard
        self.kind = kind
        self.original = original
        self.scope = scope
        self.real = real

    def steps(self, ctx) -> list:
        steps: list = [StandInFileStep(self.config, self.scope)]
        if self.real is not None:
            steps.append(RealArtifactStep(self.real, self.scope))
        elif self.kind == "docker-image":
            steps.append(StandInImageStep(self.scope))
        elif self.kind == "docker-tar":
            steps.append(StandInTarStep(self.scope, self.config.target))
        steps.append(PROVISION)
        ctx.instance_id = "File"
        return steps

    def artifact(self, ctx) -> Artifact:
        data = {"generated_data": {"ID": ctx.instance_id or "File"}}
        if self.real is not None:
            r = self.real
            files = ctx.state.get("standin_files", r.files)
            art = Artifact(r.builder_id, id=r.id, files=files,
                           string=f"{r.describe()} (the last build's, as it was)", state=data)
        elif self.kind == "docker-image":
            from .docker.driver import IMPORT_BUILDER_ID, DockerImageArtifact

            art = DockerImageArtifact(IMPORT_BUILDER_ID, ctx.state["standin_image"], data)
        elif self.kind in ("docker-tar", "docker-none"):
            from .docker.driver import BUILDER_ID

            files = [ctx.state["standin_tar"]] if self.kind == "docker-tar" else [""]
            art = Artifact(BUILDER_ID, id="Container", files=files,
                           string=f"Exported Docker file: {files[0]} (a stand-in)", state=data)
        elif self.kind == "ami":
            region = _region(self.original)
            ami = "ami-0000000000000000"  # no such image: nothing can act on it for real
            art = Artifact("mitchellh.amazonebs", id=f"{region}:{ami}",
                           string=f"AMIs were created:\n{region}: {ami} (a stand-in)", state=data)
        elif self.kind == "null":
            art = Artifact("fnoeding.null", id="Null",
                           string="Did not export anything. This is the null builder (a "
                           "stand-in)", state=data)
        else:
            art = Artifact(self.builder_id, id="File", files=[self.config.target],
                           string=f"Stored file: {self.config.target} (a stand-in)", state=data)
        return self.guard(art)


def _region(b: BuildDef) -> str:
    cfg = b.config.to_plain() if b.config.is_map else {}
    region = cfg.get("region")
    if isinstance(region, str) and region and "{{" not in region:
        return region
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"


class StandInFileStep(WriteFileStep):
    title = "Write the stand-in file"

    def __init__(self, config: Any, scope: Any):
        super().__init__(config)
        self.scope = scope

    def run(self, ctx) -> None:
        ctx.ui.say(f"Outputs go to {_shown(self.scope.scratch)} and stay there; nothing outside "
                   "it is written, no docker tag of the template is moved, nothing is pushed")
        super().run(ctx)


class StandInImageStep(Step):
    """A tiny image made for this run (one text file, imported: no base image, no network),
    recorded in the ledger first; removed when the run ends."""

    title = "Make a stand-in image"

    def __init__(self, scope: Any):
        self.scope = scope

    def run(self, ctx) -> None:
        from .docker.driver import client, docker_errors
        from .postprocessors.docker_import import _last_status

        ref = f"kiln-stand-in:{self.scope.tag}"
        entry = None
        if ctx.ledger is not None:
            entry = ctx.ledger.record("docker-image", ref, data={"id": ref})
        dclient = client()
        try:
            with docker_errors("Error making the stand-in image"):
                res = dclient.api.import_image_from_data(
                    _stand_in_tar(f"stand-in image for {ctx.build_name}, made by kiln\n"),
                    repository="kiln-stand-in", tag=self.scope.tag,
                    changes=[f"LABEL kiln.stand-in={self.scope.tag}"])
            image = _last_status(res if isinstance(res, str) else json.dumps(res))
        finally:
            dclient.close()
        if not image:
            raise StepError("the docker engine did not say which image it made")
        if entry is not None:
            ctx.ledger.update(entry, data={"id": image})
        self.scope.images.append((ctx.build_name, image, entry))
        ctx.state["standin_image"] = image
        ctx.ui.say(f"Stand-in image: {image} (kiln-stand-in:{self.scope.tag}, removed when the "
                   "run ends)")


class StandInTarStep(Step):
    """A tar file standing in for a docker build's exported file system."""

    title = "Write a stand-in tar"

    def __init__(self, scope: Any, beside: str):
        self.scope = scope
        self.path = os.path.splitext(beside)[0] + ".tar"

    def run(self, ctx) -> None:
        with open(self.path, "wb") as f:
            f.write(_stand_in_tar(f"stand-in file system for {ctx.build_name}, made by kiln\n"))
        ctx.state["standin_tar"] = self.path
        ctx.ui.say(f"Stand-in tar: {self.path}")


class RealArtifactStep(Step):
    """The last real build's artifact: its files copied into the scratch directory (so the
    chain may consume them), an image checked to be still there."""

    title = "Take the last build's artifact"

    def __init__(self, real: Any, scope: Any):
        self.real = real
        self.scope = scope

    def run(self, ctx) -> None:
        r = self.real
        ctx.ui.say(f"Starting from the last build's artifact: {r.describe()}")
        copies = []
        for f in r.files:
            if not f:
                copies.append(f)
                continue
            dest = os.path.join(self.scope.scratch, "last-build", os.path.basename(f))
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            try:
                if os.path.isdir(f):
                    shutil.copytree(f, dest, symlinks=True)
                else:
                    shutil.copy2(f, dest, follow_symlinks=False)
            except OSError as e:
                raise StepError(f"cannot copy {f}: {e.strerror or e}") from e
            copies.append(dest)
            ctx.ui.say(f"Copied {f} to {dest}")
        ctx.state["standin_files"] = copies
        if r.builder_id == "packer.post-processor.docker-import":
            from .docker.driver import client, docker_errors

            dclient = client()
            try:
                with docker_errors(f"The last build's image {r.id} is not in the docker engine"):
                    dclient.images.get(r.id)
            finally:
                dclient.close()


def _stand_in_tar(text: str) -> bytes:
    buf = io.BytesIO()
    data = text.encode()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("KILN-STAND-IN")
        info.size = len(data)
        info.mtime = int(time.time())
        tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _shown(path: str) -> str:
    """A path as the user would type it from where Kiln runs."""
    rel = os.path.relpath(path)
    return path if rel.startswith("..") else rel


def remove_images(scope: Any, build: str, say, ledger: Any = None) -> None:
    """Remove what the run made for ``build`` in the docker engine: the names it tagged
    (untagged, never forced: the image may be the last build's), then its stand-in image."""
    mine = [(ref, entry) for b, ref, entry in scope.images if b == build]
    if not mine:
        return
    from .docker.driver import client

    try:
        dclient = client()
    except StepError as e:
        say(f"Could not remove {', '.join(r for r, _ in mine)}: {e}; `kiln cleanup` will")
        return
    import docker

    try:
        for ref, entry in reversed(mine):
            try:
                dclient.images.remove(ref, force=ref.startswith("sha256:"))
            except docker.errors.ImageNotFound:
                pass
            except Exception as e:  # noqa: BLE001 - in use, say: report and go on
                say(f"Could not remove {ref}: {e}")
                continue
            say(f"Removed {ref} (made for this debug run)")
            if entry is not None and ledger is not None:
                ledger.release(entry)
    finally:
        dclient.close()
