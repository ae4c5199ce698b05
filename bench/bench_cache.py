"""The image development loop: Packer 1.6.6 against Kiln's provisioner cache and kiln dev.

A docker template with 6 shell provisioners, each a script that prints a line, sleeps
1 s and writes a file. Each round edits the 5th script and builds again, with both tools
on the same machine in the same run:

* second build after the edit: Packer (which runs all six again) against Kiln (which
  starts from the cached image after the 4th); target Kiln <= 0.3x Packer;
* a rebuild with no change: Kiln, target < 1.5 s;
* kiln dev: from saving the 5th script to the first output line of its rerun, median of
  10 saves; target < 1 s.

A base image of its own (busybox plus a unique ENV) keeps earlier runs' cache entries out;
everything the bench made is removed at the end.

    python bench/bench_cache.py [--runs N] [--saves 10] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "support"))
sys.path.insert(0, str(REPO))

from kiln_services import (  # noqa: E402
    docker_client,
    docker_unavailable_reason,
    ensure_base_image,
    packer_env,
    packer_path,
)

TARGET_RATIO = 0.3
TARGET_NOCHANGE = 1.5
TARGET_DEV = 1.0


def write_scripts(files: Path, token: str) -> None:
    for i in range(1, 7):
        extra = f" {token}" if i == 5 else ""
        (files / f"p{i}.sh").write_text(f"echo start {i}{extra}\nsleep 1\necho {i} > /file{i}\n")


def template(work: Path, image: str) -> Path:
    path = work / "bench-cache.json"
    path.write_text(json.dumps({
        "builders": [{"type": "docker", "image": image, "pull": False, "discard": True}],
        "provisioners": [{"type": "shell", "script": f"files/p{i}.sh"} for i in range(1, 7)],
    }, indent=1))
    return path


def kiln_env(state: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["KILN_STATE_DIR"] = str(state)
    env.pop("KILN_CACHE", None)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def timed(argv: list[str], cwd: Path, env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{argv[0]} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return wall


def dev_latency(work: Path, tpl: Path, env: dict[str, str], saves: int) -> list[float]:
    proc = subprocess.Popen([sys.executable, "-m", "kiln.backend.cli", "dev", "-color=false", str(tpl)],
                            cwd=work, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, bufsize=1)
    lines: queue.Queue[tuple[float, str]] = queue.Queue()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put((time.perf_counter(), line))
        lines.put((time.perf_counter(), ""))

    threading.Thread(target=read, daemon=True).start()

    def wait_for(needle: str) -> float:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                at, line = lines.get(timeout=1)
            except queue.Empty:
                continue
            if not line:
                raise SystemExit("kiln dev ended early")
            if needle in line:
                return at
        raise SystemExit(f"kiln dev: no {needle!r} in time")

    out = []
    try:
        wait_for("==> dev: watching")
        for i in range(saves):
            token = f"save-{i}-{uuid.uuid4().hex[:6]}"
            script = work / "files" / "p5.sh"
            t0 = time.perf_counter()
            script.write_text(f"echo start 5 {token}\nsleep 1\necho 5 > /file5\n")
            at = wait_for(f"start 5 {token}")
            out.append(at - t0)
            wait_for("==> dev: watching")
    finally:
        if proc.poll() is None:
            assert proc.stdin is not None
            proc.stdin.write("q\n")
            proc.stdin.flush()
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--saves", type=int, default=10)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    reason = docker_unavailable_reason()
    if reason:
        print(f"docker unavailable: {reason}", file=sys.stderr)
        return 2
    packer = packer_path()
    ensure_base_image()
    client = docker_client()
    base_repo = "kiln-bench-cache-base"
    base_tag = uuid.uuid4().hex[:12]
    container = client.containers.create("kiln/busybox:latest", command=["true"])
    container.commit(repository=base_repo, tag=base_tag,
                     changes=[f"ENV KILN_BENCH={uuid.uuid4().hex}"])
    container.remove(force=True)
    image = f"{base_repo}:{base_tag}"
    results: dict = {"packer_second": [], "kiln_second": [], "kiln_nochange": [], "dev": []}
    with tempfile.TemporaryDirectory(prefix="kiln-bench-cache-") as tmp:
        work = Path(tmp)
        (work / "files").mkdir()
        tpl = template(work, image)
        kenv = kiln_env(work / "state")
        penv = packer_env(work / "packer")
        kiln = [sys.executable, "-m", "kiln.backend.cli", "build", "-color=false", str(tpl)]
        try:
            for r in range(args.runs):
                write_scripts(work / "files", f"a-{r}-{uuid.uuid4().hex[:6]}")
                if packer:
                    timed([packer, "build", "-color=false", str(tpl)], work, penv)
                timed(kiln, work, kenv)
                write_scripts(work / "files", f"b-{r}-{uuid.uuid4().hex[:6]}")
                if packer:
                    results["packer_second"].append(
                        timed([packer, "build", "-color=false", str(tpl)], work, penv))
                results["kiln_second"].append(timed(kiln, work, kenv))
                results["kiln_nochange"].append(timed(kiln, work, kenv))
            results["dev"] = dev_latency(work, tpl, kenv, args.saves)
        finally:
            from kiln.backend.plugins.docker import cache as docker_cache

            for e in docker_cache.entries(client.api):
                if str(e["meta"].get("template", "")).startswith(tmp):
                    try:
                        client.api.remove_image(f"{docker_cache.REPOSITORY}:{e['key']}")
                    except Exception:
                        pass
            try:
                client.images.remove(image, force=True)
            except Exception:
                pass
            client.close()
    med = {k: statistics.median(v) if v else None for k, v in results.items()}
    summary = {"medians": med, "all": results}
    lines = []
    k2 = med["kiln_second"]
    if med["packer_second"]:
        ratio = k2 / med["packer_second"]
        summary["ratio"] = ratio
        lines.append(f"second build after editing provisioner 5 of 6: kiln {k2:.2f}s  packer "
                     f"{med['packer_second']:.2f}s  ratio {ratio:.2f}x (target <= "
                     f"{TARGET_RATIO}x: {'met' if ratio <= TARGET_RATIO else 'NOT met'})")
    else:
        lines.append(f"second build after editing provisioner 5 of 6: kiln {k2:.2f}s "
                     "(packer not installed)")
    nc = med["kiln_nochange"]
    lines.append(f"no-change rebuild: kiln {nc:.2f}s (target < {TARGET_NOCHANGE}s: "
                 f"{'met' if nc < TARGET_NOCHANGE else 'NOT met'})")
    dv = med["dev"]
    lines.append(f"kiln dev, save to the rerun's first output line: median {dv:.2f}s of "
                 f"{len(results['dev'])} (min {min(results['dev']):.2f}s, max "
                 f"{max(results['dev']):.2f}s; target < {TARGET_DEV}s: "
                 f"{'met' if dv < TARGET_DEV else 'NOT met'})")
    if args.json:
        print(json.dumps(summary, indent=2))
    for line in lines:
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
