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


@pytest.fixture(scope="module")
def iam_moto() -> Iterator[IamMoto]:
    from conftest import service_unavailable

    server = IamMoto()
    try:
        server.start()
    except ServiceUnavailable as exc:
        service_unavailable(str(exc))
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
    return subprocess.run([sys.executable, "-m", "backend.cli", *args], cwd=cwd, env=env,
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
