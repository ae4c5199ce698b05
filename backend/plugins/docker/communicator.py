"""The docker communicator: provision a running container through the Engine API.

Commands run with ``docker exec`` semantics (``/bin/sh -c "(<command>)"``, so a
busybox-only image works); files travel as tar streams (``put_archive`` /
``get_archive``). The Engine API cannot kill an exec, so every command starts
under a tiny wrapper that first reports its process id on the control stream;
cancelling sends SIGTERM, then SIGKILL, to that process group from a second
exec. The ``docker`` package is imported only when a communicator is used.
"""

from __future__ import annotations

import base64
import fnmatch
import io
import json
import os
import posixpath
import stat as statmod
import sys
import tarfile
import tempfile
import threading
import time
import types
import uuid
from typing import Any, Iterable

from ...sdk.communicator import (
    DISCONNECTED,
    Communicator,
    CommunicatorError,
    LineSplitter,
    OutputFn,
)

KILL_GRACE = 3.0  # seconds between SIGTERM and SIGKILL on cancel
SOCKET_PATH = "/var/run/docker.sock"
_SPOOL_LIMIT = 32 << 20  # tar archives above this size go through a temp file
_GO_MODE_DIR = 1 << 31  # Go's os.ModeDir, in the engine's path stat

_version_lock = threading.Lock()
_api_version: str | None = None


class ContainerGone(CommunicatorError):
    """The container stopped or was removed: retrying cannot help."""

    retryable = False


# -- the client ----------------------------------------------------------------------


def load_docker() -> Any:
    """Import the docker SDK without its SSH transport unless DOCKER_HOST is ssh://.

    The SDK imports paramiko (and through it invoke) for ``ssh://`` hosts only,
    yet that import is most of its cost; a stub module in its place makes the
    SDK skip the SSH adapter, as it does when paramiko is not installed.
    """
    if "docker" not in sys.modules and not os.environ.get("DOCKER_HOST", "").startswith("ssh://"):
        sys.modules.setdefault("docker.transport.sshconn", types.ModuleType("docker.transport.sshconn"))
    import docker

    return docker


def docker_client(timeout: int = 600, base_url: str | None = None) -> Any:
    """A docker SDK client for ``$DOCKER_HOST``, else the local socket.

    The CLI context (``~/.docker``) is not consulted, so a run does not depend on
    whoever used ``docker context use`` last. The negotiated API version is
    remembered, so later clients skip the version round trip.
    """
    global _api_version
    try:
        docker = load_docker()
    except ImportError as e:  # pragma: no cover - a dependency of Kiln
        raise CommunicatorError("the docker SDK is not installed (pip install docker)") from e
    version = _api_version or "auto"
    try:
        if base_url:
            client = docker.DockerClient(base_url=base_url, version=version, timeout=timeout)
        elif os.environ.get("DOCKER_HOST"):
            client = docker.DockerClient.from_env(version=version, timeout=timeout)
        else:
            if not os.path.exists(SOCKET_PATH):
                raise CommunicatorError(
                    f"no Docker engine: {SOCKET_PATH} does not exist and DOCKER_HOST is not set "
                    "(start dockerd, e.g. scripts/dockerd.sh start)"
                )
            client = docker.DockerClient(base_url=f"unix://{SOCKET_PATH}", version=version,
                                         timeout=timeout)
    except docker.errors.DockerException as e:
        where = base_url or os.environ.get("DOCKER_HOST") or f"unix://{SOCKET_PATH}"
        raise CommunicatorError(f"cannot reach the Docker engine at {where}: {e} "
                                "(is dockerd running? scripts/dockerd.sh start)") from e
    with _version_lock:
        _api_version = client.api.api_version
    return client


def explain(e: BaseException) -> str:
    """The daemon's own message for an SDK error, without the HTTP noise."""
    text = getattr(e, "explanation", None)
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    if text:
        return str(text).strip()
    return str(e).strip() or type(e).__name__


def _is_sdk_error(e: BaseException) -> bool:
    import docker
    import requests

    return isinstance(e, (docker.errors.DockerException, requests.exceptions.RequestException,
                          OSError))


def _owner_is_root(owner: str) -> bool:
    user = owner.split(":", 1)[0]
    return user in ("", "root", "0")


# -- streaming helpers ---------------------------------------------------------------


