"""Differential test: `packer validate` (Packer 1.6.6) and `kiln validate` agree on accept/reject.

YAML templates are given to Packer as the equivalent JSON. Templates named
kiln_only_* use what Kiln adds (the local communicator, newer keys) and are
left out.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

CORPUS = Path(__file__).resolve().parents[1] / "corpus" / "validate"
NAMES = sorted(p.name for p in CORPUS.iterdir()
               if p.suffix in (".json", ".yaml") and not p.name.startswith("kiln_only_"))

pytestmark = pytest.mark.packer


@pytest.mark.parametrize("name", NAMES)
def test_packer_and_kiln_agree(name, packer, packer_environ, tmp_path):
    work = tmp_path / "t"
    shutil.copytree(CORPUS, work)
    target = name
    if name.endswith(".yaml"):
        try:
            data = yaml.safe_load((work / name).read_text())
        except yaml.YAMLError:
            data = None
        target = name[:-5] + ".as.json"
        (work / target).write_text(json.dumps(data) if data is not None else "{ not json")
    p = subprocess.run([packer, "validate", target], cwd=work, env=packer_environ,
                       capture_output=True, text=True, timeout=60)
    k = subprocess.run([sys.executable, "-m", "kiln.backend.cli", "validate", name], cwd=work,
                       capture_output=True, text=True, timeout=60)
    assert "Traceback" not in k.stdout + k.stderr
    assert (p.returncode == 0) == (k.returncode == 0), (
        f"packer exit {p.returncode}:\n{p.stdout}{p.stderr}\nkiln exit {k.returncode}:\n{k.stdout}{k.stderr}")
