"""The dashboard on real docker builds: the debugging keys (retry, p, o, keep) where a
container is at stake. Needs the Docker engine and the offline base image kiln/busybox."""

from __future__ import annotations

import pytest
from tui_helpers import (
    SIZE,
    docker_builder,
    docker_shell,
    kiln_cli,
    only_build,
    ready,
    summary_text,
    view_text,
    wait_for,
    wait_status,
    write_template,
)

pytestmark = [pytest.mark.tui, pytest.mark.docker]


@pytest.fixture
def docker_env(docker_client, base_image, docker_labels):
    """The engine, the base image and labels for every container a test makes."""
    return docker_client, docker_labels


def _container_exists(client, ident: str) -> bool:
    import docker

    try:
        client.containers.get(ident)
        return True
    except docker.errors.NotFound:
        return False


async def test_kept_container_is_seen_by_cleanup_while_the_dashboard_runs(
    proj, app_factory, docker_env
):
    client, labels = docker_env
    write_template(
        proj / "keep.json",
        [docker_builder(labels)],
        [docker_shell("echo broken; exit 4")],
    )
    app = app_factory(proj)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, app)
        await pilot.press("b")
        await wait_for(pilot, lambda: app.builds and only_build(app).question, 60, "paused")
        await pilot.press("k")
        (b,) = await wait_status(pilot, app, ("failed", "succeeded"), timeout=60)
        assert b.kept
        text = summary_text(app)
        hint = "Remove it later with: "
        command = text.split(hint, 1)[1].splitlines()[0].strip()
        # the command the dashboard names is the one that removes it, while it is still open
        dry = kiln_cli(*command.split()[1:], "-dry-run", cwd=proj)
        assert dry.returncode == 0, dry.stderr
        assert "would remove docker-container" in dry.stdout, dry.stdout
        # without -all the kept machine is not removed, and cleanup says why
        plain = kiln_cli("cleanup", "-dry-run", cwd=proj)
        assert "kept on purpose" in plain.stdout and "docker-container" in plain.stdout
        cid = b.access_hint.split()[-2]
        assert _container_exists(client, cid)
        done = kiln_cli(*command.split()[1:], cwd=proj)
        assert done.returncode == 0, done.stdout + done.stderr
        assert not _container_exists(client, cid)


def _edit(path, change) -> None:
    import json

    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data, indent=2) + "\n")


async def test_retry_finds_the_fixed_provisioner_after_one_was_inserted_before_it(
    proj, app_factory, docker_env
):
    """Fix the failed provisioner and insert a new one before it: r does not run the inserted
    one in its place; it says the template changed and the user picks what runs."""
    _client, labels = docker_env
    tpl = write_template(
        proj / "retry-test.json",
        [docker_builder(labels, commit=False)],
        [
            docker_shell("echo step-one > /tmp/trace"),
            docker_shell("echo step-two-broken >> /tmp/trace", "exit 3"),
            docker_shell("echo step-three >> /tmp/trace", "cat /tmp/trace"),
        ],
    )
    app = app_factory(proj)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, app)
        await pilot.press("b")
        await wait_for(pilot, lambda: app.builds and only_build(app).question, 60, "paused")
        b = only_build(app)

        def fix_and_insert(data):
            data["provisioners"][1] = docker_shell("echo step-two-fixed >> /tmp/trace")
            data["provisioners"].insert(1, docker_shell("echo inserted >> /tmp/trace"))

        _edit(tpl, fix_and_insert)
        await pilot.press("r")
        await wait_for(
            pilot, lambda: type(app.screen).__name__ == "RetryChoiceScreen", 30, "the question"
        )
        screen = app.screen
        assert "changed around the failed provisioner" in screen.title_text
        assert "Before it: provisioner 2" in screen.body and "echo inserted" in screen.body
        choices = [c for c, _ in screen.options]
        assert choices == ["matched", "from-changed", "retry", ""]
        matched = dict(screen.options)["matched"]
        assert "provisioner 3" in matched and "step-two-fixed" in matched
        await pilot.press("enter")  # run the matched one
        await wait_status(pilot, app, ("succeeded", "failed"), timeout=60)
        assert b.status == "succeeded", b.error
        text = "\n".join(view_text_all(app, b))
        # the trace the last provisioner printed: the fixed one ran, the inserted one did not
        assert "step-one\nstep-two-broken\nstep-two-fixed\nstep-three" in text.replace("  ", "")
        assert "inserted" not in text.split("Reloaded", 1)[1].split("step-three", 1)[0]
        names = [s.name for s in b.stages if s.kind == "provisioner"]
        assert names[1].startswith("shell: echo step-two-fixed")


def view_text_all(app, b) -> list[str]:
    app.select_build(b.key, None)
    return view_text(app)


