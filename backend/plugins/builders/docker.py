"""The docker builder: provision a container, then commit, export or discard it.

Packer's docker builder drives the ``docker`` command line; Kiln talks to the
Engine API through the docker SDK instead (imported lazily), but keeps the
template language: ``run_command`` is still written as ``docker run`` flags and
is translated into a container-create request by :func:`parse_run_command`.

Every container is recorded in the resource ledger before it is created, named
``kiln-<run>-<pid>-<n>`` and, unless it is to be committed (docker commit would
copy the labels into the image), labelled ``kiln.run=<run id>``; the run step's
cleanup removes it (forced) on success, failure and cancel, and ``kiln cleanup``
reaps what a killed run left through :func:`reap_container`.
"""

from __future__ import annotations

import itertools
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from backend.plugins.base import PROVISION, Artifact, Builder, Cancelled, Step, StepError
from backend.plugins.communicators.config import CommunicatorConfig
from backend.plugins.shell_local_common import render_runtime
from backend.template.decode import ConfigProblems, Deferred, opt

BUILDER_ID = "packer.docker"
IMPORT_BUILDER_ID = "packer.post-processor.docker-import"

DEFAULT_RUN_COMMAND = ("-d", "-i", "-t", "--entrypoint=/bin/sh", "--", "{{.Image}}")
DEFAULT_CONTAINER_DIR = "/packer-files"

#: Dockerfile instructions ``docker commit --change`` accepts (STOPSIGNAL since Docker 24)
CHANGE_INSTRUCTIONS = ("CMD", "ENTRYPOINT", "ENV", "EXPOSE", "HEALTHCHECK", "LABEL", "ONBUILD",
                       "STOPSIGNAL", "USER", "VOLUME", "WORKDIR")

PLACEHOLDERS = {
    "ImageSha256": "ERR_IMAGE_SHA256_NOT_FOUND",
    "SourceImageDigest": "ERR_SOURCE_IMAGE_DIGEST_NOT_FOUND",
    "SourceImageSha256": "ERR_SOURCE_IMAGE_SHA256_NOT_FOUND",
}

_counter = itertools.count(1)


# -- configuration -------------------------------------------------------------------


