"""``kiln inspect``: the components of a template, as Packer lays them out."""

from __future__ import annotations

import time

from ..template.model import Template
from .console import machine_escape


def render_inspect(t: Template, machine: bool = False) -> str:
    sensitive = {v.name for v in t.variables if v.sensitive}
    if machine:
        now = int(time.time())
        out = []
        for v in sorted(t.variables, key=lambda v: v.name):
            default = "<sensitive>" if v.name in sensitive else (v.default or "")
            out.append(f"{now},,template-variable,{v.name},{machine_escape(default)},{1 if v.required else 0}")
        for b in sorted(t.builds, key=lambda b: b.name):
            out.append(f"{now},,template-builder,{b.name},{b.type}")
        for p in t.provisioners:
            out.append(f"{now},,template-provisioner,{p.type}")
        return "\n".join(out) + ("\n" if out else "")
    kind = {"json": "JSON", "yaml": "YAML", "hcl2": "HCL2"}[t.format]
    lines = [f"Kiln Inspect: {kind} mode"]
    if t.description:
        lines += ["Description:", "", t.description, ""]
    lines += ["Variables:", ""]
    required = [v for v in t.variables if v.required]
    optional = [v for v in t.variables if not v.required]
    if not t.variables:
        lines.append("  <No variables>")
    if required:
        lines.append("  Required variables:")
        lines.append("")
        lines += [f"  {v.name}" for v in sorted(required, key=lambda v: v.name)]
        lines.append("")
    if optional:
        lines.append("  Optional variables and their defaults:")
        lines.append("")
        width = max(len(v.name) for v in optional)
        for v in sorted(optional, key=lambda v: v.name):
            default = "<sensitive>" if v.name in sensitive else t.mask(v.default or "")
            lines.append(f"  {v.name:<{width}} = {default}")
    lines += ["", "Builders:", ""]
    if not t.builds:
        lines.append("  <No builders>")
    width = max((len(b.name) for b in t.builds), default=0)
    for b in sorted(t.builds, key=lambda b: b.name):
        suffix = f" ({b.type})" if b.name != b.type else ""
        lines.append(f"  {b.name:<{width}}{suffix}".rstrip() if not suffix else f"  {b.name:<{width}}{suffix}")
    lines += ["", "Provisioners:", ""]
    if not t.provisioners:
        lines.append("  <No provisioners>")
    for p in t.provisioners:
        extra = ""
        if p.only:
            extra = f" (only: {', '.join(p.only)})"
        elif p.except_:
            extra = f" (except: {', '.join(p.except_)})"
        lines.append(f"  {p.type}{extra}")
    chains = t.builds[0].post_processors if t.builds else ()
    lines += ["", "Post-processors:", ""]
    if not chains:
        lines.append("  <No post-processors>")
    for i, chain in enumerate(chains):
        lines.append(f"  {i + 1}: " + " -> ".join(p.name if p.name == p.type else f"{p.name} ({p.type})" for p in chain))
    lines += ["", "Note: If your build names contain user variables or template",
              "functions such as 'timestamp', these are processed at build time,",
              "and therefore only show in their raw form here."]
    return "\n".join(lines) + "\n"
