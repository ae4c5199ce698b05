"""The docker-push post-processor: push the image's names to their registry."""

from __future__ import annotations

from contextlib import closing
from dataclasses import dataclass
from typing import Any

from ...sdk.config import ConfigProblems, opt
from ...sdk.plugin import Artifact, PostProcessor, StepError
from ..docker.driver import (
    IMPORT_BUILDER_ID,
    DockerImageArtifact,
    _Progress,
    client,
    docker_errors,
    is_docker_error,
    message,
    registry_login,
    split_image,
    stream_json,
)
from .docker_tag import BUILDER_ID as TAG_BUILDER_ID
from .docker_tag import check_input

ACCEPTS = (IMPORT_BUILDER_ID, TAG_BUILDER_ID)


@dataclass
class DockerPushConfig:
    login: bool = opt(False, doc="log in before pushing")
    login_username: str = opt("")
    login_password: str = opt("", secret=True)
    login_server: str = opt("", doc="registry to log in to")
    ecr_login: bool = opt(False, doc="log in to Amazon ECR (needs login_server)")
    aws_access_key: str = opt("")
    aws_secret_key: str = opt("", secret=True)
    aws_token: str = opt("", secret=True)
    aws_profile: str = opt("")
    platform: str = opt("", doc="accepted for compatibility; the engine pushes what it has")
    docker_path: str = opt("docker", doc="accepted for compatibility; Kiln uses the Engine API")

    def check(self) -> None:
        problems = []
        if self.ecr_login and not self.login_server:
            problems.append(("login_server", "ecr_login needs login_server (the ECR registry "
                             "address)"))
        if self.login and not self.ecr_login and not self.login_username:
            problems.append(("login_username", "login needs login_username and login_password"))
        if problems:
            raise ConfigProblems(problems)


class DockerPushPostProcessor(PostProcessor):
    type_name = "docker-push"
    Config = DockerPushConfig
    default_keep = (True, False)

    config: DockerPushConfig

    def post_process(self, ctx, ui, artifact: Artifact) -> Artifact | None:
        cfg = self.config
        check_input(artifact, ACCEPTS, "docker-push pushes only images: the output of a docker "
                    'build with "commit": true, docker-import or docker-tag.')
        tags = list(artifact.state("docker_tags") or [])
        names: list[str] = []
        for name in [artifact.id(), *tags]:
            if name and name not in names:
                names.append(name)
        dclient = client()
        digest = ""
        with closing(dclient), docker_errors("Error pushing image"):
            auth = registry_login(ui, dclient, cfg)
            try:
                for name in names:
                    ctx.cancel.check()
                    message(ui, f"Pushing: {name}")
                    repo, tag = split_image(name)
                    seen: dict[str, Any] = {}
                    progress = _Progress(ui)

                    def on_event(ev: dict[str, Any], seen=seen, progress=progress) -> None:
                        aux = ev.get("aux") or {}
                        if aux.get("Digest"):
                            seen["digest"] = aux["Digest"]
                        progress.feed(ev)

                    try:
                        response = dclient.api.push(repo, tag=tag, stream=True, decode=True,
                                                    auth_config=auth)
                        stream_json(ctx, response, on_event)
                    except StepError as e:
                        raise StepError(f"Error pushing {name}: {e}") from e
                    digest = digest or _repo_digest(dclient, name, repo) or (
                        f"{repo}@{seen['digest']}" if seen.get("digest") else "")
            finally:
                if auth is not None:
                    message(ui, "Logging out...")
        data = artifact.state("generated_data")
        gen = dict(data) if isinstance(data, dict) else {}
        if digest:
            gen["Digest"] = digest
        state: dict[str, Any] = {"docker_tags": tags, "generated_data": gen}
        return DockerImageArtifact(IMPORT_BUILDER_ID, names[0], state)


def _repo_digest(dclient: Any, name: str, repo: str) -> str:
    try:
        digests = dclient.api.inspect_image(name).get("RepoDigests") or []
    except Exception as e:
        if is_docker_error(e):
            return ""
        raise
    for d in digests:
        if d.startswith(repo + "@"):
            return d
    return digests[0] if digests else ""
