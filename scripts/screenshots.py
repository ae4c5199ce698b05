#!/usr/bin/env python3
"""Screenshots of the real dashboard, headless, at 140x40 with a fake clock.

    python3 scripts/screenshots.py [OUTDIR]      (default: screenshots/)

Each scenario builds a small project in a temp directory (null and file
builders, shell-local provisioners, a little seeded history so the progress
bars have an expected length), drives the app with Textual's Pilot through the
real engine, and saves an SVG: idle, builds running, a failed provisioner
waiting for retry, the help screen. The snapshot tests (tests/tui) use the same
scenarios.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Awaitable, Callable

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

SIZE = (140, 40)
PROJECT = "kiln-demo"  # the project directory's name (shown in the header)


# -- the demo project ------------------------------------------------------------------------


def make_project(parent: Path) -> Path:
    """Templates a new user might have: two valid, one with mistakes; plus earlier runs."""
    root = parent / PROJECT
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    gate = root / ".hold"  # while it exists the long provisioner keeps running
    gate.write_text("")
    web = {
        "description": "An app server and its release notes, provisioned locally",
        "builders": [
            {"type": "null", "name": "app-server", "communicator": "none"},
            {
                "type": "file",
                "name": "release-notes",
                "target": str(root / "out" / "notes.txt"),
                "content": "release notes\n",
            },
        ],
        "provisioners": [
            {
                "type": "shell-local",
                "inline": [
                    "echo 'Reading package lists... Done'",
                    "printf '\\033[32m✓\\033[0m nginx 1.24.0 installed\\n'",
                    "printf '\\033[32m✓\\033[0m postgresql-client 16.2 installed\\n'",
                    # the pauses keep stdout and stderr lines in this order on screen
                    "sleep 0.1; echo 'W: [security] 2 packages can be upgraded' >&2; sleep 0.1",
                    "printf 'config: listen [::]:80 \\033[1mdefault_server\\033[0m\\n'",
                ],
            },
            {
                "type": "shell-local",
                "inline": [
                    "echo 'compiling assets (webpack --mode production)'",
                    'i=1; while [ $i -le 8 ]; do echo "  chunk $i/8 built"; i=$((i+1)); done',
                    f"while [ -e {gate} ]; do sleep 0.1; done",
                ],
            },
        ],
    }
    db = {
        "builders": [{"type": "null", "name": "database", "communicator": "none"}],
        "provisioners": [
            {"type": "shell-local", "inline": ["echo 'creating role app'", "echo 'role created'"]},
            {
                "type": "shell-local",
                "inline": [
                    "echo 'Reading package lists... Done'",
                    "sleep 0.1; echo 'E: Unable to locate package postgresql-17' >&2",
                    "exit 100",
                ],
            },
            {"type": "shell-local", "inline": ["echo 'loading schema'"]},
        ],
    }
    (root / "web.json").write_text(json.dumps(web, indent=2) + "\n")
    (root / "db.json").write_text(json.dumps(db, indent=2) + "\n")
    (root / "broken.json").write_text(
        '{\n  "builders": [\n    {"type": "null", "communicator": "none", "nmae": "cache"}\n  ],\n'
        '  "provisioners": [\n    {"type": "shell-local", "inlne": ["echo hi"]}\n  ]\n}\n'
    )
    seed_history(root)
    return root


def seed_history(root: Path, now: float | None = None) -> None:
    """Earlier runs in .kiln/history.db: the median stage lengths drive the progress bars."""
    from backend.engine.history import connect
    from tui.clock import FakeClock

    now = FakeClock().now() if now is None else now
    db = connect(str(root / ".kiln" / "history.db"))
    web_stages = [
        ("Connect", "builder", 0.1),
        ("shell-local: echo 'Reading package lists... Done' (+4 lines)", "provisioner", 4.0),
        (
            "shell-local: echo 'compiling assets (webpack --mode production)' (+2 lines)",
            "provisioner",
            60.0,
        ),
    ]
    runs = [
        ("run-web-1", "web.json", now - 7200, [("app-server", "null", "succeeded", web_stages)]),
        (
            "run-db-1",
            "db.json",
            now - 90000,
            [("database", "null", "failed", [("Connect", "builder", 0.1)])],
        ),
    ]
    for rid, tpl, started, builds in runs:
        db.execute(
            "INSERT INTO runs(id, template, started, finished, status, exit_code, pid) "
            "VALUES (?,?,?,?,?,?,?)",
            (
                rid,
                str(root / tpl),
                started,
                started + 70,
                builds[0][2],
                0 if builds[0][2] == "succeeded" else 1,
                0,
            ),
        )
        for name, btype, st, stages in builds:
            db.execute(
                "INSERT INTO builds(run_id, name, type, status, started, duration) "
                "VALUES (?,?,?,?,?,?)",
                (rid, name, btype, st, started, sum(s[2] for s in stages)),
            )
            for i, (sname, kind, dur) in enumerate(stages):
                db.execute(
                    "INSERT INTO stages(run_id, build, idx, name, kind, status, started, duration) "
                    "VALUES (?,?,?,?,?,?,?,?)",
                    (rid, name, i, sname, kind, "succeeded", started, dur),
                )
    db.commit()
    db.close()


# -- driving the app -----------------------------------------------------------------------


async def _wait(pilot, cond: Callable[[], object], timeout: float = 30.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise TimeoutError(f"screenshot scenario: timed out waiting for {what}")
        await pilot.pause(0.05)


async def _ready(pilot, app) -> None:
    await _wait(
        pilot,
        lambda: (
            app.templates.entries
            and all(e.status != "validating" for e in app.templates.entries)
            and app.history
        ),
        what="templates and history",
    )
    await pilot.pause(0.1)


async def _select(pilot, app, name: str) -> None:
    tree = app.templates.tree_widget
    tree.focus()
    for line in range(tree.last_line + 1):
        node = tree.get_node_at_line(line)
        if (
            node is not None
            and node.data is not None
            and node.data.kind == "template"
            and app.templates.entry(node.data.path).name == name
        ):
            tree.cursor_line = line
            await pilot.pause()
            return
    raise LookupError(name)


async def _settle(pilot, app) -> None:
    app.clear_notifications()
    await pilot.pause(0.3)
    app.clear_notifications()
    await pilot.pause(0.1)


async def idle(pilot, app, root: Path) -> None:
    await _ready(pilot, app)
    await _select(pilot, app, "web.json")
    await _settle(pilot, app)
    await _stable_layout(pilot, app)


async def running(pilot, app, root: Path) -> None:
    await _ready(pilot, app)
    await _select(pilot, app, "web.json")
    await pilot.press("b")

    def compiling() -> bool:
        bs = list(app.builds.values())
        return len(bs) == 2 and all(
            b.stages
            and b.stages[-1].status == "running"
            and any("chunk 8/8" in line for line in b.output.lines)
            for b in bs
        )

    await _wait(pilot, compiling, what="both builds compiling")
    app.clock.advance(42)
    app.refresh_panes()
    await _settle(pilot, app)
    await _stable_layout(pilot, app)


async def paused(pilot, app, root: Path) -> None:
    await _ready(pilot, app)
    await _select(pilot, app, "db.json")
    await pilot.press("b")
    await _wait(pilot, lambda: any(b.question for b in app.builds.values()), what="paused")
    app.clock.advance(3)
    app.refresh_panes()
    await _settle(pilot, app)
    await _stable_layout(pilot, app)


async def help_screen(pilot, app, root: Path) -> None:
    await _ready(pilot, app)
    await _select(pilot, app, "web.json")
    await pilot.press("question_mark")
    await _wait(pilot, lambda: type(app.screen).__name__ == "HelpScreen", what="help")
    await _settle(pilot, app)
    await _stable_layout(pilot, app)


async def _stable_layout(pilot, app) -> None:
    """Wait until no widget on the screen changes size (a busy machine lays out late)."""

    def sizes() -> list:
        return [(w.size, w.virtual_size, w.scroll_offset) for w in app.screen.query("*")]

    last, same = None, 0
    deadline = time.monotonic() + 10
    while same < 3 and time.monotonic() < deadline:
        await pilot.pause(0.1)
        now = sizes()
        same = same + 1 if now == last else 0
        last = now


SCENARIOS: dict[str, Callable[..., Awaitable[None]]] = {
    "idle": idle,
    "running": running,
    "paused-for-retry": paused,
    "help": help_screen,
}


async def capture(name: str, workdir: Path) -> str:
    """Run one scenario in a fresh project under ``workdir``; the screenshot as SVG text."""
    from tui.app import make_app
    from tui.clock import FakeClock

    root = make_project(workdir / name)
    # the help screen shows the config directory: one whose name always has the same length
    config = Path(
        tempfile.mkdtemp(prefix="kiln-cfg-", dir="/tmp" if os.path.isdir("/tmp") else None)
    )
    app = make_app(str(root), clock=FakeClock(), config_dir=config)
    async with app.run_test(size=SIZE) as pilot:
        try:
            await SCENARIOS[name](pilot, app, root)
            svg = app.export_screenshot(title="Kiln")
        finally:
            (root / ".hold").unlink(missing_ok=True)
            for rec in app.sessions.values():
                rec.session.cancel("screenshot taken")
            for rec in app.sessions.values():
                rec.session.wait(30)
            shutil.rmtree(config, ignore_errors=True)
    return svg


def normalise(svg: str) -> str:
    """What differs between runs of the same scenario: Rich's ids, the run's private temp
    directory and temp script names."""
    svg = re.sub(r"terminal-\d+-", "terminal-", svg)
    svg = re.sub(r"kiln-[A-Za-z0-9]{1,8}-[0-9a-f]{16}", "kiln-XXXXXXXX-XXXXXXXXXXXXXXXX", svg)
    svg = re.sub(r"packer-shell[A-Za-z0-9_]+", "packer-shellXXXXXXXX", svg)
    svg = re.sub(r"kiln-cfg-[A-Za-z0-9_]{8}", "kiln-cfg-XXXXXXXX", svg)
    return svg.replace("\r\n", "\n")


def main(argv: list[str]) -> int:
    out = Path(argv[0]) if argv else ROOT / "screenshots"
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="kiln-shots-"))
    os.environ.setdefault("KILN_STATE_DIR", str(work / "state"))
    try:
        for name in SCENARIOS:
            svg = asyncio.run(capture(name, work))
            # the README shows the usual config directory (padded: SVG text has fixed lengths)
            svg = re.sub(r"/tmp/kiln-cfg-[A-Za-z0-9_]{8}", "~/.config/kiln" + "&#160;" * 8, svg)
            path = out / f"{name}.svg"
            path.write_text(svg, encoding="utf-8", newline="\n")
            print(f"wrote {path}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
