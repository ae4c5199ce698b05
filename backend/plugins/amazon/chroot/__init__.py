"""The amazon-chroot builder: a volume made from the source AMI's root snapshot is attached
to the EC2 instance Kiln runs on, mounted, provisioned through a chroot, snapshotted and
registered as a new AMI (config.py, imds.py, mounts.py, communicator.py, steps.py,
builder.py)."""
