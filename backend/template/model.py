"""The typed, immutable template model the engine consumes.

JSON, YAML and HCL2 templates all load into these classes. Plugin
configuration stays as :class:`~backend.template.source.Node` trees (with
their locations) until a build prepares it with the plugin's dataclass.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Mapping

from .source import Loc, Node

EMPTY: Mapping = MappingProxyType({})


def applies(only: tuple[str, ...], except_: tuple[str, ...], build_names: frozenset[str]) -> bool:
    """A provisioner's or post-processor's only/except against a build's names."""
    if only:
        return any(n in build_names for n in only)
    if except_:
        return not any(n in build_names for n in except_)
    return True


@dataclass(frozen=True)
class Variable:
    name: str
    default: str | None
    required: bool
    sensitive: bool
    loc: Loc
    description: str = ""
    type: str = "string"


@dataclass(frozen=True)
class ProvisionerDef:
    """One provisioner block. ``index`` is its 0-based position in the template."""

    index: int
    type: str
    config: Node
    loc: Loc
    only: tuple[str, ...] = ()
    except_: tuple[str, ...] = ()
    override: Mapping[str, Node] = field(default_factory=lambda: EMPTY)
    pause_before: float = 0.0
    max_retries: int | str = 0
    timeout: float = 0.0
    name: str = ""
    continue_on_error: bool = False

    @property
    def label(self) -> str:
        return self.name or self.type

    def applies_to(self, build_names: frozenset[str]) -> bool:
        return applies(self.only, self.except_, build_names)


@dataclass(frozen=True)
class PostProcessorDef:
    chain: int
    index: int
    type: str
    name: str
    config: Node
    loc: Loc
    only: tuple[str, ...] = ()
    except_: tuple[str, ...] = ()
    keep_input_artifact: bool | None = None

    def applies_to(self, build_names: frozenset[str]) -> bool:
        return applies(self.only, self.except_, build_names)


@dataclass(frozen=True)
class BuildDef:
    """One build: a builder plus what runs after it.

    ``name`` is what ``-only``/``-except`` select and what prefixes output;
    ``build_name`` is ``{{build_name}}`` / ``packer_build_name``; ``match_names``
    are the names a provisioner's ``only``/``except`` compare against.
    """

    index: int
    name: str
    type: str
    build_name: str
    config: Node
    loc: Loc
    provisioners: tuple[ProvisionerDef, ...] = ()
    error_cleanup: ProvisionerDef | None = None
    post_processors: tuple[tuple[PostProcessorDef, ...], ...] = ()
    match_names: frozenset[str] = frozenset()
    raw_name: str = ""

    @property
    def display_name(self) -> str:
        return self.name


@dataclass(frozen=True)
class Template:
    path: str
    format: str  # "json", "yaml" or "hcl2"
    builds: tuple[BuildDef, ...]
    variables: tuple[Variable, ...] = ()
    user_vars: Mapping[str, str] = field(default_factory=lambda: EMPTY)
    sensitive_values: tuple[str, ...] = ()
    description: str = ""
    min_version: str = ""
    warnings: tuple[str, ...] = ()
    provisioners: tuple[ProvisionerDef, ...] = ()  # all, in template order (for inspect)
    source_text: str = field(default="", repr=False, compare=False)
    #: HCL2 data sources as (type, name, decoded config): what ``kiln iam policy`` reads
    data_sources: tuple[tuple[str, str, Any], ...] = field(default=(), repr=False,
                                                           compare=False)

    @property
    def directory(self) -> str:
        import os

        return self.path if os.path.isdir(self.path) else os.path.dirname(self.path)

    def build(self, name: str) -> BuildDef:
        for b in self.builds:
            if b.name == name:
                return b
        raise KeyError(name)

    def mask(self, text: str) -> str:
        for s in self.sensitive_values:
            if s:
                text = text.replace(s, "<sensitive>")
        return text
