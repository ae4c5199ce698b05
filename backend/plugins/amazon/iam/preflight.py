"""The permission preflight: before an amazon build creates anything, ask AWS whether the
credentials may make each call the build will make.

1. ``sts:GetCallerIdentity`` names who is asking (it needs no permission).
2. Each EC2 action of the derivation (:mod:`backend.iam.table`) is called with
   ``DryRun=True`` and the build's own shape (instance type, source AMI, subnet, tags,
   regions): ``DryRunOperation`` means allowed; ``UnauthorizedOperation`` (real EC2) or
   ``AccessDenied`` (moto) means denied; any other answer leaves it unchecked.
   Describe calls that an endpoint runs in spite of DryRun (moto does) only read.
3. Actions DryRun cannot check (iam:PassRole, kms, sts) go to
   ``iam:SimulatePrincipalPolicy`` when that call is itself allowed; otherwise they stay
   unchecked (and the build finds out when it gets there). ``iam:GetInstanceProfile`` is
   simply called: it only reads.

Denied actions stop the build with the step and setting that need them and the
statement to add. Encoded authorization messages are decoded with
``sts:DecodeAuthorizationMessage`` when that is allowed.
"""

from __future__ import annotations

import json
import os
import re
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC
from typing import Any, Callable

from ....sdk.plugin import StepError
from .. import common as aws
from ..steps_base import AwsStep
from .table import Derivation, Need, derive_builder

ALLOWED, DENIED, UNCHECKED = "allowed", "denied", "unchecked"

# ids that name nothing: a DryRun call needs an id of the right shape, not a real one
NO_INSTANCE = "i-0000000000000000f"
NO_IMAGE = "ami-0000000000000000f"
NO_SNAPSHOT = "snap-0000000000000000f"
NO_VOLUME = "vol-0000000000000000f"
NO_GROUP = "sg-0000000000000000f"
# a syntactically valid public key for the ImportKeyPair probe (its private half is unknown)
PROBE_PUBLIC_KEY = ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHNVlpgvR1AEYVnjpFVLKe0M6yNzwl+N4dLh"
                    "gxu5sv1k kiln-preflight")

OTHER_ENDPOINT = ("custom_endpoint_ec2 is set and IAM/STS have no endpoint of their own "
                  "(AWS_ENDPOINT_URL), so they are not asked")

_ENCODED = re.compile(r"Encoded authorization failure message:\s*(\S+)")


@dataclass
class Verdict:
    action: str
    region: str
    status: str
    need: Need
    how: str = ""  # DryRun, a read, SimulatePrincipalPolicy, or why unchecked
    detail: str = ""  # the AWS message of a denial (decoded when possible)


# --------------------------------------------------------------------------- probes


