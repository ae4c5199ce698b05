"""The amazon-instance builder: an instance from a source AMI, provisioned, bundled by the
EC2 AMI tools on the instance, uploaded to S3 and registered as an instance-store AMI.

Every step before the bundle and after the registration is amazon-ebs's (steps_*.py); the
bundle steps are in steps_bundle.py, the configuration in instance_config.py."""

from __future__ import annotations

from typing import Any

from ...sdk.plugin import PROVISION, Artifact, Builder
from .config import GENERATED_KEYS
from .instance_config import INSTANCE_BUILDER_ID, AmazonInstanceConfig
from .steps_base import _Build
from .steps_bundle import (
    BundleState,
    BundleVolumeStep,
    RegisterAmiStep,
    RemoveX509Step,
    UploadBundleStep,
    UploadX509Step,
)
from .steps_image import (
    AmiArtifact,
    CreateTagsStep,
    DeprecateStep,
    DeregisterStep,
    ModifyAmiStep,
    RegionCopyStep,
    WaitImageStep,
)
from .steps_instance import ClearTemporaryKeysStep, ConnectStep, RunInstanceStep, WaitInstanceStep
from .steps_network import (
    KeyPairStep,
    NetworkStep,
    PreValidateStep,
    SecurityGroupStep,
    SourceAmiStep,
)


class InstanceSourceAmiStep(SourceAmiStep):
    needs_ebs_root = False


class AmazonInstanceBuilder(Builder):
    type_name = "amazon-instance"
    builder_id = INSTANCE_BUILDER_ID
    Config = AmazonInstanceConfig
    generated_keys = GENERATED_KEYS
    deferred_keys = ("ami_name", "ami_description", "tags", "run_tags", "snapshot_tags",
                     "spot_tags", "fleet_tags", "bundle_prefix", "bundle_vol_command",
                     "bundle_upload_command")

    config: AmazonInstanceConfig

    def __init__(self, config: AmazonInstanceConfig):
        super().__init__(config)
        self._build: _Build | None = None

    @classmethod
    def template_funcs(cls) -> dict[str, Any]:
        from .funcs import amazon_extra_funcs

        return amazon_extra_funcs()

    def prepare(self, pctx) -> list[str]:
        from .ebs import AmazonEBSBuilder

        warnings = AmazonEBSBuilder.prepare(self, pctx)  # type: ignore[arg-type]
        c = self.config
        if c.encrypt_boot:
            warnings.append("encrypt_boot makes an encrypted EBS copy; an instance-store AMI "
                            "cannot be copied encrypted, so the copy will fail")
        return warnings

    def steps(self, ctx) -> list:
        c = self.config
        b = _Build(c)
        self._build = b
        st = BundleState()
        steps: list = [PreValidateStep(b), InstanceSourceAmiStep(b), NetworkStep(b)]
        if getattr(ctx.options, "preflight", True):  # -preflight=false skips it
            from .iam.preflight import PreflightStep

            steps.insert(0, PreflightStep(b))
        steps += [KeyPairStep(b), SecurityGroupStep(b), RunInstanceStep(b), WaitInstanceStep(b),
                  ConnectStep(b), PROVISION]
        if c.ssh_clear_authorized_keys:
            steps.append(ClearTemporaryKeysStep(b))
        steps += [UploadX509Step(b, st), BundleVolumeStep(b, st), UploadBundleStep(b, st),
                  RemoveX509Step(b, st)]
        if c.force_deregister or getattr(ctx.options, "force", False):
            steps.append(DeregisterStep(b))
        steps += [RegisterAmiStep(b, st), WaitImageStep(b)]
        if c.copy_regions() or c.encrypt_boot:
            steps.append(RegionCopyStep(b))
        if (c.ami_users or c.ami_groups or c.ami_org_arns or c.ami_ou_arns or c.ami_product_codes
                or c.snapshot_users or c.snapshot_groups or c.imds_support):
            steps.append(ModifyAmiStep(b))
        if c.deprecate_at or (c.deregistration_protection is not None
                              and c.deregistration_protection.enabled):
            steps.append(DeprecateStep(b))
        if c.all_tags("tag") or c.all_tags("snapshot_tag"):
            steps.append(CreateTagsStep(b))
        return steps

    def artifact(self, ctx) -> Artifact | None:
        b = self._build
        if b is None or not b.amis:
            if b is not None:
                b.done = True
            return None
        b.done = True
        data = {k: v for k, v in ctx.generated_data.items()
                if k not in ("SSHPrivateKey", "Password", "WinRMPassword")}
        for k in GENERATED_KEYS:
            data.setdefault(k, b.info.get(k, ""))
        return AmiArtifact(b.amis, self.config, {"generated_data": data},
                           builder_id=INSTANCE_BUILDER_ID)

    def communicator_config(self):
        return self.config


__all__ = ["AmazonInstanceBuilder", "AmazonInstanceConfig"]