async def test_p_runs_on_the_kept_container_by_default_and_this_host_only_when_confirmed(
    proj, tmp_path, app_factory, docker_env
):
    """Keep a failed docker build with k, press p, enter: the provisioners run in the kept
    container, never on this host; choosing this host asks first, saying what runs where as
    whom, and cancelling runs nothing."""
    import uuid

    client, labels = docker_env
    mark = f"/tmp/kiln-p-{uuid.uuid4().hex[:8]}"
    write_template(
        proj / "box.json",
        [docker_builder(labels, commit=False)],
        [docker_shell(f"touch {mark}", "echo made the marker"), docker_shell("exit 5")],
    )
    app = app_factory(proj)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, app)
        await pilot.press("b")
        await wait_for(pilot, lambda: app.builds and only_build(app).question, 60, "paused")
        await pilot.press("k")
        (kept,) = await wait_status(pilot, app, ("failed", "succeeded"), timeout=60)
        cid = kept.access_hint.split()[-2]
        client.containers.get(cid).exec_run(["rm", "-f", mark])  # the build made it: start afresh
        app.templates.tree_widget.focus()
        await pilot.press("p")
        await wait_for(pilot, lambda: type(app.screen).__name__ == "TargetPicker", what="picker")
        labels_shown = [label for label, _ in app.screen.targets]
        assert labels_shown[0].startswith(f"container {cid[:8]}, kept from box.json › docker")
        assert labels_shown[-1].startswith("this host, not a docker machine")
        await pilot.press("enter")  # the default: the kept container
        await wait_for(pilot, lambda: len(app.builds) == 2, what="the debug run")
        run = next(b for b in app.builds.values() if b.mode == "null")
        await wait_for(pilot, lambda: run.question, 60, "the second provisioner fails again")
        await pilot.press("c")
        await wait_for(pilot, lambda: not run.live, 60, "the debug run ends")
        assert run.label == f"box.json › docker · provisioners on container {cid[:8]}"
        assert run.stages[1].status == "succeeded"  # the marker provisioner ran...
        code, _ = client.containers.get(cid).exec_run(["test", "-e", mark])
        assert code == 0  # ...in the container
        import os

        assert not os.path.exists(mark)  # and not here
        # this host: asked first, with what runs where as whom
        await pilot.press("p")
        await wait_for(pilot, lambda: type(app.screen).__name__ == "TargetPicker", what="picker")
        await pilot.press("end", "enter")
        await wait_for(pilot, lambda: type(app.screen).__name__ == "ConfirmScreen", what="warned")
        body = app.screen.body
        import getpass

        assert "a docker machine (build docker)" in body and "on this host" in body
        assert f"as {getpass.getuser()} (uid {os.geteuid()})" in body
        assert f"touch {mark}" in body
        await pilot.press("enter")  # the focused button is Cancel
        await pilot.pause(0.5)
        assert len(app.builds) == 2 and not os.path.exists(mark)


async def test_o_on_a_docker_template_uses_a_stand_in_image_and_leaves_no_trace(
    proj, app_factory, docker_env, monkeypatch
):
    """The bundled docker template's post-processors (docker-tag, manifest) on o: they get an
    image (not "Unknown artifact type: packer.file"), the template's tag is never moved, the
    manifest is written in the scratch directory, and the run's images are gone after it."""
    import shutil
    import uuid
    from pathlib import Path

    import docker

    client, _labels = docker_env
    root = Path(__file__).resolve().parents[2]
    shutil.copy(root / "templates" / "docker-busybox.json", proj / "docker-busybox.json")
    (proj / "files").mkdir()
    shutil.copy(root / "templates" / "files" / "motd.txt", proj / "files" / "motd.txt")
    repo = f"kiln-test/o-{uuid.uuid4().hex[:8]}"
    monkeypatch.chdir(proj)
    app = app_factory(proj, vars={"repository": repo})
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, app)
        await pilot.press("o")
        (b,) = await wait_status(pilot, app, ("succeeded", "failed", "crashed"), timeout=60)
        assert b.status == "succeeded", b.error
        assert b.label == "docker-busybox.json › docker · post-processors on a stand-in"
        session = app.sessions[b.session_id].session
        await wait_for(pilot, lambda: session.done and not len(app.bridge), 30, "run end")
        await pilot.pause(0.1)
        text = "\n".join(view_text(app))
        assert "Unknown artifact type" not in text
        assert f"Repository: {repo}:kiln-debug-" in text
        scratch = proj / text.split("Outputs go to ", 1)[1].split(" and stay there")[0]
        assert (scratch / "packer-manifest.json").is_file()
        assert not (proj / "packer-manifest.json").exists()
    with pytest.raises(docker.errors.ImageNotFound):
        client.images.get(f"{repo}:latest")  # the template's own tag never made
    assert client.images.list(name=repo) == []  # the debug tag is gone too
    stand_ins = client.images.list(filters={"label": "kiln.stand-in"})
    assert not [i for i in stand_ins if any(repo in t for t in i.tags)]
    assert "Removed sha256:" in text and "made for this debug run" in text


async def test_o_saves_into_the_scratch_directory_and_never_pushes(
    proj, app_factory, docker_env, monkeypatch
):
    import uuid

    client, labels = docker_env
    repo = f"127.0.0.1:9/kiln-test/o-{uuid.uuid4().hex[:8]}"  # nothing listens there
    write_template(
        proj / "ship.json",
        [docker_builder(labels)],
        [docker_shell("true")],
        [
            [
                {"type": "docker-tag", "repository": repo, "tags": ["1.0"]},
                {"type": "docker-save", "path": "/tmp/kiln-never-here/image.tar"},
                {"type": "docker-push"},
            ]
        ],
    )
    monkeypatch.chdir(proj)
    app = app_factory(proj)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, app)
        await pilot.press("o")
        (b,) = await wait_status(pilot, app, ("succeeded", "failed", "crashed"), timeout=60)
        assert b.status == "succeeded", b.error
        session = app.sessions[b.session_id].session
        await wait_for(pilot, lambda: session.done and not len(app.bridge), 30, "run end")
        await pilot.pause(0.1)
        text = "\n".join(view_text(app))
        scratch = proj / text.split("Outputs go to ", 1)[1].split(" and stay there")[0]
        # the absolute path is re-rooted into the scratch directory
        saved = scratch / "tmp" / "kiln-never-here" / "image.tar"
        assert saved.is_file() and saved.stat().st_size > 0
        import os

        assert not os.path.exists("/tmp/kiln-never-here")
        assert "Not pushed: a debug run never pushes to a registry" in text
    assert client.images.list(name=repo.split(":", 1)[0]) == []
