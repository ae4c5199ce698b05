"""The amazon-chroot image steps: the volume's snapshot and the AMI registered from it
(what follows registration is amazon-ebs's: steps_image.py)."""

from __future__ import annotations

from typing import Any

from ....sdk.plugin import StepError
from .. import common as aws
from ..steps_base import _cleanup_error, _record, _release, _update
from ..steps_image import CreateImageStep
from .config import AmazonChrootConfig
from .steps import ChrootStep, _ChrootBuild


class SnapshotStep(ChrootStep):
    title = "Snapshot volume"

    def __init__(self, build: _ChrootBuild):
        super().__init__(build)
        self.entry: int | None = None

    def run(self, ctx) -> None:
        b = self.b
        access = b.access
        assert access is not None
        ctx.ui.say("Creating snapshot...")
        description = f"Packer: {b.ami_name or self.c.ami_name}"
        self.entry = _record(ctx, "aws-chroot-snapshot", "(creating)", access.ledger_data(
            volume_id=b.volume_id))
        try:
            snap = b.ec2.create_snapshot(
                VolumeId=b.volume_id, Description=description,
                TagSpecifications=[aws.tag_spec("snapshot", aws.kiln_tags(ctx))])
        except Exception as e:
            if not aws.is_aws_error(e):
                raise
            if aws.answered(e):
                _release(ctx, self.entry)
                self.entry = None
            raise StepError(f"Error creating snapshot: {aws.aws_error(e)}") from e
        b.snapshot_id = snap["SnapshotId"]
        _update(ctx, self.entry, ident=b.snapshot_id, data=access.ledger_data(
            snapshot_id=b.snapshot_id))
        ctx.ui.say(f"Snapshot ID: {b.snapshot_id}")

        def completed() -> bool:
            snaps = aws.call("Error waiting for snapshot", b.ec2.describe_snapshots,
                             SnapshotIds=[b.snapshot_id]).get("Snapshots") or []
            state = snaps[0].get("State", "") if snaps else ""
            if state == "error":
                raise StepError(f"snapshot {b.snapshot_id} failed")
            return state == "completed"

        aws.wait_for(ctx, f"Waiting for snapshot {b.snapshot_id}", completed,
                     b.polling(2, 600))

    def cleanup(self, ctx) -> None:
        b = self.b
        if self.entry is None:
            return
        if b.done and b.amis:  # the AMI owns it now
            _release(ctx, self.entry)
            self.entry = None
            return
        if not b.snapshot_id:
            return
        ctx.ui.say(f"Removing snapshot {b.snapshot_id} since we cancelled or errored...")
        try:
            aws.delete_snapshot(b.ec2, b.snapshot_id)
        except Exception as e:  # noqa: BLE001 - kiln cleanup retries
            _cleanup_error(ctx, f"deleting snapshot {b.snapshot_id}", e)
            return
        _release(ctx, self.entry)
        self.entry = None


def block_device_mappings(c: AmazonChrootConfig, image: dict[str, Any], snapshot_id: str,
                          ) -> tuple[str, list[dict[str, Any]]]:
    """(root device name, mappings) of the new AMI: the source's (or the template's
    ami_block_device_mappings) with the new snapshot as the root volume."""
    if c.from_scratch or c.ami_block_device_mappings:
        mappings = [d.api() for d in c.ami_block_device_mappings]
        root = c.root_device_name
        fresh = True
    else:
        mappings = [dict(m) for m in image.get("BlockDeviceMappings") or []]
        root = image.get("RootDeviceName", "")
        fresh = False
    out = []
    for m in mappings:
        m = dict(m)
        ebs = dict(m.get("Ebs") or {}) if "Ebs" in m else None
        if m.get("DeviceName") == root:
            ebs = ebs or {}
            ebs["SnapshotId"] = snapshot_id
            size = int(c.root_volume_size or 0)
            if size and (fresh or size > int(ebs.get("VolumeSize") or 0)):
                ebs["VolumeSize"] = size
        if ebs is not None:
            ebs.pop("Encrypted", None)  # follows the snapshot's own encryption
            m["Ebs"] = ebs
        out.append(m)
    return root, out


class RegisterStep(CreateImageStep):
    title = "Register AMI"

    b: _ChrootBuild

    def run(self, ctx) -> None:
        b = self.b
        c: AmazonChrootConfig = self.c  # type: ignore[assignment]
        name = self.free_name(ctx)
        root, mappings = block_device_mappings(c, b.source_image, b.snapshot_id)
        image = b.source_image
        params: dict[str, Any] = {
            "Name": name, "RootDeviceName": root, "BlockDeviceMappings": mappings,
            "Architecture": (image.get("Architecture") if not c.from_scratch
                             and not c.ami_architecture else c.architecture()) or "x86_64",
            "VirtualizationType": c.ami_virtualization_type
            or image.get("VirtualizationType") or "hvm",
        }
        description = b.render(ctx, c.ami_description, "ami_description")
        if description:
            params["Description"] = description
        if c.sriov_support:
            params["SriovNetSupport"] = "simple"
        if c.ena_support:
            params["EnaSupport"] = True
        for key, api in (("boot_mode", "BootMode"), ("uefi_data", "UefiData"),
                         ("tpm_support", "TpmSupport"), ("imds_support", "ImdsSupport")):
            if getattr(c, key):
                params[api] = getattr(c, key)
        if params["VirtualizationType"] != "hvm" and not c.from_scratch:
            for key in ("KernelId", "RamdiskId"):
                if image.get(key):
                    params[key] = image[key]
        ctx.ui.say("Registering the AMI...")
        ami_id = self.make(ctx, name, b.ec2.register_image, params, "Error registering AMI")
        self.ami.snap_entries.setdefault(b.snapshot_id, None)
        aws.call(f"Error tagging AMI {ami_id}", b.ec2.create_tags, Resources=[ami_id],
                 Tags=aws.tag_list(aws.kiln_tags(ctx)))
        self.keep(ctx, ami_id)
