"""Fixtures for the dashboard tests: a project directory, a config directory, an app factory
(fake clock, private config). Helpers live in tui_helpers.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import pytest

pytest.importorskip("textual")

from kiln.tui.app import KilnApp, make_app  # noqa: E402
from kiln.tui.clock import FakeClock  # noqa: E402


@pytest.fixture
def proj(tmp_path: Path) -> Path:
    d = tmp_path / "proj"
    d.mkdir()
    return d


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    d = tmp_path / "config"
    d.mkdir()
    return d


@pytest.fixture
def app_factory(config_dir: Path) -> Callable[..., KilnApp]:
    def factory(target: Path, **kw: Any) -> KilnApp:
        kw.setdefault("clock", FakeClock())
        kw.setdefault("config_dir", config_dir)
        return make_app(str(target), **kw)

    return factory
