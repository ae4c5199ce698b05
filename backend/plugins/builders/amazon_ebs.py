"""The amazon-ebs builder: launch an EC2 instance, provision it, make an AMI of it.

The steps follow Packer's amazon-ebs builder in order, each a dashboard stage
with its own cleanup: check access, find the source AMI and the network,
create a temporary key pair and security group, launch the instance and wait
for it, connect, provision, stop it, (force-)deregister old AMIs, create the
AMI and wait for it, copy it to other regions, set permissions and tags.
Cleanups run in reverse on success, failure and cancel: the instance is
terminated, the temporary group and key pair deleted, and an AMI that was not
finished is deregistered with its snapshots.

Every resource is tagged ``kiln:run``/``kiln:build`` and recorded in the
resource ledger before it is created, so ``kiln cleanup`` finds what a killed
run left (see :func:`reap`). boto3 is imported only when a build runs.
"""

from __future__ import annotations

import ipaddress
import os
import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from backend.plugins.base import PROVISION, Artifact, Builder, Step, StepError
from backend.plugins.communicators.config import CommunicatorConfig
from backend.template.decode import ConfigProblems, Deferred, Duration, opt

from . import amazon_common as aws
from .amazon_common import reap  # noqa: F401 - the ledger's REAPERS name amazon_ebs:reap

BUILDER_ID = "mitchellh.amazonebs"

#: data the builder gives provisioners and post-processors (``{{ build `SourceAMIName` }}``)
GENERATED_KEYS = ("SourceAMIName", "BuildRegion", "SourceAMI", "SourceAMICreationDate",
                  "SourceAMIOwner", "SourceAMIOwnerName")

#: what AWS accepts in an AMI name (Go's ``\w`` is ASCII-only, so is ours)
AMI_NAME_RE = re.compile(r"^[A-Za-z0-9_()\[\] ./\-'@]+$")

SSH_INTERFACES = ("public_ip", "private_ip", "public_dns", "private_dns", "ipv6",
                  "session_manager")
VOLUME_TYPES = ("standard", "io1", "io2", "gp2", "gp3", "sc1", "st1")


# --------------------------------------------------------------------------- configuration


@dataclass
class AmiFilter:
    filters: dict[str, Any] = opt(default_factory=dict, doc="EC2 DescribeImages filters")
    owners: list[str] = opt(default_factory=list, doc="account ids or aliases (self, amazon...)")
    most_recent: bool = opt(False, doc="pick the newest of several matches")
    include_deprecated: bool = opt(False, doc="also match deprecated AMIs")

    def empty(self) -> bool:
        return not self.filters and not self.owners


@dataclass
class ResourceFilter:
    filters: dict[str, Any] = opt(default_factory=dict)


@dataclass
class SubnetFilter:
    filters: dict[str, Any] = opt(default_factory=dict)
    most_free: bool = opt(False, doc="of several subnets, the one with most free addresses")
    random: bool = opt(False, doc="of several subnets, any one")


@dataclass
class BlockDevice:
    device_name: str = opt("", doc="e.g. /dev/sda1")
    volume_size: int = opt(0, doc="GiB")
    volume_type: str = opt("", doc="gp2, gp3, io1, io2, st1, sc1, standard")
    iops: int = opt(0)
    throughput: int = opt(0, doc="MiB/s, gp3 only")
    delete_on_termination: bool = opt(False)
    encrypted: bool | None = opt(None)
    kms_key_id: str = opt("")
    snapshot_id: str = opt("")
    virtual_name: str = opt("", doc="ephemeral0...")
    no_device: bool = opt(False, doc="suppress this device of the AMI")

    def check(self) -> None:
        problems = []
        if not self.device_name:
            problems.append(("device_name", "each block device mapping needs a device_name"))
        if self.volume_type and self.volume_type not in VOLUME_TYPES:
            problems.append(("volume_type", f'volume_type "{self.volume_type}" is not one of '
                             + ", ".join(VOLUME_TYPES)))
        if self.iops and self.volume_type not in ("io1", "io2", "gp3"):
            problems.append(("iops", "iops can only be set for io1, io2 and gp3 volumes"))
        if self.throughput and self.volume_type != "gp3":
            problems.append(("throughput", "throughput can only be set for gp3 volumes"))
        if self.throughput and not 125 <= self.throughput <= 1000:
            problems.append(("throughput", "throughput must be between 125 and 1000 MiB/s"))
        if self.kms_key_id and self.encrypted is False:
            problems.append(("kms_key_id", "kms_key_id needs encrypted to be true"))
        if problems:
            raise ConfigProblems(problems)

    def api(self) -> dict[str, Any]:
        m: dict[str, Any] = {"DeviceName": self.device_name}
        if self.no_device:
            m["NoDevice"] = ""
            return m
        if self.virtual_name.startswith("ephemeral"):
            m["VirtualName"] = self.virtual_name
            return m
        ebs: dict[str, Any] = {"DeleteOnTermination": bool(self.delete_on_termination)}
        if self.volume_type:
            ebs["VolumeType"] = self.volume_type
        if self.volume_size:
            ebs["VolumeSize"] = int(self.volume_size)
        if self.iops:
            ebs["Iops"] = int(self.iops)
        if self.throughput:
            ebs["Throughput"] = int(self.throughput)
        if self.snapshot_id:
            ebs["SnapshotId"] = self.snapshot_id
        if self.encrypted is not None:
            ebs["Encrypted"] = bool(self.encrypted)
        if self.kms_key_id:
            ebs["KmsKeyId"] = self.kms_key_id
        m["Ebs"] = ebs
        return m


