"""The errors a plugin raises (and the engine tells apart)."""

from __future__ import annotations


class StepError(Exception):
    """A step, provisioner or post-processor failed for a reason the user can act on."""


class Cancelled(Exception):
    """The run was cancelled (Ctrl-C, SIGTERM, the dashboard, or a timeout)."""
