"""Prepare builds: decode every plugin's configuration and run its checks.

This is what ``kiln validate`` does after loading a template, and what
``kiln build`` does before starting anything: every problem in every selected
build is collected and reported at once, each with its location.
"""

from __future__ import annotations

import fnmatch
import os
from dataclasses import dataclass, field
from typing import Any

from ..sdk.plugin import PrepareContext
from ..template import funcs as F
from ..template import gcpause, gotmpl, limits
from ..template.decode import ConfigProblems, Decoder, config_fields, locs_of, secret_values
from ..template.errors import Problem
from ..template.model import BuildDef, PostProcessorDef, ProvisionerDef, Template
from ..template.source import Loc, Node
from . import registry
from .registry import PluginLoadError

#: data every builder gives provisioners (Packer's common generated keys)
COMMON_GENERATED = (
    "ID", "Host", "Port", "User", "Password", "ConnType", "PackerRunUUID", "PackerHTTPIP",
    "PackerHTTPPort", "PackerHTTPAddr", "SSHPublicKey", "SSHPrivateKey", "SSHPrivateKeyFile",
    "SSHAgentAuth", "WinRMPassword",
)


@dataclass
class Options:
    """Run options as the CLI and the dashboard set them."""

    only: tuple[str, ...] = ()
    except_: tuple[str, ...] = ()
    force: bool = False
    on_error: str = "cleanup"
    debug: bool = False
    parallel_builds: int = 0
    timestamp_ui: bool = False
    color: bool = True
    machine_readable: bool = False
    vars: dict[str, str] = field(default_factory=dict)
    var_files: tuple[str, ...] = ()
    state_dir: str | None = None  # history + logs; default: .kiln next to the template
    workdir: str | None = None  # where shell-local commands run (a debug run's scratch dir)
    events: str | None = None
    #: the provisioner cache of docker builds ($KILN_CACHE=false turns it off by default)
    cache: bool = field(default_factory=lambda: os.environ.get("KILN_CACHE", "").strip().lower()
                        not in ("0", "false", "no", "off"))
    #: kiln dev: called with (runner, ExitStack) when a build's provisioners are done; the
    #: build stops there (no commit, no post-processors) and the callee removes the machine
    dev: Any = None
    rebuild_from: str = ""  # -rebuild-from=N|NAME: run from this provisioner on, whatever is cached
    preflight: bool = True  # amazon builds check their IAM permissions first


@dataclass
class PreparedProvisioner:
    definition: ProvisionerDef
    plugin: Any
    max_retries: int = 0

    @property
    def label(self) -> str:
        d = self.definition
        desc = ""
        try:
            desc = self.plugin.describe()
        except Exception:  # a label is never worth a crash
            desc = ""
        return f"{d.label}: {desc}" if desc else d.label


@dataclass
class PreparedPostProcessor:
    definition: PostProcessorDef
    plugin: Any


@dataclass
class PreparedBuild:
    definition: BuildDef
    builder: Any
    provisioners: list[PreparedProvisioner]
    error_cleanup: PreparedProvisioner | None
    chains: list[list[PreparedPostProcessor]]
    warnings: list[str]
    secrets: list[str]

    @property
    def name(self) -> str:
        return self.definition.name

    @property
    def type(self) -> str:
        return self.definition.type


def select_builds(template: Template, only: tuple[str, ...], except_: tuple[str, ...]) -> list[BuildDef]:
    """Builds after ``-only``/``-except`` (exact names for JSON, globs for HCL2)."""

    def match(name: str, patterns: tuple[str, ...]) -> bool:
        if template.format == "hcl2":
            return any(fnmatch.fnmatchcase(name, p) for p in patterns)
        return name in patterns

    out = []
    for b in template.builds:
        if only and not match(b.name, only):
            continue
        if except_ and match(b.name, except_):
            continue
        out.append(b)
    return out


