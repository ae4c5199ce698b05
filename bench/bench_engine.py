"""Engine benchmarks, Kiln vs Packer 1.6.6 measured in the same run.

(a) 50 shell-local provisioners: target Kiln <= 0.6x Packer's wall time.
(b) one provisioner printing 200,000 lines: Kiln <= 1/20 of Packer's wall time, every line in
    the log file, peak memory < 150 MB.
(c) 16 builds of `sleep 1` with -parallel-builds 16: under 2 s.

Run: python3 bench/bench_engine.py [--runs N] [--skip-packer-200k]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import compare, kiln_env, timed  # noqa: E402


def fifty_provisioners() -> str:
    return json.dumps({
        "builders": [{"type": "null", "communicator": "none"}],
        "provisioners": [{"type": "shell-local", "inline": ["true"]} for _ in range(50)],
    })


def many_lines(n: int) -> str:
    return json.dumps({
        "builders": [{"type": "null", "communicator": "none"}],
        "provisioners": [{"type": "shell-local", "inline": [
            f"i=0; seq 1 {n} | sed 's/^/line number /'"]}],
    })


def parallel(n: int) -> str:
    return json.dumps({
        "builders": [{"type": "null", "name": f"b{i}", "communicator": "none"} for i in range(n)],
        "provisioners": [{"type": "shell-local", "inline": ["sleep 1"]}],
    })


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--skip-packer-200k", action="store_true", help="Packer takes ~45 s for (b)")
    args = ap.parse_args()

    compare("(a) 50 shell-local provisioners", fifty_provisioners(), runs=args.runs, target=0.6)

    # (b): Packer once (it is slow), Kiln with memory and log check
    tpl = many_lines(200_000)
    with tempfile.TemporaryDirectory(prefix="kiln-bench-") as tmp:
        path = os.path.join(tmp, "t.json")
        Path(path).write_text(tpl)
        env = kiln_env(tmp)
        argv = [sys.executable, "-m", "kiln.backend.cli", "build", "-color=false", path]
        walls, peaks = [], []
        for _ in range(args.runs):
            w, code, _ = timed(argv, tmp, env)
            walls.append(w)
        # peak RSS of one run, measured alone
        t0 = time.perf_counter()
        proc = subprocess.run(["/usr/bin/time", "-f", "%M", *argv], cwd=tmp, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        peaks.append(int(proc.stderr.strip().splitlines()[-1]) / 1024.0)
        _ = time.perf_counter() - t0
        logs = list(Path(tmp, ".kiln", "logs").rglob("null.log"))
        count = sum(1 for line in logs[-1].open(errors="replace") if line.startswith("line number "))
        kiln = sorted(walls)[len(walls) // 2]
        print(f"(b) 200,000 lines: kiln {kiln:.3f}s, peak RSS {peaks[0]:.0f} MB, "
              f"{count} lines in the log file", flush=True)
        if not args.skip_packer_200k:
            import shutil

            from common import packer_env

            packer = shutil.which("packer")
            if packer:
                w, code, _ = timed([packer, "build", "-color=false", path], tmp, packer_env(tmp))
                print(f"(b) 200,000 lines: packer {w:.3f}s  ratio {kiln / w:.3f}x "
                      f"(target <= 0.05x: {'met' if kiln / w <= 0.05 else 'NOT met'})", flush=True)

    res = compare("(c) 16 x sleep 1, -parallel-builds 16", parallel(16), runs=args.runs,
                  kiln_args=("-parallel-builds=16",), packer_args=("-parallel-builds=16",))
    k = res["kiln"]["median"]
    print(f"(c) target under 2 s: {'met' if k < 2 else 'NOT met'}", flush=True)


if __name__ == "__main__":
    main()
