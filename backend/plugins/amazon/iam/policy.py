"""``kiln iam policy``: the least-privilege policy document a template needs.

Loads the template without running its data sources (so printing a policy needs no AWS
access), prepares every build, and derives the needs of each AWS builder and data
source (:mod:`backend.iam.table`). Renders them as IAM JSON, as a Terraform
``aws_iam_policy_document`` data block, or as an explanation (step -> actions -> setting).
"""

from __future__ import annotations

import json
from typing import Any

from .table import BUILDER_DERIVATIONS, Derivation, Need, derive_builder, derive_data_source

AWS_BUILDERS = tuple(BUILDER_DERIVATIONS)
AWS_DATA_SOURCES = ("amazon-ami", "amazon-parameterstore", "amazon-secretsmanager")


class NoAwsError(Exception):
    """The template uses no AWS builder or data source."""


def derive_template(template: Any, prepared: list[Any], force: bool = False) -> Derivation:
    """The needs of every AWS build in ``prepared`` and every AWS data source."""
    d = Derivation()
    found = False
    for type_name, name, config in getattr(template, "data_sources", ()):
        if type_name in AWS_DATA_SOURCES:
            found = True
            derive_data_source(type_name, name, config, d)
    for pb in prepared:
        if pb.type in AWS_BUILDERS:
            found = True
            derive_builder(pb.type, pb.builder.config, build=pb.name, force=force, out=d)
    if not found:
        raise NoAwsError("the template uses no AWS builder or data source, so its builds "
                         "need no IAM permissions")
    return d


def statements(d: Derivation, narrow: bool = True) -> list[dict[str, Any]]:
    """IAM statements: one per step and resource set, with a Sid naming the step (the
    step that first needs an action on a resource carries it; -explain lists every step)."""
    grouped: dict[tuple[str, tuple[str, ...]], list[str]] = {}
    for n in d.required():
        resources = n.resources if narrow else ("*",)
        acts = grouped.setdefault((n.sid, resources), [])
        acts += [a for a in n.actions if a not in acts]
    granted: set[tuple[str, tuple[str, ...]]] = set()
    out: list[dict[str, Any]] = []
    used: dict[str, int] = {}
    for (sid, resources), actions in grouped.items():
        fresh = sorted(a for a in actions if (a, resources) not in granted)
        if not fresh:
            continue
        granted.update((a, resources) for a in fresh)
        name = sid
        if name in used:  # a step's second statement: its calls that take no resource
            name += "Describe" if all(":Describe" in a for a in fresh) else "AnyResource"
        while name in used:
            name += str(used[sid] + 1)
        used[name] = used[sid] = used.get(sid, 0) + 1
        out.append({"Sid": name, "Effect": "Allow",
                    "Action": fresh,
                    "Resource": list(resources) if len(resources) > 1 else resources[0]})
    return out


def document(d: Derivation, narrow: bool = True) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": statements(d, narrow)}


def render_json(d: Derivation, narrow: bool = True) -> str:
    return json.dumps(document(d, narrow), indent=2) + "\n"


def _hcl_list(items: list[str]) -> str:
    return "[" + ", ".join(json.dumps(i) for i in items) + "]"


def render_terraform(d: Derivation, narrow: bool = True, name: str = "kiln_build") -> str:
    lines = [f'data "aws_iam_policy_document" "{name}" {{']
    for s in statements(d, narrow):
        res = s["Resource"] if isinstance(s["Resource"], list) else [s["Resource"]]
        lines += ["  statement {",
                  f"    sid       = {json.dumps(s['Sid'])}",
                  '    effect    = "Allow"',
                  f"    actions   = {_hcl_list(s['Action'])}",
                  f"    resources = {_hcl_list(res)}",
                  "  }"]
    lines.append("}")
    return "\n".join(lines) + "\n"


def render_explain(d: Derivation, narrow: bool = True) -> str:
    """step -> actions -> the setting that needs them, with the resources each is narrowed
    to; then the optional actions and notes."""
    out: list[str] = []
    groups: dict[tuple[str, str, str, bool], list[Need]] = {}
    for n in d.needs:
        groups.setdefault((n.build, n.step, n.why, n.optional), []).append(n)
    build = None
    for (b, step, why, optional), needs in groups.items():
        if b != build:
            if build is not None:
                out.append("")
            out.append(f"{b or 'build'}:")
            build = b
        tag = " (optional: Kiln goes on without it; not in the policy)" if optional else ""
        out.append(f"  {step}{tag}")
        out.append(f"    because {why}")
        for n in needs:
            where = ""
            if narrow and n.resources != ("*",):
                where = f"  on {', '.join(n.resources)}"
                if n.narrowed:
                    where += f" (narrowed to {n.narrowed})"
            out.append(f"    -> {', '.join(n.actions)}{where}")
    out.append("")
    if d.notes:
        out.append("Notes:")
        out += [f"  - {t}" for t in d.notes]
        out.append("")
    actions = d.actions()
    out.append(f"{len(actions)} actions: {', '.join(actions)}")
    return "\n".join(out) + "\n"
