"""The amazon-ami data source against a real moto server over HTTP.

``kiln build`` runs the lookup when it loads the template; the null builder and a
shell-local provisioner print what it found, so nothing but DescribeImages is called.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
REGION = "us-east-1"

pytestmark = pytest.mark.timeout(120)


def kiln(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = dict(env, PYTHONPATH=os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", ""))
                                               if p))
    return subprocess.run([sys.executable, "-m", "kiln.backend.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=90, stdin=subprocess.DEVNULL)


@pytest.fixture(scope="module")
def images(moto_server: Any) -> dict[str, Any]:
    """Two AMIs of one family, registered a second apart (moto dates have whole seconds)."""
    prefix = f"kiln-family-{uuid.uuid4().hex[:8]}"
    ec2 = moto_server.client("ec2", REGION)
    ids = []
    for i, role in enumerate(("old", "new")):
        if i:
            time.sleep(1.1)
        ami = ec2.register_image(Name=f"{prefix}-{role}", RootDeviceName="/dev/sda1")["ImageId"]
        ec2.create_tags(Resources=[ami], Tags=[{"Key": "Role", "Value": role}])
        ids.append(ami)
    return {"prefix": prefix, "old": ids[0], "new": ids[1]}


def template(tmp_path: Path, moto: Any, name_filter: str, extra: str = "",
             region: str = f'region = "{REGION}"') -> Path:
    text = f'''
variable "secret" {{
  type    = string
  default = "kiln-data-secret-{uuid.uuid4().hex}"
}}

data "amazon-ami" "base" {{
  filters = {{
    name = "{name_filter}"
  }}
  owners              = ["self"]
  {region}
  custom_endpoint_ec2 = "{moto.endpoint}"
  access_key          = "kiln-data-access"
  secret_key          = var.secret
  {extra}
}}

source "null" "show" {{
  communicator = "none"
}}

build {{
  sources = ["source.null.show"]

  provisioner "shell-local" {{
    inline = [
      "echo id=${{data.amazon-ami.base.id}}",
      "echo name=${{data.amazon-ami.base.name}} role=${{data.amazon-ami.base.tags.Role}}",
      "echo owner=${{data.amazon-ami.base.owner}} secret=${{var.secret}}",
    ]
  }}
}}
'''
    path = tmp_path / "data.pkr.hcl"
    path.write_text(text)
    return path


def test_build_uses_the_newest_matching_ami(tmp_path, moto_server, images, kiln_state_dir):
    path = template(tmp_path, moto_server, images["prefix"] + "-*", "most_recent = true")
    r = kiln(["build", "-color=false", str(path)], moto_server.aws_env(REGION), tmp_path)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert f"show: id={images['new']}" in out
    assert f"show: name={images['prefix']}-new role=new" in out
    assert "owner=" in out and "secret=<sensitive>" in out
    # the secret key reached neither the console nor the build log
    secret = next(line for line in path.read_text().splitlines() if "kiln-data-secret-" in line)
    secret = secret.split('"')[1]
    logs = list(kiln_state_dir.rglob("*.log")) + list(tmp_path.rglob("*.log"))
    assert logs
    for text in [out] + [p.read_text(errors="replace") for p in logs]:
        assert secret not in text


def test_region_comes_from_the_environment(tmp_path, moto_server, images, kiln_state_dir):
    # as in Packer's own example template: no region in the data block
    path = template(tmp_path, moto_server, images["prefix"] + "-old", region="")
    r = kiln(["build", "-color=false", str(path)], moto_server.aws_env(REGION), tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"show: id={images['old']}" in r.stdout


@pytest.mark.parametrize("name_filter, extra, message", [
    ("{prefix}-*", "", "more than one result"),
    ("kiln-no-such-family-*", "most_recent = true", "No AMI was found matching filters"),
])
def test_lookup_failures_are_located(tmp_path, moto_server, images, kiln_state_dir,
                                     name_filter, extra, message):
    path = template(tmp_path, moto_server, name_filter.format(**images), extra)
    r = kiln(["build", "-color=false", str(path)], moto_server.aws_env(REGION), tmp_path)
    out = r.stdout + r.stderr
    assert r.returncode == 1, out
    assert f"{path}:7:1: data.amazon-ami.base: " in out
    assert message in out
    assert "Traceback" not in out
    assert "echo id=" not in out  # nothing was built


def test_validate_leaves_the_lookup_to_the_build_unless_asked(tmp_path, moto_server, images,
                                                              kiln_state_dir):
    path = template(tmp_path, moto_server, "kiln-no-such-family-*", "most_recent = true")
    env = moto_server.aws_env(REGION)
    r = kiln(["validate", str(path)], env, tmp_path)
    assert (r.returncode, r.stdout.strip()) == (0, "The configuration is valid."), r.stderr
    r = kiln(["validate", "-evaluate-datasources", str(path)], env, tmp_path)
    assert r.returncode == 1
    assert "No AMI was found matching filters" in r.stdout + r.stderr
