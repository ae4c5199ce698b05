"""The docker communicator, builder and post-processors against the real Docker engine.

Every container a test starts carries the session's ``kiln.test`` label (removed at the
end of the session even if a test dies half-way); builds get a unique run id, so the
containers of one build can be counted by name afterwards.
"""

from __future__ import annotations

import json
import os
import tarfile
import threading
import time
import uuid
from contextlib import ExitStack
from types import SimpleNamespace
from typing import Any

import build_context
import pytest
from build_context import decode, problems_of
from kiln.backend.engine.ledger import Ledger, reap
from kiln.backend.plugins.docker.builder import DockerBuilder
from kiln.backend.plugins.docker.communicator import ContainerGone, DockerCommunicator
from kiln.backend.plugins.docker.config import parse_run_command
from kiln.backend.plugins.docker.driver import DockerImageArtifact
from kiln.backend.plugins.postprocessors.docker_import import DockerImportPostProcessor
from kiln.backend.plugins.postprocessors.docker_push import DockerPushPostProcessor
from kiln.backend.plugins.postprocessors.docker_save import DockerSavePostProcessor
from kiln.backend.plugins.postprocessors.docker_tag import DockerTagPostProcessor
from kiln.backend.plugins.provisioners.file import FileProvisioner
from kiln.backend.plugins.provisioners.shell import ShellProvisioner
from kiln.backend.sdk.cancel import CancelToken
from kiln.backend.sdk.communicator import CommunicatorError
from kiln.backend.sdk.plugin import PROVISION, Artifact, Cancelled, StepError

docker_mark = pytest.mark.docker


# =========================================================================== no engine needed


def test_config_rules():
    ok = {"image": "x", "commit": True}
    decode(DockerBuilder, ok)
    assert "image must be given" in problems_of(DockerBuilder, {"commit": True})
    assert "set one of commit, discard or export_path" in problems_of(DockerBuilder, {"image": "x"})
    assert "only one of commit, discard and export_path" in problems_of(
        DockerBuilder, {"image": "x", "commit": True, "discard": True})
    assert "is a directory" in problems_of(DockerBuilder, {"image": "x", "export_path": "/tmp"})
    assert "not supported by Kiln" in problems_of(DockerBuilder, {"commit": True,
                                                                 "build": {"path": "."}})
    assert "ecr_login needs login_server" in problems_of(DockerBuilder, {**ok, "ecr_login": True})
    # changes go to the engine as written (as in Packer), with a warning for what it refuses
    builder = DockerBuilder(decode(DockerBuilder, {**ok, "changes": ["RUN ls", "ENV A=1"]}))
    assert builder.prepare(None) == [
        "changes: 'RUN ls': docker commit takes only CMD, ENTRYPOINT, ENV, EXPOSE, HEALTHCHECK, "
        "LABEL, ONBUILD, STOPSIGNAL, USER, VOLUME, WORKDIR; the engine will most likely refuse "
        "this when the container is committed"]
    assert "unknown configuration key" in problems_of(DockerBuilder, {**ok, "imagee": "x"})


def test_config_defaults():
    cfg = decode(DockerBuilder, {"image": "x", "commit": True})
    assert cfg.pull is True
    assert cfg.fix_upload_owner is True
    assert cfg.communicator_type() == "docker"
    assert cfg.effective_container_dir() == "/packer-files"
    assert [str(x) for x in cfg.run_command] == ["-d", "-i", "-t", "--entrypoint=/bin/sh", "--",
                                                 "{{.Image}}"]


def test_parse_run_command():
    spec = parse_run_command(["-v", "/h:/c", "-dit", "--entrypoint=/bin/sh", "-e", "A=1",
                              "--env=B=2", "-u", "nobody", "--privileged", "--label", "k=v",
                              "--network=none", "--tmpfs", "/run:size=1m", "-w", "/srv",
                              "--memory", "64m", "--cap-add", "NET_ADMIN", "--",
                              "img:tag", "sleep", "10"])
    assert spec.image == "img:tag"
    assert spec.command == ["sleep", "10"]
    kw = spec.kwargs
    assert kw["stdin_open"] and kw["tty"]
    assert kw["entrypoint"] == ["/bin/sh"]
    assert kw["environment"] == ["A=1", "B=2"]
    assert kw["user"] == "nobody" and kw["privileged"] is True
    assert kw["labels"] == {"k": "v"} and kw["network_mode"] == "none"
    assert kw["tmpfs"] == {"/run": "size=1m"} and kw["working_dir"] == "/srv"
    assert kw["mem_limit"] == 64 << 20 and kw["cap_add"] == ["NET_ADMIN"]
    assert kw["volumes"] == ["/h:/c"]
    assert parse_run_command(["img"]).image == "img"
    with pytest.raises(ValueError, match="--bogus is not supported"):
        parse_run_command(["--bogus", "img"])
    with pytest.raises(ValueError, match="names no image"):
        parse_run_command(["-d", "-i"])


