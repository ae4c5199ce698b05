"""``kiln [tui] [DIR|TEMPLATE]``: the dashboard."""

from __future__ import annotations

from .flags import Flags

TUI_HELP = """\
Usage: kiln [tui] [DIR|TEMPLATE]

  Open the dashboard on the templates in DIR (default: the current directory).
  Press ? in the dashboard for its keys.
"""


def cmd_tui(argv: list[str], machine: bool) -> int:
    flags = Flags({"h": "bool", "help": "bool", "var": "multi", "var-file": "multi"}).parse(argv)
    if flags.get("h") or flags.get("help"):
        print(TUI_HELP)
        return 0
    target = flags.args[0] if flags.args else "."
    vars_ = dict(kv.split("=", 1) for kv in flags.get("var", []) if "=" in kv)
    from ...tui.app import run_app

    return run_app(target, vars=vars_, var_files=tuple(flags.get("var-file", [])))
