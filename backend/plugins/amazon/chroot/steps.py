"""The amazon-chroot steps: this instance, a device name, the volume, attaching, mounting,
the chroot's own mounts and files, then (after the provisioners) unmounting and detaching.
The snapshot and the AMI are image.py's; the AMI steps after registration amazon-ebs's.

Every volume, attachment and mount is in the ledger before it exists; the volume's record
also carries the mount path, so ``kiln cleanup`` after a killed run unmounts, detaches and
deletes in the right order from that one record (reaper.py).
"""

from __future__ import annotations

import fcntl
import os
import shlex
import shutil
import sys
import uuid
from typing import Any

from ....sdk.cancel import CancelToken
from ....sdk.communicator import CommunicatorError
from ....sdk.plugin import Step, StepError
from ...communicators.local import run_process
from .. import common as aws
from ..config import ami_name_problem
from ..steps_base import AwsStep, _Build, _cleanup_error, _record, _release, _update, render
from ..steps_network import check_ami_name_free
from .communicator import ChrootCommunicator
from .config import AmazonChrootConfig
from .imds import Metadata, MetadataError
from .mounts import MountBusy, is_mounted, makedirs_in_root, mounted_under

LOCK_PATH = "/run/lock/kiln-amazon-chroot.lock"


class _ChrootBuild(_Build):
    """What the chroot steps share, on top of what every EC2 step shares."""

    config: AmazonChrootConfig

    def __init__(self, config: AmazonChrootConfig):
        super().__init__(config)
        self.host_instance = ""
        self.root_snapshot = ""
        self.root_size = 0
        self.device = ""
        self.volume_id = ""
        self.volume_entry: int | None = None
        self.mount_path = ""
        self.snapshot_id = ""
        self.attached = False  # the volume is (or may be) attached to this instance
        self.lock_fd: int | None = None

    def wrap(self, ctx, command: str) -> str:
        return render(ctx, self.config.wrapper(), {**self.info, "Command": command},
                      "command_wrapper")

    def host_command(self, ctx, command: str, what: str, cancel: CancelToken | None = None,
                     wrapped: bool = True) -> None:
        """Run ``command`` on this host (through command_wrapper); fail with its output."""
        text = self.wrap(ctx, command) if wrapped else command
        lines: list[str] = []

        def output(stream: str, chunk: list[str], partial: bool = False) -> None:
            lines.extend(chunk)
            ctx.ui.output(stream, chunk)

        try:
            code = run_process(["/bin/sh", "-c", text], output,
                               cancel if cancel is not None else ctx.cancel)
        except CommunicatorError as e:
            raise StepError(f"{what}: {e}") from e
        if code != 0:
            tail = "; ".join(line for line in lines[-5:] if line.strip())
            raise StepError(f"{what}: {text!r} exited with status {code}"
                            + (f": {tail}" if tail else ""))


class ChrootStep(AwsStep):
    b: _ChrootBuild
    c: AmazonChrootConfig


def _quiet_token() -> CancelToken:
    """Cleanups run after a cancel too: their commands get a token nobody cancels."""
    return CancelToken()


# --------------------------------------------------------------------------- before the volume


class PrevalidateStep(ChrootStep):
    title = "Check AWS access"

    def run(self, ctx) -> None:
        c = self.c
        if not sys.platform.startswith("linux"):
            raise StepError("the amazon-chroot builder only works on Linux")
        if c.vault_aws_engine is not None and (c.vault_aws_engine.name
                                               or c.vault_aws_engine.role_arn):
            raise StepError("vault_aws_engine is not supported by Kiln: it reads credentials "
                            "from HashiCorp Vault; pass them in the environment instead")
        if self.b.access is None:
            self.b.access = aws.AwsAccess(c, secret=ctx.add_secret)
        access = self.b.access
        if not c.region:
            c.region = access.default_region()
            ctx.ui.say(f"Using region {c.region} (from the environment)")
        if not c.skip_credential_validation:
            access.check_credentials()
        ec2 = access.ec2()
        if not c.skip_region_validation:
            regions = aws.call("Error listing regions", ec2.describe_regions, AllRegions=True)
            known = {r["RegionName"] for r in regions.get("Regions") or []}
            bad = sorted({r for r in [c.region, *c.ami_regions] if r and r not in known})
            if bad:
                raise StepError(f"unknown region(s) {', '.join(bad)}; check region and "
                                "ami_regions, or set skip_region_validation")
        forced = c.force_deregister or getattr(ctx.options, "force", False)
        if forced or "{{" in c.ami_name:
            return
        problem = ami_name_problem(c.ami_name)
        if problem:
            raise StepError(problem)
        ctx.ui.say(f"Prevalidating AMI Name: {c.ami_name}")
        check_ami_name_free(ec2, c.ami_name, c.region)
        self.b.ami_name = c.ami_name
        self.b.ami_name_checked = True


