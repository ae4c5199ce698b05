"""Talking to the docker engine, shared by the builder, its communicator and the docker-*
post-processors: the client, errors, registry login, progress, the image artifact, and the
reapers kiln cleanup calls."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ...sdk.plugin import Artifact, Cancelled, StepError

BUILDER_ID = "packer.docker"


IMPORT_BUILDER_ID = "packer.post-processor.docker-import"


def message(ui: Any, text: str) -> None:
    """A line Packer prints with ``ui.Message``: indented like command output
    (``    docker: Container ID: ...``) rather than as a ``==>`` step line."""
    ui.stdout(text)


def client() -> Any:
    """A docker SDK client, or StepError with what to do when there is no engine."""
    from ...sdk.communicator import CommunicatorError
    from .communicator import docker_client

    try:
        return docker_client()
    except CommunicatorError as e:
        raise StepError(str(e)) from e


def api_error(e: BaseException) -> str:
    from .communicator import explain

    return explain(e)


def is_docker_error(e: BaseException) -> bool:
    import docker
    import requests

    return isinstance(e, (docker.errors.DockerException, requests.exceptions.RequestException))


@contextmanager
def docker_errors(what: str) -> Iterator[None]:
    """Docker SDK and HTTP errors inside the block become ``StepError("what: reason")``."""
    try:
        yield
    except Exception as e:
        if is_docker_error(e):
            raise StepError(f"{what}: {api_error(e)}") from e
        raise


def ecr_credentials(server: str, access_key: str = "", secret_key: str = "", token: str = "",
                    profile: str = "") -> tuple[str, str]:
    """(username, password) for an ECR registry, from AWS credentials."""
    import base64

    import boto3

    m = re.match(r"^(?:https?://)?(\d+)\.dkr\.ecr(?:-fips)?\.([a-z0-9-]+)\.amazonaws\.com", server)
    if not m:
        raise StepError(f"{server} does not look like an ECR registry address "
                        "(ACCOUNT.dkr.ecr.REGION.amazonaws.com)")
    account, region = m.group(1), m.group(2)
    session = boto3.session.Session(
        aws_access_key_id=access_key or None, aws_secret_access_key=secret_key or None,
        aws_session_token=token or None, profile_name=profile or None, region_name=region,
    )
    try:
        resp = session.client("ecr").get_authorization_token(registryIds=[account])
        data = resp["authorizationData"][0]["authorizationToken"]
    except Exception as e:
        raise StepError(f"cannot get an ECR login token: {e}") from e
    user, _, password = base64.b64decode(data).decode().partition(":")
    return user, password


def registry_login(ui: Any, dclient: Any, cfg: Any) -> dict[str, str] | None:
    """Log in as the config says (login/ecr_login); the auth config for pull/push, or None."""
    if not (cfg.login or cfg.ecr_login):
        return None
    message(ui, "Logging in...")
    if cfg.ecr_login:
        user, password = ecr_credentials(cfg.login_server, cfg.aws_access_key, cfg.aws_secret_key,
                                         cfg.aws_token, cfg.aws_profile)
    else:
        user, password = cfg.login_username, cfg.login_password
    with docker_errors("Error logging in"):
        dclient.login(username=user, password=password, registry=cfg.login_server or None,
                      reauth=True)
    auth = {"username": user, "password": password}
    if cfg.login_server:
        auth["serveraddress"] = cfg.login_server
    return auth


def split_image(name: str) -> tuple[str, str | None]:
    """(repository, tag or digest); a bare name means the ``latest`` tag."""
    from docker.utils import parse_repository_tag

    repo, tag = parse_repository_tag(name)
    if tag is None:
        tag = "latest"
    return repo, tag


class _Progress:
    """Turns the engine's JSON progress messages into UI lines and progress events."""

    def __init__(self, ui: Any):
        self.ui = ui
        self.said: set[str] = set()

    def feed(self, ev: dict[str, Any]) -> None:
        if ev.get("error"):
            raise StepError(str(ev.get("error")).strip())
        status = ev.get("status") or ""
        ident = ev.get("id") or ""
        detail = ev.get("progressDetail") or {}
        if detail.get("total"):
            self.ui.progress(f"{ident}: {status}".strip(": "), detail.get("current"),
                             detail.get("total"))
            return
        line = f"{ident}: {status}" if ident else status
        if line and line not in self.said:
            self.said.add(line)
            message(self.ui, line)


