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


KILN = [sys.executable, "-m", "backend.cli"]


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
