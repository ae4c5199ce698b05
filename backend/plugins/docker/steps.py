"""The docker builder's steps: engine, temp dir, pull, run the container, connect, commit or
export."""

from __future__ import annotations

import os
import re
from typing import Any

from ...sdk.plugin import Step, StepError
from ..shell_local_common import render_runtime
from .config import DockerConfig, _counter, docker_run_args, parse_run_command
from .driver import (
    _Progress,
    api_error,
    client,
    docker_errors,
    is_docker_error,
    message,
    registry_login,
    split_image,
    stream_json,
    write_chunks,
)


class _Shared:
    """What the steps of one build share: the SDK client and the container."""

    def __init__(self, config: DockerConfig):
        self.config = config
        self.client: Any = None
        self.container_id = ""
        self.temp_dir = ""
        self.source_image: dict[str, Any] = {}


class EngineStep(Step):
    title = "Connect to Docker engine"

    def __init__(self, shared: _Shared):
        self.shared = shared

    def run(self, ctx) -> None:
        self.shared.client = client()

    def cleanup(self, ctx) -> None:
        if self.shared.client is not None:
            try:
                self.shared.client.close()
            except Exception:
                pass
            self.shared.client = None


class TempDirStep(Step):
    title = "Create shared temp dir"

    def __init__(self, shared: _Shared):
        self.shared = shared

    def run(self, ctx) -> None:
        ctx.ui.say("Creating a temporary directory for sharing data...")
        self.shared.temp_dir = ctx.temp_dir(prefix="kiln-docker-")

    def cleanup(self, ctx) -> None:
        if self.shared.temp_dir:
            ctx.remove_temp(self.shared.temp_dir)
            self.shared.temp_dir = ""


class PullStep(Step):
    title = "Pull image"

    def __init__(self, shared: _Shared):
        self.shared = shared

    def run(self, ctx) -> None:
        cfg = self.shared.config
        dclient = self.shared.client
        ctx.ui.say(f"Pulling Docker image: {cfg.image}")
        auth = registry_login(ctx.ui, dclient, cfg)
        try:
            repo, tag = split_image(cfg.image)
            response = dclient.api.pull(repo, tag=tag, stream=True, decode=True,
                                        platform=cfg.platform or None, auth_config=auth)
            stream_json(ctx, response, _Progress(ctx.ui).feed)
        except StepError as e:
            raise StepError(f"Error pulling Docker image: {e}") from e
        except Exception as e:
            if is_docker_error(e):
                raise StepError(f"Error pulling Docker image: {api_error(e)}") from e
            raise
        finally:
            if auth is not None:
                message(ctx.ui, "Logging out...")
        with docker_errors(f"cannot inspect the pulled image {cfg.image}"):
            info = dclient.api.inspect_image(cfg.image)
        ctx.generated_data["SourceImageSha256"] = info.get("Id", "")
        digests = info.get("RepoDigests") or []
        if digests:
            ctx.generated_data["SourceImageDigest"] = digests[0]
        else:
            ctx.ui.error(f"Cannot find the digest of {cfg.image}")


class RunContainerStep(Step):
    title = "Start container"

    def __init__(self, shared: _Shared):
        self.shared = shared
        self.entry: int | None = None
        self.cname = ""
        self.container_id = ""

    def run(self, ctx) -> None:
        import docker

        cfg = self.shared.config
        dclient = self.shared.client
        image = cfg.image
        if getattr(ctx, "cache", None) is not None:  # the provisioner cache picks the start
            from .cache import DockerCacheDriver

            image = ctx.cache.lookup(ctx, DockerCacheDriver(self.shared)) or cfg.image
        ctx.ui.say("Starting docker container...")
        rendered = [render_runtime(ctx, str(part), {"Image": image}, "run_command")
                    for part in cfg.run_command]
        args = docker_run_args(cfg, self.shared.temp_dir, rendered)
        message(ctx.ui, "Run command: docker run " + " ".join(args))
        try:
            spec = parse_run_command(args)
        except (ValueError, OSError) as e:
            raise StepError(f"run_command: {e}") from e
        for flag in spec.ignored:
            ctx.ui.say(f"Note: run_command flag {flag} has no effect in Kiln")
        kwargs = dict(spec.kwargs)
        self.cname = kwargs.pop("name", "") or _container_name(ctx)
        labels = dict(kwargs.pop("labels", {}) or {})
        if not cfg.commit:
            # docker commit copies a container's labels into the image, and Kiln's own have
            # no place in the user's image: a committed container is found by its name
            labels.update({"kiln.run": str(ctx.run_id), "kiln.build": str(ctx.build_name)})
        volumes = kwargs.pop("volumes", [])
        kwargs.pop("detach", None)
        # `docker run -v SRC:DST` is a bind mount and, unlike `-v DST`, no volume of the
        # container's config, so a commit does not turn it into a VOLUME of the image
        binds = [v for v in volumes if ":" in v]
        anonymous = [v for v in volumes if ":" not in v]

        if ctx.ledger is not None:
            self.entry = ctx.ledger.record(
                "docker-container", self.cname, build=ctx.build_name,
                data={"name": self.cname, "run": ctx.run_id,
                      "docker_host": os.environ.get("DOCKER_HOST", "")},
            )
        try:
            container = _create_container(dclient, spec.image, spec.command, self.cname,
                                          labels, binds, anonymous, kwargs)
            self.container_id = container.id
            if self.entry is not None:
                ctx.ledger.update(self.entry, data={"name": self.cname, "id": container.id,
                                                    "run": ctx.run_id,
                                                    "docker_host": os.environ.get("DOCKER_HOST", "")})
            container.start()
        except docker.errors.ImageNotFound as e:
            hint = " (pull is false: the image must already be in the local engine)" \
                if not cfg.pull else ""
            raise StepError(f"Error running container: image {spec.image} not found{hint}") from e
        except Exception as e:
            if is_docker_error(e):
                raise StepError(f"Error running container: {api_error(e)}") from e
            raise
        self.shared.container_id = container.id
        ctx.state["container_id"] = container.id
        ctx.instance_id = container.id
        ctx.access_hint = f"docker exec -it {container.id[:12]} sh"
        message(ctx.ui, f"Container ID: {container.id}")
        container.reload()
        state = container.attrs.get("State") or {}
        if not state.get("Running"):
            logs = container.logs(tail=5).decode("utf-8", "replace").strip()
            raise StepError(
                f"the container stopped right after it started (exit code {state.get('ExitCode')})"
                + (f": {logs}" if logs else "")
                + "; run_command must keep it running (the default starts /bin/sh with -i -t)"
            )

    def cleanup(self, ctx) -> None:
        import docker

        ident = self.container_id or self.cname
        if not ident:
            return
        if self.container_id:
            ctx.ui.say(f"Killing the container: {self.container_id}")
        try:
            dclient = self.shared.client or client()
        except StepError as e:
            ctx.ui.error(f"Could not remove the container {ident}: {e}; `kiln cleanup` will retry")
            return
        try:
            dclient.api.remove_container(ident, force=True, v=True)
        except docker.errors.NotFound:
            pass
        except Exception as e:
            if is_docker_error(e):
                ctx.ui.error(f"Could not remove the container {ident}: {api_error(e)}; "
                             "`kiln cleanup` will retry")
                return
            raise
        finally:
            if dclient is not self.shared.client:
                dclient.close()
        if self.entry is not None and ctx.ledger is not None:
            ctx.ledger.release(self.entry)
            self.entry = None
        self.container_id = ""
        self.cname = ""
        self.shared.container_id = ""


