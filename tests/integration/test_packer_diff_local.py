"""Differential tests: local templates (null and file builders, shell-local, manifest,
compress, checksum, artifice) built by Packer 1.6.6 and by Kiln must agree.

Each case builds one template of tests/corpus/build/ with both tools in separate
copies of that directory and compares exit codes, command output, artifacts and
every file written (see tests/support/packer_diff.py).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "support"))

import packer_diff  # noqa: E402

CORPUS = Path(__file__).resolve().parents[1] / "corpus" / "build"

# template -> extra command-line arguments (given to both tools)
CASES: dict[str, list[str]] = {
    "shell_local_basic.json": [],
    "shell_local_scripts.json": [],
    "shell_local_fail.json": [],
    "shell_local_pp.json": [],
    "shell_local_output_edges.json": [],
    "only_except.json": [],
    "compress_formats.json": [],
    "compress_lz4.json": [],
    "compress_keep.json": [],
    "artifice_chain.json": [],
    "checksum.json": [],
    "manifest_custom.json": [],
    "nested_sequences.json": [],
    "pp_failure.json": [],
    "manifest_force.json": ["-force"],
    "manifest_append.json": [],
    "variables_cli.json": ["-var", "name=from-cli"],
}

# template -> why Kiln still differs (strict: the test fails once the difference is gone)
KNOWN_DIFFERENCES: dict[str, str] = {}

pytestmark = pytest.mark.packer


def _case(template: str):
    reason = KNOWN_DIFFERENCES.get(template)
    return pytest.param(template, marks=pytest.mark.xfail(strict=True, reason=reason)) \
        if reason else template


@pytest.fixture(scope="module")
def kiln_cli() -> list[str]:
    """The Kiln command line; fails (not skips) when `kiln build --help` does not work."""
    cmd = packer_diff.kiln_command()
    proc = subprocess.run(
        [*cmd[:-1], "--help"], capture_output=True, text=True, timeout=60,
        env=packer_diff.kiln_env(dict(os.environ)), cwd=packer_diff.REPO_ROOT,
    )
    if proc.returncode != 0:
        pytest.fail(f"`python -m backend.cli build --help` failed:\n{proc.stderr[-2000:]}")
    return cmd


def test_corpus_has_every_case():
    templates = sorted(p.name for p in CORPUS.glob("*.json"))
    assert templates == sorted(CASES)
    assert len(templates) >= 12


@pytest.mark.parametrize("template", [_case(t) for t in sorted(CASES)])
def test_same_as_packer(template, packer, packer_environ, kiln_cli, tmp_path):
    args = CASES[template]
    ref = packer_diff.run_build("packer", packer_diff.packer_command(packer), CORPUS, template,
                                args, env=packer_environ, parent=tmp_path)
    ours = packer_diff.run_build("kiln", kiln_cli, CORPUS, template, args,
                                 env=packer_diff.kiln_env(packer_environ), parent=tmp_path)
    diffs = packer_diff.compare(ref, ours)
    assert not diffs, "\n".join(diffs) + "\n\n" + ref.describe() + "\n\n" + ours.describe()


# --------------------------------------------------------------------------- the harness itself


def test_harness_sees_differences(tmp_path):
    """compare() must notice a changed exit code, output line, artifact and file content."""
    (tmp_path / "src").mkdir()
    good = packer_diff.ToolRun(
        "a", tmp_path / "a", 0,
        "1,,ui,message,    b: hello\n1,b,artifact,0,builder-id,x\n1,b,artifact,0,end\n", "",
        {}, {"m.json": (0o644, b'{"builds": [], "last_run_uuid": "u1"}'),
             "f.txt": (0o644, b"one")},
    )
    same = packer_diff.ToolRun(
        "b", tmp_path / "b", 0, good.stdout, "", {},
        {"m.json": (0o644, b'{"builds": [], "last_run_uuid": "u2"}'), "f.txt": (0o644, b"one")},
    )
    assert packer_diff.compare(good, same) == []
    bad = packer_diff.ToolRun(
        "c", tmp_path / "c", 1,
        "1,,ui,message,    b: bye\n1,b,artifact,0,builder-id,y\n1,b,artifact,0,end\n", "",
        {}, {"m.json": (0o600, b'{"builds": [], "last_run_uuid": "u2"}'), "f.txt": (0o644, b"two"),
             "extra": (0o644, b"")},
    )
    text = "\n".join(packer_diff.compare(good, bad))
    for needle in ("exit code", "command output of 'b'", "artifacts of 'b'", "only kiln ['extra']",
                   "mode of m.json", "content of f.txt"):
        assert needle in text


def test_harness_compares_archives_by_member():
    import gzip
    import io
    import tarfile

    def tgz(content: bytes, level: int) -> bytes:
        raw = io.BytesIO()
        with tarfile.open(fileobj=raw, mode="w", format=tarfile.GNU_FORMAT) as t:
            info = tarfile.TarInfo("x.txt")
            info.size = len(content)
            t.addfile(info, io.BytesIO(content))
        return gzip.compress(raw.getvalue(), compresslevel=level)

    a, b = tgz(b"same", 1), tgz(b"same", 9)
    assert a != b
    assert packer_diff.describe_content(a) == packer_diff.describe_content(b)
    assert packer_diff.describe_content(a) != packer_diff.describe_content(tgz(b"diff", 1))
