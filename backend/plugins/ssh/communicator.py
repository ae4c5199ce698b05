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


Settings are in settings.py, connecting in connect.py, channel plumbing in channels.py, the
file transfer methods in files.py and the scp/sftp protocol helpers in transfer.py."""

from __future__ import annotations

import select
import shlex
import socket
import threading
import time
import uuid
from typing import TYPE_CHECKING, Any

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
from .channels import CHUNK, _crlf_feeder, _PidFilter, _send_signal, _send_stdin, _splice
from .connect import (
    _Attempt,
    _AuthFailed,
    _close_quietly,
    _connect_once,
    _describe,
    _forward_agent,
    _quiet_paramiko,
    _TrackedSocket,
)
from .files import SSHFileTransfer
from .settings import SSHSettings

#: seconds between connection attempts (Packer waits 5 s)
WAIT_INTERVAL = 2.0


#: the longest one connection attempt may take (TCP connect, banner, key exchange, auth)
ATTEMPT_TIMEOUT = 20.0


#: after ^C / SIGTERM, how long a command gets before it is killed and the channel closed
STOP_GRACE = 2.0


#: after the exit status, how long a silent channel may stay open before we stop reading
EOF_WAIT = 5.0


#: the value Kiln reports for a command that was stopped by its ``timeout``
TIMEOUT_STATUS = 143


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


class SSHCommunicator(SSHFileTransfer, Communicator):
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
