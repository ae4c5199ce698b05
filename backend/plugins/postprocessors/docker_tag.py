"""The docker-tag post-processor: give the built image one or more names."""

from __future__ import annotations

from dataclasses import dataclass

from ...sdk.config import ConfigProblems, opt
from ...sdk.plugin import Artifact, PostProcessor, StepError
from ..docker.driver import (
    IMPORT_BUILDER_ID,
    DockerImageArtifact,
    carried_state,
    client,
    docker_errors,
    message,
)

BUILDER_ID = "packer.post-processor.docker-tag"
ACCEPTS = (IMPORT_BUILDER_ID, BUILDER_ID)


@dataclass
class DockerTagConfig:
    repository: str = opt("", doc="repository to tag the image into (required)")
    tags: list[str] = opt(default_factory=list, doc="tags; none means the repository alone "
                          "(latest)")
    tag: list[str] = opt(default_factory=list, doc="deprecated spelling of tags")
    force: bool = opt(False, doc="accepted for compatibility (docker dropped tag --force)")
    docker_path: str = opt("docker", doc="accepted for compatibility; Kiln uses the Engine API")

    def all_tags(self) -> list[str]:
        return list(self.tags) + list(self.tag)

    def check(self) -> None:
        if not self.repository:
            raise ConfigProblems([("repository", "repository must be given: the name to tag "
                                   "the image as")])


def check_input(artifact: Artifact, accepts: tuple[str, ...], what: str) -> None:
    if artifact.builder_id not in accepts:
        raise StepError(f"Unknown artifact type: {artifact.builder_id}\n{what}")


class DockerTagPostProcessor(PostProcessor):
    type_name = "docker-tag"
    Config = DockerTagConfig
    default_keep = (True, True)

    config: DockerTagConfig

    def prepare(self, ctx) -> list[str]:
        if self.config.tag:
            return ['"tag" is deprecated: list the tags in "tags" instead']
        return []

    def post_process(self, ctx, ui, artifact: Artifact) -> Artifact | None:
        cfg = self.config
        if cfg.tag:
            ui.say('Deprecation warning: "tag" is now spelled "tags"; please update the template.')
        check_input(artifact, ACCEPTS, "docker-tag tags only images: a docker build with "
                    '"commit": true, or the output of docker-import or docker-tag.')
        source = artifact.id()
        names = [f"{cfg.repository}:{t}" for t in cfg.all_tags()] or [cfg.repository]
        dclient = client()
        try:
            for name in names:
                ctx.cancel.check()
                message(ui, f"Tagging image: {source}")
                message(ui, f"Repository: {name}")
                repo, _, tag = name.rpartition(":") if _has_tag(name) else (name, "", "")
                with docker_errors(f"Error tagging image {source} as {name}"):
                    dclient.api.tag(source, repo, tag or None, force=cfg.force)
        finally:
            dclient.close()
        tagged = [f"{cfg.repository}:{t}" for t in cfg.all_tags()]
        state = carried_state(artifact, docker_tags=tagged)
        return DockerImageArtifact(BUILDER_ID, names[-1], state)


def _has_tag(name: str) -> bool:
    """True when ``name`` ends in ``:tag`` (a registry port does not count)."""
    last = name.rsplit("/", 1)[-1]
    return ":" in last
