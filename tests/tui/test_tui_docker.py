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
