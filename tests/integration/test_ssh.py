"""The SSH communicator against a real OpenSSH server on 127.0.0.1."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from build_context import masking_context
from kiln.backend.engine.context import BuildContext
from kiln.backend.plugins.communicators.config import CommunicatorConfig
from kiln.backend.plugins.ssh.communicator import SSHCommunicator, connect_ssh
from kiln.backend.plugins.ssh.settings import generate_key_pair
from kiln.backend.sdk.cancel import CancelToken
from kiln.backend.sdk.communicator import DISCONNECTED, CommunicatorError
from kiln.backend.sdk.plugin import Cancelled, StepError
from kiln.backend.template.decode import Duration
from kiln_services import Sshd, forward_tcp, free_port, splice

pytestmark = pytest.mark.ssh


# --------------------------------------------------------------------------- helpers


def make_ctx(cancel: CancelToken | None = None) -> BuildContext:
    return masking_context("ssh-test", cancel)


def ui_lines(ctx: BuildContext, kinds: tuple[str, ...] = ("output",)) -> list[str]:
    out = []
    for ev in ctx.bus.replay():
        if ev.type == "output" and "output" in kinds:
            out.extend(ev.data["lines"])
        elif ev.type == "progress" and "progress" in kinds:
            out.append(ev.data["message"])
    return out


def config(sshd: Sshd, **kw: Any) -> CommunicatorConfig:
    kw.setdefault("ssh_host", sshd.host)
    kw.setdefault("ssh_port", sshd.port)
    kw.setdefault("ssh_username", sshd.user)
    if "ssh_password" not in kw and "ssh_agent_auth" not in kw:
        kw.setdefault("ssh_private_key_file", sshd.private_key_path)
    kw.setdefault("ssh_timeout", Duration(20))
    return CommunicatorConfig(communicator="ssh", **kw)


def connect(sshd: Sshd, ctx: BuildContext | None = None, **kw: Any) -> SSHCommunicator:
    ctx = ctx or make_ctx()
    return connect_ssh(ctx, config(sshd, **kw), host=kw.get("ssh_host", sshd.host))


class Collect:
    """An output callback that keeps lines per stream."""

    def __init__(self) -> None:
        self.lines: dict[str, list[str]] = {"stdout": [], "stderr": []}
        self.counts = {"stdout": 0, "stderr": 0}

    def __call__(self, stream: str, lines: list[str]) -> None:
        self.counts[stream] += len(lines)
        if len(self.lines[stream]) < 1000:
            self.lines[stream].extend(lines)


def run(comm: SSHCommunicator, cmd: str, **kw: Any) -> tuple[int, Collect]:
    out = Collect()
    return comm.run(cmd, out, kw.pop("cancel", None) or CancelToken(), **kw), out


def remote_procs(marker: str) -> str:
    r = subprocess.run(["pgrep", "-af", marker], capture_output=True, text=True)
    return "\n".join(line for line in r.stdout.splitlines() if "pgrep" not in line)


def connection_pids(server: Sshd) -> list[int]:
    """The per-connection sshd processes (children of the listening sshd)."""
    r = subprocess.run(["pgrep", "-P", str(server._proc.pid)], capture_output=True, text=True)
    return [int(p) for p in r.stdout.split()]


@pytest.fixture
def comm(sshd: Sshd):
    c = connect(sshd)
    yield c
    c.close()


@pytest.fixture(scope="module")
def own_sshd():
    """An sshd this module may break (kill connections, stop it)."""
    server = Sshd()
    server.start()
    yield server
    server.stop()


# --------------------------------------------------------------------------- logging in


@pytest.mark.parametrize("key", ["ed25519", "rsa"])
def test_key_login_runs_commands(sshd: Sshd, key: str) -> None:
    ctx = make_ctx()
    path = sshd.private_key_path if key == "ed25519" else sshd.rsa_key_path
    c = connect(sshd, ctx, ssh_private_key_file=path)
    try:
        status, out = run(c, "echo hello; id -un")
        assert status == 0
        assert out.lines["stdout"] == ["hello", "root"]
        said = ui_lines(ctx)
        assert f"Using SSH communicator to connect: {sshd.host}" in said
        assert "Connected to SSH!" in said
        data = c.connection_data()
        assert data["ConnType"] == "ssh"
        assert (data["Host"], data["Port"], data["User"]) == (sshd.host, str(sshd.port), "root")
        assert data["SSHPrivateKeyFile"] == path
        assert data["SSHPrivateKey"] == Path(path).read_text()
        assert c.access_hint() == f"ssh -i {path} -p {sshd.port} root@{sshd.host}"
    finally:
        c.close()


def test_tilde_in_key_path_is_expanded(sshd: Sshd, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "k").write_text(Path(sshd.private_key_path).read_text())
    (tmp_path / "k").chmod(0o600)
    c = connect(sshd, ssh_private_key_file="~/k")
    try:
        assert run(c, "true")[0] == 0
    finally:
        c.close()


def test_password_login_and_secrets_masked(sshd: Sshd) -> None:
    ctx = make_ctx()
    c = connect(sshd, ctx, ssh_username=sshd.password_user, ssh_password=sshd.password)
    try:
        status, out = run(c, "whoami")
        assert (status, out.lines["stdout"]) == (0, [sshd.password_user])
        assert c.connection_data()["Password"] == sshd.password
        # anything that prints the password reaches the UI masked
        c.run(f"echo 'pw is {sshd.password}'", ctx.ui.output, ctx.cancel)
        text = "\n".join(ui_lines(ctx))
        assert sshd.password not in text
        assert "pw is <sensitive>" in text
        assert c.access_hint() == f"ssh -p {sshd.port} {sshd.password_user}@{sshd.host}"
    finally:
        c.close()


def test_private_key_text_is_masked(sshd: Sshd) -> None:
    ctx = make_ctx()
    c = connect(sshd, ctx)
    try:
        c.run(f"cat {sshd.private_key_path}", ctx.ui.output, ctx.cancel)
        key = Path(sshd.private_key_path).read_text()
        body = [x for x in key.splitlines() if x and not x.startswith("-----")]
        text = "\n".join(ui_lines(ctx))
        ctx.ui.flush()
        text = "\n".join(ui_lines(ctx))
        assert "<sensitive>" in text  # the command did print the key, masked as one value...
        for line in body:
            assert line not in text  # ...and none of its secret lines got through
    finally:
        c.close()


def test_generated_key_pair_logs_in(sshd: Sshd) -> None:
    for kind in ("ed25519", "rsa"):
        priv, pub = generate_key_pair(kind, bits=2048 if kind == "rsa" else None, comment="kiln-t")
        assert pub.startswith("ssh-ed25519 " if kind == "ed25519" else "ssh-rsa ")
        assert pub.endswith(" kiln-t")
        with open(Path(sshd.dir) / "authorized_keys", "a") as f:
            f.write(pub + "\n")
        ctx = make_ctx()
        cfg = config(sshd, ssh_private_key_file="")
        c = connect_ssh(ctx, cfg, sshd.host, private_key=priv)
        try:
            assert run(c, "echo ok")[1].lines["stdout"] == ["ok"]
            assert c.connection_data()["SSHPrivateKey"] == priv
            assert priv.strip() in ctx.secrets
        finally:
            c.close()


def test_wrong_password_fails_within_timeout(sshd: Sshd) -> None:
    ctx = make_ctx()
    t0 = time.monotonic()
    with pytest.raises(StepError) as exc:
        connect(
            sshd,
            ctx,
            ssh_username=sshd.password_user,
            ssh_password="not-the-password",
            ssh_timeout=Duration(5),
        )
    took = time.monotonic() - t0
    assert took < 5 + 3
    msg = str(exc.value)
    assert "authentication failed" in msg
    assert f"{sshd.password_user}@{sshd.host}:{sshd.port}" in msg
    assert "not-the-password" not in "\n".join(ui_lines(ctx, ("output", "progress")))
    progress = ui_lines(ctx, ("progress",))
    assert (
        progress[0]
        == f"Waiting for SSH on {sshd.password_user}@{sshd.host}:{sshd.port} (attempt 1, 0s)"
    )
    assert len(progress) >= 2  # it retried


def test_wrong_key_gives_up_after_handshake_attempts(sshd: Sshd, tmp_path: Path) -> None:
    priv, _pub = generate_key_pair("ed25519")
    (tmp_path / "other").write_text(priv)
    t0 = time.monotonic()
    with pytest.raises(StepError) as exc:
        connect(
            sshd,
            ssh_private_key_file=str(tmp_path / "other"),
            ssh_handshake_attempts=2,
            ssh_timeout=Duration(60),
        )
    assert time.monotonic() - t0 < 10
    assert "authentication failed for root@" in str(exc.value)
    assert "2 authentication failures" in str(exc.value)


def test_invalid_key_file_is_a_clear_error(sshd: Sshd, tmp_path: Path) -> None:
    (tmp_path / "bad").write_text("not a key\n")
    with pytest.raises(StepError, match="ssh_private_key_file .* is invalid"):
        connect(sshd, ssh_private_key_file=str(tmp_path / "bad"))
    with pytest.raises(StepError, match="ssh_private_key_file is invalid: .*missing"):
        connect(sshd, ssh_private_key_file=str(tmp_path / "missing"))


def test_nothing_listening_times_out_with_last_error() -> None:
    port = free_port()
    ctx = make_ctx()
    cfg = CommunicatorConfig(
        communicator="ssh",
        ssh_host="127.0.0.1",
        ssh_port=port,
        ssh_username="root",
        ssh_password="x" * 8,
        ssh_timeout=Duration(3),
    )
    t0 = time.monotonic()
    with pytest.raises(StepError) as exc:
        connect_ssh(ctx, cfg, "127.0.0.1")
    assert 2.5 < time.monotonic() - t0 < 6
    assert "Timeout waiting for SSH on root@127.0.0.1" in str(exc.value)
    assert "last error: connection refused" in str(exc.value)


def test_waits_for_an_sshd_that_comes_up_later(sshd: Sshd) -> None:
    """Nothing listens on the port for 3 s (connection refused), then sshd answers there."""
    port = free_port()
    stop = threading.Event()

    def come_up_later() -> None:
        time.sleep(3)
        lst = socket.socket()
        lst.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        lst.bind(("127.0.0.1", port))
        lst.listen(8)
        forward_tcp(lst, (sshd.host, sshd.port), stop)

    threading.Thread(target=come_up_later, daemon=True).start()
    ctx = make_ctx()
    t0 = time.monotonic()
    try:
        c = connect(sshd, ctx, ssh_port=port, ssh_timeout=Duration(30))
        took = time.monotonic() - t0
        assert 2.5 < took < 8
        assert run(c, "echo up")[1].lines["stdout"] == ["up"]
        progress = ui_lines(ctx, ("progress",))
        assert len(progress) >= 2 and "(attempt 2," in progress[1]
        c.close()
    finally:
        stop.set()


def test_cancel_while_waiting_is_prompt() -> None:
    port = free_port()
    cancel = CancelToken()
    ctx = make_ctx(cancel)
    cfg = CommunicatorConfig(
        communicator="ssh",
        ssh_host="127.0.0.1",
        ssh_port=port,
        ssh_username="root",
        ssh_password="x" * 8,
        ssh_timeout=Duration(60),
    )
    threading.Timer(1.0, cancel.cancel).start()
    t0 = time.monotonic()
    with pytest.raises(Cancelled):
        connect_ssh(ctx, cfg, "127.0.0.1")
    assert time.monotonic() - t0 < 2.5


def test_bastion_tunnel(sshd: Sshd) -> None:
    """The same sshd plays bastion and target: the target is reached through direct-tcpip."""
    c = connect(
        sshd,
        ssh_bastion_host=sshd.host,
        ssh_bastion_port=sshd.port,
        ssh_bastion_username=sshd.password_user,
        ssh_bastion_password=sshd.password,
    )
    try:
        status, out = run(c, "echo $SSH_CONNECTION")
        assert status == 0
        assert c._bastion is not None and c._bastion.is_active()
        assert "-J" in c.access_hint()
    finally:
        c.close()


# --------------------------------------------------------------------------- commands


def test_exit_codes(comm: SSHCommunicator) -> None:
    assert run(comm, "true")[0] == 0
    assert run(comm, "exit 3")[0] == 3
    assert run(comm, "exit 255")[0] == 255
    assert run(comm, "kill -9 $$")[0] == 128 + 9
    assert run(comm, "no-such-command-kiln")[0] == 127


def test_stdout_and_stderr_are_split(comm: SSHCommunicator) -> None:
    status, out = run(comm, "echo out1; echo err1 >&2; echo out2; printf 'no-newline' >&2")
    assert status == 0
    assert out.lines["stdout"] == ["out1", "out2"]
    assert out.lines["stderr"] == ["err1", "no-newline"]


def test_stdin_is_fed(comm: SSHCommunicator) -> None:
    status, out = run(comm, "tr a-z A-Z", stdin=b"hello\nworld\n")
    assert (status, out.lines["stdout"]) == (0, ["HELLO", "WORLD"])


def test_remote_environment_is_not_ours(comm: SSHCommunicator) -> None:
    """The command line is all the remote side gets (no AcceptEnv): Packer's behaviour."""
    status, out = run(comm, "FOO='a b' sh -c 'echo \"$FOO\"'")
    assert out.lines["stdout"] == ["a b"]


