"""``kiln iam policy`` and ``kiln iam check``."""

from __future__ import annotations

import sys

from .flags import COMMON, Flags, UsageError, options_from
from .messages import fail

IAM_HELP = """\
Usage: kiln iam <policy|check> [options] TEMPLATE

  policy   Print the least-privilege IAM policy TEMPLATE's AWS builds and data
           sources need, derived from the steps its settings run (no AWS call).
  check    Run the permission preflight alone: ask AWS whether the current
           credentials may make each call the build will make (DryRun calls,
           iam:SimulatePrincipalPolicy where allowed). Creates nothing.
           Exit 0 when nothing is denied, 1 otherwise.

Options:
  -format=json|terraform  policy: IAM's JSON (default) or a Terraform
                          aws_iam_policy_document data block.
  -explain                policy: list step -> actions -> the setting that needs
                          them, narrowed resources and notes, instead.
  -narrow=false           policy: every Resource "*" (for endpoints that cannot
                          evaluate resource ARNs, or to rule narrowing out).
  -force                  as kiln build -force (adds deregistering old AMIs).
  -only=foo,bar / -except=foo,bar   These builds only (or all but these).
  -var 'key=value' / -var-file=path
"""


def cmd_iam(argv: list[str], machine: bool) -> int:
    if not argv or argv[0] in ("-h", "-help", "--help", "help"):
        print(IAM_HELP)
        return 0 if argv else 1
    sub, rest = argv[0], argv[1:]
    if sub not in ("policy", "check"):
        raise UsageError(f"unknown iam command {sub!r}: use policy or check\n\n{IAM_HELP}")
    flags = Flags({**COMMON, "format": "str", "explain": "bool", "narrow": "bool",
                   "force": "bool"}).parse(rest)
    if flags.get("h") or flags.get("help"):
        print(IAM_HELP)
        return 0
    if len(flags.args) != 1:
        raise UsageError(IAM_HELP)
    fmt = flags.get("format", "json") or "json"
    if fmt not in ("json", "terraform"):
        raise UsageError(f'invalid value "{fmt}" for -format: expected json or terraform')
    loaded = _load(flags.args[0], flags, machine)
    if loaded is None:
        return 1
    template, prepared, options = loaded
    if sub == "policy":
        return _policy(template, prepared, options, fmt, bool(flags.get("explain")),
                       bool(flags.get("narrow", True)))
    from ..api import check_command

    return check_command(template, prepared, options)


def _load(path: str, flags, machine: bool):
    from ..api import validate
    from ..template.errors import TemplateError

    options = options_from(flags)
    template = None
    try:
        result = validate(path, options)
        template = result.template
        if result.problems:
            raise TemplateError(result.problems)
    except TemplateError as e:
        fail(machine, e, template.mask if template is not None else None)
        return None
    except OSError as e:
        fail(machine, f"cannot read {path}: {e.strerror or e}")
        return None
    return template, result.prepared, options


def _policy(template, prepared, options, fmt: str, explain: bool, narrow: bool) -> int:
    from ..api import (
        NoAwsError,
        derive_template,
        render_explain,
        render_json,
        render_terraform,
    )

    try:
        d = derive_template(template, prepared, force=options.force)
    except NoAwsError as e:
        print(f"Error: {e}", file=sys.stderr)
        return 1
    if explain:
        text = render_explain(d, narrow)
    elif fmt == "terraform":
        text = render_terraform(d, narrow)
    else:
        text = render_json(d, narrow)
    sys.stdout.write(template.mask(text))
    return 0
