"""`kiln build` with the null builder over SSH: shell, file, ansible and breakpoint
provisioners against a real sshd, and the same build through Packer 1.6.6."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import pytest
from kiln_services import Sshd

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "support"))

import packer_diff  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
KILN = [sys.executable, "-m", "kiln.backend.cli", "build"]
EXAMPLE = REPO / "templates" / "ansible-ssh.json"
TARGET_PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable

pytestmark = pytest.mark.ssh


def kiln(args: list[str], cwd: Path, timeout: float = 180, **kw) -> subprocess.CompletedProcess:
    env = packer_diff.kiln_env(dict(os.environ))
    return subprocess.run(
        [*KILN, "-color=false", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        **kw,
    )


def write(path: Path, doc: dict) -> Path:
    path.write_text(json.dumps(doc, indent=2))
    return path


def null_ssh(sshd: Sshd, **extra) -> dict:
    b = {
        "type": "null",
        "ssh_host": sshd.host,
        "ssh_port": sshd.port,
        "ssh_username": sshd.user,
        "ssh_private_key_file": sshd.private_key_path,
        "ssh_timeout": "30s",
    }
    b.update(extra)
    return b


@pytest.mark.ansible
def test_example_template_shell_file_ansible(sshd: Sshd, tmp_path: Path) -> None:
    target = tmp_path / "target"
    r = kiln(
        [
            "-var",
            f"port={sshd.port}",
            "-var",
            f"key={sshd.private_key_path}",
            "-var",
            f"python={TARGET_PYTHON}",
            "-var",
            f"target_dir={target}",
            f"-state-dir={tmp_path / 'state'}",  # not templates/.kiln in the repository
            str(EXAMPLE),
        ],
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert (target / "greeting.txt").read_text() == "hello from Kiln\nand hello from Ansible\n"
    assert (target / "motd.txt").read_text() == (REPO / "templates/files/motd.txt").read_text()
    assert (target / "built-by.txt").read_text() == "built by null (null)\n"
    out = r.stdout
    assert f"==> null: Using SSH communicator to connect: {sshd.host}" in out
    assert f"    null: connected to {sshd.host}:{sshd.port} as root" in out
    assert "==> null: Executing Ansible: ansible-playbook" in out
    assert "PLAY RECAP" in out
    assert "Did not export anything. This is the null builder" in out


def test_password_never_reaches_output_events_or_logs(sshd: Sshd, tmp_path: Path) -> None:
    # the "remote" machine is this host: its /tmp may hold a root-owned /tmp/script_N.sh
    # that a failed run left (Packer leaves a failed script too), which this user cannot
    # replace; a folder of the user's own keeps the random name from colliding with it
    folder = Path(tempfile.mkdtemp(prefix="kiln-test-remote-"))  # pytest's tmp is root-only
    shutil.chown(folder, user=sshd.password_user)
    t = write(
        tmp_path / "pw.json",
        {
            "builders": [
                null_ssh(
                    sshd,
                    ssh_username=sshd.password_user,
                    ssh_password=sshd.password,
                    ssh_private_key_file="",
                )
            ],
            "provisioners": [
                {"type": "shell", "inline": ['echo "password is {{ build `Password` }}"', "whoami"],
                 "remote_folder": str(folder)}
            ],
        },
    )
    state = tmp_path / "state"
    events = tmp_path / "events.jsonl"
    r = kiln([f"-state-dir={state}", f"-events={events}", str(t)], cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"    null: {sshd.password_user}" in r.stdout
    assert "password is <sensitive>" in r.stdout or "password is *" in r.stdout
    everything = r.stdout + r.stderr + events.read_text()
    for p in state.rglob("*"):
        if p.is_file():
            everything += p.read_bytes().decode("utf-8", "replace")
    assert sshd.password not in everything
    shutil.rmtree(folder)


def test_failing_script_over_ssh(sshd: Sshd, tmp_path: Path) -> None:
    t = write(
        tmp_path / "fail.json",
        {
            "builders": [null_ssh(sshd)],
            "provisioners": [
                {"type": "shell", "inline": ["echo before", "exit 3"]},
                {"type": "shell", "inline": ["echo never"]},
            ],
        },
    )
    r = kiln([str(t)], cwd=tmp_path)
    assert r.returncode == 1
    assert "    null: before" in r.stdout
    assert "    null: never" not in r.stdout
    assert "Script exited with non-zero exit status: 3" in r.stdout + r.stderr


def test_breakpoint_pauses_until_enter(sshd: Sshd, tmp_path: Path) -> None:
    t = write(
        tmp_path / "bp.json",
        {
            "builders": [null_ssh(sshd)],
            "provisioners": [
                {"type": "breakpoint", "note": "skipped one", "disable": True},
                {"type": "breakpoint", "note": "look around"},
                {"type": "shell", "inline": ["echo after-the-break"]},
            ],
        },
    )
    env = packer_diff.kiln_env(dict(os.environ))
    proc = subprocess.Popen(
        [*KILN, "-color=false", str(t)],
        cwd=tmp_path,
        env=env,
        text=True,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    seen: list[str] = []
    paused = threading.Event()

    def read() -> None:
        for line in proc.stdout:
            seen.append(line)
            if "Press enter to continue" in line or "Pausing at breakpoint" in line:
                paused.set()

    th = threading.Thread(target=read, daemon=True)
    th.start()
    try:
        assert paused.wait(60), "".join(seen)
        time.sleep(1.0)
        assert not any("after-the-break" in x for x in seen)  # still waiting
        proc.stdin.write("\n")
        proc.stdin.flush()
        assert proc.wait(60) == 0, "".join(seen) + proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
    th.join(5)
    out = "".join(seen)
    assert 'Breakpoint provisioner with note "skipped one" disabled; continuing...' in out
    assert 'Pausing at breakpoint provisioner with note "look around".' in out
    assert "    null: after-the-break" in out


def test_sigint_stops_the_remote_command(sshd: Sshd, tmp_path: Path) -> None:
    marker = f"kiln-ssh-sleep-{uuid.uuid4().hex[:8]}"
    t = write(
        tmp_path / "slow.json",
        {
            "builders": [null_ssh(sshd)],
            "provisioners": [
                {
                    "type": "shell",
                    "inline": [
                        f"cp /bin/sleep /tmp/{marker}",
                        "echo started",
                        f"/tmp/{marker} 100",
                        "echo done",
                    ],
                }
            ],
        },
    )
    env = packer_diff.kiln_env(dict(os.environ))
    proc = subprocess.Popen(
        [*KILN, "-color=false", str(t)],
        cwd=tmp_path,
        env=env,
        text=True,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    lines: list[str] = []
    started = threading.Event()

    def read() -> None:
        for line in proc.stdout:
            lines.append(line)
            if "started" in line:
                started.set()

    threading.Thread(target=read, daemon=True).start()
    try:
        assert started.wait(60), "".join(lines)
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(20) == 1
    finally:
        if proc.poll() is None:
            proc.kill()
    deadline = time.time() + 5
    while time.time() < deadline:
        ps = subprocess.run(["pgrep", "-f", f"/tmp/{marker}"], capture_output=True, text=True)
        if not ps.stdout.strip():
            break
        time.sleep(0.1)
    assert not ps.stdout.strip(), "the remote command survived the cancel"
    os.remove(f"/tmp/{marker}")
    assert "done" not in "".join(lines).split("started", 1)[1]


# --------------------------------------------------------------------------- vs Packer 1.6.6


def diff_source(root: Path, fail: bool = False) -> Path:
    """A template and its files; everything the build writes lands in its own directory."""
    (root / "files" / "dir" / "sub").mkdir(parents=True)
    (root / "files" / "app.conf").write_text("listen 8080\n")
    (root / "files" / "run.sh").write_text("#!/bin/sh\necho run\n")
    (root / "files" / "run.sh").chmod(0o750)
    (root / "files" / "dir" / "a.txt").write_text("a\n")
    (root / "files" / "dir" / "sub" / "b.txt").write_text("b\n")
    (root / "files" / "dir" / "sub" / "b.txt").chmod(0o600)
    (root / "script.sh").write_text(
        '#!/bin/sh\necho "script sees $PACKER_BUILDER_TYPE"\n'
        "echo 'from the script to stderr' >&2\nexit 0\n"
    )
    out = "{{template_dir}}/out"
    provisioners = [
        {
            "type": "shell",
            "inline": [
                # Packer 1.6.6's scp cannot copy a directory's contents into a missing
                # directory (Kiln creates it): make it first
                f"mkdir -p {out}/contents",
                "echo hello from $PACKER_BUILD_NAME",
                f"printf 'one\\ntwo\\n' > {out}/lines.txt",
                "echo done",
            ],
        },
        {
            "type": "shell",
            "environment_vars": ["FOO=bar baz", "QUOTE=it's"],
            "inline": ['echo "FOO=$FOO QUOTE=$QUOTE"'],
        },
        {"type": "shell", "script": "script.sh"},
        {"type": "file", "source": "files/app.conf", "destination": f"{out}/app.conf"},
        {"type": "file", "source": "files/run.sh", "destination": f"{out}/"},
        {"type": "file", "source": "files/dir", "destination": f"{out}/"},
        {"type": "file", "source": "files/dir/", "destination": f"{out}/contents"},
        {
            "type": "file",
            "direction": "download",
            "source": f"{out}/lines.txt",
            "destination": "downloaded.txt",
        },
        {
            "type": "shell",
            "inline": [f"cat {out}/app.conf {out}/dir/a.txt {out}/contents/sub/b.txt"],
        },
    ]
    if fail:
        provisioners.insert(2, {"type": "shell", "inline": ["echo failing now", "exit 7"]})
    write(
        root / "t.json",
        {
            "variables": {"port": "", "key": ""},
            "builders": [
                {
                    "type": "null",
                    "ssh_host": "127.0.0.1",
                    "ssh_port": "{{user `port`}}",
                    "ssh_username": "root",
                    "ssh_private_key_file": "{{user `key`}}",
                    "ssh_timeout": "30s",
                }
            ],
            "provisioners": provisioners,
        },
    )
    return root


@pytest.mark.packer
@pytest.mark.parametrize("fail", [False, True], ids=["ok", "failing"])
def test_same_as_packer(
    sshd: Sshd, packer: str, packer_environ: dict, tmp_path: Path, fail: bool
) -> None:
    src = diff_source(tmp_path / "src", fail=fail)
    args = ["-var", f"port={sshd.port}", "-var", f"key={sshd.private_key_path}"]
    ref = packer_diff.run_build(
        "packer",
        packer_diff.packer_command(packer),
        src,
        "t.json",
        args,
        env=packer_environ,
        parent=tmp_path,
    )
    ours = packer_diff.run_build(
        "kiln",
        packer_diff.kiln_command(),
        src,
        "t.json",
        args,
        env=packer_diff.kiln_env(packer_environ),
        parent=tmp_path,
    )
    diffs = packer_diff.compare(ref, ours)
    assert not diffs, "\n".join(diffs) + "\n\n" + ref.describe() + "\n\n" + ours.describe()
    assert ref.exit_code == (1 if fail else 0)
    written = ours.changed_files()
    if not fail:
        assert written["out/app.conf"] == (0o644, b"listen 8080\n")
        assert written["out/run.sh"][0] == 0o750
        assert written["out/dir/sub/b.txt"] == (0o600, b"b\n")
        assert written["out/contents/a.txt"][1] == b"a\n"
        assert written["downloaded.txt"][1] == b"one\ntwo\n"


@pytest.mark.parametrize("expect", [True, False], ids=["expected", "unexpected"])
def test_dropped_connection_and_expect_disconnect(sshd: Sshd, tmp_path: Path, expect: bool) -> None:
    """A script that kills its own SSH connection (as a reboot does): with expect_disconnect
    the build goes on and the next provisioner reconnects by itself."""
    t = write(
        tmp_path / "drop.json",
        {
            "builders": [null_ssh(sshd)],
            "provisioners": [
                # root's command runs under the connection's own sshd process: kill it
                {
                    "type": "shell",
                    "inline": ["echo dropping", "sleep 1", "kill -9 $PPID", "sleep 5"],
                    "expect_disconnect": expect,
                },
                {"type": "shell", "inline": ["echo reconnected"]},
            ],
        },
    )
    r = kiln([str(t)], cwd=tmp_path)
    out = r.stdout + r.stderr
    assert "    null: dropping" in out, out
    if expect:
        assert r.returncode == 0, out
        assert "    null: reconnected" in out
    else:
        assert r.returncode == 1, out
        assert "disconnected unexpectedly" in out
        assert "    null: reconnected" not in out


def test_breakpoint_without_an_interactive_session() -> None:
    from kiln.backend.engine.context import BuildContext
    from kiln.backend.engine.events import EventBus
    from kiln.backend.plugins.provisioners.breakpoint import BreakpointConfig, BreakpointProvisioner
    from kiln.backend.sdk.cancel import CancelToken
    from kiln.backend.sdk.plugin import StepError

    def ctx_with(ask):
        return BuildContext(
            bus=EventBus(),
            build_name="b",
            build_type="null",
            cancel=CancelToken(),
            ledger=None,
            options=None,
            template_path="",
            user_vars={},
            mask=lambda s: s,
            run_id="t",
            ask=ask,
        )

    ctx = ctx_with(None)
    with pytest.raises(StepError, match="breakpoint needs an interactive session"):
        BreakpointProvisioner(BreakpointConfig(note="n")).provision(ctx, ctx.ui, None, {})
    asked = []
    ctx = ctx_with(lambda prompt, error, choices: asked.append((prompt, choices)) or "continue")
    BreakpointProvisioner(BreakpointConfig()).provision(ctx, ctx.ui, None, {})
    assert asked == [("Press enter to continue.", ["continue"])]
    said = [x for ev in ctx.bus.replay() if ev.type == "output" for x in ev.data["lines"]]
    assert said == ["Pausing at breakpoint provisioner."]
