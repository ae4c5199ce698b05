"""`kiln build` of docker templates end to end, against Packer 1.6.6 and under faults.

Each build runs as a subprocess (`python -m backend.cli build`), exactly as a user
runs it. Images get unique repository names; containers are counted by the run's
container-name prefix (``kiln-<run id>``), which the JSON event stream tells us.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tarfile
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "templates" / "docker-busybox.json"

pytestmark = pytest.mark.docker


def kiln_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("KILN_RUN_ID", None)
    return env


def kiln(*args: str, cwd: Path, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kiln.backend.cli", *args], cwd=cwd, env=kiln_env(),
                          capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def kiln_build(template: Path, cwd: Path, *extra: str, timeout: float = 180):
    events = cwd / f"events-{uuid.uuid4().hex[:6]}.jsonl"
    proc = kiln("build", "-color=false", f"-state-dir={cwd / '.kiln'}", f"-events={events}",
                *extra, str(template), cwd=cwd, timeout=timeout)
    return proc, read_events(events)


def read_events(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def run_id_of(events: list[dict[str, Any]] | Path) -> str:
    """The run id from the event stream (a list, or a file still being written)."""
    deadline = time.monotonic() + 10
    while True:
        found = [e["run"] for e in (read_events(events) if isinstance(events, Path) else events)
                 if e.get("run")]
        if found or not isinstance(events, Path) or time.monotonic() > deadline:
            assert found, "no run id in the event stream"
            return found[0]
        time.sleep(0.1)


def run_containers(docker_client, run_id: str) -> list:
    prefix = "kiln-" + "".join(c for c in run_id if c.isalnum())[:12] + "-"
    return docker_client.containers.list(all=True, filters={"name": prefix})


def remove_images(docker_client, *refs: str) -> None:
    for ref in refs:
        try:
            docker_client.images.remove(ref, force=True)
        except Exception:
            pass


def image_files(docker_client, ref: str, labels: dict[str, str]) -> dict[str, tuple]:
    """path -> (type, mode, uid, content for small regular files) of an image's file system."""
    container = docker_client.containers.create(ref, ["true"], labels=labels)
    try:
        spool = Path(f"/tmp/kiln-export-{uuid.uuid4().hex}.tar")
        try:
            with spool.open("wb") as f:
                for chunk in container.export():
                    f.write(chunk)
            out = {}
            with tarfile.open(spool) as tar:
                for m in tar:
                    content = None
                    if m.isfile() and m.size < 4096 and not m.name.startswith("bin/"):
                        content = tar.extractfile(m).read()
                    kind = "f" if m.isfile() else "d" if m.isdir() else "l" if m.issym() else "o"
                    out[m.name.rstrip("/")] = (kind, m.mode, m.uid, content,
                                               m.linkname if m.issym() else "")
            return out
        finally:
            spool.unlink(missing_ok=True)
    finally:
        container.remove(force=True)


@pytest.fixture
def workdir(tmp_path) -> Path:
    d = tmp_path / "work"
    d.mkdir()
    return d


# --------------------------------------------------------------------------- the example


def test_example_template_builds(workdir, docker_client, base_image, docker_labels):
    repo = f"kiln/test-example-{uuid.uuid4().hex[:8]}"
    proc, events = kiln_build(TEMPLATE, workdir, "-var", f"repository={repo}")
    try:
        assert proc.returncode == 0, proc.stdout + proc.stderr
        out = proc.stdout
        assert "==> docker: Provisioning with shell script: " in out
        assert f"==> docker: Uploading {REPO}/templates/files/motd.txt => /srv/app/motd.txt" in out
        assert "hello from Kiln" in out and "Welcome to an image built by Kiln." in out
        assert "==> docker: Committing the container" in out
        assert f"--> docker: Imported Docker image: {repo}:latest with tags {repo}:latest" in out
        files = image_files(docker_client, f"{repo}:latest", docker_labels)
        assert files["srv/app/greeting.txt"][3] == b"hello from Kiln\n"
        assert files["srv/app/build.txt"][3] == b"built for docker on docker\n"
        assert files["srv/app/motd.txt"][3] == b"Welcome to an image built by Kiln.\n"
        image = docker_client.images.get(f"{repo}:latest")
        assert "KILN_EXAMPLE=1" in image.attrs["Config"]["Env"]
        assert image.attrs["Config"]["WorkingDir"] == "/srv"
        manifest = json.loads((workdir / "packer-manifest.json").read_text())
        (entry,) = manifest["builds"]
        assert entry["name"] == "docker" and entry["builder_type"] == "docker"
        assert entry["artifact_id"] == f"{repo}:latest"
        assert manifest["last_run_uuid"] == entry["packer_run_uuid"]
        assert run_containers(docker_client, run_id_of(events)) == []
    finally:
        remove_images(docker_client, f"{repo}:latest")