def test_postprocessor_config_rules():
    assert "repository must be given" in problems_of(DockerTagPostProcessor, {})
    assert "path must be given" in problems_of(DockerSavePostProcessor, {})
    assert "repository must be given" in problems_of(DockerImportPostProcessor, {})
    assert "ecr_login needs login_server" in problems_of(DockerPushPostProcessor,
                                                          {"ecr_login": True})


def test_postprocessors_reject_wrong_artifacts():
    ctx = SimpleNamespace(cancel=CancelToken())
    ui = SimpleNamespace(say=lambda *_: None, progress=lambda *a, **k: None)
    export = Artifact("packer.docker", id="Container", files=["/x.tar"])
    tag = DockerTagPostProcessor(decode(DockerTagPostProcessor, {"repository": "r"}))
    with pytest.raises(StepError, match="Unknown artifact type: packer.docker"):
        tag.post_process(ctx, ui, export)
    save = DockerSavePostProcessor(decode(DockerSavePostProcessor, {"path": "/tmp/x.tar"}))
    with pytest.raises(StepError, match="Unknown artifact type"):
        save.post_process(ctx, ui, export)
    push = DockerPushPostProcessor(decode(DockerPushPostProcessor, {}))
    with pytest.raises(StepError, match="Unknown artifact type"):
        push.post_process(ctx, ui, export)
    imp = DockerImportPostProcessor(decode(DockerImportPostProcessor, {"repository": "r"}))
    with pytest.raises(StepError, match="Unknown artifact type: packer.file"):
        imp.post_process(ctx, ui, Artifact("packer.file", files=["/x"]))
    assert DockerTagPostProcessor.default_keep == (True, True)
    assert DockerSavePostProcessor.default_keep == (True, False)
    assert DockerImportPostProcessor.default_keep == (False, False)
    assert DockerPushPostProcessor.default_keep == (True, False)


# =========================================================================== communicator


@pytest.fixture
def container(docker_client, base_image, docker_labels):
    """A running busybox container (as the builder starts one); removed afterwards."""
    made = []

    def start(**kw: Any):
        c = docker_client.containers.run(base_image, entrypoint="/bin/sh", tty=True,
                                         stdin_open=True, detach=True, labels=docker_labels, **kw)
        made.append(c)
        return c

    start.all = made
    c = start()
    start.default = c
    yield start
    for c in made:
        try:
            c.remove(force=True, v=True)
        except Exception:
            pass


@pytest.fixture
def comm(container):
    com = DockerCommunicator(container.default.id)
    yield com
    com.close()


class Capture:
    def __init__(self):
        self.out: list[str] = []
        self.err: list[str] = []

    def __call__(self, stream: str, lines: list[str]) -> None:
        (self.out if stream == "stdout" else self.err).extend(lines)


def run(comm, command: str, **kw) -> tuple[int, Capture]:
    cap = Capture()
    code = comm.run(command, cap, kw.pop("cancel", CancelToken()), **kw)
    return code, cap


def sh(container, command: str) -> str:
    res = container.exec_run(["/bin/sh", "-c", command])
    return res.output.decode()


@docker_mark
def test_exit_codes(comm):
    assert run(comm, "true")[0] == 0
    assert run(comm, "exit 3")[0] == 3
    assert run(comm, "no-such-command-xyz")[0] == 127
    assert run(comm, "kill -9 $$")[0] == 137


@docker_mark
def test_stdout_and_stderr_are_separate_lines(comm):
    code, cap = run(comm, "echo out1; echo err1 >&2; printf 'no-newline'; echo err2 >&2")
    assert code == 0
    assert cap.out == ["out1", "no-newline"]
    assert cap.err == ["err1", "err2"]


@docker_mark
def test_ten_megabytes_of_output(comm):
    line = "x" * 99
    code, cap = run(comm, f"yes {line} | head -n 105000")
    assert code == 0
    assert len(cap.out) == 105000
    assert all(x == line for x in cap.out)
    assert cap.err == []


