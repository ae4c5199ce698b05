"""The amazon-ebs configuration (Packer's AMIConfig, AccessConfig, RunConfig and BlockDevices)
and its checks; the EC2 builders share it."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ...sdk.config import ConfigProblems, Deferred, Duration, opt
from ..communicators.config import CommunicatorConfig

BUILDER_ID = "mitchellh.amazonebs"


#: data the builder gives provisioners and post-processors (``{{ build `SourceAMIName` }}``)
GENERATED_KEYS = ("SourceAMIName", "BuildRegion", "SourceAMI", "SourceAMICreationDate",
                  "SourceAMIOwner", "SourceAMIOwnerName")


#: what AWS accepts in an AMI name (Go's ``\w`` is ASCII-only, so is ours)
AMI_NAME_RE = re.compile(r"^[A-Za-z0-9_()\[\] ./\-'@]+$")


SSH_INTERFACES = ("public_ip", "private_ip", "public_dns", "private_dns", "ipv6",
                  "session_manager")


VOLUME_TYPES = ("standard", "io1", "io2", "gp2", "gp3", "sc1", "st1")


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
class AmiConfig:
    """The AMI a build makes (Packer's AMIConfig): every EC2 builder has these keys."""

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
    ami_block_device_mappings: list[BlockDevice] = opt(default_factory=list)

    def __post_init__(self) -> None:
        split_string_lists(self, _AMI_STRING_LISTS)

    def ami_problems(self, need_name: bool = True) -> list[tuple[str, str]]:
        """What is wrong with the AMI keys (``need_name``: the build makes an AMI)."""
        p: list[tuple[str, str]] = []
        if not self.ami_name and need_name:
            p.append(("ami_name", "ami_name must be set: the name of the AMI to create"))
        elif self.ami_name and "{{" not in self.ami_name:
            problem = ami_name_problem(self.ami_name)
            if problem:
                p.append(("ami_name", problem))
        if self.ami_virtualization_type not in ("", "hvm", "paravirtual"):
            p.append(("ami_virtualization_type",
                      'ami_virtualization_type must be "hvm" or "paravirtual"'))
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
        region = getattr(self, "region", "")
        if self.skip_save_build_region and not [r for r in self.ami_regions if r != region]:
            p.append(("skip_save_build_region", "skip_save_build_region needs another region "
                      "in ami_regions, or no AMI would be left"))
        for name in ("tag", "snapshot_tag"):
            for kv in getattr(self, name):
                if not kv.key:
                    p.append((name, f"each {name} block needs a key"))
        return p

    def all_tags(self, name: str) -> dict[str, str]:
        """A ``*_tags`` map merged with its ``*_tag`` blocks (blocks win)."""
        out = dict(getattr(self, name + "s"))
        for kv in getattr(self, name):
            out[kv.key] = kv.value
        return out

    def copy_regions(self) -> list[str]:
        out: list[str] = []
        region = getattr(self, "region", "")
        for r in self.ami_regions:
            if r and r != region and r not in out:
                out.append(r)
        return out


def split_string_lists(config: Any, names: tuple[str, ...]) -> None:
    """Packer decodes a string into a list by splitting it at commas ("" is no items):
    templates pass lists through variables, e.g. "ami_regions": "{{user `regions`}}"."""
    for name in names:
        items = getattr(config, name)
        if items:
            setattr(config, name, [part.strip() for item in items for part in str(item).split(",")
                                   if part.strip()])


@dataclass
class AmazonEBSConfig(CommunicatorConfig, AwsAccessConfig, AmiConfig):
    fast_launch: Any = opt(None, doc="Windows fast launch (not supported by Kiln)")
    skip_create_ami: bool = opt(False, doc="provision but make no AMI")
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
        split_string_lists(self, _STRING_LISTS)

    def check(self) -> None:
        p: list[tuple[str, str]] = self.communicator_problems()
        p += self.ami_problems(need_name=not self.skip_create_ami)
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
        for name in ("run_tag", "run_volume_tag", "spot_tag", "fleet_tag"):
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


_AMI_STRING_LISTS = ("ami_users", "ami_groups", "ami_org_arns", "ami_ou_arns",
                     "ami_product_codes", "ami_regions", "snapshot_users", "snapshot_groups")
_STRING_LISTS = _AMI_STRING_LISTS + ("spot_instance_types", "security_group_ids",
                                     "temporary_security_group_source_cidrs")


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