@dataclass
class MetadataOptions:
    http_endpoint: str = opt("", doc="enabled (default) or disabled")
    http_tokens: str = opt("", doc="optional or required (IMDSv2)")
    http_put_response_hop_limit: int = opt(0, doc="1-64")
    instance_metadata_tags: str = opt("", doc="enabled or disabled")

    def check(self) -> None:
        problems = []
        if self.http_endpoint not in ("", "enabled", "disabled"):
            problems.append(("http_endpoint", 'http_endpoint must be "enabled" or "disabled"'))
        if self.http_tokens not in ("", "optional", "required"):
            problems.append(("http_tokens", 'http_tokens must be "optional" or "required"'))
        if self.http_put_response_hop_limit and not 1 <= self.http_put_response_hop_limit <= 64:
            problems.append(("http_put_response_hop_limit",
                             "http_put_response_hop_limit must be between 1 and 64"))
        if self.instance_metadata_tags not in ("", "enabled", "disabled"):
            problems.append(("instance_metadata_tags",
                             'instance_metadata_tags must be "enabled" or "disabled"'))
        if problems:
            raise ConfigProblems(problems)

    def api(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.http_endpoint:
            out["HttpEndpoint"] = self.http_endpoint
        if self.http_tokens:
            out["HttpTokens"] = self.http_tokens
        if self.http_put_response_hop_limit:
            out["HttpPutResponseHopLimit"] = int(self.http_put_response_hop_limit)
        if self.instance_metadata_tags:
            out["InstanceMetadataTags"] = self.instance_metadata_tags
        return out


@dataclass
class Polling:
    delay_seconds: int = opt(0, doc="seconds between polls of a waiter")
    max_attempts: int = opt(0, doc="polls before a waiter gives up")


@dataclass
class KeyValue:
    key: str = opt("")
    value: Deferred = opt(Deferred(""))


@dataclass
class Placement:
    host_resource_group_arn: str = opt("")
    host_id: str = opt("")
    tenancy: str = opt("")
    partition_number: int = opt(0)
    group_name: str = opt("")


@dataclass
class AssumeRole:
    role_arn: str = opt("")
    duration_seconds: int = opt(0)
    external_id: str = opt("")
    policy: str = opt("")
    policy_arns: list[str] = opt(default_factory=list)
    session_name: str = opt("")
    tags: dict[str, str] = opt(default_factory=dict)
    transitive_tag_keys: list[str] = opt(default_factory=list)


@dataclass
class VaultEngine:
    name: str = opt("")
    role_arn: str = opt("")
    ttl: str = opt("")
    engine_name: str = opt("")


@dataclass
class DeregistrationProtection:
    enabled: bool = opt(False)
    with_cooldown: bool = opt(False)


@dataclass
class AwsAccessConfig:
    """How to reach AWS: shared by the amazon-ebs builder and the amazon-ami data source."""

    access_key: str = opt("", secret=True, doc="AWS access key id (else the credential chain)")
    secret_key: str = opt("", secret=True, doc="AWS secret access key")
    token: str = opt("", secret=True, doc="AWS session token")
    profile: str = opt("", doc="profile from the shared credentials/config files")
    shared_credentials_file: str = opt("")
    region: str = opt("", doc="region (else AWS_REGION or the profile's)")
    custom_endpoint_ec2: str = opt("", doc="EC2 endpoint URL (a private endpoint, or moto)")
    insecure_skip_tls_verify: bool = opt(False)
    skip_region_validation: bool = opt(False)
    skip_credential_validation: bool = opt(False)
    skip_metadata_api_check: bool = opt(False)
    decode_authorization_messages: bool = opt(False)
    max_retries: int = opt(0, doc="retries of each AWS call (default 5 attempts)")
    mfa_code: str = opt("", secret=True)
    assume_role: AssumeRole | None = opt(None)
    vault_aws_engine: VaultEngine | None = opt(None)


@dataclass
class AmazonEBSConfig(CommunicatorConfig, AwsAccessConfig):
    aws_polling: Polling | None = opt(None)

    # -- the AMI -------------------------------------------------------------------
    ami_name: Deferred = opt(Deferred(""), doc="name of the AMI; may use {{timestamp}}, "
                             "clean_resource_name and {{.SourceAMIName}}")
    ami_description: Deferred = opt(Deferred(""))
    ami_virtualization_type: str = opt("", doc="hvm or paravirtual")
    ami_users: list[str] = opt(default_factory=list, doc="accounts that may launch the AMI")
    ami_groups: list[str] = opt(default_factory=list, doc='groups that may launch it ("all")')
    ami_org_arns: list[str] = opt(default_factory=list)
    ami_ou_arns: list[str] = opt(default_factory=list)
    ami_product_codes: list[str] = opt(default_factory=list)
    ami_regions: list[str] = opt(default_factory=list, doc="regions to copy the AMI to")
    region_kms_key_ids: dict[str, str] = opt(default_factory=dict)
    skip_save_build_region: bool = opt(False, doc="keep the AMI only in ami_regions")
    snapshot_users: list[str] = opt(default_factory=list)
    snapshot_groups: list[str] = opt(default_factory=list)
    tags: dict[str, Deferred] = opt(default_factory=dict, doc="tags of the AMI")
    tag: list[KeyValue] = opt(default_factory=list)
    snapshot_tags: dict[str, Deferred] = opt(default_factory=dict)
    snapshot_tag: list[KeyValue] = opt(default_factory=list)
    encrypt_boot: bool | None = opt(None)
    kms_key_id: str = opt("")
    force_deregister: bool = opt(False, doc="replace an AMI of the same name")
    force_delete_snapshot: bool = opt(False, doc="with force_deregister, delete its snapshots")
    ena_support: bool | None = opt(None)
    sriov_support: bool = opt(False)
    imds_support: str = opt("", doc='"v2.0" makes the AMI require IMDSv2')
    tpm_support: str = opt("")
    boot_mode: str = opt("")
    uefi_data: str = opt("")
    deprecate_at: str = opt("", doc="RFC 3339 time at which the AMI is deprecated")
    deregistration_protection: DeregistrationProtection | None = opt(None)
    fast_launch: Any = opt(None, doc="Windows fast launch (not supported by Kiln)")
    skip_create_ami: bool = opt(False, doc="provision but make no AMI")
    ami_block_device_mappings: list[BlockDevice] = opt(default_factory=list)
    launch_block_device_mappings: list[BlockDevice] = opt(default_factory=list)

    # -- the source instance -------------------------------------------------------
    source_ami: str = opt("")
    source_ami_filter: AmiFilter | None = opt(None)
    instance_type: str = opt("")
    spot_price: str = opt("", doc='maximum spot price, or "auto"')
    spot_price_auto_product: str = opt("", doc="deprecated; ignored")
    spot_instance_types: list[str] = opt(default_factory=list)
    spot_allocation_strategy: str = opt("")
    spot_tags: dict[str, Deferred] = opt(default_factory=dict)
    spot_tag: list[KeyValue] = opt(default_factory=list)
    fleet_tags: dict[str, Deferred] = opt(default_factory=dict)
    fleet_tag: list[KeyValue] = opt(default_factory=list)
    block_duration_minutes: int = opt(0)
    subnet_id: str = opt("")
    subnet_filter: SubnetFilter | None = opt(None)
    vpc_id: str = opt("")
    vpc_filter: ResourceFilter | None = opt(None)
    security_group_id: str = opt("")
    security_group_ids: list[str] = opt(default_factory=list)
    security_group_filter: ResourceFilter | None = opt(None)
    temporary_security_group_source_cidrs: list[str] = opt(default_factory=list)
    temporary_security_group_source_public_ip: bool = opt(False)
    associate_public_ip_address: bool | None = opt(None)
    iam_instance_profile: str = opt("")
    skip_profile_validation: bool = opt(False)
    temporary_iam_instance_profile_policy_document: Any = opt(None)
    user_data: str = opt("")
    user_data_file: str = opt("")
    availability_zone: str = opt("")
    placement: Placement | None = opt(None)
    tenancy: str = opt("", doc="default, dedicated or host")
    ebs_optimized: bool = opt(False)
    enable_t2_unlimited: bool = opt(False)
    enable_unlimited_credits: bool = opt(False)
    enable_nitro_enclave: bool = opt(False)
    capacity_reservation_preference: str = opt("")
    capacity_reservation_id: str = opt("")
    capacity_reservation_group_arn: str = opt("")
    license_specifications: list[Any] = opt(default_factory=list)
    no_ephemeral: bool = opt(False)
    shutdown_behavior: str = opt("", doc="stop (default) or terminate")
    disable_stop_instance: bool = opt(False, doc="the provisioners stop the instance themselves")
    metadata_options: MetadataOptions | None = opt(None)
    run_tags: dict[str, Deferred] = opt(default_factory=dict, doc="tags of the source instance")
    run_tag: list[KeyValue] = opt(default_factory=list)
    run_volume_tags: dict[str, Deferred] = opt(default_factory=dict)
    run_volume_tag: list[KeyValue] = opt(default_factory=list)
    windows_password_timeout: Duration = opt(Duration(0))
    session_manager_port: int = opt(0)
    pause_before_ssm: Duration = opt(Duration(0))

    def __post_init__(self) -> None:
        # Packer decodes a string into a list by splitting it at commas ("" is no items):
        # templates pass lists through variables, e.g. "ami_regions": "{{user `regions`}}"
        for name in _STRING_LISTS:
            items = getattr(self, name)
            if items:
                setattr(self, name, [part.strip() for item in items for part in str(item).split(",")
                                     if part.strip()])

    def check(self) -> None:
        p: list[tuple[str, str]] = self.communicator_problems()
        ctype = self.communicator_type()
        if ctype not in ("ssh", "none", "winrm"):
            p.append(("communicator", f'the amazon-ebs builder cannot use the "{ctype}" '
                      "communicator; use ssh (default), winrm or none"))
        if ctype == "ssh" and not self.ssh_username:
            p.append(("ssh_username", "an ssh_username must be given (the login user of the "
                      "source AMI, e.g. ubuntu or ec2-user)"))
        if self.ssh_keypair_name and not (self.ssh_private_key_file or self.ssh_agent_auth):
            p.append(("ssh_keypair_name", "ssh_keypair_name needs ssh_private_key_file (the "
                      "private half of that key pair) or ssh_agent_auth"))
        if not self.ami_name and not self.skip_create_ami:
            p.append(("ami_name", "ami_name must be set: the name of the AMI to create"))
        elif self.ami_name and "{{" not in self.ami_name:
            problem = ami_name_problem(self.ami_name)
            if problem:
                p.append(("ami_name", problem))
        if self.ami_virtualization_type not in ("", "hvm", "paravirtual"):
            p.append(("ami_virtualization_type",
                      'ami_virtualization_type must be "hvm" or "paravirtual"'))
        if not self.source_ami and (self.source_ami_filter is None
                                    or self.source_ami_filter.empty()):
            p.append(("source_ami", "a source AMI must be given: set source_ami or "
                      "source_ami_filter"))
        if self.source_ami_filter is not None and not self.source_ami_filter.empty() \
                and not self.source_ami_filter.owners:
            p.append(("source_ami_filter", "For security reasons, your source AMI filter must "
                      "declare an owner. Set source_ami_filter.owners (an account id, self, "
                      "amazon...)"))
        if not self.instance_type and not self.spot_instance_types:
            p.append(("instance_type", "instance_type must be set (e.g. t3.micro)"))
        if self.instance_type and self.spot_instance_types:
            p.append(("spot_instance_types", "instance_type and spot_instance_types cannot both "
                      "be set; use one"))
        if self.spot_price and self.spot_price != "auto":
            try:
                float(self.spot_price)
            except ValueError:
                p.append(("spot_price", f'spot_price must be a price or "auto", not '
                          f'"{self.spot_price}"'))
        if self.spot_instance_types and not self.spot_price:
            p.append(("spot_instance_types", "spot_instance_types needs spot_price (a price "
                      'or "auto")'))
        if self.is_spot() and self.shutdown_behavior == "stop":
            p.append(("shutdown_behavior", 'spot instances must use shutdown_behavior '
                      '"terminate"'))
        if self.is_spot() and (self.ena_support or self.sriov_support):
            p.append(("spot_price", "ena_support and sriov_support need the instance to be "
                      "modified while stopped, which spot instances cannot be"))
        if (self.spot_tags or self.spot_tag) and not self.is_spot():
            p.append(("spot_tags", "spot_tags need spot_price (they tag the spot request)"))
        if self.shutdown_behavior not in ("", "stop", "terminate"):
            p.append(("shutdown_behavior", 'shutdown_behavior must be "stop" or "terminate"'))
        tenancy = self.tenancy or (self.placement.tenancy if self.placement else "")
        if tenancy not in ("", "default", "dedicated", "host"):
            p.append(("tenancy", 'tenancy must be "default", "dedicated" or "host"'))
        if self.tenancy and self.placement is not None and self.placement.tenancy \
                and self.placement.tenancy != self.tenancy:
            p.append(("tenancy", "tenancy and placement.tenancy disagree; set one"))
        if self.user_data and self.user_data_file:
            p.append(("user_data", "only one of user_data and user_data_file may be set"))
        if self.imds_support not in ("", "v2.0"):
            p.append(("imds_support", 'imds_support must be "v2.0" (or left unset)'))
        if self.tpm_support not in ("", "v2.0"):
            p.append(("tpm_support", 'tpm_support must be "v2.0" (or left unset)'))
        if self.boot_mode not in ("", "legacy-bios", "uefi", "uefi-preferred"):
            p.append(("boot_mode", 'boot_mode must be "legacy-bios", "uefi" or "uefi-preferred"'))
        if self.deprecate_at:
            try:
                parse_rfc3339(self.deprecate_at)
            except ValueError:
                p.append(("deprecate_at", f'deprecate_at must be an RFC 3339 time such as '
                          f'"2030-01-02T15:04:05Z", not "{self.deprecate_at}"'))
        if self.kms_key_id and self.encrypt_boot is not True:
            p.append(("kms_key_id", "kms_key_id is only used with encrypt_boot: true"))
        if self.kms_key_id and not valid_kms_key(self.kms_key_id):
            p.append(("kms_key_id", f"{self.kms_key_id!r} is not a KMS key id, alias or ARN"))
        if self.region_kms_key_ids:
            if self.encrypt_boot is False:
                p.append(("region_kms_key_ids", "region_kms_key_ids cannot be used with "
                          "encrypt_boot: false"))
            for r in self.ami_regions:
                if r not in self.region_kms_key_ids:
                    p.append(("region_kms_key_ids", f"ami_regions has {r} but region_kms_key_ids "
                              "has no key for it (each copy region needs one)"))
            for r, key in self.region_kms_key_ids.items():
                if key and not valid_kms_key(key):
                    p.append(("region_kms_key_ids", f"{key!r} (for {r}) is not a KMS key id, "
                              "alias or ARN"))
        if self.skip_save_build_region and not [r for r in self.ami_regions if r != self.region]:
            p.append(("skip_save_build_region", "skip_save_build_region needs another region "
                      "in ami_regions, or no AMI would be left"))
        for cidr in self.temporary_security_group_source_cidrs:
            try:
                ipaddress.ip_network(cidr, strict=False)
            except ValueError:
                p.append(("temporary_security_group_source_cidrs", f"{cidr!r} is not a CIDR "
                          "block such as 203.0.113.0/24"))
        if self.temporary_security_group_source_cidrs and \
                self.temporary_security_group_source_public_ip:
            p.append(("temporary_security_group_source_public_ip",
                      "temporary_security_group_source_cidrs and "
                      "temporary_security_group_source_public_ip cannot both be set"))
        if self.iam_instance_profile and self.temporary_iam_instance_profile_policy_document:
            p.append(("temporary_iam_instance_profile_policy_document",
                      "iam_instance_profile and temporary_iam_instance_profile_policy_document "
                      "cannot both be set"))
        if self.capacity_reservation_preference not in ("", "open", "none"):
            p.append(("capacity_reservation_preference",
                      'capacity_reservation_preference must be "open" or "none"'))
        if self.capacity_reservation_id and self.capacity_reservation_group_arn:
            p.append(("capacity_reservation_id", "capacity_reservation_id and "
                      "capacity_reservation_group_arn cannot both be set"))
        for name in ("tag", "snapshot_tag", "run_tag", "run_volume_tag", "spot_tag", "fleet_tag"):
            for kv in getattr(self, name):
                if not kv.key:
                    p.append((name, f"each {name} block needs a key"))
        if p:
            raise ConfigProblems(p)

    # -- derived -------------------------------------------------------------------
    def is_spot(self) -> bool:
        return bool(self.spot_price) and self.spot_price not in ("0", "0.0")

    def security_groups(self) -> list[str]:
        out = list(self.security_group_ids)
        if self.security_group_id and self.security_group_id not in out:
            out.insert(0, self.security_group_id)
        return out

    def needs_temporary_key(self) -> bool:
        """Packer creates a key pair unless the template brings its own way to log in."""
        if self.communicator_type() not in ("ssh", "winrm"):
            return False
        return not (self.ssh_keypair_name or self.ssh_private_key_file or self.ssh_password
                    or self.ssh_agent_auth)

    def ssh_port_number(self) -> int:
        ctype = self.communicator_type()
        if ctype == "ssh":
            return int(self.ssh_port or 22)
        if ctype == "winrm":
            return int(self.winrm_port or (5986 if self.winrm_use_ssl else 5985))
        return 0

    def all_tags(self, name: str) -> dict[str, str]:
        """A ``*_tags`` map merged with its ``*_tag`` blocks (blocks win)."""
        out = dict(getattr(self, name + "s"))
        for kv in getattr(self, name):
            out[kv.key] = kv.value
        return out

    def copy_regions(self) -> list[str]:
        out: list[str] = []
        for r in self.ami_regions:
            if r and r != self.region and r not in out:
                out.append(r)
        return out


_STRING_LISTS = ("ami_users", "ami_groups", "ami_org_arns", "ami_ou_arns", "ami_product_codes",
                 "ami_regions", "snapshot_users", "snapshot_groups", "spot_instance_types",
                 "security_group_ids", "temporary_security_group_source_cidrs")


def ami_name_problem(name: str) -> str:
    """Why AWS would refuse ``name`` as an AMI name ("" when it is fine)."""
    if not 3 <= len(name) <= 128:
        return f"ami_name must be 3 to 128 characters long; {name!r} has {len(name)}"
    if not AMI_NAME_RE.match(name):
        bad = "".join(sorted({c for c in name if not AMI_NAME_RE.match(c)}))
        return (f"ami_name {name!r} has characters AWS does not allow in AMI names ({bad!r}); "
                "only letters, digits, spaces and ( ) [ ] . / - ' @ _ may be used. "
                "Pipe the name through clean_resource_name to replace the others, "
                "e.g. {{ isotime | clean_resource_name }}")
    return ""


def parse_rfc3339(text: str) -> datetime:
    t = text.strip()
    if t.endswith(("Z", "z")):
        t = t[:-1] + "+00:00"
    value = datetime.fromisoformat(t)
    if value.tzinfo is None:
        raise ValueError("a time zone is required")
    return value


_KMS = re.compile(r"^(arn:aws[\w-]*:kms:[\w-]+:\d{12}:(key|alias)/.+|alias/.+|"
                  r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}|"
                  r"mrk-[0-9a-fA-F]{32})$")


