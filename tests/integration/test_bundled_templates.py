"""Every template in templates/ validates, and the offline ones build, as a new user runs them."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = ROOT / "templates"
KILN = [sys.executable, "-m", "kiln.backend.cli"]

# variables a user would fill in before a real build; enough to validate offline
VALIDATE_VARS = {
    "amazon-ebs.json": ["-var", "region=us-east-1", "-var", "aws_access_key=AKIAEXAMPLE",
                        "-var", "aws_secret_key=example"],
}


def names():
    return sorted(p.name for p in TEMPLATES.iterdir()
                  if p.is_file() and p.name.endswith((".json", ".yaml", ".yml", ".pkr.hcl")))


@pytest.mark.parametrize("name", names())
def test_bundled_template_validates(name, tmp_path):
    work = tmp_path / "templates"
    shutil.copytree(TEMPLATES, work)
    extra = list(VALIDATE_VARS.get(name, []))
    if name == "amazon-instance.json":  # the X.509 pair must exist; give it files that do
        for var in ("x509_cert_path", "x509_key_path"):
            (tmp_path / f"{var}.pem").write_text("placeholder\n")
            extra += ["-var", f"{var}={tmp_path / f'{var}.pem'}"]
        extra += ["-var", "account_id=123456789012", "-var", "s3_bucket=my-bundles"]
    if name == "ansible-ssh.json":  # the example names ~/.ssh/id_ed25519; give it a key that exists
        key = tmp_path / "id_ed25519"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
        extra += ["-var", f"key={key}"]
    proc = subprocess.run([*KILN, "validate", *extra, name], cwd=work,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_readme_example_builds_offline(tmp_path):
    """The README's first command: build templates/null-local.json from the repository root."""
    shutil.copytree(TEMPLATES, tmp_path / "templates")
    proc = subprocess.run([*KILN, "build", "templates/null-local.json"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Build 'local' finished" in proc.stdout and "Build 'release-notes' finished" in proc.stdout
    assert "s3cr3t-token-value" not in proc.stdout  # a sensitive variable
    build = tmp_path / "build"
    assert (build / "from-file-provisioner.txt").read_text() == "written by kiln\n"
    manifest = json.loads((build / "manifest.json").read_text())
    assert {b["name"] for b in manifest["builds"]} == {"local", "release-notes"}
    assert (build / "release-notes.sha256").read_text().endswith("\trelease-notes.tar.gz\n")


def test_hcl2_example_builds_offline(tmp_path):
    shutil.copytree(TEMPLATES, tmp_path / "templates")
    proc = subprocess.run([*KILN, "build", "templates/hcl2-null.pkr.hcl"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
