"""Kiln: build machine images from Packer-compatible templates."""

__version__ = "0.1.0"


def _template_plugins():
    # the composition root: the template loader's default plugin catalog is the registry
    from .engine import registry

    return registry.CATALOG, registry.run_data_source


def _install() -> None:
    from .template import plugins

    plugins.install_defaults(_template_plugins)


_install()
