"""Packer's built-in functions for the legacy ``{{ }}`` template engine.

``packer_funcs(ctx)`` returns the function map to hand to :mod:`backend.template.gotmpl`.
Behaviour follows docs/packer-semantics.md §1.5; the texts of the errors the spec names are
kept (``build_name not available``, ``template path not available``, ``env vars are not
allowed here``, ``split``/``build`` messages), so users can search for them.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from . import golang, limits
from .gotmpl import RenderError, format_value, go_type

__all__ = [
    "START_TIME",
    "FuncContext",
    "UnsetVariable",
    "packer_funcs",
    "FUNCTION_NAMES",  # noqa: F822 - module __getattr__
    "PACKER_FUNCTION_NAMES",  # noqa: F822 - module __getattr__
    "PluginFuncs",
    "time_ordered_uuid",
]

#: When this process started (UTC); ``timestamp``/``isotime``/``strftime`` all report it, so
#: every template of one run sees the same instant.
START_TIME: datetime = datetime.now(UTC)


class UnsetVariable(RenderError):
    """``user`` asked for a variable that has no value (variables section only); the variable
    resolver retries these on its next pass."""

    def __init__(self, name: str):
        super().__init__(f"variable not set: {name}", function="user")
        self.name = name


@dataclass
class FuncContext:
    user_vars: Mapping[str, str]
    #: absolute path of the template file; ``template_dir`` is its directory
    template_path: str | None
    #: None -> ``build_name`` raises ``build_name not available``
    build_name: str | None = None
    build_type: str | None = None
    #: ``env`` works only when this is set (Packer allows it inside ``variables`` only)
    allow_env: bool = False
    #: rendering a ``variables`` value: ``user`` of an unset variable raises UnsetVariable,
    #: and ``consul_key``/``vault`` and the secret stores of plugins are accepted (then rejected as
    #: unsupported rather than as misplaced)
    variables_section: bool = False
    #: what ``{{packer_version}}`` reports (Kiln reports the Packer version it mimics)
    packer_version: str = "1.6.6"
    start_time: datetime = START_TIME
    #: plugin-defined functions (e.g. ``clean_resource_name``); they win over built-ins
    extra: dict[str, Callable[..., Any]] = field(default_factory=dict)
    #: an HCL2 template: the JSON-only functions (``user``, ``template_dir``,
    #: ``packer_version``, ``build``) are errors naming the HCL2 way, as Packer rejects them
    hcl2: bool = False
    #: generated-data keys the ``build`` function knows. A plain collection makes
    #: ``{{ build `ID` }}`` return ``{{.ID}}`` (re-rendered later with real data); a mapping
    #: makes it return the mapped value itself. None -> ``build`` is an error.
    build_data_keys: Collection[str] | None = None


def _str(v: Any) -> str:
    if isinstance(v, str):
        return v
    raise RenderError(f"wrong type for value; expected string; got {go_type(v)}")


def _int(v: Any) -> int:
    if isinstance(v, int) and not isinstance(v, bool):
        return v
    if isinstance(v, float) and v.is_integer():
        return int(v)
    raise RenderError(f"wrong type for value; expected int; got {go_type(v)}")


def _go_upper(s: str) -> str:
    """Go's rune-by-rune ``strings.ToUpper`` (no ``ß`` → ``SS`` expansion)."""
    if s.isascii():
        return s.upper()
    return "".join(u if len(u := c.upper()) == 1 else c for c in s)


def _go_lower(s: str) -> str:
    if s.isascii():
        return s.lower()
    return "".join(lo if len(lo := c.lower()) == 1 else c for c in s)


def _check_replace(s: str, old: str, new: str, n: int) -> None:
    """A replacement may not grow the text past Kiln's limit (1 MB times 1,000 copies...)."""
    if len(new) <= len(old):
        return
    count = s.count(old) + 1 if old == "" else s.count(old)  # "" matches between characters
    if n >= 0:
        count = min(count, n)
    try:
        limits.check_string(len(s) + count * (len(new) - len(old)), "the replaced text")
    except limits.LimitError as e:
        raise RenderError(str(e)) from None


def time_ordered_uuid(now: float | None = None) -> str:
    """``%08x-%04x-%04x-%04x-%04x%08x``: Unix seconds, then 12 random bytes."""
    secs = int(time.time() if now is None else now) & 0xFFFFFFFF
    b = os.urandom(12)
    return f"{secs:08x}-{b[0:2].hex()}-{b[2:4].hex()}-{b[4:6].hex()}-{b[6:8].hex()}{b[8:].hex()}"


@dataclass(frozen=True)
class PluginFuncs:
    """The template functions a plugin adds (a ``template-funcs.<name>`` entry point of the
    plugin catalog): ``secret_stores`` read secrets from a network service (function name ->
    service), accepted in a variables section and rejected as unsupported; ``build_funcs``
    are the names of the functions its builders add to their own fields (static checks)."""

    secret_stores: Mapping[str, str] = field(default_factory=dict)
    build_funcs: frozenset[str] = frozenset()


def plugin_funcs() -> PluginFuncs:
    """Every plugin's template functions, from the plugin catalog the loader was given."""
    from .plugins import catalog

    return catalog().template_funcs()


#: Packer's own secret-store functions; plugins add theirs (PluginFuncs.secret_stores)
_NETWORK_FUNCS = {
    "consul_key": "Consul",
    "vault": "HashiCorp Vault",
}