@docker_mark
def test_command_shell_semantics(comm):
    code, cap = run(comm, "cd /tmp && echo \"$PWD\" 'single' && A=1; echo $A")
    assert (code, cap.out) == (0, ["/tmp single", "1"])


@docker_mark
def test_stdin_is_fed(comm):
    code, cap = run(comm, "cat; echo end", stdin=b"line1\nline2\n")
    assert code == 0 and cap.out == ["line1", "line2", "end"]


@docker_mark
def test_exec_user_and_pty(container):
    c = DockerCommunicator(container.default.id, exec_user="nobody")
    assert run(c, "id -u")[1].out == ["65534"]
    c.close()
    c = DockerCommunicator(container.default.id, pty=True)
    code, cap = run(c, "echo out; echo err >&2; [ -t 1 ] && echo tty")
    assert code == 0
    assert [x.rstrip("\r") for x in cap.out] == ["out", "err", "tty"]
    c.close()


@docker_mark
def test_timeout_kills_the_command(comm):
    t = time.monotonic()
    code, _ = run(comm, "sleep 60", timeout=0.5)
    assert code != 0
    assert time.monotonic() - t < 8


@docker_mark
def test_cancel_kills_the_process_group(comm, container):
    token = CancelToken()
    threading.Timer(0.7, token.cancel).start()
    t = time.monotonic()
    cap = Capture()
    code = comm.run("sleep 301 & sleep 302; echo never", cap, token)
    assert time.monotonic() - t < 8
    assert code in (143, 137)
    assert "never" not in cap.out
    time.sleep(0.3)
    ps = sh(container.default, "ps -o pid,args")
    assert "sleep 301" not in ps and "sleep 302" not in ps, ps


@docker_mark
def test_cancel_before_start_kills_at_once(comm):
    token = CancelToken()
    token.cancel()
    t = time.monotonic()
    run(comm, "sleep 60", cancel=token)
    assert time.monotonic() - t < 8


@docker_mark
def test_upload_file_and_bytes(comm, container, tmp_path):
    src = tmp_path / "script.sh"
    src.write_text("#!/bin/sh\necho hi\n")
    src.chmod(0o750)
    with pytest.raises(CommunicatorError, match="/opt/new/dir does not exist"):
        comm.upload("/opt/new/dir/script.sh", str(src))  # as docker cp: parents must exist
    comm.upload("/root/script.sh", str(src))
    assert sh(container.default, "stat -c '%a %u %s' /root/script.sh").split() == \
        ["750", "0", str(src.stat().st_size)]
    with pytest.raises(CommunicatorError, match="cannot overwrite directory"):
        comm.upload("/tmp", str(src))  # a directory is never replaced by a file
    assert sh(container.default, "test -d /tmp && echo dir").strip() == "dir"
    comm.upload("/tmp/b.bin", b"\x00\x01binary", mode=0o600)
    assert sh(container.default, "stat -c '%a' /tmp/b.bin; od -An -c /tmp/b.bin").split()[:3] == \
        ["600", "\\0", "001"]
    big = os.urandom(3 << 20)
    comm.upload("/tmp/big", big)
    out = tmp_path / "big.back"
    comm.download("/tmp/big", str(out))
    assert out.read_bytes() == big


@docker_mark
def test_uploads_are_chowned_to_the_container_user(container, tmp_path):
    c = container(user="nobody")
    com = DockerCommunicator.for_container(None, c.id, SimpleNamespace())
    com.upload("/tmp/owned", b"x")
    assert sh(c, "stat -c %u /tmp/owned").strip() == "65534"
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "f").write_text("f")
    com.upload_dir("/tmp", str(tmp_path / "d"))
    assert sh(c, "stat -c %u /tmp/d /tmp/d/f").split() == ["65534", "65534"]
    assert sh(c, "stat -c %u /tmp").strip() == "0"  # the destination itself is left alone
    com.close()
    keep = DockerCommunicator.for_container(None, c.id, SimpleNamespace(fix_upload_owner=False))
    keep.upload("/tmp/root-owned", b"x")
    assert sh(c, "stat -c %u /tmp/root-owned").strip() == "0"
    keep.close()


@pytest.fixture
def tree(tmp_path):
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "a.txt").write_text("A")
    (src / "sub" / "b.txt").write_text("B")
    (src / "skip.log").write_text("L")
    os.symlink("a.txt", src / "link")
    return src


