"""The docker-save post-processor: write the image to a tar file (``docker save``)."""

from __future__ import annotations

import os
from dataclasses import dataclass

from ...sdk.config import ConfigProblems, opt
from ...sdk.plugin import Artifact, PostProcessor, StepError
from ..docker.driver import (
    IMPORT_BUILDER_ID,
    api_error,
    client,
    is_docker_error,
    message,
    write_chunks,
)
from .docker_tag import BUILDER_ID as TAG_BUILDER_ID
from .docker_tag import check_input

ACCEPTS = (IMPORT_BUILDER_ID, TAG_BUILDER_ID)


@dataclass
class DockerSaveConfig:
    path: str = opt("", doc="tar file to write (required)")
    docker_path: str = opt("docker", doc="accepted for compatibility; Kiln uses the Engine API")

    def check(self) -> None:
        if not self.path:
            raise ConfigProblems([("path", "path must be given: the tar file to save the image "
                                   "to")])


class DockerSavePostProcessor(PostProcessor):
    type_name = "docker-save"
    Config = DockerSaveConfig
    default_keep = (True, False)

    config: DockerSaveConfig

    def post_process(self, ctx, ui, artifact: Artifact) -> Artifact | None:
        check_input(artifact, ACCEPTS, "docker-save saves only images: a docker build with "
                    '"commit": true, or the output of docker-import or docker-tag.')
        path = self.config.path
        image = artifact.id()
        # as Packer's: the file is created first, in a directory that must exist
        parent = os.path.dirname(path)
        if parent and not os.path.isdir(parent):
            raise StepError(f"Error creating output file: {parent} is not a directory")
        message(ui, f"Saving image: {image}")
        dclient = client()
        try:
            write_chunks(ctx, ui, path,
                         lambda: dclient.api.get_image(image, chunk_size=1 << 20),
                         f"Saving image {image}", make_parent=False)
        except OSError as e:
            raise StepError(f"Error saving image to {path}: {e.strerror or e}") from e
        except Exception as e:
            if is_docker_error(e):
                raise StepError(f"Error saving image {image}: {api_error(e)}") from e
            raise
        finally:
            dclient.close()
        message(ui, f"Saved to: {path}")
        return artifact
