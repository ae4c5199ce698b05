"""What the permission preflight costs: an amazon-ebs build against a moto server that
enforces IAM, with and without the preflight, side by side with Packer 1.6.6.

One moto_server (tests/support/iam_moto.IamMoto) and one sshd on 127.0.0.1 serve every
run; the builder user holds exactly the policy ``kiln iam policy -narrow=false`` derives
(Packer's runs get Packer's documented list). Runs alternate between the three so all
see the same load; medians of RUNS and the preflight's own time (as the build reports
it) are printed. Target: the preflight adds under 1 s.

    python bench/bench_iam.py [--runs N] [--json]
"""

from __future__ import annotations

import argparse
import json
import re
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
sys.path.insert(0, str(REPO / "bench"))

from common import kiln_env, packer_env  # noqa: E402
from iam_moto import (  # noqa: E402
    PACKER_DOCUMENTED_ACTIONS,
    UBUNTU_NAME,
    UBUNTU_OWNER,
    IamMoto,
    policy_document,
)
from kiln_services import Sshd  # noqa: E402

TARGET = 1.0


def template(moto: IamMoto, sshd: Sshd) -> dict:
    return {"builders": [{
        "type": "amazon-ebs", "region": "us-east-1", "custom_endpoint_ec2": moto.endpoint,
        "source_ami_filter": {"filters": {"name": UBUNTU_NAME}, "owners": [UBUNTU_OWNER],
                              "most_recent": True},
        "instance_type": "t3.micro", "ami_name": "bench-" + uuid.uuid4().hex[:10],
        "ssh_host": sshd.host, "ssh_port": sshd.port, "ssh_username": sshd.user,
        "ssh_private_key_file": sshd.private_key_path, "ssh_timeout": "20s"}],
        "provisioners": [{"type": "shell", "inline": ["true"]}]}


def run(argv: list[str], env: dict[str, str], cwd: str) -> tuple[float, str]:
    t0 = time.perf_counter()
    p = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=300)
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(argv[:4])} failed:\n{p.stdout}\n{p.stderr}")
    return wall, p.stdout


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    moto = IamMoto().start()
    sshd = Sshd()
    sshd.start()
    tmp = tempfile.mkdtemp(prefix="kiln-bench-iam-")
    try:
        for region in ("us-east-1",):
            moto.client("ec2", region).describe_regions()
        moto.enforce()
        path = Path(tmp) / "t.json"
        path.write_text(json.dumps(template(moto, sshd)))
        kenv = kiln_env(tmp)
        r = subprocess.run([sys.executable, "-m", "kiln.backend.cli", "iam", "policy",
                            "-narrow=false", str(path)], env=moto.env(moto.admin, base=kenv),
                           capture_output=True, text=True, check=True)
        kenv = moto.env(moto.user(json.loads(r.stdout)), base=kenv)
        penv = moto.env(moto.user(policy_document(PACKER_DOCUMENTED_ACTIONS)),
                        base=packer_env(tmp))
        packer = shutil.which("packer")
        walls: dict[str, list[float]] = {"kiln": [], "kiln -preflight=false": [], "packer": []}
        own: list[float] = []
        for _ in range(args.runs):
            path.write_text(json.dumps(template(moto, sshd)))  # a fresh ami_name each run
            w, out = run([sys.executable, "-m", "kiln.backend.cli", "build", "-color=false",
                          str(path)], kenv, tmp)
            walls["kiln"].append(w)
            m = re.search(r"Checked the permissions .*\(([\d.]+)s\)", out)
            if m:
                own.append(float(m.group(1)))
            path.write_text(json.dumps(template(moto, sshd)))
            w, _ = run([sys.executable, "-m", "kiln.backend.cli", "build", "-color=false",
                        "-preflight=false", str(path)], kenv, tmp)
            walls["kiln -preflight=false"].append(w)
            if packer:
                path.write_text(json.dumps(template(moto, sshd)))
                w, _ = run([packer, "build", "-color=false", str(path)], penv, tmp)
                walls["packer"].append(w)
        med = {k: statistics.median(v) for k, v in walls.items() if v}
        added = med["kiln"] - med["kiln -preflight=false"]
        result = {"runs": args.runs, "median_wall_s": med,
                  "preflight_added_s": round(added, 3),
                  "preflight_own_s": round(statistics.median(own), 3) if own else None,
                  "target_s": TARGET}
        if args.json:
            print(json.dumps(result, indent=2))
        else:
            for k, v in med.items():
                print(f"{k:<24} {v:6.2f} s (median of {args.runs})")
            print(f"preflight adds           {added:6.2f} s (its own timer: "
                  f"{result['preflight_own_s']} s); target < {TARGET:.1f} s")
            if "packer" in med:
                print(f"kiln / packer            {med['kiln'] / med['packer']:6.2f}x")
        return 0 if added < TARGET else 1
    finally:
        sshd.stop()
        moto.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
