"""``kiln history``: the runs recorded next to a template."""

from __future__ import annotations

import os

from .flags import Flags, UsageError, positive

HISTORY_HELP = """\
Usage: kiln history [options] [TEMPLATE|DIR]

  List recent runs recorded in .kiln/history.db next to TEMPLATE (or in DIR).
  A run whose process is gone without finishing (kill -9, a crash) shows as
  crashed. After each build only the newest 100 runs and their logs are kept
  ($KILN_HISTORY_KEEP sets how many; 0 keeps everything).

Options:
  -n=20        How many runs.
  -state-dir=DIR
  -json        Print JSON.
  -prune       Remove all but the newest runs (-keep) and their logs now.
  -keep=N      With -prune: how many runs to keep (default: $KILN_HISTORY_KEEP or 100).
"""


def cmd_history(argv: list[str], machine: bool) -> int:
    flags = Flags({"n": "str", "state-dir": "str", "json": "bool", "h": "bool", "help": "bool",
                   "prune": "bool", "keep": "str"}).parse(argv)
    if flags.get("h") or flags.get("help"):
        print(HISTORY_HELP)
        return 0
    import json
    import time

    from ..api import default_keep, default_state_dir, prune, recent_runs
    from ..template.errors import printable

    target = flags.args[0] if flags.args else "."
    state = flags.get("state-dir") or (
        os.path.join(target, ".kiln") if os.path.isdir(target) and not target.endswith(".kiln")
        else default_state_dir(target) if not target.endswith(".kiln") else target)
    if flags.get("prune"):
        keep = positive(flags, "keep", default_keep() or 100)
        runs_gone, dirs_gone = prune(state, keep)
        print(f"Pruned {runs_gone} run{'s' if runs_gone != 1 else ''} and {dirs_gone} log "
              f"director{'ies' if dirs_gone != 1 else 'y'} from {state}; the newest {keep} "
              "runs are kept.")
        return 0
    if flags.get("keep") is not None:
        raise UsageError("-keep goes with -prune")
    limit = positive(flags, "n", 20)
    runs = recent_runs(os.path.join(state, "history.db"), limit)
    if flags.get("json"):
        print(json.dumps(runs, indent=2))
        return 0
    if not runs:
        print(f"No runs recorded in {state}")
        return 0
    for r in runs:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r["started"]))
        dur = f"{r['finished'] - r['started']:.1f}s" if r["finished"] else "-"
        # names, errors and paths come from templates: no control character gets through
        print(printable(f"{when}  {r['status']:<10} {dur:>8}  {r['id'][:8]}  "
                        f"{os.path.relpath(r['template'])}", False))
        for b in r["builds"]:
            bd = f"{b['duration']:.1f}s" if b["duration"] is not None else "-"
            err = f"  {b['error']}" if b["error"] else ""
            print(printable(f"    {b['name']:<24} {b['status']:<10} {bd:>8}{err}", False))
            if b.get("kept"):
                hint = f": {b['access_hint']}" if b.get("access_hint") else ""
                print(printable(f"    {'':<24} machine kept{hint}", False))
            if b["log"]:
                print(printable(f"    {'':<24} log: {b['log']}", False))
    return 0
