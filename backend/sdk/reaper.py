"""The reaper interface: how ``kiln cleanup`` removes what a killed run left behind.

A step records a resource in the ledger (``ctx.ledger.record(kind, ident, data=...)``)
before creating it. A plugin that records a kind of its own declares, for each kind, a
reaper: a function taking the ``LedgerEntry`` and removing the resource (an absent one is
not an error). It is declared as an entry point in the group ``kiln.plugins``, named
``reaper.<kind>``::

    [project.entry-points."kiln.plugins"]
    "builder.my-cloud" = "my_plugin.builder:MyCloudBuilder"
    "reaper.my-cloud-vm" = "my_plugin.builder:reap_vm"
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable


@dataclass
class LedgerEntry:
    """One resource a run recorded and has not released."""

    id: int
    run_id: str
    pid: int
    build: str
    kind: str
    ident: str
    data: dict[str, Any]
    created: float
    kept: bool


Reaper = Callable[[LedgerEntry], None]
