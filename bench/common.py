"""Shared helpers for the benchmarks: run Kiln and Packer 1.6.6 side by side."""

from __future__ import annotations

import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def packer_env(tmp: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(CHECKPOINT_DISABLE="1", PACKER_CONFIG_DIR=os.path.join(tmp, "pc"),
               PACKER_CACHE_DIR=os.path.join(tmp, "cache"), PACKER_NO_COLOR="1")
    env.pop("PACKER_PLUGIN_PATH", None)
    return env


def kiln_env(tmp: str) -> dict[str, str]:
    env = dict(os.environ)
    env["KILN_STATE_DIR"] = os.path.join(tmp, "state")
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # measure Kiln as installed: with bytecode
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def timed(argv: list[str], cwd: str, env: dict[str, str]) -> tuple[float, int, float]:
    """Wall seconds, exit code and peak RSS (MB) of one run; output discarded."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t0 = time.perf_counter()
    proc = subprocess.run(argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return wall, proc.returncode, max(peak, before) / 1024.0


def compare(name: str, template: str, runs: int = 3, kiln_args: tuple[str, ...] = (),
            packer_args: tuple[str, ...] = (), target: float | None = None) -> dict:
    """Run ``template`` through both tools ``runs`` times each; print medians and the ratio."""
    packer = shutil.which("packer")
    results = {}
    with tempfile.TemporaryDirectory(prefix="kiln-bench-") as tmp:
        tpl = os.path.join(tmp, "template.json")
        Path(tpl).write_text(template)
        tools = {"kiln": [sys.executable, "-m", "kiln.backend.cli", "build", "-color=false", *kiln_args, tpl]}
        if packer:
            tools["packer"] = [packer, "build", "-color=false", *packer_args, tpl]
        for tool, argv in tools.items():
            env = kiln_env(tmp) if tool == "kiln" else packer_env(tmp)
            walls, codes = [], []
            for _ in range(runs):
                w, code, _peak = timed(argv, tmp, env)
                walls.append(w)
                codes.append(code)
            results[tool] = {"median": statistics.median(walls), "all": walls, "exit": codes}
    k = results["kiln"]["median"]
    line = f"{name}: kiln {k:.3f}s"
    if "packer" in results:
        p = results["packer"]["median"]
        ratio = k / p if p else float("nan")
        results["ratio"] = ratio
        line += f"  packer {p:.3f}s  ratio {ratio:.2f}x"
        if target is not None:
            line += f"  (target <= {target}x: {'met' if ratio <= target else 'NOT met'})"
    else:
        line += "  (packer not installed)"
    print(line, flush=True)
    return results
