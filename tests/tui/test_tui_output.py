"""The output pane: literal markup, ANSI, bad bytes, following, search, filter, copy, save."""

from __future__ import annotations

import pytest
from kiln.tui.model import OutputBuffer
from rich.style import Style
from tui_helpers import (
    SIZE,
    null_builder,
    only_build,
    ready,
    shell,
    view_text,
    wait_for,
    wait_status,
    write_template,
)

pytestmark = pytest.mark.tui


async def test_markup_ansi_and_invalid_utf8_show_literally(proj, app_factory):
    write_template(
        proj / "m.json",
        [null_builder("m")],
        [
            shell(
                "echo 'plain [bold red]not bold[/] and [/] and [link=x]y[/link]'",
                r"printf '\033[31mred text\033[0m then \033[1;4mbold\033[0m\n'",
                r"printf 'bad bytes: \377\376 end\n'",
                r"printf 'cursor\033[2K moves \033[1A gone\n'",
                r"printf 'progress 10%%\rprogress 100%%\n'",
                "echo '[on stderr]' >&2",
                r"printf 'tab\there\n'",
            )
        ],
    )
    app = app_factory(proj)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, app)
        await pilot.press("b")
        (b,) = await wait_status(pilot, app, ("succeeded", "failed", "crashed"))
        assert b.status == "succeeded"
        app.select_build(b.key, 1)
        await pilot.pause()
        rows = view_text(app)
        text = "\n".join(rows)
        assert "plain [bold red]not bold[/] and [/] and [link=x]y[/link]" in text
        assert "red text then bold" in text and "\x1b" not in text
        assert "bad bytes: \ufffd\ufffd end" in text
        assert "cursor moves  gone" in text
        assert "progress 100%" in text and "progress 10%" not in text
        assert "tab     here" in text
        # stderr has its own gutter; ANSI red is rendered as a colour, not as text
        view = app.view
        err_row = next(i for i, r in enumerate(rows) if "[on stderr]" in r)
        assert rows[err_row].startswith("▌ ")
        red_row = next(i for i, r in enumerate(rows) if "red text" in r)
        strip = view._render_abs(view.abs_at(red_row), Style())
        red = [seg for seg in strip if seg.text == "red text"]
        assert red and red[0].style.color is not None and red[0].style.color.number == 1
        # the whole screen renders (and exports) without choking on any of it
        svg = app.export_screenshot()
        assert "not&#160;bold" in svg or "not bold" in svg


async def test_follows_pauses_on_scroll_up_and_counts_new_lines(proj, tmp_path, app_factory):
    go = tmp_path / "go"
    write_template(
        proj / "f.json",
        [null_builder("f")],
        [
            shell(
                "i=0; while [ $i -lt 200 ]; do echo line $i; i=$((i+1)); done",
                f"while [ ! -e {go} ]; do sleep 0.05; done",
                "i=0; while [ $i -lt 50 ]; do echo more $i; i=$((i+1)); done",
                "sleep 0.3",
            )
        ],
    )
    app = app_factory(proj)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, app)
        await pilot.press("b")
        await wait_for(
            pilot,
            lambda: app.builds and any("line 199" in r for r in view_text(app)),
            what="first 200 lines",
        )
        view = app.view
        # following: the view reaches the end once Textual has laid out the new lines
        await wait_for(pilot, lambda: view.follow and view.scroll_y == view.max_scroll_y,
                       what="view at the end")
        view.focus()
        await pilot.press("pageup")
        await pilot.pause()
        assert not view.follow
        # page up scrolls with an animation: take the position once it has settled
        await wait_for(pilot, lambda: view.scroll_y == view.scroll_target_y,
                       what="page up finished")
        top = view.scroll_y
        go.write_text("")
        await wait_for(pilot, lambda: view.new_lines >= 50, what="new lines counted")
        assert view.scroll_y == top  # did not jump
        badge = str(app.output.query_one("#badge").render())
        assert f"+{view.new_lines} new lines" in badge
        await pilot.press("end")
        await wait_for(
            pilot,
            lambda: view.follow and view.new_lines == 0 and view.scroll_y == view.max_scroll_y,
            what="following again at the end",
        )
        assert "following" in str(app.output.query_one("#badge").render())
        await wait_status(pilot, app, ("succeeded",))


