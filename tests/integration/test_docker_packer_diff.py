"""Docker builds against Packer 1.6.6: the same image, the same lines, the same file copies.

Each case builds one template with Packer and with Kiln (each in its own copy of the
directory, ``-machine-readable``) and compares:

* the committed image: its whole ``docker image inspect`` Config (all but Hostname, which
  is the container's id), Author, Comment and the number of layers, without ``changes``
  and with every instruction Packer passes to ``docker commit``, on a base image whose
  Config is empty and on one whose Config has every field set;
* every UI line either tool printed (ids, temp paths, image names and durations masked);
* what the file provisioner copied into the container (``find`` output), including the
  cases where Packer's ``docker cp`` fails.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "support"))

import packer_diff  # noqa: E402

pytestmark = [pytest.mark.docker, pytest.mark.packer]


# --------------------------------------------------------------------------- helpers


@pytest.fixture(scope="module")
def rich_base(docker_client, base_image, docker_client_session_label) -> Any:
    """A base image whose Config has every field `docker commit --change` can set."""
    from kiln_services import TEST_LABEL

    name = f"kiln-test/rich-base-{uuid.uuid4().hex[:8]}"
    container = docker_client.containers.create(
        base_image, ["true"], labels={TEST_LABEL: docker_client_session_label})
    try:
        container.commit(name, "latest", changes=[
            'CMD ["echo", "base-cmd"]', 'ENTRYPOINT ["/bin/sh", "-c"]', "ENV BASE=1 PATH=/bin",
            "EXPOSE 80", "LABEL base=yes", "ONBUILD RUN echo base-onbuild", "USER root",
            "WORKDIR /root", "HEALTHCHECK --interval=5m CMD true"])
    finally:
        container.remove(force=True)
    yield f"{name}:latest"
    try:
        docker_client.images.remove(f"{name}:latest", force=True)
    except Exception:
        pass


@pytest.fixture
def repos(docker_client):
    """Image names for this test's Packer and Kiln builds; removed afterwards."""
    suffix = uuid.uuid4().hex[:8]
    names = {"packer": f"kiln-test/diff-packer-{suffix}", "kiln": f"kiln-test/diff-kiln-{suffix}"}
    yield names
    for repo in names.values():
        for tag in ("latest", "a", "b"):
            try:
                docker_client.images.remove(f"{repo}:{tag}", force=True)
            except Exception:
                pass


def run_both(tmp_path: Path, template: dict, packer: str, packer_environ: dict,
             repos: dict[str, str], args: tuple[str, ...] = (),
             ) -> tuple[packer_diff.ToolRun, packer_diff.ToolRun]:
    src = tmp_path / "src"
    src.mkdir(exist_ok=True)
    (src / "template.json").write_text(json.dumps(template, indent=2))
    files = src / "dir" / "sub"
    files.mkdir(parents=True, exist_ok=True)
    (src / "dir" / "file.txt").write_text("one\n")
    (files / "deep.txt").write_text("two\n")
    ref = packer_diff.run_build("packer", packer_diff.packer_command(packer), src,
                                "template.json", ["-var", f"repo={repos['packer']}", *args],
                                env=packer_environ, parent=tmp_path, timeout=240)
    ours = packer_diff.run_build("kiln", packer_diff.kiln_command(), src, "template.json",
                                 ["-var", f"repo={repos['kiln']}", *args],
                                 env=packer_diff.kiln_env(packer_environ), parent=tmp_path,
                                 timeout=240)
    return ref, ours


_MASKS = (
    (re.compile(r"sha256:[0-9a-f]{64}"), "<IMAGE>"),
    (re.compile(r"\b[0-9a-f]{64}\b"), "<ID>"),
    (re.compile(r"-v \S+:/packer-files"), "-v <TMP>:/packer-files"),
    (re.compile(r"/tmp/(?:kiln-[0-9a-f]+-[0-9a-f]+/)?packer-shell\w+"), "<SCRIPT>"),
    (re.compile(r"kiln-test/diff-(packer|kiln)-[0-9a-f]{8}"), "<REPO>"),
    (re.compile(r"(finished|errored) after [^:.]*"), r"\1 after <TIME>"),
    (re.compile(r"Wait completed after .*"), "Wait completed after <TIME>"),
)


