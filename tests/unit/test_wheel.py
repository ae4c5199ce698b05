"""The wheel installs one import name, ``kiln``, and a build runs from that install.

Built and installed offline: the build backend comes from the running environment
(--no-build-isolation) and the dependencies are not installed into the fresh venv but made
visible to it through PYTHONPATH (a directory on PYTHONPATH has its .pth files ignored, so the
editable install of this checkout cannot leak in: the test checks where kiln came from).
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def site_packages(env_dir: Path) -> Path:
    found = list(env_dir.glob("lib/python3*/site-packages"))
    assert len(found) == 1, found
    return found[0]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
         "--quiet", "-w", str(out), str(ROOT)],
        check=True, capture_output=True, text=True, env={**os.environ, "PIP_NO_INPUT": "1"},
    )
    (whl,) = out.glob("kiln-*.whl")
    return whl


def test_wheel_adds_only_kiln_to_site_packages_and_builds_from_there(wheel, tmp_path):
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    py = env_dir / "bin" / "python"
    site = site_packages(env_dir)
    before = {p.name for p in site.iterdir()}
    # PYTHONPATH pointing at a checkout (its kiln.egg-info) would make pip think kiln is installed
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps", "--no-index",
                    "--quiet", str(wheel)],
                   check=True, capture_output=True, text=True, env=clean)
    added = {p.name for p in site.iterdir()} - before - {"__pycache__"}
    assert {n for n in added if not n.endswith(".dist-info")} == {"kiln"}, added
    assert [n for n in added if n.endswith(".dist-info")] == [wheel.name.split("-")[0] + "-" +
                                                              wheel.name.split("-")[1] + ".dist-info"]
    assert not (site / "backend").exists() and not (site / "tui").exists()

    # the dependencies, seen from the running environment without installing them
    deps = sysconfig.get_paths()["purelib"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env.update(PYTHONPATH=deps, KILN_STATE_DIR=str(tmp_path / "state"))
    where = subprocess.run(
        [str(py), "-c", "import kiln.backend.cli as c, kiln.tui as t; print(c.__file__); print(t.__file__)"],
        capture_output=True, text=True, cwd=tmp_path, env=env, check=True,
    ).stdout.split()
    assert all(Path(w).is_relative_to(site / "kiln") for w in where), where

    work = tmp_path / "work"
    work.mkdir()
    template = work / "null-local.json"
    template.write_text((ROOT / "templates" / "null-local.json").read_text())
    proc = subprocess.run(
        [str(env_dir / "bin" / "kiln"), "build", "-color=false", str(template)],
        capture_output=True, text=True, cwd=work, env=env, timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Builds finished" in proc.stdout, proc.stdout
    assert (work / "build" / "manifest.json").is_file()
