"""Plugin lookup by Packer type name, through the ``kiln.plugins`` entry points.

Kiln's own builders, provisioners, post-processors, data sources and reapers are declared
there like a third-party package's (pyproject.toml); modules are imported only when used.
"""

from __future__ import annotations

import importlib
import os
import sys
import threading
from typing import Any, Callable, Iterable

from ..sdk.errors import StepError
from ..template.errors import did_you_mean
from ..template.plugins import DataSourceFailed, PluginUnavailable

#: the entry-point group every plugin (Kiln's own included) is declared in; an entry's name
#: is "<kind>.<type name>": builder.docker, post-processor.docker-tag, data-source.http,
#: reaper.docker-container
GROUP = "kiln.plugins"
KINDS = {"builder": "builder", "provisioner": "provisioner", "post-processor": "post-processor",
         "data-source": "data source", "reaper": "reaper",
         # a function returning the template functions a plugin adds (a template.funcs.PluginFuncs)
         "template-funcs": "template functions",
         # Kiln's own helpers for debug runs (the stand-in builder): not template types
         "debug": "debug"}
#: Kiln's own distribution: its entry points are read first and win over a same-named one
DIST = "kiln"


# Packer plugins Kiln knows by name but does not implement: a clear message
# instead of "unknown type".
KNOWN_ELSEWHERE = {
    "builder": (
        "amazon-ebssurrogate amazon-ebsvolume azure-arm "
        "googlecompute qemu virtualbox-iso virtualbox-ovf vmware-iso vmware-vmx "
        "parallels-iso hyperv-iso vagrant lxd lxc digitalocean hcloud openstack oracle-oci "
        "proxmox proxmox-iso vsphere-iso vsphere-clone"
    ).split(),
    "provisioner": (
        "powershell windows-restart windows-shell chef-solo chef-client puppet-masterless "
        "puppet-server salt-masterless converge inspec goss"
    ).split(),
    "post-processor": (
        "vagrant vagrant-cloud atlas amazon-import googlecompute-export vsphere vsphere-template "
        "ucloud-import digitalocean-import"
    ).split(),
    "data source": (
        "hcp-packer-iteration hcp-packer-image "
        "hcp-packer-version hcp-packer-artifact git-commit git-repository git-tree sshkey"
    ).split(),
}

_cache: dict[tuple[str, str], Any] = {}
_lock = threading.Lock()
_builtin: dict[str, dict[str, str]] | None = None
_everything: dict[str, dict[str, str]] | None = None


class PluginLoadError(PluginUnavailable):
    """A plugin module failed to import (a missing optional dependency, say)."""


def _table(eps: Iterable[Any], into: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
    for ep in eps:
        prefix, _, type_name = ep.name.partition(".")
        kind = KINDS.get(prefix)
        if kind is not None and type_name:
            into.setdefault(kind, {}).setdefault(type_name, ep.value)
    return into


def _own_entry_points() -> list[Any]:
    """Kiln's own kiln.plugins entries, read from its dist-info's entry_points.txt.

    importlib.metadata costs more to import than a whole ``kiln validate`` takes to load
    the rest, so Kiln's own table is read directly; other packages' entries are read
    through importlib.metadata only when a type is not Kiln's own."""
    prefix = DIST + "-"
    for base in sys.path:
        try:
            names = os.listdir(base or ".")
        except OSError:
            continue
        for name in names:
            if name.startswith(prefix) and name.endswith(".dist-info") \
                    and name[len(prefix):len(prefix) + 1].isdigit():
                try:
                    with open(os.path.join(base or ".", name, "entry_points.txt"),
                              encoding="utf-8") as f:
                        return _parse_entry_points(f.read())
                except OSError:
                    return []
    return []


def _parse_entry_points(text: str) -> list[Any]:
    out = []
    section = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1].strip()
        elif section == GROUP and "=" in line:
            name, _, value = line.partition("=")
            out.append(_EntryPoint(name.strip(), value.strip()))
    return out


class _EntryPoint:
    __slots__ = ("name", "value")

    def __init__(self, name: str, value: str):
        self.name, self.value = name, value


def _builtins() -> dict[str, dict[str, str]]:
    """Kiln's own plugins: one distribution's entry points (cheap: no scan of the others)."""
    global _builtin
    if _builtin is None:
        _builtin = _table(_own_entry_points(), {kind: {} for kind in KINDS.values()})
    return _builtin


