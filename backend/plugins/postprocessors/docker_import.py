"""The docker-import post-processor: turn an exported container tar into an image."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ...sdk.config import ConfigProblems, opt
from ...sdk.plugin import Artifact, PostProcessor, StepError
from ..docker.driver import BUILDER_ID as DOCKER_BUILDER_ID
from ..docker.driver import (
    IMPORT_BUILDER_ID,
    DockerImageArtifact,
    api_error,
    carried_state,
    client,
    is_docker_error,
    message,
)
from .docker_tag import check_input

ARTIFICE_BUILDER_ID = "packer.post-processor.artifice"
ACCEPTS = (DOCKER_BUILDER_ID, ARTIFICE_BUILDER_ID)


@dataclass
class DockerImportConfig:
    repository: str = opt("", doc="repository of the imported image (required)")
    tag: str = opt("", doc="tag of the imported image")
    changes: list[str] = opt(default_factory=list, doc="Dockerfile instructions to apply")
    platform: str = opt("", doc="platform of the imported image")
    docker_path: str = opt("docker", doc="accepted for compatibility; Kiln uses the Engine API")

    def check(self) -> None:
        if not self.repository:
            raise ConfigProblems([("repository", "repository must be given: the name of the "
                                   "imported image")])


class DockerImportPostProcessor(PostProcessor):
    type_name = "docker-import"
    Config = DockerImportConfig
    default_keep = (False, False)

    config: DockerImportConfig

    def post_process(self, ctx, ui, artifact: Artifact) -> Artifact | None:
        cfg = self.config
        check_input(artifact, ACCEPTS, "docker-import imports only tar files: a docker build "
                    'with "export_path", or files chosen with the artifice post-processor.')
        files = [f for f in artifact.files() if f]
        if not files:
            raise StepError("docker-import: the input artifact has no file to import (a docker "
                            'build with "discard": true exports nothing)')
        name = cfg.repository + (f":{cfg.tag}" if cfg.tag else "")
        message(ui, f"Importing image: {artifact.id()}")
        message(ui, f"Repository: {name}")
        params: dict[str, Any] = {"fromSrc": "-", "repo": cfg.repository}
        if cfg.tag:
            params["tag"] = cfg.tag
        if cfg.changes:
            params["changes"] = list(cfg.changes)
        if cfg.platform:
            params["platform"] = cfg.platform
        dclient = client()
        try:
            api = dclient.api
            with open(files[0], "rb") as f:
                res = api._post(api._url("/images/create"), data=f, params=params,
                                headers={"Content-Type": "application/tar"}, timeout=None)
            api._raise_for_status(res)
            image_id = _last_status(res.text)
        except OSError as e:
            raise StepError(f"Error importing {files[0]}: {e.strerror or e}") from e
        except Exception as e:
            if is_docker_error(e):
                raise StepError(f"Error importing image: {api_error(e)}") from e
            raise
        finally:
            dclient.close()
        message(ui, f"Imported ID: {image_id}")
        return DockerImageArtifact(IMPORT_BUILDER_ID, name, carried_state(artifact))


def _last_status(text: str) -> str:
    status = ""
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            ev = json.loads(line)
        except ValueError:
            continue
        if ev.get("error"):
            raise StepError(f"Error importing image: {ev['error']}")
        status = ev.get("status") or status
    return status.strip()
