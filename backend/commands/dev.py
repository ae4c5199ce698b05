"""``kiln dev``: build a docker template's provisioners and rerun them on every save."""

from __future__ import annotations

from .flags import COMMON, Flags, one_template, options_from

DEV_HELP = """\
Usage: kiln dev [options] TEMPLATE

  Build the docker builds of TEMPLATE up to the end of their provisioners (no commit,
  no post-processors), keep the container, and watch the template and every local input
  of every provisioner. On a save (after 0.5 s without another change), build again:
  the provisioner cache starts the new container from the image before the first
  provisioner whose inputs changed and runs only from there. Editor swap and backup
  files and .git never count; saves during a run cause one rerun after it.
  q or Ctrl-C stops and removes the container; `kiln cleanup` removes it if kiln dev
  was killed.

Options:
  -var 'key=value' / -var-file=path / -only=.. / -except=..
  -state-dir=DIR     Where history and logs go (default: .kiln next to the template).
  -color=false
"""


def cmd_dev(argv: list[str], machine: bool) -> int:
    flags = Flags({**COMMON, "state-dir": "str", "color": "bool"}).parse(argv)
    if flags.get("h") or flags.get("help"):
        print(DEV_HELP)
        return 0
    path = one_template(flags, DEV_HELP)
    options = options_from(flags)
    from .devloop import run_dev

    return run_dev(path, options)
