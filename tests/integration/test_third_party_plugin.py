"""A third-party package adds a builder (and its reaper) with no change to Kiln.

tests/corpus/plugins/kiln-hello is a plugin package written against kiln.backend.sdk only; it
declares its builder and reaper as entry points in the kiln.plugins group. It is installed
(offline, with pip --target) into a directory that Kiln's process then has on its path.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

PLUGIN = Path(__file__).resolve().parents[1] / "corpus" / "plugins" / "kiln-hello"


@pytest.fixture(scope="module")
def plugin_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("plugins")
    work = tmp_path_factory.mktemp("plugin-src")
    src = work / "kiln-hello"
    subprocess.run(["cp", "-r", str(PLUGIN), str(src)], check=True)  # setuptools writes build/ there
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index",
         "--quiet", "--target", str(target), str(src)],
        check=True, capture_output=True, text=True, env={**os.environ, "PIP_NO_INPUT": "1"},
    )
    assert (target / "kiln_hello").is_dir()
    return target


def kiln(plugin_dir: Path | None, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    if plugin_dir is not None:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(plugin_dir), env.get("PYTHONPATH", "")) if p)
    return subprocess.run([sys.executable, "-m", "kiln.backend.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def template(tmp_path: Path, **config: str) -> Path:
    tpl = tmp_path / "hello.json"
    tpl.write_text(json.dumps({
        "builders": [{"type": "hello", **config}],
        "provisioners": [{"type": "shell-local", "inline": ["echo provisioned"]}],
        "post-processors": [{"type": "manifest", "output": "manifest.json"}],
    }))
    return tpl


def test_an_installed_plugin_package_adds_a_builder(plugin_dir, tmp_path):
    tpl = template(tmp_path, greeting="hi there", output="greeting.txt")
    proc = kiln(plugin_dir, tmp_path, "build", "-color=false", str(tpl))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (tmp_path / "greeting.txt").read_text() == "hi there\n"
    assert "==> hello: Wrote 'hi there' to" in proc.stdout
    assert "    hello: provisioned" in proc.stdout
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["builds"][0]["builder_type"] == "hello"
    assert manifest["builds"][0]["artifact_id"] == "hello"


def test_the_plugins_config_is_checked_like_a_builtin(plugin_dir, tmp_path):
    tpl = template(tmp_path, greeting="goodbye", colour="red")
    proc = kiln(plugin_dir, tmp_path, "validate", str(tpl))
    assert proc.returncode == 1
    assert "a hello builder does not say goodbye" in proc.stderr + proc.stdout
    assert "colour" in proc.stderr + proc.stdout


def test_without_the_package_the_type_is_unknown(tmp_path):
    tpl = template(tmp_path, greeting="hi")
    proc = kiln(None, tmp_path, "validate", str(tpl))
    assert proc.returncode == 1
    assert 'unknown builder type "hello"' in proc.stderr + proc.stdout


def test_kiln_cleanup_uses_the_reaper_the_plugin_declares(plugin_dir, tmp_path):
    # a run killed after the step recorded its file: the record outlives the process
    state = tmp_path / "state"
    left = tmp_path / "left-behind.txt"
    left.write_text("hi\n")
    probe = (
        "import os, sys\n"
        "from kiln.backend.engine.ledger import Ledger\n"
        "ledger = Ledger('killed-run')\n"
        f"ledger.record('hello-file', {str(left)!r})\n"
        "os._exit(0)\n"
    )
    env = {**os.environ, "KILN_STATE_DIR": str(state),
           "PYTHONPATH": os.pathsep.join(p for p in (str(plugin_dir), os.environ.get("PYTHONPATH", "")) if p)}
    subprocess.run([sys.executable, "-c", probe], check=True, env=env)
    proc = subprocess.run([sys.executable, "-m", "kiln.backend.cli", "cleanup"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert not left.exists()