async def test_search_next_previous_and_filter_with_context(proj, app_factory):
    lines = [f"echo row {i:03d}" if i % 25 else f"echo row {i:03d} NEEDLE" for i in range(1, 101)]
    write_template(proj / "s.json", [null_builder("s")], [shell(*lines)])
    app = app_factory(proj)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, app)
        await pilot.press("b")
        (b,) = await wait_status(pilot, app, ("succeeded",))
        app.select_build(b.key, 1)
        view = app.view
        view.focus()
        await pilot.press("slash")
        await pilot.press(*"needle", "enter")
        await pilot.pause()
        assert view.search == "needle"
        hits = [r for r in range(view.row_count) if "NEEDLE" in view_text(app)[r]]
        assert len(hits) == 4
        first = view.match_abs
        assert b.output.line(first).endswith("row 025 NEEDLE")
        await pilot.press("n")
        assert b.output.line(view.match_abs).endswith("row 050 NEEDLE")
        await pilot.press("N")
        assert view.match_abs == first
        await pilot.press("N")  # wraps around
        assert b.output.line(view.match_abs).endswith("row 100 NEEDLE")
        assert "4/4" in str(app.output.query_one("#info").render())
        # filter keeps 2 lines of context around each match, with a separator between groups
        await pilot.press("f")
        await pilot.press(*"NEEDLE", "enter")
        await pilot.pause()
        rows = view_text(app)
        assert [r for r in rows if "NEEDLE" in r] and "row 023" in "\n".join(rows)
        assert "row 027" in "\n".join(rows) and "row 028" not in "\n".join(rows)
        assert "┄" in rows
        await pilot.press("escape")
        await pilot.pause()
        assert view.filter == "" and view.search == ""


async def test_copy_and_save_the_stage_log(proj, tmp_path, app_factory):
    write_template(proj / "c.json", [null_builder("c")], [shell("echo copy me", "echo '[x]' >&2")])
    app = app_factory(proj)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, app)
        await pilot.press("b")
        (b,) = await wait_status(pilot, app, ("succeeded",))
        app.select_build(b.key, 1)
        app.view.focus()
        await pilot.press("y")
        assert "copy me\n[x]\n" in app.clipboard
        await pilot.press("w")
        prompt = app.output.query_one("#prompt")
        await wait_for(pilot, lambda: prompt.has_focus, what="save prompt")
        prompt.value = str(tmp_path / "saved.log")
        await pilot.press("enter")
        await wait_for(pilot, lambda: (tmp_path / "saved.log").exists(), what="saved")
        saved = (tmp_path / "saved.log").read_text().splitlines()
        assert "copy me" in saved and "[x]" in saved
        assert not any("Connect" in line for line in saved)  # only this stage


async def test_failure_first_selects_the_failed_stage_and_scrolls_to_the_error(proj, app_factory):
    write_template(
        proj / "ff.json",
        [null_builder("ff")],
        [
            shell("echo fine"),
            shell(
                "i=0; while [ $i -lt 300 ]; do echo noise $i; i=$((i+1)); done",
                "echo 'the real error' >&2",
                "exit 4",
            ),
        ],
    )
    app = app_factory(proj)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, app)
        await pilot.press("b")
        await wait_for(pilot, lambda: app.builds and only_build(app).question, what="paused")
        await pilot.pause(0.2)
        assert app.selected_stage == 2
        view = app.view
        first_visible = int(view.scroll_y)
        shown = view_text(app)[first_visible : first_visible + view.size.height]
        assert any("the real error" in r for r in shown) or any(
            "non-zero exit status: 4" in r for r in shown
        )
        summary = str(app.output.query_one("#summary").render())
        assert "ff.json:" in summary and "exit code 4" in summary
        assert "noise 299" in summary or "the real error" in summary