@docker_mark
def test_upload_dir_follows_docker_cp(comm, container, tree):
    """A new destination becomes the directory; an existing one receives it ("src") or its
    contents ("src/"); a missing parent or a file in the way is an error."""
    sh(container.default, "mkdir -p /up/one /up/two")
    comm.upload_dir("/up/one", str(tree))
    comm.upload_dir("/up/two", str(tree) + "/", exclude=["*.log"])
    comm.upload_dir("/up/three", str(tree))
    comm.upload_dir("/up/four", str(tree) + "/")
    listing = sh(container.default, "cd /up && find . | sort").split()
    assert listing == [".", "./four", "./four/a.txt", "./four/link", "./four/skip.log",
                       "./four/sub", "./four/sub/b.txt",
                       "./one", "./one/src", "./one/src/a.txt", "./one/src/link",
                       "./one/src/skip.log", "./one/src/sub", "./one/src/sub/b.txt",
                       "./three", "./three/a.txt", "./three/link", "./three/skip.log",
                       "./three/sub", "./three/sub/b.txt",
                       "./two", "./two/a.txt", "./two/link", "./two/sub", "./two/sub/b.txt"]
    assert sh(container.default, "readlink /up/two/link; cat /up/two/sub/b.txt") == "a.txt\nB"
    with pytest.raises(CommunicatorError, match="/no/such does not exist"):
        comm.upload_dir("/no/such/dir", str(tree))
    with pytest.raises(CommunicatorError, match="is a file"):
        comm.upload_dir("/etc/passwd", str(tree))


@docker_mark
def test_download_file_dir_and_glob(comm, container, tmp_path):
    sh(container.default, "mkdir -p /data/sub && echo 1 > /data/one.txt && echo 2 > /data/sub/two "
       "&& echo 3 > /data/three.txt && ln -s one.txt /data/alias")
    comm.download("/data/one.txt", str(tmp_path / "one"))
    assert (tmp_path / "one").read_text() == "1\n"
    comm.download("/data/alias", str(tmp_path / "alias"))  # symlinks are followed
    assert (tmp_path / "alias").read_text() == "1\n"
    comm.download_dir("/data", str(tmp_path / "whole"))
    assert (tmp_path / "whole" / "data" / "sub" / "two").read_text() == "2\n"
    comm.download_dir("/data/", str(tmp_path / "contents"))
    assert (tmp_path / "contents" / "sub" / "two").read_text() == "2\n"
    comm.download_dir("/data/*.txt", str(tmp_path / "glob"))
    assert sorted(os.listdir(tmp_path / "glob")) == ["one.txt", "three.txt"]
    with pytest.raises(CommunicatorError, match="is a directory"):
        comm.download("/data", str(tmp_path / "nope"))
    with pytest.raises(CommunicatorError, match="/no/such"):
        comm.download("/no/such", str(tmp_path / "nope"))
    assert not (tmp_path / "nope").exists()


@docker_mark
def test_gone_container_is_not_retryable(container):
    c = container()
    com = DockerCommunicator(c.id)
    c.remove(force=True)
    with pytest.raises(ContainerGone):
        run(com, "true")
    com.close()


@docker_mark
def test_access_hint(comm, container):
    assert comm.access_hint() == f"docker exec -it {container.default.id[:12]} sh"
    assert comm.connection_data()["ConnType"] == "docker"


# =========================================================================== builder


class Harness(build_context.Run):
    """Runs a docker build in-process the way the engine does: steps with cleanups
    registered first, provisioners at the PROVISION marker."""

    def __init__(self, tmp_path):
        self.run_id = "t" + uuid.uuid4().hex[:11]
        super().__init__("docker", "docker", self.run_id, ledger=Ledger(self.run_id),
                         template_path=str(tmp_path / "t.json"))

    def lines(self, stream: str = "") -> list[str]:
        """Lines of one stream; by default the step lines and Packer's Message lines (which
        print as command output does)."""
        if stream:
            return super().lines(stream)
        return [x for e in self.events if e.type == "output" and e.data["stream"] in
                ("ui", "stdout") for x in e.data["lines"]]

    def build(self, config: dict, provisioners: list[tuple[type, dict]] = ()) -> Artifact | None:
        builder = DockerBuilder(decode(DockerBuilder, config))
        steps = builder.steps(self.ctx)
        with ExitStack() as stack:
            for step in steps:
                if step is PROVISION:
                    data = dict(self.ctx.generated_data)
                    data["ID"] = self.ctx.instance_id
                    data.update(self.ctx.communicator.connection_data())
                    self.ctx.generated_data = data
                    for cls, cfg in provisioners:
                        cls(decode(cls, cfg)).provision(self.ctx, self.ctx.ui,
                                                        self.ctx.communicator, data)
                    continue
                stack.callback(step.cleanup, self.ctx)
                self.ctx.cancel.check()
                step.run(self.ctx)
            return builder.artifact(self.ctx)

    def containers(self, docker_client) -> list:
        return docker_client.containers.list(all=True, filters={"name": f"kiln-{self.run_id}"})

    def ledger_kinds(self) -> list[str]:
        return [e.kind for e in self.ledger.entries(self.run_id)]