def valid_kms_key(key: str) -> bool:
    return bool(_KMS.match(key))


# --------------------------------------------------------------------------- run-time state


class _Build:
    """What the steps of one build share."""

    def __init__(self, config: AmazonEBSConfig):
        self.config = config
        self.access: aws.AwsAccess | None = None
        self.source_image: dict[str, Any] = {}
        self.info: dict[str, Any] = {}  # BuildRegion, SourceAMI... for rendering
        self.vpc_id = ""
        self.subnet_id = ""
        self.availability_zone = ""
        self.key_name = ""
        self.temporary_key = False  # key_name is a key pair Kiln made (and will delete)
        self.private_key = ""
        self.key_file = ""
        self.group_ids: list[str] = []
        self.instance_id = ""
        self.instance: dict[str, Any] = {}
        self.instance_entry: int | None = None
        self.spot = False
        self.ami_name = ""
        self.ami_name_checked = False
        self.amis: dict[str, str] = {}
        self.snapshots: dict[str, list[str]] = {}
        self.done = False

    @property
    def ec2(self) -> Any:
        assert self.access is not None
        return self.access.ec2()

    def polling(self, default_delay: float, default_attempts: int) -> aws.Polling:
        return aws.Polling.from_config(self.config.aws_polling, default_delay, default_attempts)

    def render(self, ctx, text: str, what: str) -> str:
        return render(ctx, text, self.info, what)

    def render_tags(self, ctx, tags: dict[str, str], what: str) -> dict[str, str]:
        out = {}
        for k, v in tags.items():
            key = self.render(ctx, str(k), f"{what} key")
            out[key] = self.render(ctx, str(v), f"{what} {key!r}")
        return out


class _Ami:
    """An AMI this build made (in one region) and its ledger entries."""

    def __init__(self, region: str, ami_id: str = "", entry: int | None = None, name: str = ""):
        self.region = region
        self.ami_id = ami_id
        self.entry = entry
        self.name = name
        self.snap_entries: dict[str, int | None] = {}
        self.removed = False


def render(ctx, text: str, data: dict[str, Any], what: str) -> str:
    """Render a run-time field with the build's data and Amazon's extra functions."""
    text = str(text or "")
    if "{{" not in text:
        return text
    from backend.template import funcs as F
    from backend.template import gotmpl

    funcs = F.packer_funcs(F.FuncContext(
        user_vars=ctx.user_vars, template_path=ctx.template_path, build_name=ctx.build_name,
        build_type=ctx.build_type, extra=F.amazon_extra_funcs(), build_data_keys=data,
    ))
    try:
        return gotmpl.render_until_stable(text, funcs, data)
    except ValueError as e:
        raise StepError(f"cannot render {what} {text!r}: {e}") from e


def _uses_source_data(text: str) -> bool:
    return "{{" in text and bool(re.search(r"\.(SourceAMI|BuildRegion)|build\s", text))


def _record(ctx, kind: str, ident: str, data: dict[str, Any]) -> int | None:
    if ctx.ledger is None:
        return None
    return ctx.ledger.record(kind, ident, build=ctx.build_name, data=data)


def _update(ctx, entry: int | None, ident: str | None = None,
            data: dict[str, Any] | None = None) -> None:
    if ctx.ledger is not None and entry is not None:
        ctx.ledger.update(entry, ident=ident, data=data)


def _release(ctx, entry: int | None) -> None:
    if ctx.ledger is not None and entry is not None:
        ctx.ledger.release(entry)


def _cleanup_error(ctx, what: str, e: BaseException) -> None:
    msg = aws.aws_error(e) if aws.is_aws_error(e) else str(e)
    ctx.ui.error(f"Error {what}: {msg}; `kiln cleanup` will retry")


class AwsStep(Step):
    def __init__(self, build: _Build):
        self.b = build
        self.c = build.config


# --------------------------------------------------------------------------- steps


