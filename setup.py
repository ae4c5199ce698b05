"""The installed distribution exposes one import name, ``kiln``: backend/ -> kiln.backend,
tui/ -> kiln.tui (metadata is in pyproject.toml)."""

from setuptools import find_packages, setup

TOPS = ("backend", "tui")

setup(
    packages=[f"kiln.{p}" for p in find_packages(include=[f"{t}{s}" for t in TOPS for s in ("", ".*")])],
    package_dir={f"kiln.{t}": t for t in TOPS},
    package_data={"kiln.tui": ["*.tcss"], "kiln.backend.engine": ["events.schema.json"]},
)
