"""Packer's legacy JSON templates (and the same structure in YAML) -> Template."""

from __future__ import annotations

import os
from dataclasses import replace
from types import MappingProxyType
from typing import Mapping

from . import funcs as F
from . import gotmpl
from .decode import go_number_text
from .errors import Problem, TemplateError, did_you_mean
from .golang import parse_duration
from .model import BuildDef, PostProcessorDef, ProvisionerDef, Template, Variable
from .parse import bom_warning, load_node
from .source import Loc, Node

ROOT_KEYS = (
    "builders",
    "provisioners",
    "post-processors",
    "error-cleanup-provisioner",
    "variables",
    "sensitive-variables",
    "description",
    "min_packer_version",
    "push",
)
PROVISIONER_META = ("type", "only", "except", "override", "pause_before", "max_retries", "timeout")
PP_META = ("type", "name", "only", "except", "keep_input_artifact")

# The Packer release whose template format Kiln follows (min_packer_version is
# compared against it).
PACKER_COMPAT_VERSION = "1.6.6"


def load_legacy(
    path: str,
    cli_vars: Mapping[str, str] | None = None,
    var_files: list[str] | tuple[str, ...] = (),
    syntax_only: bool = False,
) -> Template:
    node = load_node(path)
    abspath = os.path.abspath(path)
    fmt = "yaml" if path.endswith((".yaml", ".yml")) else "json"
    template = build_template(node, abspath, fmt, cli_vars or {}, var_files, syntax_only)
    bom = bom_warning(path) if fmt == "json" else None  # YAML allows a byte-order mark
    return replace(template, warnings=(bom, *template.warnings)) if bom else template