def test_fifty_megabytes_on_stderr_completes(comm: SSHCommunicator) -> None:
    cmd = (
        "head -c 50000000 /dev/zero | tr '\\0' x | fold -w 99 >&2; "
        "echo done; head -c 1000000 /dev/zero | tr '\\0' y | fold -w 99"
    )
    t0 = time.monotonic()
    status, out = run(comm, cmd, timeout=120)
    assert status == 0
    assert out.counts["stderr"] == 50000000 // 99 + 1
    assert out.counts["stdout"] == 1 + 1000000 // 99 + 1
    assert out.lines["stdout"][0] == "done"
    assert time.monotonic() - t0 < 60


@pytest.mark.parametrize("pty", [False, True])
def test_cancel_stops_the_remote_command(sshd: Sshd, pty: bool) -> None:
    marker = f"kiln-sleep-{uuid.uuid4().hex[:8]}"
    c = connect(sshd, ssh_pty=pty)
    try:
        # a copy of sleep with a name we can find, inside a shell that forks it
        run(c, f"cp /bin/sleep /tmp/{marker}")
        cancel = CancelToken()
        threading.Timer(1.0, cancel.cancel).start()
        t0 = time.monotonic()
        with pytest.raises(Cancelled):
            run(c, f"/tmp/{marker} 100; echo after", cancel=cancel)
        assert time.monotonic() - t0 < 1.0 + 3.5
        deadline = time.monotonic() + 5
        while remote_procs(marker) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert remote_procs(marker) == ""
        assert run(c, "echo still-usable")[1].lines["stdout"] == ["still-usable"]
    finally:
        os.remove(f"/tmp/{marker}")
        c.close()


