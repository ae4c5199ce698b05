"""`kiln validate` on templates with many provisioners: time and peak memory per size.

Validation must grow linearly with the template. Sizes up to --packer-max also run through
`packer validate` (1.6.6) side by side (Packer takes minutes from ~10,000 provisioners on, so
larger sizes are Kiln's alone); each size prints wall time, peak RSS, the time per 1,000
provisioners (flat when linear) and the ratio to Packer.

Run: python3 bench/bench_validate_large.py [--sizes 1000,30000,300000] [--packer-max 1000]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import kiln_env, packer_env  # noqa: E402


def template(n: int) -> str:
    return json.dumps({
        "builders": [{"type": "null", "communicator": "none"}],
        "provisioners": [{"type": "shell-local", "inline": [f"echo {i}"]} for i in range(n)],
    })


def run(argv: list[str], cwd: str, env: dict) -> tuple[float, float, int]:
    """Wall seconds, peak RSS (MB) and exit code of one run of ``argv`` alone."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    return wall, usage.ru_maxrss / 1024.0, proc.returncode


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="1000,30000,300000")
    ap.add_argument("--packer-max", type=int, default=1000)
    args = ap.parse_args()
    packer = shutil.which("packer")
    kiln = [sys.executable, "-m", "kiln.backend.cli", "validate"]
    with tempfile.TemporaryDirectory(prefix="kiln-bench-") as tmp:
        for n in (int(x) for x in args.sizes.split(",")):
            tpl = os.path.join(tmp, f"t{n}.json")
            Path(tpl).write_text(template(n))
            wall, rss, code = run([*kiln, tpl], tmp, kiln_env(tmp))
            line = (f"{n:>7} provisioners: kiln {wall:6.2f} s, {rss:6.0f} MB peak, "
                    f"{wall / n * 1000 * 1000:6.1f} ms per 1,000 (exit {code})")
            if packer and n <= args.packer_max:
                pw, prss, pcode = run([packer, "validate", tpl], tmp, packer_env(tmp))
                line += f"; packer {pw:6.2f} s, {prss:4.0f} MB (exit {pcode}); ratio {wall / pw:.2f}x"
            print(line, flush=True)


if __name__ == "__main__":
    main()
