"""The SSH communicator (paramiko): connect, run commands, copy files over SFTP or scp.

paramiko is imported inside the functions that use it, so importing this module
(to validate a template) stays cheap.

Behaviour follows Packer's SSH communicator where it is observable:

* the wait loop tries at once, then every ``WAIT_INTERVAL`` seconds until
  ``ssh_timeout``; only authentication failures count towards
  ``ssh_handshake_attempts``; giving up reports the last real error;
* host keys are not verified (build machines are new on every run);
* exit status ``DISCONNECTED`` when the connection drops mid-command, 128+N
  when the remote command was killed by signal N;
* ``scp`` is the default file transfer method, ``sftp`` the alternative.

Also supported: key (ed25519, ECDSA, RSA; certificates), password (with a
keyboard-interactive fallback) and agent logins; a bastion (the target is
reached through a direct-tcpip channel of the bastion's connection) or a SOCKS5
proxy; ``ssh_local_tunnels``/``ssh_remote_tunnels``; ``ssh_ciphers`` and
``ssh_key_exchange_algorithms``; keep-alives that the server answers, so
``ssh_read_write_timeout`` can declare a silent connection dead.

Kiln additions: cancelling a command stops it on the machine (on a PTY sshd
hangs up the terminal; otherwise the command's process group, learnt from a
first ``echo $$`` line that is taken out of the output, gets SIGTERM, then
SIGKILL), and a dead connection is re-opened once before the next command or
transfer, so provisioners carry on after a reboot.
"""

from __future__ import annotations

import fnmatch
import io
import logging
import os
import posixpath
import select
import shlex
import socket
import stat
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, BinaryIO, Callable, Iterable

from ...sdk.communicator import (
    DISCONNECTED,
    Communicator,
    CommunicatorError,
    LineSplitter,
    OutputFn,
)
from ...sdk.plugin import Cancelled, StepError

if TYPE_CHECKING:
    from ...sdk.cancel import CancelToken

#: seconds between connection attempts (Packer waits 5 s)
WAIT_INTERVAL = 2.0
#: the longest one connection attempt may take (TCP connect, banner, key exchange, auth)
ATTEMPT_TIMEOUT = 20.0
#: SSH flow-control window and packet size we offer: large windows keep bulk
#: transfers from stalling on window adjustments
WINDOW_SIZE = 64 * 1024 * 1024
MAX_PACKET = 32768
CHUNK = 256 * 1024
#: after ^C / SIGTERM, how long a command gets before it is killed and the channel closed
STOP_GRACE = 2.0
#: after the exit status, how long a silent channel may stay open before we stop reading
EOF_WAIT = 5.0
#: the value Kiln reports for a command that was stopped by its ``timeout``
TIMEOUT_STATUS = 143

_SIGNALS = {
    "HUP": 1,
    "INT": 2,
    "QUIT": 3,
    "ILL": 4,
    "TRAP": 5,
    "ABRT": 6,
    "BUS": 7,
    "FPE": 8,
    "KILL": 9,
    "USR1": 10,
    "SEGV": 11,
    "USR2": 12,
    "PIPE": 13,
    "ALRM": 14,
    "TERM": 15,
}


# --------------------------------------------------------------------------- settings


@dataclass
class Endpoint:
    """Who to log in as, where, and how (the target machine or a bastion)."""

    host: str
    port: int
    user: str
    password: str = ""
    pkey: Any = None  # paramiko.PKey
    key_text: str = ""
    key_file: str = ""
    agent: bool = False
    what: str = "SSH"  # "SSH" or "bastion", for messages

    @property
    def dest(self) -> str:
        return f"{self.user}@{self.host}:{self.port}"

    def method(self) -> str:
        if self.pkey is not None:
            return f"private key {self.key_file}" if self.key_file else "private key"
        if self.agent:
            return "the SSH agent"
        if self.password:
            return "password"
        return "no credentials"


def _load_certificate(pkey: Any, cert_file: str, setting: str) -> None:
    cert = os.path.expanduser(cert_file)
    try:
        pkey.load_certificate(cert)
    except (OSError, ValueError) as e:
        raise StepError(f"{setting} is invalid: {cert}: {e}") from e


@dataclass
class SSHSettings:
    target: Endpoint
    bastion: Endpoint | None = None
    proxy: tuple[str, int, str, str] | None = None  # host, port, user, password
    pty: bool = False
    keepalive: float = 5.0
    read_write_timeout: float = 0.0
    file_transfer: str = "scp"
    ciphers: list[str] = field(default_factory=list)
    kex: list[str] = field(default_factory=list)
    timeout: float = 300.0
    handshake_attempts: int = 10
    #: (bind address, port, host, host port), as ssh -L / -R
    local_tunnels: list[tuple[str, int, str, int]] = field(default_factory=list)
    remote_tunnels: list[tuple[str, int, str, int]] = field(default_factory=list)
    #: forward this host's SSH agent to commands (Packer's default when SSH_AUTH_SOCK is set)
    forward_agent: bool = False

    @classmethod
    def from_config(
        cls, config: Any, host: str, private_key: str | None = None, extra_key: str | None = None
    ) -> SSHSettings:
        """Read a CommunicatorConfig; raises StepError for unusable settings."""
        if not host:
            raise StepError("SSH needs a host: set ssh_host (the builder found no address)")
        user = config.ssh_username
        if not user:
            raise StepError("an ssh_username must be given")
        key_file = (
            os.path.expanduser(config.ssh_private_key_file) if config.ssh_private_key_file else ""
        )
        key_text = private_key or extra_key or ""
        pkey = None
        if key_text:
            pkey = load_private_key_text(key_text, "the temporary private key")
        elif key_file:
            pkey, key_text = load_private_key_file(key_file, "ssh_private_key_file")
        if pkey is not None and config.ssh_certificate_file:
            _load_certificate(pkey, config.ssh_certificate_file, "ssh_certificate_file")
        target = Endpoint(
            host=host,
            port=int(config.ssh_port or 22),
            user=user,
            password=config.ssh_password or "",
            pkey=pkey,
            key_text=key_text,
            key_file=key_file,
            agent=bool(config.ssh_agent_auth),
        )
        bastion = None
        if config.ssh_bastion_host:
            bkey_file = config.ssh_bastion_private_key_file
            bpkey, btext = None, ""
            if bkey_file:
                bkey_file = os.path.expanduser(bkey_file)
                bpkey, btext = load_private_key_file(bkey_file, "ssh_bastion_private_key_file")
            elif not config.ssh_bastion_password and not config.ssh_bastion_agent_auth:
                bpkey, btext, bkey_file = pkey, key_text, key_file  # Packer's default
            if bpkey is not None and config.ssh_bastion_certificate_file:
                _load_certificate(
                    bpkey, config.ssh_bastion_certificate_file, "ssh_bastion_certificate_file"
                )
            bastion = Endpoint(
                host=config.ssh_bastion_host,
                port=int(config.ssh_bastion_port or 22),
                user=config.ssh_bastion_username or user,
                password=config.ssh_bastion_password or "",
                pkey=bpkey,
                key_text=btext,
                key_file=bkey_file or "",
                agent=bool(config.ssh_bastion_agent_auth),
                what="bastion",
            )
        proxy = None
        if config.ssh_proxy_host:
            proxy = (
                config.ssh_proxy_host,
                int(config.ssh_proxy_port or 1080),
                config.ssh_proxy_username or "",
                config.ssh_proxy_password or "",
            )
        return cls(
            target=target,
            bastion=bastion,
            proxy=proxy,
            pty=bool(config.ssh_pty),
            keepalive=float(config.ssh_keep_alive_interval or 0),
            read_write_timeout=float(config.ssh_read_write_timeout or 0),
            file_transfer=config.ssh_file_transfer_method or "scp",
            ciphers=list(config.ssh_ciphers or []),
            kex=list(config.ssh_key_exchange_algorithms or []),
            timeout=config.effective_ssh_timeout(),
            handshake_attempts=config.effective_handshake_attempts(),
            local_tunnels=[
                _parse_tunnel(t, "ssh_local_tunnels")
                for t in getattr(config, "ssh_local_tunnels", None) or []
            ],
            remote_tunnels=[
                _parse_tunnel(t, "ssh_remote_tunnels")
                for t in getattr(config, "ssh_remote_tunnels", None) or []
            ],
            forward_agent=not getattr(config, "ssh_disable_agent_forwarding", False)
            and bool(os.environ.get("SSH_AUTH_SOCK")),
        )

    def secrets(self) -> list[str]:
        out: list[str] = []
        for ep in (self.target, self.bastion):
            if ep is None:
                continue
            if ep.password:
                out.append(ep.password)
            out.extend(key_secrets(ep.key_text))
        if self.proxy and self.proxy[3]:
            out.append(self.proxy[3])
        return out


