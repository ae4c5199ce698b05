"""The dashboard driving real builds: null/file builders, shell-local provisioners, the real engine."""

from __future__ import annotations

import glob
import json
import os
from pathlib import Path

import pytest
from tui_helpers import (
    SIZE,
    WIDE,
    null_builder,
    only_build,
    ready,
    select_template,
    shell,
    view_text,
    wait_for,
    wait_status,
    write_template,
)

pytestmark = pytest.mark.tui


def _ledger_entries(run_id: str):
    from kiln.backend.engine.ledger import Ledger

    led = Ledger("test-reader")
    try:
        return led.entries(run_id)
    finally:
        led.close()


def _alive(pid: int) -> bool:
    """Running (a zombie nobody reaped yet counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


async def test_build_runs_and_stages_succeed(proj, app_factory):
    write_template(
        proj / "web.json",
        [null_builder("web")],
        [shell("echo first provisioner"), shell("echo second provisioner")],
    )
    app = app_factory(proj)
    async with app.run_test(size=WIDE) as pilot:
        await ready(pilot, app)
        await pilot.press("b")
        (b,) = await wait_status(pilot, app, ("succeeded", "failed", "crashed"))
        assert b.status == "succeeded"
        assert [s.status for s in b.stages] == ["succeeded"] * 3
        assert [s.kind for s in b.stages] == ["builder", "provisioner", "provisioner"]
        text = "\n".join(view_text(app))
        assert "first provisioner" in text and "second provisioner" in text
        # the builds pane shows glyph + word, the stages pane every stage
        assert app.builds_table.row_count == 1
        assert app.stages_table.row_count == 3
        cell = app.builds_table.get_row_at(0)[0]
        assert cell.plain == "✓ succeeded"


async def test_builder_node_builds_only_that_builder(proj, app_factory):
    write_template(
        proj / "two.json", [null_builder("one"), null_builder("two")], [shell("echo hi")]
    )
    app = app_factory(proj)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, app)
        await select_template(pilot, app, "two.json", build="two")
        await pilot.press("b")
        (b,) = await wait_status(pilot, app, ("succeeded",))
        assert b.name == "two"


async def test_two_templates_build_at_once(proj, app_factory):
    write_template(proj / "a.json", [null_builder("a")], [shell("sleep 0.5", "echo a done")])
    write_template(proj / "b.json", [null_builder("b")], [shell("sleep 0.5", "echo b done")])
    app = app_factory(proj)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, app)
        await select_template(pilot, app, "a.json")
        await pilot.press("b")
        await select_template(pilot, app, "b.json")
        await pilot.press("b")
        await wait_for(pilot, lambda: len(app.builds) == 2, what="two builds")
        await wait_for(
            pilot,
            lambda: (
                sum(1 for b in app.builds.values() if b.live) == 2
                or all(b.status == "succeeded" for b in app.builds.values())
            ),
        )
        bs = await wait_status(pilot, app, ("succeeded",))
        assert sorted(b.name for b in bs) == ["a", "b"]
        assert app.builds_table.row_count == 2


async def test_retry_reads_the_fixed_template_and_runs_only_that_provisioner(
    proj, tmp_path, app_factory
):
    marker = tmp_path / "marker.txt"
    tpl = write_template(
        proj / "fix.json",
        [null_builder("box")],
        [
            shell(f"echo one >> {marker}"),
            shell(f"echo two-broken >> {marker}", "echo 'oh no, it broke' >&2", "exit 7"),
            shell(f"echo three >> {marker}"),
        ],
    )
    app = app_factory(proj)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, app)
        await pilot.press("b")
        await wait_for(pilot, lambda: app.builds and only_build(app).question, what="paused")
        b = only_build(app)
        # failure first: the failed stage is selected, the summary names the template line
        assert app.selected_stage == 2
        summary = str(app.output.query_one("#summary").render())
        assert "exit code 7" in summary and "fix.json:" in summary and "oh no, it broke" in summary
        assert "retry" in summary
        # the footer offers retry/skip/clean up/keep now
        assert app.check_action("retry", ()) and app.check_action("keep", ())
        # fix the template on disk, then retry
        data = json.loads(tpl.read_text())
        data["provisioners"][1] = shell(f"echo two-fixed >> {marker}")
        tpl.write_text(json.dumps(data, indent=2))
        await pilot.press("r")
        await wait_status(pilot, app, ("succeeded", "failed"))
        assert b.status == "succeeded"
        assert marker.read_text().splitlines() == ["one", "two-broken", "two-fixed", "three"]
        assert b.stages[2].attempts == 2
        assert not app.check_action("retry", ())


async def test_skip_and_cleanup_answers(proj, tmp_path, app_factory):
    marker = tmp_path / "m.txt"
    write_template(
        proj / "s.json",
        [null_builder("a"), null_builder("b")],
        [shell("exit 1"), shell(f"echo after-{{{{build_name}}}} >> {marker}")],
    )
    app = app_factory(proj)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, app)
        await pilot.press("b")
        await wait_for(
            pilot,
            lambda: len(app.builds) == 2 and all(b.question for b in app.builds.values()),
            what="both paused",
        )
        a = next(b for b in app.builds.values() if b.name == "a")
        bb = next(b for b in app.builds.values() if b.name == "b")
        app.select_build(a.key, None)
        await pilot.press("s")
        await wait_for(pilot, lambda: a.status == "succeeded", what="a skipped and done")
        assert a.stages[1].status == "skipped"
        app.select_build(bb.key, None)
        await pilot.press("c")
        await wait_for(pilot, lambda: bb.status == "failed", what="b cleaned up")
        assert marker.read_text().splitlines() == ["after-a"]
        assert _ledger_entries(bb.run_id) == []


async def test_keep_stops_and_shows_how_to_get_in(proj, app_factory):
    write_template(
        proj / "k.json", [null_builder("box", communicator="local")], [shell("echo broken; exit 2")]
    )
    app = app_factory(proj)
    async with app.run_test(size=WIDE) as pilot:
        await ready(pilot, app)
        await pilot.press("b")
        await wait_for(pilot, lambda: app.builds and only_build(app).question, what="paused")
        await pilot.press("k")
        (b,) = await wait_status(pilot, app, ("failed", "succeeded"))
        assert b.kept
        summary = str(app.output.query_one("#summary").render())
        assert "kept" in summary and "Get into it with" in summary
        assert "kept" in app.builds_table.get_row_at(0)[0].plain
        assert any(line.startswith("✗ ") for line in view_text(app))  # the engine's own words
        from kiln.backend.engine.ledger import Ledger

        led = Ledger("cleanup-kept")  # what was kept on purpose is still listed; remove it
        try:
            for e in led.entries(b.run_id):
                assert e.kept
                led.release(e.id)
        finally:
            led.close()


async def test_provisioners_on_null_builder_local_target(proj, tmp_path, app_factory):
    marker = tmp_path / "on-target.txt"
    # a file builder normally; `shell` needs a communicator, which p gives it (local)
    write_template(
        proj / "img.json",
        [{"type": "file", "name": "img", "target": str(tmp_path / "x"), "content": "x"}],
        [{"type": "shell", "inline": [f"echo ran-on-$(hostname) > {marker}"]}],
    )
    app = app_factory(proj)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, app)
        await pilot.press("p")
        await wait_for(pilot, lambda: type(app.screen).__name__ == "TargetPicker", what="picker")
        await pilot.press("enter")  # the only target: this host
        # a file build's provisioners were not written for this host: asked first
        await wait_for(pilot, lambda: type(app.screen).__name__ == "ConfirmScreen", what="asked")
        await pilot.press("y")
        (b,) = await wait_status(pilot, app, ("succeeded", "failed", "crashed"))
        assert b.status == "succeeded", b.error
        assert b.mode == "null" and b.build_type == "null"
        assert marker.read_text().startswith("ran-on-")
        assert b.label == "img.json › img · provisioners on this host"
        assert not (tmp_path / "x").exists()  # the file builder did not run


async def test_post_processors_on_file_builder(proj, tmp_path, app_factory):
    marker = tmp_path / "pp.txt"
    write_template(
        proj / "pp.json",
        [null_builder("box")],
        [shell("echo never runs here")],
        [
            [
                {"type": "shell-local", "inline": [f"echo post-processed >> {marker}"]},
                {"type": "manifest", "output": str(tmp_path / "manifest.json")},
            ]
        ],
    )
    app = app_factory(proj)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, app)
        await pilot.press("o")
        (b,) = await wait_status(pilot, app, ("succeeded", "failed", "crashed"))
        assert b.status == "succeeded", b.error
        assert b.mode == "file" and b.build_type == "file"
        assert [s.kind for s in b.stages] == ["builder", "post-processor", "post-processor"]
        assert marker.read_text() == "post-processed\n"  # shell-local: the command as written
        # the manifest's path (absolute here) is re-rooted into the run's scratch directory
        assert not (tmp_path / "manifest.json").exists()
        (scratch,) = glob.glob(str(proj / ".kiln" / "debug-runs" / "pp-debug" / "*"))
        manifest = json.loads(Path(scratch, str(tmp_path).lstrip("/"), "manifest.json").read_text())
        assert manifest["builds"][0]["builder_type"] == "file"
        assert manifest["builds"][0]["artifact_id"] == "Null"  # the null builder's own kind
        assert "never runs here" not in "\n".join(view_text(app))


async def test_cancel_cleans_up_everything(proj, tmp_path, app_factory):
    pidfile = tmp_path / "pid"
    write_template(
        proj / "slow.json",
        [null_builder("slow")],
        [shell(f"echo $$ > {pidfile}", "echo sleeping", "sleep 60")],
    )
    app = app_factory(proj)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, app)
        await pilot.press("b")
        await wait_for(
            pilot,
            lambda: (
                pidfile.exists()
                and pidfile.read_text().strip()
                and app.builds
                and "sleeping" in "\n".join(view_text(app))
            ),
            what="sleeping",
        )
        b = only_build(app)
        scripts = [ident for ident, kind in b.resources.items() if kind == "tempfile"]
        assert scripts and all(os.path.exists(p) for p in scripts)
        await pilot.press("x")
        (b,) = await wait_status(pilot, app, ("cancelled", "failed", "succeeded"), timeout=20)
        assert b.status == "cancelled"
        rec = app.sessions[b.session_id]
        rec.session.wait(10)
        assert _ledger_entries(b.run_id) == []
        assert not any(os.path.exists(p) for p in scripts)
        assert b.resources == {}
        assert not _alive(int(pidfile.read_text()))


async def test_quit_asks_then_cancels_and_waits(proj, tmp_path, app_factory):
    started = tmp_path / "started"
    write_template(
        proj / "slow.json", [null_builder("slow")], [shell(f"touch {started}", "sleep 60")]
    )
    app = app_factory(proj)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, app)
        await pilot.press("b")
        await wait_for(pilot, lambda: started.exists(), what="provisioner started")
        await pilot.press("q")
        await wait_for(pilot, lambda: type(app.screen).__name__ == "ConfirmScreen", what="confirm")
        await pilot.press("escape")  # keep running
        await pilot.pause(0.2)
        assert type(app.screen).__name__ == "Screen" or app.screen.id == "_default"
        b = only_build(app)
        assert b.live
        await pilot.press("q")
        await wait_for(pilot, lambda: type(app.screen).__name__ == "ConfirmScreen", what="confirm")
        await pilot.press("y")
        await wait_for(
            pilot,
            lambda: type(app.screen).__name__ == "WaitScreen" or not app.is_running,
            what="wait screen",
        )
        await wait_for(pilot, lambda: not app.is_running, timeout=20, what="the app exits")
    rec = next(iter(app.sessions.values()))
    assert rec.session.done
    assert rec.session.result.results["slow"].status == "cancelled"
    assert _ledger_entries(rec.session.run_id) == []


async def test_quit_without_builds_does_not_ask(proj, app_factory):
    write_template(proj / "t.json", [null_builder()], [shell("true")])
    app = app_factory(proj)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, app)
        await pilot.press("q")
        await wait_for(pilot, lambda: not app.is_running, what="exit")
    assert app.return_value == 0


async def test_invalid_template_problems_in_place(proj, app_factory):
    (proj / "bad.json").write_text(
        '{\n  "builders": [\n    {"type": "null", "nmae": "x"}\n  ]\n}\n'
    )
    (proj / "notes.json").write_text('{"not": "a template"}')
    app = app_factory(proj)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, app)
        assert [e.name for e in app.templates.entries] == ["bad.json"]
        e = app.templates.entries[0]
        assert e.status == "invalid"
        assert any(p.text.startswith("bad.json:3:") and "nmae" in p.text for p in e.problems)
        labels = [
            app.templates.tree_widget.get_node_at_line(i).label.plain
            for i in range(app.templates.tree_widget.last_line + 1)
        ]
        assert labels[0].startswith("✗ bad.json")
        # under its template a problem reads "line:col: ..."; the output pane has it whole
        assert any(label.startswith("✗ 3:") and "nmae" in label for label in labels)
        # b on an invalid template: nothing starts, the problems show in the output pane
        await pilot.press("b")
        await pilot.pause(0.3)
        assert app.builds == {}
        assert any("nmae" in line for line in view_text(app))


async def test_history_rows_from_earlier_runs(proj, app_factory):
    write_template(proj / "h.json", [null_builder("hist")], [shell("echo from history")])
    from kiln.backend.engine.prepare import Options
    from kiln.backend.engine.session import Session, load_template

    s = Session(load_template(str(proj / "h.json"), Options()), Options())
    s.run()
    app = app_factory(proj)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, app)
        await wait_for(pilot, lambda: app.history, what="history")
        h = app.history[0]
        assert h.name == "hist" and h.status == "succeeded"
        app.builds_table.focus()
        await pilot.press("enter")
        await wait_for(pilot, lambda: h.output.total, what="log read")
        assert any("from history" in line for line in view_text(app))
        assert [st.status for st in h.stages] == ["succeeded", "succeeded"]


async def test_closing_the_app_any_way_cancels_running_builds(proj, tmp_path, app_factory):
    """An error (here: a test failing) ends the app with a build running: it is cancelled and
    cleaned up on the way out, so no script keeps running and nothing stays in the ledger."""
    pidfile = tmp_path / "pid"
    write_template(
        proj / "s.json", [null_builder("s")], [shell(f"echo $$ > {pidfile}", "sleep 60")]
    )
    app = app_factory(proj)
    with pytest.raises(RuntimeError):
        async with app.run_test(size=SIZE) as pilot:
            await ready(pilot, app)
            await pilot.press("b")
            await wait_for(pilot, lambda: pidfile.exists() and pidfile.read_text().strip())
            raise RuntimeError("something went wrong")
    rec = next(iter(app.sessions.values()))
    assert rec.session.done and rec.session.result.results["s"].status == "cancelled"
    assert not _alive(int(pidfile.read_text()))
    assert _ledger_entries(rec.session.run_id) == []


async def test_post_processor_lines_sit_under_their_own_stage_header(proj, tmp_path, app_factory):
    write_template(
        proj / "pp.json",
        [null_builder("box")],
        [shell("echo provisioned")],
        [{"type": "manifest", "output": str(tmp_path / "m.json")}],
    )
    app = app_factory(proj)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, app)
        await pilot.press("b")
        (b,) = await wait_status(pilot, app, ("succeeded", "failed", "crashed"))
        assert b.status == "succeeded", b.error
        rows = view_text(app)
        line = rows.index("› Running post-processor: manifest")
        assert rows[line - 1].startswith("── 3/3 manifest"), rows
        # and the provisioner's stage ends with its own output, not the announcement
        prov = next(i for i, r in enumerate(rows) if r.startswith("── 2/3 "))
        assert "provisioned" in rows[prov + 2]


async def test_a_build_cancelled_with_x_is_recorded_as_cancelled(proj, tmp_path, app_factory):
    started = tmp_path / "started"
    write_template(
        proj / "slow.json", [null_builder("slow")], [shell(f"touch {started}", "sleep 60")]
    )
    app = app_factory(proj)
    async with app.run_test(size=WIDE) as pilot:
        await ready(pilot, app)
        await pilot.press("b")
        await wait_for(pilot, lambda: started.exists(), what="provisioner started")
        await pilot.press("x")
        (b,) = await wait_status(pilot, app, ("cancelled", "failed", "succeeded"))
        assert b.status == "cancelled"
        app.sessions[b.session_id].session.wait(10)
    from kiln.backend.engine.history import recent_runs

    (run,) = recent_runs(str(proj / ".kiln" / "history.db"))
    assert run["status"] == "cancelled"
    assert run["builds"][0]["status"] == "cancelled"
    # a new dashboard shows the run as cancelled in its history rows
    app = app_factory(proj)
    async with app.run_test(size=WIDE) as pilot:
        await ready(pilot, app)
        await wait_for(pilot, lambda: app.history, what="history")
        assert app.builds_table.get_row_at(0)[0].plain == "⊘ cancelled"


async def test_second_b_on_a_template_already_building_asks_first(proj, tmp_path, app_factory):
    started = tmp_path / "started"
    write_template(
        proj / "slow.json", [null_builder("slow")], [shell(f"touch {started}", "sleep 60")]
    )
    app = app_factory(proj)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, app)
        await pilot.press("b", "b")  # two quick presses: the first build has not started yet
        await wait_for(pilot, lambda: type(app.screen).__name__ == "ConfirmScreen", what="asked")
        assert "already building" in app.screen.title_text
        await pilot.press("enter")  # the focused button is "Don't"
        await wait_for(pilot, lambda: type(app.screen).__name__ != "ConfirmScreen", what="closed")
        await wait_for(pilot, started.exists, what="the first build runs")
        await pilot.pause(0.3)
        assert len(app.builds) == 1
        # asked again while it runs; this time the user wants a second build
        await pilot.press("b")
        await wait_for(pilot, lambda: type(app.screen).__name__ == "ConfirmScreen", what="asked")
        await pilot.press("y")
        await wait_for(pilot, lambda: len(app.builds) == 2, what="a second build")
        await pilot.press("x")


def _build_cells(app) -> list[str]:
    return [app.builds_table.get_row_at(i)[1].plain for i in range(app.builds_table.row_count)]


async def test_builds_pane_tells_builds_apart(proj, tmp_path, app_factory):
    """Same build name in two templates, a debug run, a skipped provisioner: each row says which."""
    write_template(proj / "a.json", [null_builder("box")], [shell("echo a")])
    write_template(
        proj / "b.json",
        [null_builder("box")],
        [shell("exit 3"), shell("echo after")],
        [{"type": "manifest", "output": str(tmp_path / "m.json")}],
    )
    app = app_factory(proj)
    async with app.run_test(size=WIDE) as pilot:
        await ready(pilot, app)
        await select_template(pilot, app, "a.json")
        await pilot.press("b")
        await wait_status(pilot, app, ("succeeded",))
        await select_template(pilot, app, "b.json")
        await pilot.press("b")
        await wait_for(pilot, lambda: any(b.question for b in app.builds.values()), what="paused")
        await pilot.press("s")
        await wait_status(pilot, app, ("succeeded",))
        await select_template(pilot, app, "a.json")
        await pilot.press("p")
        await wait_for(pilot, lambda: type(app.screen).__name__ == "TargetPicker", what="picker")
        await pilot.press("enter")
        await wait_for(pilot, lambda: len(app.builds) == 3, what="the debug run")
        await wait_status(pilot, app, ("succeeded",))
        cells = _build_cells(app)
        assert cells == [
            "a.json › box · provisioners on this host",
            "b.json › box · 1 skipped",
            "a.json › box",
        ], cells
        skipped = next(b for b in app.builds.values() if b.template_name == "b.json")
        assert app.builds_table.get_row_at(1)[0].plain == "✓ succeeded"
        app.select_build(skipped.key, None)
        await pilot.pause()
        assert "✓ succeeded, 1 skipped" in app.stages_table.border_title


async def test_a_past_run_opens_on_selection(proj, app_factory):
    write_template(proj / "h.json", [null_builder("old")], [shell("echo from the first run")])
    write_template(proj / "i.json", [null_builder("older")], [shell("echo from the second")])
    from kiln.backend.engine.prepare import Options
    from kiln.backend.engine.session import Session, load_template

    for name in ("i.json", "h.json"):
        Session(load_template(str(proj / name), Options()), Options()).run()
    app = app_factory(proj)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, app)
        await wait_for(pilot, lambda: len(app.history) == 2, what="history")
        assert _build_cells(app) == ["h.json › old", "i.json › older"]
        app.builds_table.focus()
        await pilot.pause()
        await pilot.press("down")  # no enter: moving onto a past run shows it
        await wait_for(pilot, lambda: app.history[1].output.total, what="log read")
        await pilot.pause(0.1)
        assert any("from the second" in line for line in view_text(app))
        assert app.stages_table.row_count == 2


async def test_retry_from_the_first_changed_provisioner(proj, tmp_path, app_factory):
    marker = tmp_path / "marker.txt"
    tpl = write_template(
        proj / "t.json",
        [null_builder("box")],
        [shell(f"echo one >> {marker}"), shell(f"echo two-broken >> {marker}", "exit 3"),
         shell(f"echo three >> {marker}")],
    )
    app = app_factory(proj)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, app)
        await pilot.press("b")
        await wait_for(pilot, lambda: app.builds and only_build(app).question, what="paused")
        data = json.loads(tpl.read_text())
        data["provisioners"][1] = shell(f"echo two-fixed >> {marker}")
        data["provisioners"].insert(1, shell(f"echo inserted >> {marker}"))
        tpl.write_text(json.dumps(data, indent=2))
        await pilot.press("r")
        await wait_for(pilot, lambda: type(app.screen).__name__ == "RetryChoiceScreen")
        choices = [c for c, _ in app.screen.options]
        assert choices == ["matched", "from-changed", "retry", ""]
        await pilot.press("down", "enter")  # run from the first changed one
        (b,) = await wait_status(pilot, app, ("succeeded", "failed"))
        assert b.status == "succeeded", b.error
        assert marker.read_text().split() == ["one", "two-broken", "inserted", "two-fixed", "three"]
        # the stages follow the template as it now reads
        assert [s.name.split(" >>")[0] for s in b.stages if s.kind == "provisioner"] == [
            "shell-local: echo one", "shell-local: echo inserted", "shell-local: echo two-fixed",
            "shell-local: echo three",
        ]
        assert all(s.status == "succeeded" for s in b.stages)
    # history has the stages as they ran
    from kiln.backend.engine.history import stages_of

    rows = stages_of(str(proj / ".kiln" / "history.db"), b.run_id, "box")
    assert [r["name"].split(" >>")[0] for r in rows][1:] == [
        "shell-local: echo one", "shell-local: echo inserted", "shell-local: echo two-fixed",
        "shell-local: echo three",
    ]


async def test_retry_finds_a_named_provisioner_by_its_name(proj, tmp_path, app_factory):
    """HCL2: the failed provisioner has a name. Edited, moved down a line, with a new one after
    it and the next one edited too (by content alone, a guess), it is found by its name and
    runs at once; the output says where it went, and the rest follows the template."""
    marker = tmp_path / "marker.txt"
    src = 'source "null" "box" {\n  communicator = "none"\n}\n'

    def hcl(provs: list[tuple[str, str]], comment: str = "") -> str:
        body = "".join(
            f'  provisioner "shell-local" {{\n{name}    inline = ["{cmd} >> {marker}"]\n  }}\n'
            for name, cmd in provs
        )
        return src + f'build {{\n  sources = ["source.null.box"]\n{comment}{body}}}\n'

    setup = '    name = "setup"\n'
    tpl = proj / "t.pkr.hcl"
    broken = f"echo broken >> {marker}; exit 3"
    tpl.write_text(hcl([("", "echo one"), (setup, broken), ("", "echo three")]))
    app = app_factory(proj)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, app)
        await pilot.press("b")
        await wait_for(pilot, lambda: app.builds and only_build(app).question, what="paused")
        tpl.write_text(
            hcl(
                [("", "echo one"), (setup, "echo fixed"), ("", "echo new"), ("", "echo 3")],
                comment="  # the base packages\n",
            )
        )
        await pilot.press("r")
        (b,) = await wait_status(pilot, app, ("succeeded", "failed"))
        assert b.status == "succeeded", b.error
        assert type(app.screen).__name__ != "RetryChoiceScreen"  # nothing to ask
        assert marker.read_text().split() == ["one", "broken", "fixed", "new", "3"]
        app.select_build(b.key, None)  # the whole build: the reload note is the build's own line
        await pilot.pause()
        text = "\n".join(view_text(app))
        assert "running provisioner 2 again" in text and "it was provisioner 2 at line 9" in text
        assert "(attempt 2)  t.pkr.hcl:10" in text


async def test_retry_on_a_template_that_no_longer_parses_stays_paused(
    proj, tmp_path, app_factory
):
    marker = tmp_path / "marker.txt"
    tpl = write_template(
        proj / "t.json",
        [null_builder("box")],
        [shell(f"echo one >> {marker}"), shell(f"echo broken >> {marker}", "exit 3")],
    )
    good = tpl.read_text()
    app = app_factory(proj)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, app)
        await pilot.press("b")
        await wait_for(pilot, lambda: app.builds and only_build(app).question, what="paused")
        b = only_build(app)
        tpl.write_text(good.replace('"inline"', '"inline" "oops"', 1))  # a JSON syntax error
        await pilot.press("r")
        await wait_for(
            pilot,
            lambda: b.question and "could not be read" in (b.question.get("prompt") or ""),
            what="paused again with the error",
        )
        summary = str(app.output.query_one("#summary").render())
        assert "t.json:" in summary  # located
        assert b.status == "paused" and b.live
        assert marker.read_text().split() == ["one", "broken"]  # the old command did not run
        tpl.write_text(good.replace("echo broken", "echo fixed").replace('"exit 3"', '"true"'))
        await pilot.press("r")
        await wait_status(pilot, app, ("succeeded", "failed"))
        assert b.status == "succeeded", b.error
        assert marker.read_text().split() == ["one", "broken", "fixed"]


def _digests(root) -> dict[str, str]:
    import hashlib

    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


async def test_o_never_touches_the_real_builds_outputs(proj, app_factory, monkeypatch):
    """The bundled null-local.json, built with b, then o twice (a stand-in, then the last
    build's artifact): build/ stays byte for byte as the real build left it; the debug
    outputs are in a scratch directory the output names."""
    import shutil

    root = Path(__file__).resolve().parents[2]
    shutil.copy(root / "templates" / "null-local.json", proj / "null-local.json")
    monkeypatch.chdir(proj)  # the template's outputs are relative to the working directory
    app = app_factory(proj)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, app)
        await pilot.press("b")
        await wait_status(pilot, app, ("succeeded", "failed"))
        assert all(b.status == "succeeded" for b in app.builds.values())
        real = _digests(proj / "build")
        assert "release-notes.tar.gz" in real and "manifest.json" in real
        for pick in ("stand-in", "last"):
            before = set(app.builds)
            await pilot.press("o")
            n = len(before)
            await wait_for(
                pilot,
                lambda n=n: type(app.screen).__name__ == "ArtifactPicker" or len(app.builds) > n,
            )
            runs_at_once = len(app.builds) > n
            if not runs_at_once:
                keys = [k for k, _ in app.screen.options]
                assert keys == ["stand-in", "last"]
                if pick == "last":
                    await pilot.press("down")
                await pilot.press("enter")
            await wait_for(pilot, lambda n=n: len(app.builds) == n + 2, what="debug run")
            runs = [app.builds[k] for k in app.builds if k not in before]
            await wait_for(pilot, lambda r=runs: not any(b.live for b in r), what="the end")
            assert _digests(proj / "build") == real  # not one byte of the real outputs changed
            assert not runs_at_once  # the last build's artifact is offered
            assert all(b.status == "succeeded" for b in runs), [(b.name, b.error) for b in runs]
            notes = next(b for b in runs if b.name == "release-notes")
            app.select_build(notes.key, None)
            await pilot.pause()
            text = "\n".join(view_text(app))
            scratch = text.split("Outputs go to ", 1)[1].split(" and stay there")[0]
            out = proj / scratch
            assert out.is_dir() and out.parent.name == "pp-debug"
            made = _digests(out)
            assert {"build/release-notes.tar.gz", "build/release-notes.sha256"} <= set(made)
            assert f"Wrote {scratch}/build/release-notes.tar.gz" in text
            if pick == "last":
                assert "Starting from the last build's artifact" in text
                assert notes.label.endswith("post-processors on the last build's artifact")
            else:
                assert notes.label.endswith("post-processors on a stand-in")
