"""Load any template (JSON, YAML, HCL2 file or directory) into the Template model."""

from __future__ import annotations

import os
from typing import Any

from . import gcpause, limits
from .model import Template
from .plugins import DataSourceRunner, PluginCatalog


def load_template(path: str, options: Any, syntax_only: bool = False,
                  evaluate_data: bool = False, catalog: PluginCatalog | None = None,
                  run_data: DataSourceRunner | None = None) -> Template:
    """Load a template with the run's variables (``options.vars``, ``options.var_files``).

    ``evaluate_data``: run HCL2 data sources with ``run_data`` (a build does; validating
    does not). ``catalog``: the plugins' configuration schemas (see :mod:`.plugins`).
    Whatever the template says, the work is bounded (:mod:`limits`)."""
    with limits.scope(), gcpause.paused():
        if os.path.isdir(path) or path.endswith((".pkr.hcl", ".pkr.json")):
            from .hcl2.loader import load_hcl2

            return load_hcl2(path, options.vars, options.var_files, syntax_only=syntax_only,
                             evaluate_data=evaluate_data, catalog=catalog, run_data=run_data)
        from .legacy import load_legacy

        return load_legacy(path, options.vars, options.var_files, syntax_only=syntax_only)