def _parse_tunnel(spec: str, key: str) -> tuple[str, int, str, int]:
    """``[bind_address:]port:host:hostport`` (ssh -L / -R syntax)."""
    parts = spec.rsplit(":", 3) if spec.count(":") >= 3 else spec.split(":")
    if len(parts) == 3:
        parts = ["127.0.0.1", *parts]
    try:
        bind, port, host, hport = parts
        out = (bind or "127.0.0.1", int(port), host, int(hport))
    except ValueError:
        raise StepError(f"{key} item {spec!r} is not [bind_address:]port:host:hostport") from None
    if not (0 < out[1] < 65536 and 0 < out[3] < 65536) or not host:
        raise StepError(f"{key} item {spec!r} is not [bind_address:]port:host:hostport")
    return out


def key_secrets(text: str) -> list[str]:
    """The key text and each of its body lines: output is masked line by line."""
    if not text:
        return []
    out = [text, text.strip()]
    for line in text.splitlines():
        line = line.strip()
        if len(line) >= 16 and not line.startswith("-----"):
            out.append(line)
    return out


def load_private_key_file(path: str, key_name: str) -> tuple[Any, str]:
    """(paramiko key, key text) from a private key file; StepError if it is unusable."""
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as f:
            text = f.read()
    except OSError as e:
        raise StepError(f"{key_name} is invalid: {path}: {e.strerror or e}") from e
    return load_private_key_text(text, f"{key_name} {path}"), text


def load_private_key_text(text: str, what: str) -> Any:
    import paramiko

    errors = []
    for cls in (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey):
        try:
            return cls.from_private_key(io.StringIO(text))
        except paramiko.PasswordRequiredException:
            raise StepError(
                f"{what} is encrypted with a passphrase; Kiln needs an unencrypted "
                "key (or use ssh_agent_auth with the key loaded in an agent)"
            ) from None
        except (paramiko.SSHException, ValueError, TypeError, IndexError) as e:
            errors.append(str(e))
    raise StepError(f"{what} is invalid: not an RSA, ECDSA or ed25519 private key Kiln can read")


# --------------------------------------------------------------------------- key pairs


def generate_key_pair(
    kind: str = "rsa", bits: int | None = None, comment: str = ""
) -> tuple[str, str]:
    """A new key pair: (private key PEM text, public key in OpenSSH ``authorized_keys`` form).

    ``rsa`` (default 4096 bits, PKCS#1 PEM), ``ed25519`` (OpenSSH format) or
    ``ecdsa`` (256/384/521 bits, default 521). Both halves are text.
    """
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

    kind = (kind or "rsa").lower()
    if kind == "rsa":
        key: Any = rsa.generate_private_key(public_exponent=65537, key_size=bits or 4096)
        priv = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    elif kind == "ed25519":
        key = ed25519.Ed25519PrivateKey.generate()
        priv = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption(),
        )
    elif kind == "ecdsa":
        curves = {256: ec.SECP256R1(), 384: ec.SECP384R1(), 521: ec.SECP521R1()}
        curve = curves.get(bits or 521)
        if curve is None:
            raise ValueError(f"ecdsa keys are 256, 384 or 521 bits, not {bits}")
        key = ec.generate_private_key(curve)
        priv = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    else:
        raise ValueError(f'unknown key pair type "{kind}": expected rsa, ed25519 or ecdsa')
    pub = (
        key.public_key()
        .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        .decode()
    )
    if comment:
        pub = f"{pub} {comment}"
    return priv.decode(), pub


# --------------------------------------------------------------------------- connecting


class _AuthFailed(Exception):
    """The server refused our credentials: counts towards ssh_handshake_attempts."""


class _Attempt:
    """Things one connection attempt opened; closing them aborts a blocked attempt."""

    def __init__(self) -> None:
        self.items: list[Any] = []
        self.aborted = False
        self._lock = threading.Lock()

    def add(self, item: Any) -> Any:
        with self._lock:
            self.items.append(item)
            abort = self.aborted
        if abort:
            _close_quietly(item)
        return item

    def abort(self) -> None:
        with self._lock:
            self.aborted = True
            items = list(self.items)
        for item in items:
            _close_quietly(item)


def _close_quietly(item: Any) -> None:
    try:
        item.close()
    except Exception:  # noqa: BLE001 - closing is best effort
        pass


class _TrackedSocket:
    """A socket that remembers when it last received bytes (for ssh_read_write_timeout)."""

    def __init__(self, sock: Any):
        self._sock = sock
        self.last_recv = time.monotonic()

    def recv(self, n: int) -> bytes:
        data = self._sock.recv(n)
        self.last_recv = time.monotonic()
        return data

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


def _describe(e: BaseException) -> str:
    """A one-line, user-facing text for a connection error."""
    if isinstance(e, ConnectionRefusedError):
        return "connection refused"
    if isinstance(e, (socket.timeout, TimeoutError)):
        return "timed out"
    if isinstance(e, socket.gaierror):
        return f"cannot resolve the host name: {e.strerror or e}"
    if isinstance(e, EOFError):
        return "the server closed the connection during the SSH handshake"
    if isinstance(e, OSError) and e.strerror:
        return e.strerror[:1].lower() + e.strerror[1:]
    text = str(e).strip() or type(e).__name__
    if text == "No existing session":
        return "the server did not complete the SSH handshake"
    return text


def _quiet_paramiko() -> None:
    """paramiko logs transport-thread tracebacks; never let them reach the terminal."""
    log = logging.getLogger("paramiko")
    if not getattr(log, "_kiln_quiet", False):
        log.addHandler(logging.NullHandler())
        log.propagate = False
        log._kiln_quiet = True  # type: ignore[attr-defined]


def _handle_request_with_signal(chan: Any, m: Any) -> None:
    """paramiko ignores ``exit-signal``; report it as 128+N like a shell (and Go's ssh) does."""
    from paramiko.channel import Channel

    pos = m.packet.tell()
    try:
        key = m.get_text()
    except Exception:  # noqa: BLE001
        key = ""
    if key != "exit-signal":
        m.packet.seek(pos)
        Channel._handle_request(chan, m)
        return
    m.get_boolean()  # want_reply: never set for exit-signal
    name = m.get_text()
    chan.exit_status = 128 + _SIGNALS.get(name, 0)
    chan.kiln_signal = name
    chan.status_event.set()


