"""The amazon-parameterstore and amazon-secretsmanager data sources against a moto server
over HTTP (reached through AWS_ENDPOINT_URL, as any SDK would)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
REGION = "us-east-1"

pytestmark = pytest.mark.timeout(120)


def build(tmp_path: Path, moto: Any, data: str, lines: list[str]) -> subprocess.CompletedProcess:
    inline = ",\n      ".join(json.dumps(x) for x in lines)
    (tmp_path / "t.pkr.hcl").write_text(f'''
{data}

source "null" "show" {{
  communicator = "none"
}}

build {{
  sources = ["source.null.show"]
  provisioner "shell-local" {{
    inline = [
      {inline}
    ]
  }}
}}
''')
    env = moto.aws_env(REGION)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    return subprocess.run([sys.executable, "-m", "kiln.backend.cli", "build", "-color=false",
                           str(tmp_path / "t.pkr.hcl")], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=90, stdin=subprocess.DEVNULL)


def test_parameters_plain_and_secure(tmp_path, moto_server, kiln_state_dir):
    ssm = moto_server.client("ssm", REGION)
    base = f"/kiln/{uuid.uuid4().hex[:8]}"
    ssm.put_parameter(Name=f"{base}/version", Value="1.2.3", Type="String")
    secure = f"s3cr3t-{uuid.uuid4().hex}"
    ssm.put_parameter(Name=f"{base}/password", Value=secure, Type="SecureString")
    data = f'''
data "amazon-parameterstore" "version" {{
  name = "{base}/version"
}}

data "amazon-parameterstore" "password" {{
  name            = "{base}/password"
  with_decryption = true
}}'''
    r = build(tmp_path, moto_server, data, [
        "echo version=${data.amazon-parameterstore.version.value}",
        "echo v${data.amazon-parameterstore.version.version} "
        "${data.amazon-parameterstore.version.arn}",
        "echo password=${data.amazon-parameterstore.password.value}",
        "test '${data.amazon-parameterstore.password.value}' = " + f"'{secure}'"])
    out = r.stdout + r.stderr
    assert r.returncode == 0, out  # the last line checks the real value reached the command
    assert "show: version=1.2.3" in out
    assert f":parameter{base}/version" in out
    assert "show: password=<sensitive>" in out and secure not in out
    for log in kiln_state_dir.rglob("*.log"):
        assert secure not in log.read_text(errors="replace")


def test_missing_parameter_is_a_located_error(tmp_path, moto_server, kiln_state_dir):
    data = 'data "amazon-parameterstore" "nope" {\n  name = "/kiln/no/such/thing"\n}'
    r = build(tmp_path, moto_server, data, ["echo ${data.amazon-parameterstore.nope.value}"])
    out = r.stdout + r.stderr
    assert r.returncode == 1, out
    assert "t.pkr.hcl:2:1: data.amazon-parameterstore.nope: there is no parameter " \
           f"/kiln/no/such/thing in {REGION}" in out


def test_secrets_whole_and_by_key(tmp_path, moto_server, kiln_state_dir):
    sm = moto_server.client("secretsmanager", REGION)
    name = f"kiln/{uuid.uuid4().hex[:8]}"
    password = f"pw-{uuid.uuid4().hex}"
    sm.create_secret(Name=name, SecretString=json.dumps({"user": "builder",
                                                         "password": password}))
    data = f'''
data "amazon-secretsmanager" "db" {{
  name = "{name}"
  key  = "password"
}}

data "amazon-secretsmanager" "whole" {{
  name = "{name}"
}}'''
    r = build(tmp_path, moto_server, data, [
        "echo password=${data.amazon-secretsmanager.db.value}",
        "echo whole=${data.amazon-secretsmanager.whole.value}",
        "test '${data.amazon-secretsmanager.db.value}' = " + f"'{password}'",
        "test -n '${data.amazon-secretsmanager.db.version_id}'"])
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert "show: password=<sensitive>" in out
    # the shell took the JSON's quotes off; the password inside is still masked
    assert "show: whole={user: builder, password: <sensitive>}" in out
    assert password not in out

    data = f'data "amazon-secretsmanager" "db" {{\n  name = "{name}"\n  key  = "pasword"\n}}'
    r = build(tmp_path, moto_server, data, ["echo ${data.amazon-secretsmanager.db.value}"])
    out = r.stdout + r.stderr
    assert r.returncode == 1, out
    assert f'secret {name} has no key "pasword" (it has: password, user)' in out
    assert password not in out