class InstanceInfoStep(ChrootStep):
    title = "Find this instance"

    def run(self, ctx) -> None:
        b = self.b
        ctx.ui.say("Gathering information about this EC2 instance...")
        try:
            iid = Metadata().instance_id()
        except MetadataError as e:
            raise StepError(f"Error getting instance ID: {e}") from e
        state, inst = aws.call(f"Error describing instance {iid}", aws.instance_state, ec2=b.ec2,
                               instance_id=iid)
        if not inst:
            raise StepError(f"this instance ({iid}, from the instance metadata service) is not "
                            f"known to EC2 in {self.c.region}: is region right?")
        b.host_instance = iid
        b.availability_zone = (inst.get("Placement") or {}).get("AvailabilityZone", "")
        ctx.ui.say(f"Instance ID: {iid} ({b.availability_zone})")


class CheckRootDeviceStep(ChrootStep):
    title = "Check source root device"

    def run(self, ctx) -> None:
        image = self.b.source_image
        if image.get("RootDeviceType") == "instance-store":
            raise StepError("the source AMI's root device must be an EBS volume, not "
                            "instance-store")
        root = image.get("RootDeviceName", "")
        for m in image.get("BlockDeviceMappings") or []:
            ebs = m.get("Ebs") or {}
            if m.get("DeviceName") == root and ebs.get("SnapshotId"):
                self.b.root_snapshot = ebs["SnapshotId"]
                self.b.root_size = int(ebs.get("VolumeSize") or 0)
                return
        raise StepError(f"the source AMI {image.get('ImageId')} has no EBS snapshot for its "
                        f"root device {root or '(none)'}")


def available_device() -> str:
    """The first /dev/sd[f-p] (or xvd[f-p]) that exists neither whole nor partitioned."""
    try:
        names = os.listdir("/sys/block")
    except OSError:
        names = []
    prefix = "xvd" if any(n.startswith("xvd") for n in names) else "sd"
    for letter in "fghijklmnop":
        dev = f"/dev/{prefix}{letter}"
        if not os.path.exists(dev) and not os.path.exists(dev + "1"):
            return dev
    raise StepError("no free device name in /dev/" + prefix + "[f-p]; set device_path")


