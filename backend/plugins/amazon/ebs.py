"""The amazon-ebs builder: an instance from a source AMI, provisioned, saved as a new AMI
(the steps are in steps_*.py, the configuration in config.py)."""

from __future__ import annotations

import os
from typing import Any

from ...sdk.config import ConfigProblems
from ...sdk.plugin import PROVISION, Artifact, Builder
from .config import BUILDER_ID, GENERATED_KEYS, AmazonEBSConfig
from .steps_base import _Build
from .steps_image import (
    AmiArtifact,
    CreateImageStep,
    ami_artifact,
    registered_ami_steps,
)
from .steps_instance import (
    ClearTemporaryKeysStep,
    ConnectStep,
    ModifyInstanceStep,
    RunInstanceStep,
    StopInstanceStep,
    WaitInstanceStep,
)
from .steps_network import (
    KeyPairStep,
    NetworkStep,
    PreValidateStep,
    SecurityGroupStep,
    SourceAmiStep,
)


class AmazonEBSBuilder(Builder):
    type_name = "amazon-ebs"
    builder_id = BUILDER_ID
    Config = AmazonEBSConfig
    generated_keys = GENERATED_KEYS
    deferred_keys = ("ami_name", "ami_description", "tags", "run_tags", "run_volume_tags",
                     "snapshot_tags", "spot_tags", "fleet_tags")

    config: AmazonEBSConfig

    def __init__(self, config: AmazonEBSConfig):
        super().__init__(config)
        self._build: _Build | None = None

    @classmethod
    def template_funcs(cls) -> dict[str, Any]:
        from .funcs import amazon_extra_funcs

        return amazon_extra_funcs()

    def prepare(self, pctx) -> list[str]:
        c = self.config
        problems = []
        warnings = []
        if c.user_data_file:
            path = pctx.resolve(c.user_data_file)
            if not os.path.isfile(path):
                problems.append(("user_data_file", f"user_data_file {c.user_data_file} does not "
                                 "exist"))
        if c.ssh_private_key_file:
            path = pctx.resolve(c.ssh_private_key_file)
            if not os.path.isfile(path):
                problems.append(("ssh_private_key_file", f"ssh_private_key_file "
                                 f"{c.ssh_private_key_file} does not exist"))
        if problems:
            raise ConfigProblems(problems)
        if c.communicator_type() == "winrm":
            warnings.append("the winrm communicator is not supported by Kiln; this build will "
                            "stop before launching an instance")
        if c.ssh_interface == "session_manager":
            warnings.append('ssh_interface "session_manager" is not supported by Kiln')
        if c.spot_price_auto_product:
            warnings.append("spot_price_auto_product is deprecated and ignored")
        if c.temporary_security_group_source_cidrs and (
                c.security_groups() or (c.security_group_filter
                                        and c.security_group_filter.filters)):
            warnings.append("temporary_security_group_source_cidrs is ignored: the build uses "
                            "the given security groups")
        if c.mfa_code:
            warnings.append("mfa_code is ignored by Kiln; use credentials from an MFA session")
        return warnings

    def steps(self, ctx) -> list:
        c = self.config
        b = _Build(c)
        self._build = b
        steps: list = [PreValidateStep(b), SourceAmiStep(b), NetworkStep(b)]
        if getattr(ctx.options, "preflight", True):  # -preflight=false skips it
            from .iam.preflight import PreflightStep

            steps.insert(0, PreflightStep(b))
        if c.communicator_type() != "none" or c.ssh_keypair_name:
            steps.append(KeyPairStep(b))
        steps += [SecurityGroupStep(b), RunInstanceStep(b), WaitInstanceStep(b), ConnectStep(b),
                  PROVISION]
        if c.ssh_clear_authorized_keys and c.communicator_type() == "ssh":
            steps.append(ClearTemporaryKeysStep(b))
        if c.skip_create_ami:
            return steps
        steps.append(StopInstanceStep(b))
        if c.ena_support is not None or c.sriov_support:
            steps.append(ModifyInstanceStep(b))
        steps += registered_ami_steps(ctx, b, [CreateImageStep(b)])
        return steps

    def artifact(self, ctx) -> Artifact | None:
        return ami_artifact(ctx, self._build, self.config, GENERATED_KEYS)

    def communicator_config(self):
        return self.config


__all__ = ["AmazonEBSBuilder", "AmazonEBSConfig", "AmiArtifact"]
