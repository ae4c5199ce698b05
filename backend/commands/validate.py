"""``kiln validate``: check a template as Packer would, without building."""

from __future__ import annotations

from .flags import COMMON, Flags, one_template, options_from
from .messages import fail, say

VALIDATE_HELP = """\
Usage: kiln validate [options] TEMPLATE

  Check TEMPLATE: syntax, variables, every builder, provisioner and
  post-processor configuration. All problems are listed at once as
  file:line:col: key.path: message. Exit 0 when valid, 1 otherwise.

Options:
  -syntax-only           Only check the syntax.
  -evaluate-datasources  Run HCL2 data sources (amazon-ami: AWS calls); without it
                         their outputs are unknown and checked as far as possible.
  -only=foo,bar / -except=foo,bar   Validate only (or all but) these builds.
  -var 'key=value' / -var-file=path
  -machine-readable
"""


def cmd_validate(argv: list[str], machine: bool) -> int:
    flags = Flags({**COMMON, "syntax-only": "bool", "no-warn-undeclared-var": "bool",
                   "evaluate-datasources": "bool"}).parse(argv)
    if flags.get("h") or flags.get("help"):
        print(VALIDATE_HELP)
        return 0
    path = one_template(flags, VALIDATE_HELP)
    from ..api import load_template, validate
    from ..template.errors import TemplateError

    options = options_from(flags)
    template = None
    try:
        if flags.get("syntax-only"):
            load_template(path, options, syntax_only=True,
                          evaluate_data=bool(flags.get("evaluate-datasources")))
            say(machine, "Syntax-only check passed. Everything looks okay.")
            return 0
        result = validate(path, options, evaluate_data=bool(flags.get("evaluate-datasources")))
        template = result.template
        if (options.only or options.except_) and not result.builds:
            names = ", ".join(b.name for b in template.builds)
            say(machine, f"Warning: -only/-except selected no build; the builds are: {names}")
        for w in result.warnings:
            say(machine, f"Warning: {template.mask(w)}")
        if result.problems:
            raise TemplateError(result.problems)
    except TemplateError as e:
        fail(machine, e, template.mask if template is not None else None)
        return 1
    except OSError as e:
        fail(machine, f"cannot read {path}: {e.strerror or e}")
        return 1
    say(machine, "The configuration is valid.")
    return 0
