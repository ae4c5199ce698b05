"""The module layout stays as ARCHITECTURE.md draws it: no import cycle between modules (the
layers between packages are import-linter's contracts in pyproject.toml, run by .ci/run), and
plugins are found only through the kiln.plugins entry points."""

from __future__ import annotations

import sys
import tomllib
from importlib import metadata
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parents[2]


def cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan)."""
    modules = sorted(graph.modules)
    edges = {m: sorted(graph.find_modules_directly_imported_by(m)) for m in modules}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    old = sys.getrecursionlimit()
    sys.setrecursionlimit(max(old, 10_000))
    try:
        for m in modules:
            if m not in index:
                visit(m)
    finally:
        sys.setrecursionlimit(old)
    return found


def test_no_import_cycle_between_kiln_modules():
    graph = grimp.build_graph("kiln.backend", "kiln.tui")
    assert len(graph.modules) > 100  # the whole of Kiln was read
    assert cycles(graph) == []


def test_every_builtin_plugin_is_an_entry_point_that_loads():
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"]["kiln.plugins"]
    installed = {ep.name: ep.value for ep in metadata.distribution("kiln").entry_points.select(group="kiln.plugins")}
    assert installed == declared, "reinstall (pip install -e .): the entry points changed"
    for name, value in declared.items():
        module, _, attr = value.partition(":")
        assert module.startswith("kiln.backend.plugins."), name
        loaded = metadata.EntryPoint(name, value, "kiln.plugins").load()
        assert loaded is not None and attr.split(".")[-1] == loaded.__name__, name


def test_every_name_the_facade_offers_resolves():
    from kiln.backend import api

    for name in api.LAZY:
        assert getattr(api, name) is not None, name


def test_validating_a_template_of_builtins_reads_no_other_package_metadata():
    # importlib.metadata (and its scan of every installed package) costs more than the rest
    # of kiln validate's start-up; Kiln's own entry points are read from its dist-info alone
    import subprocess

    template = ROOT / "tests" / "corpus" / "validate" / "ok_multi_builder.json"
    probe = ("import sys\nfrom kiln.backend.cli import main\ncode = main(['validate', sys.argv[1]])\n"
             "print('metadata' if 'importlib.metadata' in sys.modules else 'none', code)")
    out = subprocess.run([sys.executable, "-c", probe, str(template)], capture_output=True,
                         text=True, cwd=template.parent, timeout=60).stdout.split()
    assert out[-2:] == ["none", "0"], out
