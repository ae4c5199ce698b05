"""Start-up: `kiln validate` on a small template vs `packer validate` (target: Kiln under 300 ms).

Run: python3 bench/bench_validate.py [--runs N]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, kiln_env, packer_env  # noqa: E402

TEMPLATE = ROOT / "tests" / "corpus" / "validate" / "ok_multi_builder.json"


def measure(argv: list[str], cwd: str, env: dict, runs: int) -> float:
    subprocess.run(argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # warm up
    walls = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        walls.append(time.perf_counter() - t0)
    return statistics.median(walls)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=10)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        kiln = shutil.which("kiln")
        argv = [kiln] if kiln else [sys.executable, "-m", "kiln.backend.cli"]
        k = measure([*argv, "validate", str(TEMPLATE)], str(TEMPLATE.parent), kiln_env(tmp), args.runs)
        line = f"validate: kiln {k * 1000:.0f} ms (target < 300 ms: {'met' if k < 0.3 else 'NOT met'})"
        h = measure([*argv, "--help"], tmp, kiln_env(tmp), args.runs)
        line += f", kiln --help {h * 1000:.0f} ms"
        packer = shutil.which("packer")
        if packer:
            p = measure([packer, "validate", str(TEMPLATE)], str(TEMPLATE.parent), packer_env(tmp), args.runs)
            line += f"; packer {p * 1000:.0f} ms; ratio {k / p:.2f}x"
        print(line)


if __name__ == "__main__":
    os.environ.setdefault("CHECKPOINT_DISABLE", "1")
    main()