def mask(text: str) -> str:
    for pattern, repl in _MASKS:
        text = pattern.sub(repl, text)
    return text


def ui_lines(run: packer_diff.ToolRun) -> list[str]:
    """Every UI line of a run, masked: kind and text."""
    out = []
    for m in run.machine:
        if m.type != "ui" or len(m.data) < 2:
            continue
        for line in mask(m.data[1]).split("\n"):
            out.append(f"{m.data[0]}: {line}")
    return out


def image_of(docker_client, repo: str) -> dict[str, Any]:
    attrs = docker_client.images.get(f"{repo}:latest").attrs
    config = dict(attrs["Config"] or {})
    config.pop("Hostname", None)  # the id of the container the image was committed from
    return {"Config": config, "Author": attrs.get("Author"), "Comment": attrs.get("Comment"),
            "Layers": len(attrs["RootFS"]["Layers"])}


def assert_same_image(ours: dict[str, Any], ref: dict[str, Any]) -> None:
    config_keys = set(ours["Config"]) | set(ref["Config"])
    diffs = [f"Config.{k}: packer {ref['Config'].get(k)!r}, kiln {ours['Config'].get(k)!r}"
             for k in sorted(config_keys) if ours["Config"].get(k) != ref["Config"].get(k)]
    diffs += [f"{k}: packer {ref[k]!r}, kiln {ours[k]!r}" for k in ("Author", "Comment", "Layers")
              if ours[k] != ref[k]]
    assert not diffs, "\n".join(diffs)


# --------------------------------------------------------------------------- committed images

EVERY_CHANGE = [
    'CMD ["echo", "from-change"]', 'ENTRYPOINT ["/bin/sh", "-c"]', "ENV A=1 B=two",
    "EXPOSE 8080 9090/udp", 'LABEL org.example.x="y z"', "ONBUILD RUN echo built",
    "USER nobody", "VOLUME /v1 /v2", "WORKDIR /srv",
]

COMMIT_CASES = {
    "no-changes": {},
    "every-instruction": {"changes": EVERY_CHANGE},
    "cmd-only": {"changes": ["CMD echo shell-form"]},
    "entrypoint-only": {"changes": ['ENTRYPOINT ["/bin/echo"]']},
    "author-message": {"author": "Kiln Tests <t@example.com>", "message": "made by a test",
                       "changes": ["ENV ONLY=1"]},
}


@pytest.mark.parametrize("base", ["empty-config", "rich-config"])
@pytest.mark.parametrize("case", sorted(COMMIT_CASES))
def test_committed_image_is_packers(case, base, tmp_path, docker_client, base_image, rich_base,
                                    repos, packer, packer_environ):
    image = base_image if base == "empty-config" else rich_base
    template = {
        "variables": {"repo": ""},
        "builders": [{"type": "docker", "image": image, "pull": False, "commit": True,
                      **COMMIT_CASES[case]}],
        "provisioners": [{"type": "shell", "inline": ["echo provisioned > /made.txt"]}],
        "post-processors": [{"type": "docker-tag", "repository": "{{user `repo`}}"}],
    }
    ref, ours = run_both(tmp_path, template, packer, packer_environ, repos)
    assert (ref.exit_code, ours.exit_code) == (0, 0), ref.describe() + ours.describe()
    assert_same_image(image_of(docker_client, repos["kiln"]),
                      image_of(docker_client, repos["packer"]))
    assert ui_lines(ours) == ui_lines(ref)


