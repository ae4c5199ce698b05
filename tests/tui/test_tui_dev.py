"""The dashboard's dev mode (d) on real docker builds: a save reruns the template from the
first changed provisioner, the Builds pane shows which were cached and which file changed,
and d again removes the container."""

from __future__ import annotations

import uuid

import pytest
from tui_helpers import SIZE, docker_builder, docker_shell, ready, wait_for, write_template

pytestmark = [pytest.mark.tui, pytest.mark.docker]


def _dev_builds(app):
    return [b for b in app.builds.values() if b.mode == "dev"]


def _gone(client, ident: str) -> bool:
    import docker

    try:
        client.containers.get(ident)
        return False
    except docker.errors.NotFound:
        return True


async def test_dev_mode_reruns_from_the_changed_provisioner_and_d_removes_the_container(
    proj, app_factory, docker_client, base_image, docker_labels
):
    from kiln.backend.plugins.docker import cache as docker_cache

    mark = uuid.uuid4().hex[:8]
    (proj / "files").mkdir()
    script = proj / "files" / "two.sh"
    script.write_text("echo two-a\n")
    write_template(
        proj / "dev.json",
        [docker_builder(docker_labels, commit=False)],
        [docker_shell(f"echo one-{mark}"), {"type": "shell", "script": "{{template_dir}}/files/two.sh"},
         docker_shell("echo three")],
    )
    app = app_factory(proj)
    try:
        async with app.run_test(size=SIZE) as pilot:
            await ready(pilot, app)
            await pilot.press("d")
            await wait_for(pilot, lambda: [b for b in _dev_builds(app) if b.status == "succeeded"],
                           90, "the first dev run")
            (first,) = _dev_builds(app)
            assert [s.status for s in first.stages if s.kind == "provisioner"] == ["succeeded"] * 3
            old = first.access_hint.split()[-2]
            assert not _gone(docker_client, old)
            await wait_for(pilot, lambda: app._dev and app._dev[str(proj / "dev.json")].watcher
                           is not None and app._dev[str(proj / "dev.json")].watcher.ready.is_set(),
                           30, "the watcher")
            script.write_text("echo two-b\n")
            await wait_for(pilot, lambda: len(_dev_builds(app)) == 2
                           and _dev_builds(app)[1].status == "succeeded", 90, "the rerun")
            second = _dev_builds(app)[1]
            assert [s.status for s in second.stages if s.kind == "provisioner"] == \
                ["cached", "succeeded", "succeeded"]
            assert "files/two.sh changed" in second.label
            new = second.access_hint.split()[-2]
            await wait_for(pilot, lambda: _gone(docker_client, old), 30, "the old container gone")
            await pilot.press("d")
            await wait_for(pilot, lambda: _gone(docker_client, new), 30, "the container gone")
    finally:
        for e in docker_cache.entries(docker_client.api):
            if str(e["meta"].get("template", "")).startswith(str(proj)):
                try:
                    docker_client.api.remove_image(f"{docker_cache.REPOSITORY}:{e['key']}")
                except Exception:
                    pass