def test_pty_merges_streams_without_carriage_returns(sshd: Sshd) -> None:
    c = connect(sshd, ssh_pty=True)
    try:
        status, out = run(c, "tty; echo to-stderr >&2; exit 4")
        assert status == 4
        assert out.lines["stdout"][0].startswith("/dev/pts/")
        assert out.lines["stdout"][1] == "to-stderr"
        assert out.lines["stderr"] == []
    finally:
        c.close()


def test_command_timeout(comm: SSHCommunicator) -> None:
    t0 = time.monotonic()
    status, _ = run(comm, "sleep 30", timeout=1)
    assert status == 128 + 15
    assert time.monotonic() - t0 < 5


def test_dropped_connection_mid_command_reports_disconnect(own_sshd: Sshd) -> None:
    c = connect(own_sshd)
    try:
        result: dict[str, Any] = {}

        def go() -> None:
            try:
                result["status"] = run(c, "echo started; sleep 30")[0]
            except CommunicatorError as e:
                result["error"] = e

        th = threading.Thread(target=go)
        th.start()
        time.sleep(1.0)
        for pid in connection_pids(own_sshd):
            os.kill(pid, 9)
        th.join(10)
        assert not th.is_alive(), "run() hung after the connection dropped"
        assert result.get("status") == DISCONNECTED or "error" in result
        # the next command reconnects by itself
        assert run(c, "echo again")[1].lines["stdout"] == ["again"]
    finally:
        c.close()


