"""Real services for Kiln's tests and benchmarks: sshd, moto server, registry, docker, packer.

Plain Python, no pytest: ``tests/conftest.py`` wraps these in fixtures, and scripts in
``bench/`` can use them directly::

    import sys; sys.path.insert(0, "tests/support")
    from kiln_services import Sshd, MotoServer

    with Sshd() as sshd, MotoServer() as moto:
        ...  # sshd.host, sshd.port, sshd.private_key_path, moto.endpoint

Rules these helpers follow (see /work/shared/docs/environment.md):

* Everything listens on 127.0.0.1 only, on free ports, so several pytest-xdist workers
  (or a developer's own services) can run side by side.
* Whatever a helper starts, its ``stop()`` stops, by pid; nothing else is killed.
* Nothing here changes ``os.environ``; helpers that need environment variables return a
  dict (``MotoServer.aws_env()``, ``packer_env()``).
* When something needed is missing from the machine, ``start()`` raises
  ``ServiceUnavailable`` whose message names what is missing and how to get it
  (``scripts/install-deps.sh``, ``scripts/dockerd.sh start``, ``scripts/make-base-image.sh``).
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import json
import logging
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPTS_DIR = REPO_ROOT / "scripts"
LOOPBACK = "127.0.0.1"
BASE_IMAGE = "kiln/busybox:latest"
DOCKER_SOCKET_PATH = "/var/run/docker.sock"
DOCKER_SOCKET_URL = f"unix://{DOCKER_SOCKET_PATH}"
# Label put on every docker object a test creates, so leftovers can be found and removed.
TEST_LABEL = "kiln.test"

# An opener that never uses http(s)_proxy: our services are on loopback.
_HTTP = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class ServiceUnavailable(RuntimeError):
    """This machine cannot run the service; the message says what is missing."""


# --------------------------------------------------------------------------- helpers


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (bind to port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def splice(a: socket.socket, b: socket.socket) -> None:
    """Copy bytes from ``a`` to ``b`` until ``a`` closes, then shut both down."""
    try:
        while data := a.recv(65536):
            b.sendall(data)
    except OSError:
        pass
    finally:
        for s in (a, b):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def forward_tcp(listener: socket.socket, target: tuple[str, int], stop: threading.Event) -> None:
    """Accept on ``listener`` and splice each connection to ``target``."""

    listener.settimeout(0.2)
    while not stop.is_set():
        try:
            client, _ = listener.accept()
        except OSError:
            continue
        upstream = socket.create_connection(target)
        for a, b in ((client, upstream), (upstream, client)):
            threading.Thread(target=splice, args=(a, b), daemon=True).start()
    listener.close()


def unique_name(prefix: str = "kiln-test") -> str:
    """A name for a docker object that will not clash with other workers or runs."""
    return f"{prefix}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def _wait_until(
    check: Callable[[], bool],
    timeout: float,
    what: str,
    alive: Callable[[], str | None] | None = None,
) -> None:
    """Poll ``check`` until it returns True; ``alive`` returns an error text if the
    process we wait for has died (then we stop waiting at once)."""
    deadline = time.monotonic() + timeout
    delay = 0.02
    while True:
        if alive is not None:
            err = alive()
            if err:
                raise RuntimeError(f"{what}: {err}")
        try:
            if check():
                return
        except OSError:
            pass
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{what}: not ready after {timeout:.0f}s")
        time.sleep(delay)
        delay = min(delay * 1.5, 0.2)


def _stop_process(proc: subprocess.Popen[Any] | None, timeout: float = 5.0) -> None:
    """SIGTERM the process we started (by its pid), SIGKILL it after ``timeout``."""
    if proc is None or proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        proc.wait(timeout)


def _tail(path: Path, lines: int = 20) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def _run(argv: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, check=True, text=True, capture_output=True, stdin=subprocess.DEVNULL, **kw
    )


@contextlib.contextmanager
def _file_lock(path: str) -> Iterator[None]:
    """An exclusive lock shared by all processes on the machine (xdist workers)."""
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _port_in_use(log_text: str) -> bool:
    return "Address already in use" in log_text or "address already in use" in log_text


# --------------------------------------------------------------------------- sshd


class Sshd:
    """A real OpenSSH server on 127.0.0.1:<free port>, for key and password logins.

    * Host key: a fresh ed25519 key in a temp dir (``host_public_key`` gives it for a
      known_hosts line, or use paramiko's AutoAddPolicy without loading system keys).
    * Logins: ``user`` ("root") with ``private_key_path`` (ed25519) or ``rsa_key_path``
      (RSA 3072, PEM format, for tools that want RSA); or ``password_user`` ("kilntest",
      a local account created once per machine) with ``password``.
    * ``Subsystem sftp internal-sftp``; no PAM, no StrictModes; no AcceptEnv (so, as on a
      stock server, environment passed over the channel is ignored).
    """

    SSHD = "/usr/sbin/sshd"
    PASSWORD_USER = "kilntest"
    PASSWORD = "kiln-Test-pw-7"

    def __init__(self, extra_config: dict[str, str] | None = None) -> None:
        self.host = LOOPBACK
        self.port = 0
        self.user = "root"
        self.password_user = self.PASSWORD_USER
        self.password = self.PASSWORD
        self._extra = dict(extra_config or {})
        self._dir: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    # paths -------------------------------------------------------------------------
    @property
    def dir(self) -> Path:
        if self._dir is None:
            raise RuntimeError("Sshd not started")
        return self._dir

    @property
    def private_key_path(self) -> str:
        return str(self.dir / "id_ed25519")

    @property
    def public_key_path(self) -> str:
        return str(self.dir / "id_ed25519.pub")

    @property
    def rsa_key_path(self) -> str:
        return str(self.dir / "id_rsa")

    @property
    def rsa_public_key_path(self) -> str:
        return str(self.dir / "id_rsa.pub")

    @property
    def host_key_path(self) -> str:
        return str(self.dir / "ssh_host_ed25519_key")

    @property
    def host_public_key(self) -> str:
        """The host public key line, e.g. ``ssh-ed25519 AAAA... kiln-test-host``."""
        return (self.dir / "ssh_host_ed25519_key.pub").read_text().strip()

    @property
    def known_hosts_line(self) -> str:
        key_type, key_b64 = self.host_public_key.split()[:2]
        return f"[{self.host}]:{self.port} {key_type} {key_b64}"

    @property
    def log_path(self) -> str:
        return str(self.dir / "sshd.log")

    @property
    def config_path(self) -> str:
        return str(self.dir / "sshd_config")

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def ssh_argv(self, *remote_command: str, key: str | None = None) -> list[str]:
        """argv for the OpenSSH client logging in as root with the ed25519 key."""
        return [
            "ssh",
            "-p",
            str(self.port),
            "-i",
            key or self.private_key_path,
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "BatchMode=yes",
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "LogLevel=ERROR",
            f"{self.user}@{self.host}",
            *remote_command,
        ]

    # lifecycle ---------------------------------------------------------------------
    def start(self) -> Sshd:
        if self._proc is not None:
            return self
        for tool in (self.SSHD, "ssh-keygen"):
            if shutil.which(tool) is None:
                raise ServiceUnavailable(
                    f"{tool} not found: apt-get install openssh-server (scripts/install-deps.sh)"
                )
        if os.geteuid() != 0:
            raise ServiceUnavailable("sshd tests need root (login as root, password user)")
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
        ensure_password_user(self.password_user, self.password)

        self._dir = Path(tempfile.mkdtemp(prefix="kiln-sshd-"))
        try:
            d = self._dir
            _run(
                [
                    "ssh-keygen",
                    "-q",
                    "-t",
                    "ed25519",
                    "-N",
                    "",
                    "-C",
                    "kiln-test-host",
                    "-f",
                    self.host_key_path,
                ]
            )
            _run(
                [
                    "ssh-keygen",
                    "-q",
                    "-t",
                    "ed25519",
                    "-N",
                    "",
                    "-C",
                    "kiln-test",
                    "-f",
                    self.private_key_path,
                ]
            )
            _run(
                [
                    "ssh-keygen",
                    "-q",
                    "-t",
                    "rsa",
                    "-b",
                    "3072",
                    "-m",
                    "PEM",
                    "-N",
                    "",
                    "-C",
                    "kiln-test-rsa",
                    "-f",
                    self.rsa_key_path,
                ]
            )
            auth = d / "authorized_keys"
            auth.write_text(
                Path(self.public_key_path).read_text() + Path(self.rsa_public_key_path).read_text()
            )
            auth.chmod(0o600)
            last_error = ""
            for _attempt in range(5):
                self.port = free_port()
                self._write_config()
                _run([self.SSHD, "-t", "-f", self.config_path])
                err_path = d / "sshd.stderr"
                with open(err_path, "wb") as err:
                    self._proc = subprocess.Popen(
                        [self.SSHD, "-D", "-f", self.config_path, "-E", self.log_path],
                        stdin=subprocess.DEVNULL,
                        stdout=err,
                        stderr=err,
                    )
                try:
                    self.wait_ready()
                    return self
                except (RuntimeError, TimeoutError) as exc:
                    _stop_process(self._proc)
                    self._proc = None
                    last_error = f"{exc}\n{_tail(Path(self.log_path))}\n{_tail(err_path)}"
                    if not _port_in_use(last_error):
                        break
            raise RuntimeError(f"sshd did not start: {last_error}")
        except BaseException:
            self.stop()
            raise

    def _write_config(self) -> None:
        opts = {
            "Port": str(self.port),
            "ListenAddress": self.host,
            "HostKey": self.host_key_path,
            "AuthorizedKeysFile": str(self.dir / "authorized_keys"),
            "PidFile": str(self.dir / "sshd.pid"),
            "UsePAM": "no",
            "StrictModes": "no",
            "PermitRootLogin": "yes",
            "PubkeyAuthentication": "yes",
            "PasswordAuthentication": "yes",
            "PermitEmptyPasswords": "no",
            "KbdInteractiveAuthentication": "no",
            "Subsystem": "sftp internal-sftp",
            "UseDNS": "no",
            "PrintMotd": "no",
            "PrintLastLog": "no",
            # Tests open many connections at once; don't let sshd drop them.
            "MaxStartups": "100",
            "MaxSessions": "100",
            "LogLevel": "VERBOSE",
        }
        opts.update(self._extra)
        text = "".join(f"{k} {v}\n" for k, v in opts.items())
        Path(self.config_path).write_text(text)

    def _dead(self) -> str | None:
        if self._proc is None:
            return "not started"
        rc = self._proc.poll()
        return None if rc is None else f"sshd exited with code {rc}"

    def wait_ready(self, timeout: float = 10.0) -> None:
        """Wait until the server sends its SSH banner."""

        def banner() -> bool:
            with socket.create_connection((self.host, self.port), timeout=2) as s:
                return s.recv(256).startswith(b"SSH-")

        _wait_until(banner, timeout, f"sshd on {self.host}:{self.port}", self._dead)

    def stop(self) -> None:
        _stop_process(self._proc)
        self._proc = None
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def __enter__(self) -> Sshd:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def ensure_password_user(user: str = Sshd.PASSWORD_USER, password: str = Sshd.PASSWORD) -> None:
    """Create local user ``user`` (home dir, /bin/sh) once, and (re)set its password.

    Serialized with a machine-wide lock so parallel workers don't race on /etc/passwd.
    """
    with _file_lock("/tmp/kiln-test-user.lock"):
        try:
            pwd.getpwnam(user)
        except KeyError:
            _run(["useradd", "-m", "-s", "/bin/sh", user])
        subprocess.run(
            ["chpasswd"],
            input=f"{user}:{password}\n",
            text=True,
            check=True,
            capture_output=True,
        )


# --------------------------------------------------------------------------- moto


class MotoServer:
    """moto's ``ThreadedMotoServer`` on 127.0.0.1, in this process (a thread).

    ``endpoint`` is the URL to give boto3 (``endpoint_url``) or Packer
    (``custom_endpoint_ec2``). Sets no environment variables; ``aws_env()`` returns
    a dict for subprocesses and ``client()`` a boto3 client with fake credentials.

    Notes:
    * The port is chosen by the OS (port 0) and read back, so there is no race.
    * The first EC2 call per region costs about 2 s (moto loads its ~1000 default AMIs);
      later calls take a few ms. Warm a region once per session if timing matters.
    * We do not use ``MOTO_AMIS_PATH`` (it must be set before moto is imported and would
      replace the defaults for the whole process). To get AMIs with known names or
      creation dates, ``register_image`` them through the endpoint; they get owner
      ``123456789012``.
    * State is shared with ``mock_aws`` used in the same process; ``reset()`` clears it.
    """

    def __init__(self, port: int = 0, quiet: bool = True) -> None:
        self._requested_port = port
        self._quiet = quiet
        self.host = LOOPBACK
        self.port = 0
        self._server: Any = None

    @property
    def endpoint(self) -> str:
        if self._server is None:
            raise RuntimeError("MotoServer not started")
        return f"http://{self.host}:{self.port}"

    def start(self) -> MotoServer:
        if self._server is not None:
            return self
        try:
            from moto.server import ThreadedMotoServer
        except ImportError as exc:
            raise ServiceUnavailable(
                f"moto server not importable ({exc}): pip install 'moto[server]' "
                "(scripts/install-deps.sh)"
            ) from exc
        server = ThreadedMotoServer(ip_address=self.host, port=self._requested_port, verbose=False)
        if self._quiet:
            # werkzeug logs every request to stderr unless its logger has a level.
            logging.getLogger("werkzeug").setLevel(logging.WARNING)
        server.start()  # returns once the socket is bound: requests queue from then on
        self._server = server
        self.port = server.get_host_and_port()[1]
        return self

    def reset(self) -> None:
        """Forget all resources (POST /moto-api/reset)."""
        req = urllib.request.Request(f"{self.endpoint}/moto-api/reset", method="POST", data=b"")
        with _HTTP.open(req, timeout=10):
            pass

    def client(self, service: str, region: str = "us-east-1") -> Any:
        """A boto3 client for this server with fake credentials; ~/.aws is not read."""
        return aws_client(service, self.endpoint, region)

    def aws_env(
        self, region: str = "us-east-1", base: dict[str, str] | None = None
    ) -> dict[str, str]:
        """Environment for a subprocess (kiln CLI, packer) that should talk to this server."""
        env = dict(os.environ if base is None else base)
        for key in (
            "AWS_PROFILE",
            "AWS_DEFAULT_PROFILE",
            "AWS_SESSION_TOKEN",
            "AWS_ROLE_ARN",
            "AWS_WEB_IDENTITY_TOKEN_FILE",
        ):
            env.pop(key, None)
        env.update(
            AWS_ACCESS_KEY_ID="testing",
            AWS_SECRET_ACCESS_KEY="testing",
            AWS_DEFAULT_REGION=region,
            AWS_REGION=region,
            AWS_CONFIG_FILE=os.devnull,
            AWS_SHARED_CREDENTIALS_FILE=os.devnull,
            AWS_EC2_METADATA_DISABLED="true",
            AWS_ENDPOINT_URL=self.endpoint,
        )
        return env

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    def __enter__(self) -> MotoServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def aws_client(service: str, endpoint: str, region: str = "us-east-1") -> Any:
    """A boto3 client for ``endpoint`` with fake credentials that never reads ~/.aws."""
    import boto3
    import botocore.session

    core = botocore.session.Session()
    core.set_config_variable("config_file", os.devnull)
    core.set_config_variable("credentials_file", os.devnull)
    session = boto3.session.Session(
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        aws_session_token=None,
        region_name=region,
        botocore_session=core,
    )
    return session.client(service, endpoint_url=endpoint)


# --------------------------------------------------------------------------- registry


class Registry:
    """Debian's docker-registry (distribution v2) on 127.0.0.1:<free port>.

    ``address`` ("127.0.0.1:PORT") can be used in image references; Docker treats
    127.0.0.0/8 as an insecure registry, so push/pull over plain HTTP works.
    """

    BINARY = "/usr/bin/docker-registry"

    def __init__(self) -> None:
        self.host = LOOPBACK
        self.port = 0
        self._dir: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    @property
    def log_path(self) -> str:
        if self._dir is None:
            raise RuntimeError("Registry not started")
        return str(self._dir / "registry.log")

    @property
    def storage_dir(self) -> str:
        if self._dir is None:
            raise RuntimeError("Registry not started")
        return str(self._dir / "data")

    def start(self) -> Registry:
        if self._proc is not None:
            return self
        if not os.access(self.BINARY, os.X_OK):
            raise ServiceUnavailable(
                f"{self.BINARY} not found: apt-get install docker-registry "
                "(scripts/install-deps.sh)"
            )
        self._dir = Path(tempfile.mkdtemp(prefix="kiln-registry-"))
        try:
            os.makedirs(self.storage_dir)
            last_error = ""
            for _attempt in range(5):
                self.port = free_port()
                cfg = self._dir / "config.yml"
                cfg.write_text(self._config())
                with open(self.log_path, "ab") as log:
                    self._proc = subprocess.Popen(
                        [self.BINARY, "serve", str(cfg)],
                        stdin=subprocess.DEVNULL,
                        stdout=log,
                        stderr=log,
                    )
                try:
                    self.wait_ready()
                    return self
                except (RuntimeError, TimeoutError) as exc:
                    _stop_process(self._proc)
                    self._proc = None
                    last_error = f"{exc}\n{_tail(Path(self.log_path))}"
                    if not _port_in_use(last_error):
                        break
            raise RuntimeError(f"docker-registry did not start: {last_error}")
        except BaseException:
            self.stop()
            raise

    def _config(self) -> str:
        # JSON is valid YAML; no PyYAML needed.
        cfg = {
            "version": 0.1,
            "log": {"level": "info", "accesslog": {"disabled": True}},
            "storage": {
                "filesystem": {"rootdirectory": self.storage_dir},
                "delete": {"enabled": True},
            },
            "http": {"addr": self.address},
        }
        return json.dumps(cfg, indent=2) + "\n"

    def _dead(self) -> str | None:
        if self._proc is None:
            return "not started"
        rc = self._proc.poll()
        return None if rc is None else f"docker-registry exited with code {rc}"

    def wait_ready(self, timeout: float = 10.0) -> None:
        def v2() -> bool:
            try:
                with _HTTP.open(f"{self.url}/v2/", timeout=2) as resp:
                    return resp.status == 200
            except urllib.error.URLError:
                return False

        _wait_until(v2, timeout, f"docker-registry on {self.address}", self._dead)

    def get_json(self, path: str) -> Any:
        """GET ``/v2/...`` on the registry and decode the JSON body."""
        with _HTTP.open(f"{self.url}{path}", timeout=10) as resp:
            return json.loads(resp.read() or b"null")

    def stop(self) -> None:
        _stop_process(self._proc)
        self._proc = None
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def __enter__(self) -> Registry:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --------------------------------------------------------------------------- docker


def docker_client(timeout: int = 120) -> Any:
    """A docker SDK client: $DOCKER_HOST if set, else /var/run/docker.sock.

    The CLI context (~/.docker) is deliberately not consulted, so runs are reproducible.
    """
    import docker

    if os.environ.get("DOCKER_HOST"):
        return docker.from_env(timeout=timeout)
    return docker.DockerClient(base_url=DOCKER_SOCKET_URL, timeout=timeout)


def docker_unavailable_reason(timeout: int = 3) -> str | None:
    """None if a Docker engine answers, else what is missing."""
    try:
        import docker  # noqa: F401
    except ImportError:
        return "docker SDK (pip package 'docker') not installed: scripts/install-deps.sh"
    if not os.environ.get("DOCKER_HOST") and not os.path.exists(DOCKER_SOCKET_PATH):
        return f"no Docker engine ({DOCKER_SOCKET_PATH} missing): run scripts/dockerd.sh start"
    try:
        client = docker_client(timeout=timeout)
        try:
            client.ping()
        finally:
            client.close()
    except Exception as exc:  # DockerException, requests errors, socket errors
        return f"Docker engine does not answer ({exc}): run scripts/dockerd.sh start"
    return None


def docker_available(timeout: int = 3) -> bool:
    """True if the Docker engine answers a ping within ``timeout`` seconds."""
    return docker_unavailable_reason(timeout) is None


def ensure_base_image(image: str = BASE_IMAGE) -> str:
    """Make sure the offline busybox image exists (scripts/make-base-image.sh); return it."""
    inspect = subprocess.run(
        ["docker", "image", "inspect", "-f", "{{.Id}}", image],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    if inspect.returncode == 0:
        return image
    env = dict(os.environ, KILN_BASE_IMAGE=image)
    proc = subprocess.run(
        ["bash", str(SCRIPTS_DIR / "make-base-image.sh")],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        env=env,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"scripts/make-base-image.sh failed:\n{proc.stderr}{proc.stdout}")
    return image


def remove_labelled(client: Any, value: str, key: str = TEST_LABEL) -> None:
    """Remove every container (forced, with volumes) labelled ``key=value``."""
    for container in client.containers.list(all=True, filters={"label": f"{key}={value}"}):
        with contextlib.suppress(Exception):
            container.remove(force=True, v=True)


# --------------------------------------------------------------------------- packer


def packer_path() -> str | None:
    """Path of the packer binary (Debian's Packer 1.6.6), or None."""
    return shutil.which("packer")


_packer_tmp: str | None = None


def _session_packer_dir() -> str:
    global _packer_tmp
    if _packer_tmp is None:
        _packer_tmp = tempfile.mkdtemp(prefix="kiln-packer-")
        atexit.register(shutil.rmtree, _packer_tmp, True)
    return _packer_tmp


def packer_env(
    base_dir: str | os.PathLike[str] | None = None, base: dict[str, str] | None = None
) -> dict[str, str]:
    """Environment for running Packer 1.6.6 non-interactively and independent of $HOME.

    * ``CHECKPOINT_DISABLE=1``: no update check (it would try the network).
    * ``PACKER_CONFIG`` -> an empty ``{}`` config file, ``PACKER_CONFIG_DIR`` and
      ``PACKER_CACHE_DIR`` -> dirs under ``base_dir`` (default: one temp dir per process,
      removed at exit), so ~/.packerconfig, ~/.packer.d and ./packer_cache are not used.
    * ``PACKER_NO_COLOR=1``; ``PACKER_PLUGIN_PATH`` is removed (no third-party plugins).
    """
    root = Path(base_dir) if base_dir is not None else Path(_session_packer_dir())
    config_dir = root / "packer-config"
    cache_dir = root / "packer-cache"
    config_dir.mkdir(parents=True, exist_ok=True)
    cache_dir.mkdir(parents=True, exist_ok=True)
    config_file = root / "packerconfig.json"
    if not config_file.exists():
        config_file.write_text("{}\n")
    env = dict(os.environ if base is None else base)
    env.pop("PACKER_PLUGIN_PATH", None)
    env.update(
        CHECKPOINT_DISABLE="1",
        PACKER_CONFIG=str(config_file),
        PACKER_CONFIG_DIR=str(config_dir),
        PACKER_CACHE_DIR=str(cache_dir),
        PACKER_NO_COLOR="1",
    )
    return env


def packer_version(path: str | None = None) -> str | None:
    """The version packer reports (e.g. "1.6.6"), or None if it cannot be run."""
    exe = path or packer_path()
    if exe is None:
        return None
    try:
        out = subprocess.run(
            [exe, "version"],
            capture_output=True,
            text=True,
            timeout=30,
            stdin=subprocess.DEVNULL,
            env=packer_env(),
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    for word in out.split():
        if word.startswith("v") and word[1:2].isdigit():
            return word[1:]
    return None
