"""HCL2 sources and build blocks -> the Template's builds: sources, provisioners,
post-processors, only/except, and which sources and variables are used."""

from __future__ import annotations

from collections.abc import Callable
from types import MappingProxyType
from typing import Any

from ..errors import did_you_mean
from ..golang import parse_duration
from ..model import BuildDef, PostProcessorDef, ProvisionerDef
from ..source import Loc, Node
from . import syntax as S
from .common import (
    _FAILED,
    _IDENT,
    BUILD_BLOCKS,
    PP_META,
    PROVISIONER_META,
    _File,
    _join,
    _Problems,
    _Usage,
)
from .expr import (
    UNKNOWN,
    Scope,
    render_value,
)
from .schema import shape


class _Builds:
    """Part of the HCL2 loader (loader.py): its attributes are the loader's."""

    def top_source(self, f: _File, b: S.Block) -> None:
        key = f"{b.labels[0]}.{b.labels[1]}"
        for label, (line, col) in zip(b.labels, b.label_locs, strict=False):
            if not _IDENT.match(label):
                self.p.add(f.path, line, col, f'"{label}" is not a valid source label (letters, '
                           "digits, _ and -, starting with a letter)")
                return
        if key in self.sources:
            old, ofile = self.sources[key]
            self.p.add(f.path, b.line, b.col, f'source "{b.labels[0]}" "{b.labels[1]}" is defined '
                       f"twice (first in {ofile}:{old.line})")
            return
        self.sources[key] = (b, f.path)

    def top_build(self, f: _File, b: S.Block) -> None:
        self.builds.append((b, f.path))

    # -- builds ---------------------------------------------------------------------------
    def make_builds(self) -> tuple[list[BuildDef], list[ProvisionerDef]]:
        builds: list[BuildDef] = []
        all_provs: list[ProvisionerDef] = []
        names: dict[str, tuple[str, int]] = {}
        prov_offset = 0
        for _bi, (b, file) in enumerate(self.builds):
            if b.labels:
                self.label_problem(file, b, 0)
                continue
            self.check_attrs(file, b.body, ("name", "description", "sources"), "the build block",
                             BUILD_BLOCKS)
            base = self.scope()
            bname = ""
            a = b.body.attr("name")
            if a is not None:
                v = self.eval(a.expr, base, file)
                if isinstance(v, str):
                    bname = v
                    if not v or not _IDENT.match(v.replace(".", "_")):
                        self.p.add(file, a.expr.line, a.expr.col, f'"{v}" is not a valid build name '
                                   "(letters, digits, _ and -)")
                elif v not in (_FAILED, UNKNOWN):
                    self.p.add(file, a.expr.line, a.expr.col, "the build name must be a string")
            a = b.body.attr("description")
            if a is not None:
                v = self.eval(a.expr, base, file)
                if isinstance(v, str) and not self.description:
                    self.description = v
            usages = self.usages(b, file, base)
            for blk in b.body.blocks:
                if blk.type == "hcp_packer_registry":
                    self.p.warn(file, blk.line, blk.col, "hcp_packer_registry is ignored: Kiln "
                                "does not publish to HCP Packer")
            first_provs: list[ProvisionerDef] | None = None
            count = 0
            for u in usages:
                full = f"{bname}.{u.type}.{u.local_name}" if bname else f"{u.type}.{u.local_name}"
                if full in names:
                    ofile, oline = names[full]
                    self.p.add(u.file, u.line, u.col, f'the build "{full}" is defined twice (first '
                               f"in {ofile}:{oline}); give one build block a different name")
                    continue
                names[full] = (u.file, u.line)
                build = self.make_build(len(builds), full, bname, u, b, file, prov_offset)
                if build is None:
                    continue
                bd, provs = build
                builds.append(bd)
                if first_provs is None:
                    first_provs = provs
                count = max(count, len(provs))
            if first_provs:
                all_provs += first_provs
            prov_offset += count
        return builds, all_provs

    def usages(self, b: S.Block, file: str, scope: Scope) -> list[_Usage]:
        out: list[_Usage] = []
        before = len(self.p.items)
        a = b.body.attr("sources")
        if a is not None:
            v = self.eval(a.expr, scope, file)
            items = a.expr.items if isinstance(a.expr, S.TupleCons) else None
            if isinstance(v, list):
                for i, ref in enumerate(v):
                    e = items[i] if items and i < len(items) else a.expr
                    if not isinstance(ref, str):
                        self.p.add(file, e.line, e.col, 'sources must be a list of strings such '
                                   'as "source.null.example"')
                        continue
                    key = self.source_ref(ref, file, e.line, e.col)
                    if key:
                        blk, sfile = self.sources[key]
                        out.append(_Usage(blk.labels[0], blk.labels[1], blk.labels[1], blk, file,
                                          e.line, e.col))
            elif v not in (_FAILED, UNKNOWN):
                self.p.add(file, a.expr.line, a.expr.col, 'sources must be a list of strings such '
                           'as ["source.null.example"]')
        for blk in b.body.blocks:
            if blk.type != "source":
                continue
            if len(blk.labels) != 1:
                self.p.add(file, blk.line, blk.col, 'a source block inside build takes one label: '
                           'source "source.TYPE.NAME" { ... }')
                continue
            line, col = blk.label_locs[0]
            key = self.source_ref(blk.labels[0], file, line, col)
            if not key:
                continue
            src, _ = self.sources[key]
            local = src.labels[1]
            extra = []
            for item in blk.body.items:
                if isinstance(item, S.Attribute) and item.name == "name":
                    v = self.eval(item.expr, scope, file)
                    if isinstance(v, str) and _IDENT.match(v):
                        local = v
                    elif v not in (_FAILED, UNKNOWN):
                        self.p.add(file, item.expr.line, item.expr.col, "name must be a plain name "
                                   "(letters, digits, _ and -)")
                else:
                    extra.append(item)
            out.append(_Usage(src.labels[0], src.labels[1], local, src, file, blk.line, blk.col,
                              extra))
        if not out and len(self.p.items) == before:
            # Packer accepts this and builds nothing; most likely it is an oversight
            self.p.warn(file, b.line, b.col, 'the build block has no sources, so it builds '
                        'nothing: add sources = ["source.TYPE.NAME"] to build one')
        return out

    def source_ref(self, ref: str, file: str, line: int, col: int) -> str | None:
        parts = ref.split(".")
        if len(parts) == 3 and parts[0] == "source":
            parts = parts[1:]
        if len(parts) != 2 or not all(_IDENT.match(p) for p in parts):
            self.p.add(file, line, col, f'"{ref}" is not a source reference: write '
                       '"source.TYPE.NAME" (or "TYPE.NAME")')
            return None
        key = ".".join(parts)
        if key not in self.sources:
            known = sorted(self.sources)
            self.p.add(file, line, col, f'unknown source "{key}"{did_you_mean(key, known)} (known: '
                       f"{', '.join(known) or 'none'})")
            return None
        return key

    def make_build(self, index: int, full: str, bname: str, u: _Usage, b: S.Block, file: str,
                   prov_offset: int) -> tuple[BuildDef, list[ProvisionerDef]] | None:
        src, sfile = self.sources[f"{u.type}.{u.name}"]
        sscope = self.scope(source=(u.type, u.local_name))
        path = f"source.{u.type}.{u.name}"
        config = self.body_node(src.body, sscope, sfile, path, what=f'source "{u.type}" "{u.name}"')
        if u.extra:
            merged = dict(config.value)
            klocs = dict(config.key_locs or {})
            extra_body = S.Body(u.extra, u.line, u.col)
            extra_node = self.body_node(extra_body, sscope, u.file, path)
            for k, n in extra_node.items():
                if k in merged:
                    kl = extra_node.key_loc(k)
                    ol = config.key_loc(k)
                    self.p.add(kl.file, kl.line, kl.col, f'"{k}" is already set in source '
                               f'"{u.type}" "{u.name}" ({ol.file}:{ol.line}); a source block '
                               "inside build may add settings, not change them")
                    continue
                merged[k] = n
                klocs[k] = extra_node.key_loc(k)
            config = Node(merged, config.loc, klocs)
        config = shape("builder", u.type, config)
        # a source renamed in the build answers to its new name only, as in Packer
        match = frozenset({f"{u.type}.{u.local_name}"})
        provs, cleanup, chains = self.build_contents(b, file, u, bname, prov_offset)
        applies = tuple(p for p in provs if p.applies_to(match))
        bd = BuildDef(
            index=index,
            name=full,
            type=u.type,
            build_name=u.name,
            config=config,
            loc=Loc(sfile, src.line, src.col, path),
            provisioners=applies,
            error_cleanup=cleanup,
            post_processors=tuple(chains),
            match_names=match,
            raw_name=u.local_name,
        )
        return bd, provs

    def build_contents(self, b: S.Block, file: str, u: _Usage, bname: str, offset: int):
        scope = self.scope(source=(u.type, u.local_name), build=bname)
        provs: list[ProvisionerDef] = []
        cleanup: ProvisionerDef | None = None
        chains: list[tuple[PostProcessorDef, ...]] = []
        items = self.expand([i for i in b.body.items if isinstance(i, S.Block)], scope, file)
        pi = 0
        for blk in items:
            bscope = scope.child(blk.scope)
            if blk.type == "provisioner":
                p = self.provisioner(blk, bscope, file, offset + pi, f"build.provisioner[{pi}]", u)
                pi += 1
                if p is not None:
                    provs.append(p)
            elif blk.type == "error-cleanup-provisioner":
                if cleanup is not None:
                    self.p.add(file, blk.line, blk.col, "a build block may have only one "
                               "error-cleanup-provisioner")
                    continue
                cleanup = self.provisioner(blk, bscope, file, 0, "build.error-cleanup-provisioner",
                                           u, cleanup=True)
            elif blk.type == "post-processor":
                pp = self.post_processor(blk, bscope, file, len(chains), 0,
                                         f"build.post-processor[{len(chains)}]", u)
                if pp is not None:
                    chains.append((pp,))
            elif blk.type == "post-processors":
                if blk.labels:
                    self.label_problem(file, blk, 0)
                    continue
                chain = []
                inner = self.expand(blk.body.items, bscope, file)
                ci = len(chains)
                for sub in inner:
                    if isinstance(sub, S.Attribute) or sub.type != "post-processor":
                        what = sub.name if isinstance(sub, S.Attribute) else sub.type
                        self.p.add(file, sub.line, sub.col, f'a post-processors block holds only '
                                   f'post-processor blocks, found "{what}"')
                        continue
                    pp = self.post_processor(sub, bscope.child(sub.scope), file, ci, len(chain),
                                             f"build.post-processors[{ci}][{len(chain)}]", u)
                    if pp is not None:
                        chain.append(pp)
                if chain:
                    chains.append(tuple(chain))
        return provs, cleanup, chains

    def meta_names(self, a: S.Attribute | None, scope: Scope, file: str, what: str) -> tuple:
        if a is None:
            return ()
        v = self.eval(a.expr, scope, file)
        if v is _FAILED or v is UNKNOWN:
            return ()
        if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
            self.p.add(file, a.expr.line, a.expr.col, f'{a.name} must be a list of source names '
                       'such as ["null.example"]')
            return ()
        known = {f"{u.type}.{u.local_name}" for u in self._all_usage_names()}
        known |= set(self.sources)
        for x in v:
            if x not in known:
                self.p.warn(file, a.expr.line, a.expr.col, f'{what} {a.name} names "{x}", which '
                            f"is no source of any build{did_you_mean(x, known)}; names are "
                            '"TYPE.NAME"')
        return tuple(v)

    def _all_usage_names(self) -> list[_Usage]:
        cached = getattr(self, "_usage_cache", None)
        if cached is not None:
            return cached
        out = []
        quiet = _Problems(self.texts)
        saved, self.p = self.p, quiet
        try:
            for b, file in self.builds:
                out += self.usages(b, file, self.scope())
        finally:
            self.p = saved
        self._usage_cache = out
        return out

    def only_except(self, body: S.Body, scope: Scope, file: str, what: str) -> tuple:
        """The ``only`` and ``except`` names of a provisioner or post-processor block."""
        only = self.meta_names(body.attr("only"), scope, file, what)
        except_ = self.meta_names(body.attr("except"), scope, file, what)
        if only and except_:
            a = body.attr("except")
            self.p.add(file, a.line, a.col, "only one of only and except may be set")
        return only, except_

    def provisioner(self, blk: S.Block, scope: Scope, file: str, index: int, path: str,
                    u: _Usage, cleanup: bool = False) -> ProvisionerDef | None:
        if len(blk.labels) != 1:
            self.label_problem(file, blk, 1)
            return None
        ptype = blk.labels[0]
        body = blk.body
        what = f'provisioner "{ptype}"'
        only, except_ = self.only_except(body, scope, file, what)
        override: dict[str, Node] = {}
        a = body.attr("override")
        if a is not None:
            v = self.eval(a.expr, scope, file)
            if isinstance(v, dict):
                onode = self.value_node(v, a.expr, file, _join(path, "override"))
                for key, cfg in onode.items():
                    if not isinstance(cfg.value, dict):
                        self.p.add(file, cfg.loc.line, cfg.loc.col, f'override.{key} must be an '
                                   "object of settings")
                        continue
                    cfg = shape("provisioner", ptype, cfg)
                    override[key] = cfg
                    if key == u.local_name:
                        override[f"{u.type}.{u.local_name}"] = cfg
                known = {x.local_name for x in self._all_usage_names()}
                for key in v:
                    if key not in known:
                        self.p.warn(file, a.line, a.col, f'override names "{key}", which is no '
                                    f"source of any build{did_you_mean(key, known)}; override keys "
                                    "are source names")
            elif v not in (_FAILED, UNKNOWN, None):
                self.p.add(file, a.expr.line, a.expr.col, "override must be an object: "
                           "override = { SOURCE_NAME = { ... } }")
        pause = self.duration(body.attr("pause_before"), scope, file)
        timeout = self.duration(body.attr("timeout"), scope, file)
        retries: int | str = 0
        a = body.attr("max_retries")
        if a is not None:
            v = self.eval(a.expr, scope, file)
            if isinstance(v, bool) or not isinstance(v, (int, float, str)):
                if v not in (_FAILED, UNKNOWN):
                    self.p.add(file, a.expr.line, a.expr.col, "max_retries must be a whole number")
            else:
                try:
                    retries = int(str(v).strip()) if not isinstance(v, float) else int(v)
                    if retries < 0 or (isinstance(v, float) and not v.is_integer()):
                        raise ValueError
                except ValueError:
                    self.p.add(file, a.expr.line, a.expr.col, f'max_retries must be a whole number, '
                               f"got {render_value(v)!r}")
        name = self.meta(body, "name", scope, file, "", lambda v: isinstance(v, str),
                         "name must be a string")
        coe = self.meta(body, "continue_on_error", scope, file, False,
                        lambda v: isinstance(v, bool), "continue_on_error must be true or false")
        config = self.body_node(body, scope, file, path, skip=PROVISIONER_META, what=what)
        config = shape("provisioner", ptype, config)
        return ProvisionerDef(
            index=index, type=ptype, config=config, loc=Loc(file, blk.line, blk.col, path),
            only=() if cleanup else only, except_=() if cleanup else except_,
            override=MappingProxyType(override), pause_before=pause, max_retries=retries,
            timeout=timeout, name=name, continue_on_error=coe,
        )

    def duration(self, a: S.Attribute | None, scope: Scope, file: str) -> float:
        if a is None:
            return 0.0
        v = self.eval(a.expr, scope, file)
        if v in (_FAILED, UNKNOWN) or v is None:
            return 0.0
        if isinstance(v, bool) or not isinstance(v, (str, int, float)):
            self.p.add(file, a.expr.line, a.expr.col, f'{a.name} must be a duration such as "30s"')
            return 0.0
        if isinstance(v, (int, float)):
            return v / 1e9
        if not v.strip():
            return 0.0  # unset, as Packer reads an empty duration
        try:
            return parse_duration(v)
        except ValueError as e:
            self.p.add(file, a.expr.line, a.expr.col, f'{a.name}: {e}; expected a duration such as '
                       '"30s", "5m" or "1h30m"')
            return 0.0

    def meta(self, body: S.Body, key: str, scope: Scope, file: str, default: Any,
             ok: Callable[[Any], Any], message: str, null_ok: bool = False) -> Any:
        """A provisioner's or post-processor's own setting (``name``, ``continue_on_error``,
        ``keep_input_artifact``): its value when ``ok``, else ``default``, with ``message``
        reported unless the value is unknown (or null, with ``null_ok``)."""
        a = body.attr(key)
        if a is None:
            return default
        v = self.eval(a.expr, scope, file)
        if ok(v):
            return v
        if v not in (_FAILED, UNKNOWN) and not (null_ok and v is None):
            self.p.add(file, a.expr.line, a.expr.col, message)
        return default

    def post_processor(self, blk: S.Block, scope: Scope, file: str, chain: int, index: int,
                       path: str, u: _Usage) -> PostProcessorDef | None:
        if len(blk.labels) != 1:
            self.label_problem(file, blk, 1)
            return None
        ptype = blk.labels[0]
        body = blk.body
        what = f'post-processor "{ptype}"'
        only, except_ = self.only_except(body, scope, file, what)
        name = self.meta(body, "name", scope, file, ptype, lambda v: isinstance(v, str) and v,
                         "name must be a non-empty string")
        keep = self.meta(body, "keep_input_artifact", scope, file, None,
                         lambda v: isinstance(v, bool), "keep_input_artifact must be true or false",
                         null_ok=True)
        config = self.body_node(body, scope, file, path, skip=PP_META, what=what)
        config = shape("post-processor", ptype, config)
        return PostProcessorDef(chain, index, ptype, name, config,
                                Loc(file, blk.line, blk.col, path), only, except_, keep)

