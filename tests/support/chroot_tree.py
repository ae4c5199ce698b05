"""A real ext4 filesystem on a loop device holding the busybox root tree of the
``kiln/busybox`` image: the stand-in for the EBS volume the amazon-chroot builder
attaches (tests and bench/bench_chroot.py).

Needs root (losetup, mount) and the Docker engine (the tree is ``docker export``-ed from
the image once per process). Everything made here is removed by path/device in
``close()``; callers use it as a context manager so a failing test cleans up too.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

BASE_IMAGE = "kiln/busybox:latest"
_tar_lock = threading.Lock()
_tar_path: str | None = None


def can_loop_mount() -> str | None:
    """Why loop devices cannot be used here (None when they can)."""
    if os.geteuid() != 0:
        return "needs root (losetup and mount)"
    for tool in ("losetup", "mkfs.ext4", "mount", "umount", "chroot"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    return None


def busybox_tarball(labels: dict[str, str] | None = None) -> str:
    """The root tree of kiln/busybox as a tar file (exported once per process)."""
    global _tar_path
    with _tar_lock:
        if _tar_path and os.path.exists(_tar_path):
            return _tar_path
        work = tempfile.mkdtemp(prefix="kiln-busybox-tree-")
        out = os.path.join(work, "rootfs.tar")
        argv = ["docker", "create"]
        for k, v in (labels or {}).items():
            argv += ["--label", f"{k}={v}"]
        cid = subprocess.run(argv + [BASE_IMAGE, "/bin/true"], check=True, capture_output=True,
                             text=True).stdout.strip()
        try:
            with open(out, "wb") as f:
                subprocess.run(["docker", "export", cid], check=True, stdout=f)
        finally:
            subprocess.run(["docker", "rm", "-f", cid], capture_output=True)
        _tar_path = out
        return out


class LoopTree:
    """An ext4 image file on a loop device with the busybox tree in it."""

    def __init__(self, size_mb: int = 48, labels: dict[str, str] | None = None,
                 partitioned: bool = False):
        self.size_mb = size_mb
        self.labels = labels
        self.work = Path(tempfile.mkdtemp(prefix="kiln-loop-"))
        self.image = self.work / "volume.img"
        self.device = ""
        self.left_attached: list[str] = []
        self._mnt = self.work / "fill"

    def __enter__(self) -> LoopTree:
        try:
            self.create()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def create(self) -> None:
        tar = busybox_tarball(self.labels)
        with open(self.image, "wb") as f:
            f.truncate(self.size_mb * 1024 * 1024)
        subprocess.run(["mkfs.ext4", "-q", "-F", str(self.image)], check=True,
                       capture_output=True)
        self.device = subprocess.run(["losetup", "-f", "--show", str(self.image)], check=True,
                                     capture_output=True, text=True).stdout.strip()
        self._mnt.mkdir()
        subprocess.run(["mount", self.device, str(self._mnt)], check=True, capture_output=True)
        try:
            subprocess.run(["tar", "-C", str(self._mnt), "-xf", tar], check=True,
                           capture_output=True)
        finally:
            subprocess.run(["umount", str(self._mnt)], check=True, capture_output=True)

    def read(self, path: str) -> bytes | None:
        """A file of the filesystem as it is on the device now (mounted read-only)."""
        subprocess.run(["mount", "-o", "ro", self.device, str(self._mnt)], check=True,
                       capture_output=True)
        try:
            p = self._mnt / path.lstrip("/")
            return p.read_bytes() if p.is_file() and not p.is_symlink() else None
        finally:
            subprocess.run(["umount", str(self._mnt)], check=True, capture_output=True)

    def listdir(self, path: str) -> list[str] | None:
        """Names in a directory of the filesystem (None when it is not one)."""
        out: list[str] = []

        def look(root: Path) -> None:
            p = root / path.lstrip("/")
            if p.is_dir() and not p.is_symlink():
                out.extend(sorted(os.listdir(p)))
            else:
                out.append("\0")

        self.modify(look)
        return None if out == ["\0"] else out

    def modify(self, fn: Any) -> None:
        """Change the tree before a build (``fn(mounted_root: Path)``)."""
        subprocess.run(["mount", self.device, str(self._mnt)], check=True, capture_output=True)
        try:
            fn(self._mnt)
        finally:
            subprocess.run(["umount", str(self._mnt)], check=True, capture_output=True)

    def mounted_anywhere(self) -> list[str]:
        """Mount points whose source is this loop device."""
        out = []
        with open("/proc/self/mountinfo") as f:
            for line in f:
                fields = line.split()
                sep = fields.index("-")
                if fields[sep + 2] == self.device:
                    out.append(fields[4])
        return out

    def close(self) -> None:
        if self.device:
            for point in reversed(self.mounted_anywhere()):
                subprocess.run(["umount", "-l", point], capture_output=True)
            subprocess.run(["losetup", "-d", self.device], capture_output=True)
            self.device = ""
            #: loop devices still on the image after close (a test asserts there are none)
            self.left_attached = loop_devices_of(self.image)
        shutil.rmtree(self.work, ignore_errors=True)


def loop_devices_of(image: Path) -> list[str]:
    """Loop devices still backed by ``image``."""
    r = subprocess.run(["losetup", "-j", str(image)], capture_output=True, text=True)
    return [line.split(":", 1)[0] for line in r.stdout.splitlines() if line.strip()]


class DeviceKernel:
    """Makes ``device`` (and its partition 1) appear while moto has the volume attached
    there, pointing at the loop device, and disappear when it is detached."""

    def __init__(self, ec2: Any, instance_id: str, device: Path, loop_device: str):
        self.ec2 = ec2
        self.instance_id = instance_id
        self.device = device
        self.loop_device = loop_device
        self.attached_volumes: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self) -> DeviceKernel:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join(5)
        self._remove()

    def _remove(self) -> None:
        for p in (self.device, Path(str(self.device) + "1")):
            if p.is_symlink():
                p.unlink()

    def _watch(self) -> None:
        while not self._stop.is_set():
            try:
                vols = self.ec2.describe_volumes()["Volumes"]
            except Exception:  # noqa: BLE001 - moto busy; look again
                time.sleep(0.05)
                continue
            here = [v for v in vols for a in v.get("Attachments") or []
                    if a.get("InstanceId") == self.instance_id
                    and a.get("Device") == str(self.device) and a.get("State") == "attached"]
            if here and not self.device.is_symlink():
                self.attached_volumes.add(here[0]["VolumeId"])
                os.symlink(self.loop_device, self.device)
                os.symlink(self.loop_device, str(self.device) + "1")
            elif not here and self.device.is_symlink():
                self._remove()
            time.sleep(0.05)
