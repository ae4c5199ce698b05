"""SVG snapshots of the main states, from the same scenarios as scripts/screenshots.py: real
docker builds of the bundled templates, at 80x24, 120x40 and 200x60.

Fake clock; Rich's random ids, container and image ids, temp names and file dates
normalised. After looking at a failure's .actual.svg, update with KILN_UPDATE_SNAPSHOTS=1.
"""

from __future__ import annotations

import difflib
import importlib.util
import os
import re
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.tui

ROOT = Path(__file__).resolve().parents[2]
SNAPSHOTS = Path(__file__).resolve().parent / "snapshots"

_spec = importlib.util.spec_from_file_location(
    "kiln_screenshots", ROOT / "scripts" / "screenshots.py"
)
shots = importlib.util.module_from_spec(_spec)
sys.modules["kiln_screenshots"] = shots  # dataclasses look their module up there
_spec.loader.exec_module(shots)


def _text_of(svg: str) -> list[str]:
    """The visible text of an SVG screenshot, line by line (for a readable diff)."""
    rows: dict[str, list[str]] = {}
    for y, text in re.findall(r'<text [^>]*y="([\d.]+)"[^>]*>([^<]*)</text>', svg):
        rows.setdefault(y, []).append(
            text.replace("&#160;", " ")
            .replace("&amp;", "&")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
        )
    return ["".join(parts) for _, parts in sorted(rows.items(), key=lambda kv: float(kv[0]))]


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(n, marks=[pytest.mark.docker] if s.docker else [])
        for n, s in shots.SCENARIOS.items()
    ],
)
async def test_snapshot(name, tmp_path, request):
    if shots.SCENARIOS[name].docker:
        request.getfixturevalue("base_image")  # the Docker engine and kiln/busybox
    svg = shots.normalise(await shots.capture(name, tmp_path))
    path = SNAPSHOTS / f"{name}.svg"
    if os.environ.get("KILN_UPDATE_SNAPSHOTS") == "1":
        SNAPSHOTS.mkdir(exist_ok=True)
        path.write_text(svg, encoding="utf-8", newline="\n")
        pytest.skip(f"updated {path}")
    assert path.exists(), f"no snapshot {path}: run with KILN_UPDATE_SNAPSHOTS=1 and look at it"
    expected = path.read_text(encoding="utf-8")
    if svg != expected:
        actual = tmp_path / f"{name}.actual.svg"
        actual.write_text(svg, encoding="utf-8")
        diff = "\n".join(
            difflib.unified_diff(
                _text_of(expected), _text_of(svg), "expected", "actual", lineterm="", n=1
            )
        )
        pytest.fail(
            f"{name} differs from {path} (actual: {actual})\n"
            f"{diff or '(same text; styles or layout differ)'}"
        )
