"""Least privilege against a moto server that enforces IAM (see tests/support/iam_moto.py).

Builds provision the loopback sshd (``ssh_host``), as the amazon-ebs tests do; moto's
instances are never contacted. Each test makes its own users, so tests share one server.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from iam_moto import (
    PACKER_DOCUMENTED_ACTIONS,
    UBUNTU_NAME,
    UBUNTU_OWNER,
    IamMoto,
    policy_document,
)
from kiln_services import ServiceUnavailable

REPO = Path(__file__).resolve().parents[2]
REGION = "us-east-1"
COPY_REGION = "us-west-2"

pytestmark = pytest.mark.timeout(300)


def unavailable(reason: str) -> None:
    """As the shared fixtures do: fail under CI, skip otherwise."""
    if os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no"):
        pytest.fail(f"required service unavailable in CI: {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def iam_moto() -> Iterator[IamMoto]:
    server = IamMoto()
    try:
        server.start()
    except ServiceUnavailable as exc:
        unavailable(str(exc))
    try:
        # warm both regions (moto loads its default AMIs on the first call) before enforcing
        for region in (REGION, COPY_REGION):
            server.client("ec2", region).describe_regions()
        server.enforce()
        yield server
    finally:
        server.stop()


def kiln(args: list[str], env: dict[str, str], cwd: Path, timeout: float = 120
         ) -> subprocess.CompletedProcess[str]:
    env = dict(env)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    return subprocess.run([sys.executable, "-m", "kiln.backend.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def template(moto: IamMoto, sshd: Any, **extra: Any) -> dict[str, Any]:
    builder: dict[str, Any] = {
        "type": "amazon-ebs",
        "region": REGION,
        "custom_endpoint_ec2": moto.endpoint,
        "source_ami_filter": {"filters": {"name": UBUNTU_NAME}, "owners": [UBUNTU_OWNER],
                              "most_recent": True},
        "instance_type": "t3.micro",
        "ami_name": f"kiln-iam-{uuid.uuid4().hex[:10]}",
        "ssh_host": sshd.host,
        "ssh_port": sshd.port,
        "ssh_username": sshd.user,
        "ssh_private_key_file": sshd.private_key_path,
        "ssh_timeout": "20s",
    }
    builder.update(extra)
    return {"builders": [builder],
            "provisioners": [{"type": "shell", "inline": ["echo provisioned-under-iam"]}]}


def write(tmp: Path, tpl: dict[str, Any], name: str = "template.json") -> Path:
    path = tmp / name
    path.write_text(json.dumps(tpl, indent=2))
    return path


def env_for(moto: IamMoto, keys: tuple[str, str], tmp: Path) -> dict[str, str]:
    env = moto.env(keys)
    env["KILN_STATE_DIR"] = str(tmp / "state")
    env["CHECKPOINT_DISABLE"] = "1"
    return env


# --------------------------------------------------------------------------- the finding


def test_packer_and_kiln_build_with_packers_documented_policy(
        iam_moto: IamMoto, sshd: Any, packer: str, packer_environ: dict[str, str],
        tmp_path: Path) -> None:
    """A user holding exactly Packer's documented policy builds the same template with
    Packer 1.6.6 and with Kiln (which used to need ec2:DescribeVpcs for a default-VPC
    check Packer does not make: the check is now skipped when it is not allowed)."""
    keys = iam_moto.user(policy_document(PACKER_DOCUMENTED_ACTIONS))
    before = iam_moto.inventory()

    tpl = template(iam_moto, sshd)
    path = write(tmp_path, tpl, "packer.json")
    penv = iam_moto.env(keys, base=packer_environ)
    p = subprocess.run([packer, "build", "-color=false", str(path)], env=penv, cwd=tmp_path,
                       capture_output=True, text=True, timeout=240, stdin=subprocess.DEVNULL)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "provisioned-under-iam" in p.stdout

    tpl = template(iam_moto, sshd)
    name = tpl["builders"][0]["ami_name"]
    r = kiln(["build", "-color=false", str(write(tmp_path, tpl))], env_for(iam_moto, keys,
                                                                           tmp_path), tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "provisioned-under-iam" in r.stdout
    assert "lack the optional ec2:DescribeVpcs permission" in r.stdout
    images = iam_moto.client("ec2").describe_images(
        Owners=["self"], Filters=[{"Name": "name", "Values": [name]}])["Images"]
    assert len(images) == 1

    after = iam_moto.inventory()
    # both builds left exactly one AMI each (and its snapshot), nothing else
    assert after["instances"] == before["instances"]
    assert after["key_pairs"] == before["key_pairs"]
    assert after["security_groups"] == before["security_groups"]
    assert len(after["images"] - before["images"]) == 2


# --------------------------------------------------------------------------- preflight


def derived_policy(tmp: Path, path: Path, env: dict[str, str]) -> dict[str, Any]:
    """``kiln iam policy -narrow=false``: moto compares every statement's Resource with "*"
    and cannot meet a narrowed ARN (a moto limit, see iam_moto), so the policy is enforced
    here with its resources widened; the narrowing has unit tests of its own."""
    r = kiln(["iam", "policy", "-narrow=false", str(path)], env, tmp)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_iam_check_with_all_permissions_creates_nothing(iam_moto: IamMoto, sshd: Any,
                                                        tmp_path: Path) -> None:
    tpl = template(iam_moto, sshd, ami_regions=[COPY_REGION], ami_users=["111122223333"],
                   ssh_private_key_file="", ssh_keypair_name="", ami_groups=["all"],
                   snapshot_users=["111122223333"], deprecate_at="2031-01-02T15:04:05Z",
                   ena_support=True, tags={"a": "b"})
    path = write(tmp_path, tpl)
    before = iam_moto.inventory((REGION, COPY_REGION))
    r = kiln(["iam", "check", str(path)], env_for(iam_moto, iam_moto.admin, tmp_path), tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "denied" not in r.stdout
    for action in ("ec2:RunInstances", "ec2:CreateImage", "ec2:ImportKeyPair",
                   "ec2:CopyImage", "ec2:CreateSecurityGroup", "ec2:ModifyImageAttribute"):
        assert f"allowed    {action}" in r.stdout, r.stdout
    # moto does not implement EnableImageDeprecation: the preflight says it could not check
    assert "unchecked  ec2:EnableImageDeprecation" in r.stdout
    assert iam_moto.inventory((REGION, COPY_REGION)) == before


def test_the_derived_policy_builds_the_plain_template(iam_moto: IamMoto, sshd: Any,
                                                     tmp_path: Path) -> None:
    tpl = template(iam_moto, sshd)
    path = write(tmp_path, tpl)
    doc = derived_policy(tmp_path, path, env_for(iam_moto, iam_moto.admin, tmp_path))
    keys = iam_moto.user(doc)
    r = kiln(["build", "-color=false", str(path)], env_for(iam_moto, keys, tmp_path), tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "provisioned-under-iam" in r.stdout
    assert "Checked the permissions of arn:aws:iam::123456789012:user/builder-" in r.stdout
    assert " denied" not in r.stdout
    # the preflight is the build's first stage
    stages = [line.split()[0:2] for line in r.stdout.split("Stage timings", 1)[1].splitlines()
              if line.startswith("      ")]
    assert stages[0] == ["Check", "permissions"], stages


HCL_FULL = """
data "amazon-parameterstore" "base" {
  name   = "/kiln/iam-test/base"
  region = "%(region)s"
}
source "amazon-ebs" "full" {
  region              = "%(region)s"
  custom_endpoint_ec2 = "%(endpoint)s"
  source_ami_filter {
    filters     = { name = "%(ubuntu)s" }
    owners      = ["%(owner)s"]
    most_recent = true
  }
  instance_type        = "t3.micro"
  ami_name             = "%(ami_name)s"
  ami_description      = "from ${data.amazon-parameterstore.base.value}"
  ami_regions          = ["%(copy)s"]
  ami_users            = ["111122223333"]
  encrypt_boot         = true
  ssh_host             = "%(host)s"
  ssh_port             = %(port)d
  ssh_username         = "%(user)s"
  ssh_private_key_file = "%(key)s"
  ssh_timeout          = "20s"
}
build {
  sources = ["source.amazon-ebs.full"]
  provisioner "shell" { inline = ["echo provisioned-under-iam"] }
}
"""


def test_the_derived_policy_builds_a_template_with_options_and_a_data_source(
        iam_moto: IamMoto, sshd: Any, tmp_path: Path) -> None:
    iam_moto.client("ssm").put_parameter(Name="/kiln/iam-test/base", Value="base-v1",
                                         Type="String", Overwrite=True)
    ami_name = f"kiln-iam-full-{uuid.uuid4().hex[:8]}"
    path = tmp_path / "full.pkr.hcl"
    path.write_text(HCL_FULL % {
        "region": REGION, "endpoint": iam_moto.endpoint, "ubuntu": UBUNTU_NAME,
        "owner": UBUNTU_OWNER, "ami_name": ami_name, "copy": COPY_REGION, "host": sshd.host,
        "port": sshd.port, "user": sshd.user, "key": sshd.private_key_path})
    admin = env_for(iam_moto, iam_moto.admin, tmp_path)
    doc = derived_policy(tmp_path, path, admin)
    acts = {a for st in doc["Statement"] for a in st["Action"]}
    assert {"ec2:CopyImage", "ec2:ModifyImageAttribute", "ssm:GetParameter"} <= acts
    keys = iam_moto.user(doc)
    r = kiln(["build", "-color=false", str(path)], env_for(iam_moto, keys, tmp_path), tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    for region in (REGION, COPY_REGION):
        images = iam_moto.client("ec2", region).describe_images(
            Owners=["self"], Filters=[{"Name": "name", "Values": [ami_name]}])["Images"]
        assert len(images) == 1, region
        assert images[0]["Description"] == "from base-v1"

    # without the data source's permission, loading the template stops, naming it
    less = {"Version": doc["Version"], "Statement": [
        {**st, "Action": [a for a in st["Action"] if a != "ssm:GetParameter"]}
        for st in doc["Statement"] if st["Action"] != ["ssm:GetParameter"]]}
    r = kiln(["build", "-color=false", str(path)],
             env_for(iam_moto, iam_moto.user(less), tmp_path), tmp_path)
    assert r.returncode == 1
    assert "missing permission ssm:GetParameter" in r.stderr + r.stdout


def test_each_action_removed_is_named_by_the_preflight_and_nothing_is_created(
        iam_moto: IamMoto, sshd: Any, tmp_path: Path) -> None:
    tpl = template(iam_moto, sshd)
    path = write(tmp_path, tpl)
    doc = derived_policy(tmp_path, path, env_for(iam_moto, iam_moto.admin, tmp_path))
    every = sorted({a for st in doc["Statement"] for a in st["Action"]})
    assert len(every) >= 10
    before = iam_moto.inventory()
    for action in every:
        less = {"Version": doc["Version"], "Statement": [
            {**st, "Action": [a for a in st["Action"] if a != action]}
            for st in doc["Statement"] if st["Action"] != [action]]}
        r = kiln(["build", "-color=false", str(path)],
                 env_for(iam_moto, iam_moto.user(less), tmp_path), tmp_path)
        out = r.stdout + r.stderr
        assert r.returncode == 1, (action, out)
        assert f"missing permission {action} (needed by step" in out, (action, out)
        assert "; nothing was created." in out, (action, out)
        assert f'"{action}"' in out.split("Add this statement", 1)[1], (action, out)
        # the preflight stopped the build: no later stage ran
        assert "Creating temporary security group" not in out, (action, out)
        assert iam_moto.inventory() == before, action


def test_preflight_false_skips_the_check(iam_moto: IamMoto, sshd: Any, tmp_path: Path
                                         ) -> None:
    tpl = template(iam_moto, sshd)
    path = write(tmp_path, tpl)
    doc = derived_policy(tmp_path, path, env_for(iam_moto, iam_moto.admin, tmp_path))
    less = {"Version": doc["Version"], "Statement": [
        {**st, "Action": [a for a in st["Action"] if a != "ec2:CreateImage"]}
        for st in doc["Statement"] if st["Action"] != ["ec2:CreateImage"]]}
    env = env_for(iam_moto, iam_moto.user(less), tmp_path)
    r = kiln(["build", "-color=false", "-preflight=false", str(path)], env, tmp_path)
    # the build runs until CreateImage itself is refused (moto: AccessDenied), then cleans up
    assert r.returncode == 1
    assert "Checked the permissions" not in r.stdout
    assert "provisioned-under-iam" in r.stdout
    assert "Error creating AMI: AccessDenied" in r.stdout + r.stderr
    r = kiln(["iam", "check", str(path)], env, tmp_path)
    assert r.returncode == 1
    assert "denied     ec2:CreateImage" in r.stdout
    assert "missing permission ec2:CreateImage" in r.stderr


def test_check_names_what_it_cannot_check_on_moto(iam_moto: IamMoto, sshd: Any,
                                                  tmp_path: Path) -> None:
    """moto implements neither iam:SimulatePrincipalPolicy nor KMS checks in EC2 calls:
    PassRole and the kms actions come out unchecked, with the reason, and do not stop the
    check. The instance profile itself is read (iam:GetInstanceProfile), so a denial of
    that read is named; the temporary key pair's ImportKeyPair is checked by DryRun."""
    iam = iam_moto.client("iam")
    name = f"kiln-profile-{uuid.uuid4().hex[:6]}"
    iam.create_instance_profile(InstanceProfileName=name)
    tpl = template(iam_moto, sshd, iam_instance_profile=name, ssh_private_key_file="",
                   encrypt_boot=True,
                   kms_key_id="arn:aws:kms:us-east-1:123456789012:key/"
                              "1234abcd-12ab-34cd-56ef-1234567890ab")
    path = write(tmp_path, tpl)
    admin = env_for(iam_moto, iam_moto.admin, tmp_path)
    r = kiln(["iam", "check", str(path)], admin, tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "allowed    iam:GetInstanceProfile" in r.stdout
    assert "allowed    ec2:ImportKeyPair" in r.stdout
    unchecked = [line for line in r.stdout.splitlines() if line.startswith("  unchecked")]
    assert any("iam:PassRole" in line and "(the endpoint cannot run "
               "iam:SimulatePrincipalPolicy)" in line for line in unchecked), r.stdout
    assert any("kms:CreateGrant" in line for line in unchecked), r.stdout

    doc = derived_policy(tmp_path, path, admin)
    for action in ("iam:GetInstanceProfile", "ec2:ImportKeyPair", "ec2:DeleteKeyPair",
                   "ec2:CopyImage"):
        less = {"Version": doc["Version"], "Statement": [
            {**st, "Action": [a for a in st["Action"] if a != action]}
            for st in doc["Statement"] if st["Action"] != [action]]}
        r = kiln(["iam", "check", str(path)], env_for(iam_moto, iam_moto.user(less), tmp_path),
                 tmp_path)
        assert r.returncode == 1, (action, r.stdout)
        assert f"denied     {action}" in r.stdout, (action, r.stdout)
        assert f"missing permission {action} (needed by step" in r.stderr, (action, r.stderr)