def test_export_and_image_post_processors_say_what_packer_says(tmp_path, docker_client,
                                                               base_image, repos, packer,
                                                               packer_environ):
    """Export, then docker-import, docker-tag (two tags) and docker-save: every line alike,
    "Exporting the container" once, the post-processors' lines indented as Packer's."""
    template = {
        "variables": {"repo": ""},
        "builders": [{"type": "docker", "image": base_image, "pull": False,
                      "export_path": "out/container.tar"}],
        "provisioners": [{"type": "shell", "inline": ["echo exported > /exported.txt"]}],
        "post-processors": [[
            {"type": "docker-import", "repository": "{{user `repo`}}", "tag": "latest"},
            {"type": "docker-tag", "repository": "{{user `repo`}}", "tags": ["a", "b"]},
            {"type": "docker-save", "path": "out/image.tar"},
        ]],
    }
    ref, ours = run_both(tmp_path, template, packer, packer_environ, repos)
    assert (ref.exit_code, ours.exit_code) == (0, 0), ref.describe() + ours.describe()
    lines = ui_lines(ours)
    assert lines == ui_lines(ref)
    assert lines.count("say: ==> docker: Exporting the container") == 1
    assert "message:     docker (docker-tag): Repository: <REPO>:a" in lines
    # docker-import does not keep its input: both remove the exported tar
    assert sorted(ours.changed_files()) == sorted(ref.changed_files()) == ["out/image.tar"]


# --------------------------------------------------------------------------- file uploads

LISTING = ("for p in $(find /newdest /newdest2 /tmp/dir /tmp/existing /tmp/file.txt "
           "| sort); do stat -c '%n %a %u' \"$p\"; done")

UPLOAD_CASES: dict[str, list[dict[str, Any]]] = {
    # what lands where: every form that works
    "copies": [
        {"type": "shell", "inline": ["mkdir /tmp/existing"]},
        {"type": "file", "source": "dir", "destination": "/newdest"},
        {"type": "file", "source": "dir/", "destination": "/newdest2"},
        {"type": "file", "source": "dir", "destination": "/tmp"},
        {"type": "file", "source": "dir/", "destination": "/tmp/existing"},
        {"type": "file", "source": "dir/file.txt", "destination": "/tmp/"},
        {"type": "shell", "inline": [LISTING]},
    ],
    # what Packer's `docker cp` refuses; each stops the build
    "dir-missing-parent": [{"type": "file", "source": "dir", "destination": "/no/such"}],
    "contents-missing-parent": [{"type": "file", "source": "dir/", "destination": "/no/such"}],
    "file-missing-parent": [{"type": "file", "source": "dir/file.txt",
                             "destination": "/no/such/file.txt"}],
    "file-over-directory": [{"type": "file", "source": "dir/file.txt", "destination": "/tmp"}],
    "directory-over-file": [{"type": "file", "source": "dir", "destination": "/etc/passwd"}],
}


@pytest.mark.parametrize("case", sorted(UPLOAD_CASES))
def test_uploads_into_a_container_follow_docker_cp(case, tmp_path, base_image, repos, packer,
                                                   packer_environ):
    template = {
        "variables": {"repo": ""},
        "builders": [{"type": "docker", "image": base_image, "pull": False, "discard": True}],
        "provisioners": [*UPLOAD_CASES[case],
                         {"type": "shell", "inline": ["ls -d /tmp /etc/passwd"]}],
    }
    ref, ours = run_both(tmp_path, template, packer, packer_environ, repos)
    diffs = packer_diff.compare(ref, ours, mask)
    assert not diffs, "\n".join(diffs) + "\n\n" + ref.describe() + "\n\n" + ours.describe()
    assert ref.exit_code == (0 if case == "copies" else 1), ref.describe()


def test_volume_paths_are_rendered(tmp_path, base_image, repos, packer, packer_environ):
    """Both tools render a volume's host path ({{pwd}}) and, when the host path is plain,
    its container path."""
    template = {
        "variables": {"repo": ""},
        "builders": [{"type": "docker", "image": base_image, "pull": False, "discard": True,
                      "volumes": {"{{pwd}}/dir": "/mnt/dir",
                                  "{{template_dir}}/dir/sub": "/mnt/sub"}}],
        "provisioners": [{"type": "shell", "inline": ["cat /mnt/dir/file.txt /mnt/sub/deep.txt"]}],
    }
    ref, ours = run_both(tmp_path, template, packer, packer_environ, repos)
    diffs = packer_diff.compare(ref, ours, lambda t: re.sub(r"-v \S+ ", "-v <VOL> ", mask(t)))
    assert not diffs, "\n".join(diffs) + "\n\n" + ref.describe() + "\n\n" + ours.describe()
    assert ours.exit_code == 0 and packer_diff.command_output(ours.machine)["docker"][-2:] == \
        ["one", "two"]


