"""Wall time of a docker build: `packer build` (1.6.6) against `kiln build`, side by side.

The template starts kiln/busybox:latest (made offline by scripts/make-base-image.sh),
runs three provisioners (shell, file, shell), commits the container and tags the image.
After one uncounted warm-up build each, each tool builds it RUNS times, alternating,
so both see the same machine load; the medians and their ratio are printed (target:
Kiln <= 0.8x Packer). Kiln's bytecode is cached as on a user's machine.

    python bench/bench_docker.py [--runs N] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "support"))

from kiln_services import (  # noqa: E402
    docker_client,
    docker_unavailable_reason,
    ensure_base_image,
    packer_env,
    packer_path,
)

TARGET = 0.8


def template(workdir: Path, image: str) -> Path:
    payload = workdir / "payload.txt"
    payload.write_text("payload for the file provisioner\n")
    path = workdir / "bench-docker.json"
    path.write_text(json.dumps({
        "variables": {"repository": "kiln/bench"},
        "builders": [{"type": "docker", "image": image, "pull": False, "commit": True,
                      "changes": ["ENV BENCH=1"]}],
        "provisioners": [
            {"type": "shell", "inline": ["mkdir -p /srv", "echo one > /srv/one.txt"]},
            {"type": "file", "source": str(payload), "destination": "/srv/payload.txt"},
            {"type": "shell", "inline": ["cat /srv/one.txt /srv/payload.txt", "ls -l /srv"]},
        ],
        "post-processors": [{"type": "docker-tag", "repository": "{{user `repository`}}",
                             "tags": ["bench"]}],
    }, indent=2))
    return path


def timed(argv: list[str], cwd: Path, env: dict[str, str]) -> float:
    t = time.perf_counter()
    proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=600)
    took = time.perf_counter() - t
    if proc.returncode != 0:
        raise SystemExit(f"{argv[0]} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return took


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args()

    reason = docker_unavailable_reason()
    if reason:
        print(f"skipped: {reason}", file=sys.stderr)
        return 2
    packer = packer_path()
    if packer is None:
        print("skipped: packer is not installed (scripts/install-deps.sh)", file=sys.stderr)
        return 2
    image = ensure_base_image()
    client = docker_client()
    work = Path(tempfile.mkdtemp(prefix="kiln-bench-docker-"))
    tags: list[str] = []
    try:
        tpl = template(work, image)
        penv = packer_env(work / "packer-env")
        kenv = dict(os.environ)
        kenv["PYTHONPATH"] = str(REPO) + os.pathsep + kenv.get("PYTHONPATH", "")
        kenv["KILN_STATE_DIR"] = str(work / "kiln-state")
        # as on a user's machine, modules are compiled once: bytecode is cached (outside the
        # repository) even where PYTHONDONTWRITEBYTECODE is set, as in CI
        kenv.pop("PYTHONDONTWRITEBYTECODE", None)
        kenv["PYTHONPYCACHEPREFIX"] = str(work / "pycache")
        times: dict[str, list[float]] = {"packer": [], "kiln": []}
        for i in range(-1, args.runs):  # run -1 warms both up and is not counted
            for tool in ("packer", "kiln") if i % 2 == 0 else ("kiln", "packer"):
                repo = f"kiln/bench-{tool}-{uuid.uuid4().hex[:8]}"
                tags.append(f"{repo}:bench")
                if tool == "packer":
                    argv = [packer, "build", "-color=false", "-var", f"repository={repo}",
                            str(tpl)]
                    took = timed(argv, work, penv)
                else:
                    argv = [sys.executable, "-m", "kiln.backend.cli", "build", "-color=false",
                            "-timings=false", f"-state-dir={work / 'kiln-history'}", "-var",
                            f"repository={repo}", str(tpl)]
                    took = timed(argv, work, kenv)
                if i >= 0:
                    times[tool].append(took)
        p = statistics.median(times["packer"])
        k = statistics.median(times["kiln"])
        ratio = k / p
        if args.json:
            print(json.dumps({"packer_s": times["packer"], "kiln_s": times["kiln"],
                              "packer_median_s": p, "kiln_median_s": k, "ratio": ratio,
                              "target": TARGET}))
        else:
            print(f"docker build, 3 provisioners + commit + docker-tag, {args.runs} runs each")
            print(f"  packer 1.6.6: median {p:.2f}s  ({', '.join(f'{x:.2f}' for x in times['packer'])})")
            print(f"  kiln:         median {k:.2f}s  ({', '.join(f'{x:.2f}' for x in times['kiln'])})")
            print(f"  ratio kiln/packer: {ratio:.2f}x (target <= {TARGET}x) "
                  f"{'OK' if ratio <= TARGET else 'MISSED'}")
        return 0
    finally:
        for ref in tags:
            try:
                client.images.remove(ref, force=True)
            except Exception:
                pass
        client.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
