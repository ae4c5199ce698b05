"""Configuration decoding for plugins: a plugin's ``Config`` is a dataclass whose fields are
declared with ``opt`` (Packer's mapstructure tags and ``Prepare`` checks, as one thing).

``opt(default, required=..., doc=..., secret=...)`` declares a field; ``Duration`` and
``Deferred`` are field types (a Go duration; a string rendered at run time);
``ConfigProblems`` is raised from the config's ``check()`` hook with every problem found at once.
"""

from __future__ import annotations

from ..template.decode import ConfigProblems, Deferred, Duration, opt, secret_values

__all__ = ["ConfigProblems", "Deferred", "Duration", "opt", "secret_values"]