class PreValidateStep(AwsStep):
    title = "Check AWS access"

    def run(self, ctx) -> None:
        c = self.c
        if c.communicator_type() == "winrm":
            raise StepError("the winrm communicator is not supported by Kiln: Windows AMIs "
                            "cannot be provisioned yet (use communicator none to only "
                            "re-package the source AMI)")
        if c.ssh_interface == "session_manager":
            raise StepError('ssh_interface "session_manager" needs the AWS Session Manager '
                            "plugin, which Kiln does not drive; use ssh_interface public_ip or "
                            "private_ip")
        if c.vault_aws_engine is not None and (c.vault_aws_engine.name
                                               or c.vault_aws_engine.role_arn):
            raise StepError("vault_aws_engine is not supported by Kiln: it reads credentials "
                            "from HashiCorp Vault; pass them in the environment instead")
        if c.temporary_iam_instance_profile_policy_document:
            raise StepError("temporary_iam_instance_profile_policy_document is not supported by "
                            "Kiln yet: create the instance profile yourself and name it in "
                            "iam_instance_profile")
        if c.fast_launch:
            raise StepError("fast_launch (Windows fast launch) is not supported by Kiln")
        if self.b.access is None:  # the permission preflight may have made it
            self.b.access = aws.AwsAccess(c, secret=ctx.add_secret)
        access = self.b.access
        if not c.region:  # as Packer: AWS_REGION, AWS_DEFAULT_REGION or the profile's
            c.region = access.default_region()
            ctx.ui.say(f"Using region {c.region} (from the environment)")
        if not c.skip_credential_validation:
            access.check_credentials()
        ec2 = access.ec2()
        if not c.skip_region_validation:
            self._check_regions(ctx, ec2)
        if not (c.subnet_id or (c.subnet_filter and c.subnet_filter.filters)
                or c.vpc_id or (c.vpc_filter and c.vpc_filter.filters)):
            ctx.ui.say("Prevalidating any provided VPC information")
            vpcs = default_vpcs(ctx, ec2)
            if vpcs is not None and not vpcs:
                raise StepError(f"there is no default VPC in {c.region}: set subnet_id (or "
                                "subnet_filter / vpc_id) so the instance has a network")
        forced = c.force_deregister or getattr(ctx.options, "force", False)
        if c.skip_create_ami or forced or _uses_source_data(c.ami_name):
            return
        name = self.b.render(ctx, c.ami_name, "ami_name")
        problem = ami_name_problem(name)
        if problem:
            raise StepError(problem)
        ctx.ui.say(f"Prevalidating AMI Name: {name}")
        check_ami_name_free(ec2, name, c.region)
        self.b.ami_name = name
        self.b.ami_name_checked = True

    def _check_regions(self, ctx, ec2) -> None:
        c = self.c
        regions = aws.call("Error listing regions", ec2.describe_regions, AllRegions=True)
        known = {r["RegionName"] for r in regions.get("Regions") or []}
        wanted = [c.region] + list(c.ami_regions) + list(c.region_kms_key_ids)
        bad = sorted({r for r in wanted if r and r not in known})
        if bad:
            raise StepError(f"unknown region(s) {', '.join(bad)} (the endpoint knows "
                            f"{len(known)} regions); check region and ami_regions, or set "
                            "skip_region_validation for a custom endpoint")


def default_vpcs(ctx, ec2) -> list[dict[str, Any]] | None:
    """The default VPCs, or None when the credentials may not look (an optional check:
    Packer's documented policy has no ec2:DescribeVpcs, and RunInstances says the same later)."""
    try:
        return ec2.describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["true"]}]
                                 ).get("Vpcs") or []
    except Exception as e:
        if not aws.is_aws_error(e):
            raise
        if aws.denied(e):
            ctx.ui.say("Not checking for a default VPC: these credentials lack the optional "
                       "ec2:DescribeVpcs permission")
            return None
        raise StepError(f"Error looking for the default VPC: {aws.aws_error(e)}") from e


def check_ami_name_free(ec2, name: str, region: str) -> None:
    images = aws.call("Error checking the AMI name", ec2.describe_images, Owners=["self"],
                      Filters=[{"Name": "name", "Values": [name]}]).get("Images") or []
    if images:
        ids = ", ".join(sorted(i["ImageId"] for i in images))
        raise StepError(f'an AMI named "{name}" already exists in {region} ({ids}); choose '
                        "another ami_name, or set force_deregister (or build with -force) to "
                        "replace it")


class SourceAmiStep(AwsStep):
    title = "Find source AMI"

    def run(self, ctx) -> None:
        c = self.c
        f = c.source_ami_filter
        image = aws.find_image(
            self.b.ec2, image_id=c.source_ami,
            filters=f.filters if f is not None else None,
            owners=f.owners if f is not None else None,
            most_recent=bool(f is not None and f.most_recent),
            include_deprecated=bool(f is not None and f.include_deprecated))
        if image.get("RootDeviceType") == "instance-store":
            raise StepError(f"the source AMI {image['ImageId']} is instance-store backed; "
                            "amazon-ebs needs an EBS-backed source AMI")
        ctx.ui.say(f"Found Image ID: {image['ImageId']}")
        self.b.source_image = image
        info = {
            "BuildRegion": c.region,
            "SourceAMI": image.get("ImageId", ""),
            "SourceAMIName": image.get("Name", ""),
            "SourceAMICreationDate": image.get("CreationDate", ""),
            "SourceAMIOwner": image.get("OwnerId", ""),
            "SourceAMIOwnerName": image.get("ImageOwnerAlias", ""),
        }
        ctx.generated_data.update(info)
        self.b.info = dict(info)
        self.b.info["SourceAMITags"] = {t["Key"]: t["Value"] for t in image.get("Tags") or []}
        ctx.state["source_image"] = image


class NetworkStep(AwsStep):
    title = "Find network"

    def run(self, ctx) -> None:
        c = self.c
        ec2 = self.b.ec2
        vpc_id = c.vpc_id
        if not vpc_id and c.vpc_filter is not None and c.vpc_filter.filters:
            vpcs = aws.call("Error querying VPCs", ec2.describe_vpcs,
                            Filters=aws.filter_list(c.vpc_filter.filters)).get("Vpcs") or []
            if len(vpcs) != 1:
                raise StepError(f"vpc_filter must match exactly one VPC; it matched {len(vpcs)}")
            vpc_id = vpcs[0]["VpcId"]
            ctx.ui.say(f"Found VPC ID: {vpc_id}")
        subnet: dict[str, Any] | None = None
        if c.subnet_id:
            found = aws.call(f"Error describing subnet {c.subnet_id}", ec2.describe_subnets,
                             SubnetIds=[c.subnet_id]).get("Subnets") or []
            subnet = found[0] if found else {"SubnetId": c.subnet_id}
        elif (c.subnet_filter is not None and c.subnet_filter.filters) or vpc_id:
            filters = aws.filter_list(c.subnet_filter.filters) if c.subnet_filter else []
            if vpc_id:
                filters.append({"Name": "vpc-id", "Values": [vpc_id]})
            if c.availability_zone:
                filters.append({"Name": "availability-zone", "Values": [c.availability_zone]})
            subnets = aws.call("Error querying subnets", ec2.describe_subnets,
                               Filters=filters).get("Subnets") or []
            if not subnets:
                raise StepError("no subnet matched subnet_filter" if c.subnet_filter
                                else f"VPC {vpc_id} has no subnet to launch into")
            if len(subnets) > 1:
                sf = c.subnet_filter
                if sf is not None and sf.random:
                    import random

                    subnets = [random.choice(subnets)]
                elif sf is None or sf.most_free:
                    subnets.sort(key=lambda s: -int(s.get("AvailableIpAddressCount") or 0))
                else:
                    raise StepError(f"subnet_filter matched {len(subnets)} subnets; make it more "
                                    "specific, or set most_free or random to true")
            subnet = subnets[0]
            ctx.ui.say(f"Found Subnet ID: {subnet['SubnetId']}")
        if subnet is not None:
            self.b.subnet_id = subnet["SubnetId"]
            vpc_id = vpc_id or subnet.get("VpcId", "")
            self.b.availability_zone = subnet.get("AvailabilityZone", "") or c.availability_zone
            if c.availability_zone and subnet.get("AvailabilityZone") \
                    and subnet["AvailabilityZone"] != c.availability_zone:
                raise StepError(f"subnet {subnet['SubnetId']} is in "
                                f"{subnet['AvailabilityZone']}, not in availability_zone "
                                f"{c.availability_zone}")
        else:
            self.b.availability_zone = c.availability_zone
        self.b.vpc_id = vpc_id
        if vpc_id and not c.vpc_id and not (c.vpc_filter and c.vpc_filter.filters):
            ctx.ui.say(f"Found VPC ID: {vpc_id}")