@pytest.fixture
def harness(tmp_path):
    return Harness(tmp_path)


@pytest.fixture
def images(docker_client):
    """Image ids/names to remove at the end of the test."""
    made: list[str] = []
    yield made
    for ref in reversed(made):
        try:
            docker_client.images.remove(ref, force=True)
        except Exception:
            pass


def base_config(base_image, docker_labels, **extra) -> dict:
    label = "{}={}".format(*next(iter(docker_labels.items())))
    run_command = ["-d", "-i", "-t", "--label", label, "--entrypoint=/bin/sh", "--",
                   "{{.Image}}"]
    return {"image": base_image, "pull": False, "run_command": run_command, **extra}


@docker_mark
def test_commit_applies_changes_and_keeps_files(harness, docker_client, base_image,
                                                docker_labels, images, tmp_path):
    motd = tmp_path / "motd"
    motd.write_text("welcome\n")
    art = harness.build(
        base_config(base_image, docker_labels, commit=True, author="Kiln Tests <t@example.com>",
                    message="built by a test",
                    changes=["ENV KILN_X=1", "LABEL org.example.k=v", "WORKDIR /srv",
                             "EXPOSE 8080", "USER nobody"]),
        [(ShellProvisioner, {"inline": ["mkdir -p /srv", "echo made > /srv/made.txt"]}),
         (FileProvisioner, {"source": str(motd), "destination": "/srv/motd"})],
    )
    images.append(art.id())
    assert isinstance(art, DockerImageArtifact)
    assert art.builder_id == "packer.post-processor.docker-import"
    assert art.id().startswith("sha256:")
    assert art.string() == f"Imported Docker image: {art.id()}"
    assert art.files() == []
    assert art.state("generated_data")["ImageSha256"] == art.id()
    image = docker_client.images.get(art.id())
    cfg = image.attrs["Config"]
    assert "KILN_X=1" in cfg["Env"]
    assert cfg["Labels"]["org.example.k"] == "v"
    assert "kiln.run" not in cfg["Labels"]  # Kiln's own labels stay out of the image
    assert cfg["WorkingDir"] == "/srv" and cfg["User"] == "nobody"
    assert "8080/tcp" in cfg["ExposedPorts"]
    # as Packer 1.6.6's: the image keeps the container's entrypoint (run_command's /bin/sh)
    assert cfg["Cmd"] is None and cfg["Entrypoint"] == ["/bin/sh"]
    assert cfg["Volumes"] is None  # the shared folder is a bind mount, not a volume
    assert image.attrs["Author"] == "Kiln Tests <t@example.com>"
    assert image.attrs["Comment"] == "built by a test"
    # the entrypoint is /bin/sh, so the command is the shell's arguments
    out = docker_client.containers.run(art.id(), ["-c", "cat /srv/made.txt /srv/motd"],
                                       remove=True, labels=docker_labels)
    assert out == b"made\nwelcome\n"
    said = harness.lines()
    for text in ("Creating a temporary directory for sharing data...",
                 "Starting docker container...", "Committing the container",
                 f"Image ID: {art.id()}"):
        assert text in said
    assert any(x.startswith("Run command: docker run -v ") for x in said)
    assert harness.containers(docker_client) == []
    assert harness.ledger_kinds() == []


@docker_mark
def test_changes_set_the_command_of_the_image(harness, docker_client, base_image, docker_labels,
                                           images):
    art = harness.build(base_config(base_image, docker_labels, commit=True,
                                    changes=['CMD ["echo", "from-cmd"]']))
    images.append(art.id())
    cfg = docker_client.images.get(art.id()).attrs["Config"]
    assert cfg["Cmd"] == ["echo", "from-cmd"] and cfg["Entrypoint"] == ["/bin/sh"]