def stream_json(ctx: Any, response: Any, on_event) -> None:
    """Feed decoded JSON events of a streaming call to ``on_event`` until it ends or the
    run is cancelled."""
    # the SDK's stream is a generator that cannot be closed from another thread; the engine
    # sends progress often, so a cancel is noticed at the next message
    try:
        for ev in response:
            if ctx.cancel.cancelled:
                break
            on_event(ev)
    except Exception as e:
        if ctx.cancel.cancelled:
            raise Cancelled(ctx.cancel.reason or "cancelled") from e
        raise
    finally:
        close = getattr(response, "close", None)
        if close is not None:
            close()
    ctx.cancel.check()


class DockerImageArtifact(Artifact):
    """An image in the local engine (commit, docker-import, docker-tag, docker-push)."""

    def __init__(self, builder_id: str, image: str, state: dict[str, Any] | None = None):
        super().__init__(builder_id, id=image, state=state or {})

    def string(self) -> str:
        tags = self.state("docker_tags") or []
        text = f"Imported Docker image: {self.id()}"
        if tags:
            text += " with tags " + " ".join(tags)
        return text

    def destroy(self) -> None:
        dclient = client()
        try:
            dclient.images.remove(self.id())
        except Exception as e:
            import docker

            if isinstance(e, docker.errors.ImageNotFound):
                return
            if is_docker_error(e):
                raise StepError(f"cannot remove image {self.id()}: {api_error(e)}") from e
            raise
        finally:
            dclient.close()


def carried_state(artifact: Artifact, **state: Any) -> dict[str, Any]:
    """``state`` plus a copy of ``artifact``'s generated data, when it has any."""
    data = artifact.state("generated_data")
    if isinstance(data, dict):
        state["generated_data"] = dict(data)
    return state


def write_chunks(ctx: Any, ui: Any, path: str, open_chunks, label: str,
                 make_parent: bool = True) -> None:
    """Write the byte chunks ``open_chunks()`` returns to ``path``, reporting progress as
    ``label``; on failure no partial file is left."""
    done = False
    try:
        parent = os.path.dirname(path)
        if parent and make_parent:
            os.makedirs(parent, exist_ok=True)
        chunks = open_chunks()
        written = 0
        with open(path, "wb") as f:
            for chunk in chunks:
                ctx.cancel.check()
                f.write(chunk)
                written += len(chunk)
                ui.progress(label, written, None)
        done = True
    finally:
        if not done and os.path.exists(path):
            os.remove(path)


def export_artifact(path: str, state: dict[str, Any]) -> Artifact:
    return Artifact(BUILDER_ID, id="Container", files=[path], files_must_exist=True,
                    string=f"Exported Docker file: {path}", state=state)


def _reap_client(entry) -> Any:
    from .communicator import docker_client

    host = (entry.data or {}).get("docker_host") or ""
    if host and host != os.environ.get("DOCKER_HOST", ""):
        return docker_client(timeout=60, base_url=host)
    return docker_client(timeout=60)


def reap_container(entry) -> None:
    """Remove a container a killed run left behind (by id, else by its unique name)."""
    ident = (entry.data or {}).get("id") or entry.ident
    dclient = _reap_client(entry)
    import docker

    try:
        dclient.api.remove_container(ident, force=True, v=True)
    except docker.errors.NotFound:
        pass
    finally:
        dclient.close()


def reap_image(entry) -> None:
    """Remove an image a killed run left behind."""
    ident = (entry.data or {}).get("id") or entry.ident
    dclient = _reap_client(entry)
    import docker

    try:
        dclient.images.remove(ident, force=True)
    except docker.errors.ImageNotFound:
        pass
    finally:
        dclient.close()
