"""The ``kiln`` console script and ``python -m kiln.backend.cli`` (see :mod:`.commands`)."""

from __future__ import annotations

import sys

from .commands import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
