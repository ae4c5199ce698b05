"""``kiln fmt``: rewrite HCL2 files in the canonical format (the formatter is template.hcl2.fmt)."""

from __future__ import annotations

import difflib
import os
import sys

from ..template.hcl2.fmt import EXTENSIONS, FormatError, format_text
from .flags import Flags, UsageError

FMT_HELP = """\
Usage: kiln fmt [options] PATH...

  Rewrite HCL2 templates (.pkr.hcl) and variable files (.pkrvars.hcl) in the
  canonical format: 2-space indentation, aligned "=" in consecutive argument
  lines, one blank line between blocks. Comments are kept. JSON files are not
  changed. PATH may be a file, a directory or - (read stdin, write stdout).

Options:
  -check        Write nothing; exit 3 if any file is not formatted.
  -diff         Show the changes as a unified diff.
  -write=false  Do not write the files (on with -check).
  -recursive    Also format files in subdirectories.
"""


def _targets(paths: list[str], recursive: bool) -> tuple[list[str], list[str]]:
    files: list[str] = []
    errors: list[str] = []
    for p in paths:
        if os.path.isdir(p):
            if recursive:
                for dirpath, dirs, names in os.walk(p):
                    dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                    files += [os.path.join(dirpath, n) for n in sorted(names)
                              if n.endswith(EXTENSIONS)]
            else:
                files += [os.path.join(p, n) for n in sorted(os.listdir(p))
                          if n.endswith(EXTENSIONS) and os.path.isfile(os.path.join(p, n))]
        elif os.path.isfile(p):
            if p.endswith(EXTENSIONS) or p.endswith(".hcl"):
                files.append(p)
            elif p.endswith(".json"):
                errors.append(f"{p}: JSON files are not formatted (only .pkr.hcl and "
                              ".pkrvars.hcl)")
            else:
                errors.append(f"{p}: not an HCL2 file (.pkr.hcl or .pkrvars.hcl)")
        else:
            errors.append(f"{p}: no such file or directory")
    return files, errors


def _diff(path: str, old: str, new: str) -> str:
    name = path.lstrip("/")
    return "".join(difflib.unified_diff(old.splitlines(True), new.splitlines(True),
                                        f"old/{name}", f"new/{name}"))



def cmd_fmt(argv: list[str], machine: bool) -> int:

    try:
        flags = Flags({"check": "bool", "diff": "bool", "write": "bool", "recursive": "bool",
                       "h": "bool", "help": "bool"}).parse(argv)
    except UsageError as e:
        print(f"Error: {e}", file=sys.stderr)
        print(FMT_HELP, file=sys.stderr)
        return 1
    if flags.get("h") or flags.get("help"):
        print(FMT_HELP)
        return 0
    if not flags.args:
        print(FMT_HELP, file=sys.stderr)
        return 1
    check = bool(flags.get("check"))
    show_diff = bool(flags.get("diff"))
    write = bool(flags.get("write", True)) and not check
    code = 0
    changed_any = False

    if flags.args == ["-"]:
        text = sys.stdin.read()
        try:
            new = format_text(text)
        except FormatError as e:
            print(f"Error: <stdin>:{e.line}:{e.col}: {e.message}", file=sys.stderr)
            return 1
        if show_diff and new != text:
            sys.stdout.write(_diff("<stdin>", text, new))
        if not check and not show_diff:
            sys.stdout.write(new)
        return 3 if check and new != text else 0
    if "-" in flags.args:
        print("Error: - (standard input) cannot be combined with other paths", file=sys.stderr)
        return 1

    files, errors = _targets(flags.args, bool(flags.get("recursive")))
    for e in errors:
        print(f"Error: {e}", file=sys.stderr)
        code = 1
    for path in files:
        try:
            with open(path, encoding="utf-8") as fh:
                text = fh.read()
        except (OSError, UnicodeDecodeError) as e:
            print(f"Error: {path}: cannot read: {getattr(e, 'strerror', None) or e}",
                  file=sys.stderr)
            code = 1
            continue
        try:
            new = format_text(text)
        except FormatError as e:
            where = f"{path}:{e.line}:{e.col}" if e.line else path
            print(f"Error: {where}: {e.message}", file=sys.stderr)
            code = 1
            continue
        if new == text:
            continue
        changed_any = True
        print(path)
        if show_diff:
            sys.stdout.write(_diff(path, text, new))
        if write:
            try:
                with open(path, "w", encoding="utf-8") as fh:
                    fh.write(new)
            except OSError as e:
                print(f"Error: {path}: cannot write: {e.strerror or e}", file=sys.stderr)
                code = 1
    sys.stdout.flush()
    if code:
        return code
    return 3 if check and changed_any else 0
