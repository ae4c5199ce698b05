"""The provisioner cache of docker builds, end to end on the real Docker engine.

Each test starts from a base image of its own (busybox committed with a unique ENV), so
its keys meet no other test's entries, and removes the cache entries built on it. Builds
run as `python -m backend.cli build`, as a user runs them; which provisioners ran and which
were reused is read from the JSON event stream (status ``succeeded`` vs ``cached``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import docker
import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.docker


def kiln(*args: str, cwd: Path, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("KILN_CACHE", None)  # the cache is on by default for users
    return subprocess.run([sys.executable, "-m", "kiln.backend.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


class Project:
    """A template with five provisioners and its local inputs, in a directory of its own."""

    def __init__(self, root: Path, base: str):
        self.root = root
        self.base = base
        self.files = root / "files"
        (self.files / "tree" / "sub").mkdir(parents=True)
        (self.files / "tree" / "sub" / "a.txt").write_text("a\n")
        self.script = self.files / "two.sh"
        self.script.write_text("echo two > /two\n")
        self.script.chmod(0o644)
        self.provisioners: list[dict[str, Any]] = [
            {"type": "shell", "inline": ["echo one > /one"]},
            {"type": "shell", "script": "files/two.sh"},
            {"type": "file", "source": "files/tree", "destination": "/tree"},
            {"type": "shell", "inline": ["echo '{{user `greet`}}' > /four"]},
            {"type": "shell", "inline": ["echo \"$FIVE\" > /five"],
             "environment_vars": ["FIVE={{user `five`}}"]},
        ]
        self.builder: dict[str, Any] = {"type": "docker", "image": base, "pull": False,
                                        "discard": True}
        self.runs = 0
        self.write()

    @property
    def template(self) -> Path:
        return self.root / "t.json"

    def write(self) -> None:
        self.template.write_text(json.dumps({
            "variables": {"greet": "hello", "five": "5", "secret": ""},
            "sensitive-variables": ["secret"],
            "builders": [self.builder],
            "provisioners": self.provisioners,
        }, indent=1))

    def build(self, *extra: str) -> tuple[subprocess.CompletedProcess[str], list[dict]]:
        self.runs += 1
        events = self.root / f"events-{self.runs}.jsonl"
        proc = kiln("build", "-color=false", f"-state-dir={self.root / '.kiln'}",
                    f"-events={events}", *extra, str(self.template), cwd=self.root)
        evs = [json.loads(line) for line in events.read_text().splitlines() if line.strip()] \
            if events.exists() else []
        return proc, evs


def provisioner_statuses(events: list[dict]) -> list[str]:
    return [e["status"] for e in events if e.get("type") == "stage.finished"
            and e["kind"] == "provisioner"]


def ran(events: list[dict]) -> list[int]:
    """1-based positions of the provisioners that ran (not taken from the cache)."""
    return [i + 1 for i, s in enumerate(provisioner_statuses(events)) if s != "cached"]


def cached(events: list[dict]) -> list[int]:
    return [i + 1 for i, s in enumerate(provisioner_statuses(events)) if s == "cached"]


def ok(proc: subprocess.CompletedProcess[str]) -> None:
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def make_base(docker_client, docker_labels: dict[str, str], tag: str) -> str:
    container = docker_client.containers.create("kiln/busybox:latest", command=["true"],
                                                labels=docker_labels)
    try:
        container.commit(repository="kiln-test-cache-base", tag=tag,
                         changes=[f"ENV KILN_TEST_BASE={uuid.uuid4().hex}"])
    finally:
        container.remove(force=True)
    return f"kiln-test-cache-base:{tag}"


@pytest.fixture
def project(tmp_path: Path, docker_client, docker_labels, base_image):
    from kiln.backend.plugins.docker import cache as docker_cache

    tag = uuid.uuid4().hex[:16]
    base = make_base(docker_client, docker_labels, tag)
    root = tmp_path / "proj"
    root.mkdir()
    yield Project(root, base)
    api = docker_client.api
    mine = [e for e in docker_cache.entries(api)
            if str(e["meta"].get("template", "")).startswith(str(tmp_path))]
    for e in reversed(mine):
        try:
            api.remove_image(f"{docker_cache.REPOSITORY}:{e['key']}")
        except Exception:
            pass
    for ref in (base, base + "-2"):
        try:
            docker_client.images.remove(ref, force=True)
        except Exception:
            pass


def test_second_identical_build_runs_nothing_and_an_edit_runs_from_there(project):
    proc, evs = project.build()
    ok(proc)
    assert ran(evs) == [1, 2, 3, 4, 5]
    proc, evs = project.build()
    ok(proc)
    assert ran(evs) == [] and cached(evs) == [1, 2, 3, 4, 5]
    assert "==> docker: Using cached result of provisioner 3 (file" in proc.stdout
    assert " cached" in proc.stdout.split("Stage timings")[1]
    # edit provisioner 2 of 5: exactly 4 run
    project.script.write_text("echo two again > /two\n")
    proc, evs = project.build()
    ok(proc)
    assert ran(evs) == [2, 3, 4, 5] and cached(evs) == [1]


@pytest.mark.parametrize("change, first_miss", [
    ("touch", None),
    ("byte", 2),
    ("mode", 2),
    ("new_file", 3),
    ("var", 4),
    ("env_value", 5),
    ("reorder", 4),
    ("base_image", 1),
])
def test_each_input_misses_from_exactly_the_right_provisioner(project, docker_client,
                                                                docker_labels, change,
                                                                first_miss):
    ok(project.build()[0])
    extra: list[str] = []
    if change == "touch":
        os.utime(project.script, (1_000_000, 1_000_000))
        os.utime(project.files / "tree" / "sub" / "a.txt", (1_000_000, 1_000_000))
    elif change == "byte":
        project.script.write_text("echo twO > /two\n")
    elif change == "mode":
        project.script.chmod(0o755)
    elif change == "new_file":
        (project.files / "tree" / "sub" / "b.txt").write_text("")
    elif change == "var":
        extra = ["-var", "greet=bonjour"]
    elif change == "env_value":
        extra = ["-var", "five=five"]
    elif change == "reorder":
        p = project.provisioners
        p[3], p[4] = p[4], p[3]
        project.write()
    elif change == "base_image":
        new = make_base(docker_client, docker_labels, project.base.split(":")[1] + "-2")
        docker_client.images.get(new).tag(project.base)
    proc, evs = project.build(*extra)
    ok(proc)
    expected = [] if first_miss is None else list(range(first_miss, 6))
    assert ran(evs) == expected
    assert cached(evs) == [i for i in range(1, 6) if i not in expected]


def test_a_secret_never_reaches_a_tag_comment_label_key_or_file(project, docker_client,
                                                                 kiln_state_dir):
    from kiln.backend.plugins.docker import cache as docker_cache

    secret = "Zq8-" + uuid.uuid4().hex
    project.provisioners[0]["environment_vars"] = ["PW={{user `secret`}}"]
    project.provisioners[0]["inline"] = ["echo \"pw is $PW\" > /one"]
    project.write()
    proc, evs = project.build("-var", f"secret={secret}")
    ok(proc)
    proc, evs = project.build("-var", f"secret={secret}")
    ok(proc)
    assert cached(evs) == [1, 2, 3, 4, 5]
    mine = [e for e in docker_cache.entries(docker_client.api)
            if str(e["meta"].get("template", "")).startswith(str(project.root))]
    assert len(mine) == 5
    for e in mine:
        info = docker_client.api.inspect_image(e["image"])
        assert secret not in json.dumps(info)
        assert secret not in e["key"]
    # a changed secret is a miss, though nothing shows it
    proc, evs = project.build("-var", f"secret={secret}-2")
    ok(proc)
    assert ran(evs) == [1, 2, 3, 4, 5]
    for where in (project.root, kiln_state_dir):
        for path in Path(where).rglob("*"):
            if path.is_file():
                assert secret.encode() not in path.read_bytes(), path
    assert secret not in proc.stdout + proc.stderr


def test_after_a_failure_the_fixed_build_resumes_at_the_failed_provisioner(project):
    project.script.write_text("echo broken; exit 3\n")
    proc, evs = project.build()
    assert proc.returncode == 1
    assert provisioner_statuses(evs)[:2] == ["succeeded", "failed"]
    project.script.write_text("echo two > /two\n")
    proc, evs = project.build()
    ok(proc)
    assert cached(evs) == [1] and ran(evs) == [2, 3, 4, 5]


def test_uncacheable_steps_end_the_chain_and_the_flags_force_a_rebuild(project):
    project.provisioners.insert(2, {"type": "shell-local", "inline": ["true"]})
    project.write()
    ok(project.build()[0])
    proc, evs = project.build()
    ok(proc)
    assert cached(evs) == [1, 2] and ran(evs) == [3, 4, 5, 6]
    proc, evs = project.build("-rebuild-from=2")
    ok(proc)
    assert cached(evs) == [1] and ran(evs) == [2, 3, 4, 5, 6]
    proc, evs = project.build("-cache=false")
    ok(proc)
    assert cached(evs) == []


def test_a_committed_image_from_cached_steps_has_every_step_and_no_cache_marks(project,
                                                                                docker_client):
    repo = "kiln-test-cache-out-" + uuid.uuid4().hex[:8]
    project.builder.pop("discard")
    project.builder["commit"] = True
    project.write()
    ok(project.build()[0])
    proc, evs = project.build()
    ok(proc)
    assert cached(evs) == [1, 2, 3, 4, 5]
    image_id = [e["id"] for e in evs if e.get("type") == "artifact"][0]
    try:
        docker_client.images.get(image_id).tag(repo, "x")
        out = docker_client.containers.run(f"{repo}:x", entrypoint="/bin/sh",
                                           command=["-c", "cat /one /two /tree/sub/a.txt /four /five"],
                                           remove=True)
        assert out.decode().split() == ["one", "two", "a", "hello", "5"]
        info = docker_client.api.inspect_image(image_id)
        base = docker_client.api.inspect_image(project.base)
        assert info["Config"].get("Labels") == base["Config"].get("Labels")
        assert not (info.get("Comment") or "").startswith("kiln-cache")
    finally:
        try:
            docker_client.images.remove(f"{repo}:x", force=True)
        except Exception:
            pass


def cache_ls(project: Project) -> list[dict[str, Any]]:
    proc = kiln("cache", "ls", "-json", str(project.template), cwd=project.root)
    ok(proc)
    return json.loads(proc.stdout)


def test_cache_ls_lists_the_entries_and_why_names_the_changed_input(project):
    ok(project.build()[0])
    listed = cache_ls(project)
    assert [e["index"] for e in listed] == [1, 2, 3, 4, 5]
    assert {e["build"] for e in listed} == {"docker"}
    assert listed[2]["provisioner"].startswith("file")
    proc = kiln("cache", "ls", cwd=project.root)
    ok(proc)
    line = [x for x in proc.stdout.splitlines() if listed[1]["key"][:12] in x][0]
    assert "t.json" in line and "docker" in line and "2 shell" in line
    proc = kiln("cache", "why", str(project.template), cwd=project.root)
    ok(proc)
    assert proc.stdout.count(": hit [") == 5
    project.script.chmod(0o755)
    proc = kiln("cache", "why", "-var", "five=6", str(project.template), cwd=project.root)
    ok(proc)
    lines = proc.stdout.splitlines()
    assert lines[1].endswith(": hit [" + listed[0]["key"][:12] + "]")
    assert "2  shell: files/two.sh: miss, its inputs changed:" in lines[2]
    assert lines[3].strip() == '-inputs["files/two.sh"].mode = "0o644"'
    assert lines[4].strip() == '+inputs["files/two.sh"].mode = "0o755"'
    assert "3  file" in lines[5] and "an earlier provisioner changed" in lines[5]
    assert '+config.environment_vars[0] = "FIVE=6"' in proc.stdout


def test_secret_stays_out_of_cache_ls_and_why(project):
    secret = "Zq9-" + uuid.uuid4().hex
    project.provisioners[0]["environment_vars"] = ["PW={{user `secret`}}"]
    project.provisioners[0]["inline"] = ["echo $PW {{user `secret`}} > /one"]
    project.write()
    ok(project.build("-var", f"secret={secret}")[0])
    for args in (["ls"], ["ls", "-json"], ["why", "-var", f"secret={secret}"],
                 ["why", "-var", f"secret={secret}x"]):
        proc = kiln("cache", *args, str(project.template), cwd=project.root)
        ok(proc)
        assert secret not in proc.stdout + proc.stderr
    assert "<sensitive:" in proc.stdout  # the changed secret shows as a changed seal


def test_prune_keep_storage_removes_least_recently_used_first(project):
    project.provisioners[0]["inline"] = ["dd if=/dev/urandom of=/big bs=1024 count=400"]
    project.write()
    ok(project.build()[0])
    old = {e["key"] for e in cache_ls(project)}
    project.provisioners[0]["inline"] = ["dd if=/dev/urandom of=/big2 bs=1024 count=400"]
    project.write()
    ok(project.build()[0])
    listed = cache_ls(project)
    new = {e["key"] for e in listed} - old
    assert len(new) == 5
    # each entry holds what its container changed since it started: the 400 KiB file
    newer = sum(e["size"] for e in listed if e["key"] in new)
    assert newer > 5 * 400_000 and sum(e["size"] for e in listed) > 2 * newer - 100_000
    limit = newer + 50_000
    proc = kiln("cache", "prune", f"-keep-storage={limit}", str(project.template),
                cwd=project.root)
    ok(proc)
    after = cache_ls(project)
    assert {e["key"] for e in after} == new, proc.stdout
    assert sum(e["size"] for e in after) <= limit
    # the newer chain is still a hit
    proc, evs = project.build()
    ok(proc)
    assert cached(evs) == [1, 2, 3, 4, 5]
    proc = kiln("cache", "prune", "-all", str(project.template), cwd=project.root)
    ok(proc)
    assert cache_ls(project) == []


def test_cache_commands_reject_bad_input_with_a_message(project):
    for args, words in ((["prune", "-keep-storage=lots"], "invalid size"),
                        (["prune", "-until=soon"], "invalid duration"),
                        (["frobnicate"], "unknown cache command")):
        proc = kiln("cache", *args, cwd=project.root)
        assert proc.returncode == 1 and words in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stderr


# -- kiln dev ---------------------------------------------------------------------------------


class Dev:
    """`kiln dev` as a subprocess; its output read line by line by a thread."""

    def __init__(self, project: Project):
        import queue
        import threading

        env = dict(os.environ)
        env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "kiln.backend.cli", "dev", "-color=false",
             f"-state-dir={project.root / '.kiln'}", str(project.template)],
            cwd=project.root, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, bufsize=1)
        self.lines: list[str] = []
        self._q: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._q.put(line.rstrip("\n"))
        self._q.put(None)

    def wait_for(self, needle: str, timeout: float = 90) -> list[str]:
        """Lines up to (and with) the next one containing ``needle``."""
        import queue
        import time

        got: list[str] = []
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._q.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no {needle!r} in time; output:\n" + "\n".join(
                    self.lines[-60:])) from None
            if line is None:
                raise AssertionError(f"kiln dev ended before {needle!r}:\n" + "\n".join(
                    self.lines[-60:]))
            self.lines.append(line)
            got.append(line)
            if needle in line:
                return got

    def quiet_for(self, seconds: float) -> list[str]:
        import queue
        import time

        got = []
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                line = self._q.get(timeout=0.05)
            except queue.Empty:
                continue
            if line is None:
                break
            self.lines.append(line)
            got.append(line)
        return got

    def quit(self) -> int:
        assert self.proc.stdin is not None
        self.proc.stdin.write("q\n")
        self.proc.stdin.flush()
        code = self.proc.wait(60)
        self.quiet_for(0.2)
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def container_of(lines: list[str]) -> str:
    hint = [x for x in lines if "the container is up: docker exec -it " in x][-1]
    return hint.split("docker exec -it ")[1].split()[0]


def output_of(lines: list[str]) -> list[str]:
    return [x.split("docker: ", 1)[1] for x in lines if x.startswith("    docker: ")]


def dev_project(project: Project) -> Project:
    """Five provisioners; the 4th runs a script the test edits."""
    four = project.files / "four.sh"
    four.write_text("echo out-four-a\n")
    project.provisioners = [
        {"type": "shell", "inline": ["echo out-one"]},
        {"type": "shell", "script": "files/two.sh"},
        {"type": "shell", "inline": ["echo out-three"]},
        {"type": "shell", "script": "files/four.sh"},
        {"type": "shell", "inline": ["echo out-five"]},
    ]
    project.write()
    return project


def test_dev_reruns_only_from_the_edited_provisioner_and_q_removes_the_container(
        project, docker_client):
    dev_project(project)
    dev = Dev(project)
    try:
        first = dev.wait_for("==> dev: watching")
        assert {"out-one", "out-three", "out-four-a", "out-five"} <= set(output_of(first))
        old = container_of(first)
        (project.files / "four.sh").write_text("echo out-four-b\n")
        second = dev.wait_for("==> dev: watching")
        assert any("==> dev: changed: files/four.sh" in x for x in second)
        out = output_of(second)
        assert "out-four-b" in out and "out-five" in out
        assert not {"out-one", "out-three"} & set(out)
        assert sum("Using cached result of provisioner" in x for x in second) == 3
        new = container_of(second)
        with pytest.raises(docker.errors.NotFound):
            docker_client.containers.get(old)
        assert docker_client.containers.get(new).status == "running"
        assert dev.quit() == 0
        with pytest.raises(docker.errors.NotFound):
            docker_client.containers.get(new)
    finally:
        dev.kill()


def test_dev_twenty_quick_saves_rerun_once_and_a_swap_file_never(project):
    dev_project(project)
    dev = Dev(project)
    try:
        dev.wait_for("==> dev: watching")
        import time

        script = project.files / "four.sh"
        start = time.monotonic()
        for i in range(20):
            script.write_text(f"echo out-four-{i}\n")
            time.sleep(0.3 / 20)
        assert time.monotonic() - start < 0.6
        second = dev.wait_for("==> dev: watching")
        assert sum("==> dev: changed:" in x for x in second) == 1
        assert "out-four-19" in output_of(second)
        (project.files / ".four.sh.swp").write_bytes(b"\0" * 100)
        (project.files / "4913").write_text("")
        (project.files / "four.sh~").write_text("old")
        later = dev.quiet_for(2.0)
        assert not any("==> dev: changed" in x for x in later), later
        assert dev.quit() == 0
        assert sum("Build 'docker' finished" in x for x in dev.lines) == 2
    finally:
        dev.kill()


def test_a_killed_dev_leaves_its_container_to_kiln_cleanup(project, docker_client):
    dev_project(project)
    dev = Dev(project)
    try:
        name = container_of(dev.wait_for("==> dev: watching"))
        dev.kill()
        assert docker_client.containers.get(name).status == "running"
        proc = kiln("cleanup", cwd=project.root)
        ok(proc)
        assert "removed docker-container" in proc.stdout
        with pytest.raises(docker.errors.NotFound):
            docker_client.containers.get(name)
    finally:
        dev.kill()
