"""Connecting over SSH, one attempt: proxy, bastion, SOCKS, keys, agent, certificates."""

from __future__ import annotations

import logging
import socket
import threading
import time
from typing import TYPE_CHECKING, Any, Callable

from ...sdk.plugin import StepError

if TYPE_CHECKING:
    pass
from .settings import Endpoint, SSHSettings

#: SSH flow-control window and packet size we offer: large windows keep bulk
#: transfers from stalling on window adjustments
WINDOW_SIZE = 64 * 1024 * 1024


MAX_PACKET = 32768


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
