"""A moto server that enforces IAM policies, for permission tests.

moto keeps its IAM-enforcement switch in a process-wide setting, so this server runs as
its own process (``moto_server``), never in the test process where the shared
``moto_server`` fixture serves tests that use the all-powerful "testing" keys.

Set-up order matters: an admin user (policy ``*``) is made while moto still lets every
call through; then ``enforce()`` POSTs ``/moto-api/reset-auth`` with the text/plain body
``0`` and from then on every call is checked against the caller's policies. Users with
the policies under test are made afterwards with the admin's keys.

moto behaviours the tests rely on (moto 5.2, checked here, and named where they are used):

* a denied call answers ``AccessDenied`` (HTTP 403) where real EC2 says
  ``UnauthorizedOperation``;
* a policy's ``Resource`` is compared with ``*`` for every EC2/SSM/IAM call and
  ``Condition`` blocks are not met, so only policies without narrowing can be
  enforced here (``kiln iam policy -narrow=false``);
* ``iam:SimulatePrincipalPolicy`` and ``sts:DecodeAuthorizationMessage`` are not
  implemented; KMS permissions are never checked by EC2 calls.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from kiln_services import (
    LOOPBACK,
    ServiceUnavailable,
    _port_in_use,
    _stop_process,
    _tail,
    _wait_until,
    free_port,
)

#: Packer's documented minimal policy for its amazon builders (IAM Task or Instance Role)
PACKER_DOCUMENTED_ACTIONS = (
    "ec2:AttachVolume", "ec2:AuthorizeSecurityGroupIngress", "ec2:CopyImage",
    "ec2:CreateImage", "ec2:CreateKeyPair", "ec2:CreateSecurityGroup", "ec2:CreateSnapshot",
    "ec2:CreateTags", "ec2:CreateVolume", "ec2:DeleteKeyPair", "ec2:DeleteSecurityGroup",
    "ec2:DeleteSnapshot", "ec2:DeleteVolume", "ec2:DeregisterImage",
    "ec2:DescribeImageAttribute", "ec2:DescribeImages", "ec2:DescribeInstances",
    "ec2:DescribeInstanceStatus", "ec2:DescribeRegions", "ec2:DescribeSecurityGroups",
    "ec2:DescribeSnapshots", "ec2:DescribeSubnets", "ec2:DescribeTags", "ec2:DescribeVolumes",
    "ec2:DetachVolume", "ec2:GetPasswordData", "ec2:ModifyImageAttribute",
    "ec2:ModifyInstanceAttribute", "ec2:ModifySnapshotAttribute", "ec2:RegisterImage",
    "ec2:RunInstances", "ec2:StopInstances", "ec2:TerminateInstances",
)

#: an EBS-backed AMI among moto's defaults (Packer 1.6.6 refuses moto's registered
#: images: they say root device type "standard")
UBUNTU_NAME = "ubuntu/images/hvm-ssd/ubuntu-xenial-16.04-amd64-server-*"
UBUNTU_OWNER = "099720109477"


def policy_document(actions: list[str] | tuple[str, ...]) -> dict[str, Any]:
    return {"Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": sorted(actions), "Resource": "*"}]}


class IamMoto:
    """``moto_server`` on 127.0.0.1 with IAM enforcement on (after ``enforce()``)."""

    def __init__(self) -> None:
        self.host = LOOPBACK
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._dir = Path(tempfile.mkdtemp(prefix="kiln-iam-moto-"))
        self.admin: tuple[str, str] = ("", "")
        self._users = 0

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> IamMoto:
        exe = "moto_server"
        log = self._dir / "moto.log"
        for _attempt in range(5):
            self.port = free_port()
            with open(log, "ab") as fh:
                try:
                    self._proc = subprocess.Popen(
                        [exe, "-H", self.host, "-p", str(self.port)], stdout=fh,
                        stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
                except FileNotFoundError as exc:
                    raise ServiceUnavailable(
                        "moto_server not found: pip install 'moto[server]'") from exc

            def alive() -> str | None:
                assert self._proc is not None
                if self._proc.poll() is not None:
                    return f"moto_server exited: {_tail(log)}"
                return None

            try:
                _wait_until(self._ready, 30, "moto_server", alive)
                break
            except RuntimeError:
                if not _port_in_use(_tail(log)):
                    raise
        self.admin = self._make_user("kiln-test-admin", policy_document(["*"]), self.client)
        return self

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.endpoint}/moto-api/", timeout=2):
                return True
        except OSError:
            return False

    def enforce(self) -> None:
        """From now on every call is checked against its caller's policies."""
        req = urllib.request.Request(f"{self.endpoint}/moto-api/reset-auth", data=b"0",
                                     method="POST", headers={"Content-Type": "text/plain"})
        with urllib.request.urlopen(req, timeout=10) as r:
            assert json.loads(r.read())["status"] == "ok"

    def stop(self) -> None:
        _stop_process(self._proc)
        self._proc = None

    # -- clients and users ----------------------------------------------------------
    def client(self, service: str, region: str = "us-east-1",
               keys: tuple[str, str] | None = None) -> Any:
        import boto3
        import botocore.session

        key, secret = keys or self.admin
        if not key:  # before the admin exists, moto lets anything through
            key, secret = "testing", "testing"
        core = botocore.session.Session()
        core.set_config_variable("config_file", os.devnull)
        core.set_config_variable("credentials_file", os.devnull)
        session = boto3.session.Session(aws_access_key_id=key, aws_secret_access_key=secret,
                                        region_name=region, botocore_session=core)
        return session.client(service, endpoint_url=self.endpoint)

    def _make_user(self, name: str, document: dict[str, Any], client: Any) -> tuple[str, str]:
        iam = client("iam")
        iam.create_user(UserName=name)
        iam.put_user_policy(UserName=name, PolicyName="build",
                            PolicyDocument=json.dumps(document))
        k = iam.create_access_key(UserName=name)["AccessKey"]
        return k["AccessKeyId"], k["SecretAccessKey"]

    def user(self, document: dict[str, Any]) -> tuple[str, str]:
        """A new user whose only policy is ``document``; its access keys."""
        self._users += 1
        return self._make_user(f"builder-{self._users}-{time.monotonic_ns()}", document,
                               self.client)

    def env(self, keys: tuple[str, str], region: str = "us-east-1",
            base: dict[str, str] | None = None) -> dict[str, str]:
        """Environment for kiln or packer acting as ``keys``; anything not sent to this
        server goes to a closed loopback proxy, so nothing leaves the machine."""
        env = dict(os.environ if base is None else base)
        for k in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_ROLE_ARN",
                  "AWS_WEB_IDENTITY_TOKEN_FILE"):
            env.pop(k, None)
        env.update(AWS_ACCESS_KEY_ID=keys[0], AWS_SECRET_ACCESS_KEY=keys[1],
                   AWS_DEFAULT_REGION=region, AWS_REGION=region, AWS_CONFIG_FILE=os.devnull,
                   AWS_SHARED_CREDENTIALS_FILE=os.devnull, AWS_EC2_METADATA_DISABLED="true",
                   AWS_ENDPOINT_URL=self.endpoint, HTTPS_PROXY="http://127.0.0.1:9",
                   HTTP_PROXY="http://127.0.0.1:9", NO_PROXY="127.0.0.1,localhost")
        return env

    # -- what exists ------------------------------------------------------------------
    def inventory(self, regions: tuple[str, ...] = ("us-east-1",)) -> dict[str, set[str]]:
        """Every instance (not terminated), key pair, security group (but the default
        ones), volume, snapshot and self-owned image, by kind."""
        out: dict[str, set[str]] = {k: set() for k in ("instances", "key_pairs",
                                                         "security_groups", "volumes",
                                                         "snapshots", "images")}
        for region in regions:
            ec2 = self.client("ec2", region)
            for r in ec2.describe_instances()["Reservations"]:
                for i in r["Instances"]:
                    if i["State"]["Name"] != "terminated":
                        out["instances"].add(i["InstanceId"])
            out["key_pairs"] |= {k["KeyName"] for k in ec2.describe_key_pairs()["KeyPairs"]}
            out["security_groups"] |= {g["GroupId"] for g in
                                       ec2.describe_security_groups()["SecurityGroups"]
                                       if g["GroupName"] != "default"}
            out["volumes"] |= {v["VolumeId"] for v in ec2.describe_volumes()["Volumes"]}
            out["snapshots"] |= {s["SnapshotId"] for s in
                                 ec2.describe_snapshots(OwnerIds=["self"])["Snapshots"]}
            out["images"] |= {i["ImageId"] for i in ec2.describe_images(Owners=["self"])["Images"]}
        return out