def test_buffer_is_bounded_and_keeps_stage_rows():
    buf = OutputBuffer(max_lines=1000)
    for i in range(30):
        buf.append(i % 3, 0, [f"s{i % 3} line {i}-{j}" for j in range(100)])
    assert len(buf.lines) <= 1100 and buf.total == 3000
    assert buf.base == buf.total - len(buf.lines)
    for stage in range(3):
        rows = buf.rows_of(stage)
        assert rows and rows[0] >= buf.base
        assert all(buf.line(a).startswith(f"s{stage}") for a in rows)


def test_bridge_caps_lines_per_tick_and_keeps_order():
    from kiln.backend.engine.events import EventBus
    from kiln.tui.bridge import Bridge

    bus = EventBus("r")
    br = Bridge(max_lines=250)
    br.attach("s", bus)
    bus.publish("stage.started", build="b", stage=0, name="x", kind="provisioner")
    bus.publish("output", build="b", stage=0, stream="stdout", lines=[str(i) for i in range(400)])
    bus.publish(
        "stage.finished",
        build="b",
        stage=0,
        name="x",
        kind="provisioner",
        status="succeeded",
        duration=1.0,
        error="",
    )
    first = br.drain()
    assert [e.type for _, e in first] == ["stage.started", "output"]
    assert len(first[1][1].data["lines"]) == 250
    second = br.drain()
    assert [e.type for _, e in second] == ["output", "stage.finished"]
    assert second[0][1].data["lines"][0] == "250" and len(second[0][1].data["lines"]) == 150
    assert br.drain() == []


async def test_view_survives_lines_dropped_between_repaints(proj, app_factory):
    """In a flood the view repaints 10 times a second while the buffer keeps dropping its
    oldest lines: rows it has not synced yet render blank, never an IndexError."""
    write_template(proj / "t.json", [null_builder("t")], [shell("true")])
    app = app_factory(proj)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, app)
        buf = OutputBuffer(max_lines=1000)
        buf.append(0, 0, [f"line {i}" for i in range(1000)])
        view = app.view
        for stage in (None, 0):
            view.show(buf, stage)
            view.set_filter("line 9")
            view.set_filter("")
            view.focus()
            await pilot.press("home")
            buf.append(0, 0, [f"more {i}" for i in range(5000)])  # pruned, not synced
            for y in range(view.size.height):
                view.render_line(y)
            view.sync()
            await pilot.pause()
            expected = len(buf.rows_of(stage)) if stage is not None else len(buf.lines)
            assert view.row_count == expected
            for y in range(view.size.height):
                view.render_line(y)


def test_progress_bar_uses_the_expected_length_from_history():
    from kiln.tui.model import StageModel
    from kiln.tui.widgets.tables import progress_cell

    st = StageModel(
        2, "shell-local", "provisioner", status="running", started=1000.0, expected=60.0
    )
    assert progress_cell({}, st, 1042.0).plain.endswith("about 18 s left")
    assert "longer than usual" in progress_cell({}, st, 1075.0).plain
    st.expected = None
    assert progress_cell({}, st, 1042.0).plain == "no estimate yet"
    st.status, st.expected = "pending", 200.0
    assert progress_cell({}, st, 1042.0).plain == "usually 3m20s"


async def test_scope_toggle_between_stage_and_whole_build(proj, app_factory):
    write_template(proj / "v.json", [null_builder("v")], [shell("echo one"), shell("echo two")])
    app = app_factory(proj)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, app)
        await pilot.press("b")
        (b,) = await wait_status(pilot, app, ("succeeded",))
        text = "\n".join(view_text(app))
        assert "one" in text and "two" in text  # the whole build
        app.stages_table.focus()
        app.stages_table.move_cursor(row=0)
        await pilot.pause()
        await pilot.press("down")  # stage 2: the first provisioner
        await pilot.pause()
        assert app.selected_stage == 1
        rows = "\n".join(view_text(app))
        assert "one" in rows and "two" not in rows
        app.view.focus()
        await pilot.press("v")
        assert app.selected_stage is None and "two" in "\n".join(view_text(app))
        await pilot.press("v")
        assert app.selected_stage is not None