class KeyPairStep(AwsStep):
    title = "Create temporary key pair"

    def __init__(self, build: _Build):
        super().__init__(build)
        self.entry: int | None = None
        self.res_name = ""
        c = build.config
        if not c.needs_temporary_key():
            self.title = "Use SSH key"

    def run(self, ctx) -> None:
        c = self.c
        if c.ssh_private_key_file:
            ctx.ui.say("Using existing SSH private key")
            self.b.key_name = c.ssh_keypair_name
            self.b.key_file = os.path.abspath(os.path.expanduser(c.ssh_private_key_file))
            return
        if c.ssh_agent_auth:
            which = f"key pair {c.ssh_keypair_name}" if c.ssh_keypair_name else "no key pair"
            ctx.ui.say(f"Using SSH Agent with {which}")
            self.b.key_name = c.ssh_keypair_name
            return
        if c.ssh_keypair_name:
            self.b.key_name = c.ssh_keypair_name
            return
        if not c.needs_temporary_key():
            return
        from backend.plugins.communicators.ssh import generate_key_pair, key_secrets

        name = c.temporary_key_pair_name or f"kiln_{uuid.uuid4()}"
        kind = c.temporary_key_pair_type or "rsa"
        ctx.ui.say(f"Creating temporary keypair: {name}")
        try:
            # the comment is the key pair's name, so ssh_clear_authorized_keys finds the line
            private, public = generate_key_pair(kind, c.temporary_key_pair_bits or None,
                                                comment=name)
        except ValueError as e:
            raise StepError(f"cannot make the temporary key pair: {e}") from e
        ctx.add_secret(private)
        for s in key_secrets(private):
            ctx.add_secret(s)
        access = self.b.access
        assert access is not None
        self.res_name = name
        self.entry = _record(ctx, "aws-keypair", name, access.ledger_data(name=name))
        try:
            self.b.ec2.import_key_pair(
                KeyName=name, PublicKeyMaterial=public.encode(),
                TagSpecifications=[aws.tag_spec("key-pair", aws.kiln_tags(ctx))])
        except Exception as e:
            if not aws.is_aws_error(e):
                raise
            if aws.answered(e):  # refused: there is no key pair to delete
                _release(ctx, self.entry)
                self.entry = None
                self.res_name = ""
            raise StepError(f"Error importing the temporary key pair: {aws.aws_error(e)}") from e
        self.b.key_name = name
        self.b.temporary_key = True
        self.b.private_key = private
        self.b.key_file = ctx.temp_file(prefix="kiln-ec2-", suffix=".pem",
                                        content=private.encode(), mode=0o600)
        if getattr(ctx.options, "debug", False):
            ctx.ui.say(f"Private key for debugging: {self.b.key_file}")

    def cleanup(self, ctx) -> None:
        if self.b.key_file and self.b.private_key:
            ctx.remove_temp(self.b.key_file)
            self.b.key_file = ""
        if not self.res_name:
            return
        ctx.ui.say("Deleting temporary keypair...")
        try:
            self.b.ec2.delete_key_pair(KeyName=self.res_name)
        except Exception as e:
            if not (aws.is_aws_error(e) and aws.gone(e)):
                _cleanup_error(ctx, f"deleting the temporary key pair {self.res_name}", e)
                return
        _release(ctx, self.entry)
        self.entry = None
        self.res_name = ""


class SecurityGroupStep(AwsStep):
    title = "Create temporary security group"

    def __init__(self, build: _Build):
        super().__init__(build)
        self.entry: int | None = None
        self.group_id = ""
        self.res_name = ""
        c = build.config
        if c.security_groups() or (c.security_group_filter and c.security_group_filter.filters):
            self.title = "Find security groups"

    def run(self, ctx) -> None:
        c = self.c
        ec2 = self.b.ec2
        given = c.security_groups()
        if given:
            ctx.ui.say(f"Using security group(s): {', '.join(given)}")
            self.b.group_ids = given
            return
        if c.security_group_filter is not None and c.security_group_filter.filters:
            filters = aws.filter_list(c.security_group_filter.filters)
            if self.b.vpc_id:
                filters.append({"Name": "vpc-id", "Values": [self.b.vpc_id]})
            groups = aws.call("Error querying security groups", ec2.describe_security_groups,
                              Filters=filters).get("SecurityGroups") or []
            if not groups:
                raise StepError("no security group matched security_group_filter")
            self.b.group_ids = [g["GroupId"] for g in groups]
            ctx.ui.say(f"Found Security Group(s): {', '.join(self.b.group_ids)}")
            return
        self.res_name = f"kiln_{uuid.uuid4()}"
        ctx.ui.say(f"Creating temporary security group for this instance: {self.res_name}")
        access = self.b.access
        assert access is not None
        self.entry = _record(ctx, "aws-security-group", self.res_name,
                             access.ledger_data(name=self.res_name, vpc_id=self.b.vpc_id))
        params: dict[str, Any] = {
            "GroupName": self.res_name,
            "Description": "Temporary group for a Kiln build",
            "TagSpecifications": [aws.tag_spec("security-group", aws.kiln_tags(ctx))],
        }
        if self.b.vpc_id:
            params["VpcId"] = self.b.vpc_id
        try:
            res = ec2.create_security_group(**params)
        except Exception as e:
            if not aws.is_aws_error(e):
                raise
            if aws.answered(e):
                _release(ctx, self.entry)
                self.entry = None
            raise StepError(f"Error creating the temporary security group: "
                            f"{aws.aws_error(e)}") from e
        self.group_id = res["GroupId"]
        _update(ctx, self.entry, ident=self.group_id,
                data=access.ledger_data(name=self.res_name, group_id=self.group_id,
                                        vpc_id=self.b.vpc_id))
        self.b.group_ids = [self.group_id]
        port = c.ssh_port_number()
        if not port:
            return
        cidrs = list(c.temporary_security_group_source_cidrs)
        if not cidrs and c.temporary_security_group_source_public_ip:
            cidrs = [f"{public_ip()}/32"]
        if not cidrs:
            cidrs = ["::/0"] if c.ssh_interface == "ipv6" else ["0.0.0.0/0"]
        ctx.ui.say(f"Authorizing access to port {port} from {cidrs} in the temporary security "
                   "groups...")
        v4 = [{"CidrIp": x} for x in cidrs if ":" not in x]
        v6 = [{"CidrIpv6": x} for x in cidrs if ":" in x]
        perm: dict[str, Any] = {"IpProtocol": "tcp", "FromPort": port, "ToPort": port}
        if v4:
            perm["IpRanges"] = v4
        if v6:
            perm["Ipv6Ranges"] = v6
        aws.call("Error authorizing the temporary security group",
                 ec2.authorize_security_group_ingress, GroupId=self.group_id,
                 IpPermissions=[perm])

    def cleanup(self, ctx) -> None:
        if self.entry is None and not self.group_id:
            return
        ec2 = self.b.ec2
        group_id = self.group_id
        if not group_id:
            # created but the answer was lost: look it up by its unique name
            try:
                found = ec2.describe_security_groups(
                    Filters=[{"Name": "group-name", "Values": [self.res_name]}]
                ).get("SecurityGroups") or []
            except Exception as e:
                _cleanup_error(ctx, f"looking up the security group {self.res_name}", e)
                return
            group_id = found[0]["GroupId"] if found else ""
        if group_id:
            ctx.ui.say("Deleting temporary security group...")
            try:
                aws.delete_security_group(ec2, group_id, progress=ctx.ui.progress)
            except Exception as e:
                _cleanup_error(ctx, f"deleting the temporary security group {group_id}", e)
                return
        _release(ctx, self.entry)
        self.entry = None
        self.group_id = ""


def public_ip() -> str:
    """This host's public address (what temporary_security_group_source_public_ip allows)."""
    import urllib.request

    try:
        with urllib.request.urlopen("https://checkip.amazonaws.com", timeout=10) as r:
            text = r.read().decode().strip()
        ipaddress.ip_address(text)
        return text
    except (OSError, ValueError) as e:
        raise StepError(f"cannot find this host's public IP address: {e}") from e