@dataclass
class DockerConfig(CommunicatorConfig):
    image: str = opt("", doc="the base image (required)")
    pull: bool = opt(True, doc="pull the image before starting it (default true)")
    commit: bool = opt(False, doc="commit the container to an image")
    discard: bool = opt(False, doc="throw the container away")
    export_path: str = opt("", doc="export the container's file system as a tar to this path")
    changes: list[str] = opt(default_factory=list, doc="Dockerfile instructions applied on commit")
    run_command: list[Deferred] = opt(
        default_factory=lambda: [Deferred(x) for x in DEFAULT_RUN_COMMAND],
        doc="docker run arguments; {{.Image}} is the image",
    )
    volumes: dict[str, str] = opt(default_factory=dict, doc="host path -> container path mounts")
    privileged: bool = opt(False, doc="run the container privileged")
    cap_add: list[str] = opt(default_factory=list, doc="capabilities to add")
    cap_drop: list[str] = opt(default_factory=list, doc="capabilities to drop")
    device: list[str] = opt(default_factory=list, doc="host devices to add (host[:container])")
    tmpfs: list[str] = opt(default_factory=list, doc="tmpfs mounts (path[:options])")
    runtime: str = opt("", doc="OCI runtime of the container")
    author: str = opt("", doc="author of the committed image")
    message: str = opt("", doc="commit message")
    container_dir: str = opt("", doc="where the shared temp dir is mounted (/packer-files)")
    exec_user: str = opt("", doc="user provisioner commands run as")
    fix_upload_owner: bool = opt(True, doc="chown uploads to the container's user")
    platform: str = opt("", doc="platform of the image (linux/amd64...)")
    pty: bool = opt(False, doc="give commands a pseudo-terminal")
    docker_path: str = opt("docker", doc="accepted for compatibility; Kiln uses the Engine API")
    windows_container: bool = opt(False, doc="Windows container (not supported by Kiln)")
    login: bool = opt(False, doc="log in to a registry before pulling")
    login_server: str = opt("", doc="registry to log in to")
    login_username: str = opt("")
    login_password: str = opt("", secret=True)
    ecr_login: bool = opt(False, doc="log in to Amazon ECR (needs login_server)")
    aws_access_key: str = opt("")
    aws_secret_key: str = opt("", secret=True)
    aws_token: str = opt("", secret=True)
    aws_profile: str = opt("")
    build: Any = opt(None, doc="Dockerfile bootstrap (not supported by Kiln)")

    _default_communicator = "docker"

    def effective_container_dir(self) -> str:
        return self.container_dir or DEFAULT_CONTAINER_DIR

    def check(self) -> None:
        problems = self.communicator_problems()
        ctype = self.communicator_type()
        if ctype not in ("docker", "ssh", "none"):
            problems.append(("communicator", f'the docker builder cannot use the "{ctype}" '
                             "communicator; use docker (default), ssh or none"))
        if self.build is not None:
            problems.append(("build", "building the base image from a Dockerfile (build) is not "
                             "supported by Kiln; build it with `docker build` and name it in image"))
            if self.image:
                problems.append(("image", "image and build cannot both be given"))
        elif not self.image:
            problems.append(("image", "image must be given: the image to start the container from"))
        chosen = [k for k, v in (("commit", self.commit), ("discard", self.discard),
                                 ("export_path", self.export_path)) if v]
        if not chosen:
            problems.append(("", "say what to do with the container: set one of commit, discard "
                             "or export_path"))
        elif len(chosen) > 1:
            problems.append((chosen[1], f"only one of commit, discard and export_path may be set; "
                             f"this one has {' and '.join(chosen)}"))
        if self.export_path and os.path.isdir(self.export_path):
            problems.append(("export_path", f"export_path {self.export_path} is a directory; it "
                             "must name the tar file to write"))
        if self.ecr_login and not self.login_server:
            problems.append(("login_server", "ecr_login needs login_server (the ECR registry "
                             "address)"))
        if self.login and not self.ecr_login and not self.login_server and not self.login_username:
            problems.append(("login", "login needs login_username and login_password "
                             "(and login_server unless it is Docker Hub)"))
        if self.windows_container:
            problems.append(("windows_container", "Windows containers are not supported by Kiln"))
        for host in self.volumes:
            if not host:
                problems.append(("volumes", "a volume needs a host path"))
        if problems:
            raise ConfigProblems(problems)

    def docker_container(self) -> str:
        return ""


# -- docker run flags ------------------------------------------------------------------


@dataclass
class RunSpec:
    """What ``docker run <args>`` asks for, as container-create arguments."""

    image: str = ""
    command: list[str] = field(default_factory=list)
    kwargs: dict[str, Any] = field(default_factory=dict)
    ignored: list[str] = field(default_factory=list)


