"""Keys: remapping from keys.toml, the help screen, the command palette, editing the template."""

from __future__ import annotations

import sys

import pytest
from kiln.tui.keys import load_keymap, load_targets
from tui_helpers import SIZE, null_builder, ready, shell, wait_for, wait_status, write_template

pytestmark = pytest.mark.tui


async def test_keys_toml_remaps_bindings_and_help_shows_them(proj, config_dir, app_factory):
    (config_dir / "keys.toml").write_text('[keys]\nbuild = "B"\nhelp = "f2"\nnot_a_binding = "z"\n')
    write_template(proj / "t.json", [null_builder("t")], [shell("echo remapped")])
    app = app_factory(proj)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, app)
        assert any("not_a_binding" in p for p in app.config_problems)
        await pilot.press("b")
        await pilot.pause(0.3)
        assert app.builds == {}  # b is no longer build
        await pilot.press("B")
        await wait_status(pilot, app, ("succeeded",))
        await pilot.press("f2")
        await wait_for(pilot, lambda: type(app.screen).__name__ == "HelpScreen", what="help")
        body = app.screen.plain_text()
        assert "B" in body and "build" in body and "keys.toml" in body
        await pilot.press("escape")
        await wait_for(pilot, lambda: type(app.screen).__name__ != "HelpScreen", what="closed")


async def test_help_with_question_mark_and_f1(proj, app_factory):
    write_template(proj / "t.json", [null_builder("t")], [shell("true")])
    app = app_factory(proj)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, app)
        for key in ("question_mark", "f1"):
            await pilot.press(key)
            await wait_for(pilot, lambda: type(app.screen).__name__ == "HelpScreen", what=key)
            body = app.screen.plain_text()
            assert "Templates" in body and "retry" in body and "provision-null" in body
            await pilot.press("escape")
            await wait_for(pilot, lambda: type(app.screen).__name__ != "HelpScreen", what="closed")


async def test_command_palette_builds_a_template_by_name(proj, app_factory):
    write_template(proj / "alpha.json", [null_builder("alpha")], [shell("echo via palette")])
    write_template(proj / "beta.json", [null_builder("beta")], [shell("true")])
    app = app_factory(proj)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, app)
        await pilot.press("ctrl+p")
        await wait_for(pilot, lambda: type(app.screen).__name__ == "CommandPalette", what="palette")
        await pilot.press(*"Build alpha")
        await pilot.pause(0.5)
        await pilot.press("enter")
        (b,) = await wait_status(pilot, app, ("succeeded",))
        assert b.name == "alpha"


async def test_edit_opens_editor_at_the_problem_line_and_revalidates(
    proj, tmp_path, app_factory, monkeypatch
):
    log = tmp_path / "editor-args"
    fixer = tmp_path / "fix.py"
    fixer.write_text(
        "import sys, pathlib\n"
        f"pathlib.Path({str(log)!r}).write_text(' '.join(sys.argv[1:]))\n"
        "p = pathlib.Path(sys.argv[-1])\n"
        "p.write_text(p.read_text().replace('nmae', 'name'))\n"
    )
    monkeypatch.setenv("VISUAL", f"{sys.executable} {fixer}")
    (proj / "e.json").write_text(
        '{\n  "builders": [\n    {"type": "null", "communicator": "none",\n     "nmae": "x"}\n  ]\n}\n'
    )
    app = app_factory(proj)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, app)
        entry = app.templates.entries[0]
        assert entry.status == "invalid"
        problem_line = entry.problems[0].line
        app.templates.tree_widget.focus()
        app.templates.tree_widget.cursor_line = 2  # the problem node under the template
        await pilot.pause()
        await pilot.press("e")
        await wait_for(
            pilot, lambda: app.templates.entries[0].status == "valid", what="revalidated"
        )
        # not a known +LINE editor: just the file
        assert log.read_text().endswith("e.json")
        assert problem_line == 4


def test_config_files(tmp_path):
    (tmp_path / "keys.toml").write_text('build = "ctrl+b"\nretry = ["r", "ctrl+r"]\n')
    keymap, problems = load_keymap(tmp_path)
    assert keymap == {"build": "ctrl+b", "retry": "r,ctrl+r"} and problems == []
    (tmp_path / "targets.toml").write_text(
        '[[target]]\nname = "vm"\nhost = "10.0.0.5"\nport = 2222\nuser = "ubuntu"\n'
        'private_key_file = "~/.ssh/id"\n\n[targets.box]\ncontainer = "abc123"\n\n'
        '[[target]]\nname = "nohost"\n'
    )
    targets, problems = load_targets(tmp_path)
    assert [(t.name, t.host, t.port, t.user) for t in targets] == [
        ("vm", "10.0.0.5", 2222, "ubuntu"),
        ("box", "", 22, targets[1].user),
    ]
    assert targets[0].private_key_file.endswith("/.ssh/id") and not targets[
        0
    ].private_key_file.startswith("~")
    assert targets[1].container == "abc123"
    assert any("nohost" in p for p in problems)


async def test_target_picker_lists_config_targets(proj, config_dir, app_factory):
    (config_dir / "targets.toml").write_text(
        '[[target]]\nname = "staging"\nhost = "192.0.2.10"\nuser = "deploy"\n'
    )
    write_template(proj / "t.json", [null_builder("t"), null_builder("u")], [shell("true")])
    app = app_factory(proj)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, app)
        await pilot.press("p")
        await wait_for(pilot, lambda: type(app.screen).__name__ == "TargetPicker", what="picker")
        labels = [label for label, _ in app.screen.targets]
        assert labels[0].startswith("this host")
        assert any("staging" in label and "deploy@192.0.2.10:22" in label for label in labels)
        assert app.screen.builds == ["t", "u"]
        await pilot.press("escape")
        await pilot.pause()
        assert app.builds == {}


@pytest.mark.parametrize(
    ("editor", "expected"),
    [
        ("hx", ["+{line}", "{path}"]),
        ("nano", ["+{line}", "{path}"]),
        ("code --wait", ["--wait", "--goto", "{path}:{line}"]),
        ("subl", ["{path}:{line}"]),
        ("my-editor", ["{path}"]),
    ],
)
async def test_edit_passes_the_line_in_each_editors_own_syntax(
    proj, tmp_path, app_factory, monkeypatch, editor, expected
):
    """e opens the template at the problem's line with the syntax the user's editor reads."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    log = tmp_path / "argv.json"
    name = editor.split()[0]
    fake = bindir / name
    fake.write_text(
        f"#!{sys.executable}\nimport json, sys\n"
        f"open({str(log)!r}, 'w').write(json.dumps(sys.argv[1:]))\n"
    )
    fake.chmod(0o755)
    monkeypatch.setenv("VISUAL", str(bindir / name) + editor[len(name) :])
    (proj / "e.json").write_text(
        '{\n  "builders": [\n    {"type": "null", "communicator": "none",\n     "nmae": "x"}\n  ]\n}\n'
    )
    app = app_factory(proj)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, app)
        app.templates.tree_widget.focus()
        app.templates.tree_widget.cursor_line = 2  # the problem node (line 4)
        await pilot.pause()
        await pilot.press("e")
        await wait_for(pilot, log.exists, what="the editor ran")
    path = str(proj / "e.json")
    want = [x.format(path=path, line=4) for x in expected]
    import json

    assert json.loads(log.read_text()) == want
