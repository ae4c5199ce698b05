"""Finding templates in a directory, and validating them off the UI thread."""

from __future__ import annotations

import json

import pytest
from kiln.tui.discovery import discover, validate
from tui_helpers import SIZE, null_builder, ready, shell, wait_for, write_template

pytestmark = pytest.mark.tui


def test_discover_finds_json_yaml_and_hcl2(tmp_path):
    write_template(tmp_path / "a.json", [null_builder("a")], [shell("true")])
    (tmp_path / "package.json").write_text(json.dumps({"name": "not a template"}))
    (tmp_path / "c.yaml").write_text("builders:\n  - type: null\n    communicator: none\n")
    (tmp_path / "compose.yml").write_text("services:\n  web: {}\n")
    (tmp_path / "broken.json").write_text('{"builders": [ {"type": "null",, } ]')
    (tmp_path / "one.pkr.hcl").write_text('source "null" "x" {\n  communicator = "none"\n}\n')
    sub = tmp_path / "infra"
    sub.mkdir()
    (sub / "main.pkr.hcl").write_text('build {\n  sources = ["source.null.x"]\n}\n')
    (sub / "vars.pkr.hcl").write_text('variable "v" {\n  default = "1"\n}\n')
    (tmp_path / ".kiln").mkdir()
    (tmp_path / ".kiln" / "x.pkr.hcl").write_text("")
    names = [e.name for e in discover(str(tmp_path))]
    assert names == ["a.json", "broken.json", "c.yaml", "infra/", "one.pkr.hcl"]
    fmts = {e.name: e.format for e in discover(str(tmp_path))}
    assert fmts == {
        "a.json": "json",
        "broken.json": "json",
        "c.yaml": "yaml",
        "infra/": "hcl2",
        "one.pkr.hcl": "hcl2",
    }
    # a file as the target: just that template
    assert [e.name for e in discover(str(tmp_path / "c.yaml"))] == ["c.yaml"]


def test_validate_reports_problems_with_locations_and_never_raises(tmp_path):
    (tmp_path / "broken.json").write_text('{"builders": [ {"type": "null",, } ]')
    write_template(tmp_path / "ok.json", [null_builder("ok")], [shell("true")])
    (tmp_path / "t.pkr.hcl").write_text(
        'source "null" "x" {\n  communicator = "none"\n}\n'
        'build {\n  sources = ["source.null.x"]\n}\n'
    )
    by_name = {e.name: validate(e, str(tmp_path)) for e in discover(str(tmp_path))}
    assert by_name["ok.json"].status == "valid" and by_name["ok.json"].builds == [("ok", "null", 3)]
    assert by_name["ok.json"].provisioners == 1
    broken = by_name["broken.json"]
    assert broken.status == "invalid" and broken.problems[0].text.startswith("broken.json:1:")
    assert by_name["t.pkr.hcl"].status in ("valid", "invalid")  # loaded, or why not, shown


async def test_templates_filter_and_live_revalidation(proj, app_factory):
    write_template(proj / "alpha.json", [null_builder("alpha")], [shell("true")])
    tpl = write_template(proj / "beta.json", [null_builder("beta")], [shell("true")])
    app = app_factory(proj)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, app)
        tree = app.templates.tree_widget
        await pilot.press("slash", *"bet")
        await pilot.pause()
        labels = [tree.get_node_at_line(i).label.plain for i in range(tree.last_line + 1)]
        assert labels[0].startswith("✓ beta.json") and not any("alpha" in x for x in labels)
        await pilot.press("escape")
        await pilot.pause()
        assert tree.last_line > 2
        # the file is edited outside the dashboard: the mark follows within a few seconds
        data = json.loads(tpl.read_text())
        data["provisioners"][0]["inlin"] = ["x"]
        tpl.write_text(json.dumps(data, indent=2))
        beta = lambda: app.templates.entry(str(tpl))  # noqa: E731
        await wait_for(pilot, lambda: beta().status == "invalid", timeout=15, what="re-validated")
        assert any("inlin" in p.text for p in beta().problems)


def test_startup_paints_without_heavy_imports(proj):
    """`kiln tui DIR` paints its first frame (and exits, with the benchmark hook) without
    importing boto3, docker or paramiko; validating null/file templates does not need them."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    write_template(proj / "t.json", [null_builder("t")], [shell("true")])
    root = Path(__file__).resolve().parents[2]
    code = (
        "import asyncio, sys\n"
        "from kiln.tui.app import make_app\n"
        "async def main():\n"
        f"    app = make_app({str(proj)!r}, config_dir={str(proj)!r})\n"
        "    async with app.run_test(size=(140, 40)) as pilot:\n"
        "        while not app.templates.entries or app.templates.entries[0].status == 'validating':\n"
        "            await pilot.pause(0.05)\n"
        "    print(app.templates.entries[0].status)\n"
        "asyncio.run(main())\n"
        "print(sorted(m for m in ('boto3', 'botocore', 'docker', 'paramiko') if m in sys.modules))\n"
    )
    env = dict(os.environ, PYTHONPATH=str(root))
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=root, env=env, capture_output=True, text=True, timeout=120
    )
    assert out.stdout.split() == ["valid", "[]"], out.stderr[-2000:]
    env.update(KILN_TUI_EXIT_ON_READY="1", KILN_TUI_HEADLESS="1")
    out = subprocess.run(
        [sys.executable, "-m", "kiln.backend.cli", "tui", str(proj)],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0 and "KILN_READY" in out.stdout, out.stderr[-2000:]
