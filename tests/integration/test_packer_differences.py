"""Where Kiln differs from Packer 1.6.6 on purpose: each test shows Packer's behaviour and
Kiln's, so the README's "Differences from Packer 1.6.6" stays true both ways (a Kiln change
that drops the difference, or a reference that no longer has it, fails here)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "support"))

import packer_diff  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
README = (REPO / "README.md").read_text()
DIFFERENCES = README[README.index("## Differences from Packer 1.6.6"):]

pytestmark = pytest.mark.packer


def run(tool: list[str], args: list[str], cwd: Path, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([*tool, *args], cwd=cwd, env=env, capture_output=True, text=True,
                          errors="replace",
                          timeout=180, stdin=subprocess.DEVNULL)


KILN = [sys.executable, "-m", "kiln.backend.cli"]


def test_json_template_with_a_byte_order_mark(tmp_path, packer, packer_environ):
    """Packer stops at the BOM; Kiln reads the template and warns that Packer would not."""
    path = tmp_path / "bom.json"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(
        {"builders": [{"type": "null", "communicator": "none"}]}).encode())
    ref = run([packer], ["validate", path.name], tmp_path, packer_environ)
    assert ref.returncode == 1 and "invalid character" in ref.stdout + ref.stderr
    ours = run(KILN, ["validate", path.name], tmp_path, packer_diff.kiln_env(packer_environ))
    assert ours.returncode == 0, ours.stdout + ours.stderr
    assert ours.stdout.startswith("Warning: bom.json starts with a byte-order mark; Kiln reads "
                                  "past it, but Packer rejects the template")
    assert "byte-order mark" in DIFFERENCES


@pytest.mark.docker
def test_docker_tag_without_a_repository(tmp_path, base_image, packer, packer_environ):
    """Packer validates it and fails at the docker-tag step once the image is built; Kiln
    refuses it at validate, before anything runs."""
    path = tmp_path / "tag.json"
    path.write_text(json.dumps({
        "builders": [{"type": "docker", "image": base_image, "pull": False, "commit": True}],
        "post-processors": [{"type": "docker-tag"}],
    }))
    assert run([packer], ["validate", path.name], tmp_path, packer_environ).returncode == 0
    built = run([packer], ["build", path.name], tmp_path, packer_environ)
    assert built.returncode == 1 and "is not a valid repository/tag" in built.stdout
    image = next(line.split("Image ID: ")[1].strip() for line in built.stdout.splitlines()
                 if "Image ID: " in line)
    subprocess.run(["docker", "rmi", image], capture_output=True, timeout=60)
    ours = run(KILN, ["validate", path.name], tmp_path, packer_diff.kiln_env(packer_environ))
    assert ours.returncode == 1
    assert "post-processors[0].repository: repository must be given" in ours.stderr
    assert "`docker-tag` without `repository`" in DIFFERENCES


def test_hcl2_post_processor_step_line(tmp_path, packer, packer_environ):
    """Packer 1.6.6 prints an HCL2 post-processor as "Running post-processor:  (type
    manifest)" (its name is empty there); Kiln prints it as for JSON templates."""
    (tmp_path / "pp.pkr.hcl").write_text(
        'source "null" "a" {\n  communicator = "none"\n}\n'
        'build {\n  sources = ["source.null.a"]\n'
        '  post-processor "shell-local" {\n    inline = ["true"]\n  }\n}\n')
    ref = run([packer], ["build", "-machine-readable", "pp.pkr.hcl"], tmp_path, packer_environ)
    ours = run([*KILN, "build"], ["-machine-readable", "pp.pkr.hcl"], tmp_path,
               packer_diff.kiln_env(packer_environ))
    assert "==> null.a: Running post-processor:  (type shell-local)" in ref.stdout
    assert "==> null.a: Running post-processor: shell-local\n" in ours.stdout
    assert "Running post-processor:  (type" in DIFFERENCES


def test_a_failed_compress_leaves_no_partial_archive(tmp_path, packer, packer_environ):
    """Compressing the null builder's no file into one .gz fails in both; Packer leaves the
    archive it had begun, Kiln removes it."""
    (tmp_path / "c.json").write_text(json.dumps({
        "builders": [{"type": "null", "communicator": "none"}],
        "post-processors": [{"type": "compress", "output": "out/x.gz"}]}))
    (tmp_path / "k").mkdir()
    (tmp_path / "k" / "c.json").write_text((tmp_path / "c.json").read_text())
    ref = run([packer], ["build", "c.json"], tmp_path, packer_environ)
    ours = run(KILN, ["build", "c.json"], tmp_path / "k", packer_diff.kiln_env(packer_environ))
    assert (ref.returncode, ours.returncode) == (1, 1)
    assert (tmp_path / "out" / "x.gz").exists()
    assert not (tmp_path / "k" / "out" / "x.gz").exists()
    assert "partial archive" in DIFFERENCES
