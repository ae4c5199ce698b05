"""Helpers for driving the real dashboard against the real engine (null/file builders,
shell-local provisioners): templates written to tmp_path, polling waits, rendered rows."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Callable

from kiln.tui.app import KilnApp

SIZE = (140, 40)
WIDE = (200, 50)  # every column of every table shows


def write_template(
    path: Path,
    builders: list[dict],
    provisioners: list[dict] | None = None,
    post_processors: list | None = None,
) -> Path:
    """A JSON template, one key per line (so file:line locations are predictable)."""
    data: dict[str, Any] = {"builders": builders}
    if provisioners is not None:
        data["provisioners"] = provisioners
    if post_processors is not None:
        data["post-processors"] = post_processors
    path.write_text(json.dumps(data, indent=2) + "\n")
    return path


def null_builder(name: str = "box", communicator: str = "none") -> dict:
    return {"type": "null", "name": name, "communicator": communicator}


def shell(*lines: str) -> dict:
    return {"type": "shell-local", "inline": list(lines)}


async def wait_for(pilot, cond: Callable[[], Any], timeout: float = 20.0, what: str = "") -> Any:
    """Poll ``cond`` (letting the app run) until it is truthy."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or cond}")
        await pilot.pause(0.05)


async def ready(pilot, app: KilnApp) -> None:
    """Templates found and validated."""
    await wait_for(
        pilot,
        lambda: (
            app.templates.entries and all(e.status != "validating" for e in app.templates.entries)
        ),
        what="templates validated",
    )
    await pilot.pause()


async def select_template(pilot, app: KilnApp, name: str, build: str | None = None) -> None:
    """Put the Templates cursor on a template (or one of its builders)."""
    tree = app.templates.tree_widget
    tree.focus()
    for line in range(tree.last_line + 1):
        node = tree.get_node_at_line(line)
        ref = node.data if node is not None else None
        if ref is None:
            continue
        entry = app.templates.entry(ref.path)
        if entry is None or entry.name != name:
            continue
        if (build is None and ref.kind == "template") or (build is not None and ref.build == build):
            tree.move_cursor_to_line(line)
            await pilot.pause()
            return
    raise AssertionError(f"{name}/{build} is not in the templates tree")


def only_build(app: KilnApp):
    assert len(app.builds) == 1, list(app.builds)
    return next(iter(app.builds.values()))


async def wait_status(pilot, app: KilnApp, statuses: tuple[str, ...], timeout: float = 30.0):
    await wait_for(
        pilot,
        lambda: app.builds and all(b.status in statuses for b in app.builds.values()),
        timeout,
        what=f"builds {statuses}: {[(b.name, b.status) for b in app.builds.values()]}",
    )
    await pilot.pause(0.1)
    return list(app.builds.values())


def view_text(app: KilnApp) -> list[str]:
    """What the output view shows, row by row, as rendered (gutter included)."""
    view = app.view
    out = []
    for row in range(view.row_count):
        a = view.abs_at(row)
        if a < 0:
            out.append("┄")
            continue
        out.append(view._render_abs(a, view.rich_style).text)
    return out


def docker_builder(labels: dict[str, str], name: str = "", commit: bool = True) -> dict:
    """A docker builder on the offline base image; its container carries the test labels so a
    session that dies still has it removed (conftest's docker_client fixture)."""
    run = ["-d", "-i", "-t"]
    for k, v in labels.items():
        run += ["--label", f"{k}={v}"]
    run += ["--entrypoint=/bin/sh", "--", "{{.Image}}"]
    b: dict[str, Any] = {
        "type": "docker",
        "image": "kiln/busybox:latest",
        "pull": False,
        "commit": commit,
        "run_command": run,
    }
    if not commit:
        b["discard"] = True
    if name:
        b["name"] = name
    return b


def docker_shell(*lines: str) -> dict:
    return {"type": "shell", "inline": list(lines)}


def kiln_cli(*args: str, cwd: Path | None = None, timeout: float = 60):
    """``kiln ARGS`` as a subprocess (as a user runs it in another terminal)."""
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    env = dict(os.environ)
    env["PYTHONPATH"] = str(root) + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run(
        [sys.executable, "-m", "kiln.backend.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def summary_text(app: KilnApp) -> str:
    return str(app.output.query_one("#summary").render())


def screen_lines(app: KilnApp) -> list[str]:
    """The whole screen as text, one string per terminal row, each character in its column
    (from an SVG export: what a user sees)."""
    import html
    import re

    svg = app.export_screenshot()
    width, height = app.size
    grid = [[" "] * width for _ in range(height)]
    cell = 12.2  # Rich's SVG: the width of one terminal column
    for x, row, text in re.findall(
        r'<text class="[^"]*-r\d+" x="([\d.]+)" y="[\d.]+"[^>]*clip-path="url\(#[^)]*-line-(\d+)\)">'
        r"([^<]*)</text>",
        svg,
    ):
        r, col = int(row), round(float(x) / cell)
        for i, ch in enumerate(html.unescape(text).replace("\xa0", " ")):
            if r < height and col + i < width:
                grid[r][col + i] = ch
    return ["".join(line) for line in grid]


def pane_text(app: KilnApp, widget) -> str:
    """What a pane shows inside its border, its rows joined (wrapped text reads on)."""
    r = widget.region
    rows = screen_lines(app)[r.y + 1 : r.bottom - 1]
    return "\n".join(row[r.x + 1 : r.right - 1].rstrip() for row in rows)