def test_changes_go_to_the_engine_as_written(tmp_path, base_image, repos, packer,
                                             packer_environ):
    """Packer passes `changes` to docker commit unchecked: an instruction the engine refuses
    validates, and the build fails at the commit. Kiln does the same, and warns first."""
    template = {
        "variables": {"repo": ""},
        "builders": [{"type": "docker", "image": base_image, "pull": False, "commit": True,
                      "changes": ["ENV OK=1", "RUN echo not-at-commit"]}],
    }
    (tmp_path / "v").mkdir()
    (tmp_path / "v" / "t.json").write_text(json.dumps(template))
    for tool in ([packer], [sys.executable, "-m", "kiln.backend.cli"]):
        valid = subprocess.run([*tool, "validate", "t.json"], cwd=tmp_path / "v",
                               env=packer_diff.kiln_env(packer_environ), capture_output=True,
                               text=True, timeout=60)
        assert valid.returncode == 0, valid.stdout + valid.stderr
    assert "Warning: docker: changes: 'RUN echo not-at-commit': docker commit takes only" in \
        valid.stdout
    ref, ours = run_both(tmp_path, template, packer, packer_environ, repos)
    diffs = packer_diff.compare(ref, ours, mask)
    assert not diffs, "\n".join(diffs) + "\n\n" + ref.describe() + "\n\n" + ours.describe()
    assert ours.exit_code == 1 and "run is not a valid change command" in ours.stdout


@pytest.fixture(scope="module")
def nobody_base(docker_client, base_image, docker_client_session_label) -> Any:
    """A base image whose configured user is nobody (uploads are chowned to it)."""
    from kiln_services import TEST_LABEL

    name = f"kiln-test/nobody-base-{uuid.uuid4().hex[:8]}"
    container = docker_client.containers.create(
        base_image, ["true"], labels={TEST_LABEL: docker_client_session_label})
    try:
        container.commit(name, "latest", changes=["USER nobody"])
    finally:
        container.remove(force=True)
    yield f"{name}:latest"
    try:
        docker_client.images.remove(f"{name}:latest", force=True)
    except Exception:
        pass


@pytest.mark.parametrize("base,env_file", [("root-owned", False), ("root-owned", True),
                                           ("nobody-owned", True)])
def test_scripts_run_as_exec_user_as_in_packer(base, env_file, tmp_path, base_image, nobody_base,
                                               repos, packer, packer_environ):
    """A script arrives 0600 and is made executable by a chmod run as exec_user: when the
    upload belongs to root (the container's user), that fails and so does the script, as
    in Packer; when it belongs to the container's user nobody, the script runs as nobody."""
    image = base_image if base == "root-owned" else nobody_base
    template = {
        "variables": {"repo": ""},
        "builders": [{"type": "docker", "image": image, "pull": False, "discard": True,
                      "exec_user": "nobody"}],
        "provisioners": [{"type": "shell", "inline": ["echo ran as $(id -u)"],
                          "use_env_var_file": env_file, "environment_vars": ["A=1"]}],
    }
    ref, ours = run_both(tmp_path, template, packer, packer_environ, repos)
    diffs = packer_diff.compare(ref, ours, mask)
    assert not diffs, "\n".join(diffs) + "\n\n" + ref.describe() + "\n\n" + ours.describe()
    assert ours.exit_code == (1 if base == "root-owned" else 0), ours.describe()


def test_docker_save_needs_its_directory(tmp_path, base_image, repos, packer, packer_environ):
    """Packer's docker-save creates its file in a directory that must exist (unlike the
    builder's export_path): both fail, without saying "Saving image"."""
    template = {
        "variables": {"repo": ""},
        "builders": [{"type": "docker", "image": base_image, "pull": False, "commit": True}],
        "post-processors": [[
            {"type": "docker-tag", "repository": "{{user `repo`}}"},
            {"type": "docker-save", "path": "missing/image.tar"},
        ]],
    }
    ref, ours = run_both(tmp_path, template, packer, packer_environ, repos)
    diffs = packer_diff.compare(ref, ours, mask)
    assert not diffs, "\n".join(diffs) + "\n\n" + ref.describe() + "\n\n" + ours.describe()
    assert ours.exit_code == 1 and "Error creating output file" in ours.stdout