class RunInstanceStep(AwsStep):
    title = "Launch source instance"

    def __init__(self, build: _Build):
        super().__init__(build)
        self.volumes: dict[str, str] = {}  # volume id -> device name

    def run(self, ctx) -> None:
        c = self.c
        b = self.b
        access = b.access
        assert access is not None
        token = str(uuid.uuid4())
        params = self._params(ctx, token)
        types = list(c.spot_instance_types) or [c.instance_type]
        b.spot = c.is_spot()
        ctx.ui.say("Launching a spot AWS instance..." if b.spot
                   else "Launching a source AWS instance...")
        b.instance_entry = _record(ctx, "aws-instance", token,
                                   access.ledger_data(client_token=token))
        res = None
        for i, itype in enumerate(types):
            try:
                res = b.ec2.run_instances(InstanceType=itype, **params)
                break
            except Exception as e:
                if not aws.is_aws_error(e):
                    raise
                capacity = aws.error_code(e) in ("InsufficientInstanceCapacity",
                                                 "SpotMaxPriceTooLow", "Unsupported")
                if capacity and i + 1 < len(types):
                    ctx.ui.say(f"No capacity for {itype} ({aws.aws_error(e)}); trying "
                               f"{types[i + 1]}")
                    continue
                if aws.answered(e):  # refused: no instance exists
                    _release(ctx, b.instance_entry)
                    b.instance_entry = None
                raise StepError(f"Error launching source instance: {aws.aws_error(e)}") from e
        assert res is not None
        inst = res["Instances"][0]
        iid = inst["InstanceId"]
        b.instance_id = iid
        b.instance = inst
        _update(ctx, b.instance_entry, ident=iid,
                data=access.ledger_data(client_token=token, instance_id=iid))
        ctx.instance_id = iid
        ctx.state["instance_id"] = iid
        ctx.ui.say(f"Instance ID: {iid}")

    def _params(self, ctx, token: str) -> dict[str, Any]:
        c = self.c
        b = self.b
        p: dict[str, Any] = {"ImageId": b.source_image["ImageId"], "MinCount": 1, "MaxCount": 1,
                             "ClientToken": token}
        if b.key_name:
            p["KeyName"] = b.key_name
        user_data = c.user_data
        if c.user_data_file:
            try:
                with open(os.path.expanduser(c.user_data_file), encoding="utf-8") as f:
                    user_data = f.read()
            except OSError as e:
                raise StepError(f"cannot read user_data_file {c.user_data_file}: "
                                f"{e.strerror or e}") from e
        if user_data:
            p["UserData"] = user_data
        if c.iam_instance_profile:
            key = "Arn" if c.iam_instance_profile.startswith("arn:") else "Name"
            p["IamInstanceProfile"] = {key: c.iam_instance_profile}
        bdms = [d.api() for d in c.launch_block_device_mappings]
        if c.no_ephemeral:
            taken = {m["DeviceName"] for m in bdms}
            bdms += [{"DeviceName": f"xvdc{chr(97 + i)}", "NoDevice": ""} for i in range(26)
                     if f"xvdc{chr(97 + i)}" not in taken]
        if bdms:
            p["BlockDeviceMappings"] = bdms
        placement: dict[str, Any] = {}
        if b.availability_zone and not b.subnet_id:
            placement["AvailabilityZone"] = b.availability_zone
        pl = c.placement
        tenancy = c.tenancy or (pl.tenancy if pl else "")
        if tenancy:
            placement["Tenancy"] = tenancy
        if pl is not None:
            if pl.host_id:
                placement["HostId"] = pl.host_id
            if pl.host_resource_group_arn:
                placement["HostResourceGroupArn"] = pl.host_resource_group_arn
            if pl.partition_number:
                placement["PartitionNumber"] = int(pl.partition_number)
            if pl.group_name:
                placement["GroupName"] = pl.group_name
        if placement:
            p["Placement"] = placement
        if c.ebs_optimized:
            p["EbsOptimized"] = True
        if c.shutdown_behavior:
            p["InstanceInitiatedShutdownBehavior"] = c.shutdown_behavior
        if c.metadata_options is not None and c.metadata_options.api():
            p["MetadataOptions"] = c.metadata_options.api()
        if c.enable_unlimited_credits or c.enable_t2_unlimited:
            p["CreditSpecification"] = {"CpuCredits": "unlimited"}
        if c.enable_nitro_enclave:
            p["EnclaveOptions"] = {"Enabled": True}
        if c.capacity_reservation_id:
            p["CapacityReservationSpecification"] = {
                "CapacityReservationTarget": {"CapacityReservationId": c.capacity_reservation_id}}
        elif c.capacity_reservation_group_arn:
            p["CapacityReservationSpecification"] = {"CapacityReservationTarget": {
                "CapacityReservationResourceGroupArn": c.capacity_reservation_group_arn}}
        elif c.capacity_reservation_preference:
            p["CapacityReservationSpecification"] = {
                "CapacityReservationPreference": c.capacity_reservation_preference}
        licenses = []
        for spec in c.license_specifications:
            arn = ""
            if isinstance(spec, dict):
                req = spec.get("license_configuration_request") or {}
                arn = req.get("license_configuration_arn", "") if isinstance(req, dict) else ""
            if arn:
                licenses.append({"LicenseConfigurationArn": arn})
        if licenses:
            p["LicenseSpecifications"] = licenses
        if c.associate_public_ip_address is not None:
            nic: dict[str, Any] = {"DeviceIndex": 0, "DeleteOnTermination": True,
                                   "AssociatePublicIpAddress": bool(c.associate_public_ip_address)}
            if b.subnet_id:
                nic["SubnetId"] = b.subnet_id
            if b.group_ids:
                nic["Groups"] = list(b.group_ids)
            p["NetworkInterfaces"] = [nic]
        else:
            if b.subnet_id:
                p["SubnetId"] = b.subnet_id
            if b.group_ids:
                p["SecurityGroupIds"] = list(b.group_ids)
        if c.is_spot():
            spot: dict[str, Any] = {"SpotInstanceType": "one-time",
                                    "InstanceInterruptionBehavior": "terminate"}
            if c.spot_price != "auto":
                spot["MaxPrice"] = c.spot_price
            if c.block_duration_minutes:
                spot["BlockDurationMinutes"] = int(c.block_duration_minutes)
            p["InstanceMarketOptions"] = {"MarketType": "spot", "SpotOptions": spot}
        kiln = aws.kiln_tags(ctx)
        run_tags = b.render_tags(ctx, c.all_tags("run_tag"), "run_tags")
        run_tags.setdefault("Name", "Kiln Builder")
        specs = [aws.tag_spec("instance", {**run_tags, **kiln}),
                 aws.tag_spec("volume", {**b.render_tags(ctx, c.all_tags("run_volume_tag"),
                                                         "run_volume_tags"), **kiln})]
        if c.is_spot():
            specs.append(aws.tag_spec("spot-instances-request", {
                **b.render_tags(ctx, c.all_tags("spot_tag"), "spot_tags"), **kiln}))
        p["TagSpecifications"] = specs
        return p

    def cleanup(self, ctx) -> None:
        b = self.b
        if b.instance_entry is None and not b.instance_id:
            return
        ec2 = b.ec2
        ids = [b.instance_id] if b.instance_id else []
        if not ids:
            # the launch failed or its answer was lost: find the instance by its tags
            try:
                ids = aws.live_instances(ec2, [
                    {"Name": f"tag:{aws.RUN_TAG}", "Values": [str(ctx.run_id)]},
                    {"Name": f"tag:{aws.BUILD_TAG}", "Values": [str(ctx.build_name)]}])
            except Exception as e:
                _cleanup_error(ctx, "looking for the source instance", e)
                return
        if ids:
            self._remember_volumes(ec2, ids)
            ctx.ui.say("Terminating the source AWS instance...")
            try:
                aws.terminate_and_wait(ec2, ids, progress=ctx.ui.progress)
            except Exception as e:
                _cleanup_error(ctx, f"terminating {', '.join(ids)}", e)
                return
        self._delete_volumes(ctx, ec2)
        _release(ctx, b.instance_entry)
        b.instance_entry = None

    def _remember_volumes(self, ec2, ids: list[str]) -> None:
        """Volumes AWS keeps after termination (launch mappings say which to keep)."""
        keep = {d.device_name for d in self.c.launch_block_device_mappings}
        try:
            for iid in ids:
                _state, inst = aws.instance_state(ec2, iid)
                for bdm in inst.get("BlockDeviceMappings") or []:
                    vol = (bdm.get("Ebs") or {}).get("VolumeId")
                    if vol and bdm.get("DeviceName") not in keep:
                        self.volumes[vol] = bdm.get("DeviceName", "")
        except Exception:  # best effort: the reaper still knows the instance
            pass

    def _delete_volumes(self, ctx, ec2) -> None:
        for vol in list(self.volumes):
            try:
                found = ec2.describe_volumes(VolumeIds=[vol]).get("Volumes") or []
                if found and found[0].get("State") == "available":
                    ctx.ui.say(f"Deleting leftover volume {vol}")
                    ec2.delete_volume(VolumeId=vol)
            except Exception as e:
                if not (aws.is_aws_error(e) and aws.gone(e)):
                    _cleanup_error(ctx, f"deleting volume {vol}", e)
            self.volumes.pop(vol, None)


class WaitInstanceStep(AwsStep):
    title = "Wait for instance"

    def run(self, ctx) -> None:
        b = self.b
        iid = b.instance_id
        ctx.ui.say(f"Waiting for instance ({iid}) to become ready...")

        def running() -> bool:
            state, inst = aws.instance_state(b.ec2, iid)
            if inst:
                b.instance = inst
            if state in ("shutting-down", "terminated", "stopping", "stopped"):
                reason = (inst.get("StateReason") or {}).get("Message") or state
                raise StepError(f"instance {iid} did not start: {reason}")
            return state == "running"

        try:
            aws.wait_for(ctx, f"Waiting for {iid} to run", running, b.polling(5, 120))
        except StepError:
            raise
        except Exception as e:
            if aws.is_aws_error(e):
                raise StepError(f"Error waiting for instance {iid}: {aws.aws_error(e)}") from e
            raise


class ConnectStep(AwsStep):
    title = "Connect"

    def run(self, ctx) -> None:
        from backend.plugins.communicators.base import CommunicatorError
        from backend.plugins.communicators.connect import connect

        c = self.c
        b = self.b
        ctype = c.communicator_type()
        if ctype == "none":
            ctx.communicator = connect(ctx, c)
            return
        host = c.ssh_host or self._instance_address(ctx)
        port = c.ssh_port_number()
        if b.instance_entry is not None and b.access is not None:
            # what the dashboard needs to reach a kept machine (never the key itself)
            _update(ctx, b.instance_entry, data=b.access.ledger_data(
                instance_id=b.instance_id, ssh_host=host, ssh_port=port,
                ssh_username=c.ssh_username, ssh_private_key_file=b.key_file))
        parts = ["ssh"]
        if b.key_file:
            parts += ["-i", b.key_file]
        parts += ["-p", str(port), f"{c.ssh_username}@{host}"]
        hint = " ".join(parts)
        try:
            if ctype == "ssh":
                from backend.plugins.communicators.ssh import connect_ssh

                ctx.communicator = connect_ssh(ctx, c, host=host,
                                               private_key=b.private_key or None)
            else:
                ctx.communicator = connect(ctx, c, host=host)
        except CommunicatorError as e:
            raise StepError(str(e)) from e
        finally:
            ctx.access_hint = hint

    def _instance_address(self, ctx) -> str:
        c = self.c
        b = self.b
        iface = c.ssh_interface or ("private_ip" if c.ssh_private_ip else "")
        fields = {"public_ip": "PublicIpAddress", "private_ip": "PrivateIpAddress",
                  "public_dns": "PublicDnsName", "private_dns": "PrivateDnsName"}
        for attempt in range(1, 4):
            inst = b.instance
            host = ""
            if iface == "ipv6":
                for nic in inst.get("NetworkInterfaces") or []:
                    for addr in nic.get("Ipv6Addresses") or []:
                        host = host or addr.get("Ipv6Address", "")
            elif iface:
                host = inst.get(fields[iface]) or ""
            elif inst.get("VpcId"):
                host = inst.get("PublicIpAddress") or ""
                if not host and attempt == 3:
                    host = inst.get("PrivateIpAddress") or ""
            else:
                host = inst.get("PublicDnsName") or ""
            if host:
                return host
            if attempt < 3:
                ctx.cancel.sleep(1)
                _state, fresh = aws.instance_state(b.ec2, b.instance_id)
                if fresh:
                    b.instance = fresh
        raise StepError(f"couldn't determine an address for instance {b.instance_id} "
                        f"(ssh_interface {iface or 'default'}); set ssh_interface or ssh_host")

    def cleanup(self, ctx) -> None:
        comm = ctx.communicator
        if comm is not None:
            comm.close()


