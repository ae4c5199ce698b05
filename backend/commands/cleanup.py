"""``kiln cleanup``: remove what interrupted or killed runs left behind."""

from __future__ import annotations

import sys

from .flags import Flags

CLEANUP_HELP = """\
Usage: kiln cleanup [options]

  Remove resources that interrupted or killed runs left behind: containers,
  cloud instances, key pairs, security groups, unfinished images, temp files.
  The ledger lives in $KILN_STATE_DIR (default ~/.local/state/kiln).

Options:
  -all         Also remove machines kept on purpose (-on-error=abort, or k in the
               dashboard), even while the dashboard that kept them is open.
  -dry-run     Only list what would be removed.
"""


def cmd_cleanup(argv: list[str], machine: bool) -> int:
    flags = Flags({"all": "bool", "dry-run": "bool", "h": "bool", "help": "bool"}).parse(argv)
    if flags.get("h") or flags.get("help"):
        print(CLEANUP_HELP)
        return 0
    import sqlite3
    import uuid

    from ..api import Ledger, orphaned, reap

    try:
        ledger = Ledger("cleanup-" + str(uuid.uuid4()))
    except (OSError, sqlite3.Error) as e:
        from ..api import ledger_state_dir_name

        print(f"Error: cannot open the resource ledger in {ledger_state_dir_name()}: "
              f"{getattr(e, 'strerror', None) or e}", file=sys.stderr)
        return 1
    entries = orphaned(ledger, include_kept=bool(flags.get("all")))
    # processes first: a command a killed run left running may hold its other resources
    # (a mount it works in, a file it has open)
    entries.sort(key=lambda e: e.kind != "process")
    if not entries:
        kept = [e for e in orphaned(ledger, include_kept=True) if e.kept]
        print("Nothing to clean up." if not kept else
              f"Nothing to clean up; {len(kept)} resource{'s' if len(kept) != 1 else ''} kept "
              "on purpose stay (kiln cleanup -all removes them too):")
        for e in kept:
            print(f"  kept {e.kind} {e.ident}" + (f" (build {e.build})" if e.build else ""))
        return 0
    failed = 0
    for e in entries:
        label = f"{e.kind} {e.ident}" + (f" (build {e.build})" if e.build else "")
        if flags.get("dry-run"):
            print(f"would remove {label}")
            continue
        try:
            reap(e)
        except Exception as ex:  # keep going; report at the end
            failed += 1
            print(f"could not remove {label}: {ex}", file=sys.stderr)
            continue
        ledger.release(e.id)
        print(f"removed {label}")
    return 1 if failed else 0