@docker_mark
def test_export(harness, docker_client, base_image, docker_labels, tmp_path):
    path = tmp_path / "out" / "image.tar"
    art = harness.build(base_config(base_image, docker_labels, export_path=str(path)),
                        [(ShellProvisioner, {"inline": ["echo exported > /exported.txt"]})])
    assert art.builder_id == "packer.docker"
    assert art.id() == "Container" and art.files() == [str(path)]
    assert art.string() == f"Exported Docker file: {path}"
    with tarfile.open(path) as tar:
        names = tar.getnames()
        assert "exported.txt" in names and "bin/busybox" in names and "packer-files" in names
        assert tar.extractfile("exported.txt").read() == b"exported\n"
    art.destroy()
    assert not path.exists()
    assert harness.containers(docker_client) == []


@docker_mark
def test_discard(harness, docker_client, base_image, docker_labels):
    art = harness.build(base_config(base_image, docker_labels, discard=True),
                        [(ShellProvisioner, {"inline": ["true"]})])
    assert art.builder_id == "packer.docker" and art.files() == [""]
    art.destroy()  # nothing to remove
    assert harness.containers(docker_client) == []


@docker_mark
def test_run_command_is_rendered_and_translated(harness, docker_client, base_image,
                                                docker_labels, tmp_path):
    label = "{}={}".format(*next(iter(docker_labels.items())))
    out = tmp_path / "seen"
    art = harness.build(
        {"image": base_image, "pull": False, "discard": True,
         "run_command": ["-d", "-i", "-t", "--label", label, "-e", "FROM_IMAGE={{.Image}}",
                         "--hostname", "kiln-host", "-w", "/tmp", "--entrypoint=/bin/sh", "--",
                         "{{.Image}}"],
         "volumes": {str(tmp_path): "/host"}},
        [(ShellProvisioner, {"inline": ["echo \"$FROM_IMAGE $(hostname) $(pwd)\" > /host/seen",
                                        "ls /packer-files >/dev/null"]})],
    )
    assert art is not None
    assert out.read_text() == f"{base_image} kiln-host /tmp\n"
    said = harness.lines()
    assert f"Run command: docker run -v {tmp_path}:/host" in " ".join(said)


@docker_mark
def test_generated_data_reaches_provisioners(harness, base_image, docker_labels, tmp_path):
    out = tmp_path / "data"
    harness.build(base_config(base_image, docker_labels, discard=True,
                              volumes={str(tmp_path): "/host"}),
                  [(ShellProvisioner, {"inline": ["echo {{.ID}} {{.ImageSha256}} > /host/data"]})])
    cid, sha = out.read_text().split()
    assert len(cid) == 64 and sha == "ERR_IMAGE_SHA256_NOT_FOUND"


@docker_mark
def test_provisioners_over_the_docker_communicator(harness, base_image, docker_labels,
                                                   tmp_path):
    src = tmp_path / "tree"
    (src / "d").mkdir(parents=True)
    (src / "d" / "x.txt").write_text("x")
    out = tmp_path / "out"
    harness.build(
        base_config(base_image, docker_labels, discard=True),
        [(FileProvisioner, {"source": str(src) + "/", "destination": "/tree"}),
         (ShellProvisioner, {"inline": ["echo \"$A|$B\" > /tree/env.txt"],
                             "environment_vars": ["A=it's", "B=two words"],
                             "use_env_var_file": True}),
         (ShellProvisioner, {"inline": ["ls -A /tmp > /tree/tmp-listing.txt"],
                             "remote_folder": "/root"}),
         (FileProvisioner, {"source": "/tree/", "destination": str(out),
                            "direction": "download"}),
         (FileProvisioner, {"source": "/tree/env.txt", "destination": str(tmp_path) + "/",
                            "direction": "download"})],
    )
    assert (out / "d" / "x.txt").read_text() == "x"
    assert (tmp_path / "env.txt").read_text() == "it's|two words\n"
    # the script and the variables file were removed after running
    assert (out / "tmp-listing.txt").read_text() == ""


@docker_mark
def test_failed_provisioner_removes_the_container(harness, docker_client, base_image,
                                                  docker_labels):
    with pytest.raises(StepError, match="non-zero exit status: 7"):
        harness.build(base_config(base_image, docker_labels, commit=True),
                      [(ShellProvisioner, {"inline": ["exit 7"]})])
    assert harness.containers(docker_client) == []
    assert harness.ledger_kinds() == []
    assert any(x.startswith("Killing the container: ") for x in harness.lines())