class ClearTemporaryKeysStep(AwsStep):
    """``ssh_clear_authorized_keys``: take the temporary key out of the machine's
    authorized_keys files before the AMI is made, so instances launched from it do not
    accept it. Failures are reported, not fatal (the key pair is deleted anyway)."""

    title = "Clear temporary keys"

    def run(self, ctx) -> None:
        from backend.plugins.communicators.base import CommunicatorError

        b = self.b
        if not b.temporary_key or ctx.communicator is None:
            return
        ctx.ui.say("Trying to remove ephemeral keys from authorized_keys files")
        # a sed basic regular expression matching the name literally (it is in '...')
        pattern = re.sub(r"([.\[\]*^$\\/])", r"\\\1", b.key_name).replace("'", "'\\''")
        files = [("", "~/.ssh/authorized_keys")]
        if self.c.ssh_username != "root":
            files.append(("sudo -n ", "/root/.ssh/authorized_keys"))
        for prefix, path in files:
            command = (f"{prefix}sed -i.bak '/ {pattern}$/d' {path} && "
                       f"{prefix}rm -f {path}.bak")
            try:
                status = ctx.communicator.run(command, ctx.ui.output, ctx.cancel)
                why = f"exit status {status}"
            except CommunicatorError as e:
                status, why = -1, str(e)
            if status != 0:
                ctx.ui.say(f"Could not clean up {path} ({why}); lines ending in {b.key_name} "
                           "may remain")


class StopInstanceStep(AwsStep):
    title = "Stop instance"

    def run(self, ctx) -> None:
        b = self.b
        iid = b.instance_id
        if b.spot:
            ctx.ui.say("Spot instances are not stopped; the AMI is made from the running "
                       "instance")
            return
        if self.c.disable_stop_instance:
            ctx.ui.say("Automatic instance stop disabled. Please stop instance manually.")
        else:
            ctx.ui.say("Stopping the source instance...")
            aws.call(f"Error stopping instance {iid}", b.ec2.stop_instances, InstanceIds=[iid])
        ctx.ui.say("Waiting for the instance to stop...")

        def stopped() -> bool:
            state, _inst = aws.instance_state(b.ec2, iid)
            if state in ("terminated", "shutting-down", ""):
                raise StepError(f"instance {iid} was terminated instead of stopped")
            return state == "stopped"

        aws.wait_for(ctx, f"Waiting for {iid} to stop", stopped, b.polling(5, 120))


class ModifyInstanceStep(AwsStep):
    title = "Set instance attributes"

    def run(self, ctx) -> None:
        c = self.c
        b = self.b
        if c.ena_support is not None:
            ctx.ui.say(f"{'Enabling' if c.ena_support else 'Disabling'} Enhanced Networking "
                       "(ENA)...")
            aws.call("Error setting ENA support", b.ec2.modify_instance_attribute,
                     InstanceId=b.instance_id, EnaSupport={"Value": bool(c.ena_support)})
        if c.sriov_support:
            ctx.ui.say("Enabling Enhanced Networking (SR-IOV)...")
            aws.call("Error setting SR-IOV support", b.ec2.modify_instance_attribute,
                     InstanceId=b.instance_id, SriovNetSupport={"Value": "simple"})


class DeregisterStep(AwsStep):
    title = "Deregister old AMIs"

    def run(self, ctx) -> None:
        c = self.c
        b = self.b
        access = b.access
        assert access is not None
        name = ami_name_for(ctx, b)
        for region in [c.region] + c.copy_regions():
            ec2 = access.ec2(region)
            images = aws.call(f"Error looking for AMIs named {name} in {region}",
                              ec2.describe_images, Owners=["self"],
                              Filters=[{"Name": "name", "Values": [name]}]).get("Images") or []
            for image in images:
                aws.call(f"Error deregistering {image['ImageId']}", ec2.deregister_image,
                         ImageId=image["ImageId"])
                ctx.ui.say(f"Deregistered AMI {name}, id: {image['ImageId']} ({region})")
                if c.force_delete_snapshot:
                    for snap in aws.image_snapshots(image):
                        aws.call(f"Error deleting snapshot {snap}", ec2.delete_snapshot,
                                 SnapshotId=snap)
                        ctx.ui.say(f"Deleted snapshot: {snap}")
        b.ami_name_checked = True


def ami_name_for(ctx, b: _Build) -> str:
    if not b.ami_name:
        name = b.render(ctx, b.config.ami_name, "ami_name")
        problem = ami_name_problem(name)
        if problem:
            raise StepError(problem)
        b.ami_name = name
    return b.ami_name


class CreateImageStep(AwsStep):
    title = "Create AMI"

    def __init__(self, build: _Build):
        super().__init__(build)
        self.ami: _Ami | None = None

    def run(self, ctx) -> None:
        c = self.c
        b = self.b
        access = b.access
        assert access is not None
        name = ami_name_for(ctx, b)
        forced = c.force_deregister or getattr(ctx.options, "force", False)
        if not b.ami_name_checked and not forced:
            check_ami_name_free(b.ec2, name, c.region)
        description = b.render(ctx, c.ami_description, "ami_description")
        ctx.ui.say(f"Creating AMI {name} from instance {b.instance_id}")
        params: dict[str, Any] = {
            "InstanceId": b.instance_id, "Name": name,
            "TagSpecifications": [aws.tag_spec("image", aws.kiln_tags(ctx))],
        }
        if description:
            params["Description"] = description
        if c.ami_block_device_mappings:
            params["BlockDeviceMappings"] = [d.api() for d in c.ami_block_device_mappings]
        self.ami = _Ami(c.region, name=name)
        self.ami.entry = _record(ctx, "aws-image", name, access.ledger_data(name=name))
        try:
            res = b.ec2.create_image(**params)
        except Exception as e:
            if not aws.is_aws_error(e):
                raise
            if aws.answered(e):
                _release(ctx, self.ami.entry)
                self.ami = None
            raise StepError(f"Error creating AMI: {aws.aws_error(e)}") from e
        ami_id = res["ImageId"]
        self.ami.ami_id = ami_id
        _update(ctx, self.ami.entry, ident=ami_id, data=access.ledger_data(name=name,
                                                                           ami_id=ami_id))
        ctx.ui.say(f"AMI: {ami_id}")
        b.amis[c.region] = ami_id
        ctx.state["amis"] = b.amis
        ctx.state["created_ami"] = self.ami

    def cleanup(self, ctx) -> None:
        ami = self.ami
        if ami is None or ami.removed:
            return
        if self.b.done:
            forget_ami(ctx, ami)
            return
        if ami.entry is None and not ami.ami_id:
            return
        ctx.ui.say("Deregistering the AMI and deleting associated snapshots because of "
                   "cancellation, or error...")
        discard_ami(ctx, self.b, ami)
        if self.b.amis.get(ami.region) == ami.ami_id:
            self.b.amis.pop(ami.region, None)


def forget_ami(ctx, ami: _Ami) -> None:
    """The AMI is the build's result: drop it from the ledger, keep it in AWS."""
    for entry in ami.snap_entries.values():
        _release(ctx, entry)
    ami.snap_entries.clear()
    _release(ctx, ami.entry)
    ami.entry = None


def discard_ami(ctx, b: _Build, ami: _Ami) -> bool:
    """Deregister ``ami`` and delete its snapshots; release its ledger entries."""
    assert b.access is not None
    ec2 = b.access.ec2(ami.region)
    try:
        ids = [ami.ami_id] if ami.ami_id else [
            i["ImageId"] for i in ec2.describe_images(
                Owners=["self"], Filters=[
                    {"Name": "name", "Values": [ami.name]},
                    {"Name": f"tag:{aws.RUN_TAG}", "Values": [str(ctx.run_id)]}],
            ).get("Images") or []]
        for ami_id in ids:
            aws.delete_image(ec2, ami_id, say=ctx.ui.say)
        for snap in ami.snap_entries:
            aws.delete_snapshot(ec2, snap)
    except Exception as e:
        _cleanup_error(ctx, f"removing AMI {ami.ami_id or ami.name} in {ami.region}", e)
        return False
    forget_ami(ctx, ami)
    ami.removed = True
    return True


def _wait_images(ctx, b: _Build, amis: list[_Ami], what: str) -> None:
    """Wait until every AMI is available; record and kiln-tag its snapshots."""
    assert b.access is not None
    pending = {a.ami_id: a for a in amis}

    def available() -> bool:
        for ami_id, a in list(pending.items()):
            image = aws.describe_image(b.access.ec2(a.region), ami_id)
            state = (image or {}).get("State", "")
            if state == "available":
                _note_snapshots(ctx, b, a, image or {})
                pending.pop(ami_id)
            elif state in ("failed", "error", "invalid", "deregistered"):
                reason = ((image or {}).get("StateReason") or {}).get("Message") or state
                raise StepError(f"AMI {ami_id} in {a.region} failed: {reason}")
        return not pending

    try:
        aws.wait_for(ctx, what, available, b.polling(15, 240))
    except StepError:
        raise
    except Exception as e:
        if aws.is_aws_error(e):
            raise StepError(f"Error waiting for AMI: {aws.aws_error(e)}") from e
        raise


def _note_snapshots(ctx, b: _Build, a: _Ami, image: dict[str, Any]) -> None:
    assert b.access is not None
    snaps = aws.image_snapshots(image)
    b.snapshots[a.region] = snaps
    for snap in snaps:
        if snap not in a.snap_entries:
            a.snap_entries[snap] = _record(ctx, "aws-snapshot", snap, b.access.ledger_data(
                a.region, snapshot_id=snap, ami_id=a.ami_id))
    if snaps:
        aws.call("Error tagging snapshots", b.access.ec2(a.region).create_tags,
                 Resources=snaps, Tags=aws.tag_list(aws.kiln_tags(ctx)))


