"""``kiln cleanup`` for what a killed chroot build left: mounts, the attachment, the volume.

``kiln cleanup`` takes a run's records oldest first, so the volume's reaper does it all in
the only safe order (everything mounted under its mount path, deepest first; detach; wait;
delete); the attachment's and the mounts' reapers then find nothing left, or do their part
when the volume record is gone. A mount still in use is not forced: the error names the
processes holding it.
"""

from __future__ import annotations

import time
from typing import Any

from .mounts import unmount_tree


def _detach(ec2: Any, volume_id: str, instance_id: str, timeout: float = 300.0) -> None:
    from .. import common as aws

    try:
        vols = ec2.describe_volumes(VolumeIds=[volume_id]).get("Volumes") or []
    except Exception as e:
        if aws.gone(e):
            return
        raise
    if not vols:
        return
    attached = [a for a in vols[0].get("Attachments") or []
                if not instance_id or a.get("InstanceId") == instance_id]
    if not attached:
        return
    try:
        ec2.detach_volume(VolumeId=volume_id, InstanceId=attached[0]["InstanceId"])
    except Exception as e:
        if not aws.gone(e) and aws.error_code(e) != "IncorrectState":
            raise
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        vols = ec2.describe_volumes(VolumeIds=[volume_id]).get("Volumes") or []
        if not vols or (vols[0].get("State") == "available"
                        and not vols[0].get("Attachments")):
            return
        time.sleep(1.0)
    raise RuntimeError(f"volume {volume_id} did not detach within {timeout:.0f}s")


def reap(entry: Any) -> None:
    """The reaper of the aws-chroot-volume, aws-volume-attachment, aws-chroot-snapshot and
    chroot-mount kinds."""
    from .. import common as aws

    data = dict(entry.data or {})
    if entry.kind == "chroot-mount":
        unmount_tree(entry.ident)
        return
    if entry.kind == "aws-chroot-snapshot":
        _reap_snapshot(entry, data)
        return
    if data.get("mount_path"):
        unmount_tree(data["mount_path"])
    volume_id = data.get("volume_id") or (entry.ident if entry.ident.startswith("vol-") else "")
    ec2 = aws.reap_client(data)
    if not volume_id:
        if entry.kind != "aws-chroot-volume":
            return
        found = ec2.describe_volumes(Filters=[
            {"Name": f"tag:{aws.RUN_TAG}", "Values": [entry.run_id]},
            {"Name": f"tag:{aws.BUILD_TAG}", "Values": [entry.build]}]).get("Volumes") or []
        ids = [v["VolumeId"] for v in found]
    else:
        ids = [volume_id]
    for vid in ids:
        _detach(ec2, vid, data.get("instance_id", ""))
        if entry.kind == "aws-chroot-volume":
            try:
                ec2.delete_volume(VolumeId=vid)
            except Exception as e:
                if not aws.gone(e):
                    raise


def _reap_snapshot(entry: Any, data: dict[str, Any]) -> None:
    """The snapshot by its id, or (when the create call never answered) by the run's tags."""
    from .. import common as aws

    ec2 = aws.reap_client(data)
    if data.get("snapshot_id"):
        ids = [data["snapshot_id"]]
    else:
        found = ec2.describe_snapshots(OwnerIds=["self"], Filters=[
            {"Name": f"tag:{aws.RUN_TAG}", "Values": [entry.run_id]},
            {"Name": f"tag:{aws.BUILD_TAG}", "Values": [entry.build]}]).get("Snapshots") or []
        ids = [s["SnapshotId"] for s in found]
    for snap in ids:
        aws.delete_snapshot(ec2, snap)