def build_template(
    root: Node,
    path: str,
    fmt: str,
    cli_vars: Mapping[str, str],
    var_files: list[str] | tuple[str, ...],
    syntax_only: bool = False,
) -> Template:
    problems: list[Problem] = []
    warnings: list[str] = []

    def bad(loc: Loc, msg: str) -> None:
        problems.append(Problem(loc, msg))

    # -- root keys ---------------------------------------------------------
    for key, child in root.items():
        kloc = root.key_loc(key)
        if key.startswith("_"):
            if not isinstance(child.value, str):
                bad(kloc, f'comment "{key}" must be a string, got {child.type_name()}')
            continue
        if key not in ROOT_KEYS:
            bad(kloc, f'unknown root key "{key}"{did_you_mean(key, ROOT_KEYS)}')
    if "push" in root.value:
        warnings.append(f"{path}: the \"push\" section is ignored (Atlas push was removed from Packer)")

    description = _string(root.get("description"), bad) or ""
    min_version = _string(root.get("min_packer_version"), bad) or ""
    if min_version:
        _check_min_version(min_version, root.get("min_packer_version").loc, bad)

    # -- variables -----------------------------------------------------------
    variables: list[Variable] = []
    sensitive_names: list[str] = []
    sv = root.get("sensitive-variables")
    if sv is not None:
        if not sv.is_list:
            bad(sv.loc, f"expected a list of variable names, got {sv.type_name()}")
        else:
            for item in sv.value:
                if isinstance(item.value, str):
                    sensitive_names.append(item.value)
                else:
                    bad(item.loc, f"expected a variable name (string), got {item.type_name()}")
    vnode = root.get("variables")
    if vnode is not None:
        if not vnode.is_map:
            bad(vnode.loc, f"expected an object of variable names to default values, got {vnode.type_name()}")
        else:
            for name, v in vnode.items():
                if v.value is None:
                    variables.append(Variable(name, None, True, name in sensitive_names, v.loc))
                elif isinstance(v.value, str):
                    variables.append(Variable(name, v.value, False, name in sensitive_names, v.loc))
                else:
                    bad(v.loc, f"a variable's default must be a string or null, got {v.type_name()}")
    declared = {v.name for v in variables}
    for name in sensitive_names:
        if name not in declared:
            warnings.append(f'sensitive variable "{name}" is not declared in "variables"')

    # -- builders -------------------------------------------------------------
    bnode = root.get("builders")
    raw_builders: list[tuple[int, str, str, Node, Loc]] = []
    if bnode is None:
        bad(root.loc.at("builders"), "at least one builder must be defined (missing \"builders\")")
    elif not bnode.is_list:
        bad(bnode.loc, f"expected a list of builder objects, got {bnode.type_name()}")
    elif not bnode.value:
        bad(bnode.loc, "at least one builder must be defined")
    else:
        for i, b in enumerate(bnode.value):
            if not b.is_map:
                bad(b.loc, f"expected a builder object, got {b.type_name()}")
                continue
            # Packer decodes a builder's type and name weakly: "name": 5 is the name "5"
            t = b.get("type")
            if t is None:
                bad(b.loc, 'missing "type"')
                continue
            btype = _weak_text(t)
            if not btype:
                bad(t.loc, f"expected a builder type name (string), got {t.type_name()}")
                continue
            n = b.get("name")
            name = btype
            if n is not None:
                weak_name = _weak_text(n)
                if weak_name is None:
                    bad(n.loc, f"expected a builder name (string), got {n.type_name()}")
                elif weak_name:
                    name = weak_name
            config = Node({k: c for k, c in b.items() if k not in ("type", "name")}, b.loc, b.key_locs)
            raw_builders.append((i, name, btype, config, b.loc))

    # -- provisioners ---------------------------------------------------------
    raw_names = {name for _, name, _, _, _ in raw_builders}
    provisioners: list[ProvisionerDef] = []
    pnode = root.get("provisioners")
    if pnode is not None:
        if not pnode.is_list:
            bad(pnode.loc, f"expected a list of provisioner objects, got {pnode.type_name()}")
        else:
            for i, p in enumerate(pnode.value):
                prov = _provisioner(i, p, raw_names, bad)
                if prov is not None:
                    provisioners.append(prov)
    error_cleanup = None
    enode = root.get("error-cleanup-provisioner")
    if enode is not None:
        error_cleanup = _provisioner(0, enode, raw_names, bad, cleanup=True)

    # -- post-processors -----------------------------------------------------
    chains: list[tuple[PostProcessorDef, ...]] = []
    ppnode = root.get("post-processors")
    if ppnode is not None:
        if not ppnode.is_list:
            bad(ppnode.loc, f"expected a list of post-processors, got {ppnode.type_name()}")
        else:
            for ci, item in enumerate(ppnode.value):
                chain = _chain(ci, item, raw_names, bad)
                if chain:
                    chains.append(chain)

    if problems:
        raise TemplateError(problems)

    # -- resolve user variables, render builder names --------------------------
    if syntax_only:
        user_vars: dict[str, str] = {v.name: v.default or "" for v in variables}
        sensitive_values: list[str] = []
    else:
        user_vars = resolve_variables(path, variables, cli_vars, var_files, root.loc)
        sensitive_values = sorted(
            {user_vars[n] for n in sensitive_names if user_vars.get(n)}, key=len, reverse=True
        )

    builds: list[BuildDef] = []
    seen: dict[str, Loc] = {}
    name_ctx = F.FuncContext(user_vars=user_vars, template_path=path)
    name_funcs = F.packer_funcs(name_ctx)
    if not syntax_only and pnode is not None and pnode.is_list:
        provisioners = [_late_durations(p, pnode.value[p.index], name_funcs, bad)
                        for p in provisioners]
    if not syntax_only and error_cleanup is not None:
        error_cleanup = _late_durations(error_cleanup, enode, name_funcs, bad)
    for i, raw_name, btype, config, loc in raw_builders:
        name = raw_name
        if not syntax_only and "{{" in raw_name:
            try:
                name = gotmpl.render_until_stable(raw_name, name_funcs, None)
            except (gotmpl.TemplateSyntaxError, gotmpl.RenderError) as e:
                bad(loc.at(f"builders[{i}].name"), f"cannot render the builder name: {e}")
                continue
        if name in seen:
            bad(loc.at(f"builders[{i}].name"), f'a builder named "{name}" already exists (line {seen[name].line})')
            continue
        seen[name] = loc
        match = frozenset({raw_name})
        builds.append(
            BuildDef(
                index=len(builds),
                name=name,
                type=btype,
                build_name=name,
                config=config,
                loc=loc,
                provisioners=tuple(p for p in provisioners if p.applies_to(match)),
                error_cleanup=error_cleanup,
                post_processors=tuple(chains),
                match_names=match,
                raw_name=raw_name,
            )
        )
    if problems:
        raise TemplateError(problems)
    return Template(
        path=path,
        format=fmt,
        builds=tuple(builds),
        variables=tuple(variables),
        user_vars=MappingProxyType(dict(user_vars)),
        sensitive_values=tuple(sensitive_values),
        description=description,
        min_version=min_version,
        warnings=tuple(warnings),
        provisioners=tuple(provisioners),
    )


