#!/usr/bin/env python3
"""Screenshots of the real dashboard driving real docker builds of the bundled templates.

    python3 scripts/screenshots.py [OUTDIR]      (default: screenshots/)

Each scenario copies the bundled templates (templates/) into a fresh project, seeds a little
history so the progress bars have an expected length, drives the app headless with Textual's
Pilot and a fake clock through the real engine and the real Docker engine (base image
kiln/busybox: scripts/make-base-image.sh), and saves an SVG. Where a scenario needs a
provisioner to fail or to take its time, it edits the copy of docker-busybox.json the way a
user would (a typo in a path, a slow step) and says so in its docstring. The snapshot tests
(tests/tui/test_tui_snapshots.py) run the same scenarios at the same sizes.
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
from dataclasses import dataclass
from pathlib import Path
from typing import Awaitable, Callable

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

PROJECT = "kiln-demo"  # the project directory's name (shown in the header)
DOCKER = "docker-busybox.json"


# -- the demo project ------------------------------------------------------------------------


def make_project(parent: Path) -> Path:
    """The bundled templates as a new user has them, one template with mistakes, and history."""
    root = parent / PROJECT
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    for name in (DOCKER, "null-local.json", "hcl2-null.pkr.hcl"):
        shutil.copy(ROOT / "templates" / name, root / name)
    shutil.copytree(ROOT / "templates" / "files", root / "files")
    (root / "broken.json").write_text(
        '{\n  "builders": [\n    {"type": "null", "communicator": "none", "nmae": "cache"}\n  ],\n'
        '  "provisioners": [\n    {"type": "shell-local", "inlne": ["echo hi"]}\n  ]\n}\n'
    )
    seed_history(root)
    return root


def edit_docker_template(root: Path, change: Callable[[dict], None]) -> None:
    """Edit the copy of the docker template as an editor saves: all at once (the dashboard
    re-reads templates that change, and must never see half a file)."""
    path = root / DOCKER
    data = json.loads(path.read_text())
    change(data)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)


def typo(data: dict) -> None:
    """A typo in a path: the third provisioner's first command fails (and says so on
    stderr only, so the screenshot's lines come in one order)."""
    data["provisioners"][2]["inline"][0] = "ls -l /srv/ap"


def slow_step(data: dict) -> None:
    data["provisioners"][2]["inline"].append("sleep 120")


