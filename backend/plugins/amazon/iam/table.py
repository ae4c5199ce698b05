"""Which AWS permissions a template needs: step -> actions -> the setting that needs them.

The derivation follows the steps the amazon-ebs builder will run for *this* template's
settings (see ``AmazonEBSBuilder.steps``) and every AWS call each step and its cleanup
make, so a policy grows only with the options that use it: CopyImage only with
``ami_regions``, no key pair actions with ``ssh_keypair_name``, kms actions only for the
keys the template names, and so on. A test walks the amazon plugins' code and fails
when a boto3 call there maps to no action of this table.

Resources are narrowed where AWS evaluates them for the action: the build's regions in
every EC2 ARN, the temporary key pair's name, the instance profile, parameters, secrets
and KMS keys the template names. Describe calls take no resource in IAM (``*``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

#: actions that IAM cannot narrow to a resource (EC2 Describe calls and the like)
UNSCOPED_PREFIXES = ("ec2:Describe", "ec2:GetPasswordData", "sts:GetCallerIdentity",
                     "sts:DecodeAuthorizationMessage", "iam:SimulatePrincipalPolicy")

KMS_ACTIONS = ("kms:CreateGrant", "kms:Decrypt", "kms:DescribeKey",
               "kms:GenerateDataKeyWithoutPlaintext", "kms:ReEncryptFrom", "kms:ReEncryptTo")


@dataclass(frozen=True)
class Need:
    """Actions one step needs, why (the setting), and on what."""

    step: str  # the dashboard stage (or data source) that makes the calls
    actions: tuple[str, ...]
    why: str  # the setting that makes the step run, as a user reads it
    resources: tuple[str, ...] = ("*",)
    narrowed: str = ""  # how the resources were narrowed, for -explain
    regions: tuple[str, ...] = ()  # where the calls go (the preflight probes there)
    optional: bool = False  # Kiln goes on without it (and says so): not in the policy
    build: str = ""  # the build (or data source) it belongs to

    @property
    def sid(self) -> str:
        words = re.findall(r"[A-Za-z0-9]+", self.step)
        return "".join(w[:1].upper() + w[1:] for w in words) or "Kiln"


@dataclass
class Derivation:
    """Every need of a template, in the order its steps run."""

    needs: list[Need] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def required(self) -> list[Need]:
        return [n for n in self.needs if not n.optional]

    def actions(self) -> list[str]:
        return sorted({a for n in self.required() for a in n.actions})

    def add(self, step: str, actions: list[str] | tuple[str, ...], why: str, **kw: Any) -> None:
        if actions:
            self.needs.append(Need(step, tuple(actions), why, **kw))

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)


# --------------------------------------------------------------------------- ARNs


def partition(region: str) -> str:
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    if region.startswith("us-iso"):
        return "aws-iso-b" if region.startswith("us-isob") else "aws-iso"
    return "aws"


def ec2_arns(regions: list[str], kind: str = "*") -> tuple[str, ...]:
    """``arn:PARTITION:ec2:REGION:*:KIND`` for each region (``*`` when it is not known)."""
    out = []
    for r in regions or ["*"]:
        out.append(f"arn:{partition(r) if r != '*' else 'aws'}:ec2:{r}:*:{kind}")
    return tuple(dict.fromkeys(out))


def kms_arn(key: str, region: str) -> str:
    if key.startswith("arn:"):
        return key
    if key.startswith("alias/"):  # an alias resolves to a key IAM names by its id
        return f"arn:{partition(region)}:kms:{region or '*'}:*:key/*"
    return f"arn:{partition(region)}:kms:{region or '*'}:*:key/{key}"


def _scoped(action: str) -> bool:
    return not action.startswith(UNSCOPED_PREFIXES)


# --------------------------------------------------------------------------- amazon-ebs


def derive_amazon_ebs(c: Any, build: str = "", force: bool = False,
                      out: Derivation | None = None) -> Derivation:
    """The needs of one amazon-ebs build whose decoded config is ``c``."""
    d = out if out is not None else Derivation()
    region = c.region or ""
    copies = c.copy_regions()
    regions = [region or "*"]
    every = regions + [r for r in copies if r not in regions]
    if not region:
        d.note("the build region comes from the environment (AWS_REGION or the profile), so "
               "EC2 resources are not narrowed to a region; set region to narrow them")
    here = ec2_arns(regions)
    everywhere = ec2_arns(every)

    def ec2(step: str, actions: list[str], why: str, where: tuple[str, ...] = here,
            regs: list[str] | None = None, optional: bool = False, note: str = "") -> None:
        scoped = [a for a in actions if _scoped(a)]
        loose = [a for a in actions if not _scoped(a)]
        rs = tuple(regs or regions)
        if not note and region:
            note = "the build's region" + ("s " if len(rs) > 1 else " ") + ", ".join(rs)
        if scoped:
            d.add(step, scoped, why, resources=where, narrowed=note, regions=rs,
                  optional=optional, build=build)
        if loose:
            d.add(step, loose, why, regions=rs, optional=optional, build=build)

    # -- Check AWS access
    if c.assume_role is not None and c.assume_role.role_arn:
        d.add("Assume role", ["sts:AssumeRole"], "assume_role.role_arn is set",
              resources=(c.assume_role.role_arn,), narrowed="the role named in assume_role",
              build=build)
        d.note("with assume_role, the credentials Kiln starts with need only sts:AssumeRole; "
               "every other statement belongs to the policy of " + c.assume_role.role_arn)
    if c.decode_authorization_messages:
        d.add("Check AWS access", ["sts:DecodeAuthorizationMessage"],
              "decode_authorization_messages is true", build=build)
    if not c.skip_region_validation:
        ec2("Check AWS access", ["ec2:DescribeRegions"],
            "the regions are checked (skip_region_validation is not set)")
    if not (c.subnet_id or (c.subnet_filter and c.subnet_filter.filters) or c.vpc_id
            or (c.vpc_filter and c.vpc_filter.filters)):
        ec2("Check AWS access", ["ec2:DescribeVpcs"],
            "no subnet or VPC is set: Kiln checks a default VPC exists, and skips the check "
            "without this permission", optional=True)
    if not c.skip_create_ami and not (c.force_deregister or force):
        ec2("Check AWS access", ["ec2:DescribeImages"],
            "ami_name is set: Kiln checks no AMI has that name yet")

    # -- Find source AMI
    ec2("Find source AMI", ["ec2:DescribeImages"],
        "source_ami_filter is set" if c.source_ami_filter is not None
        and not c.source_ami_filter.empty() else "source_ami is set")

    # -- Find network
    if not c.vpc_id and c.vpc_filter is not None and c.vpc_filter.filters:
        ec2("Find network", ["ec2:DescribeVpcs"], "vpc_filter is set")
    if c.subnet_id or (c.subnet_filter and c.subnet_filter.filters) or c.vpc_id or (
            c.vpc_filter and c.vpc_filter.filters):
        which = ("subnet_id" if c.subnet_id else "subnet_filter"
                 if c.subnet_filter and c.subnet_filter.filters else "vpc_id/vpc_filter")
        ec2("Find network", ["ec2:DescribeSubnets"], f"{which} is set")

    # -- Key pair
    if c.needs_temporary_key():
        name = c.temporary_key_pair_name or "kiln_*"
        ec2("Create temporary key pair", ["ec2:ImportKeyPair", "ec2:DeleteKeyPair",
                                          "ec2:CreateTags"],
            "no ssh_keypair_name, ssh_private_key_file, ssh_password or ssh_agent_auth: Kiln "
            "makes a key pair for the build and deletes it after",
            where=ec2_arns(regions, f"key-pair/{name}"),
            note=f"the key pair Kiln names ({name})" + (f" in {region}" if region else ""))
        d.note("Kiln imports the temporary key pair it makes on this machine "
               "(ec2:ImportKeyPair) where Packer has AWS make it (ec2:CreateKeyPair): the "
               "private key never crosses the network, and temporary_key_pair_type and _bits "
               "are honoured")

    # -- Security group
    if c.security_groups():
        pass  # given by id: no call
    elif c.security_group_filter is not None and c.security_group_filter.filters:
        ec2("Find security groups", ["ec2:DescribeSecurityGroups"],
            "security_group_filter is set")
    else:
        actions = ["ec2:CreateSecurityGroup", "ec2:DeleteSecurityGroup",
                   "ec2:DescribeSecurityGroups", "ec2:CreateTags"]
        if c.ssh_port_number():
            actions.append("ec2:AuthorizeSecurityGroupIngress")
        ec2("Create temporary security group", actions,
            "no security_group_ids or security_group_filter: Kiln makes a group that lets "
            "the communicator in, and deletes it after")

    # -- Launch source instance (and its cleanup: terminate, leftover volumes)
    launch = ["ec2:RunInstances", "ec2:CreateTags", "ec2:TerminateInstances",
              "ec2:DescribeInstances", "ec2:DescribeVolumes", "ec2:DeleteVolume"]
    why = "every build launches an instance and terminates it after"
    if c.is_spot():
        why += "; spot_price is set: a spot instance through RunInstances' market options"
        d.note("with spot_price, Kiln asks RunInstances for a spot instance, so Packer's "
               "spot set (ec2:CreateFleet, ec2:CreateLaunchTemplate, "
               "ec2:DeleteLaunchTemplate, ec2:DescribeSpotPriceHistory) is not needed; AWS "
               "may need iam:CreateServiceLinkedRole once per account for spot")
    ec2("Launch source instance", launch, why)
    if c.iam_instance_profile:
        profile = c.iam_instance_profile
        prof_arn = profile if profile.startswith("arn:") else \
            f"arn:{partition(region)}:iam::*:instance-profile/{profile}"
        d.add("Launch source instance", ["iam:PassRole"],
              f"iam_instance_profile is {profile}: the instance gets its role",
              resources=(f"arn:{partition(region)}:iam::*:role/*",),
              narrowed="any role: IAM names the role, not the profile; narrow it to the "
                       "profile's role ARN once you know it", build=build)
        if not c.skip_profile_validation:
            d.add("Check permissions", ["iam:GetInstanceProfile"],
                  f"iam_instance_profile is {profile}: Kiln checks the profile exists "
                  "(skip_profile_validation turns this off)",
                  resources=(prof_arn,), narrowed="the instance profile the template names",
                  build=build)
    keys = sorted({m.kms_key_id for m in c.launch_block_device_mappings if m.kms_key_id})
    if keys:
        d.add("Launch source instance", list(KMS_ACTIONS),
              "launch_block_device_mappings name a kms_key_id",
              resources=tuple(kms_arn(k, region) for k in keys),
              narrowed="the KMS keys the template names", build=build)

    if c.skip_create_ami:
        return d

    # -- Stop instance, set attributes
    if not c.is_spot() and not c.disable_stop_instance:
        ec2("Stop instance", ["ec2:StopInstances"],
            "the instance is stopped before the AMI is made (disable_stop_instance is not set)")
    if c.ena_support is not None or c.sriov_support:
        ec2("Set instance attributes", ["ec2:ModifyInstanceAttribute"],
            "ena_support or sriov_support is set")

    # -- Deregister old AMIs
    if c.force_deregister or force:
        actions = ["ec2:DescribeImages", "ec2:DeregisterImage"]
        if c.force_delete_snapshot:
            actions.append("ec2:DeleteSnapshot")
        ec2("Deregister old AMIs", actions,
            "force_deregister is set (or -force)" + (
                "; force_delete_snapshot deletes their snapshots"
                if c.force_delete_snapshot else ""), where=everywhere, regs=every)

    # -- Create AMI and wait (a failed build deregisters it and deletes its snapshots)
    ec2("Create AMI", ["ec2:CreateImage", "ec2:CreateTags", "ec2:DescribeImages",
                       "ec2:DeregisterImage", "ec2:DeleteSnapshot"],
        "ami_name is set: the AMI is made from the instance (and removed again if the build "
        "fails)")

    # -- Copy AMI to regions / encrypt
    if copies or c.encrypt_boot:
        why = (f"ami_regions has {', '.join(copies)}" if copies else "") + (
            ("; " if copies else "") + "encrypt_boot is true: an encrypted copy replaces the "
            "AMI" if c.encrypt_boot else "")
        ec2("Copy AMI to regions", ["ec2:CopyImage", "ec2:CreateTags", "ec2:DescribeImages",
                                    "ec2:DeregisterImage", "ec2:DeleteSnapshot"], why,
            where=everywhere, regs=every)
    kms_keys: dict[str, str] = {}
    if c.encrypt_boot:
        if c.kms_key_id:
            kms_keys[c.kms_key_id] = region
        for r, key in c.region_kms_key_ids.items():
            if key:
                kms_keys[key] = r
        if not kms_keys:
            d.note("encrypt_boot without kms_key_id uses the account's aws/ebs key, whose key "
                   "policy already lets EC2 use it for you: no kms statement is needed")
    if kms_keys:
        d.add("Copy AMI to regions", list(KMS_ACTIONS),
              "kms_key_id / region_kms_key_ids name the keys the copies are encrypted with",
              resources=tuple(dict.fromkeys(kms_arn(k, r) for k, r in kms_keys.items())),
              narrowed="the KMS keys the template names", build=build)
        d.note("a KMS key's own key policy must also let this identity use it (or delegate "
               "to IAM, as the default key policy does)")

    # -- Set AMI permissions, deprecation, tags
    if c.ami_users or c.ami_groups or c.ami_org_arns or c.ami_ou_arns or c.ami_product_codes \
            or c.imds_support:
        names = [n for n in ("ami_users", "ami_groups", "ami_org_arns", "ami_ou_arns",
                             "ami_product_codes", "imds_support") if getattr(c, n)]
        ec2("Set AMI permissions", ["ec2:ModifyImageAttribute"], " and ".join(names) + " set",
            where=everywhere, regs=every)
    if c.snapshot_users or c.snapshot_groups:
        ec2("Set AMI permissions", ["ec2:ModifySnapshotAttribute"],
            "snapshot_users or snapshot_groups is set", where=everywhere, regs=every)
    if c.deprecate_at:
        ec2("Set AMI deprecation", ["ec2:EnableImageDeprecation"], "deprecate_at is set",
            where=everywhere, regs=every)
    dp = c.deregistration_protection
    if dp is not None and dp.enabled:
        ec2("Set AMI deprecation", ["ec2:EnableImageDeregistrationProtection"],
            "deregistration_protection.enabled is true", where=everywhere, regs=every)
    if c.all_tags("tag") or c.all_tags("snapshot_tag"):
        ec2("Tag AMIs", ["ec2:CreateTags"], "tags or snapshot_tags are set", where=everywhere,
            regs=every)
    return d


# --------------------------------------------------------------------------- amazon-chroot


def derive_amazon_chroot(c: Any, build: str = "", force: bool = False,
                         out: Derivation | None = None) -> Derivation:
    """The needs of one amazon-chroot build (chroot/builder.py's steps) whose config is ``c``:
    no instance, key pair or security group; a volume, its snapshot and a registered AMI."""
    d = out if out is not None else Derivation()
    region = c.region or ""
    regions = [region or "*"]
    here = ec2_arns(regions)
    note = f"the build's region {region}" if region else ""
    if not region:
        d.note("the build region comes from the environment (AWS_REGION or the profile), so "
               "EC2 resources are not narrowed to a region; set region to narrow them")

    def ec2(step: str, actions: list[str], why: str) -> None:
        scoped = [a for a in actions if _scoped(a)]
        loose = [a for a in actions if not _scoped(a)]
        if scoped:
            d.add(step, scoped, why, resources=here, narrowed=note, regions=tuple(regions),
                  build=build)
        if loose:
            d.add(step, loose, why, regions=tuple(regions), build=build)

    if c.assume_role is not None and c.assume_role.role_arn:
        d.add("Assume role", ["sts:AssumeRole"], "assume_role.role_arn is set",
              resources=(c.assume_role.role_arn,), narrowed="the role named in assume_role",
              build=build)
    if not c.skip_region_validation:
        ec2("Check AWS access", ["ec2:DescribeRegions"],
            "the regions are checked (skip_region_validation is not set)")
    if not (c.force_deregister or force):
        ec2("Check AWS access", ["ec2:DescribeImages"],
            "ami_name is set: Kiln checks no AMI has that name yet")
    ec2("Find this instance", ["ec2:DescribeInstances"],
        "the volume goes to the instance Kiln runs on (from the instance metadata service)")
    if not c.from_scratch:
        ec2("Find source AMI", ["ec2:DescribeImages"],
            "source_ami_filter is set" if c.source_ami_filter is not None
            and not c.source_ami_filter.empty() else "source_ami is set")
    ec2("Create volume", ["ec2:CreateVolume", "ec2:CreateTags", "ec2:DescribeVolumes",
                          "ec2:DeleteVolume"],
        "the root volume is made from the source AMI's snapshot" if not c.from_scratch
        else "from_scratch: an empty root volume", )
    if c.root_volume_encrypt_boot and c.root_volume_kms_key_id:
        d.add("Create volume", list(KMS_ACTIONS), "root_volume_kms_key_id is set",
              resources=(kms_arn(c.root_volume_kms_key_id, region),),
              narrowed="the KMS key the template names", build=build)
    ec2("Attach volume", ["ec2:AttachVolume", "ec2:DetachVolume", "ec2:DescribeVolumes"],
        "the volume is attached to this instance, and detached after provisioning")
    ec2("Snapshot volume", ["ec2:CreateSnapshot", "ec2:CreateTags", "ec2:DescribeSnapshots",
                            "ec2:DeleteSnapshot"],
        "the AMI's root snapshot (deleted again if the build fails)")
    if c.force_deregister or force:
        actions = ["ec2:DescribeImages", "ec2:DeregisterImage"]
        if c.force_delete_snapshot:
            actions.append("ec2:DeleteSnapshot")
        ec2("Deregister old AMIs", actions, "force_deregister is set (or -force)")
    ec2("Register AMI", ["ec2:RegisterImage", "ec2:CreateTags", "ec2:DescribeImages",
                         "ec2:DeregisterImage", "ec2:DeleteSnapshot"],
        "ami_name is set: the AMI is registered from the snapshot (and removed again if the "
        "build fails)")
    # what comes after registering is amazon-ebs's: the same steps, the same needs
    tail = derive_amazon_ebs_image_steps(c, region, regions, build, d)
    return tail


def derive_amazon_ebs_image_steps(c: Any, region: str, regions: list[str], build: str,
                                  d: Derivation) -> Derivation:
    """Copy to regions, permissions, deprecation and tags: shared by the EC2 builders."""
    copies = c.copy_regions()
    every = regions + [r for r in copies if r not in regions]
    everywhere = ec2_arns(every)

    def ec2(step: str, actions: list[str], why: str) -> None:
        scoped = [a for a in actions if _scoped(a)]
        loose = [a for a in actions if not _scoped(a)]
        if scoped:
            d.add(step, scoped, why, resources=everywhere, regions=tuple(every), build=build)
        if loose:
            d.add(step, loose, why, regions=tuple(every), build=build)

    if copies or c.encrypt_boot:
        ec2("Copy AMI to regions", ["ec2:CopyImage", "ec2:CreateTags", "ec2:DescribeImages",
                                    "ec2:DeregisterImage", "ec2:DeleteSnapshot"],
            "ami_regions or encrypt_boot is set")
    keys = ([c.kms_key_id] if c.encrypt_boot and c.kms_key_id else []) + [
        k for k in c.region_kms_key_ids.values() if k and c.encrypt_boot is not False]
    if keys:
        d.add("Copy AMI to regions", list(KMS_ACTIONS), "kms_key_id / region_kms_key_ids",
              resources=tuple(dict.fromkeys(kms_arn(k, region) for k in keys)),
              narrowed="the KMS keys the template names", build=build)
    if c.ami_users or c.ami_groups or c.ami_org_arns or c.ami_ou_arns or c.ami_product_codes \
            or c.imds_support:
        ec2("Set AMI permissions", ["ec2:ModifyImageAttribute"], "ami_users, ami_groups, "
            "ami_org_arns, ami_ou_arns, ami_product_codes or imds_support is set")
    if c.snapshot_users or c.snapshot_groups:
        ec2("Set AMI permissions", ["ec2:ModifySnapshotAttribute"],
            "snapshot_users or snapshot_groups is set")
    if c.deprecate_at:
        ec2("Set AMI deprecation", ["ec2:EnableImageDeprecation"], "deprecate_at is set")
    dp = c.deregistration_protection
    if dp is not None and dp.enabled:
        ec2("Set AMI deprecation", ["ec2:EnableImageDeregistrationProtection"],
            "deregistration_protection.enabled is true")
    if c.all_tags("tag") or c.all_tags("snapshot_tag"):
        ec2("Tag AMIs", ["ec2:CreateTags"], "tags or snapshot_tags are set")
    return d


# --------------------------------------------------------------------------- amazon-instance

#: amazon-ebs stages an instance-store build does not run (it bundles and registers instead)
_EBS_IMAGE_STEPS = ("Stop instance", "Set instance attributes", "Create AMI")


def derive_amazon_instance(c: Any, build: str = "", force: bool = False,
                           out: Derivation | None = None) -> Derivation:
    """The needs of one amazon-instance build: amazon-ebs's up to the provisioners and after
    the AMI exists, with the bundle upload and the registration in place of the snapshot."""
    d = out if out is not None else Derivation()
    shared = derive_amazon_ebs(c, build=build, force=force)
    for note in shared.notes:
        d.note(note)
    region = c.region or ""
    regions = (region or "*",)
    bucket, _, prefix = c.s3_bucket.partition("/")
    s3 = "arn:aws-cn:s3:::" if partition(region) == "aws-cn" else "arn:aws:s3:::"
    folder = prefix.strip("/")
    objects = f"{s3}{bucket}/{folder + '/' if folder else ''}*"
    bundle_needs = []
    upload_why = ("the AMI tools upload the bundle to s3_bucket with the build's credentials "
                  "(ec2-upload-bundle makes the bucket when it is missing)")
    cleanup_why = ("a build that fails after the upload deletes the bundle's objects again "
                   "(the manifest and its parts)")
    if c.iam_instance_profile and not c.bundle_upload_command:
        d.note(f"with iam_instance_profile the AMI tools upload with the instance's role, so "
               f"the role of {c.iam_instance_profile} needs s3:CreateBucket, "
               f"s3:GetBucketLocation, s3:ListBucket on {s3}{bucket} and s3:PutObject, "
               f"s3:PutObjectAcl on {objects}")
        bundle_needs.append(Need("Upload bundle", ("s3:ListBucket",), cleanup_why,
                                 resources=(f"{s3}{bucket}",),
                                 narrowed=f"the bucket s3_bucket names ({bucket})",
                                 regions=regions, build=build))
    else:
        bundle_needs.append(Need("Upload bundle", ("s3:CreateBucket", "s3:GetBucketLocation",
                                                   "s3:ListBucket"), upload_why,
                                 resources=(f"{s3}{bucket}",),
                                 narrowed=f"the bucket s3_bucket names ({bucket})",
                                 regions=regions, build=build))
        bundle_needs.append(Need("Upload bundle", ("s3:PutObject", "s3:PutObjectAcl"),
                                 upload_why, resources=(objects,),
                                 narrowed="the bundle's objects in s3_bucket",
                                 regions=regions, build=build))
        d.note("the upload command hands the build's credentials to the AMI tools on the "
               "instance: they need the S3 statements, and are masked in Kiln's output")
    bundle_needs.append(Need("Upload bundle", ("s3:DeleteObject",), cleanup_why,
                             resources=(objects,), narrowed="the bundle's objects in s3_bucket",
                             regions=regions, build=build))
    why = ("ami_name is set: the AMI is registered from the bundle's manifest in S3 (and "
           "deregistered again if the build fails)")
    acts = ["ec2:RegisterImage", "ec2:CreateTags", "ec2:DeregisterImage"]
    if any(not m.no_device and not m.virtual_name.startswith("ephemeral")
           for m in c.ami_block_device_mappings):
        acts.append("ec2:DeleteSnapshot")  # EBS volumes in the AMI have snapshots
        why += "; ami_block_device_mappings add EBS snapshots"
    register = [Need("Register AMI", tuple(acts), why,
                     resources=ec2_arns(list(regions)),
                     narrowed=f"the build's region {region}" if region else "",
                     regions=regions, build=build),
                Need("Register AMI", ("ec2:DescribeImages",), why, regions=regions, build=build)]
    placed = False
    for need in shared.needs:
        if need.step in _EBS_IMAGE_STEPS:
            if need.step == "Create AMI" and not placed:
                d.needs.extend(bundle_needs + register)
                placed = True
            continue
        d.needs.append(need)
    if not placed:
        d.needs.extend(bundle_needs + register)
    return d


#: the derivation of each AWS builder, by template type
BUILDER_DERIVATIONS = {"amazon-ebs": derive_amazon_ebs,
                       "amazon-instance": derive_amazon_instance,
                       "amazon-chroot": derive_amazon_chroot}


def derive_builder(type_name: str, c: Any, build: str = "", force: bool = False,
                   out: Derivation | None = None) -> Derivation:
    return BUILDER_DERIVATIONS.get(type_name, derive_amazon_ebs)(c, build=build, force=force,
                                                                 out=out)


# --------------------------------------------------------------------------- data sources


def derive_data_source(type_name: str, name: str, c: Any,
                       out: Derivation | None = None) -> Derivation:
    d = out if out is not None else Derivation()
    region = c.region or ""
    step = f'data "{type_name}" "{name}"'
    if type_name == "amazon-ami":
        d.add(step, ["ec2:DescribeImages"], "the data source looks the AMI up",
              regions=(region or "*",), build=step)
    elif type_name == "amazon-parameterstore":
        path = c.name.lstrip("/") if not c.name.startswith("arn:") else ""
        arn = c.name if c.name.startswith("arn:") else \
            f"arn:{partition(region)}:ssm:{region or '*'}:*:parameter/{path}"
        d.add(step, ["ssm:GetParameter"], f"the data source reads parameter {c.name}",
              resources=(arn,), narrowed="the parameter the template names",
              regions=(region or "*",), build=step)
        if c.with_decryption:
            d.add(step, ["kms:Decrypt"], "with_decryption is true: a SecureString is "
                  "decrypted with its KMS key", regions=(region or "*",), build=step)
    elif type_name == "amazon-secretsmanager":
        arn = c.name if c.name.startswith("arn:") else \
            f"arn:{partition(region)}:secretsmanager:{region or '*'}:*:secret:{c.name}-*"
        d.add(step, ["secretsmanager:GetSecretValue"], f"the data source reads secret {c.name}",
              resources=(arn,), narrowed="the secret the template names",
              regions=(region or "*",), build=step)
        d.note("a secret encrypted with a customer-managed KMS key also needs kms:Decrypt on "
               "that key")
    return d


# --------------------------------------------------------------------------- the table itself

#: every action this module can ask for, with the calls that need it: what the code-walk
#: test compares the amazon plugins' boto3 calls with
TABLE_ACTIONS: frozenset[str] = frozenset({
    "sts:AssumeRole", "sts:DecodeAuthorizationMessage", "sts:GetCallerIdentity",
    "iam:SimulatePrincipalPolicy", "iam:GetInstanceProfile", "iam:PassRole",
    "ec2:DescribeRegions", "ec2:DescribeVpcs", "ec2:DescribeImages", "ec2:DescribeSubnets",
    "ec2:ImportKeyPair", "ec2:DeleteKeyPair", "ec2:CreateTags",
    "ec2:CreateSecurityGroup", "ec2:DeleteSecurityGroup", "ec2:DescribeSecurityGroups",
    "ec2:AuthorizeSecurityGroupIngress", "ec2:RunInstances", "ec2:TerminateInstances",
    "ec2:DescribeInstances", "ec2:DescribeVolumes", "ec2:DeleteVolume", "ec2:StopInstances",
    "ec2:ModifyInstanceAttribute", "ec2:DeregisterImage", "ec2:DeleteSnapshot",
    "ec2:CreateImage", "ec2:CopyImage", "ec2:ModifyImageAttribute", "ec2:RegisterImage",
    "ec2:ModifySnapshotAttribute", "ec2:EnableImageDeprecation",
    "ec2:EnableImageDeregistrationProtection", "ec2:CreateVolume", "ec2:AttachVolume",
    "ec2:DetachVolume", "ec2:CreateSnapshot", "ec2:DescribeSnapshots", "ssm:GetParameter",
    "secretsmanager:GetSecretValue", "kms:Decrypt", *KMS_ACTIONS,
    "s3:CreateBucket", "s3:GetBucketLocation", "s3:ListBucket", "s3:PutObject",
    "s3:PutObjectAcl", "s3:DeleteObject",
})

#: S3 operations whose IAM action has another name (the code walk reads boto3's names)
OPERATION_ACTIONS = {"s3:ListObjectsV2": "s3:ListBucket", "s3:HeadBucket": "s3:ListBucket",
                     "s3:HeadObject": "s3:GetObject"}

#: boto3 services whose calls the amazon plugins make, and their IAM prefix
SERVICE_PREFIX = {"ec2": "ec2", "sts": "sts", "iam": "iam", "ssm": "ssm",
                  "secretsmanager": "secretsmanager", "kms": "kms", "s3": "s3"}