def test_stopped_server_and_read_write_timeout(own_sshd: Sshd) -> None:
    """A server that stops answering is declared dead after ssh_read_write_timeout."""
    c = connect(own_sshd, ssh_read_write_timeout=Duration(2), ssh_keep_alive_interval=Duration(0.5))
    pids = []
    try:
        assert run(c, "true")[0] == 0
        pids = connection_pids(own_sshd)
        result: dict[str, Any] = {}
        th = threading.Thread(target=lambda: result.update(status=run(c, "sleep 20")[0]))
        th.start()
        time.sleep(0.5)
        for pid in pids:
            os.kill(pid, 19)  # SIGSTOP: the connection goes silent
        th.join(10)
        assert not th.is_alive()
        assert result["status"] == DISCONNECTED
    finally:
        for pid in pids:
            try:
                os.kill(pid, 18)
                os.kill(pid, 9)
            except ProcessLookupError:
                pass
        c.close()


def test_killed_sshd_fails_cleanly() -> None:
    """Stop the server while a command runs: no hang, and later use fails with a clear error."""
    server = Sshd()
    server.start()
    c = connect(server)
    try:
        result: dict[str, Any] = {}

        def go() -> None:
            try:
                result["status"] = run(c, "sleep 30")[0]
            except CommunicatorError as e:
                result["error"] = e

        th = threading.Thread(target=go)
        th.start()
        time.sleep(1.0)
        for pid in connection_pids(server):
            os.kill(pid, 9)
        server.stop()
        th.join(10)
        assert not th.is_alive()
        assert result.get("status") == DISCONNECTED or "error" in result
        with pytest.raises(CommunicatorError, match="connection .* lost|reconnect"):
            run(c, "true")
    finally:
        c.close()
        server.stop()