# --------------------------------------------------------------------------- against Packer


def normalise_manifest(path: Path, repo: str) -> list[dict[str, Any]]:
    data = json.loads(path.read_text())
    assert set(data) == {"builds", "last_run_uuid"}
    out = []
    for b in data["builds"]:
        b = dict(b)
        assert isinstance(b.pop("build_time"), int)
        assert len(b.pop("packer_run_uuid")) == 36
        b["artifact_id"] = b["artifact_id"].replace(repo, "REPO")
        out.append(b)
    return out


@pytest.mark.packer
def test_same_image_as_packer(workdir, docker_client, base_image, docker_labels, packer,
                              packer_environ):
    kiln_repo = f"kiln/diff-kiln-{uuid.uuid4().hex[:8]}"
    packer_repo = f"kiln/diff-packer-{uuid.uuid4().hex[:8]}"
    kdir = workdir / "kiln"
    pdir = workdir / "packer"
    kdir.mkdir()
    pdir.mkdir()
    try:
        kproc, _ = kiln_build(TEMPLATE, kdir, "-var", f"repository={kiln_repo}")
        pproc = subprocess.run([packer, "build", "-color=false", "-var",
                                f"repository={packer_repo}", str(TEMPLATE)], cwd=pdir,
                               env=packer_environ, capture_output=True, text=True, timeout=300,
                               stdin=subprocess.DEVNULL)
        assert (kproc.returncode, pproc.returncode) == (0, 0), pproc.stdout + kproc.stdout
        kfiles = image_files(docker_client, f"{kiln_repo}:latest", docker_labels)
        pfiles = image_files(docker_client, f"{packer_repo}:latest", docker_labels)
        assert sorted(kfiles) == sorted(pfiles)
        for path in ("srv", "srv/app", "srv/app/greeting.txt", "srv/app/build.txt",
                     "srv/app/motd.txt", "packer-files", "tmp"):
            assert kfiles[path] == pfiles[path], path
        # everything both images got from the base image is identical too
        assert {p: v[:3] for p, v in kfiles.items()} == {p: v[:3] for p, v in pfiles.items()}
        kcfg = docker_client.images.get(f"{kiln_repo}:latest").attrs["Config"]
        pcfg = docker_client.images.get(f"{packer_repo}:latest").attrs["Config"]
        for key in ("Env", "WorkingDir"):
            assert kcfg[key] == pcfg[key], key
        assert kcfg["Labels"]["org.example.built-by"] == pcfg["Labels"]["org.example.built-by"]
        assert normalise_manifest(kdir / "packer-manifest.json", kiln_repo) == \
            normalise_manifest(pdir / "packer-manifest.json", packer_repo)
        for line in ("Creating a temporary directory for sharing data...",
                     "Starting docker container...", "Provisioning with shell script: ",
                     "Uploading ", "Committing the container", "Killing the container: ",
                     "Running post-processor: docker-tag",
                     "Imported Docker image: REPO:latest with tags REPO:latest"):
            assert line in pproc.stdout.replace(packer_repo, "REPO"), line
            assert line in kproc.stdout.replace(kiln_repo, "REPO"), line
    finally:
        remove_images(docker_client, f"{kiln_repo}:latest", f"{packer_repo}:latest")