class _PidSniffer:
    """Takes the wrapper's first line (``<token><pid>``) off one stream."""

    def __init__(self, token: bytes, splitter: LineSplitter, on_pid):
        self.token = token
        self.splitter = splitter
        self.on_pid = on_pid
        self._head: bytes | None = b""

    def feed(self, data: bytes) -> None:
        if self._head is None:
            self.splitter.feed(data)
            return
        head = self._head + data
        cut = head.find(b"\n")
        if cut < 0 and len(head) < 256:
            self._head = head
            return
        self._head = None
        line = head[:cut] if cut >= 0 else b""
        if cut >= 0 and line.startswith(self.token):
            try:
                self.on_pid(int(line[len(self.token):].strip()))
            except ValueError:
                pass
            rest = head[cut + 1:]
        else:
            rest = head
        if rest:
            self.splitter.feed(rest)

    def flush(self) -> None:
        if self._head:
            head, self._head = self._head, None
            if not head.startswith(self.token):
                self.splitter.feed(head)
        self.splitter.flush()


class _ChunkReader(io.RawIOBase):
    """A file object over the SDK's generator of byte chunks (for streaming tarfile)."""

    def __init__(self, chunks):
        self._it = iter(chunks)
        self._buf = b""

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        while not self._buf:
            try:
                self._buf = next(self._it)
            except StopIteration:
                return 0
        n = min(len(b), len(self._buf))
        b[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        return n


class _Exec:
    """The state of one running command, shared with the cancel/timeout killer."""

    def __init__(self) -> None:
        self.id = ""
        self.pid: int | None = None
        self.stream: Any = None
        self.sock: Any = None
        self.kill_wanted = False
        self.killing = False
        self.done = threading.Event()
        self.lock = threading.Lock()


# -- the communicator ----------------------------------------------------------------


class DockerCommunicator(Communicator):
    """Runs commands and copies files in a running container."""

    type_name = "docker"

    def __init__(
        self,
        container_id: str,
        *,
        exec_user: str = "",
        pty: bool = False,
        fix_upload_owner: bool = True,
        owner: str = "",
        host: str = "",
        client: Any = None,
        own_client: bool | None = None,
    ):
        self.container_id = container_id
        self.exec_user = exec_user
        self.pty = pty
        self.fix_upload_owner = fix_upload_owner
        #: the container's configured user (``Config.User``); uploads are chowned to it
        self.owner = owner
        self.host = host
        self._client = client
        #: close the client with the communicator (it made it, or was given it to keep)
        self._own_client = client is None if own_client is None else own_client
        self._kill_client: Any = None
        self._lock = threading.Lock()

    @classmethod
    def for_container(cls, ctx: Any, container_id: str, config: Any) -> DockerCommunicator:
        """Open a communicator on ``container_id`` with the builder's exec settings."""
        if getattr(config, "windows_container", False):
            raise CommunicatorError("Windows containers are not supported by Kiln's docker communicator")
        client = docker_client()
        try:
            info = client.api.inspect_container(container_id)
        except Exception as e:
            client.close()
            if _is_sdk_error(e):
                raise ContainerGone(f"cannot use container {container_id}: {explain(e)}") from e
            raise
        state = info.get("State") or {}
        if not state.get("Running"):
            client.close()
            raise ContainerGone(f"container {container_id} is not running "
                                f"(status {state.get('Status', 'unknown')})")
        networks = (info.get("NetworkSettings") or {}).get("Networks") or {}
        ip = (info.get("NetworkSettings") or {}).get("IPAddress") or next(
            (n.get("IPAddress") for n in networks.values() if n.get("IPAddress")), "")
        return cls(
            info.get("Id", container_id),
            exec_user=getattr(config, "exec_user", "") or "",
            pty=bool(getattr(config, "pty", False)),
            fix_upload_owner=bool(getattr(config, "fix_upload_owner", True)),
            owner=(info.get("Config") or {}).get("User") or "",
            host=ip,
            client=client,
            own_client=True,
        )

    # -- plumbing ---------------------------------------------------------------
    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = docker_client()
        return self._client

    @property
    def api(self) -> Any:
        return self.client.api

    def close(self) -> None:
        for c in (self._client if self._own_client else None, self._kill_client):
            if c is not None:
                try:
                    c.close()
                except Exception:
                    pass
        self._client = None if self._own_client else self._client
        self._kill_client = None

    def _fail(self, what: str, e: BaseException) -> CommunicatorError:
        import docker

        msg = f"{what}: {explain(e)}"
        status = getattr(getattr(e, "response", None), "status_code", None)
        if isinstance(e, docker.errors.NotFound) and "No such container" in msg:
            return ContainerGone(msg)
        if status == 409 and "is not running" in msg:
            return ContainerGone(msg)
        return CommunicatorError(msg)

    def _exec_simple(self, argv: list[str], user: str = "", api: Any = None) -> tuple[int, bytes]:
        """Run a short helper command (mkdir, chown, kill); return (exit code, output)."""
        api = api or self.api
        try:
            ex = api.exec_create(self.container_id, argv, stdout=True, stderr=True, user=user)
            out = api.exec_start(ex["Id"])
            code = api.exec_inspect(ex["Id"]).get("ExitCode")
        except Exception as e:
            if _is_sdk_error(e):
                raise self._fail(f"cannot run {argv[0]} in container {self.container_id[:12]}", e) from e
            raise
        return (code if code is not None else DISCONNECTED), out or b""

    # -- commands ---------------------------------------------------------------
    def run(
        self,
        command: str,
        output: OutputFn,
        cancel: Any,
        *,
        stdin: bytes | None = None,
        timeout: float | None = None,
    ) -> int:
        token = f"kiln-exec-{uuid.uuid4().hex[:12]}:"
        wrapper = f'printf "{token}%s\\n" "$$" >&2; exec /bin/sh -c "$1"'
        argv = ["/bin/sh", "-c", wrapper, "sh", f"({command})"]
        api = self.api
        ex = _Exec()
        try:
            created = api.exec_create(
                self.container_id, argv, stdout=True, stderr=True, stdin=stdin is not None,
                tty=self.pty, user=self.exec_user or "",
            )
        except Exception as e:
            if _is_sdk_error(e):
                raise self._fail("cannot start the command", e) from e
            raise
        ex.id = created["Id"]

        out = LineSplitter("stdout", output)
        err = LineSplitter("stderr", output)

        def got_pid(pid: int) -> None:
            with ex.lock:
                ex.pid = pid
                late = ex.kill_wanted
            if late:
                self._kill_async(ex)

        # with a TTY both streams arrive merged on stdout
        sniffer = _PidSniffer(token.encode(), out if self.pty else err, got_pid)
        feed_out = sniffer.feed if self.pty else out.feed
        feed_err = err.feed if self.pty else sniffer.feed

        unregister = cancel.on_cancel(lambda: self._kill_async(ex)) if cancel is not None else (lambda: None)
        timer = None
        if timeout:
            timer = threading.Timer(timeout, self._kill_async, args=(ex,))
            timer.daemon = True
            timer.start()
        try:
            if stdin is None:
                self._pump_stream(api, ex, feed_out, feed_err)
            else:
                self._pump_socket(api, ex, stdin, feed_out, feed_err)
        except Exception as e:
            if not ex.kill_wanted:
                if _is_sdk_error(e):
                    raise self._fail("the command's output stream broke", e) from e
                raise
        finally:
            ex.done.set()
            unregister()
            if timer is not None:
                timer.cancel()
            sniffer.flush()
            (err if self.pty else out).flush()
        return self._exit_code(api, ex)

    def _pump_stream(self, api, ex: _Exec, feed_out, feed_err) -> None:
        stream = api.exec_start(ex.id, stream=True, demux=True, tty=self.pty)
        ex.stream = stream
        for o, e in stream:
            if o:
                feed_out(o)
            if e:
                feed_err(e)

    def _pump_socket(self, api, ex: _Exec, data: bytes, feed_out, feed_err) -> None:
        import socket as _socket

        from docker.utils.socket import STDERR, frames_iter

        sock = api.exec_start(ex.id, socket=True, tty=self.pty)
        ex.sock = sock
        raw = getattr(sock, "_sock", sock)
        try:
            raw.sendall(data)
        except OSError:
            pass  # the command exited without reading its input
        try:
            raw.shutdown(_socket.SHUT_WR)
        except OSError:
            pass
        for stream_id, chunk in frames_iter(sock, self.pty):
            if stream_id == STDERR:
                feed_err(chunk)
            else:
                feed_out(chunk)
        try:
            sock.close()
        except OSError:
            pass

    def _exit_code(self, api, ex: _Exec) -> int:
        deadline = time.monotonic() + 5.0
        while True:
            try:
                info = api.exec_inspect(ex.id)
            except Exception as e:
                if _is_sdk_error(e):
                    return DISCONNECTED  # the container went away under the command
                raise
            code = info.get("ExitCode")
            if not info.get("Running") and code is not None:
                return int(code)
            if time.monotonic() > deadline:
                return DISCONNECTED
            time.sleep(0.05)

    # -- cancellation -------------------------------------------------------------
    def _kill_async(self, ex: _Exec) -> None:
        """Ask for the command to die; the signals go out from a helper thread."""
        with ex.lock:
            ex.kill_wanted = True
            if ex.pid is None or ex.killing or ex.done.is_set():
                return
            ex.killing = True
        threading.Thread(target=self._kill, args=(ex,), name="kiln-docker-kill", daemon=True).start()

    def _kill(self, ex: _Exec) -> None:
        try:
            if self._kill_client is None:
                self._kill_client = docker_client(timeout=30)
            api = self._kill_client.api
            for sig, wait in (("TERM", KILL_GRACE), ("KILL", 2.0)):
                self._signal(api, ex.pid, sig)
                if ex.done.wait(wait):
                    return
                if not self._still_running(api, ex):
                    break
        except Exception:
            pass
        # the process is gone (or unkillable) but the stream still blocks: close it
        if not ex.done.wait(1.0):
            for obj in (ex.stream, ex.sock):
                if obj is not None:
                    try:
                        obj.close()
                    except Exception:
                        pass

    def _signal(self, api, pid: int | None, sig: str) -> None:
        if pid is None:
            return
        script = f"kill -{sig} -{pid} 2>/dev/null || kill -{sig} {pid} 2>/dev/null; true"
        try:
            self._exec_simple(["/bin/sh", "-c", script], user="0", api=api)
        except CommunicatorError:
            pass

    def _still_running(self, api, ex: _Exec) -> bool:
        try:
            return bool(api.exec_inspect(ex.id).get("Running"))
        except Exception:
            return False

    # -- files ------------------------------------------------------------------
    # Uploads follow `docker cp`, as Packer's docker communicator (which runs it) does: a
    # file lands in its destination's directory, which must exist; a directory becomes the
    # destination when that does not exist yet (its parent must), and goes inside it when
    # it is a directory; nothing is created on the way and no directory is replaced by a
    # file or the other way round.

    def _put_archive(self, path: str, archive: Any) -> None:
        """Unpack a tar into the existing directory ``path``."""
        if hasattr(archive, "seek"):
            archive.seek(0)
        api = self.api
        try:
            res = api._put(api._url("/containers/{0}/archive", self.container_id),
                           params={"path": path, "noOverwriteDirNonDir": "true"}, data=archive)
            api._raise_for_status(res)
        except Exception as e:
            if _is_sdk_error(e):
                raise self._fail(f"cannot copy into {path}", e) from e
            raise

    def _path_stat(self, path: str) -> dict[str, Any] | None:
        """What the engine finds at ``path`` in the container (name, mode, ...), or None."""
        api = self.api
        try:
            res = api.head(api._url("/containers/{0}/archive", self.container_id),
                           params={"path": path}, timeout=api.timeout)
            if res.status_code == 404:
                return None
            api._raise_for_status(res)
        except Exception as e:
            if _is_sdk_error(e):
                raise self._fail(f"cannot look at {path} in the container", e) from e
            raise
        raw = res.headers.get("X-Docker-Container-Path-Stat", "")
        try:
            return json.loads(base64.b64decode(raw)) if raw else {}
        except ValueError:
            return {}

    def _existing_dir(self, path: str, what: str) -> None:
        st = self._path_stat(path)
        if st is None:
            raise CommunicatorError(f"{what}: {path} does not exist in the container")
        if not int(st.get("mode", 0)) & _GO_MODE_DIR:
            raise CommunicatorError(f"{what}: {path} is not a directory in the container")

    def _chown(self, paths: list[str]) -> None:
        if not self.fix_upload_owner or _owner_is_root(self.owner) or not paths:
            return
        code, out = self._exec_simple(["chown", "-R", self.owner, "--", *paths], user="0")
        if code != 0:
            raise CommunicatorError(
                f"cannot change the owner of {' '.join(paths)} to {self.owner}: "
                f"{out.decode('utf-8', 'replace').strip() or f'chown exited {code}'}"
            )

    @staticmethod
    def _new_archive(size_hint: int) -> Any:
        if size_hint > _SPOOL_LIMIT:
            return tempfile.TemporaryFile(prefix="kiln-tar-")
        return io.BytesIO()

    @staticmethod
    def _root_owned(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        return info

    def upload(self, dst: str, src: str | bytes, mode: int | None = None) -> None:
        if not dst or dst.endswith("/"):
            raise CommunicatorError(f"upload destination {dst!r} must name a file")
        parent, name = posixpath.split(dst)
        parent = parent or "/"
        self._existing_dir(parent, f"cannot upload to {dst}")
        info = tarfile.TarInfo(name)
        if isinstance(src, (bytes, bytearray)):
            info.size = len(src)
            info.mode = 0o644 if mode is None else mode
            info.mtime = int(time.time())
            fobj: Any = io.BytesIO(bytes(src))
        else:
            try:
                st = os.stat(src)
                fobj = open(src, "rb")  # noqa: SIM115 - closed below
            except OSError as e:
                raise CommunicatorError(f"cannot read {src}: {e.strerror or e}") from e
            info.size = st.st_size
            info.mode = statmod.S_IMODE(st.st_mode) if mode is None else mode
            info.mtime = int(st.st_mtime)
        archive = self._new_archive(info.size)
        try:
            with fobj, tarfile.open(fileobj=archive, mode="w", format=tarfile.PAX_FORMAT) as tar:
                tar.addfile(self._root_owned(info), fobj)
            self._put_archive(parent, archive)
        finally:
            archive.close()
        self._chown([dst])

    def upload_dir(self, dst: str, src: str, exclude: Iterable[str] = ()) -> None:
        root = src.rstrip("/") or "/"
        if not os.path.isdir(root):
            raise CommunicatorError(f"{src} is not a directory")
        target = dst.rstrip("/") or "/"
        st = self._path_stat(target)
        if st is not None and not int(st.get("mode", 0)) & _GO_MODE_DIR:
            raise CommunicatorError(f"cannot copy the directory {src} to {dst}: {dst} is a file "
                                    "in the container")
        if st is None:
            # the directory is copied as dst itself, into dst's parent
            into, top = posixpath.dirname(target) or "/", posixpath.basename(target)
            self._existing_dir(into, f"cannot upload {src} to {dst}")
        elif src.endswith("/"):
            into, top = target, ""  # "src/" puts what src holds into dst
        else:
            into, top = target, os.path.basename(root)  # "src" goes inside dst
        patterns = list(exclude)

        def keep(rel: str) -> bool:
            return not any(fnmatch.fnmatch(rel, p) or fnmatch.fnmatch(os.path.basename(rel), p)
                           for p in patterns)

        size = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(root) for f in fs
                   if os.path.isfile(os.path.join(d, f)))
        archive = self._new_archive(size)
        entries: list[str] = []
        try:
            with tarfile.open(fileobj=archive, mode="w", format=tarfile.PAX_FORMAT) as tar:
                if top:
                    tar.add(root, arcname=top, recursive=False, filter=self._root_owned)
                    entries.append(top)
                for dirpath, dirnames, filenames in os.walk(root):
                    rel_dir = os.path.relpath(dirpath, root)
                    rel_dir = "" if rel_dir == "." else rel_dir
                    dirnames[:] = sorted(d for d in dirnames if keep(os.path.join(rel_dir, d)))
                    for name in sorted(dirnames) + sorted(filenames):
                        rel = os.path.join(rel_dir, name)
                        if name in filenames and not keep(rel):
                            continue
                        arc = "/".join([top, *rel.split(os.sep)] if top else rel.split(os.sep))
                        tar.add(os.path.join(dirpath, name), arcname=arc, recursive=False,
                                filter=self._root_owned)
                        if not top and not rel_dir:
                            entries.append(arc)
            self._put_archive(into, archive)
        except OSError as e:
            raise CommunicatorError(f"cannot read {src}: {e.strerror or e}") from e
        finally:
            archive.close()
        self._chown([posixpath.join(into, e) for e in entries])

    def _get_archive(self, path: str) -> tuple[Any, dict]:
        try:
            return self.api.get_archive(self.container_id, path)
        except Exception as e:
            if _is_sdk_error(e):
                raise self._fail(f"cannot copy {path} from the container", e) from e
            raise

    def download(self, src: str, dst: str) -> None:
        path = src
        for _ in range(10):  # follow symlinks, as `cat` would
            chunks, st = self._get_archive(path)
            mode = int(st.get("mode", 0))
            if mode & (1 << 31):  # Go's os.ModeDir
                _drain(chunks)
                raise CommunicatorError(f"{src} is a directory; download it with a trailing slash")
            target = st.get("linkTarget") or ""
            if mode & (1 << 27) and target:  # Go's os.ModeSymlink
                _drain(chunks)
                path = target if target.startswith("/") else posixpath.join(posixpath.dirname(path), target)
                continue
            break
        else:
            raise CommunicatorError(f"too many levels of symbolic links at {src}")
        tmp = f"{dst}.kiln-part-{uuid.uuid4().hex[:8]}"
        try:
            with tarfile.open(fileobj=io.BufferedReader(_ChunkReader(chunks), 1 << 20), mode="r|") as tar:
                for member in tar:
                    if not member.isfile():
                        raise CommunicatorError(f"{src} is not a regular file")
                    source = tar.extractfile(member)
                    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o666)
                    with os.fdopen(fd, "wb") as f:
                        while True:
                            block = source.read(1 << 20)
                            if not block:
                                break
                            f.write(block)
                    break
                else:
                    raise CommunicatorError(f"{src}: the container sent an empty archive")
            os.replace(tmp, dst)
        except (OSError, tarfile.TarError) as e:
            raise CommunicatorError(f"download of {src} to {dst} failed: {getattr(e, 'strerror', None) or e}") from e
        finally:
            if os.path.lexists(tmp):
                os.remove(tmp)

    def download_dir(self, src: str, dst: str, exclude: Iterable[str] = ()) -> None:
        if any(c in src for c in "*?["):
            self._download_glob(src, dst, exclude)
            return
        # rsync rules, as upload_dir: "src/" fills dst with the contents, "src" makes dst/src
        contents = src.endswith("/")
        root = src.rstrip("/") or "/"
        chunks, st = self._get_archive(root)
        if not int(st.get("mode", 0)) & (1 << 31):
            _drain(chunks)
            raise CommunicatorError(f"{src} is not a directory")
        patterns = list(exclude)
        os.makedirs(dst, exist_ok=True)

        def members(tar: tarfile.TarFile):
            for m in tar:
                parts = m.name.split("/")
                rel = "/".join(parts[1:]) if contents else m.name
                rel = rel.strip("/")
                if not rel:
                    continue
                if patterns and any(fnmatch.fnmatch(rel, p) or fnmatch.fnmatch(posixpath.basename(rel), p)
                                    for p in patterns):
                    continue
                if m.isdev():
                    continue
                m.name = rel
                yield m

        try:
            with tarfile.open(fileobj=io.BufferedReader(_ChunkReader(chunks), 1 << 20), mode="r|") as tar:
                tar.extractall(dst, members=members(tar), filter="tar")
        except (OSError, tarfile.TarError) as e:
            raise CommunicatorError(f"download of {src} to {dst} failed: {getattr(e, 'strerror', None) or e}") from e

    def _download_glob(self, pattern: str, dst: str, exclude: Iterable[str]) -> None:
        # the container's shell expands the pattern; a NUL-free newline list comes back
        lines: list[str] = []
        script = f'for f in {pattern}; do if [ -e "$f" ] || [ -L "$f" ]; then echo "$f"; fi; done'

        def collect(stream: str, chunk: list[str]) -> None:
            if stream == "stdout":
                lines.extend(x for x in chunk if x)

        code = self.run(script, collect, None)
        if code != 0:
            raise CommunicatorError(f"cannot expand {pattern} in the container (exit {code})")
        os.makedirs(dst, exist_ok=True)
        for path in lines:
            chunks, st = self._get_archive(path)
            is_dir = int(st.get("mode", 0)) & (1 << 31)
            _drain(chunks)
            if is_dir:
                self.download_dir(path.rstrip("/"), dst, exclude)
            else:
                self.download(path, os.path.join(dst, posixpath.basename(path)))

    # -- information ---------------------------------------------------------------
    def connection_data(self) -> dict[str, str]:
        return {"ConnType": "docker", "Host": self.host}

    def access_hint(self) -> str:
        return f"docker exec -it {self.container_id[:12]} sh"

    def __repr__(self) -> str:
        return f"DockerCommunicator({self.container_id[:12]})"


def _drain(chunks: Any) -> None:
    for _ in chunks:
        pass