def _string(node: Node | None, bad) -> str | None:
    if node is None:
        return None
    if not isinstance(node.value, str):
        bad(node.loc, f"expected a string, got {node.type_name()}")
        return None
    return node.value


def _check_min_version(v: str, loc: Loc, bad) -> None:
    def parse(s: str) -> tuple[int, ...]:
        parts = s.strip().lstrip("v").split("-")[0].split(".")
        return tuple(int(p) for p in parts)

    try:
        want = parse(v)
    except ValueError:
        bad(loc, f'min_packer_version "{v}" is not a version number')
        return
    have = parse(PACKER_COMPAT_VERSION)
    if want > have:
        bad(loc, f"this template requires Packer version {v} or higher; Kiln implements Packer {PACKER_COMPAT_VERSION}")


def _weak_text(node: Node) -> str | None:
    """A scalar as Packer's weak decoding turns it into a string (5 -> "5", true -> "1");
    None for anything else."""
    v = node.value
    if isinstance(v, str):
        return v
    if isinstance(v, bool):
        return "1" if v else "0"
    if isinstance(v, (int, float)):
        return go_number_text(v)
    return None


def _names(node: Node | None, what: str, raw_names: set[str], bad,
           weak: bool = False) -> tuple[str, ...]:
    """Builder names of an only/except. ``weak``: decoded as Packer decodes provisioners,
    where a single name needs no list ("only": "docker") and numbers are names; a
    post-processor's are decoded strictly."""
    if node is None or node.value is None:
        return ()
    items = node.value if node.is_list else None
    if items is None and weak and _weak_text(node) is not None:
        items = [node]
    if items is None:
        bad(node.loc, f"expected a list of builder names, got {node.type_name()}")
        return ()
    out = []
    for item in items:
        name = _weak_text(item) if weak else item.value
        if not isinstance(name, str):
            bad(item.loc, f"expected a builder name (string), got {item.type_name()}")
            continue
        item = Node(name, item.loc)
        if item.value not in raw_names:
            bad(item.loc, f"'{what}' names builder \"{item.value}\", which does not exist"
                f"{did_you_mean(item.value, raw_names)}")
        out.append(item.value)
    return tuple(out)