# flag -> (create kwarg, kind). kinds: bool, str, list, append (repeatable str)
_BOOL_FLAGS = {
    "-d": None, "--detach": None, "-i": "stdin_open", "--interactive": "stdin_open",
    "-t": "tty", "--tty": "tty", "--privileged": "privileged", "--rm": "auto_remove",
    "--init": "init", "--read-only": "read_only", "-P": "publish_all_ports",
    "--publish-all": "publish_all_ports", "--oom-kill-disable": "oom_kill_disable",
    "--sig-proxy": None, "--no-healthcheck": None, "-q": None, "--quiet": None,
}
_VALUE_FLAGS = {
    "--entrypoint": "entrypoint", "-u": "user", "--user": "user", "-w": "working_dir",
    "--workdir": "working_dir", "-h": "hostname", "--hostname": "hostname", "--name": "name",
    "--network": "network_mode", "--net": "network_mode", "--runtime": "runtime",
    "--platform": "platform", "--shm-size": "shm_size", "-m": "mem_limit",
    "--memory": "mem_limit", "--memory-swap": "memswap_limit", "--cpus": "nano_cpus",
    "-c": "cpu_shares", "--cpu-shares": "cpu_shares", "--cpuset-cpus": "cpuset_cpus",
    "--cpuset-mems": "cpuset_mems", "--ipc": "ipc_mode", "--pid": "pid_mode", "--uts": "uts_mode",
    "--userns": "userns_mode", "--cgroupns": "cgroupns", "--stop-signal": "stop_signal",
    "--restart": "restart_policy", "--log-driver": "log_driver", "--domainname": "domainname",
    "--mac-address": "mac_address", "--pids-limit": "pids_limit", "--cgroup-parent": "cgroup_parent",
    "--stop-timeout": "stop_timeout", "--pull": None, "--detach-keys": None, "--cidfile": None,
    "--isolation": "isolation",
}
_LIST_FLAGS = {
    "-e": "environment", "--env": "environment", "--env-file": "env_file", "-v": "volumes",
    "--volume": "volumes", "-l": "labels", "--label": "labels", "--cap-add": "cap_add",
    "--cap-drop": "cap_drop", "--device": "devices", "--tmpfs": "tmpfs", "--dns": "dns",
    "--dns-search": "dns_search", "--dns-option": "dns_opt", "--dns-opt": "dns_opt",
    "--add-host": "extra_hosts", "--security-opt": "security_opt", "--sysctl": "sysctls",
    "--ulimit": "ulimits", "--group-add": "group_add", "--mount": "mounts", "-p": "ports",
    "--publish": "ports", "--expose": "expose", "--log-opt": "log_opt", "--volumes-from":
    "volumes_from", "-a": None, "--attach": None, "--link": "links", "--storage-opt": "storage_opt",
}
_SHORT_BOOL = {"d", "i", "t", "P", "q"}
_SHORT_VALUE = {"e", "v", "l", "u", "w", "h", "m", "c", "p", "a"}


def _size(text: str) -> int:
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([bkmgt]?)b?\s*", text.lower())
    if not m:
        raise ValueError(f"invalid size {text!r}")
    mult = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}[m.group(2)]
    return int(float(m.group(1)) * mult)


def parse_run_command(args: list[str]) -> RunSpec:
    """Translate ``docker run`` arguments into a :class:`RunSpec`; raise ValueError if unknown."""
    spec = RunSpec()
    raw: dict[str, Any] = {}
    lists: dict[str, list[str]] = {}
    i = 0
    n = len(args)

    def take(flag: str) -> str:
        nonlocal i
        i += 1
        if i >= n:
            raise ValueError(f"the docker run flag {flag} needs a value")
        return args[i]

    def put(flag: str, value: str | None) -> None:
        if flag in _BOOL_FLAGS:
            key = _BOOL_FLAGS[flag]
            truth = True if value is None else value.lower() not in ("false", "0", "")
            if key is not None:
                raw[key] = truth
            return
        if flag in _VALUE_FLAGS:
            key = _VALUE_FLAGS[flag]
            val = take(flag) if value is None else value
            if key is None:
                spec.ignored.append(f"{flag}={val}")
            else:
                raw[key] = val
            return
        if flag in _LIST_FLAGS:
            key = _LIST_FLAGS[flag]
            val = take(flag) if value is None else value
            if key is None:
                spec.ignored.append(f"{flag}={val}")
            else:
                lists.setdefault(key, []).append(val)
            return
        raise ValueError(f"the docker run flag {flag} is not supported by Kiln")

    while i < n:
        a = args[i]
        if a == "--":
            i += 1
            break
        if a.startswith("--"):
            name, eq, value = a.partition("=")
            put(name, value if eq else None)
        elif a.startswith("-") and len(a) > 1:
            cluster = a[1:]
            j = 0
            while j < len(cluster):
                ch = cluster[j]
                if ch in _SHORT_BOOL:
                    put(f"-{ch}", None)
                    j += 1
                    continue
                if ch in _SHORT_VALUE:
                    rest = cluster[j + 1:]
                    if rest.startswith("="):
                        rest = rest[1:]
                    put(f"-{ch}", rest if rest else None)
                    break
                raise ValueError(f"the docker run flag -{ch} is not supported by Kiln")
        else:
            break
        i += 1
    if i >= n:
        raise ValueError("run_command names no image (expected `... -- IMAGE [COMMAND...]`)")
    spec.image = args[i]
    spec.command = list(args[i + 1:])
    spec.kwargs = _to_create_kwargs(raw, lists)
    return spec


