"""The chroot communicator on a real tree: a loop-mounted ext4 filesystem holding the
busybox root of ``kiln/busybox`` (as root, like the amazon-chroot builder itself)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "support"))

from chroot_tree import LoopTree, can_loop_mount  # noqa: E402
from kiln.backend.plugins.amazon.chroot.communicator import ChrootCommunicator  # noqa: E402
from kiln.backend.sdk.cancel import CancelToken  # noqa: E402
from kiln.backend.sdk.communicator import CommunicatorError  # noqa: E402

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def tree(tmp_path: Path, docker_client: Any, base_image: str, docker_labels: dict[str, str]):
    reason = can_loop_mount()
    if reason:
        pytest.skip(reason) if os.environ.get("CI") != "true" else pytest.fail(reason)
    root = tmp_path / "root"
    root.mkdir()
    with LoopTree(labels=docker_labels) as loop:
        subprocess.run(["mount", loop.device, str(root)], check=True)
        try:
            yield loop, root
        finally:
            subprocess.run(["umount", str(root)], capture_output=True)


def run(comm: ChrootCommunicator, command: str) -> tuple[int, list[str]]:
    lines: list[str] = []
    code = comm.run(command, lambda stream, ls, **_: lines.extend(ls), CancelToken())
    return code, lines


def test_commands_run_inside_the_tree_through_the_wrapper(tree: Any) -> None:
    loop, root = tree
    seen: list[str] = []

    def wrap(command: str) -> str:
        seen.append(command)
        return f"KILN_WRAPPED=yes {command}"

    comm = ChrootCommunicator(str(root), wrap)
    code, lines = run(comm, "echo $KILN_WRAPPED; ls /bin/busybox; echo hi > /made-inside")
    assert code == 0, lines
    assert lines == ["yes", "/bin/busybox"]
    assert seen and seen[0].startswith(f"chroot {root} /bin/sh -c ")
    assert (root / "made-inside").read_text() == "hi\n"
    assert not Path("/made-inside").exists()
    assert run(comm, "exit 7")[0] == 7


def test_upload_and_download_round_trip(tree: Any, tmp_path: Path) -> None:
    _loop, root = tree
    comm = ChrootCommunicator(str(root))
    src = tmp_path / "script.sh"
    src.write_text("#!/bin/sh\necho from-script\n")
    src.chmod(0o750)
    comm.upload("/opt/app/script.sh", str(src))
    assert (root / "opt/app/script.sh").read_text() == src.read_text()
    assert oct((root / "opt/app/script.sh").stat().st_mode & 0o777) == "0o750"
    assert run(comm, "/opt/app/script.sh")[1] == ["from-script"]
    comm.upload("/etc/motd", b"hello\n", mode=0o600)
    out = tmp_path / "motd"
    comm.download("/etc/motd", str(out))
    assert out.read_text() == "hello\n"
    d = tmp_path / "dir"
    (d / "sub").mkdir(parents=True)
    (d / "sub" / "f").write_text("f")
    (d / "link").symlink_to("sub/f")
    comm.upload_dir("/srv", str(d) + "/")
    assert (root / "srv/sub/f").read_text() == "f"
    assert os.readlink(root / "srv/link") == "sub/f"
    back = tmp_path / "back"
    comm.download_dir("/srv/", str(back))
    assert (back / "sub/f").read_text() == "f"
    assert os.readlink(back / "link") == "sub/f"


def test_symlinks_in_a_hostile_image_never_lead_out_of_the_tree(tree: Any,
                                                              tmp_path: Path) -> None:
    _loop, root = tree
    host = tmp_path / "host-etc"  # stands for the host's /etc
    host.mkdir()
    (host / "passwd").write_text("host secret\n")
    (root / "etc").rename(root / "etc.orig")
    (root / "etc").symlink_to(str(host))  # /etc -> /tmp/.../host-etc (absolute)
    (root / "up").symlink_to("../../../../../../../../" + str(host).lstrip("/"))
    (root / "var/log").mkdir(parents=True, exist_ok=True)
    (root / "var/log/passwd").symlink_to(str(host / "passwd"))
    comm = ChrootCommunicator(str(root))

    comm.upload("/etc/shadow", b"written\n")
    comm.upload("/up/planted", b"written\n")
    comm.upload("/var/log/passwd", b"overwritten\n")
    assert sorted(os.listdir(host)) == ["passwd"]
    assert (host / "passwd").read_text() == "host secret\n"
    # each landed where the link points when resolved inside the tree
    inside = root / str(host).lstrip("/")
    assert (inside / "shadow").read_text() == "written\n"
    assert (inside / "planted").read_text() == "written\n"
    assert (inside / "passwd").read_text() == "overwritten\n"

    (inside / "passwd").unlink()
    with pytest.raises(CommunicatorError):
        comm.download("/etc/passwd", str(tmp_path / "stolen"))  # not in the tree: no such file
    assert not (tmp_path / "stolen").exists() or \
        (tmp_path / "stolen").read_text() != "host secret\n"
    (root / "loop").symlink_to("loop")
    with pytest.raises(CommunicatorError):
        comm.upload("/loop/x", b"x")
