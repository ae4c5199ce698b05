"""`kiln --help` and `kiln validate` stay cheap: none of the heavy libraries is imported."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

CORPUS = Path(__file__).resolve().parents[1] / "corpus" / "validate"
HEAVY = ("boto3", "botocore", "docker", "paramiko", "textual", "rich", "hcl2", "lark")

PROBE = """
import sys, runpy, io, contextlib, json
sys.argv = ["kiln"] + sys.argv[1:]
out = io.StringIO()
code = 0
with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
    try:
        from kiln.backend.cli import main
        code = main(sys.argv[1:])
    except SystemExit as e:
        code = e.code
print(json.dumps({"code": code, "modules": sorted(sys.modules)}))
"""


def loaded(*args: str) -> tuple[int, set[str]]:
    proc = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, cwd=CORPUS)
    data = json.loads(proc.stdout.strip().splitlines()[-1])
    return data["code"], {m.split(".")[0] for m in data["modules"]}


def test_help_imports_nothing_heavy():
    code, mods = loaded("--help")
    assert code == 0
    assert not mods & set(HEAVY), mods & set(HEAVY)


def test_validate_imports_nothing_heavy_even_for_docker_and_amazon_templates(tmp_path):
    tpl = tmp_path / "t.json"
    tpl.write_text(json.dumps({
        "builders": [
            {"type": "docker", "image": "kiln/busybox", "commit": True, "pull": False},
            {"type": "amazon-ebs", "region": "us-east-1", "source_ami": "ami-12345678", "instance_type": "t3.micro",
             "ssh_username": "ubuntu", "ami_name": "kiln-{{timestamp}}"},
        ],
        "provisioners": [{"type": "shell", "inline": ["echo hi"]},
                         {"type": "ansible-local", "playbook_file": str(tpl)}],
        "post-processors": [[{"type": "docker-tag", "repository": "kiln/x", "only": ["docker"]},
                             {"type": "docker-push", "only": ["docker"]}]],
    }))
    code, mods = loaded("validate", str(tpl))
    assert code == 0
    assert not mods & set(HEAVY), mods & set(HEAVY)


def test_validate_of_an_hcl2_amazon_ami_data_source_imports_nothing_heavy(tmp_path):
    tpl = tmp_path / "t.pkr.hcl"
    tpl.write_text('data "amazon-ami" "base" {\n  filters = { name = "base-*" }\n'
                   '  owners = ["self"]\n  most_recent = true\n}\n'
                   'source "null" "a" {\n  communicator = "none"\n}\n'
                   'build {\n  sources = ["source.null.a"]\n  provisioner "shell-local" {\n'
                   '    inline = ["echo ${data.amazon-ami.base.id}"]\n  }\n}\n')
    code, mods = loaded("validate", str(tpl))
    assert code == 0
    assert not mods & set(HEAVY), mods & set(HEAVY)
