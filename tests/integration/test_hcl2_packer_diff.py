"""HCL2 templates: Kiln agrees with Packer 1.6.6.

* ``kiln validate`` and ``packer validate`` accept and reject the same corpus templates
  (tests/corpus/hcl2/, those whose header says ``packer-1.6.6: accept`` or ``reject``);
  ``newer`` marks a feature of later Packer releases that Kiln accepts and 1.6.6 rejects
  (each listed in the README's differences from Packer).
* Every accepted template that builds offline builds to the same result with both tools:
  command output per build, artifacts and every file written (tests/support/packer_diff.py).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "support"))

import packer_diff  # noqa: E402

CORPUS = Path(__file__).resolve().parents[1] / "corpus" / "hcl2"

pytestmark = pytest.mark.packer

KNOWN_FLAKY: dict[str, str] = {}


def header(path: Path) -> str:
    return (path / "variables.pkr.hcl").read_text() if path.is_dir() else path.read_text()


def packer_expectation(path: Path) -> str:
    m = re.search(r"packer-1\.6\.6: (accept|reject|newer)", header(path))
    assert m, f"{path.name} says nothing about Packer 1.6.6"
    return m.group(1)


def cases(kind: str | None = None) -> list[str]:
    out = []
    for p in sorted(CORPUS.iterdir()):
        if not (p.is_dir() or p.name.endswith((".pkr.hcl", ".pkr.json"))):
            continue
        exp = packer_expectation(p)
        if kind == "build" and (exp != "accept" or "build: yes" not in header(p)):
            continue
        out.append(p.name)
    return out


def test_enough_templates_are_compared():
    assert len(cases()) >= 20
    assert len(cases("build")) >= 10


@pytest.mark.parametrize("name", cases())
def test_validate_agrees_with_packer(name, packer, packer_environ, tmp_path):
    target = "." if (CORPUS / name).is_dir() else name
    cwd = CORPUS / name if (CORPUS / name).is_dir() else CORPUS
    ref = subprocess.run([packer, "validate", target], cwd=cwd, env=packer_environ,
                         capture_output=True, text=True, timeout=120)
    env = packer_diff.kiln_env(packer_environ)
    env["KILN_STATE_DIR"] = str(tmp_path)
    ours = subprocess.run([sys.executable, "-m", "kiln.backend.cli", "validate", target], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=120)
    expected = packer_expectation(CORPUS / name)
    assert (ref.returncode == 0) == (expected == "accept"), ref.stdout + ref.stderr
    if expected == "newer":  # a later Packer's feature: Kiln accepts it
        assert ours.returncode == 0, ours.stdout + ours.stderr
        return
    assert (ours.returncode == 0) == (ref.returncode == 0), (
        f"packer exit {ref.returncode}:\n{ref.stdout}{ref.stderr}\n"
        f"kiln exit {ours.returncode}:\n{ours.stdout}{ours.stderr}")
    assert "Traceback" not in ours.stderr


def _build_case(name: str):
    reason = KNOWN_FLAKY.get(name)
    return pytest.param(name, marks=pytest.mark.xfail(strict=False, reason=reason)) \
        if reason else name


@pytest.mark.parametrize("name", [_build_case(n) for n in cases("build")])
def test_build_agrees_with_packer(name, packer, packer_environ, tmp_path):
    kiln = packer_diff.kiln_command()
    state = tmp_path / "kiln-state"
    ref = packer_diff.run_build("packer", packer_diff.packer_command(packer), CORPUS, name, [],
                                env=packer_environ, parent=tmp_path)
    ours = packer_diff.run_build("kiln", [*kiln, f"-state-dir={state}"], CORPUS, name, [],
                                 env=packer_diff.kiln_env(packer_environ), parent=tmp_path)
    diffs = packer_diff.compare(ref, ours)
    assert not diffs, "\n".join(diffs) + "\n\n" + ref.describe() + "\n\n" + ours.describe()
    assert ours.exit_code == 0, ours.describe()