class ConnectStep(Step):
    title = "Connect"

    def __init__(self, shared: _Shared):
        self.shared = shared

    def run(self, ctx) -> None:
        from ...sdk.communicator import CommunicatorError
        from ..communicators.connect import connect

        cfg = self.shared.config
        host = ""
        if cfg.communicator_type() == "ssh":
            info = self.shared.client.api.inspect_container(self.shared.container_id)
            host = (info.get("NetworkSettings") or {}).get("IPAddress") or ""
        try:
            ctx.communicator = connect(ctx, cfg, host=host, container_id=self.shared.container_id)
        except CommunicatorError as e:
            raise StepError(str(e)) from e

    def cleanup(self, ctx) -> None:
        comm = ctx.communicator
        if comm is not None:
            comm.close()


class CommitStep(Step):
    title = "Commit container"

    def __init__(self, shared: _Shared):
        self.shared = shared

    def run(self, ctx) -> None:
        cfg = self.shared.config
        api = self.shared.client.api
        # as Packer 1.6.6: the changes go to the engine as written, and the image keeps the
        # container's own configuration (run_command's entrypoint included)
        changes = list(cfg.changes)
        ctx.ui.say("Committing the container")
        with docker_errors("Error committing the container"):
            res = api.commit(self.shared.container_id, message=cfg.message or None,
                             author=cfg.author or None, changes=changes or None)
        image_id = res.get("Id", "")
        ctx.state["image_id"] = image_id
        ctx.generated_data["ImageSha256"] = image_id
        message(ctx.ui, f"Image ID: {image_id}")


class ExportStep(Step):
    title = "Export container"

    def __init__(self, shared: _Shared):
        self.shared = shared

    def run(self, ctx) -> None:
        cfg = self.shared.config
        path = cfg.export_path
        ctx.ui.say("Exporting the container")
        api = self.shared.client.api
        try:
            write_chunks(ctx, ctx.ui, path,
                         lambda: api.export(self.shared.container_id, chunk_size=1 << 20),
                         "Exporting the container")
        except OSError as e:
            raise StepError(f"Error exporting the container to {path}: {e.strerror or e}") from e
        except Exception as e:
            if is_docker_error(e):
                raise StepError(f"Error exporting the container: {api_error(e)}") from e
            raise


def _create_container(dclient: Any, image: str, command: list[str], name: str,
                      labels: dict[str, str], binds: list[str], anonymous: list[str],
                      kwargs: dict[str, Any]) -> Any:
    """Create the container as ``docker run`` would: the SDK's ``containers.create`` also
    lists bind mounts among the config's volumes, which the CLI does not."""
    from docker.models.containers import _create_container_args

    args = _create_container_args({
        **kwargs, "image": image, "command": command or None, "name": name, "labels": labels,
        "volumes": binds or None, "detach": True, "version": dclient.api._version,
    })
    args["volumes"] = anonymous or None
    created = dclient.api.create_container(**args)
    return dclient.containers.get(created["Id"])


def _container_name(ctx) -> str:
    run = re.sub(r"[^a-zA-Z0-9]", "", str(ctx.run_id))[:12] or "run"
    return f"kiln-{run}-{os.getpid()}-{next(_counter)}"