class PrepareDeviceStep(ChrootStep):
    title = "Choose device"

    def run(self, ctx) -> None:
        b = self.b
        # one build at a time between choosing a name and attaching (as Packer's flock)
        try:
            os.makedirs(os.path.dirname(LOCK_PATH), exist_ok=True)
            b.lock_fd = os.open(LOCK_PATH, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW
                                | os.O_CLOEXEC, 0o600)
        except OSError as e:
            raise StepError(f"cannot open the device lock {LOCK_PATH}: {e.strerror}") from e
        while True:
            try:
                fcntl.flock(b.lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                ctx.ui.progress("Waiting for another chroot build to attach its volume")
                ctx.cancel.sleep(0.2)
        device = self.c.device_path or available_device()
        if os.path.lexists(device):
            raise StepError(f"Device is in use: {device} already exists (set device_path to a "
                            "free /dev/sd[f-p] name)")
        b.device = device
        ctx.generated_data["Device"] = device
        ctx.ui.say(f"Device: {device}")

    def cleanup(self, ctx) -> None:
        unlock(self.b)


def unlock(b: _ChrootBuild) -> None:
    if b.lock_fd is not None:
        try:
            os.close(b.lock_fd)
        finally:
            b.lock_fd = None


# --------------------------------------------------------------------------- the volume


class CreateVolumeStep(ChrootStep):
    title = "Create volume"

    def run(self, ctx) -> None:
        b = self.b
        c = self.c
        access = b.access
        assert access is not None
        size = int(c.root_volume_size or 0)
        if not c.from_scratch and size and size < b.root_size:
            raise StepError(f"root_volume_size {size} is smaller than the source snapshot "
                            f"({b.root_size} GiB)")
        params: dict[str, Any] = {"AvailabilityZone": b.availability_zone,
                                  "VolumeType": c.root_volume_type or "gp2"}
        if size:
            params["Size"] = size
        if not c.from_scratch:
            params["SnapshotId"] = b.root_snapshot
        if c.root_volume_encrypt_boot:
            params["Encrypted"] = True
            if c.root_volume_kms_key_id:
                params["KmsKeyId"] = c.root_volume_kms_key_id
        tags = {**b.render_tags(ctx, c.all_root_volume_tags(), "root_volume_tags"),
                **aws.kiln_tags(ctx)}
        params["TagSpecifications"] = [aws.tag_spec("volume", tags)]
        ctx.ui.say("Creating the root volume..." + (f" from {b.root_snapshot}"
                                                    if b.root_snapshot else ""))
        b.volume_entry = _record(ctx, "aws-chroot-volume", "(creating)", access.ledger_data(
            instance_id=b.host_instance, device=b.device))
        try:
            vol = b.ec2.create_volume(**params)
        except Exception as e:
            if not aws.is_aws_error(e):
                raise
            if aws.answered(e):
                _release(ctx, b.volume_entry)
                b.volume_entry = None
            raise StepError(f"Error creating root volume: {aws.aws_error(e)}") from e
        b.volume_id = vol["VolumeId"]
        _update(ctx, b.volume_entry, ident=b.volume_id, data=access.ledger_data(
            volume_id=b.volume_id, instance_id=b.host_instance, device=b.device))
        ctx.ui.say(f"Volume ID: {b.volume_id}")

        def available() -> bool:
            state = volume_state(b.ec2, b.volume_id)[0]
            if state in ("error", "deleted", ""):
                raise StepError(f"volume {b.volume_id} is {state or 'gone'}")
            return state == "available"

        aws.wait_for(ctx, f"Waiting for volume {b.volume_id}", available, b.polling(1, 300))

    def cleanup(self, ctx) -> None:
        b = self.b
        if not b.volume_id:
            if b.volume_entry is not None and not _find_run_volumes(ctx, b):
                _release(ctx, b.volume_entry)
            return
        if b.attached:
            ctx.ui.error(f"Not deleting the volume {b.volume_id}: it is still attached; "
                         "`kiln cleanup` will unmount, detach and delete it")
            return
        ctx.ui.say(f"Deleting the volume {b.volume_id}...")
        try:
            aws.call("Error deleting the volume", b.ec2.delete_volume, VolumeId=b.volume_id)
        except StepError as e:
            if "NotFound" not in str(e):
                ctx.ui.error(f"{e}; `kiln cleanup` will retry")
                return
        _release(ctx, b.volume_entry)
        b.volume_entry = None
        b.volume_id = ""


def _find_run_volumes(ctx, b: _ChrootBuild) -> list[str]:
    """Volumes of this run and build (a create call that may have gone through)."""
    try:
        res = b.ec2.describe_volumes(Filters=[
            {"Name": f"tag:{aws.RUN_TAG}", "Values": [str(ctx.run_id)]},
            {"Name": f"tag:{aws.BUILD_TAG}", "Values": [str(ctx.build_name)]}])
    except Exception:  # noqa: BLE001 - the ledger entry stays for kiln cleanup
        return ["?"]
    return [v["VolumeId"] for v in res.get("Volumes") or []]


def volume_state(ec2: Any, volume_id: str) -> tuple[str, dict[str, Any]]:
    """(state, description) of a volume; ("", {}) when it is gone."""
    try:
        vols = ec2.describe_volumes(VolumeIds=[volume_id]).get("Volumes") or []
    except Exception as e:
        if aws.gone(e):
            return "", {}
        raise
    return (vols[0].get("State", ""), vols[0]) if vols else ("", {})


def attachment_state(vol: dict[str, Any], instance_id: str) -> str:
    for a in vol.get("Attachments") or []:
        if a.get("InstanceId") == instance_id:
            return str(a.get("State") or "")
    return ""


class AttachVolumeStep(ChrootStep):
    title = "Attach volume"

    def __init__(self, build: _ChrootBuild):
        super().__init__(build)
        self.entry: int | None = None
        self.attached = False

    def run(self, ctx) -> None:
        b = self.b
        access = b.access
        assert access is not None
        ctx.ui.say(f"Attaching the root volume to {b.device}")
        self.entry = _record(ctx, "aws-volume-attachment", b.volume_id, access.ledger_data(
            volume_id=b.volume_id, instance_id=b.host_instance, device=b.device))
        try:
            b.ec2.attach_volume(VolumeId=b.volume_id, InstanceId=b.host_instance,
                                Device=b.device)
        except Exception as e:
            if not aws.is_aws_error(e):
                raise
            if aws.answered(e):
                _release(ctx, self.entry)
                self.entry = None
            raise StepError(f"Error attaching volume: {aws.aws_error(e)}") from e
        self.attached = True
        b.attached = True

        def attached() -> bool:
            state, vol = volume_state(b.ec2, b.volume_id)
            return attachment_state(vol, b.host_instance) == "attached"

        aws.wait_for(ctx, "Waiting for the volume to attach", attached, b.polling(1, 300))
        device = self.c.nvme_device_path or b.device
        aws.wait_for(ctx, f"Waiting for {device} to appear",
                     lambda: os.path.exists(device), b.polling(0.2, 600))
        unlock(b)

    def undo(self, ctx) -> None:
        b = self.b
        if not self.attached:
            if self.entry is not None and not b.volume_id:
                _release(ctx, self.entry)
                self.entry = None
            return
        if b.mount_path and mounted_under(b.mount_path):
            # detaching a mounted filesystem would corrupt it: leave both for kiln cleanup
            raise StepError(f"not detaching {b.volume_id}: {b.mount_path} is still mounted")
        ctx.ui.say("Detaching the root volume...")
        try:
            b.ec2.detach_volume(VolumeId=b.volume_id, InstanceId=b.host_instance)
        except Exception as e:
            if not aws.is_aws_error(e):
                raise
            code = aws.error_code(e)
            if not aws.gone(e) and code != "IncorrectState":
                raise StepError(f"Error detaching root volume: {aws.aws_error(e)}") from e

        def detached() -> bool:
            state, vol = volume_state(b.ec2, b.volume_id)
            return state in ("available", "") and not attachment_state(vol, b.host_instance)

        aws.wait_for(ctx, "Waiting for the volume to detach", detached, b.polling(1, 300),
                     cancellable=False)
        self.attached = False
        b.attached = False
        _release(ctx, self.entry)
        self.entry = None

    def cleanup(self, ctx) -> None:
        try:
            self.undo(ctx)
        except StepError as e:
            ctx.ui.error(f"{e}; `kiln cleanup` will retry")
        except Exception as e:  # noqa: BLE001 - a cleanup reports and goes on
            _cleanup_error(ctx, "detaching the volume", e)


# --------------------------------------------------------------------------- mounting


class MountCommandsStep(ChrootStep):
    """pre_mount_commands or post_mount_commands, run on this host."""

    def __init__(self, build: _ChrootBuild, which: str):
        super().__init__(build)
        self.which = which

    @property
    def name(self) -> str:
        return "Pre-mount commands" if self.which == "pre" else "Post-mount commands"

    def run(self, ctx) -> None:
        b = self.b
        commands = self.c.pre_mount_commands if self.which == "pre" else \
            self.c.post_mount_commands
        data = {**b.info, "Device": b.device, "MountPath": b.mount_path}
        ctx.ui.say(f"Running {'pre' if self.which == 'pre' else 'post'}-mount commands...")
        for i, command in enumerate(commands):
            what = f"{self.which}_mount_commands[{i}]"
            text = render(ctx, command, data, what)
            ctx.ui.say(f"Executing command: {text}")
            b.host_command(ctx, text, f"Error running {what}")


def partition_path(device: str, partition: str) -> str:
    """The partition's device: /dev/xvdf + 1 = /dev/xvdf1; /dev/nvme1n1 + 1 = /dev/nvme1n1p1."""
    if partition == "0":
        return device
    return device + ("p" if device[-1:].isdigit() else "") + partition


class MountDeviceStep(ChrootStep):
    title = "Mount device"

    def __init__(self, build: _ChrootBuild):
        super().__init__(build)
        self.entry: int | None = None
        self.made_dir = False

    def run(self, ctx) -> None:
        b = self.b
        c = self.c
        device = c.nvme_device_path or b.device
        path = render(ctx, c.mount_path or "/mnt/packer-amazon-chroot-volumes/{{.Device}}",
                      {**b.info, "Device": os.path.basename(device)}, "mount_path")
        path = os.path.abspath(path)
        if is_mounted(path):
            raise StepError(f"mount_path {path} is already a mount point (another build?)")
        if not os.path.isdir(path):
            try:
                os.makedirs(path, 0o755)
                self.made_dir = True
            except OSError as e:
                raise StepError(f"Error creating mount directory {path}: "
                                f"{e.strerror or e}") from e
        virt = c.ami_virtualization_type or b.source_image.get("VirtualizationType", "hvm")
        source = partition_path(device, c.partition()) if virt == "hvm" else device
        b.mount_path = path
        # the volume's own record learns the path first, so kiln cleanup unmounts it
        _update(ctx, b.volume_entry, data={**(_entry_data(b)), "mount_path": path})
        self.entry = _record(ctx, "chroot-mount", path, {"device": source})
        opts = "".join(f" -o {shlex.quote(o)}" for o in c.mount_options)
        ctx.ui.say("Mounting the root device...")
        try:
            b.host_command(ctx, f"mount{opts} {shlex.quote(source)} {shlex.quote(path)}",
                           "Error mounting root volume")
        except BaseException:
            if not is_mounted(path):
                _release(ctx, self.entry)
                self.entry = None
                self._remove_dir()
            raise
        ctx.generated_data["MountPath"] = path
        b.info["Device"] = b.device
        b.info["MountPath"] = path

    def _remove_dir(self) -> None:
        if self.made_dir:
            try:
                os.rmdir(self.b.mount_path)
            except OSError:
                pass
            self.made_dir = False

    def undo(self, ctx) -> None:
        if self.entry is None:
            return
        path = self.b.mount_path
        ctx.ui.say("Unmounting the root device...")
        unmount_via(ctx, self.b, path)
        _release(ctx, self.entry)
        self.entry = None
        self._remove_dir()

    def cleanup(self, ctx) -> None:
        _report_cleanup(ctx, self.undo)


def _entry_data(b: _ChrootBuild) -> dict[str, Any]:
    assert b.access is not None
    return b.access.ledger_data(volume_id=b.volume_id, instance_id=b.host_instance,
                                device=b.device)


def unmount_via(ctx, b: _ChrootBuild, path: str) -> None:
    """Unmount ``path`` with ``umount`` through command_wrapper; a busy mount fails naming
    the processes that hold it."""
    if not is_mounted(path):
        return
    try:
        b.host_command(ctx, f"umount {shlex.quote(path)}", f"Error unmounting {path}",
                       cancel=_quiet_token())
    except StepError as e:
        if not is_mounted(path):
            return
        from .mounts import holders

        who = holders(path)
        raise MountBusy(f"{e}" + (f"; held by {', '.join(who)}" if who else "")
                        + "; stop those processes, then run kiln cleanup") from e


def _report_cleanup(ctx, undo) -> None:
    try:
        undo(ctx)
    except (StepError, MountBusy) as e:
        ctx.ui.error(f"{e}" if "kiln cleanup" in str(e) else f"{e}; `kiln cleanup` will retry")
    except Exception as e:  # noqa: BLE001 - a cleanup reports and goes on
        _cleanup_error(ctx, "cleaning up", e)


class MountExtraStep(ChrootStep):
    title = "Mount chroot filesystems"

    def __init__(self, build: _ChrootBuild):
        super().__init__(build)
        self.mounted: list[tuple[str, int | None]] = []

    def run(self, ctx) -> None:
        b = self.b
        root = b.mount_path
        for fstype, device, inner in self.c.mounts():
            if fstype == "binfmt_misc" and not os.path.isdir("/proc/sys/fs/binfmt_misc"):
                continue  # this host's kernel has none to offer
            try:
                target = makedirs_in_root(root, inner)
            except OSError as e:
                raise StepError(f"Error creating mount directory {inner} in the chroot: "
                                f"{e.strerror or e}") from e
            if os.path.realpath(target) != target or not target.startswith(
                    os.path.realpath(root) + os.sep):
                raise StepError(f"{inner} resolves outside the chroot ({target}); not mounting")
            entry = _record(ctx, "chroot-mount", target, {"device": device, "type": fstype})
            if fstype == "bind":
                command = f"mount --bind {shlex.quote(device)} {shlex.quote(target)}"
            else:
                command = f"mount -t {shlex.quote(fstype)} {shlex.quote(device)} " \
                          f"{shlex.quote(target)}"
            ctx.ui.say(f"Mounting: {inner}")
            try:
                b.host_command(ctx, command, f"Error mounting {inner}")
            except BaseException:
                if is_mounted(target):
                    self.mounted.append((target, entry))
                else:
                    _release(ctx, entry)
                raise
            self.mounted.append((target, entry))

    def undo(self, ctx) -> None:
        while self.mounted:
            target, entry = self.mounted[-1]
            # anything mounted below it meanwhile (a provisioner's own mounts) goes first
            for inner in mounted_under(target):
                unmount_via(ctx, self.b, inner)
            _release(ctx, entry)
            self.mounted.pop()

    def cleanup(self, ctx) -> None:
        _report_cleanup(ctx, self.undo)


class CopyFilesStep(ChrootStep):
    """copy_files: this host's files (resolv.conf) into the tree for the provisioners.

    What the image had at that path (often a symlink such as resolv.conf -> the systemd
    stub) is moved aside and put back afterwards, so the AMI keeps its own."""

    title = "Copy files"

    def __init__(self, build: _ChrootBuild):
        super().__init__(build)
        self.copied: list[tuple[str, str]] = []  # (host path in the tree, what it replaced)

    def run(self, ctx) -> None:
        b = self.b
        for path in self.c.files_to_copy():
            ctx.ui.say(f"Copying {path} into the chroot")
            if not os.path.isfile(path):
                raise StepError(f"copy_files: {path} is not a file on this host")
            try:
                parent = makedirs_in_root(b.mount_path, os.path.dirname(path) or "/")
                dest = os.path.join(parent, os.path.basename(path))
                saved = ""
                if os.path.lexists(dest):
                    if os.path.isdir(dest) and not os.path.islink(dest):
                        raise StepError(f"copy_files: {path} is a directory in the image")
                    saved = os.path.join(parent, f".kiln-saved-{uuid.uuid4().hex[:12]}-"
                                                 f"{os.path.basename(path)}")
                    os.replace(dest, saved)
                self.copied.append((dest, saved))
                fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                             | os.O_CLOEXEC, 0o644)
                with os.fdopen(fd, "wb") as out, open(path, "rb") as src:
                    shutil.copyfileobj(src, out)
            except OSError as e:
                raise StepError(f"Error copying {path} into the chroot: "
                                f"{e.strerror or e}") from e

    def undo(self, ctx) -> None:
        while self.copied:
            dest, saved = self.copied.pop()
            try:
                os.unlink(dest)
            except FileNotFoundError:
                pass
            if saved:
                os.replace(saved, dest)

    def cleanup(self, ctx) -> None:
        _report_cleanup(ctx, self.undo)


class ChrootConnectStep(ChrootStep):
    title = "Enter chroot"

    def run(self, ctx) -> None:
        b = self.b
        ctx.communicator = ChrootCommunicator(b.mount_path, lambda cmd: b.wrap(ctx, cmd),
                                              ledger=ctx.ledger)
        ctx.access_hint = ctx.communicator.access_hint()
        ctx.generated_data["Device"] = b.device
        ctx.generated_data["MountPath"] = b.mount_path


class EarlyCleanupStep(Step):
    """After the provisioners: copied files out, unmount (reverse order), detach."""

    title = "Unmount and detach"

    def __init__(self, undo_steps: list[Any]):
        self.undo_steps = undo_steps

    def run(self, ctx) -> None:
        for step in self.undo_steps:
            try:
                step.undo(ctx)
            except MountBusy as e:
                raise StepError(str(e)) from e
