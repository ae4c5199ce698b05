"""``kiln dev`` in a terminal: each run is a ``kiln build`` on this terminal; q or a stop
signal ends the loop (the loop itself, watching and rerunning, is the engine's DevLoop)."""

from __future__ import annotations

import signal
import sys
from typing import Any

from ..api import DevLoop, KeyReader, check_builds
from .build import run_build, stop_signals


class TerminalDev(DevLoop):
    def build_once(self) -> int:
        self.runs += 1
        return run_build(self.path, self.options, timings=True)

    def run(self) -> int:
        """The command line's loop: q on the terminal and the stop signals end it."""
        keys = KeyReader(self.quit.set)
        keys.start()
        stops = {}

        def interrupted(signum, frame):
            raise KeyboardInterrupt

        for s in stop_signals():
            stops[s] = signal.signal(s, interrupted)
        try:
            return self.loop()
        finally:
            for s, h in stops.items():
                signal.signal(s, h)
            keys.restore()


def run_dev(path: str, options: Any) -> int:
    problem = check_builds(path, options)
    if problem:
        print(f"Error: {problem}", file=sys.stderr)
        return 1
    return TerminalDev(path, options).run()
