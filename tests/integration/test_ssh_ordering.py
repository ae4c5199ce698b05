"""SSH servers that send the exit status before the last output (OpenSSH may, under load).

A real sshd cannot be made to reorder its messages on demand, so this server is
paramiko's own SSH server on 127.0.0.1, speaking the real protocol: it sends
``exit-status`` first and the command's last bytes after it.
"""

from __future__ import annotations

import re
import socket
import threading
import time

import paramiko
import pytest
from build_context import masking_context
from kiln.backend.plugins.communicators.config import CommunicatorConfig
from kiln.backend.plugins.ssh import communicator as ssh_mod
from kiln.backend.plugins.ssh.communicator import connect_ssh
from kiln.backend.sdk.cancel import CancelToken
from kiln.backend.template.decode import Duration

pytestmark = pytest.mark.ssh

TRACKED = re.compile(r"^echo (\S+)\$\$; (.*)$", re.S)


class LateDataServer(paramiko.ServerInterface):
    """``exit-status`` first; then, ``delay`` seconds later, the output; then EOF (unless
    ``eof`` is False: a background process that keeps stdout open)."""

    def __init__(self, delay: float, eof: bool = True):
        self.delay = delay
        self.eof = eof

    def get_allowed_auths(self, username):
        return "password"

    def check_auth_password(self, username, password):
        return paramiko.AUTH_SUCCESSFUL

    def check_channel_request(self, kind, chanid):
        return paramiko.OPEN_SUCCEEDED if kind == "session" else paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED

    def check_channel_exec_request(self, channel, command):
        threading.Thread(target=self._answer, args=(channel, command.decode()), daemon=True).start()
        return True

    def _answer(self, chan, command: str) -> None:
        m = TRACKED.match(command)
        if m:  # the communicator's process-group line comes first, as from a shell
            chan.sendall(f"{m.group(1)}4242\n".encode())
            command = m.group(2)
        code = int(command.split("exit ")[-1]) if "exit " in command else 0
        chan.send_exit_status(code)
        time.sleep(self.delay)
        chan.sendall(b"first line\n" + b"x" * 300_000 + b"\nlast line\n")
        chan.sendall_stderr(b"an error line\n")
        if self.eof:
            chan.shutdown_write()
            time.sleep(0.1)
            chan.close()


@pytest.fixture
def late_server(request):
    delay, eof = request.param
    host_key = paramiko.Ed25519Key.generate() if hasattr(paramiko.Ed25519Key, "generate") \
        else paramiko.RSAKey.generate(2048)
    lst = socket.socket()
    lst.bind(("127.0.0.1", 0))
    lst.listen(4)
    transports = []

    def serve() -> None:
        while True:
            try:
                conn, _ = lst.accept()
            except OSError:
                return
            t = paramiko.Transport(conn)
            t.add_server_key(host_key)
            transports.append(t)
            t.start_server(server=LateDataServer(delay, eof))

    threading.Thread(target=serve, daemon=True).start()
    yield lst.getsockname()[1]
    lst.close()
    for t in transports:
        t.close()


def connect(port: int):
    cfg = CommunicatorConfig(communicator="ssh", ssh_host="127.0.0.1", ssh_port=port,
                             ssh_username="u", ssh_password="p", ssh_timeout=Duration(20))
    return connect_ssh(masking_context("late"), cfg, host="127.0.0.1")


def run(comm, cmd: str) -> tuple[int, dict[str, list[str]]]:
    got: dict[str, list[str]] = {"stdout": [], "stderr": []}
    code = comm.run(cmd, lambda stream, lines: got[stream].extend(lines), CancelToken())
    return code, got


@pytest.mark.parametrize("late_server", [(0.5, True)], indirect=True)
def test_output_after_the_exit_status_is_not_lost(late_server):
    comm = connect(late_server)
    try:
        code, got = run(comm, "echo hello; exit 3")
    finally:
        comm.close()
    assert code == 3
    assert got["stdout"][0] == "first line" and got["stdout"][-1] == "last line"
    assert len(got["stdout"][1]) == 300_000
    assert got["stderr"] == ["an error line"]


@pytest.mark.parametrize("late_server", [(0.2, False)], indirect=True)
def test_a_channel_that_never_ends_is_given_up_after_a_bound(late_server, monkeypatch):
    monkeypatch.setattr(ssh_mod, "EOF_WAIT", 1.0)
    comm = connect(late_server)
    try:
        t0 = time.monotonic()
        code, got = run(comm, "sleep 600 & exit 0")
        took = time.monotonic() - t0
    finally:
        comm.close()
    assert code == 0 and got["stdout"][-1] == "last line"
    assert took < 8