# --------------------------------------------------------------------------- files


@pytest.fixture(params=["scp", "sftp"])
def fcomm(request, sshd: Sshd):
    c = connect(sshd, ssh_file_transfer_method=request.param)
    yield c
    c.close()


def _tree(root: Path) -> dict[str, tuple[str, int]]:
    out = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        mode = stat.S_IMODE(p.stat().st_mode)
        out[rel] = ("dir" if p.is_dir() else p.read_text(), mode)
    return out


def _make_tree(root: Path) -> None:
    (root / "sub" / "deeper").mkdir(parents=True)
    (root / "a.txt").write_text("alpha\n")
    (root / "run.sh").write_text("#!/bin/sh\necho hi\n")
    (root / "run.sh").chmod(0o750)
    (root / "sub" / "b.txt").write_text("beta\n")
    (root / "sub" / "b.txt").chmod(0o600)
    (root / "sub" / "deeper" / "c.txt").write_text("gamma\n")
    (root / "sub" / "deeper").chmod(0o710)


def test_upload_and_download_file_keep_modes(fcomm: SSHCommunicator, tmp_path: Path) -> None:
    src = tmp_path / "script.sh"
    src.write_bytes(b"#!/bin/sh\necho x\n" + bytes(range(256)) * 1000)
    src.chmod(0o751)
    remote = tmp_path / "remote"
    remote.mkdir()
    fcomm.upload(str(remote / "script.sh"), str(src))
    assert (remote / "script.sh").read_bytes() == src.read_bytes()
    assert stat.S_IMODE((remote / "script.sh").stat().st_mode) == 0o751
    fcomm.upload(str(remote / "data.bin"), b"raw bytes\n")
    assert (remote / "data.bin").read_bytes() == b"raw bytes\n"
    assert stat.S_IMODE((remote / "data.bin").stat().st_mode) == 0o644
    fcomm.upload(str(remote / "explicit"), b"x", mode=0o600)
    assert stat.S_IMODE((remote / "explicit").stat().st_mode) == 0o600
    fcomm.upload(str(remote / "script.sh"), b"overwritten\n")  # an existing file is replaced
    assert (remote / "script.sh").read_bytes() == b"overwritten\n"

    back = tmp_path / "back"
    back.mkdir()
    (remote / "exe").write_text("#!/bin/sh\n")
    (remote / "exe").chmod(0o700)
    fcomm.download(str(remote / "exe"), str(back / "exe"))
    assert (back / "exe").read_text() == "#!/bin/sh\n"
    assert stat.S_IMODE((back / "exe").stat().st_mode) == 0o700


def test_upload_errors_are_clear(fcomm: SSHCommunicator, tmp_path: Path) -> None:
    with pytest.raises(CommunicatorError, match="(?i)no such file"):
        fcomm.upload(str(tmp_path / "missing-dir" / "f"), b"x")
    with pytest.raises(CommunicatorError, match="(?i)no such file"):
        fcomm.download(str(tmp_path / "missing"), str(tmp_path / "out"))
    with pytest.raises(CommunicatorError):
        fcomm.upload("/x", str(tmp_path / "no-such-local"))


