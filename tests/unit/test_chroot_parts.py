"""The amazon-chroot builder's pure parts: paths inside a tree, partition names, the new
AMI's block devices, Packer's defaults."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from kiln.backend.plugins.amazon.chroot.config import AmazonChrootConfig
from kiln.backend.plugins.amazon.chroot.image import block_device_mappings
from kiln.backend.plugins.amazon.chroot.mounts import (
    OutsideRoot,
    _unescape,
    makedirs_in_root,
    resolve_in_root,
)
from kiln.backend.plugins.amazon.chroot.steps import partition_path
from kiln.backend.plugins.amazon.config import BlockDevice


def test_paths_resolve_inside_the_tree(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "real").mkdir(parents=True)
    (root / "abs").symlink_to("/real")
    (root / "rel").symlink_to("../../../../real")
    (root / "host").symlink_to(str(tmp_path))  # a host path: taken as a path in the tree
    r = str(root.resolve())
    assert resolve_in_root(r, "/abs/x") == f"{r}/real/x"
    assert resolve_in_root(r, "/rel/x") == f"{r}/real/x"
    assert resolve_in_root(r, "/../../etc/passwd") == f"{r}/etc/passwd"
    assert resolve_in_root(r, "/host/y") == f"{r}{tmp_path}/y"
    assert resolve_in_root(r, "/abs", follow_last=False) == f"{r}/abs"
    (root / "loop").symlink_to("loop")
    with pytest.raises(OutsideRoot):
        resolve_in_root(r, "/loop/x")
    made = makedirs_in_root(r, "/host/a/b")
    assert made == f"{r}{tmp_path}/a/b" and os.path.isdir(made)
    assert not (tmp_path / "a").exists()


def test_partition_names() -> None:
    assert partition_path("/dev/xvdf", "1") == "/dev/xvdf1"
    assert partition_path("/dev/nvme1n1", "2") == "/dev/nvme1n1p2"
    assert partition_path("/dev/xvdf", "0") == "/dev/xvdf"


def test_mountinfo_escapes() -> None:
    assert _unescape(r"/mnt/with\040space") == "/mnt/with space"
    assert _unescape(r"/a\134b") == "/a\\b"


def test_block_devices_swap_in_the_new_snapshot() -> None:
    c = AmazonChrootConfig(ami_name="x", source_ami="ami-1", root_volume_size=30)
    image = {"RootDeviceName": "/dev/sda1", "BlockDeviceMappings": [
        {"DeviceName": "/dev/sda1", "Ebs": {"SnapshotId": "snap-old", "VolumeSize": 8,
                                            "Encrypted": True}},
        {"DeviceName": "/dev/sdb", "VirtualName": "ephemeral0"}]}
    root, maps = block_device_mappings(c, image, "snap-new")
    assert root == "/dev/sda1"
    assert maps[0] == {"DeviceName": "/dev/sda1", "Ebs": {"SnapshotId": "snap-new",
                                                          "VolumeSize": 30}}
    assert maps[1] == {"DeviceName": "/dev/sdb", "VirtualName": "ephemeral0"}
    c.root_volume_size = 4  # never shrinks the source's size
    assert block_device_mappings(c, image, "s")[1][0]["Ebs"]["VolumeSize"] == 8
    c = AmazonChrootConfig(ami_name="x", from_scratch=True, root_volume_size=5,
                           root_device_name="/dev/xvda", ami_block_device_mappings=[
                               BlockDevice(device_name="/dev/xvda", volume_type="gp3")])
    root, maps = block_device_mappings(c, {}, "snap-1")
    assert root == "/dev/xvda"
    assert maps[0]["Ebs"]["SnapshotId"] == "snap-1" and maps[0]["Ebs"]["VolumeSize"] == 5


def test_packers_defaults() -> None:
    c = AmazonChrootConfig(ami_name="x", source_ami="ami-1")
    assert c.mounts()[0] == ("proc", "proc", "/proc") and len(c.mounts()) == 5
    assert c.files_to_copy() == ["/etc/resolv.conf"]
    assert c.wrapper() == "{{.Command}}" and c.partition() == "1"
    assert c.architecture() == "x86_64"
    assert AmazonChrootConfig(ami_name="x", from_scratch=True).files_to_copy() == []
    assert AmazonChrootConfig(ami_name="x", copy_files=[]).files_to_copy() == []
