"""What a normal install brings: runtime dependencies the code needs, pinned where it must be."""

from __future__ import annotations

import sqlite3
import tomllib
from importlib import metadata
from pathlib import Path

from kiln.backend.engine.ledger import Ledger
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]


def runtime_requirements() -> dict[str, Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return {Requirement(r).name: Requirement(r) for r in project["dependencies"]}


def test_lz4_and_re2_are_runtime_dependencies():
    # compress writes .lz4 and HCL2's regex functions use RE2 in a plain `pip install .`
    deps = runtime_requirements()
    assert "lz4" in deps and "google-re2" in deps


def test_paramiko_is_held_to_the_major_version_the_code_was_written_for():
    spec = runtime_requirements()["paramiko"].specifier
    installed = metadata.version("paramiko")
    major = int(installed.split(".")[0])
    assert spec.contains(installed)
    assert not spec.contains(f"{major + 1}.0.0"), "paramiko's internals change between majors"


def test_ledger_commits_survive_power_loss(tmp_path):
    ledger = Ledger("run", path=str(tmp_path / "ledger.db"))
    try:
        level = ledger._db.execute("PRAGMA synchronous").fetchone()[0]
    finally:
        ledger.close()
    assert level == 2  # FULL; NORMAL (1) may drop the last records in WAL mode
    with sqlite3.connect(tmp_path / "ledger.db") as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
