"""The ``kiln`` command line: one module per command (``cmd_<name>``), Packer's flags and
exit codes.

Only the standard library is imported here; each command imports what it needs when it
runs, so ``kiln --help`` and ``kiln validate`` stay fast. Commands are the only place that
prints usage errors.
"""

from __future__ import annotations

import importlib
import os
import sys

from .flags import UsageError

USAGE = """\
Usage: kiln [--version] [--help] <command> [args]

Build machine images from Packer-compatible templates (JSON, YAML, HCL2),
with a live terminal dashboard.

Commands:
    (none)          open the dashboard on the templates in this directory
    tui             open the dashboard: kiln tui [DIR|TEMPLATE]
    build           build image(s) from a template
    validate        check that a template is valid
    inspect         see the components of a template
    history         list recent runs recorded next to a template
    cleanup         remove what interrupted or killed runs left behind
    cache           the provisioner cache of docker builds: ls, prune, why
    dev             build a docker template's provisioners, rerun them on every save
    iam             the least-privilege IAM policy a template needs (iam policy),
                    or check the credentials hold it (iam check)
    fmt             rewrite HCL2 templates in the canonical format
    hcl2_upgrade    convert a JSON template to HCL2
    version         print the version

Run 'kiln <command> -help' for the flags of a command. Flags follow Packer's
syntax: -flag, --flag, -flag=value or -flag value; booleans as -flag or
-flag=false. -machine-readable may appear anywhere.
"""


#: command -> module of this package holding ``cmd_<module>``
COMMANDS = ("build", "validate", "inspect", "history", "cleanup", "cache", "dev", "iam",
            "version", "tui", "fmt", "hcl2_upgrade")


def run(name: str, argv: list[str], machine: bool) -> int:
    module = importlib.import_module(f"{__name__}.{name}")
    return getattr(module, f"cmd_{name}")(argv, machine)


def main(argv: list[str] | None = None) -> int:
    """Run a command; whatever goes wrong with the terminal or the disk, a message and an
    exit code, never a traceback."""
    try:
        code = _main(argv)
    except BrokenPipeError:  # `kiln ... | head`: the reader has what it wanted
        _quiet(sys.stdout)
        return 1
    except OSError as e:
        if _stdout_failed(e):
            _report_stdout(e)
        else:
            where = f" {e.filename}" if e.filename else ""
            _err(f"Error:{where}: {e.strerror or e}" if where else f"Error: {e.strerror or e}")
        return 1
    except Exception as e:
        if type(e).__module__ != "sqlite3":
            raise
        _err(f"Error: the Kiln database cannot be used: {e}")
        return 1
    # what print() left in the buffer must reach the reader too, or the command failed
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        _quiet(sys.stdout)
    except OSError as e:
        _report_stdout(e)
        return code or 1
    return code


def _err(text: str) -> None:
    try:
        print(text, file=sys.stderr, flush=True)
    except OSError:
        _quiet(sys.stderr)


def _quiet(stream) -> None:
    from .build import silence

    silence(stream)


def _stdout_failed(e: OSError) -> bool:
    import errno

    return e.filename is None and e.errno in (errno.ENOSPC, errno.EIO, errno.EDQUOT, errno.EFBIG,
                                               errno.EPIPE)


def _report_stdout(e: OSError) -> None:
    _quiet(sys.stdout)
    _err(f"Error: cannot write to standard output: {e.strerror or e}")


def _main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    machine = False
    if "-machine-readable" in argv or "--machine-readable" in argv:
        machine = True
        argv = [a for a in argv if a not in ("-machine-readable", "--machine-readable")]
    if not argv:
        return run("tui", [], machine)
    first = argv[0]
    if first in ("-h", "-help", "--help", "help"):
        print(USAGE)
        return 0
    if first in ("-v", "-version", "--version"):
        return run("version", [], machine)
    if first.startswith("-"):
        print(USAGE, file=sys.stderr)
        print(f"Error: flags go after the command: {first}", file=sys.stderr)
        return 1
    if first not in COMMANDS:
        if os.path.exists(first):
            return run("tui", argv, machine)
        print(USAGE, file=sys.stderr)
        print(f"Error: unknown command {first!r}", file=sys.stderr)
        return 127
    try:
        return run(first, argv[1:], machine)
    except UsageError as e:
        text = str(e)
        print(text if text.startswith("Usage") else f"Error: {text}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
