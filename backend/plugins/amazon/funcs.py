"""The template functions the Amazon plugin adds to legacy templates (declared as the
``template-funcs.amazon`` entry point): ``clean_resource_name`` and its older name
``clean_ami_name`` in its builders' fields, and Packer's AWS Secrets Manager readers, which
Kiln accepts in a variables section and rejects as unsupported. No AWS library is imported."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ...template.funcs import PluginFuncs
from ...template.gotmpl import RenderError, go_type

_AMAZON_ALLOWED = frozenset(b"()[] ./-'@_")


def clean_resource_name_amazon(s: Any) -> str:
    """Amazon's ``clean_resource_name``: every byte (of the UTF-8 text) that is not an ASCII
    letter, digit or one of ``( ) [ ] space . / - ' @ _`` becomes ``-``."""
    if not isinstance(s, str):
        raise RenderError(f"wrong type for value; expected string; got {go_type(s)}")
    if s.isascii():
        return "".join(c if c.isalnum() or ord(c) in _AMAZON_ALLOWED else "-" for c in s)
    out = bytearray()
    for byte in s.encode("utf-8"):
        ok = 48 <= byte <= 57 or 65 <= byte <= 90 or 97 <= byte <= 122 or byte in _AMAZON_ALLOWED
        out.append(byte if ok else 0x2D)
    return out.decode("ascii")


def amazon_extra_funcs() -> dict[str, Callable[..., Any]]:
    """The functions Amazon builders add: ``clean_resource_name`` and its older name
    ``clean_ami_name`` (still found in real templates: ``{{isotime | clean_ami_name}}``)."""
    return {
        "clean_resource_name": clean_resource_name_amazon,
        "clean_ami_name": clean_resource_name_amazon,
    }


def template_funcs() -> PluginFuncs:
    """What the plugin adds to every legacy template (the template-funcs.amazon entry)."""
    return PluginFuncs(
        secret_stores={
            "aws_secretsmanager": "AWS Secrets Manager",
            "aws_secretsmanager_raw": "AWS Secrets Manager",
        },
        build_funcs=frozenset(amazon_extra_funcs()),
    )
