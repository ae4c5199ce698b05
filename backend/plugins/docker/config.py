"""The docker builder's configuration, and Packer's run_command read into docker's create
arguments."""

from __future__ import annotations

import itertools
import os
import re
from dataclasses import dataclass, field
from typing import Any

from ...sdk.config import ConfigProblems, Deferred, opt
from ..communicators.config import CommunicatorConfig

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
