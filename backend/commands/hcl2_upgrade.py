"""``kiln hcl2_upgrade``: write the HCL2 for a JSON or YAML template (the conversion is
template.hcl2.upgrade)."""

from __future__ import annotations

import os
import sys

from ..template.hcl2.upgrade import UpgradeError, upgrade
from .flags import Flags, UsageError

HELP = """\
Usage: kiln hcl2_upgrade [options] TEMPLATE.json

  Write an HCL2 template equivalent to the JSON (or YAML) TEMPLATE, by default
  to TEMPLATE.json.pkr.hcl. Kiln builds it to the same result. Go-template
  functions are translated to HCL2 where an exact equivalent exists; the rest
  stays as template text that plugins render at run time (warnings say where
  that is not possible).

Options:
  -output-file=PATH   Where to write the HCL2 template.
  -with-annotations   Accepted for compatibility (Kiln always annotates).
"""



def cmd_hcl2_upgrade(argv: list[str], machine: bool) -> int:
    from ..template.errors import TemplateError

    try:
        flags = Flags({"output-file": "str", "with-annotations": "bool", "h": "bool",
                       "help": "bool"}).parse(argv)
    except UsageError as e:
        print(f"Error: {e}", file=sys.stderr)
        return 1
    if flags.get("h") or flags.get("help"):
        print(HELP)
        return 0
    if len(flags.args) != 1:
        print(HELP, file=sys.stderr)
        return 1
    src = flags.args[0]
    out = flags.get("output-file") or src + ".pkr.hcl"
    if src.endswith((".pkr.hcl", ".pkr.json")) or os.path.isdir(src):
        print(f"Error: {src} is already an HCL2 template", file=sys.stderr)
        return 1
    try:
        result = upgrade(src)
    except TemplateError as e:
        print("Error: " + e.format(), file=sys.stderr)
        return 1
    except UpgradeError as e:
        print(f"Error: {src}: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"Error: cannot read {src}: {e.strerror or e}", file=sys.stderr)
        return 1
    try:
        with open(out, "w", encoding="utf-8") as fh:
            fh.write(result.text)
    except OSError as e:
        print(f"Error: cannot write {out}: {e.strerror or e}", file=sys.stderr)
        return 1
    for w in result.warnings:
        print(f"Warning: {w}", file=sys.stderr)
    print(f"Wrote {out}")
    return 0