class Preparer:
    def __init__(self, template: Template, options: Options):
        self.template = template
        self.options = options
        self.problems: list[Problem] = []
        self.warnings: list[str] = []
        self._directory = template.directory
        # one function table and decoder per build and data keys: they are the same for
        # every provisioner of a build (a template may have hundreds of thousands)
        self._envs: dict[tuple[int, tuple[str, ...]], tuple[dict, Decoder]] = {}

    def _plugin_env(self, b: BuildDef, data_keys: tuple[str, ...]) -> tuple[dict, Decoder]:
        key = (id(b), tuple(data_keys))
        env = self._envs.get(key)
        if env is None:
            funcs = self._funcs(b, None, data_keys)
            env = (funcs, self._decoder(funcs, {k: "{{." + k + "}}" for k in data_keys}))
            self._envs[key] = env
        return env

    # -- rendering ------------------------------------------------------------------
    def _funcs(self, b: BuildDef, extra: dict[str, Any] | None, data_keys: tuple[str, ...] | None) -> dict:
        ctx = F.FuncContext(
            user_vars=self.template.user_vars,
            template_path=self.template.path,
            build_name=b.build_name,
            build_type=b.type,
            extra=dict(extra or {}),
            build_data_keys=data_keys,
            hcl2=self.template.format == "hcl2",
        )
        return F.packer_funcs(ctx)

    def _decoder(self, funcs: dict, data: dict | None) -> Decoder:
        def render(text: str, loc: Loc) -> str:
            return gotmpl.render(text, funcs, data)

        hcl2 = self.template.format == "hcl2"
        known = (set(funcs) | set(F.FUNCTION_NAMES)) - (set(F.HCL2_INSTEAD) if hcl2 else set())
        json_only = {f'function "{n}" not defined': F.json_only_message(n)
                     for n in F.HCL2_INSTEAD} if hcl2 else {}

        def check_deferred(text: str, loc: Loc) -> list[str]:
            return [json_only.get(m, m) for m in gotmpl.check(text, known)]

        d = Decoder(render=render, strict_lists=self.template.format == "hcl2")
        d.check_deferred = check_deferred
        return d

    # -- builds -------------------------------------------------------------------
    def prepare(self, builds: list[BuildDef]) -> list[PreparedBuild]:
        out = []
        # every field rendered for every build counts against one budget; see gcpause on GC
        with limits.scope(), gcpause.paused():
            for b in builds:
                pb = self.prepare_build(b)
                if pb is not None:
                    out.append(pb)
        if self.problems:  # a problem shared by several builds is reported once
            from ..template.errors import TemplateError

            self.problems = TemplateError(self.problems).problems
        return out

    def prepare_build(self, b: BuildDef) -> PreparedBuild | None:
        before = len(self.problems)
        cls = self._lookup("builder", b.type, b.loc)
        if cls is None:
            return None
        funcs = self._funcs(b, cls.template_funcs(), None)
        dec = self._decoder(funcs, None)
        config = dec.decode(cls.Config, b.config)
        self.problems += dec.problems
        builder = None
        warnings: list[str] = []
        secrets: list[str] = []
        if config is not None and len(self.problems) == before:
            builder = cls(config)
            warnings += self._plugin_prepare(builder, b, config, b.config.loc)
            secrets += secret_values(config)
        data_keys = COMMON_GENERATED + tuple(getattr(cls, "generated_keys", ()))
        provs = []
        for p in b.provisioners:
            pp = self.prepare_provisioner(b, p, data_keys)
            if pp is not None:
                provs.append(pp)
                secrets += secret_values(pp.plugin.config)
        cleanup = None
        if b.error_cleanup is not None:
            cleanup = self.prepare_provisioner(b, b.error_cleanup, data_keys)
        chains = []
        for chain in b.post_processors:
            prepared_chain = []
            for ppdef in chain:
                # as Packer, in this order: a post-processor whose only/except leave this
                # build out is not part of its chain at all (and is not prepared for it);
                # then -except NAME drops this post-processor and the rest of its chain
                if not ppdef.applies_to(b.match_names):
                    continue
                if self.options.except_ and self._except_pp(ppdef):
                    break
                ppp = self.prepare_post_processor(b, ppdef, data_keys)
                if ppp is not None:
                    prepared_chain.append(ppp)
            if prepared_chain:
                chains.append(prepared_chain)
        self.warnings += [f'{b.name}: {w}' for w in warnings]
        if len(self.problems) != before or builder is None:
            return None
        return PreparedBuild(b, builder, provs, cleanup, chains, warnings, secrets)

    def _except_pp(self, ppdef: PostProcessorDef) -> bool:
        if self.template.format == "hcl2":
            return any(fnmatch.fnmatchcase(ppdef.name, p) for p in self.options.except_)
        return ppdef.name in self.options.except_

    def _lookup(self, kind: str, type_name: str, loc: Loc) -> Any | None:
        try:
            cls = registry.lookup(kind, type_name)
        except PluginLoadError as e:
            self.problems.append(Problem(loc, str(e)))
            return None
        if cls is None:
            self.problems.append(Problem(loc.at(_join(loc.path, "type")), registry.unknown_message(kind, type_name)))
        return cls

    def _prepare_plugin(self, kind: str, b: BuildDef, type_name: str, nodes: list[Node], loc: Loc,
                        data_keys) -> tuple[Any, dict] | None:
        """Decode a provisioner's or post-processor's config and run its checks."""
        cls = self._lookup(kind, type_name, loc)
        if cls is None:
            return None
        funcs, dec = self._plugin_env(b, data_keys)
        dec.problems = []
        before = len(self.problems)
        config = dec.decode(cls.Config, nodes, loc)
        self.problems += dec.problems
        if config is None or len(self.problems) != before:
            return None
        plugin = cls(config)
        self.warnings += [f"{b.name}: {w}" for w in self._plugin_prepare(plugin, b, config, loc)]
        if len(self.problems) != before:
            return None
        return plugin, funcs

    def prepare_provisioner(self, b: BuildDef, p: ProvisionerDef, data_keys) -> PreparedProvisioner | None:
        nodes = [p.config] + [p.override[n] for n in sorted(b.match_names) if n in p.override]
        done = self._prepare_plugin("provisioner", b, p.type, nodes, p.loc, data_keys)
        if done is None:
            return None
        plugin, funcs = done
        retries = p.max_retries
        if isinstance(retries, str):
            try:
                retries = int(gotmpl.render(retries, funcs, None).strip())
            except (ValueError, gotmpl.TemplateSyntaxError, gotmpl.RenderError) as e:
                self.problems.append(Problem(p.loc.at(p.loc.path + ".max_retries"),
                                             f"max_retries must be a whole number: {e}"))
                return None
        return PreparedProvisioner(p, plugin, retries)

    def prepare_post_processor(self, b: BuildDef, p: PostProcessorDef, data_keys) -> PreparedPostProcessor | None:
        done = self._prepare_plugin("post-processor", b, p.type, [p.config], p.loc, data_keys)
        return None if done is None else PreparedPostProcessor(p, done[0])

    def _plugin_prepare(self, plugin: Any, b: BuildDef, config: Any, loc: Loc) -> list[str]:
        pctx = PrepareContext(self._directory, b.build_name, b.type, self.options)
        try:
            return list(plugin.prepare(pctx) or [])
        except ConfigProblems as cp:
            locs = locs_of(config)
            for key, msg in cp.problems:
                at = locs.get(key, loc)
                path = _join(loc.path, key) if key else loc.path
                self.problems.append(Problem(at.at(path), msg))
        except ValueError as e:
            self.problems.append(Problem(loc, str(e)))
        return []


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def known_keys(cls: type) -> list[str]:
    return sorted(config_fields(cls))