def packer_funcs(ctx: FuncContext) -> dict[str, Callable[..., Any]]:
    """The function map for one render context."""

    def user(name: Any) -> str:
        name = _str(name)
        value = ctx.user_vars.get(name)
        if value is None:
            if ctx.variables_section:
                raise UnsetVariable(name)
            return ""
        return value

    def env(name: Any) -> str:
        name = _str(name)
        if not ctx.allow_env:
            raise RenderError("env vars are not allowed here")
        return os.environ.get(name, "")

    def timestamp() -> str:
        return str(int(ctx.start_time.timestamp()))

    def isotime(*layout: Any) -> str:
        if not layout:
            return golang.rfc3339(ctx.start_time)
        if len(layout) > 1:
            raise RenderError(
                f"isotime takes at most one layout argument, got {len(layout)}: "
                + " ".join(format_value(x) for x in layout)
            )
        return golang.go_time_format(ctx.start_time, _str(layout[0]))

    def strftime(fmt: Any) -> str:
        return golang.strftime(ctx.start_time, _str(fmt))

    def uuid() -> str:
        return time_ordered_uuid()

    def build_name() -> str:
        if not ctx.build_name:
            raise RenderError("build_name not available")
        return ctx.build_name

    def build_type() -> str:
        if not ctx.build_type:
            raise RenderError("build_type not available")
        return ctx.build_type

    def pwd() -> str:
        return os.getcwd()

    def template_dir() -> str:
        if not ctx.template_path:
            raise RenderError("template path not available")
        return os.path.dirname(os.path.abspath(ctx.template_path))

    def packer_version() -> str:
        if not ctx.packer_version:
            raise RenderError("packer_version not available")
        return ctx.packer_version

    def split(s: Any, sep: Any, index: Any) -> str:
        s, sep, index = _str(s), _str(sep), _int(index)
        parts = (list(s) if s else []) if sep == "" else s.split(sep)
        if index < 0:
            raise RenderError(f"index out of range [{index}]")
        if len(parts) <= index:
            raise RenderError(
                f"the substring {index} was unavailable using the separator value, {sep}, "
                f"only {len(parts)} values were found"
            )
        return parts[index]

    def replace(old: Any, new: Any, n: Any, s: Any) -> str:
        old, new, n, s = _str(old), _str(new), _int(n), _str(s)
        _check_replace(s, old, new, n)
        return s.replace(old, new, n if n >= 0 else -1)

    def replace_all(old: Any, new: Any, s: Any) -> str:
        old, new, s = _str(old), _str(new), _str(s)
        _check_replace(s, old, new, -1)
        return s.replace(old, new)

    def lower(s: Any) -> str:
        return _go_lower(_str(s))

    def upper(s: Any) -> str:
        return _go_upper(_str(s))

    def build(key: Any) -> str:
        key = _str(key)
        known = ctx.build_data_keys
        if known is None:
            raise RenderError(
                f"Error validating build variable: the given variable {key} will not be "
                "passed into your plugin."
            )
        if key not in known:
            raise RenderError(f"loaded data, but couldnt find {key} in it.")
        if isinstance(known, Mapping):
            return format_value(known[key])
        return "{{." + key + "}}"

    def sed(*_args: Any) -> str:
        raise RenderError(
            "the template function `sed` was removed (deprecated in Packer); "
            "use `replace` or `replace_all` instead"
        )

    stores = {**_NETWORK_FUNCS, **plugin_funcs().secret_stores}

    def network(name: str) -> Callable[..., str]:
        def fn(*_args: Any) -> str:
            if not ctx.variables_section:
                raise RenderError(f"{name} is only allowed in the variables section")
            raise RenderError(
                f"{name} is not supported by Kiln: it reads secrets from "
                f"{stores[name]}, a network service Kiln does not contact; "
                "pass the value with -var or -var-file instead"
            )

        fn.__name__ = name
        return fn

    funcs: dict[str, Callable[..., Any]] = {
        "user": user,
        "env": env,
        "timestamp": timestamp,
        "isotime": isotime,
        "strftime": strftime,
        "uuid": uuid,
        "build_name": build_name,
        "build_type": build_type,
        "pwd": pwd,
        "template_dir": template_dir,
        "packer_version": packer_version,
        "split": split,
        "replace": replace,
        "replace_all": replace_all,
        "lower": lower,
        "upper": upper,
        "build": build,
        "sed": sed,
    }
    for name in stores:
        funcs[name] = network(name)
    funcs.update(ctx.extra)
    if ctx.hcl2:
        for name in HCL2_INSTEAD:
            funcs[name] = _json_only(name)
    return funcs


#: JSON-template functions HCL2 templates write another way
HCL2_INSTEAD = {
    "user": "var.NAME",
    "template_dir": "path.root",
    "packer_version": "packer.version",
    "build": "build.NAME (such as build.ID)",
}


def json_only_message(name: str) -> str:
    return (f"{name} is a function of JSON templates; in an HCL2 template write "
            f"{HCL2_INSTEAD[name]} instead, in ${{...}} inside a string")


def _json_only(name: str) -> Callable[..., str]:
    def fn(*_args: Any) -> str:
        raise RenderError(json_only_message(name))

    fn.__name__ = name
    return fn


def __getattr__(name: str) -> frozenset[str]:
    # computed on first use: the plugins' functions come from the catalog, which is only
    # installed once the package has been imported
    if name == "PACKER_FUNCTION_NAMES":
        #: The functions every legacy template can call.
        value = frozenset(packer_funcs(FuncContext(user_vars={}, template_path=None)))
    elif name == "FUNCTION_NAMES":
        #: Every function name the engine may know, including the ones plugins add to their
        #: builders' fields (``clean_resource_name``, ``clean_ami_name``), for static checks.
        #: Go's own built-ins (``printf``, ``eq``, ...) are always accepted by ``gotmpl.check``.
        value = __getattr__("PACKER_FUNCTION_NAMES") | plugin_funcs().build_funcs
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value