class WaitImageStep(AwsStep):
    title = "Wait for AMI"

    def run(self, ctx) -> None:
        ami = ctx.state.get("created_ami")
        assert ami is not None
        ctx.ui.say("Waiting for AMI to become ready...")
        _wait_images(ctx, self.b, [ami], f"Waiting for {ami.ami_id} to become available")


class RegionCopyStep(AwsStep):
    title = "Copy AMI to regions"

    def __init__(self, build: _Build):
        super().__init__(build)
        self.copies: list[_Ami] = []
        self.intermediary: _Ami | None = None

    def run(self, ctx) -> None:
        c = self.c
        b = self.b
        access = b.access
        assert access is not None
        source: _Ami = ctx.state["created_ami"]
        regions = c.copy_regions()
        for r in c.ami_regions:
            if r == c.region and not c.encrypt_boot:
                ctx.ui.say(f"Not copying the AMI to its own build region {r}")
        encrypt = bool(c.encrypt_boot)
        if encrypt:
            regions = [c.region] + regions
        verb = "Encrypting" if encrypt else "Copying"
        ctx.ui.say(f"{verb} AMI ({source.ami_id}) to other regions...")
        description = b.render(ctx, c.ami_description, "ami_description")
        for region in regions:
            ctx.cancel.check()
            ctx.ui.say(f"Copying to: {region}")
            copy = _Ami(region, name=source.name)
            copy.entry = _record(ctx, "aws-image", source.name,
                                 access.ledger_data(region, name=source.name))
            self.copies.append(copy)
            params: dict[str, Any] = {"SourceImageId": source.ami_id, "SourceRegion": c.region,
                                      "Name": source.name, "ClientToken": str(uuid.uuid4())}
            if description:
                params["Description"] = description
            if encrypt:
                params["Encrypted"] = True
                key = c.region_kms_key_ids.get(region) or (c.kms_key_id if region == c.region
                                                          else "")
                if key:
                    params["KmsKeyId"] = key
            try:
                res = access.ec2(region).copy_image(**params)
            except Exception as e:
                if not aws.is_aws_error(e):
                    raise
                if aws.answered(e):
                    _release(ctx, copy.entry)
                    self.copies.remove(copy)
                raise StepError(f"Error copying AMI ({source.ami_id}) to region ({region}): "
                                f"{aws.aws_error(e)}") from e
            copy.ami_id = res["ImageId"]
            _update(ctx, copy.entry, ident=copy.ami_id,
                    data=access.ledger_data(region, name=source.name, ami_id=copy.ami_id))
            aws.call(f"Error tagging AMI {copy.ami_id}", access.ec2(region).create_tags,
                     Resources=[copy.ami_id], Tags=aws.tag_list(aws.kiln_tags(ctx)))
        ctx.ui.say("Waiting for all copies to complete...")
        _wait_images(ctx, b, self.copies, "Waiting for the AMI copies")
        for copy in self.copies:
            b.amis[copy.region] = copy.ami_id
        if encrypt or c.skip_save_build_region:
            # the unencrypted (or unwanted) build-region AMI was only a stepping stone
            self.intermediary = source
            if not encrypt:
                b.amis.pop(c.region, None)
            what = "unencrypted" if encrypt else "build-region"
            ctx.ui.say(f"Deleting the intermediary {what} AMI {source.ami_id}")
            if not discard_ami(ctx, b, source):
                raise StepError(f"could not delete the intermediary AMI {source.ami_id}")
        ctx.state["amis"] = b.amis

    def cleanup(self, ctx) -> None:
        if self.b.done:
            for copy in self.copies:
                forget_ami(ctx, copy)
            return
        if not self.copies:
            return
        ctx.ui.say("Deregistering the AMI copies because of cancellation, or error...")
        for copy in self.copies:
            if not copy.removed and (copy.ami_id or copy.entry is not None):
                discard_ami(ctx, self.b, copy)
            if self.b.amis.get(copy.region) == copy.ami_id:
                self.b.amis.pop(copy.region, None)
        self.copies = []


class ModifyAmiStep(AwsStep):
    title = "Set AMI permissions"

    def run(self, ctx) -> None:
        c = self.c
        b = self.b
        access = b.access
        assert access is not None
        launch: list[dict[str, str]] = [{"UserId": u} for u in c.ami_users]
        launch += [{"Group": g} for g in c.ami_groups]
        launch += [{"OrganizationArn": a} for a in c.ami_org_arns]
        launch += [{"OrganizationalUnitArn": a} for a in c.ami_ou_arns]
        for region, ami_id in sorted(b.amis.items()):
            ec2 = access.ec2(region)
            ctx.ui.say(f"Modifying attributes on AMI ({ami_id})...")
            if launch:
                aws.call(f"Error sharing AMI {ami_id}", ec2.modify_image_attribute,
                         ImageId=ami_id, LaunchPermission={"Add": launch})
            if c.ami_product_codes:
                aws.call(f"Error setting product codes on {ami_id}", ec2.modify_image_attribute,
                         ImageId=ami_id, ProductCodes=list(c.ami_product_codes))
            if c.imds_support:
                aws.call(f"Error setting IMDS support on {ami_id}", ec2.modify_image_attribute,
                         ImageId=ami_id, ImdsSupport={"Value": c.imds_support})
            if c.snapshot_users or c.snapshot_groups:
                for snap in b.snapshots.get(region, []):
                    ctx.ui.say(f"Modifying attributes on snapshot ({snap})...")
                    params: dict[str, Any] = {"SnapshotId": snap,
                                              "Attribute": "createVolumePermission",
                                              "OperationType": "add"}
                    if c.snapshot_users:
                        params["UserIds"] = list(c.snapshot_users)
                    if c.snapshot_groups:
                        params["GroupNames"] = list(c.snapshot_groups)
                    aws.call(f"Error sharing snapshot {snap}", ec2.modify_snapshot_attribute,
                             **params)


class DeprecateStep(AwsStep):
    title = "Set AMI deprecation"

    def run(self, ctx) -> None:
        c = self.c
        b = self.b
        assert b.access is not None
        for region, ami_id in sorted(b.amis.items()):
            ec2 = b.access.ec2(region)
            if c.deprecate_at:
                ctx.ui.say(f"Setting the deprecation time of {ami_id} to {c.deprecate_at}")
                aws.call(f"Error deprecating {ami_id}", ec2.enable_image_deprecation,
                         ImageId=ami_id, DeprecateAt=parse_rfc3339(c.deprecate_at))
            dp = c.deregistration_protection
            if dp is not None and dp.enabled:
                ctx.ui.say(f"Enabling deregistration protection on {ami_id}")
                aws.call(f"Error protecting {ami_id}", ec2.enable_image_deregistration_protection,
                         ImageId=ami_id, WithCooldown=bool(dp.with_cooldown))


class CreateTagsStep(AwsStep):
    title = "Tag AMIs"

    def run(self, ctx) -> None:
        c = self.c
        b = self.b
        assert b.access is not None
        tags = b.render_tags(ctx, c.all_tags("tag"), "tags")
        snap_tags = b.render_tags(ctx, c.all_tags("snapshot_tag"), "snapshot_tags")
        for region, ami_id in sorted(b.amis.items()):
            ec2 = b.access.ec2(region)
            ctx.ui.say(f"Adding tags to AMI ({ami_id})...")
            if tags:
                ctx.ui.say("Creating AMI tags")
                for k, v in sorted(tags.items()):
                    ctx.ui.say(f'Adding tag: "{k}": "{v}"')
                aws.call(f"Error tagging AMI {ami_id}", ec2.create_tags,
                         Resources=[ami_id], Tags=aws.tag_list(tags))
            snaps = b.snapshots.get(region, [])
            if snap_tags and snaps:
                ctx.ui.say("Creating snapshot tags")
                for k, v in sorted(snap_tags.items()):
                    ctx.ui.say(f'Adding tag: "{k}": "{v}"')
                aws.call(f"Error tagging the snapshots of {ami_id}", ec2.create_tags,
                         Resources=list(snaps), Tags=aws.tag_list(snap_tags))


# --------------------------------------------------------------------------- artifact


class AmiArtifact(Artifact):
    """AMIs by region; ``destroy()`` deregisters them and deletes their snapshots."""

    def __init__(self, amis: dict[str, str], config: AmazonEBSConfig, state: dict[str, Any]):
        super().__init__(BUILDER_ID, state=state)
        self.amis = dict(amis)
        self.config = config
        self._state["amis"] = dict(amis)

    def id(self) -> str:
        return ",".join(f"{r}:{a}" for r, a in sorted(self.amis.items()))

    def string(self) -> str:
        lines = [f"{r}: {a}" for r, a in sorted(self.amis.items())]
        return "AMIs were created:\n" + "\n".join(lines) + "\n"

    def files(self) -> list[str]:
        return []

    def destroy(self) -> None:
        access = aws.AwsAccess(self.config)
        for region, ami_id in sorted(self.amis.items()):
            try:
                aws.delete_image(access.ec2(region), ami_id)
            except Exception as e:
                if aws.is_aws_error(e):
                    raise StepError(f"Error deleting AMI {ami_id} in {region}: "
                                    f"{aws.aws_error(e)}") from e
                raise


# --------------------------------------------------------------------------- the builder


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
        from backend.template.funcs import amazon_extra_funcs

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
            from backend.iam.preflight import PreflightStep

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
        if c.force_deregister or getattr(ctx.options, "force", False):
            steps.append(DeregisterStep(b))
        steps += [CreateImageStep(b), WaitImageStep(b)]
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
        return AmiArtifact(b.amis, self.config, {"generated_data": data})

    def communicator_config(self):
        return self.config


__all__ = ["AmazonEBSBuilder", "AmazonEBSConfig", "AmiArtifact", "reap"]