def seed_history(root: Path, now: float | None = None) -> None:
    """Earlier runs in .kiln/history.db: the median stage lengths drive the progress bars."""
    from kiln.backend.engine.history import connect
    from kiln.tui.clock import FakeClock

    now = FakeClock().now() if now is None else now
    db = connect(str(root / ".kiln" / "history.db"))
    docker_stages = [
        ("Connect to Docker engine", "builder", 0.1),
        ("Create shared temp dir", "builder", 0.1),
        ("Start container", "builder", 0.6),
        ("Connect", "builder", 0.1),
        ("shell: mkdir -p /srv/app (+2 lines)", "provisioner", 1.2),
        (f"file: {root}/files/motd.txt => /srv/app/motd.txt", "provisioner", 0.4),
        ("shell: ls -l /srv/app (+1 lines)", "provisioner", 40.0),
        ("shell: ls -l /srv/app (+2 lines)", "provisioner", 40.0),  # slow_step()
        ("Commit container", "builder", 2.5),
        ("docker-tag", "post-processor", 0.2),
        ("manifest", "post-processor", 0.1),
    ]
    runs = [
        ("run-docker-1", DOCKER, now - 7200, [("docker", "docker", "succeeded", docker_stages)]),
        (
            "run-null-1",
            "null-local.json",
            now - 90000,
            [("local", "null", "succeeded", [("Connect", "builder", 0.1)])],
        ),
    ]
    for rid, tpl, started, builds in runs:
        db.execute(
            "INSERT INTO runs(id, template, started, finished, status, exit_code, pid) "
            "VALUES (?,?,?,?,?,?,?)",
            (rid, str(root / tpl), started, started + 70, builds[0][2], 0, 0),
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


async def _wait(pilot, cond: Callable[[], object], timeout: float = 180.0, what: str = "") -> None:
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
            tree.move_cursor_to_line(line)
            await pilot.pause()
            return
    raise LookupError(name)


async def _settle(pilot, app) -> None:
    app.clear_notifications()
    await pilot.pause(0.3)
    app.clear_notifications()
    await pilot.pause(0.1)
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


async def _paused(pilot, app, root: Path) -> None:
    """A typo in the bundled docker template's last provisioner (version.txt is not there,
    see typo()): the build pauses with the container up, waiting for r, s, c or k."""
    await _ready(pilot, app)
    await _select(pilot, app, DOCKER)
    await pilot.press("b")
    await _wait(pilot, lambda: any(b.question for b in app.builds.values()), what="paused")
    app.clock.advance(3)
    app.refresh_panes()
    await _settle(pilot, app)


async def idle(pilot, app, root: Path) -> None:
    """The bundled templates, one with mistakes, and two earlier runs."""
    await _ready(pilot, app)
    await _select(pilot, app, DOCKER)
    await _settle(pilot, app)


async def running(pilot, app, root: Path) -> None:
    """The bundled docker template with a slow last step (slow_step(): a sleep after its
    output)."""
    await _ready(pilot, app)
    await _select(pilot, app, DOCKER)
    await pilot.press("b")

    def provisioning() -> bool:
        bs = list(app.builds.values())
        return (
            len(bs) == 1
            and bs[0].stages
            and bs[0].stages[6].status == "running"
            and any("Welcome to an image built by Kiln" in line for line in bs[0].output.lines)
        )

    await _wait(pilot, provisioning, what="the last provisioner running")
    app.clock.advance(12)
    app.refresh_panes()
    await _settle(pilot, app)


async def retry_question(pilot, app, root: Path) -> None:
    """Paused as above; the user fixes the typo and adds a provisioner above it, then presses
    r: Kiln asks which one to run."""
    await _paused(pilot, app, root)

    def fix_and_insert(data: dict) -> None:
        data["provisioners"][2]["inline"][0] = "ls -l /srv/app"
        data["provisioners"].insert(2, {"type": "shell", "inline": ["echo 1.4.2 > /srv/app/v"]})

    edit_docker_template(root, fix_and_insert)
    await pilot.press("r")
    await _wait(pilot, lambda: type(app.screen).__name__ == "RetryChoiceScreen", what="question")
    await _settle(pilot, app)


async def help_screen(pilot, app, root: Path) -> None:
    await _ready(pilot, app)
    await _select(pilot, app, DOCKER)
    await pilot.press("question_mark")
    await _wait(pilot, lambda: type(app.screen).__name__ == "HelpScreen", what="help")
    await _settle(pilot, app)


@dataclass(frozen=True)
class Scenario:
    run: Callable[..., Awaitable[None]]
    size: tuple[int, int]
    docker: bool = True
    edit: Callable[[dict], None] | None = None  # done to the docker template before the app


SCENARIOS: dict[str, Scenario] = {
    "idle": Scenario(idle, (120, 40), docker=False),
    "idle-80x24": Scenario(idle, (80, 24), docker=False),
    "running": Scenario(running, (120, 40), edit=slow_step),
    "paused-for-retry": Scenario(_paused, (120, 40), edit=typo),
    "paused-80x24": Scenario(_paused, (80, 24), edit=typo),
    "paused-200x60": Scenario(_paused, (200, 60), edit=typo),
    "retry-question": Scenario(retry_question, (120, 40), edit=typo),
    "help": Scenario(help_screen, (120, 40), docker=False),
}


async def capture(name: str, workdir: Path) -> str:
    """Run one scenario in a fresh project under ``workdir``; the screenshot as SVG text."""
    from kiln.tui.app import make_app
    from kiln.tui.clock import FakeClock

    scenario = SCENARIOS[name]
    # a project path of one length every time (/tmp/k + 8 characters), so a screenshot's text
    # lines up from run to run; normalise() names it /home/me/build
    base = Path(tempfile.mkdtemp(prefix="k", dir="/tmp"))
    root = make_project(base)
    if scenario.edit is not None:
        edit_docker_template(root, scenario.edit)
    # the help screen shows the config directory: one whose name always has the same length
    config = Path(
        tempfile.mkdtemp(prefix="kiln-cfg-", dir="/tmp" if os.path.isdir("/tmp") else None)
    )
    cwd = os.getcwd()
    os.chdir(root)  # templates write relative paths from the working directory, as kiln does
    app = make_app(str(root), clock=FakeClock(), config_dir=config)
    try:
        async with app.run_test(size=scenario.size) as pilot:
            try:
                await scenario.run(pilot, app, root)
                svg = app.export_screenshot(title="Kiln")
            finally:
                for rec in app.sessions.values():
                    rec.session.cancel("screenshot taken")
                for rec in app.sessions.values():
                    rec.session.wait(60)
    finally:
        os.chdir(cwd)
        shutil.rmtree(config, ignore_errors=True)
        shutil.rmtree(base, ignore_errors=True)
    return svg


_SAME_LENGTH = [
    (re.compile(r"terminal-\d+-"), lambda m: "terminal-"),
    (re.compile(r"/tmp/k[a-z0-9_]{8}\b"), lambda m: "/home/me/build"),
    # the run's private temp directory (kiln-<run>-<random>)
    (re.compile(r"kiln-[A-Za-z0-9]{1,8}-[0-9a-f]{16}"),
     lambda m: "kiln-" + "X" * (len(m.group(0)) - 22) + "-" + "X" * 16),
    # ids and names that differ from run to run; replaced by text of the same length
    (re.compile(r"\b[0-9a-f]{64}\b"), lambda m: "0" * 64),
    # an id cut short by the pane's width (docker's Container ID / Image ID lines)
    (re.compile(r"((?:Container|Image)(?: |&#160;)ID:(?: |&#160;)(?:sha256:)?)([0-9a-f]+)"),
     lambda m: m.group(1) + "0" * len(m.group(2))),
    (re.compile(r"\b(sha256:)?[0-9a-f]{12}\b"), lambda m: "0" * len(m.group(0))),
    # the end of an id a dialog covers the rest of
    (re.compile(r'(clip-path="url\(#terminal-line-\d+\)">)([0-9a-f]{3,11})(</text>)'),
     lambda m: m.group(1) + "0" * len(m.group(2)) + m.group(3)),
    (re.compile(r"packer-shell[A-Za-z0-9_]+"), lambda m: "packer-shell" + "X" * (len(m.group(0)) - 12)),
    (re.compile(r"kiln-docker-[A-Za-z0-9_]+"), lambda m: "kiln-docker-" + "X" * (len(m.group(0)) - 12)),
    (re.compile(r"kiln-cfg-[A-Za-z0-9_]{8}"), lambda m: "kiln-cfg-XXXXXXXX"),
    (re.compile(r"kiln-[0-9a-f]{12}-\d+-\d+"), lambda m: "kiln-" + "0" * (len(m.group(0)) - 5)),
    # ls -l dates
    (
        re.compile(r"(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)(&#160;| )[ \d&#;]{1,6}\d(&#160;| )\d\d:\d\d"),
        lambda m: "Jan" + m.group(0)[3:-5] + "00:00",
    ),
]


def normalise(svg: str) -> str:
    """What differs between runs of the same scenario: Rich's ids, container and image ids,
    the run's private temp directory, temp names, file dates. Replacements keep the length,
    so the layout stays as it was."""
    for pattern, repl in _SAME_LENGTH:
        svg = pattern.sub(repl, svg)
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
            svg = re.sub(r"/tmp/k[a-z0-9_]{8}\b", "/home/me/build", svg)
            path = out / f"{name}.svg"
            path.write_text(svg, encoding="utf-8", newline="\n")
            print(f"wrote {path}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
