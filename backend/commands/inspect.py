"""``kiln inspect``: the components of a template."""

from __future__ import annotations

import sys

from .flags import COMMON, Flags, one_template, options_from
from .messages import fail

INSPECT_HELP = """\
Usage: kiln inspect [options] TEMPLATE

  Show the variables, builders, provisioners and post-processors of TEMPLATE.
  Sensitive variables print as <sensitive>.

Options:
  -var 'key=value' / -var-file=path
  -machine-readable
"""


def cmd_inspect(argv: list[str], machine: bool) -> int:
    flags = Flags(COMMON).parse(argv)
    if flags.get("h") or flags.get("help"):
        print(INSPECT_HELP)
        return 0
    path = one_template(flags, INSPECT_HELP)
    from ..api import load_template
    from ..template.errors import TemplateError

    options = options_from(flags)
    try:
        t = load_template(path, options, syntax_only=True)
    except TemplateError as e:
        fail(machine, e)
        return 1
    from ..api import render_inspect
    from ..template.errors import printable

    sys.stdout.write(render_inspect(t, machine) if machine else printable(render_inspect(t)))
    return 0