@docker_mark
def test_cancel_during_provisioning_removes_the_container(harness, docker_client, base_image,
                                                          docker_labels):
    threading.Timer(1.5, harness.ctx.cancel.cancel).start()
    t = time.monotonic()
    with pytest.raises(Cancelled):
        harness.build(base_config(base_image, docker_labels, commit=True),
                      [(ShellProvisioner, {"inline": ["sleep 120"]})])
    assert time.monotonic() - t < 20
    assert harness.containers(docker_client) == []
    assert harness.ledger_kinds() == []


@docker_mark
def test_missing_image_is_a_clear_error(harness, docker_client, docker_labels):
    missing = f"kiln/missing-{uuid.uuid4().hex[:8]}:none"
    with pytest.raises(StepError, match=f"image {missing} not found.*pull is false"):
        harness.build(base_config(missing, docker_labels, discard=True))
    assert harness.containers(docker_client) == []
    assert harness.ledger_kinds() == []


@docker_mark
def test_container_that_exits_is_reported(harness, docker_client, base_image, docker_labels):
    # The run step sees the exit when dockerd has recorded it by then; otherwise the
    # connect step must. The test waits for the exit between the two so that one of them
    # reports it whatever the machine's load.
    builder = DockerBuilder(decode(DockerBuilder, {
        "image": base_image, "pull": False, "discard": True,
        "run_command": ["-d", "--label", "{}={}".format(*next(iter(docker_labels.items()))),
                        "--entrypoint=/bin/true", "--", "{{.Image}}"]}))
    engine, temp_dir, run, connect = builder.steps(harness.ctx)[:4]
    with ExitStack() as stack:
        with pytest.raises(StepError, match="stopped right after it started|is not running"):
            for step in (engine, temp_dir, run, connect):
                stack.callback(step.cleanup, harness.ctx)
                step.run(harness.ctx)
                if step is run:
                    docker_client.api.wait(harness.ctx.instance_id, timeout=30)
    assert harness.containers(docker_client) == []
    assert harness.ledger_kinds() == []


@docker_mark
def test_reaper_removes_what_a_killed_run_left(harness, docker_client, base_image, docker_labels):
    builder = DockerBuilder(decode(DockerBuilder, base_config(base_image, docker_labels,
                                                              discard=True)))
    for step in builder.steps(harness.ctx)[:4]:  # engine, temp dir, run, connect; no cleanup
        step.run(harness.ctx)
    harness.ctx.communicator.close()
    assert len(harness.containers(docker_client)) == 1
    entries = [e for e in harness.ledger.entries(harness.run_id) if e.kind == "docker-container"]
    assert len(entries) == 1 and entries[0].data["id"] == harness.ctx.instance_id
    reap(entries[0])
    reap(entries[0])  # idempotent
    assert harness.containers(docker_client) == []
    for e in harness.ledger.entries(harness.run_id):  # the shared temp dir
        reap(e)
        harness.ledger.release(e.id)


@docker_mark
def test_pull_from_a_local_registry(harness, docker_client, base_image, docker_labels, registry,
                                    images):
    name = f"{registry.address}/kiln/pull-{uuid.uuid4().hex[:8]}:v1"
    docker_client.images.get(base_image).tag(name)
    for _ in docker_client.images.push(name, stream=True, decode=True):
        pass
    docker_client.images.remove(name)
    images.append(name)
    art = harness.build(base_config(name, docker_labels, pull=True, discard=True))
    assert art is not None
    gen = harness.ctx.generated_data
    assert gen["SourceImageDigest"].startswith(f"{name.rsplit(':', 1)[0]}@sha256:")
    assert gen["SourceImageSha256"].startswith("sha256:")
    assert f"Pulling Docker image: {name}" in harness.lines()


# =========================================================================== post-processors


def pp(cls, config: dict):
    return cls(decode(cls, config))


@pytest.fixture
def committed(harness, base_image, docker_labels, images):
    art = harness.build(base_config(base_image, docker_labels, commit=True),
                        [(ShellProvisioner, {"inline": ["echo pp > /pp.txt"]})])
    images.append(art.id())
    return art


