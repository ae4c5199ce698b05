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
    ami_artifact,
    registered_ami_steps,
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
        steps += registered_ami_steps(ctx, b, [RegisterAmiStep(b, st)])
        return steps

    def artifact(self, ctx) -> Artifact | None:
        return ami_artifact(ctx, self._build, self.config, GENERATED_KEYS,
                            builder_id=INSTANCE_BUILDER_ID)

    def communicator_config(self):
        return self.config


__all__ = ["AmazonInstanceBuilder", "AmazonInstanceConfig"]
