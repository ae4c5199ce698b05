"""What the template loader needs to know about plugins, handed in by its caller.

HCL2 shapes a plugin's body by its configuration's field types, checks data-block types
and runs data sources; Packer's hcl2template Parser gets the same from its PluginConfig.
The template package imports no plugin: the caller passes a ``PluginCatalog`` (plugin
classes by kind and type name, for their ``Config`` dataclasses and a data source's
``outputs``) and a ``DataSourceRunner`` to ``load_template``. A program that loads
templates without passing them installs defaults once (``install_defaults``); Kiln's
package does so for its registry.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Protocol


class PluginUnavailable(Exception):
    """A plugin exists but cannot be loaded (a missing optional dependency, say)."""


class DataSourceFailed(Exception):
    """A data source ran and failed for a reason the user can act on."""


class PluginCatalog(Protocol):
    """Plugin classes by kind ("builder", "provisioner", "post-processor", "data source")."""

    def names(self, kind: str) -> list[str]: ...

    def lookup(self, kind: str, type_name: str) -> Any | None:
        """The plugin class (None: no such plugin); raises PluginUnavailable."""

    def unknown_message(self, kind: str, type_name: str) -> str: ...

    def template_funcs(self) -> Any:
        """The template functions plugins add to legacy templates (a funcs.PluginFuncs)."""


class DataSourceRunner(Protocol):
    def __call__(self, plugin_class: Any, config: Any,
                 add_secret: Callable[[str], None]) -> tuple[dict[str, Any], list[str]]:
        """Run a data source with its decoded config: (outputs, warnings); raises
        DataSourceFailed."""


_defaults: Callable[[], tuple[PluginCatalog, DataSourceRunner]] | None = None
_current: ContextVar[tuple[PluginCatalog, DataSourceRunner] | None] = ContextVar(
    "kiln_template_plugins", default=None)


def install_defaults(provider: Callable[[], tuple[PluginCatalog, DataSourceRunner]]) -> None:
    """What a load uses when its caller passes no catalog (called once, at start-up)."""
    global _defaults
    _defaults = provider


def resolve(catalog: PluginCatalog | None,
            runner: DataSourceRunner | None) -> tuple[PluginCatalog, DataSourceRunner]:
    if catalog is not None and runner is not None:
        return catalog, runner
    outer = _current.get()
    if outer is None:
        if _defaults is None:
            raise RuntimeError("no plugin catalog: pass one to load_template or call "
                               "install_defaults first")
        outer = _defaults()
    return catalog or outer[0], runner or outer[1]


@contextmanager
def using(catalog: PluginCatalog | None = None,
          runner: DataSourceRunner | None = None) -> Iterator[tuple[PluginCatalog, DataSourceRunner]]:
    """The catalog and runner a load (and the helpers it calls) see."""
    pair = resolve(catalog, runner)
    token = _current.set(pair)
    try:
        yield pair
    finally:
        _current.reset(token)


def catalog() -> PluginCatalog:
    return resolve(None, None)[0]
