"""Layout: panes sized by proportion, stacked on a narrow terminal, a zoom key, wrapped
messages, a footer that keeps the keys that matter at 80 columns."""

from __future__ import annotations

import pytest
from tui_helpers import (
    null_builder,
    only_build,
    pane_text,
    ready,
    shell,
    wait_for,
    write_template,
)

pytestmark = pytest.mark.tui


def _footer_keys(app) -> list[str]:
    """The keys the footer shows in full on screen."""
    width = app.size.width
    out = []
    for key in app.query("FooterKey"):
        r = key.region
        if r.width and r.right <= width:
            out.append(key.key_display or key.key)
    return out


async def test_80x24_stacks_the_panes_and_keeps_the_answers_in_the_footer(proj, app_factory):
    write_template(
        proj / "t.json",
        [null_builder("box")],
        [shell("echo 'E: Unable to locate package postgresql-17' >&2", "exit 100")],
    )
    app = app_factory(proj)
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot, app)
        # the output pane takes the full width instead of what the left column leaves
        assert app.output.size.width >= 76, app.output.size
        assert app.builds_table.region.y == app.templates.region.y  # side by side, on top
        await pilot.press("b")
        await wait_for(pilot, lambda: app.builds and only_build(app).question, what="paused")
        await pilot.pause(0.3)
        keys = _footer_keys(app)
        for k in ("r", "s", "c", "k", "q"):
            assert k in keys, keys
        text = pane_text(app, app.output)
        assert "r retry · s skip · c clean up · k keep" in text, text
        assert "E: Unable to locate package postgresql-17" in text, text


async def test_zoom_gives_the_focused_pane_the_whole_screen(proj, app_factory):
    write_template(proj / "t.json", [null_builder("box")], [shell("echo hi")])
    app = app_factory(proj)
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot, app)
        app.view.focus()
        await pilot.pause()
        await pilot.press("z")
        await pilot.pause(0.2)
        assert app.screen.maximized is app.output
        assert app.output.size.width >= 78 and app.output.size.height >= 20
        await pilot.press("z")
        await pilot.pause(0.2)
        assert app.screen.maximized is None and app.output.size.height < 16


async def test_long_problem_messages_and_the_welcome_wrap(proj, app_factory):
    (proj / "long.json").write_text(
        '{\n  "builders": [\n    {"type": "null", "communicator": "none",\n'
        '     "a_rather_long_misspelled_configuration_key_nobody_would_expect": "x"}\n  ]\n}\n'
    )
    app = app_factory(proj)
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot, app)
        app.templates.tree_widget.move_cursor_to_line(0)
        await pilot.pause(0.2)
        # the welcome's last words are on screen (it was cut at 120 columns)
        app.show_selected()
        await pilot.pause(0.2)
        assert "zooms the one you are in." in pane_text(app, app.output)
    app = app_factory(proj)
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot, app)
        app.templates.tree_widget.focus()
        app.templates.tree_widget.move_cursor_to_line(1)  # the problem under the template
        await pilot.pause(0.3)
        problem = app.templates.entries[0].problems[0].text
        assert len(problem) > 100  # longer than the output pane is wide
        shown = pane_text(app, app.output)
        # all of it is in the output pane: the message wraps instead of running off the edge
        assert "".join(problem.split()) in "".join(shown.split()), shown
