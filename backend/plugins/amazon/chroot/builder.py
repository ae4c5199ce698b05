"""The amazon-chroot builder: which steps, in which order (steps.py), and its artifact."""

from __future__ import annotations

from typing import Any

from ....sdk.plugin import PROVISION, Artifact, Builder
from ..config import GENERATED_KEYS
from ..steps_image import ami_artifact, registered_ami_steps
from ..steps_network import SourceAmiStep
from .config import BUILDER_ID, AmazonChrootConfig
from .image import RegisterStep, SnapshotStep
from .steps import (
    AttachVolumeStep,
    CheckRootDeviceStep,
    ChrootConnectStep,
    CopyFilesStep,
    CreateVolumeStep,
    EarlyCleanupStep,
    InstanceInfoStep,
    MountCommandsStep,
    MountDeviceStep,
    MountExtraStep,
    PrepareDeviceStep,
    PrevalidateStep,
    _ChrootBuild,
)

CHROOT_KEYS = GENERATED_KEYS + ("Device", "MountPath")


class AmazonChrootBuilder(Builder):
    type_name = "amazon-chroot"
    builder_id = BUILDER_ID
    Config = AmazonChrootConfig
    generated_keys = CHROOT_KEYS
    deferred_keys = ("ami_name", "ami_description", "tags", "snapshot_tags", "root_volume_tags",
                     "command_wrapper", "pre_mount_commands", "post_mount_commands",
                     "mount_path")

    config: AmazonChrootConfig

    def __init__(self, config: AmazonChrootConfig):
        super().__init__(config)
        self._build: _ChrootBuild | None = None

    @classmethod
    def template_funcs(cls) -> dict[str, Any]:
        from ..funcs import amazon_extra_funcs

        return amazon_extra_funcs()

    def prepare(self, pctx) -> list[str]:
        c = self.config
        warnings = []
        if c.from_scratch and (c.source_ami or (c.source_ami_filter is not None
                                                and not c.source_ami_filter.empty())):
            warnings.append("source_ami and source_ami_filter are unused when from_scratch "
                            "is true")
        if not c.from_scratch and c.ami_block_device_mappings and c.root_device_name:
            warnings.append("ami_block_device_mappings replace the source image's mappings "
                            "entirely")
        if c.mfa_code:
            warnings.append("mfa_code is ignored by Kiln; use credentials from an MFA session")
        return warnings

    def steps(self, ctx) -> list:
        c = self.config
        b = _ChrootBuild(c)
        self._build = b
        steps: list = [PrevalidateStep(b), InstanceInfoStep(b)]
        if getattr(ctx.options, "preflight", True):
            from ..iam.preflight import PreflightStep

            steps.insert(0, PreflightStep(b))
        if not c.from_scratch:
            steps += [SourceAmiStep(b), CheckRootDeviceStep(b)]
        attach = AttachVolumeStep(b)
        mount = MountDeviceStep(b)
        extra = MountExtraStep(b)
        copy = CopyFilesStep(b)
        steps += [PrepareDeviceStep(b), CreateVolumeStep(b), attach]
        if c.pre_mount_commands:
            steps.append(MountCommandsStep(b, "pre"))
        steps.append(mount)
        if c.post_mount_commands:
            steps.append(MountCommandsStep(b, "post"))
        steps += [extra, copy, ChrootConnectStep(b), PROVISION,
                  EarlyCleanupStep([copy, extra, mount, attach]), SnapshotStep(b)]
        steps += registered_ami_steps(ctx, b, [RegisterStep(b)])
        return steps

    def artifact(self, ctx) -> Artifact | None:
        return ami_artifact(ctx, self._build, self.config, CHROOT_KEYS, builder_id=BUILDER_ID)


__all__ = ["AmazonChrootBuilder", "AmazonChrootConfig"]