def _socks5(sock: socket.socket, host: str, port: int, user: str, password: str) -> None:
    """Ask a SOCKS5 proxy on ``sock`` to connect to host:port (RFC 1928/1929)."""

    def recv_exact(n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = sock.recv(n - len(data))
            if not chunk:
                raise OSError("the SOCKS proxy closed the connection")
            data += chunk
        return data

    methods = b"\x00\x02" if user else b"\x00"
    sock.sendall(b"\x05" + bytes([len(methods)]) + methods)
    ver, method = recv_exact(2)
    if ver != 5 or method == 0xFF:
        raise OSError("the SOCKS proxy accepts none of our authentication methods")
    if method == 2:
        u, p = user.encode(), password.encode()
        sock.sendall(b"\x01" + bytes([len(u)]) + u + bytes([len(p)]) + p)
        if recv_exact(2)[1] != 0:
            raise OSError("the SOCKS proxy rejected ssh_proxy_username/ssh_proxy_password")
    h = host.encode("idna")
    sock.sendall(b"\x05\x01\x00\x03" + bytes([len(h)]) + h + port.to_bytes(2, "big"))
    reply = recv_exact(4)
    if reply[1] != 0:
        raise OSError(f"the SOCKS proxy could not connect to {host}:{port} (code {reply[1]})")
    atyp = reply[3]
    recv_exact({1: 4, 4: 16}.get(atyp, 0) or recv_exact(1)[0])
    recv_exact(2)


def _open_transport(
    sock: Any, ep: Endpoint, settings: SSHSettings, timeout: float, attempt: _Attempt
) -> Any:
    """Key exchange and authentication on an open socket; returns the Transport."""
    import paramiko
    from paramiko.common import MSG_CHANNEL_REQUEST

    t = attempt.add(
        paramiko.Transport(
            sock, default_window_size=WINDOW_SIZE, default_max_packet_size=MAX_PACKET
        )
    )
    t._channel_handler_table = dict(t._channel_handler_table)
    t._channel_handler_table[MSG_CHANNEL_REQUEST] = _handle_request_with_signal
    t.banner_timeout = timeout
    t.handshake_timeout = timeout
    t.auth_timeout = timeout
    opts = t.get_security_options()
    if settings.ciphers:
        ok = tuple(c for c in settings.ciphers if c in opts.ciphers)
        if not ok:
            raise StepError(
                "none of ssh_ciphers is supported by Kiln's SSH client; supported: "
                + ", ".join(opts.ciphers)
            )
        opts.ciphers = ok
    if settings.kex:
        ok = tuple(k for k in settings.kex if k in opts.kex)
        if not ok:
            raise StepError(
                "none of ssh_key_exchange_algorithms is supported by Kiln's SSH "
                "client; supported: " + ", ".join(opts.kex)
            )
        opts.kex = ok
    t.start_client(timeout=timeout)
    methods: list[tuple[str, Callable[[], Any]]] = []
    if ep.pkey is not None:
        methods.append((ep.method(), lambda: t.auth_publickey(ep.user, ep.pkey)))
    if ep.agent:
        methods.append(("the SSH agent", lambda: _auth_agent(t, ep)))
    if ep.password:
        # falls back to keyboard-interactive with the same password, as Packer does
        methods.append(("password", lambda: t.auth_password(ep.user, ep.password)))
    if not methods:
        raise _AuthFailed(
            f"no credentials for {ep.dest}: set ssh_password, "
            "ssh_private_key_file or ssh_agent_auth"
        )
    failure = ""
    for label, fn in methods:
        try:
            fn()
        except paramiko.BadAuthenticationType as e:
            allowed = ", ".join(e.allowed_types) or "none"
            failure = f"{label} is not accepted (the server allows: {allowed})"
            continue
        except paramiko.AuthenticationException as e:
            failure = f"{label} was rejected ({_describe(e)})"
            continue
        if t.is_authenticated():
            return t
    raise _AuthFailed(f"{ep.what} authentication failed for {ep.dest}: {failure}")


def _forward_agent(chan: Any) -> Any:
    """Offer this host's agent (SSH_AUTH_SOCK) to the command on ``chan``, as ``ssh -A``.
    A server that refuses forwarding is not an error: the command runs without it."""
    import paramiko.agent

    try:
        return paramiko.agent.AgentRequestHandler(chan)
    except paramiko.SSHException:
        return None


def _auth_agent(t: Any, ep: Endpoint) -> None:
    import paramiko

    keys = paramiko.Agent().get_keys()
    if not keys:
        raise paramiko.AuthenticationException(
            "the SSH agent offers no keys (is SSH_AUTH_SOCK set?)"
        )
    last: Exception | None = None
    for key in keys:
        try:
            t.auth_publickey(ep.user, key)
            return
        except paramiko.AuthenticationException as e:
            last = e
    raise last or paramiko.AuthenticationException("no agent key was accepted")


def _connect_once(settings: SSHSettings, timeout: float, attempt: _Attempt) -> tuple[Any, Any, Any]:
    """One attempt: (transport, bastion transport or None, tracked socket)."""
    ep = settings.target
    bastion_t = None
    if settings.bastion is not None:
        b = settings.bastion
        try:
            bsock = attempt.add(socket.create_connection((b.host, b.port), timeout=timeout))
        except OSError as e:
            raise OSError(f"bastion {b.host}:{b.port}: {_describe(e)}") from e
        bsock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        bastion_t = _open_transport(bsock, b, settings, timeout, attempt)
        try:
            raw = attempt.add(
                bastion_t.open_channel(
                    "direct-tcpip", (ep.host, ep.port), ("127.0.0.1", 0), timeout=timeout
                )
            )
        except Exception as e:  # noqa: BLE001 - paramiko raises several kinds here
            raise OSError(
                f"the bastion {b.host}:{b.port} could not reach {ep.host}:{ep.port}: {_describe(e)}"
            ) from e
    elif settings.proxy is not None:
        phost, pport, puser, ppass = settings.proxy
        try:
            raw = attempt.add(socket.create_connection((phost, pport), timeout=timeout))
            _socks5(raw, ep.host, ep.port, puser, ppass)
        except OSError as e:
            raise OSError(f"SOCKS proxy {phost}:{pport}: {_describe(e)}") from e
    else:
        raw = attempt.add(socket.create_connection((ep.host, ep.port), timeout=timeout))
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock = _TrackedSocket(raw)
    t = _open_transport(sock, ep, settings, timeout, attempt)
    return t, bastion_t, sock


def connect_ssh(
    ctx: Any, config: Any, host: str, *, private_key: str | None = None
) -> SSHCommunicator:
    """Wait for SSH on ``host`` and return a connected communicator (Packer's StepConnectSSH).

    ``private_key`` is key text a builder generated (a temporary key pair); it
    takes the place of ``ssh_private_key_file``. Raises ``StepError`` when it
    gives up and ``Cancelled`` when the build is cancelled while waiting.
    """
    _quiet_paramiko()
    extra_key = (
        private_key
        or getattr(config, "ssh_private_key", "")
        or (
            ctx.state.get("ssh_private_key")
            if isinstance(getattr(ctx, "state", None), dict)
            else ""
        )
    )
    settings = SSHSettings.from_config(config, host, extra_key or None)
    for s in settings.secrets():
        ctx.add_secret(s)
    ctx.ui.say(f"Using SSH communicator to connect: {host}")
    comm = SSHCommunicator(settings, cancel=ctx.cancel)
    comm.wait_for_connection(ctx.ui, ctx.cancel)
    pause = float(getattr(config, "pause_before_connecting", 0) or 0)
    if pause:
        from ...template.golang import format_duration

        ctx.ui.say(f"Pausing {format_duration(pause)} before connecting...")
        comm.close()
        ctx.cancel.sleep(pause)
        comm.wait_for_connection(ctx.ui, ctx.cancel)
    ctx.access_hint = comm.access_hint()
    return comm


# --------------------------------------------------------------------------- the communicator


class SSHCommunicator(Communicator):
    type_name = "ssh"

    def __init__(self, settings: SSHSettings, cancel: CancelToken | None = None):
        self.settings = settings
        self._cancel = cancel
        self._lock = threading.RLock()
        self._transport: Any = None
        self._bastion: Any = None
        self._sock: _TrackedSocket | None = None
        self._sftp: Any = None
        self._keepalive_stop: threading.Event | None = None
        self._dead_reason = ""
        self._pid_tag = f"kiln-pid-{uuid.uuid4().hex[:12]}:"
        self._closed = False
        self._listeners: list[socket.socket] = []

    # -- connecting ------------------------------------------------------------
    def wait_for_connection(self, ui: Any, cancel: CancelToken | None = None) -> None:
        """Packer's wait loop; see the module docstring."""
        cancel = cancel or self._cancel
        s = self.settings
        ep = s.target
        ui.say("Waiting for SSH to become available...")
        start = time.monotonic()
        deadline = start + s.timeout
        n = 0
        auth_failures = 0
        last = ""
        while True:
            if cancel is not None:
                cancel.check()
            n += 1
            elapsed = time.monotonic() - start
            ui.progress(
                f"Waiting for SSH on {ep.user}@{ep.host}:{ep.port} (attempt {n}, {elapsed:.0f}s)"
            )
            per_try = max(1.0, min(ATTEMPT_TIMEOUT, deadline - time.monotonic()))
            try:
                self._connect(per_try, cancel)
                ui.say("Connected to SSH!")
                return
            except Cancelled:
                raise
            except StepError:
                raise
            except _AuthFailed as e:
                last = str(e)
                auth_failures += 1
                if auth_failures >= s.handshake_attempts:
                    raise StepError(
                        f"Error waiting for SSH: {last} (gave up after {auth_failures} "
                        "authentication failures; ssh_handshake_attempts)"
                    ) from None
            except Exception as e:  # noqa: BLE001 - every other failure is retried
                last = _describe(e)
            if cancel is not None and cancel.cancelled:
                raise Cancelled(cancel.reason or "cancelled")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                from ...template.golang import format_duration

                raise StepError(
                    f"Timeout waiting for SSH on {ep.dest} after "
                    f"{format_duration(s.timeout)} ({n} attempts); last error: {last}"
                )
            if cancel is not None:
                cancel.sleep(min(WAIT_INTERVAL, remaining))
            else:
                time.sleep(min(WAIT_INTERVAL, remaining))

    def _connect(self, timeout: float, cancel: CancelToken | None) -> None:
        attempt = _Attempt()
        unregister = cancel.on_cancel(attempt.abort) if cancel is not None else (lambda: None)
        try:
            t, bastion, sock = _connect_once(self.settings, timeout, attempt)
        except BaseException:
            attempt.abort()
            if cancel is not None and cancel.cancelled:
                raise Cancelled(cancel.reason or "cancelled") from None
            raise
        finally:
            unregister()
        with self._lock:
            self._drop_connection()
            self._transport, self._bastion, self._sock = t, bastion, sock
            self._dead_reason = ""
            self._closed = False
            self._start_keepalive(t, sock)
            self._start_tunnels(t)

    def reconnect(self, timeout: float | None = None) -> None:
        """Open a fresh connection: one attempt, or wait up to ``timeout`` seconds.

        Provisioners call this after a reboot (``expect_disconnect``); commands
        and transfers already reconnect once on their own when the connection died.
        """
        with self._lock:
            self._drop_connection()
        if not timeout:
            try:
                self._connect(ATTEMPT_TIMEOUT, self._cancel)
            except (Cancelled, StepError):
                raise
            except Exception as e:  # noqa: BLE001
                raise CommunicatorError(
                    f"cannot reconnect to {self.settings.target.dest}: {_describe(e)}"
                ) from e
            return
        deadline = time.monotonic() + timeout
        while True:
            try:
                self._connect(
                    max(1.0, min(ATTEMPT_TIMEOUT, deadline - time.monotonic())), self._cancel
                )
                return
            except (Cancelled, StepError):
                raise
            except Exception as e:  # noqa: BLE001
                if time.monotonic() >= deadline:
                    raise CommunicatorError(
                        f"cannot reconnect to {self.settings.target.dest}: {_describe(e)}"
                    ) from e
            if self._cancel is not None:
                self._cancel.sleep(WAIT_INTERVAL)
            else:
                time.sleep(WAIT_INTERVAL)

    def _start_keepalive(self, t: Any, sock: _TrackedSocket) -> None:
        interval = self.settings.keepalive
        rw = self.settings.read_write_timeout
        if interval <= 0 and rw <= 0:
            return
        stop = threading.Event()
        self._keepalive_stop = stop
        tick = interval if interval > 0 else max(1.0, rw / 3)
        if rw > 0:
            tick = min(tick, max(0.5, rw / 3))

        def loop() -> None:
            from paramiko.common import cMSG_GLOBAL_REQUEST
            from paramiko.message import Message

            last_sent = 0.0
            while not stop.wait(tick):
                if not t.is_active():
                    return
                now = time.monotonic()
                if interval > 0 and now - last_sent >= interval:
                    # want_reply: the server answers, so a live link always shows traffic
                    m = Message()
                    m.add_byte(cMSG_GLOBAL_REQUEST)
                    m.add_string("keepalive@openssh.com")
                    m.add_boolean(True)
                    try:
                        t._send_user_message(m)
                    except Exception:  # noqa: BLE001
                        return
                    last_sent = now
                if rw > 0 and now - sock.last_recv > rw:
                    from ...template.golang import format_duration

                    self._dead_reason = (
                        f"no data from {self.settings.target.dest} for "
                        f"{format_duration(rw)} (ssh_read_write_timeout)"
                    )
                    t.close()
                    return

        threading.Thread(target=loop, name="kiln-ssh-keepalive", daemon=True).start()

    def _drop_connection(self) -> None:
        if self._keepalive_stop is not None:
            self._keepalive_stop.set()
            self._keepalive_stop = None
        for item in (self._sftp, self._transport, self._bastion):
            if item is not None:
                _close_quietly(item)
        self._sftp = self._transport = self._bastion = self._sock = None

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._drop_connection()
            for lst in self._listeners:
                _close_quietly(lst)
            self._listeners = []

    # -- tunnels ---------------------------------------------------------------
    def _start_tunnels(self, t: Any) -> None:
        """ssh_local_tunnels listen here for the whole build (and use whichever connection is
        current); ssh_remote_tunnels are asked of every new connection."""
        for bind, port, host, hport in self.settings.remote_tunnels:

            def handler(
                chan: Any, _origin: Any, _server: Any, host: str = host, hport: int = hport
            ) -> None:
                try:
                    sock = socket.create_connection((host, hport), timeout=30)
                except OSError:
                    chan.close()
                    return
                _splice(chan, sock)

            try:
                t.request_port_forward(bind, port, handler)
            except Exception as e:  # noqa: BLE001
                raise StepError(
                    f"ssh_remote_tunnels: the server would not listen on "
                    f"{bind}:{port}: {_describe(e)}"
                ) from e
        if self._listeners or not self.settings.local_tunnels:
            return
        for bind, port, host, hport in self.settings.local_tunnels:
            lst = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            lst.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                lst.bind((bind, port))
            except OSError as e:
                lst.close()
                raise StepError(
                    f"ssh_local_tunnels: cannot listen on {bind}:{port}: {e.strerror or e}"
                ) from e
            lst.listen(16)
            self._listeners.append(lst)
            threading.Thread(
                target=self._serve_tunnel,
                args=(lst, host, hport),
                name="kiln-ssh-tunnel",
                daemon=True,
            ).start()

    def _serve_tunnel(self, lst: socket.socket, host: str, hport: int) -> None:
        while True:
            try:
                client, peer = lst.accept()
            except OSError:
                return  # closed
            try:
                chan = self._live_transport().open_channel(
                    "direct-tcpip", (host, hport), peer[:2], timeout=30
                )
            except Exception:  # noqa: BLE001 - the far side refused; drop this client
                client.close()
                continue
            _splice(chan, client)

    def _live_transport(self) -> Any:
        """The transport, re-opened once if the connection died (Packer does the same)."""
        with self._lock:
            t = self._transport
            if t is not None and t.is_active():
                return t
            why = self._dead_reason or "the connection was closed"
            self._drop_connection()
            try:
                self._connect(ATTEMPT_TIMEOUT, self._cancel)
            except (Cancelled, StepError):
                raise
            except Exception as e:  # noqa: BLE001
                raise CommunicatorError(
                    f"SSH connection to {self.settings.target.dest} lost ({why}) "
                    f"and reconnecting failed: {_describe(e)}"
                ) from e
            return self._transport

    def _open_channel(self) -> Any:
        for tries in (1, 2):
            t = self._live_transport()
            try:
                return t.open_session(timeout=30)
            except Exception as e:  # noqa: BLE001 - the link died between check and use
                if tries == 2 or t.is_active():
                    raise CommunicatorError(
                        f"cannot open an SSH session on {self.settings.target.dest}: {_describe(e)}"
                    ) from e
        raise AssertionError("unreachable")

    # -- commands --------------------------------------------------------------
    def run(
        self,
        command: str,
        output: OutputFn,
        cancel: CancelToken,
        *,
        stdin: bytes | None = None,
        timeout: float | None = None,
    ) -> int:
        if cancel is not None:
            cancel.check()
        pty = self.settings.pty
        chan = self._open_channel()
        # Without a PTY, the first stdout line tells us the command's process group,
        # so cancel can stop it. Only for POSIX shells: not Windows' OpenSSH (cmd.exe).
        track = not pty and "windows" not in str(chan.get_transport().remote_version).lower()
        agent = None
        try:
            if pty:
                chan.get_pty(term="vt100", width=80, height=40)
            if self.settings.forward_agent:
                agent = _forward_agent(chan)
            chan.exec_command(f"echo {self._pid_tag}$$; {command}" if track else command)
        except Exception as e:  # noqa: BLE001
            chan.close()
            if agent is not None:
                agent.close()
            raise CommunicatorError(
                f"cannot start the command on {self.settings.target.dest}: {_describe(e)}"
            ) from e
        if stdin:
            threading.Thread(target=_send_stdin, args=(chan, stdin), daemon=True).start()
        else:
            chan.shutdown_write()
        try:
            return self._pump(chan, output, cancel, timeout, pty, track)
        finally:
            if agent is not None:
                agent.close()

    def _pump(
        self,
        chan: Any,
        output: OutputFn,
        cancel: CancelToken | None,
        timeout: float | None,
        pty: bool,
        track: bool,
    ) -> int:
        out = LineSplitter("stdout", output)
        err = LineSplitter("stderr", output)
        pid_filter = _PidFilter(self._pid_tag, out.feed) if track else None
        if pty:
            feed_out = _crlf_feeder(out.feed)
        else:
            feed_out = pid_filter.feed if pid_filter is not None else out.feed
        stop_flag = threading.Event()
        unregister = cancel.on_cancel(stop_flag.set) if cancel is not None else (lambda: None)
        deadline = time.monotonic() + timeout if timeout else None
        stopping_since: float | None = None
        timed_out = False
        fd = chan.fileno()

        def drain() -> bool:
            got = False
            while chan.recv_ready():
                data = chan.recv(CHUNK)
                if not data:
                    break
                feed_out(data)
                got = True
            while chan.recv_stderr_ready():
                data = chan.recv_stderr(CHUNK)
                if not data:
                    break
                err.feed(data)
                got = True
            return got

        # sshd may send exit-status before the command's last output: read to the
        # channel's EOF, waiting at most EOF_WAIT of silence after the status (a
        # background process holding stdout open would keep the channel open forever)
        quiet_since: float | None = None
        try:
            while True:
                if stopping_since is None and (
                    stop_flag.is_set() or (deadline is not None and time.monotonic() >= deadline)
                ):
                    timed_out = not stop_flag.is_set()
                    stopping_since = time.monotonic()
                    self._interrupt(chan, pid_filter.pid if pid_filter else None, pty, "TERM")
                elif stopping_since is not None and time.monotonic() - stopping_since > STOP_GRACE:
                    self._interrupt(chan, pid_filter.pid if pid_filter else None, pty, "KILL")
                    chan.close()
                    break
                if chan.closed:
                    drain()
                    break
                try:
                    select.select([fd], [], [], 0.2)
                except (OSError, ValueError):  # closed under us
                    drain()
                    break
                if drain():
                    quiet_since = None
                    continue
                ended = chan.eof_received or chan.closed
                if ended and (chan.exit_status_ready() or chan.closed):
                    drain()
                    break
                if ended or chan.exit_status_ready():  # the other one should follow promptly
                    now = time.monotonic()
                    if quiet_since is None:
                        quiet_since = now
                    elif now - quiet_since > EOF_WAIT:
                        break
        finally:
            unregister()
            if pid_filter is not None:
                pid_filter.flush()
            for s in (out, err):
                s.flush()
        status = chan.exit_status if chan.exit_status_ready() else -1
        chan.close()
        if cancel is not None and stop_flag.is_set():
            raise Cancelled(cancel.reason or "cancelled")
        if timed_out:
            return status if status >= 0 else TIMEOUT_STATUS
        if status < 0:
            return DISCONNECTED
        return status

    def _interrupt(self, chan: Any, pid: int | None, pty: bool, sig: str) -> None:
        """Stop the remote command.

        On a PTY, closing the channel makes sshd hang up the terminal: the
        command's process group gets SIGHUP (a ^C cannot be typed any more:
        stdin was closed when the command started, as Packer does). Without a
        PTY, closing the channel stops nothing, so the process group learnt
        from the first stdout line gets SIGTERM, then SIGKILL.
        """
        if pty:
            _send_signal(chan, "INT")  # sshd honours it for non-root users
            chan.close()
            return
        if pid is None:
            if sig == "KILL":
                chan.close()
            return
        cmd = f"kill -{sig} -- -{pid} 2>/dev/null || kill -{sig} {pid} 2>/dev/null; true"

        def send() -> None:
            t = self._transport
            if t is None or not t.is_active():
                return
            try:
                c = t.open_session(timeout=5)
                c.exec_command(cmd)
                c.shutdown_write()
                c.recv_exit_status()
                c.close()
            except Exception:  # noqa: BLE001 - best effort
                pass

        threading.Thread(target=send, name="kiln-ssh-kill", daemon=True).start()

    # -- files -----------------------------------------------------------------
    def upload(self, dst: str, src: str | bytes, mode: int | None = None) -> None:
        if isinstance(src, (bytes, bytearray, memoryview)):
            data = bytes(src)
            size, mtime = len(data), time.time()
            fmode = 0o644 if mode is None else mode

            def opener() -> BinaryIO:
                return io.BytesIO(data)
        else:
            try:
                st = os.stat(src)
            except OSError as e:
                raise CommunicatorError(f"upload of {src} failed: {e.strerror or e}") from e
            size, mtime = st.st_size, st.st_mtime
            fmode = stat.S_IMODE(st.st_mode) if mode is None else mode

            def opener() -> BinaryIO:
                return open(src, "rb")

        self._with_retry(
            lambda: self._upload_file(dst, opener, size, fmode, mtime), f"upload to {dst}"
        )

    def _upload_file(
        self, dst: str, opener: Callable[[], BinaryIO], size: int, mode: int, mtime: float
    ) -> None:
        if self.settings.file_transfer == "sftp":
            sftp = self._sftp_client()
            with opener() as f:
                sftp.putfo(f, dst, file_size=size, confirm=True)
            sftp.chmod(dst, mode)
            return
        chan = self._scp_session(f"scp -ptd -- {_q(posixpath.dirname(dst) or '.')}")
        try:
            _scp_ack(chan)
            with opener() as f:
                _scp_send_file(chan, posixpath.basename(dst), f, size, mode, mtime)
            _scp_finish(chan)
        finally:
            chan.close()

    def upload_dir(self, dst: str, src: str, exclude: Iterable[str] = ()) -> None:
        exclude = list(exclude)
        root = src.rstrip("/") or "/"
        if not os.path.isdir(root):
            raise CommunicatorError(f"upload of {src} failed: not a directory")
        into_contents = src.endswith("/")
        self._mkdir_p(dst)
        if self.settings.file_transfer == "sftp":
            target = dst if into_contents else posixpath.join(dst, os.path.basename(root))
            self._with_retry(lambda: self._sftp_put_tree(root, target, exclude), f"upload to {dst}")
            return

        def send() -> None:
            chan = self._scp_session(f"scp -rpt -- {_q(dst)}")
            try:
                _scp_ack(chan)
                if into_contents:
                    _scp_send_children(chan, root, exclude)
                else:
                    _scp_send_dir(chan, root, os.path.basename(root), exclude)
                _scp_finish(chan)
            finally:
                chan.close()

        self._with_retry(send, f"upload of {src} to {dst}")

    def download(self, src: str, dst: str) -> None:
        def get() -> None:
            if self.settings.file_transfer == "sftp":
                sftp = self._sftp_client()
                st = sftp.stat(src)
                if stat.S_ISDIR(st.st_mode or 0):
                    raise CommunicatorError(f"{src} is a directory")
                sftp.get(src, dst)
                _apply_attrs(dst, st.st_mode, st.st_mtime)
                return
            chan = self._scp_session(f"scp -pf -- {_q(src)}")
            try:
                _ScpReceiver(chan, dst, single_file=True).run()
            finally:
                chan.close()

        self._with_retry(get, f"download of {src}")

    def download_dir(self, src: str, dst: str, exclude: Iterable[str] = ()) -> None:
        exclude = list(exclude)
        os.makedirs(dst, exist_ok=True)
        base = posixpath.basename(src.rstrip("/"))
        is_glob = any(c in base for c in "*?[")
        into_contents = src.endswith("/") or is_glob
        if self.settings.file_transfer == "sftp":
            self._with_retry(
                lambda: self._sftp_get_tree(src, dst, into_contents, is_glob, exclude),
                f"download of {src}",
            )
            return
        if is_glob:
            remote = f"{_q(posixpath.dirname(src) or '.')}/{_glob_quote(base)}"
        else:
            remote = _q(src.rstrip("/") or "/")

        def get() -> None:
            chan = self._scp_session(f"scp -rpf -- {remote}")
            try:
                _ScpReceiver(
                    chan,
                    dst,
                    single_file=False,
                    contents=into_contents and not is_glob,
                    exclude=exclude,
                ).run()
            finally:
                chan.close()

        self._with_retry(get, f"download of {src}")

    # -- file helpers ------------------------------------------------------------
    def _with_retry(self, fn: Callable[[], None], what: str) -> None:
        """Run a transfer; a connection that died is re-opened once and the transfer redone.

        Errors raised while the connection is alive come from the machine (no
        such directory, permission denied): they carry ``retryable = False`` so
        provisioners do not retry them for minutes.
        """
        for tries in (1, 2):
            try:
                fn()
                return
            except (Cancelled, StepError):
                raise
            except Exception as e:  # noqa: BLE001
                t = self._transport
                alive = t is not None and t.is_active()
                if not alive and tries == 1:
                    with self._lock:
                        self._sftp = None
                    continue
                if isinstance(e, CommunicatorError):
                    err = e
                    if not str(err).startswith(what):
                        err = CommunicatorError(f"{what} failed: {e}")
                else:
                    err = CommunicatorError(f"{what} failed: {_transfer_error(e)}")
                err.retryable = not alive  # type: ignore[attr-defined]
                if err is e:
                    raise
                raise err from e

    def _sftp_client(self) -> Any:
        with self._lock:
            t = self._live_transport()
            if (
                self._sftp is None
                or self._sftp.get_channel() is None
                or self._sftp.get_channel().closed
            ):
                import paramiko

                try:
                    self._sftp = paramiko.SFTPClient.from_transport(
                        t, window_size=WINDOW_SIZE, max_packet_size=MAX_PACKET
                    )
                except Exception as e:  # noqa: BLE001
                    raise CommunicatorError(
                        f"cannot start SFTP on {self.settings.target.dest}: "
                        f"{_describe(e)} (is the sftp subsystem enabled? "
                        'ssh_file_transfer_method "scp" avoids it)'
                    ) from e
            return self._sftp

    def _scp_session(self, command: str) -> Any:
        chan = self._open_channel()
        try:
            chan.exec_command(command)
        except Exception as e:  # noqa: BLE001
            chan.close()
            raise CommunicatorError(
                f"cannot start scp on {self.settings.target.dest}: {_describe(e)}"
            ) from e
        return chan

    def _mkdir_p(self, path: str) -> None:
        if self.settings.file_transfer == "sftp":
            self._with_retry(lambda: _sftp_mkdir_p(self._sftp_client(), path), f"mkdir {path}")
            return
        lines: list[str] = []
        status = self.run(f"mkdir -p -- {_q(path)}", lambda _s, ls: lines.extend(ls), None)
        if status != 0:
            raise CommunicatorError(
                f"cannot create {path}: {' '.join(lines) or f'exit status {status}'}"
            )

    def _sftp_put_tree(self, root: str, target: str, exclude: list[str]) -> None:
        sftp = self._sftp_client()
        _sftp_mkdir_p(sftp, target)
        sftp.chmod(target, stat.S_IMODE(os.stat(root).st_mode))
        for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
            dirnames[:] = sorted(d for d in dirnames if not _excluded(d, exclude))
            rel = os.path.relpath(dirpath, root)
            rdir = target if rel == "." else posixpath.join(target, *rel.split(os.sep))
            for d in dirnames:
                rpath = posixpath.join(rdir, d)
                try:
                    sftp.mkdir(rpath)
                except OSError:
                    pass  # exists
                sftp.chmod(rpath, stat.S_IMODE(os.stat(os.path.join(dirpath, d)).st_mode))
            for name in sorted(filenames):
                if _excluded(name, exclude):
                    continue
                lpath = os.path.join(dirpath, name)
                rpath = posixpath.join(rdir, name)
                st = os.stat(lpath)
                with open(lpath, "rb") as f:
                    sftp.putfo(f, rpath, file_size=st.st_size, confirm=True)
                sftp.chmod(rpath, stat.S_IMODE(st.st_mode))

    def _sftp_get_tree(
        self, src: str, dst: str, into_contents: bool, is_glob: bool, exclude: list[str]
    ) -> None:
        sftp = self._sftp_client()
        if is_glob:
            parent, pattern = posixpath.split(src)
            for attr in sorted(sftp.listdir_attr(parent or "."), key=lambda a: a.filename):
                if fnmatch.fnmatchcase(attr.filename, pattern) and not _excluded(
                    attr.filename, exclude
                ):
                    self._sftp_get_entry(
                        sftp,
                        posixpath.join(parent, attr.filename),
                        os.path.join(dst, attr.filename),
                        attr,
                        exclude,
                    )
            return
        root = src.rstrip("/") or "/"
        st = sftp.stat(root)
        if not stat.S_ISDIR(st.st_mode or 0):
            self._sftp_get_entry(
                sftp, root, os.path.join(dst, posixpath.basename(root)), st, exclude
            )
            return
        target = dst if into_contents else os.path.join(dst, posixpath.basename(root))
        self._sftp_get_entry(sftp, root, target, st, exclude)

    def _sftp_get_entry(
        self, sftp: Any, rpath: str, lpath: str, st: Any, exclude: list[str]
    ) -> None:
        if stat.S_ISDIR(st.st_mode or 0):
            os.makedirs(lpath, exist_ok=True)
            for attr in sorted(sftp.listdir_attr(rpath), key=lambda a: a.filename):
                if _excluded(attr.filename, exclude):
                    continue
                self._sftp_get_entry(
                    sftp,
                    posixpath.join(rpath, attr.filename),
                    os.path.join(lpath, attr.filename),
                    attr,
                    exclude,
                )
            _apply_attrs(lpath, st.st_mode, st.st_mtime)
        else:
            sftp.get(rpath, lpath)
            _apply_attrs(lpath, st.st_mode, st.st_mtime)

    # -- data for provisioners ---------------------------------------------------
    def connection_data(self) -> dict[str, Any]:
        ep = self.settings.target
        return {
            "Host": ep.host,
            "Port": str(ep.port),
            "User": ep.user,
            "Password": ep.password,
            "ConnType": "ssh",
            "SSHPrivateKey": ep.key_text,
            "SSHPrivateKeyFile": ep.key_file,
            "SSHAgentAuth": ep.agent,
        }

    def access_hint(self) -> str:
        ep = self.settings.target
        parts = ["ssh"]
        if ep.key_file:
            parts += ["-i", shlex.quote(ep.key_file)]
        if ep.port != 22:
            parts += ["-p", str(ep.port)]
        b = self.settings.bastion
        if b is not None:
            parts += ["-J", f"{b.user}@{b.host}:{b.port}"]
        parts.append(f"{ep.user}@{ep.host}")
        return " ".join(parts)


# --------------------------------------------------------------------------- command plumbing


def _splice(a: Any, b: Any) -> None:
    """Copy bytes both ways between two socket-likes until either side ends."""

    def pump(src: Any, dst: Any) -> None:
        try:
            while True:
                data = src.recv(CHUNK)
                if not data:
                    break
                dst.sendall(data)
        except Exception:  # noqa: BLE001 - either side went away
            pass
        finally:
            _close_quietly(src)
            _close_quietly(dst)

    for src, dst in ((a, b), (b, a)):
        threading.Thread(target=pump, args=(src, dst), name="kiln-ssh-splice", daemon=True).start()


def _send_signal(chan: Any, name: str) -> None:
    """RFC 4254 "signal" request (OpenSSH delivers it only to non-root sessions)."""
    from paramiko.common import cMSG_CHANNEL_REQUEST
    from paramiko.message import Message

    try:
        m = Message()
        m.add_byte(cMSG_CHANNEL_REQUEST)
        m.add_int(chan.remote_chanid)
        m.add_string("signal")
        m.add_boolean(False)
        m.add_string(name)
        chan.transport._send_user_message(m)
    except Exception:  # noqa: BLE001 - best effort
        pass


def _send_stdin(chan: Any, data: bytes) -> None:
    try:
        chan.sendall(data)
        chan.shutdown_write()
    except Exception:  # noqa: BLE001 - the command may exit without reading its input
        pass


class _PidFilter:
    """Takes our ``<tag><pid>`` line out of stdout (it is the first line we wrote)."""

    LIMIT = 64 * 1024

    def __init__(self, tag: str, feed: Callable[[bytes], None]):
        self.tag = tag.encode()
        self.next = feed
        self.pid: int | None = None
        self._buf = b""
        self._done = False

    def feed(self, data: bytes) -> None:
        if self._done:
            self.next(data)
            return
        buf = self._buf + data
        at = buf.find(self.tag)
        if at >= 0 and (at == 0 or buf[at - 1 : at] == b"\n"):
            end = buf.find(b"\n", at)
            if end < 0:
                self._buf = buf
                return
            try:
                self.pid = int(buf[at + len(self.tag) : end])
            except ValueError:
                self.pid = None
            self._done = True
            self._buf = b""
            rest = buf[:at] + buf[end + 1 :]
            if rest:
                self.next(rest)
            return
        if len(buf) > self.LIMIT:  # someone else's output; stop looking
            self._done = True
            self._buf = b""
            self.next(buf)
            return
        self._buf = buf

    def flush(self) -> None:
        if self._buf:
            buf, self._buf = self._buf, b""
            self._done = True
            self.next(buf)


def _crlf_feeder(feed: Callable[[bytes], None]) -> Callable[[bytes], None]:
    """A PTY ends lines with CRLF: turn them into LF (a CR split across chunks included)."""
    held = [b""]

    def f(data: bytes) -> None:
        data = held[0] + data
        if data.endswith(b"\r"):
            held[0], data = b"\r", data[:-1]
        else:
            held[0] = b""
        feed(data.replace(b"\r\n", b"\n"))

    return f


# --------------------------------------------------------------------------- scp protocol


def _q(path: str) -> str:
    return shlex.quote(path)


def _glob_quote(pattern: str) -> str:
    """Quote a file-name pattern for the remote shell, leaving * ? [ ] active."""
    out = []
    for ch in pattern:
        out.append(ch if ch in "*?[]" or ch.isalnum() or ch in "._-+,@%=:" else "\\" + ch)
    return "".join(out)


def _excluded(name: str, exclude: list[str]) -> bool:
    return any(fnmatch.fnmatch(name, p) for p in exclude)


def _transfer_error(e: BaseException) -> str:
    if isinstance(e, FileNotFoundError) or (isinstance(e, OSError) and e.errno == 2):
        return "no such file or directory"
    if isinstance(e, PermissionError) or (isinstance(e, OSError) and e.errno == 13):
        return "permission denied"
    return _describe(e)


def _read_line(chan: Any) -> bytes:
    buf = bytearray()
    while True:
        c = chan.recv(1)
        if not c:
            raise CommunicatorError("scp: the connection closed unexpectedly")
        if c == b"\n":
            return bytes(buf)
        buf += c


def _recv_exact(chan: Any, n: int, sink: Callable[[bytes], Any] | None = None) -> bytes:
    got = bytearray() if sink is None else None
    left = n
    while left:
        data = chan.recv(min(left, CHUNK))
        if not data:
            raise CommunicatorError("scp: the connection closed in the middle of a file")
        left -= len(data)
        if sink is None:
            got += data  # type: ignore[operator]
        else:
            sink(data)
    return bytes(got) if got is not None else b""


def _scp_ack(chan: Any) -> None:
    c = chan.recv(1)
    if c == b"\0":
        return
    if not c:
        err = _stderr_text(chan)
        hint = "the remote scp ended without answering (is scp installed on the machine?)"
        raise CommunicatorError(f"scp: {err or hint}")
    msg = _read_line(chan).decode("utf-8", "replace").strip()
    raise CommunicatorError(msg.removeprefix("scp: ") if msg else "scp failed")


def _stderr_text(chan: Any) -> str:
    out = b""
    try:
        while chan.recv_stderr_ready():
            out += chan.recv_stderr(65536)
    except Exception:  # noqa: BLE001
        pass
    return out.decode("utf-8", "replace").strip()


def _scp_finish(chan: Any) -> None:
    chan.shutdown_write()
    status = chan.recv_exit_status()
    if status not in (0, -1):
        err = _stderr_text(chan)
        raise CommunicatorError(f"scp exited with status {status}{': ' + err if err else ''}")


def _check_name(name: str) -> None:
    if "\n" in name or "/" in name or not name:
        raise CommunicatorError(f"scp cannot transfer a file named {name!r}")


def _scp_time(chan: Any, mtime: float) -> None:
    chan.sendall(f"T{int(mtime)} 0 {int(mtime)} 0\n".encode())
    _scp_ack(chan)


def _scp_send_file(chan: Any, name: str, f: BinaryIO, size: int, mode: int, mtime: float) -> None:
    _check_name(name)
    _scp_time(chan, mtime)
    chan.sendall(f"C{mode & 0o7777:04o} {size} {name}\n".encode("utf-8", "surrogateescape"))
    _scp_ack(chan)
    left = size
    while left > 0:
        chunk = f.read(min(CHUNK, left))
        if not chunk:
            raise CommunicatorError(f"{name} became shorter while it was being uploaded")
        chan.sendall(chunk)
        left -= len(chunk)
    chan.sendall(b"\0")
    _scp_ack(chan)


def _scp_send_children(chan: Any, path: str, exclude: list[str]) -> None:
    for entry in sorted(os.scandir(path), key=lambda e: e.name):
        if _excluded(entry.name, exclude):
            continue
        full = os.path.join(path, entry.name)
        try:
            st = os.stat(full)  # follows symlinks, like scp
        except OSError:
            continue  # a dangling link
        if stat.S_ISDIR(st.st_mode):
            _scp_send_dir(chan, full, entry.name, exclude)
        elif stat.S_ISREG(st.st_mode):
            with open(full, "rb") as f:
                _scp_send_file(
                    chan, entry.name, f, st.st_size, stat.S_IMODE(st.st_mode), st.st_mtime
                )


def _scp_send_dir(chan: Any, path: str, name: str, exclude: list[str]) -> None:
    _check_name(name)
    st = os.stat(path)
    _scp_time(chan, st.st_mtime)
    chan.sendall(f"D{stat.S_IMODE(st.st_mode):04o} 0 {name}\n".encode("utf-8", "surrogateescape"))
    _scp_ack(chan)
    _scp_send_children(chan, path, exclude)
    chan.sendall(b"E\n")
    _scp_ack(chan)


class _ScpReceiver:
    """The receiving side of ``scp -f``: files and directory records into ``dst``."""

    def __init__(
        self,
        chan: Any,
        dst: str,
        single_file: bool,
        contents: bool = False,
        exclude: Iterable[str] = (),
    ):
        self.chan = chan
        self.dst = dst
        self.single = single_file
        self.contents = contents
        self.exclude = list(exclude)
        self.stack: list[str] = []
        self.skip_depth = 0

    def run(self) -> None:
        chan = self.chan
        chan.sendall(b"\0")
        mtime: float | None = None
        dir_times: list[tuple[str, float | None]] = []
        got_any = False
        while True:
            first = chan.recv(1)
            if not first:
                break
            if first in (b"\x01", b"\x02"):
                msg = _read_line(chan).decode("utf-8", "replace").strip()
                raise CommunicatorError(msg.removeprefix("scp: ") or "scp failed")
            line = (first + _read_line(chan)).decode("utf-8", "surrogateescape")
            kind = line[0]
            if kind == "T":
                mtime = float(line[1:].split()[0])
                chan.sendall(b"\0")
                continue
            if kind == "E":
                path, t = dir_times.pop()
                if path and t is not None:
                    os.utime(path, (t, t))
                if self.skip_depth:
                    self.skip_depth -= 1
                else:
                    self.stack.pop()
                chan.sendall(b"\0")
                continue
            if kind not in "CD":
                raise CommunicatorError(f"scp: unexpected reply {line[:60]!r}")
            mode_s, size_s, name = line[1:].split(" ", 2)
            mode, size = int(mode_s, 8), int(size_s)
            if "/" in name or name in ("..",):
                raise CommunicatorError(f"scp: refusing the unsafe name {name!r}")
            skipping = self.skip_depth > 0 or _excluded(name, self.exclude)
            if kind == "D":
                if skipping:
                    self.skip_depth += 1
                    dir_times.append(("", None))
                else:
                    if not self.stack and self.contents:
                        path = self.dst
                    else:
                        path = os.path.join(self.stack[-1] if self.stack else self.dst, name)
                    os.makedirs(path, exist_ok=True)
                    os.chmod(path, mode | 0o700)  # we must be able to write inside it
                    self.stack.append(path)
                    dir_times.append((path, mtime))
                mtime = None
                chan.sendall(b"\0")
                continue
            # a file
            if self.single:
                path = self.dst
            else:
                path = os.path.join(self.stack[-1] if self.stack else self.dst, name)
            chan.sendall(b"\0")
            if skipping:
                _recv_exact(chan, size, lambda _d: None)
            else:
                with open(path, "wb") as f:
                    _recv_exact(chan, size, f.write)
                _apply_attrs(path, mode, mtime)
            _scp_ack(chan)
            chan.sendall(b"\0")
            mtime = None
            got_any = True
        chan.shutdown_write()
        status = chan.recv_exit_status()
        if status not in (0, -1):
            err = _stderr_text(chan)
            raise CommunicatorError(
                err.removeprefix("scp: ") if err else f"scp exited with status {status}"
            )
        if self.single and not got_any:
            raise CommunicatorError("scp sent no file")
        for path, t in dir_times:  # directories left open by a truncated stream
            if path and t is not None:
                os.utime(path, (t, t))


def _apply_attrs(path: str, mode: int | None, mtime: float | None) -> None:
    try:
        if mode is not None:
            os.chmod(path, stat.S_IMODE(mode))
        if mtime is not None:
            os.utime(path, (mtime, mtime))
    except OSError:
        pass


def _sftp_mkdir_p(sftp: Any, path: str) -> None:
    parts = [p for p in path.split("/") if p]
    cur = "/" if path.startswith("/") else ""
    for p in parts:
        cur = posixpath.join(cur, p) if cur else p
        try:
            st = sftp.stat(cur)
            if not stat.S_ISDIR(st.st_mode or 0):
                raise CommunicatorError(f"cannot create {path}: {cur} is not a directory")
        except FileNotFoundError:
            sftp.mkdir(cur)
        except OSError as e:
            if getattr(e, "errno", None) == 2:
                sftp.mkdir(cur)
            else:
                raise