def _kv_list(items: list[str], what: str) -> dict[str, str]:
    out = {}
    for item in items:
        k, sep, v = item.partition("=")
        if not k:
            raise ValueError(f"invalid {what} {item!r}")
        out[k] = v if sep else ""
    return out


def _to_create_kwargs(raw: dict[str, Any], lists: dict[str, list[str]]) -> dict[str, Any]:
    kw: dict[str, Any] = {}
    for key, value in raw.items():
        if key == "entrypoint":
            kw["entrypoint"] = [value]  # the CLI does not split --entrypoint
        elif key in ("shm_size", "mem_limit", "memswap_limit"):
            kw[key] = -1 if value == "-1" else _size(value)
        elif key == "nano_cpus":
            kw[key] = int(float(value) * 1e9)
        elif key in ("cpu_shares", "pids_limit", "stop_timeout"):
            kw[key] = int(value)
        elif key == "restart_policy":
            name, _, count = value.partition(":")
            kw[key] = {"Name": name, "MaximumRetryCount": int(count or 0)}
        elif key == "log_driver":
            kw.setdefault("log_config", {})["type"] = value
        elif key == "cgroupns":
            kw["cgroupns"] = value
        else:
            kw[key] = value
    for key, values in lists.items():
        if key == "environment":
            kw.setdefault("environment", []).extend(values)
        elif key == "env_file":
            for path in values:
                with open(os.path.expanduser(path), encoding="utf-8") as f:
                    for line in f:
                        line = line.strip()
                        if line and not line.startswith("#"):
                            kw.setdefault("environment", []).append(line)
        elif key == "labels":
            kw["labels"] = _kv_list(values, "label")
        elif key == "tmpfs":
            kw["tmpfs"] = {p: o for p, _, o in (v.partition(":") for v in values)}
        elif key == "extra_hosts":
            kw["extra_hosts"] = [v.replace("=", ":", 1) if ":" not in v else v for v in values]
        elif key == "sysctls":
            kw["sysctls"] = _kv_list(values, "sysctl")
        elif key == "storage_opt":
            kw["storage_opt"] = _kv_list(values, "storage option")
        elif key == "log_opt":
            kw.setdefault("log_config", {})["config"] = _kv_list(values, "log option")
        elif key == "ulimits":
            from docker.types import Ulimit

            uls = []
            for v in values:
                name, _, limits = v.partition("=")
                soft, _, hard = limits.partition(":")
                uls.append(Ulimit(name=name, soft=int(soft), hard=int(hard or soft)))
            kw["ulimits"] = uls
        elif key == "mounts":
            kw["mounts"] = [_mount(v) for v in values]
        elif key == "ports":
            ports: dict[str, Any] = {}
            for v in values:
                parts = v.split(":")
                cport = parts[-1]
                if len(parts) == 1:
                    ports[cport] = None
                elif len(parts) == 2:
                    ports[cport] = int(parts[0]) if parts[0] else None
                else:
                    ports[cport] = (parts[0], int(parts[1])) if parts[1] else (parts[0],)
            kw["ports"] = ports
        elif key == "expose":
            kw.setdefault("ports", {})
            for v in values:
                kw["ports"].setdefault(v, None)
        else:
            kw[key] = list(values)
    if "log_config" in kw:
        from docker.types import LogConfig

        lc = kw["log_config"]
        kw["log_config"] = LogConfig(type=lc.get("type", "json-file"), config=lc.get("config"))
    return kw


def _mount(text: str) -> Any:
    from docker.types import Mount

    opts: dict[str, str] = {}
    flags: set[str] = set()
    for part in text.split(","):
        k, sep, v = part.partition("=")
        if sep:
            opts[k.strip()] = v.strip()
        else:
            flags.add(k.strip())
    target = opts.get("target") or opts.get("destination") or opts.get("dst")
    if not target:
        raise ValueError(f"--mount {text!r} has no target")
    source = opts.get("source") or opts.get("src")
    read_only = "readonly" in flags or "ro" in flags or opts.get("readonly") in ("1", "true") \
        or opts.get("ro") in ("1", "true")
    return Mount(target=target, source=source, type=opts.get("type", "volume"),
                 read_only=read_only)