@docker_mark
def test_docker_tag(harness, committed, docker_client, images):
    repo = f"kiln/test-tag-{uuid.uuid4().hex[:8]}"
    images += [f"{repo}:a", f"{repo}:b"]
    out = pp(DockerTagPostProcessor, {"repository": repo, "tags": ["a", "b"]}).post_process(
        harness.ctx, harness.ctx.ui, committed)
    assert out.builder_id == "packer.post-processor.docker-tag"
    assert out.id() == f"{repo}:b"
    assert out.state("docker_tags") == [f"{repo}:a", f"{repo}:b"]
    assert out.string() == f"Imported Docker image: {repo}:b with tags {repo}:a {repo}:b"
    assert out.state("generated_data")["ImageSha256"] == committed.id()
    assert set(docker_client.images.get(committed.id()).tags) >= {f"{repo}:a", f"{repo}:b"}
    said = harness.lines()
    assert f"Tagging image: {committed.id()}" in said and f"Repository: {repo}:a" in said
    # no tags: the repository alone (latest); legacy "tag" still works
    images.append(f"{repo}:latest")
    bare = pp(DockerTagPostProcessor, {"repository": repo}).post_process(
        harness.ctx, harness.ctx.ui, out)
    assert bare.id() == repo and f"{repo}:latest" in docker_client.images.get(repo).tags
    images.append(f"{repo}:old")
    pp(DockerTagPostProcessor, {"repository": repo, "tag": "old"}).post_process(
        harness.ctx, harness.ctx.ui, committed)
    assert f"{repo}:old" in docker_client.images.get(committed.id()).tags


@docker_mark
def test_docker_save(harness, committed, docker_client, images, tmp_path):
    repo = f"kiln/test-save-{uuid.uuid4().hex[:8]}"
    images.append(f"{repo}:v1")
    tagged = pp(DockerTagPostProcessor, {"repository": repo, "tags": ["v1"]}).post_process(
        harness.ctx, harness.ctx.ui, committed)
    path = tmp_path / "saved" / "image.tar"
    save = pp(DockerSavePostProcessor, {"path": str(path)})
    with pytest.raises(StepError, match="Error creating output file"):
        save.post_process(harness.ctx, harness.ctx.ui, tagged)  # as Packer: no mkdir
    path.parent.mkdir()
    out = save.post_process(harness.ctx, harness.ctx.ui, tagged)
    assert out is tagged
    with tarfile.open(path) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))
    assert manifest[0]["RepoTags"] == [f"{repo}:v1"]
    assert "Saved to: " + str(path) in harness.lines()


@docker_mark
def test_docker_import(harness, base_image, docker_labels, docker_client, images, tmp_path):
    path = tmp_path / "c.tar"
    exported = harness.build(base_config(base_image, docker_labels, export_path=str(path)),
                             [(ShellProvisioner, {"inline": ["echo imported > /imp.txt"]})])
    repo = f"kiln/test-import-{uuid.uuid4().hex[:8]}"
    images.append(f"{repo}:v2")
    out = pp(DockerImportPostProcessor, {"repository": repo, "tag": "v2",
                                         "changes": ["ENV IMPORTED=yes", 'CMD ["sh"]']}
             ).post_process(harness.ctx, harness.ctx.ui, exported)
    assert out.builder_id == "packer.post-processor.docker-import"
    assert out.id() == f"{repo}:v2"
    image = docker_client.images.get(f"{repo}:v2")
    assert "IMPORTED=yes" in image.attrs["Config"]["Env"]
    assert image.attrs["Config"]["Cmd"] == ["sh"]
    said = harness.lines()
    assert "Importing image: Container" in said and f"Repository: {repo}:v2" in said
    assert any(x.startswith("Imported ID: sha256:") for x in said)
    assert docker_client.containers.run(f"{repo}:v2", ["cat", "/imp.txt"], remove=True,
                                        labels=docker_labels) == b"imported\n"


@docker_mark
def test_docker_push(harness, committed, docker_client, registry, images):
    repo = f"{registry.address}/kiln/test-push-{uuid.uuid4().hex[:8]}"
    images += [f"{repo}:one", f"{repo}:two"]
    tagged = pp(DockerTagPostProcessor, {"repository": repo, "tags": ["one", "two"]}).post_process(
        harness.ctx, harness.ctx.ui, committed)
    out = pp(DockerPushPostProcessor, {}).post_process(harness.ctx, harness.ctx.ui, tagged)
    assert out.builder_id == "packer.post-processor.docker-import"
    assert out.id() == f"{repo}:two"
    digest = out.state("generated_data")["Digest"]
    assert digest.startswith(f"{repo}@sha256:")
    path = repo.split("/", 1)[1]
    assert sorted(registry.get_json(f"/v2/{path}/tags/list")["tags"]) == ["one", "two"]
    assert f"Pushing: {repo}:one" in harness.lines()


@docker_mark
def test_image_artifact_destroy(harness, committed, docker_client):
    import docker

    committed.destroy()
    with pytest.raises(docker.errors.ImageNotFound):
        docker_client.images.get(committed.id())
    committed.destroy()  # already gone: no error