def _provisioner(i: int, p: Node, raw_names: set[str], bad, cleanup: bool = False) -> ProvisionerDef | None:
    if not p.is_map:
        bad(p.loc, f"expected a provisioner object, got {p.type_name()}")
        return None
    t = p.get("type")
    if t is None:
        bad(p.loc, 'provisioner is missing "type"')
        return None
    ptype = _weak_text(t)
    if not ptype:
        bad(t.loc, f"expected a provisioner type name (string), got {t.type_name()}")
        return None
    only = _names(p.get("only"), "only", raw_names, bad, weak=True)
    except_ = _names(p.get("except"), "except", raw_names, bad, weak=True)
    if only and except_:
        bad(p.get("except").loc, "only one of 'only' or 'except' may be specified")
    override: dict[str, Node] = {}
    onode = p.get("override")
    if onode is not None:
        if not onode.is_map:
            bad(onode.loc, f"expected an object of builder names to settings, got {onode.type_name()}")
        else:
            for bname, cfg in onode.items():
                if bname not in raw_names:
                    bad(onode.key_loc(bname), f'override names builder "{bname}", which does not exist'
                        f"{did_you_mean(bname, raw_names)}")
                elif not cfg.is_map:
                    bad(cfg.loc, f"expected an object of settings, got {cfg.type_name()}")
                else:
                    override[bname] = cfg
    pause = _duration(p.get("pause_before"), bad)
    timeout = _duration(p.get("timeout"), bad)
    retries: int | str = 0
    rnode = p.get("max_retries")
    if rnode is not None and rnode.value is not None:
        v = _weak_text(rnode)  # Packer reads it as a string, weakly (true -> "1")
        if v is None:
            bad(rnode.loc, f"expected an integer, got {rnode.type_name()}")
        elif not v:
            pass  # "" is unset
        elif "{{" not in v:
            try:
                retries = int(v.strip())
            except ValueError:
                bad(rnode.loc, f'max_retries must be a valid integer, got "{v}"')
        else:
            retries = v
    config = Node({k: c for k, c in p.items() if k not in PROVISIONER_META}, p.loc, p.key_locs)
    return ProvisionerDef(
        index=i,
        type=ptype,
        config=config,
        loc=p.loc,
        only=() if cleanup else only,
        except_=() if cleanup else except_,
        override=MappingProxyType(override),
        pause_before=pause,
        max_retries=retries,
        timeout=timeout,
    )


def _duration(node: Node | None, bad) -> float:
    if node is None:
        return 0.0
    v = node.value
    if v is None:
        return 0.0
    if not isinstance(v, (str, int, float)):
        bad(node.loc, f"expected a duration such as \"30s\", got {node.type_name()}")
        return 0.0
    if isinstance(v, (int, float)):
        return int(v) / 1e9  # nanoseconds, as Go decodes a number (true is 1)
    if "{{" in v:
        return 0.0  # rendered once the user variables are known (_late_durations)
    try:
        return parse_duration(v)
    except ValueError as e:
        bad(node.loc, f'{e}; expected a duration such as "30s" or "5m"')
        return 0.0


def _late_durations(prov: ProvisionerDef, pnode: Node, funcs, bad) -> ProvisionerDef:
    """``pause_before``/``timeout`` written with template functions, such as
    ``{{user `pause`}}``, rendered with the user variables and parsed (Packer 1.6.6 rejects
    these at parse time; real templates use them)."""
    changes = {}
    for key in ("pause_before", "timeout"):
        node = pnode.get(key)
        if node is None or not isinstance(node.value, str) or "{{" not in node.value:
            continue
        try:
            text = gotmpl.render_until_stable(node.value, funcs, None)
        except (gotmpl.TemplateSyntaxError, gotmpl.RenderError) as e:
            bad(node.loc, f"cannot render {key}: {e}")
            continue
        try:
            changes[key] = parse_duration(text) if text.strip() else 0.0
        except ValueError as e:
            bad(node.loc, f'{e} (rendered from "{node.value}"); expected a duration such as '
                '"30s" or "5m"')
    return replace(prov, **changes) if changes else prov


def _chain(ci: int, item: Node, raw_names: set[str], bad) -> tuple[PostProcessorDef, ...]:
    if isinstance(item.value, str):
        return (_pp(ci, 0, Node({"type": item}, item.loc), raw_names, bad),)
    if item.is_map:
        pp = _pp(ci, 0, item, raw_names, bad)
        return (pp,) if pp else ()
    if item.is_list:
        out = []
        for j, sub in enumerate(item.value):
            if sub.is_list:
                bad(sub.loc, "a sequence may not be nested in a sequence")
                continue
            if isinstance(sub.value, str):
                sub = Node({"type": sub}, sub.loc)
            elif not sub.is_map:
                bad(sub.loc, f"expected a post-processor name or object, got {sub.type_name()}")
                continue
            pp = _pp(ci, j, sub, raw_names, bad)
            if pp:
                out.append(pp)
        return tuple(out)
    bad(item.loc, f"expected a post-processor name, object or list, got {item.type_name()}")
    return ()