def plugins() -> dict[str, dict[str, str]]:
    """kind -> type name -> "module:attr", Kiln's own and every installed package's."""
    global _everything
    with _lock:
        if _everything is None:
            from importlib import metadata

            table = {kind: dict(types) for kind, types in _builtins().items()}
            _everything = _table(metadata.entry_points(group=GROUP), table)
            if not _everything["builder"]:
                raise PluginLoadError(f"no Kiln plugins are installed (entry-point group {GROUP} "
                                      "is empty): reinstall Kiln with pip install")
        return _everything


def _target(kind: str, type_name: str) -> str | None:
    # Kiln's own first: a build of a template that names only built-ins reads no other package
    target = _builtins().get(kind, {}).get(type_name)
    return target if target is not None else plugins()[kind].get(type_name)


def names(kind: str) -> list[str]:
    return sorted(plugins()[kind])


def known(kind: str, type_name: str) -> bool:
    return _target(kind, type_name) is not None


def lookup(kind: str, type_name: str) -> Any | None:
    """The plugin class for ``type_name``, or None when no installed plugin has it."""
    key = (kind, type_name)
    if key in _cache:
        return _cache[key]
    target = _target(kind, type_name)
    if target is None:
        return None
    module, _, attr = target.partition(":")
    try:
        plugin = importlib.import_module(module)
        for part in attr.split("."):
            plugin = getattr(plugin, part)
    except (ImportError, AttributeError) as e:
        raise PluginLoadError(f'the {kind} "{type_name}" could not be loaded: {e}') from e
    _cache[key] = plugin
    return plugin


def reaper(kind: str) -> Callable[[Any], None] | None:
    """The function ``kiln cleanup`` calls for a resource of ``kind`` (a plugin declares it)."""
    return lookup("reaper", kind)


def unknown_message(kind: str, type_name: str) -> str:
    if type_name in KNOWN_ELSEWHERE.get(kind, ()):
        return (
            f'the {kind} type "{type_name}" is a Packer plugin that Kiln does not implement; '
            f"Kiln's {kind}s are: {', '.join(names(kind))}"
        )
    return f'unknown {kind} type "{type_name}"{did_you_mean(type_name, plugins()[kind])}; ' \
        f"Kiln's {kind}s are: {', '.join(names(kind))}"


class Catalog:
    """The registry as the template loader sees it: plugin classes (for their config
    schemas) by kind and type name, and the data-source runner."""

    def names(self, kind: str) -> list[str]:
        return names(kind)

    def lookup(self, kind: str, type_name: str) -> Any | None:
        return lookup(kind, type_name)

    def unknown_message(self, kind: str, type_name: str) -> str:
        return unknown_message(kind, type_name)

    def template_funcs(self) -> Any:
        """Kiln's own plugins' template functions, merged (read from Kiln's own entry points
        so that a load imports no importlib.metadata); merged once, as every render asks."""
        global _template_funcs
        if _template_funcs is not None:
            return _template_funcs
        from ..template.funcs import PluginFuncs

        stores: dict[str, str] = {}
        build: set[str] = set()
        for name in sorted(_builtins().get("template functions", {})):
            funcs = lookup("template functions", name)()
            stores.update(funcs.secret_stores)
            build.update(funcs.build_funcs)
        _template_funcs = PluginFuncs(secret_stores=stores, build_funcs=frozenset(build))
        return _template_funcs


_template_funcs: Any = None


def run_data_source(plugin_class: Any, config: Any,
                    add_secret: Callable[[str], None]) -> tuple[dict[str, Any], list[str]]:
    """Run one data source; its outputs and warnings. A failure the user can act on is a
    DataSourceFailed for the loader to report where the data block is."""
    plugin = plugin_class(config)
    try:
        outputs = plugin.execute(add_secret)
    except StepError as e:
        raise DataSourceFailed(str(e)) from None
    return outputs, list(getattr(plugin, "warnings", ()))


CATALOG = Catalog()


def load_template(path: str, options: Any, syntax_only: bool = False,
                  evaluate_data: bool = False) -> Any:
    """The template loader, handed this registry as its plugin catalog and data-source runner."""
    from ..template.loader import load_template as load

    return load(path, options, syntax_only=syntax_only, evaluate_data=evaluate_data,
                catalog=CATALOG, run_data=run_data_source)
