"""How to open a file at a line in the user's editor ($VISUAL, else $EDITOR, else vi)."""

from __future__ import annotations

import os
import shlex

#: editors that take ``+LINE file``
PLUS_LINE = frozenset(
    "vi vim nvim view vim.basic vim.tiny gvim mvim ex nano pico emacs emacsclient micro hx helix"
    " kak joe mg ne jed gedit".split()
)
#: editors that take ``--goto file:line`` (VS Code and its forks)
GOTO = frozenset("code code-insiders codium vscodium cursor windsurf".split())
#: editors that take ``file:line``
COLON = frozenset("subl sublime_text zed".split())


def editor_command(environ: dict[str, str] | None = None) -> list[str]:
    env = os.environ if environ is None else environ
    return shlex.split(env.get("VISUAL") or env.get("EDITOR") or "vi") or ["vi"]


def editor_argv(command: list[str], path: str, line: int = 0) -> list[str]:
    """The argv that opens ``path`` at ``line`` (0: no line) with ``command``."""
    argv = list(command)
    name = os.path.basename(argv[0]) if argv else ""
    if line > 0:
        if name in PLUS_LINE:
            return argv + [f"+{line}", path]
        if name in GOTO:
            return argv + ["--goto", f"{path}:{line}"]
        if name in COLON:
            return argv + [f"{path}:{line}"]
    return argv + [path]