def _pp(ci: int, j: int, node: Node, raw_names: set[str], bad) -> PostProcessorDef | None:
    t = node.get("type")
    if t is None:
        bad(node.loc, 'post-processor is missing "type"')
        return None
    if not isinstance(t.value, str) or not t.value:
        bad(t.loc, f"expected a post-processor type name (string), got {t.type_name()}")
        return None
    name = t.value
    n = node.get("name")
    if n is not None:
        if isinstance(n.value, str) and n.value:
            name = n.value
        else:
            bad(n.loc, f"expected a name (string), got {n.type_name()}")
    only = _names(node.get("only"), "only", raw_names, bad)
    except_ = _names(node.get("except"), "except", raw_names, bad)
    if only and except_:
        bad(node.get("except").loc, "only one of 'only' or 'except' may be specified")
    keep = None
    k = node.get("keep_input_artifact")
    if k is not None:
        if isinstance(k.value, bool):
            keep = k.value
        else:
            bad(k.loc, f"expected true or false, got {k.type_name()}")
    config = Node({key: c for key, c in node.items() if key not in PP_META}, node.loc, node.key_locs)
    return PostProcessorDef(ci, j, t.value, name, config, node.loc, only, except_, keep)


# -- variables ----------------------------------------------------------------


def read_var_file(path: str) -> dict[str, str]:
    """A JSON (or YAML) object of variable names to string values."""
    node = load_node(path)
    out: dict[str, str] = {}
    problems = []
    for k, v in node.items():
        if isinstance(v.value, str):
            out[k] = v.value
        elif v.value is None:  # Packer reads null as the empty string
            out[k] = ""
        else:
            problems.append(Problem(v.loc, f"variable values must be strings, got {v.type_name()}"))
    if problems:
        raise TemplateError(problems)
    return out


def resolve_variables(
    path: str,
    variables: list[Variable],
    cli_vars: Mapping[str, str],
    var_files: list[str] | tuple[str, ...],
    loc: Loc,
) -> dict[str, str]:
    """Packer's recursive variable rendering: defaults < var files < -var."""
    # Precedence, lowest first: default < PKR_VAR_<name> < -var-file (in order) < -var.
    # (Packer reads PKR_VAR_ only for HCL2; Kiln reads it for every format, for declared
    # variables, so one CI environment serves JSON and HCL2 templates alike.)
    declared = {v.name for v in variables}
    given = {k[8:]: v for k, v in os.environ.items() if k.startswith("PKR_VAR_") and k[8:] in declared}
    for vf in var_files:
        given.update(read_var_file(vf))
    given.update(cli_vars)
    values: dict[str, str] = {v.name: v.default for v in variables if v.default is not None}
    values.update(given)
    problems = []
    for v in variables:
        if v.required and v.name not in given:
            problems.append(Problem(v.loc.at(f"variables.{v.name}"), f'required variable "{v.name}" is not set (give it with -var {v.name}=VALUE or -var-file)'))
    if problems:
        raise TemplateError(problems)
    locs = {v.name: v.loc for v in variables}

    done: dict[str, str] = {}
    pending = sorted(values)
    last_error: dict[str, str] = {}
    for _ in range(100):
        if not pending:
            break
        progressed = False
        still: list[str] = []
        for key in pending:
            raw = values[key]
            ctx = F.FuncContext(
                user_vars=done, template_path=path, allow_env=True, variables_section=True
            )
            protected, restore = gotmpl.protect_fields(raw)
            try:
                rendered = restore(gotmpl.render(protected, F.packer_funcs(ctx)))
            except F.UnsetVariable as e:
                still.append(key)
                last_error[key] = str(e)
                continue
            except (gotmpl.TemplateSyntaxError, gotmpl.RenderError) as e:
                raise TemplateError(
                    Problem(locs.get(key, loc).at(f"variables.{key}"), f"cannot render the value of variable \"{key}\": {e}")
                ) from None
            done[key] = rendered
            progressed = True
        pending = still
        if pending and not progressed:
            break
    if pending:
        raise TemplateError(
            [
                Problem(
                    locs.get(k, loc).at(f"variables.{k}"),
                    f'cannot render "{values[k]}": {last_error.get(k, "")}; a variable used inside another '
                    "variable must be defined",
                )
                for k in pending
            ]
        )
    return done