@pytest.mark.packer
def test_failing_provisioner_like_packer(workdir, docker_client, base_image, packer,
                                         packer_environ):
    template = workdir / "fail.json"
    template.write_text(json.dumps({
        "builders": [{"type": "docker", "image": base_image, "pull": False, "discard": True}],
        "provisioners": [{"type": "shell", "inline": ["echo before", "exit 3"]}],
    }))
    kproc, events = kiln_build(template, workdir)
    pproc = subprocess.run([packer, "build", "-color=false", str(template)], cwd=workdir,
                           env=packer_environ, capture_output=True, text=True, timeout=300,
                           stdin=subprocess.DEVNULL)
    expected = "Script exited with non-zero exit status: 3. Allowed exit codes are: [0]"
    assert (kproc.returncode, pproc.returncode) == (1, 1)
    # Packer 1.6.6 lacks the space after the full stop; later Packer (and Kiln) have it
    assert expected.replace(". ", ".", 1) in pproc.stdout + pproc.stderr
    assert expected in kproc.stdout + kproc.stderr
    assert "before" in pproc.stdout and "before" in kproc.stdout
    assert run_containers(docker_client, run_id_of(events)) == []


# --------------------------------------------------------------------------- faults


def long_template(workdir: Path, base_image: str, docker_labels: dict[str, str]) -> Path:
    label = "{}={}".format(*next(iter(docker_labels.items())))
    template = workdir / "long.json"
    template.write_text(json.dumps({
        "builders": [{"type": "docker", "image": base_image, "pull": False, "discard": True,
                      "run_command": ["-d", "-i", "-t", "--label", label,
                                      "--entrypoint=/bin/sh", "--", "{{.Image}}"]}],
        "provisioners": [{"type": "shell", "inline": ["echo started-long", "sleep 300"]}],
    }))
    return template


def start_long_build(workdir: Path, template: Path) -> tuple[subprocess.Popen, Path]:
    events = workdir / "events.jsonl"
    proc = subprocess.Popen(
        [sys.executable, "-m", "kiln.backend.cli", "build", "-color=false",
         f"-state-dir={workdir / '.kiln'}", f"-events={events}", str(template)],
        cwd=workdir, env=kiln_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL, text=True,
    )
    deadline = time.monotonic() + 60
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if "started-long" in line:
            return proc, events
        if time.monotonic() > deadline:
            break
    proc.kill()
    raise AssertionError("the long provisioner never started:\n" + "".join(seen))


def test_sigint_during_provisioner_leaves_nothing(workdir, docker_client, base_image,
                                                  docker_labels):
    proc, events = start_long_build(workdir, long_template(workdir, base_image, docker_labels))
    run_id = run_id_of(events)
    assert len(run_containers(docker_client, run_id)) == 1
    t = time.monotonic()
    proc.send_signal(signal.SIGINT)
    rest, _ = proc.communicate(timeout=60)
    assert proc.returncode == 1, rest
    assert time.monotonic() - t < 30
    assert run_containers(docker_client, run_id) == []
    assert "Killing the container: " in rest


def test_kill_9_then_cleanup_leaves_nothing(workdir, docker_client, base_image, docker_labels):
    proc, events = start_long_build(workdir, long_template(workdir, base_image, docker_labels))
    run_id = run_id_of(events)
    proc.kill()
    proc.communicate(timeout=30)
    left = run_containers(docker_client, run_id)
    assert len(left) == 1  # killed: nothing could clean up
    dry = kiln("cleanup", "-dry-run", cwd=workdir)
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert left[0].name in dry.stdout or left[0].id[:12] in dry.stdout, dry.stdout
    assert len(run_containers(docker_client, run_id)) == 1
    done = kiln("cleanup", cwd=workdir)
    assert done.returncode == 0, done.stdout + done.stderr
    assert run_containers(docker_client, run_id) == []
