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

# case -> extra command-line arguments (given to both tools); a case is a template of the
# corpus, optionally followed by a space and a note for a second run of the same template
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
    "weak_typing.json": [],
    "override_merge.json": [],
    "error_cleanup_builders.json": [],
    "destroy_gone_file.json": [],
    "except_pp_skipped.json": ["-except=manifest"],
    "pp_only_string.json": [],  # a post-processor's only is decoded strictly: both reject it
    # -only/-except that select nothing: nothing runs, exit 0
    "only_except.json -only=nothing": ["-only=nothing"],
    "only_except.json -except=all": ["-except=alpha,beta,gamma"],
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
    assert templates == sorted({case.split()[0] for case in CASES})
    assert len(templates) >= 12


@pytest.mark.parametrize("template", [_case(t) for t in sorted(CASES)])
def test_same_as_packer(template, packer, packer_environ, kiln_cli, tmp_path):
    args = CASES[template]
    path = template.split()[0]
    ref = packer_diff.run_build("packer", packer_diff.packer_command(packer), CORPUS, path,
                                args, env=packer_environ, parent=tmp_path)
    ours = packer_diff.run_build("kiln", kiln_cli, CORPUS, path, args,
                                 env=packer_diff.kiln_env(packer_environ), parent=tmp_path)
    diffs = packer_diff.compare(ref, ours)
    assert not diffs, "\n".join(diffs) + "\n\n" + ref.describe() + "\n\n" + ours.describe()


# templates whose every UI line (steps, messages, errors) Kiln prints as Packer does, in the
# same order per build
STEP_LINES_ALIKE = ["checksum.json", "manifest_append.json", "shell_local_output_edges.json",
                    "shell_local_pp.json", "variables_cli.json"]


@pytest.mark.parametrize("template", STEP_LINES_ALIKE)
def test_step_lines_as_packer(template, packer, packer_environ, kiln_cli, tmp_path):
    ref = packer_diff.run_build("packer", packer_diff.packer_command(packer), CORPUS, template,
                                [], env=packer_environ, parent=tmp_path)
    ours = packer_diff.run_build("kiln", kiln_cli, CORPUS, template, [],
                                 env=packer_diff.kiln_env(packer_environ), parent=tmp_path)
    assert packer_diff.ui_lines(ours.machine) == packer_diff.ui_lines(ref.machine)


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


# --------------------------------------------------------------------------- colour


COLOUR_CASES = {
    "flag": (["-color=false"], {}),
    "default": ([], {}),
    "PACKER_NO_COLOR": ([], {"PACKER_NO_COLOR": "1"}),
    "PACKER_NO_COLOR empty": ([], {"PACKER_NO_COLOR": ""}),
}


def _head(text: str) -> list[str]:
    """The lines before the first build line: the colour block and its blank line."""
    lines = text.splitlines()
    return lines[:next(i for i, x in enumerate(lines) if "Running local shell script" in x)]


@pytest.mark.parametrize("case", sorted(COLOUR_CASES))
def test_colour_lines_and_escapes_as_packer(case, packer, packer_environ, kiln_cli, tmp_path):
    """-color=false drops the "output will be in this color" block; PACKER_NO_COLOR keeps
    it and drops the escape codes."""
    args, env = COLOUR_CASES[case]
    base = {k: v for k, v in packer_environ.items() if k not in ("PACKER_NO_COLOR", "NO_COLOR")}
    template = "only_except.json"
    human = [c for c in kiln_cli if c != "-machine-readable"]
    ref = packer_diff.run_build("packer", ["packer", "build"], CORPUS, template, args,
                                env={**base, **env}, parent=tmp_path)
    ours = packer_diff.run_build("kiln", human, CORPUS, template, args,
                                 env=packer_diff.kiln_env({**base, **env}), parent=tmp_path)
    assert (ref.exit_code, ours.exit_code) == (0, 0), ref.describe() + ours.describe()
    assert _head(ours.stdout) == _head(ref.stdout)
    assert ("\x1b[" in ours.stdout) == ("\x1b[" in ref.stdout)


def test_no_color_is_honoured(kiln_cli, tmp_path):
    """NO_COLOR (no-color.org) turns the escape codes off as PACKER_NO_COLOR does (Packer
    1.6.6 ignores it: README)."""
    human = [c for c in kiln_cli if c != "-machine-readable"]
    env = {k: v for k, v in os.environ.items() if k not in ("PACKER_NO_COLOR", "NO_COLOR")}
    ours = packer_diff.run_build("kiln", human, CORPUS, "only_except.json", [],
                                 env=packer_diff.kiln_env({**env, "NO_COLOR": "1"}),
                                 parent=tmp_path)
    assert ours.exit_code == 0 and "\x1b[" not in ours.stdout
    assert "alpha: output will be in this color." in ours.stdout.splitlines()
