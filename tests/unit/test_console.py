"""The console renderer: what `kiln build` prints for the engine's events."""

from __future__ import annotations

import io
import re

import pytest
from kiln.backend.engine import console as console_mod
from kiln.backend.engine.console import ConsoleRenderer, Writer
from kiln.backend.engine.events import Event


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def render(events: list[Event], **options) -> str:
    out = io.StringIO()
    writer = Writer(out)
    renderer = ConsoleRenderer(writer, **options)
    for ev in events:
        renderer(ev)
    assert writer.drain(30)  # the console is written by a thread of its own
    return out.getvalue()


def progress(message: str) -> Event:
    return Event("progress", {"build": "docker", "stage": 3, "message": message,
                              "current": None, "total": None})


def test_short_progress_prints_nothing_long_progress_prints_every_5_seconds(monkeypatch):
    """Packer prints no progress lines: "Exporting the container" appears once, and only a
    step that reports progress for more than 5 s gets heartbeat lines."""
    clock = Clock()
    monkeypatch.setattr(console_mod.time, "monotonic", clock)
    out = io.StringIO()
    writer = Writer(out)
    renderer = ConsoleRenderer(writer, color=False)
    say = Event("output", {"build": "docker", "stage": 3, "stream": "ui",
                           "lines": ["Exporting the container"]})
    renderer(say)
    renderer(progress("Exporting the container"))
    clock.now += 2
    renderer(progress("Exported 10 MiB"))
    assert writer.drain(30)
    assert out.getvalue() == "==> docker: Exporting the container\n"
    clock.now += 4
    renderer(progress("Exported 30 MiB"))
    renderer(progress("Exported 31 MiB"))  # within 5 s of the last line
    clock.now += 5
    renderer(progress("Exported 60 MiB"))
    assert writer.drain(30)
    assert out.getvalue().splitlines()[1:] == ["==> docker: Exported 30 MiB",
                                               "==> docker: Exported 60 MiB"]


@pytest.mark.parametrize("stream,expected", [
    ("ui", "==> docker: Image ID: x\n"),
    ("stdout", "    docker: Image ID: x\n"),
])
def test_step_lines_and_message_lines(stream, expected):
    ev = Event("output", {"build": "docker", "stage": 1, "stream": stream,
                          "lines": ["Image ID: x"]})
    assert render([ev], color=False) == expected


def started(*builds: str) -> Event:
    return Event("run.started", {"builds": list(builds)})


@pytest.mark.parametrize("color,env,expected", [
    (True, {}, "\x1b[1;32ma: output will be in this color.\x1b[0m\n\n"),
    (False, {}, ""),
    (True, {"PACKER_NO_COLOR": "1"}, "a: output will be in this color.\n\n"),
    (True, {"NO_COLOR": "1"}, "a: output will be in this color.\n\n"),
    (True, {"NO_COLOR": ""}, "\x1b[1;32ma: output will be in this color.\x1b[0m\n\n"),
])
def test_colour_block(color, env, expected, monkeypatch):
    monkeypatch.delenv("PACKER_NO_COLOR", raising=False)
    monkeypatch.delenv("NO_COLOR", raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert render([started("a")], color=color) == expected
    assert render([started()], color=color) == ""  # no build: no block, no blank line
    assert render([started("a")], color=color, debug=True).startswith(
        "Debug mode enabled. Builds will not be parallelized.\n")


@pytest.mark.parametrize("machine,expected", [
    (False, "    null: a\n    null:\n"),
    (True, ",,ui,message,    null: a\n,,ui,message,    null:\n"),
])
def test_an_empty_output_line_has_no_space_after_the_colon(machine, expected):
    ev = Event("output", {"build": "null", "stage": 1, "stream": "stdout", "lines": ["a", ""]})
    out = render([ev], color=False, machine=machine)
    assert re.sub(r"(?m)^\d+", "", out) == expected
