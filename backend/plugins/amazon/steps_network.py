"""EC2 steps before the instance: pre-validation, the source AMI, network, key pair and
security group."""

from __future__ import annotations

import ipaddress
import os
import uuid
from typing import Any

from ...sdk.plugin import StepError
from . import common as aws
from .config import ami_name_problem
from .steps_base import (
    AwsStep,
    _Build,
    _cleanup_error,
    _record,
    _release,
    _update,
    _uses_source_data,
)


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
    #: amazon-ebs snapshots an EBS root; amazon-instance bundles whatever root it runs on
    needs_ebs_root = True

    def run(self, ctx) -> None:
        c = self.c
        f = c.source_ami_filter
        image = aws.find_image(
            self.b.ec2, image_id=c.source_ami,
            filters=f.filters if f is not None else None,
            owners=f.owners if f is not None else None,
            most_recent=bool(f is not None and f.most_recent),
            include_deprecated=bool(f is not None and f.include_deprecated))
        if self.needs_ebs_root and image.get("RootDeviceType") == "instance-store":
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
        from ..ssh.settings import generate_key_pair, key_secrets

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
