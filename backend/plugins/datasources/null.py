"""The ``null`` data source: gives back its ``input`` as ``output`` (for trying data flows)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ...sdk.config import opt
from ...sdk.plugin import DataSource


@dataclass
class NullDataConfig:
    input: str = opt("", required=True, doc="the value to give back")


class NullDataSource(DataSource):
    Config = NullDataConfig
    outputs = ("output",)

    def __init__(self, config: NullDataConfig):
        self.config = config

    def execute(self, add_secret) -> dict[str, Any]:
        return {"output": self.config.input}
