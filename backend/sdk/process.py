"""Processes on this host: the lock every spawn takes and how to tell a process apart."""

from __future__ import annotations

import threading

#: Held while a child process is spawned and while a script file is written. A
#: child forked while another thread still has a script open for writing keeps
#: that descriptor until it execs, and running the script then fails with
#: "Text file busy" (ETXTBSY); serialising the two makes that impossible.
SPAWN_LOCK = threading.Lock()


def process_start(pid: int) -> int | None:
    """When process ``pid`` started (clock ticks since boot), to tell it from a later
    process that got the same id; None where /proc does not say."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat_line = f.read()
        return int(stat_line[stat_line.rindex(b")") + 2:].split()[19])
    except (OSError, ValueError, IndexError):
        return None