def docker_run_args(config: DockerConfig, temp_dir: str, rendered: list[str]) -> list[str]:
    """The ``docker run`` arguments Packer would use (shown to the user, then parsed)."""
    args: list[str] = []
    for d in config.device:
        args += ["--device", d]
    for c in config.cap_add:
        args += ["--cap-add", c]
    for c in config.cap_drop:
        args += ["--cap-drop", c]
    if config.privileged:
        args.append("--privileged")
    if config.runtime:
        args += ["--runtime", config.runtime]
    if config.platform:
        args += ["--platform", config.platform]
    for t in config.tmpfs:
        args += ["--tmpfs", t]
    volumes = dict(config.volumes)
    volumes[temp_dir] = config.effective_container_dir()
    for host, guest in volumes.items():
        host = os.path.expanduser(host) if host.startswith("~/") else host
        args += ["-v", f"{host}:{guest}"]
    return args + rendered


# -- shared docker helpers (also used by the post-processors) ----------------------------


def message(ui: Any, text: str) -> None:
    """A line Packer prints with ``ui.Message``: indented like command output
    (``    docker: Container ID: ...``) rather than as a ``==>`` step line."""
    ui.stdout(text)


def client() -> Any:
    """A docker SDK client, or StepError with what to do when there is no engine."""
    from backend.plugins.communicators.base import CommunicatorError
    from backend.plugins.communicators.docker import docker_client

    try:
        return docker_client()
    except CommunicatorError as e:
        raise StepError(str(e)) from e


def api_error(e: BaseException) -> str:
    from backend.plugins.communicators.docker import explain

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


# -- artifacts -------------------------------------------------------------------------


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


# -- steps -----------------------------------------------------------------------------


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
            from .docker_cache import DockerCacheDriver

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
        from backend.plugins.communicators.base import CommunicatorError
        from backend.plugins.communicators.connect import connect

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



# -- the builder -----------------------------------------------------------------------


class DockerBuilder(Builder):
    type_name = "docker"
    builder_id = BUILDER_ID
    Config = DockerConfig
    generated_keys = ("ImageSha256", "SourceImageDigest")
    deferred_keys = ("run_command",)

    def prepare(self, ctx) -> list[str]:
        """Check run_command's flags now rather than after the image was pulled."""
        args = [re.sub(r"\{\{.*?\}\}", "x", str(a)) for a in self.config.run_command]
        try:
            parse_run_command(args)
        except ValueError as e:
            raise ConfigProblems([("run_command", str(e))]) from None
        except OSError:
            pass  # an --env-file that appears later is read at run time
        # Packer hands the changes to the engine unchecked, and so does Kiln: a newer engine
        # may take more; what this list lacks most likely fails at the commit
        return [f"changes: {change!r}: docker commit takes only "
                f"{', '.join(CHANGE_INSTRUCTIONS)}; the engine will most likely refuse this "
                "when the container is committed"
                for change in self.config.changes if self.config.commit
                and (change.split(None, 1) or [""])[0].upper() not in CHANGE_INSTRUCTIONS]

    def steps(self, ctx) -> list:
        for key, value in PLACEHOLDERS.items():
            ctx.generated_data.setdefault(key, value)
        shared = _Shared(self.config)
        steps: list = [EngineStep(shared), TempDirStep(shared)]
        if self.config.pull:
            steps.append(PullStep(shared))
        steps += [RunContainerStep(shared), ConnectStep(shared), PROVISION]
        if self.config.commit:
            steps.append(CommitStep(shared))
        elif self.config.export_path:
            steps.append(ExportStep(shared))
        return steps

    def artifact(self, ctx) -> Artifact | None:
        state = {"generated_data": dict(ctx.generated_data)}
        if self.config.commit:
            image_id = ctx.state.get("image_id")
            if not image_id:
                return None
            return DockerImageArtifact(IMPORT_BUILDER_ID, image_id, state)
        if self.config.export_path:
            return export_artifact(self.config.export_path, state)
        return export_artifact("", state)

    def communicator_config(self):
        return self.config


# -- reapers for `kiln cleanup` ----------------------------------------------------------


def _reap_client(entry) -> Any:
    from backend.plugins.communicators.docker import docker_client

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