def test_upload_dir_follows_rsync_trailing_slash_rules(
    fcomm: SSHCommunicator, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    _make_tree(src)
    with_dir = tmp_path / "with_dir"
    contents = tmp_path / "contents"
    fcomm.upload_dir(str(with_dir), str(src))  # "src" -> with_dir/src/...
    fcomm.upload_dir(str(contents), str(src) + "/")  # "src/" -> contents/...
    assert _tree(with_dir / "src") == _tree(src)
    assert _tree(contents) == _tree(src)
    assert not (contents / "src").exists()
    fcomm.upload_dir(str(tmp_path / "excl"), str(src) + "/", exclude=["*.sh"])
    assert not (tmp_path / "excl" / "run.sh").exists()
    assert (tmp_path / "excl" / "a.txt").exists()


def test_download_dir_and_glob(fcomm: SSHCommunicator, tmp_path: Path) -> None:
    remote = tmp_path / "remote"
    _make_tree(remote)
    d1, d2, d3 = tmp_path / "d1", tmp_path / "d2", tmp_path / "d3"
    fcomm.download_dir(str(remote), str(d1))
    assert _tree(d1 / "remote") == _tree(remote)
    fcomm.download_dir(str(remote) + "/", str(d2))
    assert _tree(d2) == _tree(remote)
    fcomm.download_dir(str(remote) + "/*.txt", str(d3))
    assert sorted(p.name for p in d3.iterdir()) == ["a.txt"]


def test_large_upload(fcomm: SSHCommunicator, tmp_path: Path) -> None:
    src = tmp_path / "big"
    with open(src, "wb") as f:
        f.write(os.urandom(1 << 20) * 20)
    t0 = time.monotonic()
    fcomm.upload(str(tmp_path / "big.copy"), str(src))
    took = time.monotonic() - t0
    assert (tmp_path / "big.copy").stat().st_size == 20 << 20
    assert subprocess.run(["cmp", str(src), str(tmp_path / "big.copy")]).returncode == 0
    assert took < 20


def test_agent_auth(sshd: Sshd, tmp_path: Path, monkeypatch) -> None:
    sock = tmp_path / "agent.sock"
    agent = subprocess.Popen(
        ["ssh-agent", "-D", "-a", str(sock)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        env = {**os.environ, "SSH_AUTH_SOCK": str(sock)}
        # the socket file appears when the agent binds it, a moment before it listens
        deadline = time.monotonic() + 20
        while True:
            added = subprocess.run(["ssh-add", sshd.private_key_path], env=env,
                                   capture_output=True, text=True)
            if added.returncode == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert added.returncode == 0, added.stderr
        monkeypatch.setenv("SSH_AUTH_SOCK", str(sock))
        c = connect(sshd, ssh_agent_auth=True, ssh_private_key_file="")
        try:
            assert run(c, "echo via-agent")[1].lines["stdout"] == ["via-agent"]
            assert c.connection_data()["SSHAgentAuth"] is True
            # the agent is forwarded (Packer's default): the machine can use our key
            fingerprint = subprocess.run(["ssh-keygen", "-lf", sshd.private_key_path],
                                         capture_output=True, text=True).stdout.split()[1]
            status, out = run(c, "ssh-add -l")
            assert status == 0 and fingerprint in out.lines["stdout"][0], out.lines
        finally:
            c.close()
        c = connect(sshd, ssh_disable_agent_forwarding=True)
        try:
            status, out = run(c, "ssh-add -l")
            assert status == 2, out.lines  # no agent to talk to
        finally:
            c.close()
        monkeypatch.setenv("SSH_AUTH_SOCK", str(tmp_path / "no-agent"))
        with pytest.raises(StepError, match="agent"):
            connect(sshd, ssh_agent_auth=True, ssh_private_key_file="", ssh_handshake_attempts=1)
    finally:
        agent.terminate()
        agent.wait(5)


def _socks5_server(user: str, password: str):
    """A minimal SOCKS5 proxy (RFC 1928/1929, CONNECT only) on 127.0.0.1; (port, seen, stop)."""
    lst = socket.socket()
    lst.bind(("127.0.0.1", 0))
    lst.listen(8)
    lst.settimeout(0.2)
    stop = threading.Event()
    seen: list[tuple[str, int]] = []

    def exact(s: socket.socket, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = s.recv(n - len(data))
            if not chunk:
                raise OSError("closed")
            data += chunk
        return data

    def handle(c: socket.socket) -> None:
        try:
            _ver, n = exact(c, 2)
            methods = exact(c, n)
            if 2 not in methods:
                c.sendall(b"\x05\xff")
                return
            c.sendall(b"\x05\x02")
            exact(c, 1)
            u = exact(c, exact(c, 1)[0]).decode()
            p = exact(c, exact(c, 1)[0]).decode()
            if (u, p) != (user, password):
                c.sendall(b"\x01\x01")
                return
            c.sendall(b"\x01\x00")
            _v, _cmd, _r, atyp = exact(c, 4)
            host = exact(c, exact(c, 1)[0]).decode() if atyp == 3 else socket.inet_ntoa(exact(c, 4))
            port = int.from_bytes(exact(c, 2), "big")
            seen.append((host, port))
            if host != "127.0.0.1":  # tests only ever connect to loopback
                c.sendall(b"\x05\x02\x00\x01" + bytes(6))
                return
            up = socket.create_connection((host, port))
            c.sendall(b"\x05\x00\x00\x01" + bytes(6))
            for a, b in ((c, up), (up, c)):
                threading.Thread(target=splice, args=(a, b), daemon=True).start()
        except OSError:
            c.close()

    def serve() -> None:
        while not stop.is_set():
            try:
                c, _ = lst.accept()
            except OSError:
                continue
            c.settimeout(None)
            threading.Thread(target=handle, args=(c,), daemon=True).start()
        lst.close()

    threading.Thread(target=serve, daemon=True).start()
    return lst.getsockname()[1], seen, stop


def test_socks_proxy(sshd: Sshd) -> None:
    port, seen, stop = _socks5_server("proxyuser", "proxy-pass-1")
    ctx = make_ctx()
    try:
        c = connect(
            sshd,
            ctx,
            ssh_proxy_host="127.0.0.1",
            ssh_proxy_port=port,
            ssh_proxy_username="proxyuser",
            ssh_proxy_password="proxy-pass-1",
        )
        try:
            assert run(c, "echo via-socks")[1].lines["stdout"] == ["via-socks"]
        finally:
            c.close()
        assert seen == [(sshd.host, sshd.port)]
        assert "proxy-pass-1" in ctx.secrets
        with pytest.raises(StepError, match="SOCKS proxy .* rejected"):
            connect(
                sshd,
                ssh_proxy_host="127.0.0.1",
                ssh_proxy_port=port,
                ssh_proxy_username="proxyuser",
                ssh_proxy_password="wrong",
                ssh_timeout=Duration(2),
            )
    finally:
        stop.set()


def test_local_and_remote_tunnels(sshd: Sshd) -> None:
    # a local echo server for the remote tunnel to reach
    echo = socket.socket()
    echo.bind(("127.0.0.1", 0))
    echo.listen(4)

    def serve_echo() -> None:
        conn, _ = echo.accept()
        with conn:
            while data := conn.recv(1024):
                conn.sendall(data)

    threading.Thread(target=serve_echo, daemon=True).start()
    lport, rport = free_port(), free_port()
    c = connect(
        sshd,
        ssh_local_tunnels=[f"{lport}:127.0.0.1:{sshd.port}"],
        ssh_remote_tunnels=[f"{rport}:127.0.0.1:{echo.getsockname()[1]}"],
    )
    try:
        # -L: our port reaches the machine's sshd (through the machine)
        with socket.create_connection(("127.0.0.1", lport), timeout=10) as s:
            assert s.recv(4) == b"SSH-"
        # -R: the machine's port reaches our echo server (through us)
        with socket.create_connection(("127.0.0.1", rport), timeout=10) as s:
            s.sendall(b"ping through the tunnel")
            got = b""
            while len(got) < 23:
                got += s.recv(64)
            assert got == b"ping through the tunnel"
    finally:
        c.close()
        echo.close()
    with pytest.raises(StepError, match="ssh_local_tunnels item 'nonsense'"):
        connect(sshd, ssh_local_tunnels=["nonsense"])


def test_ciphers_and_key_exchange(sshd: Sshd) -> None:
    c = connect(
        sshd,
        ssh_ciphers=["aes256-ctr"],
        ssh_key_exchange_algorithms=["no-such-kex", "curve25519-sha256@libssh.org"],
    )
    try:
        assert c._transport.local_cipher == "aes256-ctr"
        assert run(c, "true")[0] == 0
    finally:
        c.close()
    with pytest.raises(StepError, match="none of ssh_ciphers is supported"):
        connect(sshd, ssh_ciphers=["chacha20-poly1305@openssh.com"])
