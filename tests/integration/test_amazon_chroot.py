"""The amazon-chroot builder, as root, against moto over HTTP, a loopback instance metadata
service, and a loop device holding a real ext4 filesystem with the busybox root tree.

What stands in for what (nothing here can reach EC2):
- moto is the EC2 API; a moto instance is "this machine" and the IMDS server says so;
- the loop device is the EBS volume. ``DeviceKernel`` plays the kernel's part: once moto
  says the build's volume is attached at ``device_path`` (a path in the test's temp dir),
  that path appears, as a symlink to the loop device; once detached, it goes away.
The provisioners really run in a chroot of the mounted tree, and what they write is read
back from the loop image after the build, the volume's stand-in for its snapshot.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "support"))

from chroot_tree import DeviceKernel, LoopTree, can_loop_mount  # noqa: E402
from fault_proxy import FaultProxy  # noqa: E402
from imds_server import ImdsServer  # noqa: E402

# a region of its own: the moto server is shared with the amazon-ebs tests, which count every
# instance in us-east-1/us-west-2, and "this machine" is an instance that runs throughout
REGION = "eu-central-1"
ZONE = "eu-central-1a"
pytestmark = pytest.mark.timeout(180)


def _with_repo(env: dict[str, str]) -> dict[str, str]:
    env = dict(env)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    return env


def kiln(args: list[str], env: dict[str, str], cwd: Path, timeout: float = 120
         ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kiln.backend.cli", *args], cwd=cwd,
                          env=_with_repo(env), capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def ledger_rows(state_dir: Path) -> list[tuple[str, str]]:
    db = state_dir / "ledger.db"
    if not db.exists():
        return []
    con = sqlite3.connect(db)
    try:
        return con.execute("SELECT kind, ident FROM resources").fetchall()
    except sqlite3.OperationalError:
        return []
    finally:
        con.close()


@pytest.fixture(scope="module")
def chroot_world(moto_server: Any) -> dict[str, Any]:
    """This machine as a moto instance, and a source AMI with an EBS root snapshot."""
    reason = can_loop_mount()
    if reason:
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    ec2 = moto_server.client("ec2", REGION)
    vol = ec2.create_volume(Size=1, AvailabilityZone=ZONE)["VolumeId"]
    snap = ec2.create_snapshot(VolumeId=vol)["SnapshotId"]
    name = f"kiln-chroot-src-{uuid.uuid4().hex[:8]}"
    ami = ec2.register_image(Name=name, RootDeviceName="/dev/sda1", VirtualizationType="hvm",
                             BlockDeviceMappings=[{"DeviceName": "/dev/sda1",
                                                   "Ebs": {"SnapshotId": snap,
                                                           "VolumeSize": 1}}])["ImageId"]
    host = ec2.run_instances(ImageId=ami, MinCount=1, MaxCount=1,
                             Placement={"AvailabilityZone": ZONE})["Instances"][0]
    try:
        with ImdsServer(host["InstanceId"], availability_zone=ZONE) as imds:
            yield {"instance_id": host["InstanceId"], "ami": ami, "ami_name": name,
                   "imds": imds, "source_volume": vol}
    finally:
        ec2.terminate_instances(InstanceIds=[host["InstanceId"]])
        ec2.deregister_image(ImageId=ami)


class ChrootBuild:
    def __init__(self, tmp: Path, moto: Any, world: dict[str, Any], loop: LoopTree,
                 state_dir: Path):
        self.tmp = tmp
        self.moto = moto
        self.world = world
        self.loop = loop
        self.state_dir = state_dir
        self.token = uuid.uuid4().hex[:10]
        self.ami_name = f"kiln-chroot-{self.token}"
        (tmp / "dev").mkdir()
        self.device = tmp / "dev" / "xvdf"
        self.mnt = tmp / "mnt"
        self.upload = tmp / "hello.txt"
        self.upload.write_text("uploaded by the file provisioner\n")
        self.builder: dict[str, Any] = {
            "type": "amazon-chroot", "name": "chroot", "region": REGION,
            "custom_endpoint_ec2": moto.endpoint,
            "source_ami_filter": {"filters": {"name": world["ami_name"]}, "owners": ["self"]},
            "ami_name": self.ami_name,
            "device_path": str(self.device),
            "mount_path": str(self.mnt) + "/{{.Device}}",
            "command_wrapper": "KILN_WRAPPED=1 {{.Command}}",
            "root_volume_tags": {"Name": "chroot of {{ .SourceAMIName }}"},
        }
        self.provisioners: list[dict[str, Any]] = [
            {"type": "shell", "inline": [
                "echo built-in-chroot-$KILN_WRAPPED > /etc/kiln-marker",
                "test -e /proc/self && echo proc-mounted",
                "cat /etc/resolv.conf > /dev/null && echo resolv-copied"]},
            {"type": "file", "source": str(self.upload), "destination": "/opt/hello.txt"},
        ]
        self.post_processors: list[Any] = []
        self.env = moto.aws_env(REGION)
        self.env.update(KILN_STATE_DIR=str(state_dir), AWS_POLL_DELAY_SECONDS="0.1",
                        AWS_EC2_METADATA_SERVICE_ENDPOINT=world["imds"].endpoint)

    def write(self) -> Path:
        path = self.tmp / "template.json"
        path.write_text(json.dumps({"builders": [self.builder],
                                    "provisioners": self.provisioners,
                                    "post-processors": self.post_processors}, indent=2))
        return path

    def run(self, *flags: str) -> subprocess.CompletedProcess[str]:
        return kiln(["build", "-color=false", *flags, str(self.write())], self.env, self.tmp)

    def start(self, out: Path, *flags: str) -> subprocess.Popen[str]:
        path = self.write()
        with open(out, "w") as fh:
            return subprocess.Popen([sys.executable, "-m", "kiln.backend.cli", "build",
                                     "-color=false", *flags, str(path)], cwd=self.tmp,
                                    env=_with_repo(self.env), stdout=fh,
                                    stderr=subprocess.STDOUT, text=True,
                                    stdin=subprocess.DEVNULL)

    def volumes(self) -> list[str]:
        ec2 = self.moto.client("ec2", REGION)
        return [v["VolumeId"] for v in ec2.describe_volumes()["Volumes"]
                if v["VolumeId"] != self.world["source_volume"]
                and any(t["Key"] == "kiln:run" for t in v.get("Tags") or [])]

    def images(self) -> list[dict[str, Any]]:
        ec2 = self.moto.client("ec2", REGION)
        return ec2.describe_images(Owners=["self"], Filters=[
            {"Name": "name", "Values": [self.ami_name]}])["Images"]

    def mounts_left(self) -> list[str]:
        with open("/proc/self/mountinfo") as f:
            return [line.split()[4] for line in f if str(self.tmp) in line.split()[4]]

    def assert_nothing_left(self, allow_ami: bool = False) -> None:
        assert self.mounts_left() == []
        assert self.loop.mounted_anywhere() == []
        assert not self.device.exists(), "the volume is still attached"
        assert self.volumes() == []
        if not allow_ami:
            assert self.images() == []
        assert [r for r in ledger_rows(self.state_dir) if r[0] != "process"] == []


@pytest.fixture
def build(tmp_path: Path, moto_server: Any, chroot_world: dict[str, Any],
          kiln_state_dir: Path, docker_client: Any, base_image: str,
          docker_labels: dict[str, str]):
    with LoopTree(labels=docker_labels) as loop:
        b = ChrootBuild(tmp_path, moto_server, chroot_world, loop, kiln_state_dir)
        with DeviceKernel(moto_server.client("ec2", REGION), chroot_world["instance_id"],
                          b.device, loop.device) as k:
            b.kernel = k  # type: ignore[attr-defined]
            try:
                yield b
            finally:
                for point in reversed(b.mounts_left()):
                    subprocess.run(["umount", "-l", point], capture_output=True)
    assert loop.left_attached == []  # no loop device of the run is left either


def test_build_provisions_inside_the_chroot_and_registers_the_ami(build: ChrootBuild) -> None:
    manifest = build.tmp / "manifest.json"
    build.post_processors = [{"type": "manifest", "output": str(manifest)}]
    # the image's own resolv.conf must come back unchanged, not the host's, nor none
    own = b"nameserver 10.0.0.2 # the image's own\n"
    build.loop.modify(lambda root: (root / "etc/resolv.conf").write_bytes(own))
    r = build.run()
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert "proc-mounted" in out and "resolv-copied" in out
    # the permission preflight probes the chroot builder's own calls with DryRun
    unchecked = [line for line in out.splitlines() if "Not checked:" in line]
    for action in ("CreateVolume", "AttachVolume", "DetachVolume", "CreateSnapshot",
                   "RegisterImage"):
        assert f"ec2:{action}" not in " ".join(unchecked), unchecked
    # what the provisioners wrote is on the volume (the snapshot's backing filesystem)
    assert build.loop.read("/etc/kiln-marker") == b"built-in-chroot-1\n"
    assert build.loop.read("/opt/hello.txt") == build.upload.read_bytes()
    assert build.loop.read("/etc/resolv.conf") == own
    assert not [n for n in build.loop.listdir("/etc") if n.startswith(".kiln")]
    images = build.images()
    assert len(images) == 1, images
    ec2 = build.moto.client("ec2", REGION)
    snaps = ec2.describe_snapshots(OwnerIds=["self"], Filters=[
        {"Name": "tag:kiln:build", "Values": ["chroot"]}])["Snapshots"]
    vol = list(build.kernel.attached_volumes)  # type: ignore[attr-defined]
    assert len(vol) == 1
    assert any(s["VolumeId"] == vol[0] for s in snaps), snaps
    assert f"{REGION}: {images[0]['ImageId']}" in out
    art = json.loads(manifest.read_text())["builds"][0]
    assert art["builder_type"] == "amazon-chroot"
    assert art["artifact_id"] == f"{REGION}:{images[0]['ImageId']}"
    # the IMDSv2 token was asked for first, then used
    reqs = build.world["imds"].requests
    assert reqs[0][0] == "PUT" and all(had for m, _p, had in reqs if m == "GET")
    build.assert_nothing_left(allow_ami=True)


@pytest.mark.parametrize("stage", ["mount", "provision", "snapshot"])
def test_a_failure_at_each_stage_leaves_nothing(build: ChrootBuild, stage: str) -> None:
    if stage == "mount":
        build.builder["mount_options"] = ["no-such-mount-option"]
    elif stage == "provision":
        build.provisioners.append({"type": "shell", "inline": ["echo failing; exit 3"]})
        # as on systemd images, resolv.conf is a link: given back unchanged after a failure
        build.loop.modify(lambda root: ((root / "etc/resolv.conf").unlink(missing_ok=True),
                                        (root / "etc/resolv.conf").symlink_to(
                                            "../run/systemd/resolve/stub-resolv.conf")))
    if stage != "snapshot":
        r = build.run()
    else:
        # EC2 refuses the snapshot: a proxy in front of moto answers CreateSnapshot with an
        # error (moto itself has no way to make that call fail)
        with FaultProxy(build.moto.endpoint, {"CreateSnapshot": "IncorrectState"}) as proxy:
            build.builder["custom_endpoint_ec2"] = proxy.endpoint
            r = build.run()
        assert proxy.failed == ["CreateSnapshot"]
    out = r.stdout + r.stderr
    assert r.returncode == 1, out
    expected = {"mount": "Error mounting root volume", "provision": "non-zero exit status: 3",
                "snapshot": "Error creating snapshot: IncorrectState"}[stage]
    assert expected in out, out
    build.assert_nothing_left()
    if stage == "provision":
        links: list[str] = []
        build.loop.modify(lambda root: links.append(os.readlink(root / "etc/resolv.conf")))
        assert links == ["../run/systemd/resolve/stub-resolv.conf"]
        assert not (build.loop.listdir("/run") or [])


def test_interrupt_cleans_up(build: ChrootBuild, tmp_path: Path) -> None:
    build.provisioners = [{"type": "shell", "inline": ["echo > /started; sleep 60"]}]
    proc = build.start(tmp_path / "out.txt")
    try:
        deadline = time.monotonic() + 60
        while not (build.mnt / "xvdf" / "started").exists():
            assert proc.poll() is None, (tmp_path / "out.txt").read_text()
            assert time.monotonic() < deadline
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(60) == 1, (tmp_path / "out.txt").read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
    build.assert_nothing_left()


def test_kill_then_kiln_cleanup_unmounts_detaches_and_deletes(build: ChrootBuild,
                                                             tmp_path: Path) -> None:
    build.provisioners = [{"type": "shell", "inline": ["echo > /started; sleep 60"]}]
    proc = build.start(tmp_path / "out.txt")
    try:
        deadline = time.monotonic() + 60
        while not (build.mnt / "xvdf" / "started").exists():
            assert proc.poll() is None, (tmp_path / "out.txt").read_text()
            assert time.monotonic() < deadline
            time.sleep(0.05)
        proc.kill()
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    # the sleep inside the chroot is killed by cleanup's process reaper, then the mounts go
    assert build.mounts_left(), "the killed build should have left its mounts"
    r = kiln(["cleanup"], build.env, tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    build.assert_nothing_left()


def test_a_busy_mount_is_reported_with_its_holder(build: ChrootBuild,
                                                  tmp_path: Path) -> None:
    build.provisioners = [{"type": "shell", "inline": ["echo > /started; sleep 60"]}]
    proc = build.start(tmp_path / "out.txt")
    holder = None
    try:
        deadline = time.monotonic() + 60
        root = build.mnt / "xvdf"
        while not (root / "started").exists():
            assert proc.poll() is None, (tmp_path / "out.txt").read_text()
            assert time.monotonic() < deadline
            time.sleep(0.05)
        proc.kill()
        proc.wait(10)
        # a process of someone else's keeps the tree busy
        holder = subprocess.Popen(["sleep", "120"], cwd=root)
        r = kiln(["cleanup"], build.env, tmp_path)
        assert r.returncode == 1, r.stdout + r.stderr
        assert f"pid {holder.pid} (sleep)" in r.stderr, r.stderr
        assert build.mounts_left()
        holder.kill()
        holder.wait()
        r = kiln(["cleanup"], build.env, tmp_path)
        assert r.returncode == 0, r.stdout + r.stderr
    finally:
        if holder is not None and holder.poll() is None:
            holder.kill()
            holder.wait()
        if proc.poll() is None:
            proc.kill()
    build.assert_nothing_left()


# --------------------------------------------------------------------------- validation


def test_validate_reports_chroot_problems_with_locations(tmp_path: Path) -> None:
    tpl = {"builders": [{
        "type": "amazon-chroot", "region": "us-east-1", "ami_name": "chroot {{timestamp}}",
        "from_scratch": True, "chroot_mounts": [["proc", "/proc"]],
        "root_volume_size": "big", "mount_partition": "first", "ami_architecture": "sparc",
        "command_wrapper": "sudo", "copy_files": ["etc/resolv.conf"],
        "root_volume_kms_key_id": "alias/k", "device_path": "xvdf",
    }]}
    path = tmp_path / "t.json"
    path.write_text(json.dumps(tpl, indent=2))
    r = kiln(["validate", str(path)], dict(os.environ), tmp_path)
    text = r.stdout + r.stderr
    assert r.returncode == 1, text
    for expected in ('root_volume_size: expected an integer, got "big"',
                     "pre_mount_commands is required with from_scratch",
                     "ami_virtualization_type is required with from_scratch",
                     "root_device_name is required with from_scratch",
                     "chroot_mounts[0] has 2 elements",
                     "mount_partition must be a partition number",
                     "ami_architecture must be one of",
                     "command_wrapper must contain {{.Command}}",
                     "copy_files entries are absolute paths",
                     "root_volume_kms_key_id needs root_volume_encrypt_boot",
                     "device_path must be an absolute path"):
        assert expected in text, (expected, text)
    assert "t.json:" in text and "Traceback" not in text
    tpl["builders"][0] = {"type": "amazon-chroot", "region": "us-east-1", "ami_name": "x y z"}
    path.write_text(json.dumps(tpl))
    r = kiln(["validate", str(path)], dict(os.environ), tmp_path)
    assert r.returncode == 1 and "a source AMI must be given" in r.stdout + r.stderr


def test_validate_accepts_every_documented_key_without_boto3(tmp_path: Path) -> None:
    tpl = {"builders": [{
        "type": "amazon-chroot", "region": "us-east-1", "ami_name": "chroot {{timestamp}}",
        "ami_description": "{{ .SourceAMIName }}", "source_ami": "ami-0123456789abcdef0",
        "source_ami_filter": {"filters": {"name": "x"}, "owners": ["self"],
                              "most_recent": True},
        "chroot_mounts": [["proc", "proc", "/proc"], ["bind", "/dev", "/dev"]],
        "command_wrapper": "sudo {{.Command}}", "copy_files": ["/etc/resolv.conf"],
        "device_path": "/dev/sdf", "nvme_device_path": "/dev/nvme1n1",
        "mount_options": ["noatime", "nodev"], "mount_partition": "2",
        "mount_path": "/mnt/chroot/{{.Device}}", "pre_mount_commands": ["true {{.Device}}"],
        "post_mount_commands": ["true {{.Device}} {{.MountPath}}"],
        "root_volume_size": 12, "root_volume_type": "gp3",
        "root_volume_tags": {"Name": "{{ .SourceAMIName }}"},
        "root_volume_tag": [{"key": "Team", "value": "images"}],
        "root_volume_encrypt_boot": True, "root_volume_kms_key_id": "alias/images",
        "ami_architecture": "arm64", "boot_mode": "uefi", "uefi_data": "QU1aTlVFRkk=",
        "tpm_support": "v2.0", "ena_support": True, "sriov_support": True,
        "ami_virtualization_type": "hvm", "ami_regions": ["us-west-2"],
        "ami_users": ["123456789012"], "ami_groups": ["all"], "snapshot_users": ["1"],
        "tags": {"A": "b"}, "snapshot_tags": {"C": "d"}, "force_deregister": True,
        "force_delete_snapshot": True, "imds_support": "v2.0",
        "deprecate_at": "2031-01-01T00:00:00Z", "root_device_name": "/dev/xvda",
        "ami_block_device_mappings": [{"device_name": "/dev/xvda", "volume_size": 12,
                                       "volume_type": "gp3", "delete_on_termination": True}],
        "aws_polling": {"delay_seconds": 5, "max_attempts": 50},
        "from_scratch": False,
    }]}
    path = tmp_path / "t.json"
    path.write_text(json.dumps(tpl, indent=2))
    for target in (path, REPO / "templates" / "amazon-chroot.json"):
        r = kiln(["validate", str(target)], dict(os.environ, PYTHONVERBOSE="1"), tmp_path)
        assert r.returncode == 0, r.stdout + r.stderr[-3000:]
        assert "import 'boto3'" not in r.stderr and "import 'botocore'" not in r.stderr


def test_iam_policy_covers_the_chroot_builder(tmp_path: Path) -> None:
    path = tmp_path / "t.json"
    path.write_text(json.dumps({"builders": [{
        "type": "amazon-chroot", "region": "us-east-1", "ami_name": "chroot-x",
        "source_ami": "ami-0123456789abcdef0", "ami_regions": ["us-west-2"]}]}))
    r = kiln(["iam", "policy", "-narrow=false", str(path)], dict(os.environ), tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    doc = json.loads(r.stdout)
    actions = {a for st in doc["Statement"] for a in (
        st["Action"] if isinstance(st["Action"], list) else [st["Action"]])}
    for needed in ("ec2:DescribeInstances", "ec2:CreateVolume", "ec2:AttachVolume",
                   "ec2:DetachVolume", "ec2:DeleteVolume", "ec2:CreateSnapshot",
                   "ec2:DescribeSnapshots", "ec2:RegisterImage", "ec2:CopyImage"):
        assert needed in actions, (needed, sorted(actions))
    for not_needed in ("ec2:RunInstances", "ec2:CreateSecurityGroup", "ec2:ImportKeyPair",
                       "ec2:CreateImage"):
        assert not_needed not in actions


def test_mount_commands_register_options_and_a_hostile_tree(build: ChrootBuild,
                                                            tmp_path: Path) -> None:
    host_etc = tmp_path / "host-etc"  # where a hostile image's links point on the host
    host_sys = tmp_path / "host-sys"
    host_etc.mkdir()
    host_sys.mkdir()

    def hostile(root: Path) -> None:
        os.rename(root / "etc", root / "etc.real")
        (root / "etc").symlink_to(str(host_etc))  # copy_files' /etc/resolv.conf goes here
        if (root / "sys").is_dir():
            (root / "sys").rmdir()
        (root / "sys").symlink_to(str(host_sys))  # and the sysfs mount here

    build.loop.modify(hostile)
    pre = tmp_path / "pre.txt"
    build.builder.update({
        "pre_mount_commands": [f"echo {{{{.Device}}}} > {pre}"],
        "post_mount_commands": ["echo {{.Device}} > {{.MountPath}}/post-mount.txt"],
        "mount_options": ["noatime"],
        "chroot_mounts": [["proc", "proc", "/proc"], ["sysfs", "sysfs", "/sys"]],
        "ena_support": True, "sriov_support": True, "boot_mode": "uefi",
        "ami_architecture": "arm64", "root_volume_size": 20, "root_device_name": "/dev/xvda",
        "ami_block_device_mappings": [{"device_name": "/dev/xvda", "volume_type": "gp3",
                                       "delete_on_termination": True}],
        "tags": {"Base": "{{ .SourceAMIName }}"}, "ami_users": ["111122223333"],
    })
    build.provisioners = [{"type": "shell", "inline": [
        "grep -q noatime /proc/mounts && echo noatime-set", "ls /sys/kernel > /dev/null"]}]
    with FaultProxy(build.moto.endpoint) as proxy:
        build.builder["custom_endpoint_ec2"] = proxy.endpoint
        r = build.run()
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert pre.read_text() == f"{build.device}\n"
    assert build.loop.read("/post-mount.txt") == f"{build.device}\n".encode()
    assert "noatime-set" in out
    # nothing was copied or mounted onto the host's paths
    assert os.listdir(host_etc) == [] and os.listdir(host_sys) == []
    image = build.images()[0]
    # what EC2 was asked to register (moto keeps only some of it)
    calls = [c for c in proxy.calls if "DryRun" not in c]  # the preflight's probes aside
    reg = [c for c in calls if c.get("Action") == "RegisterImage"]
    assert len(reg) == 1
    snap = [c for c in calls if c.get("Action") == "CreateSnapshot"]
    assert reg[0]["RootDeviceName"] == "/dev/xvda"
    assert reg[0]["Architecture"] == "arm64" and reg[0]["BootMode"] == "uefi"
    assert reg[0]["EnaSupport"] == "true" and reg[0]["SriovNetSupport"] == "simple"
    assert reg[0]["BlockDeviceMapping.1.DeviceName"] == "/dev/xvda"
    assert reg[0]["BlockDeviceMapping.1.Ebs.VolumeSize"] == "20"
    assert reg[0]["BlockDeviceMapping.1.Ebs.VolumeType"] == "gp3"
    assert len(snap) == 1 and reg[0]["BlockDeviceMapping.1.Ebs.SnapshotId"].startswith("snap-")
    vol = [c for c in calls if c.get("Action") == "CreateVolume"]
    assert vol[0]["Size"] == "20" and vol[0]["SnapshotId"].startswith("snap-")
    tags = {t["Key"]: t["Value"] for t in image.get("Tags") or []}
    assert tags.get("Base") == build.world["ami_name"]
    ec2 = build.moto.client("ec2", REGION)
    perms = ec2.describe_image_attribute(ImageId=image["ImageId"],
                                         Attribute="launchPermission")["LaunchPermissions"]
    assert {"UserId": "111122223333"} in perms
    build.assert_nothing_left(allow_ami=True)


def test_from_scratch_formats_and_fills_an_empty_volume(build: ChrootBuild) -> None:
    from chroot_tree import busybox_tarball

    tar = busybox_tarball()
    build.builder.pop("source_ami_filter")
    build.builder.update({
        "from_scratch": True, "root_volume_size": 1, "ami_virtualization_type": "hvm",
        "root_device_name": "/dev/xvda", "mount_partition": "0",
        "ami_block_device_mappings": [{"device_name": "/dev/xvda", "volume_type": "gp2"}],
        "pre_mount_commands": ["mkfs.ext4 -q -F -L scratch {{.Device}}"],
        "post_mount_commands": [f"tar -C {{{{.MountPath}}}} -xf {tar}"],
    })
    with FaultProxy(build.moto.endpoint) as proxy:
        build.builder["custom_endpoint_ec2"] = proxy.endpoint
        r = build.run()
    assert r.returncode == 0, r.stdout + r.stderr
    vol = [c for c in proxy.calls if c.get("Action") == "CreateVolume" and "DryRun" not in c]
    assert "SnapshotId" not in vol[0] and vol[0]["Size"] == "1"
    assert build.loop.read("/etc/kiln-marker") == b"built-in-chroot-1\n"
    label = subprocess.run(["blkid", "-s", "LABEL", "-o", "value", build.loop.device],
                           capture_output=True, text=True).stdout.strip()
    assert label == "scratch"  # the pre-mount command really formatted the volume
    build.assert_nothing_left(allow_ami=True)


def test_a_provisioner_left_running_keeps_the_volume_attached_and_is_named(
        build: ChrootBuild, tmp_path: Path) -> None:
    """A daemon a provisioner started still runs in the tree: the build fails naming it,
    and neither detaches nor deletes a mounted volume; kiln cleanup finishes once it ends."""
    build.provisioners = [{"type": "shell", "inline": [
        "setsid sleep 120 > /dev/null 2>&1 < /dev/null &", "echo started"]}]
    r = build.run()
    out = r.stdout + r.stderr
    pids = [int(p) for p in re.findall(r"held by pid (\d+) \(sleep\)", out)]
    try:
        assert r.returncode == 1, out
        assert pids, out
        assert build.mounts_left(), "the busy tree must stay mounted"
        assert build.device.exists(), "a mounted volume must not be detached"
        assert len(build.volumes()) == 1
        os.kill(pids[0], signal.SIGKILL)
        r = kiln(["cleanup"], build.env, tmp_path)
        assert r.returncode == 0, r.stdout + r.stderr
    finally:
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    build.assert_nothing_left()


def test_kill_while_the_snapshot_is_made_then_kiln_cleanup(build: ChrootBuild,
                                                           tmp_path: Path) -> None:
    """Killed after EC2 made the snapshot but before Kiln heard its id: kiln cleanup finds
    it by the run's tags and deletes it, and the detached volume too."""
    with FaultProxy(build.moto.endpoint, slow_actions={"CreateSnapshot": 30}) as proxy:
        build.builder["custom_endpoint_ec2"] = proxy.endpoint
        proc = build.start(tmp_path / "out.txt")
        try:
            deadline = time.monotonic() + 60
            while not [c for c in proxy.calls if c.get("Action") == "CreateSnapshot"
                       and "DryRun" not in c]:
                assert proc.poll() is None, (tmp_path / "out.txt").read_text()
                assert time.monotonic() < deadline
                time.sleep(0.05)
            time.sleep(0.5)  # moto has made it; Kiln waits for the answer
            proc.kill()
            proc.wait(10)
        finally:
            if proc.poll() is None:
                proc.kill()
        ec2 = build.moto.client("ec2", REGION)
        vols = list(build.kernel.attached_volumes)  # type: ignore[attr-defined]

        def snapshots() -> list[str]:
            return [s["SnapshotId"] for s in ec2.describe_snapshots(OwnerIds=["self"], Filters=[
                {"Name": "volume-id", "Values": vols}])["Snapshots"]]

        assert len(snapshots()) == 1
        r = kiln(["cleanup"], build.env, tmp_path)
        assert r.returncode == 0, r.stdout + r.stderr
        assert snapshots() == []
    build.assert_nothing_left()
