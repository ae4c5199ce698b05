"""Generated templates, built by Packer 1.6.6 and by Kiln: the results must agree.

Each case is a small random template (tests/support/gen_templates.py) built by both tools
in copies of one directory; exit codes, command output per build, errored builds,
artifacts and every file written (manifests as JSON) are compared as in the corpus
differential tests. A fixed seed keeps CI's cases the same from run to run; to look for
new differences, run more by hand:

    KILN_GEN_CASES=3000 KILN_GEN_SEED=$RANDOM python3 -m pytest -n 2 -q -p no:cacheprovider \\
        tests/integration/test_generated_packer_diff.py

``KILN_GEN_DOCKER_CASES`` sets the number of docker cases the same way. A failure prints the
case's seed and template; ``KILN_GEN_SEED=<seed> KILN_GEN_CASES=1`` runs that case alone.
"""

from __future__ import annotations

import json
import os
import re
import sys
import uuid
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "support"))

import gen_templates  # noqa: E402
import packer_diff  # noqa: E402

SEED = int(os.environ.get("KILN_GEN_SEED", "1212"))
LOCAL_CASES = int(os.environ.get("KILN_GEN_CASES", "36"))
DOCKER_CASES = int(os.environ.get("KILN_GEN_DOCKER_CASES", "6"))

pytestmark = pytest.mark.packer


def build_both(case: gen_templates.Case, tmp_path: Path, packer: str, packer_environ: dict,
               tool_args: dict[str, list[str]] | None = None):
    src = tmp_path / "src"
    src.mkdir()
    (src / "template.json").write_text(json.dumps(case.template, indent=2))
    for rel, text in case.files.items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_text(text)
    tool_args = tool_args or {}
    ref = packer_diff.run_build("packer", packer_diff.packer_command(packer), src,
                                "template.json", [*case.args, *tool_args.get("packer", [])],
                                env=packer_environ, parent=tmp_path)
    ours = packer_diff.run_build("kiln", packer_diff.kiln_command(), src, "template.json",
                                 [*case.args, *tool_args.get("kiln", [])],
                                 env=packer_diff.kiln_env(packer_environ), parent=tmp_path)
    return ref, ours


def report(case, ref, ours, diffs) -> str:
    return ("\n".join(diffs) + "\n\n" + case.describe() + "\n\n" + ref.describe() + "\n\n"
            + ours.describe())


@pytest.mark.parametrize("seed", range(SEED, SEED + LOCAL_CASES))
def test_generated_local_template(seed, tmp_path, packer, packer_environ):
    case = gen_templates.local_case(seed)
    ref, ours = build_both(case, tmp_path, packer, packer_environ)
    gen_templates.drop_partial_archives(ref, ours)
    diffs = packer_diff.compare(ref, ours)
    assert not diffs, report(case, ref, ours, diffs)


_DOCKER_MASKS = (
    (re.compile(r"sha256:[0-9a-f]{64}"), "<IMAGE>"),
    (re.compile(r"\b[0-9a-f]{64}\b"), "<ID>"),
    (re.compile(r"-v \S+:/packer-files"), "-v <TMP>:/packer-files"),
    (re.compile(r"kiln-test/gen-(packer|kiln)-[0-9a-f]{8}"), "<REPO>"),
)


def docker_mask(text: str) -> str:
    for pattern, repl in _DOCKER_MASKS:
        text = pattern.sub(repl, text)
    return text


@pytest.mark.docker
@pytest.mark.parametrize("seed", range(SEED, SEED + DOCKER_CASES))
def test_generated_docker_template(seed, tmp_path, docker_client, base_image, packer,
                                   packer_environ):
    case = gen_templates.docker_case(seed, base_image)
    suffix = uuid.uuid4().hex[:8]
    repos = {t: f"kiln-test/gen-{t}-{suffix}" for t in ("packer", "kiln")}
    try:
        ref, ours = build_both(case, tmp_path, packer, packer_environ,
                               {t: ["-var", f"repo={r}"] for t, r in repos.items()})
        # tar files of containers and images hold times of their own; they need only exist
        diffs = packer_diff.compare(ref, ours, docker_mask,
                                    same_content=lambda path: not path.endswith(".tar"))
        if case.template["builders"][0].get("commit") and ref.exit_code == 0:
            configs = {}
            for tool, repo in repos.items():
                attrs = docker_client.images.get(f"{repo}:latest").attrs
                configs[tool] = {**attrs["Config"], "Hostname": None,
                                 "Author": attrs.get("Author")}
            if configs["kiln"] != configs["packer"]:
                diffs.append(f"image config:\n  packer {configs['packer']}\n"
                             f"  kiln   {configs['kiln']}")
        assert not diffs, report(case, ref, ours, diffs)
    finally:
        for repo in repos.values():
            for tag in ("latest", "gen"):
                try:
                    docker_client.images.remove(f"{repo}:{tag}", force=True)
                except Exception:
                    pass


def test_generator_is_deterministic_and_varied():
    """The same seed gives the same case; a few dozen seeds reach every feature."""
    assert gen_templates.local_case(7).template == gen_templates.local_case(7).template
    text = json.dumps([gen_templates.local_case(s).template for s in range(SEED, SEED + 36)])
    for feature in ('"only"', '"except"', '"override"', '"pause_before"', '"valid_exit_codes"',
                    '"environment_vars"', '"keep_input_artifact"', '"manifest"', '"artifice"',
                    '"compress"', '"checksum"', "{{user", '"variables"', '"file"'):
        assert feature in text, feature
