"""SSH provisioning wall time: `packer build` (1.6.6) against `kiln build`, side by side.

One real sshd on 127.0.0.1 (tests/support/kiln_services.Sshd, started here) serves
both tools. The template is the null builder over SSH with 20 shell provisioners and
one file provisioner uploading 100 MB. Runs alternate between the tools so both see
the same machine load; medians of RUNS (default 3) and the ratio are printed
(target: Kiln <= 1.0x Packer). Every run is checked: exit 0 and the uploaded file
complete on the machine.

Both log in as the test sshd's password user by default: root's login shell on a
developer machine may run slow start-up files (pyenv init: ~0.35 s per command), which
would measure bash rather than the tools; ``--root`` logs in as root with the key.

    python bench/bench_ssh.py [--runs N] [--mb 100] [--shells 20] [--sftp] [--root] [--json]
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
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "support"))
sys.path.insert(0, str(REPO / "bench"))

from common import kiln_env, packer_env  # noqa: E402
from kiln_services import Sshd  # noqa: E402

TARGET = 1.0


def template(
    work: Path, sshd: Sshd, shells: int, payload: Path, dest: Path, method: str, root: bool
) -> Path:
    provisioners: list[dict] = [
        {"type": "shell", "inline": [f"echo provisioner {i}", "uname -s > /dev/null"]}
        for i in range(shells)
    ]
    provisioners.append({"type": "file", "source": str(payload), "destination": str(dest)})
    path = work / "bench-ssh.json"
    path.write_text(
        json.dumps(
            {
                "builders": [
                    {
                        "type": "null",
                        "ssh_host": sshd.host,
                        "ssh_port": sshd.port,
                        "ssh_username": sshd.user,
                        "ssh_private_key_file": sshd.private_key_path,
                        "ssh_timeout": "30s",
                        "ssh_file_transfer_method": method,
                    }
                ],
                "provisioners": provisioners,
            },
            indent=2,
        )
    )
    return path


def run(argv: list[str], cwd: Path, env: dict[str, str], dest: Path, size: int) -> float:
    if dest.exists():
        dest.unlink()
    t = time.perf_counter()
    proc = subprocess.run(
        argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        sys.exit(f"{argv[0]} failed (exit {proc.returncode}):\n{proc.stdout[-3000:]}")
    if not dest.exists() or dest.stat().st_size != size:
        sys.exit(f"{argv[0]}: the uploaded file is missing or incomplete")
    return wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--mb", type=int, default=100, help="size of the uploaded file")
    ap.add_argument("--shells", type=int, default=20, help="number of shell provisioners")
    ap.add_argument(
        "--sftp",
        action="store_true",
        help="ssh_file_transfer_method sftp (default scp, Packer's default)",
    )
    ap.add_argument("--root", action="store_true", help="log in as root with the key")
    ap.add_argument("--json", action="store_true", help="print the results as JSON too")
    args = ap.parse_args()

    packer = shutil.which("packer")
    method = "sftp" if args.sftp else "scp"
    with tempfile.TemporaryDirectory(prefix="kiln-bench-ssh-") as tmp, Sshd() as sshd:
        work = Path(tmp)
        payload = work / "payload.bin"
        size = args.mb << 20
        with open(payload, "wb") as f:
            block = os.urandom(1 << 20)
            for _ in range(args.mb):
                f.write(block)
        # the machine is this host; the password user must be able to write there
        drop = Path(tempfile.mkdtemp(prefix="kiln-bench-ssh-dest-"))
        drop.chmod(0o777)
        dest = drop / "uploaded.bin"
        tpl = template(work, sshd, args.shells, payload, dest, method, args.root)
        tools = {
            "kiln": (
                [sys.executable, "-m", "kiln.backend.cli", "build", "-color=false", str(tpl)],
                kiln_env(tmp),
            )
        }
        if packer:
            tools["packer"] = ([packer, "build", "-color=false", str(tpl)], packer_env(tmp))
        times: dict[str, list[float]] = {name: [] for name in tools}
        for argv, env in tools.values():  # one uncounted warm-up each
            run(argv, work, env, dest, size)
        for _ in range(args.runs):
            for name, (argv, env) in tools.items():
                times[name].append(run(argv, work, env, dest, size))
        shutil.rmtree(drop, ignore_errors=True)

    who = "root, key" if args.root else "user, password"
    label = f"{args.shells} shell provisioners + {args.mb} MB upload over SSH ({method}, {who})"
    k = statistics.median(times["kiln"])
    result: dict = {"bench": label, "kiln": times["kiln"], "kiln_median": k}
    line = f"{label}: kiln {k:.2f}s"
    if "packer" in times:
        p = statistics.median(times["packer"])
        ratio = k / p
        result.update(packer=times["packer"], packer_median=p, ratio=ratio)
        line += (
            f"  packer {p:.2f}s  ratio {ratio:.2f}x  (target <= {TARGET}x: "
            f"{'met' if ratio <= TARGET else 'NOT met'})"
        )
    else:
        line += "  (packer not installed)"
    print(line)
    if args.json:
        print(json.dumps(result))


if __name__ == "__main__":
    main()