def _probe_params(action: str, c: Any, source_ami: str, kiln_tags: dict[str, str],
                  region: str) -> dict[str, Any] | None:
    """The DryRun call for an EC2 action, shaped like the build's (None: no probe)."""
    tags = aws.tag_list(kiln_tags)
    name = f"kiln_preflight_{uuid.uuid4()}"
    ami_name = "kiln-preflight-" + uuid.uuid4().hex[:8]
    op = action.split(":", 1)[1]
    if op in ("DescribeRegions", "DescribeVpcs"):
        return {}
    if op == "DescribeImages":
        return {"Owners": ["self"], "Filters": [{"Name": "name", "Values": [ami_name]}]}
    if op in ("DescribeSubnets", "DescribeSecurityGroups", "DescribeInstances",
              "DescribeVolumes"):
        return {"MaxResults": 5}
    if op == "ImportKeyPair":
        return {"KeyName": c.temporary_key_pair_name or name,
                "PublicKeyMaterial": PROBE_PUBLIC_KEY.encode(),
                "TagSpecifications": [aws.tag_spec("key-pair", kiln_tags)]}
    if op == "DeleteKeyPair":
        return {"KeyName": c.temporary_key_pair_name or name}
    if op == "CreateSecurityGroup":
        p: dict[str, Any] = {"GroupName": name, "Description": "Kiln permission preflight",
                             "TagSpecifications": [aws.tag_spec("security-group", kiln_tags)]}
        if c.vpc_id:
            p["VpcId"] = c.vpc_id
        return p
    if op == "DeleteSecurityGroup":
        return {"GroupId": NO_GROUP}
    if op == "AuthorizeSecurityGroupIngress":
        port = c.ssh_port_number() or 22
        return {"GroupId": NO_GROUP, "IpPermissions": [
            {"IpProtocol": "tcp", "FromPort": port, "ToPort": port,
             "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}]}
    if op == "RunInstances":
        p = {"ImageId": source_ami or NO_IMAGE, "MinCount": 1, "MaxCount": 1,
             "InstanceType": (c.spot_instance_types[:1] or [c.instance_type])[0] or "t3.micro",
             "TagSpecifications": [aws.tag_spec("instance", kiln_tags),
                                   aws.tag_spec("volume", kiln_tags)]}
        if c.subnet_id:
            p["SubnetId"] = c.subnet_id
        if c.security_groups():
            p["SecurityGroupIds"] = c.security_groups()
        if c.iam_instance_profile:
            key = "Arn" if c.iam_instance_profile.startswith("arn:") else "Name"
            p["IamInstanceProfile"] = {key: c.iam_instance_profile}
        if c.is_spot():
            spot: dict[str, Any] = {"SpotInstanceType": "one-time",
                                    "InstanceInterruptionBehavior": "terminate"}
            if c.spot_price != "auto":
                spot["MaxPrice"] = c.spot_price
            p["InstanceMarketOptions"] = {"MarketType": "spot", "SpotOptions": spot}
        return p
    if op in ("TerminateInstances", "StopInstances"):
        return {"InstanceIds": [NO_INSTANCE]}
    if op == "ModifyInstanceAttribute":
        return {"InstanceId": NO_INSTANCE, "EnaSupport": {"Value": True}}
    if op == "DeleteVolume":
        return {"VolumeId": NO_VOLUME}
    if op == "CreateImage":
        return {"InstanceId": NO_INSTANCE, "Name": ami_name,
                "TagSpecifications": [aws.tag_spec("image", kiln_tags)]}
    if op == "CreateTags":
        return {"Resources": [NO_IMAGE], "Tags": tags}
    if op == "DeregisterImage":
        return {"ImageId": NO_IMAGE}
    if op == "DeleteSnapshot":
        return {"SnapshotId": NO_SNAPSHOT}
    if op == "RegisterImage":
        return {"Name": ami_name, "ImageLocation": "kiln-preflight/none.manifest.xml",
                "TagSpecifications": [aws.tag_spec("image", kiln_tags)]}
    if op == "CopyImage":
        return {"SourceImageId": NO_IMAGE, "SourceRegion": c.region or region, "Name": ami_name}
    if op == "ModifyImageAttribute":
        return {"ImageId": NO_IMAGE, "LaunchPermission": {"Add": [{"Group": "all"}]}}
    if op == "ModifySnapshotAttribute":
        return {"SnapshotId": NO_SNAPSHOT, "Attribute": "createVolumePermission",
                "OperationType": "add", "GroupNames": ["all"]}
    if op == "EnableImageDeprecation":
        from datetime import datetime, timedelta

        return {"ImageId": NO_IMAGE,
                "DeprecateAt": datetime.now(UTC) + timedelta(days=365)}
    if op == "EnableImageDeregistrationProtection":
        return {"ImageId": NO_IMAGE}
    # amazon-chroot's volume, snapshot and registration calls
    if op == "DescribeSnapshots":  # by an id: a listing of the account's would be slow
        return {"SnapshotIds": [NO_SNAPSHOT]}
    if op == "CreateVolume":
        return {"AvailabilityZone": f"{c.region or region}a", "Size": 1,
                "TagSpecifications": [aws.tag_spec("volume", kiln_tags)]}
    if op == "AttachVolume":
        return {"VolumeId": NO_VOLUME, "InstanceId": NO_INSTANCE, "Device": "/dev/sdf"}
    if op == "DetachVolume":
        return {"VolumeId": NO_VOLUME}
    if op == "CreateSnapshot":
        return {"VolumeId": NO_VOLUME,
                "TagSpecifications": [aws.tag_spec("snapshot", kiln_tags)]}
    if op == "RegisterImage":
        return {"Name": ami_name, "RootDeviceName": "/dev/sda1", "BlockDeviceMappings": [
            {"DeviceName": "/dev/sda1", "Ebs": {"SnapshotId": NO_SNAPSHOT}}]}
    return None


def _snake(op: str) -> str:
    from botocore import xform_name

    return xform_name(op)


class Preflight:
    """Checks one amazon-ebs build's permissions with ``access`` (an AwsAccess)."""

    def __init__(self, access: Any, config: Any, derivation: Derivation,
                 kiln_tags: dict[str, str] | None = None,
                 progress: Callable[[str], None] | None = None):
        self.access = access
        self.c = config
        self.d = derivation
        self.tags = kiln_tags or {"kiln:run": "preflight", "kiln:build": "preflight"}
        self.progress = progress or (lambda s: None)
        self.identity = ""
        self.simulate_note = ""

    # -- helpers -----------------------------------------------------------------------
    def reaches(self, service: str) -> bool:
        """Whether ``service`` goes where EC2 goes: with custom_endpoint_ec2 (a private
        endpoint, moto) and no endpoint of its own for STS/IAM, asking them would go to
        AWS itself, which the template did not ask for."""
        if not self.access.endpoint:
            return True
        env = os.environ
        return bool(env.get("AWS_ENDPOINT_URL") or env.get(f"AWS_ENDPOINT_URL_{service.upper()}"))

    def _region(self, r: str) -> str:
        return self.access.default_region() if r in ("", "*") else r

    def _decode(self, message: str) -> str:
        m = _ENCODED.search(message)
        if not m or not self.reaches("sts"):
            return message
        try:
            decoded = self.access.client("sts").decode_authorization_message(
                EncodedMessage=m.group(1))["DecodedMessage"]
        except Exception as e:
            if not aws.is_aws_error(e):
                raise
            return (message[:m.start()].rstrip() + " (an encoded authorization message: "
                    "sts:DecodeAuthorizationMessage would read it, and was "
                    f"{'denied' if aws.denied(e) else 'not available'})")
        try:
            ctx = json.loads(decoded).get("context") or {}
            return (f"{message[:m.start()].rstrip()} (decoded: action {ctx.get('action')} on "
                    f"{(ctx.get('resource') or '*')})")
        except (ValueError, AttributeError):
            return f"{message[:m.start()].rstrip()} (decoded: {decoded})"

    def whoami(self) -> str:
        if not self.reaches("sts"):
            return ""
        try:
            self.identity = self.access.client("sts").get_caller_identity()["Arn"]
        except Exception as e:
            if not aws.is_aws_error(e):
                raise
            self.identity = ""
        return self.identity

    def _source_ami(self) -> str:
        c = self.c
        if c.source_ami:
            return c.source_ami
        f = c.source_ami_filter
        if f is None or f.empty():
            return ""
        try:
            return aws.find_image(self.access.ec2(), filters=f.filters, owners=f.owners,
                                  most_recent=f.most_recent,
                                  include_deprecated=f.include_deprecated)["ImageId"]
        except Exception:  # the build's own step says what is wrong with the filter
            return ""

    def _dry_run(self, need: Need, action: str, region: str, source_ami: str) -> Verdict:
        params = _probe_params(action, self.c, source_ami, self.tags, region)
        if params is None:
            return Verdict(action, region, UNCHECKED, need, "no DryRun probe for it")
        ec2 = self.access.ec2(region)
        try:
            getattr(ec2, _snake(action.split(":", 1)[1]))(DryRun=True, **params)
        except Exception as e:
            if not aws.is_aws_error(e):
                raise
            code = aws.error_code(e)
            if code == "DryRunOperation":
                return Verdict(action, region, ALLOWED, need, "DryRun")
            if aws.denied(e):
                msg = aws.aws_error(e).split(": ", 1)[-1]
                return Verdict(action, region, DENIED, need, "DryRun", self._decode(msg))
            if not aws.answered(e):
                return Verdict(action, region, UNCHECKED, need,
                               f"the endpoint did not answer: {aws.aws_error(e)}")
            if aws.gone(e) or code.endswith(("NotFound", ".Malformed")):
                # past the permission check, AWS refused the placeholder id (moto does this
                # where it ignores DryRun, e.g. CreateTags)
                return Verdict(action, region, ALLOWED, need,
                               f"DryRun ignored; the placeholder id was refused ({code})")
            return Verdict(action, region, UNCHECKED, need,
                           f"the endpoint answered {code or aws.aws_error(e)}")
        # moto runs some Describe calls in spite of DryRun: a read that succeeded
        return Verdict(action, region, ALLOWED, need, "the call (DryRun ignored)")

    def _read(self, need: Need, action: str) -> Verdict:
        """iam:GetInstanceProfile: a read, so the real call answers."""
        profile = self.c.iam_instance_profile
        name = profile.rsplit("/", 1)[-1] if profile.startswith("arn:") else profile
        if not self.reaches("iam"):
            return Verdict(action, "", UNCHECKED, need, OTHER_ENDPOINT)
        try:
            self.access.client("iam").get_instance_profile(InstanceProfileName=name)
        except Exception as e:
            if not aws.is_aws_error(e):
                raise
            if aws.denied(e):
                return Verdict(action, "", DENIED, need, "the call", aws.aws_error(e))
            if aws.gone(e):
                raise StepError(f"the instance profile {profile} does not exist "
                                "(iam_instance_profile)") from e
            return Verdict(action, "", UNCHECKED, need, aws.aws_error(e))
        return Verdict(action, "", ALLOWED, need, "the call")

    def _simulate(self, items: list[tuple[Need, str]]) -> list[Verdict]:
        """iam:SimulatePrincipalPolicy for what DryRun cannot check, when allowed."""
        if not items:
            return []
        arn = self.identity
        m = re.match(r"arn:([\w-]+):sts::(\d+):assumed-role/([^/]+)/", arn)
        if m:
            arn = f"arn:{m.group(1)}:iam::{m.group(2)}:role/{m.group(3)}"
        out: list[Verdict] = []
        why = ""
        if not self.reaches("iam"):
            why = OTHER_ENDPOINT
        elif not arn:
            why = "the caller's identity is unknown (sts:GetCallerIdentity failed)"
        else:
            try:
                import botocore.config

                # one attempt: an endpoint without the call (moto) answers 500, not worth
                # the retries a build's calls get
                iam = self.access.session.client("iam", config=self.access.client_config().merge(
                    botocore.config.Config(retries={"max_attempts": 1, "mode": "standard"})))
                for need, action in items:
                    res = iam.simulate_principal_policy(
                        PolicySourceArn=arn, ActionNames=[action],
                        ResourceArns=[r.replace("::*:", f"::{arn.split(':')[4]}:")
                                      for r in need.resources])
                    decisions = {r.get("EvalDecision") for r in res.get("EvaluationResults", [])}
                    status = ALLOWED if decisions == {"allowed"} else DENIED
                    out.append(Verdict(action, "", status, need, "iam:SimulatePrincipalPolicy",
                                       "" if status == ALLOWED else
                                       f"the simulation says {', '.join(sorted(decisions))}"))
                return out
            except Exception as e:
                if not aws.is_aws_error(e):
                    raise
                out = []
                if aws.denied(e):
                    why = "iam:SimulatePrincipalPolicy is not allowed"
                elif type(e).__name__ == "ResponseParserError" or aws.error_code(e) in (
                        "NotImplemented", "InternalFailure", "500"):
                    why = "the endpoint cannot run iam:SimulatePrincipalPolicy"  # moto
                else:
                    why = ("iam:SimulatePrincipalPolicy failed: "
                           + aws.aws_error(e).splitlines()[0])
        self.simulate_note = why
        return [Verdict(a, "", UNCHECKED, n, why) for n, a in items]

    # -- the run ---------------------------------------------------------------------
    def run(self) -> list[Verdict]:
        self.whoami()
        source_ami = self._source_ami()
        ec2_jobs: list[tuple[Need, str, str]] = []
        other: list[tuple[Need, str]] = []
        verdicts: list[Verdict] = []
        seen: set[tuple[str, str]] = set()
        for need in self.d.required():
            for action in need.actions:
                if action.startswith("ec2:"):
                    for r in need.regions or ("",):
                        region = self._region(r)
                        if (action, region) not in seen:
                            seen.add((action, region))
                            ec2_jobs.append((need, action, region))
                elif (action, "") not in seen:
                    seen.add((action, ""))
                    if action == "iam:GetInstanceProfile":
                        verdicts.append(self._read(need, action))
                    elif action == "sts:AssumeRole":  # the session has assumed it already
                        verdicts.append(Verdict(action, "", ALLOWED, need,
                                                "the role was assumed"))
                    else:
                        other.append((need, action))
        self.progress(f"Checking {len(ec2_jobs) + len(other) + len(verdicts)} permissions")
        for region in sorted({j[2] for j in ec2_jobs}):
            self.access.ec2(region)  # boto3 makes clients unsafely across threads: first
        with ThreadPoolExecutor(max_workers=8) as pool:
            verdicts += list(pool.map(lambda j: self._dry_run(j[0], j[1], j[2], source_ami),
                                      ec2_jobs))
        verdicts += self._simulate(other)
        return verdicts


# --------------------------------------------------------------------------- reporting


def denial_message(verdicts: list[Verdict], identity: str, build_region: str = "") -> str:
    """``Error``-ready text: each missing permission, the step and setting that need it, and
    the statements to add."""
    from .policy import statements

    denied = [v for v in verdicts if v.status == DENIED]
    lines = []
    for v in denied:
        where = f" in {v.region}" if v.region and v.region != build_region else ""
        lines.append(f'missing permission {v.action} (needed by step "{v.need.step}"{where} '
                     f"because {v.need.why})")
    head = "; ".join(lines) if len(lines) == 1 else \
        f"{len(lines)} missing permissions:\n  " + "\n  ".join(lines)
    d = Derivation()
    for v in denied:
        n = v.need
        d.needs.append(Need(n.step, (v.action,), n.why, resources=n.resources,
                            narrowed=n.narrowed, regions=n.regions, build=n.build))
    stmts = statements(d)
    who = f" of {identity}" if identity else ""
    text = (f"{head}; nothing was created.\n"
            f"Add {'this statement' if len(stmts) == 1 else 'these statements'} to the "
            f"policy{who} (kiln iam policy TEMPLATE prints the whole policy):\n"
            + "\n".join(json.dumps(s, indent=2) for s in stmts))
    details = [f"  {v.action}: {v.detail}" for v in denied if v.detail]
    if details:
        text += "\nAWS said:\n" + "\n".join(details)
    return text


def summary(verdicts: list[Verdict]) -> str:
    counts = {s: sum(1 for v in verdicts if v.status == s) for s in (ALLOWED, DENIED, UNCHECKED)}
    return ", ".join(f"{n} {s}" for s, n in counts.items() if n) or "nothing to check"


class PreflightStep(AwsStep):
    """The first stage of an amazon build: creates nothing, stops the build on a denial."""

    title = "Check permissions"

    def run(self, ctx) -> None:
        c = self.c
        if self.b.access is None:
            self.b.access = aws.AwsAccess(c, secret=ctx.add_secret)
        access = self.b.access
        if not c.region:
            c.region = access.default_region()
            ctx.ui.say(f"Using region {c.region} (from the environment)")
        if not c.skip_credential_validation:
            access.check_credentials()
        d = derive_builder(ctx.build_type, c, build=ctx.build_name,
                           force=bool(getattr(ctx.options, "force", False)))
        start = time.monotonic()
        pf = Preflight(access, c, d, aws.kiln_tags(ctx), progress=ctx.ui.progress)
        verdicts = pf.run()
        who = f" of {pf.identity}" if pf.identity else ""
        ctx.ui.say(f"Checked the permissions{who}: {summary(verdicts)} "
                   f"({time.monotonic() - start:.2f}s)")
        unchecked = sorted({v.action for v in verdicts if v.status == UNCHECKED})
        if unchecked:
            reasons = sorted({v.how for v in verdicts if v.status == UNCHECKED})
            ctx.ui.say(f"Not checked: {', '.join(unchecked)} ({'; '.join(reasons)})")
        if any(v.status == DENIED for v in verdicts):
            raise StepError(denial_message(verdicts, pf.identity, c.region))


# --------------------------------------------------------------------------- kiln iam check


def check_command(template: Any, prepared: list[Any], options: Any) -> int:
    """``kiln iam check``: the preflight of every amazon build, as a table."""
    import sys

    from .policy import AWS_BUILDERS

    builds = [pb for pb in prepared if pb.type in AWS_BUILDERS]
    if not builds:
        print("Error: the template has no AWS build to check", file=sys.stderr)
        return 1
    failed = False
    for pb in builds:
        c = pb.builder.config
        access = aws.AwsAccess(c)
        try:
            if not c.region:
                c.region = access.default_region()
            if not c.skip_credential_validation:
                access.check_credentials()
            d = derive_builder(pb.type, c, build=pb.name, force=options.force)
            start = time.monotonic()
            pf = Preflight(access, c, d)
            verdicts = pf.run()
        except StepError as e:
            print(f"Error: {pb.name}: {e}", file=sys.stderr)
            failed = True
            continue
        took = time.monotonic() - start
        print(f"{pb.name}: permissions of {pf.identity or 'these credentials'} in "
              f"{c.region} ({took:.2f}s)")
        width = max(len(v.action) for v in verdicts) if verdicts else 0
        for v in verdicts:
            where = f" [{v.region}]" if v.region and v.region != c.region else ""
            print(f"  {v.status:<9}  {v.action:<{width}}  {v.need.step}{where}"
                  + (f" ({v.how})" if v.status == UNCHECKED else ""))
        print(f"  {summary(verdicts)}")
        if any(v.status == DENIED for v in verdicts):
            failed = True
            print(template.mask("Error: " + denial_message(verdicts, pf.identity, c.region)),
                  file=sys.stderr)
    return 1 if failed else 0
