"""An amazon-instance build, Kiln and Packer 1.6.6 side by side, against one in-process moto
server (EC2 and S3), one loopback sshd and the stand-in AMI tools (tests/support/ami_tools.py:
the real ones only run on EC2). Runs alternate between the two tools so both see the same
load; medians of RUNS, the ratio, and Kiln's per-stage times (medians) are printed.

    python bench/bench_amazon_instance.py [--runs N] [--json]
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

from ami_tools import Tools  # noqa: E402
from common import kiln_env, packer_env  # noqa: E402
from kiln_services import MotoServer, Sshd  # noqa: E402

REGION = "us-east-1"
STAGE = re.compile(r"^ {6}(\S.*?)\s{2,}([\d.]+)s\s+succeeded$")


def template(moto: MotoServer, sshd: Sshd, tools: Tools, tmp: Path, source: str) -> dict:
    token = uuid.uuid4().hex[:10]
    return {"builders": [{
        "type": "amazon-instance", "region": REGION, "custom_endpoint_ec2": moto.endpoint,
        "source_ami_filter": {"filters": {"name": source}, "owners": ["self"]},
        "instance_type": "m3.medium", "ami_name": f"bench-{token}",
        "account_id": "123456789012", "s3_bucket": "kiln-bench-bundles",
        "x509_cert_path": str(tmp / "cert.pem"), "x509_key_path": str(tmp / "pk.pem"),
        "bundle_destination": str(tmp / "bundle"), "bundle_prefix": f"bench-{token}",
        "bundle_vol_command": tools.vol_command(),
        # Packer 1.6.6's upload command knows no {{.Token}}
        "bundle_upload_command": tools.upload_command().replace(
            "{{if .Token}} -t {{.Token}}{{end}}", ""),
        "ssh_host": sshd.host, "ssh_port": sshd.port, "ssh_username": sshd.user,
        "ssh_private_key_file": sshd.private_key_path, "ssh_timeout": "20s"}],
        "provisioners": [{"type": "shell", "inline": ["true"]}]}


def run(argv: list[str], env: dict[str, str], cwd: str) -> tuple[float, str]:
    t0 = time.perf_counter()
    p = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=300,
                       stdin=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(argv[:4])} failed:\n{p.stdout}\n{p.stderr}")
    return wall, p.stdout


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    moto = MotoServer().start()
    sshd = Sshd()
    sshd.start()
    tmp = Path(tempfile.mkdtemp(prefix="kiln-bench-instance-"))
    try:
        from moto.core import DEFAULT_ACCOUNT_ID
        from moto.ec2.models import ec2_backends

        source = "bench-src-" + uuid.uuid4().hex[:8]
        ami = moto.client("ec2", REGION).register_image(
            Name=source, RootDeviceName="/dev/sda1")["ImageId"]
        # moto drops RegisterImage's Architecture; Packer 1.6.6 needs the instance to have one
        ec2_backends[DEFAULT_ACCOUNT_ID][REGION].amis[ami].architecture = "x86_64"
        tools = Tools(tmp, moto.endpoint)
        (tmp / "bundle").mkdir()
        for name in ("cert.pem", "pk.pem"):
            (tmp / name).write_text("x509 stand-in\n")
        path = tmp / "t.json"
        kenv = moto.aws_env(REGION, base=kiln_env(str(tmp)))
        penv = moto.aws_env(REGION, base=packer_env(str(tmp)))
        packer = shutil.which("packer")
        walls: dict[str, list[float]] = {"kiln": [], "packer": []}
        stages: dict[str, list[float]] = {}
        for _ in range(args.runs):
            path.write_text(json.dumps(template(moto, sshd, tools, tmp, source)))
            w, out = run([sys.executable, "-m", "kiln.backend.cli", "build", "-color=false",
                          str(path)], kenv, str(tmp))
            walls["kiln"].append(w)
            for line in out.split("Stage timings", 1)[-1].splitlines():
                m = STAGE.match(line)
                if m:
                    stages.setdefault(m.group(1), []).append(float(m.group(2)))
            if packer:
                path.write_text(json.dumps(template(moto, sshd, tools, tmp, source)))
                w, _ = run([packer, "build", "-color=false", str(path)], penv, str(tmp))
                walls["packer"].append(w)
        med = {k: statistics.median(v) for k, v in walls.items() if v}
        stage_med = {k: round(statistics.median(v), 3) for k, v in stages.items()}
        result = {"runs": args.runs, "median_wall_s": med, "kiln_stages_s": stage_med}
        if "packer" in med:
            result["kiln_over_packer"] = round(med["kiln"] / med["packer"], 2)
        if args.json:
            print(json.dumps(result, indent=2))
        else:
            for k, v in med.items():
                print(f"{k:<8} {v:6.2f} s (median of {args.runs} builds)")
            if "packer" in med:
                print(f"kiln / packer {result['kiln_over_packer']:.2f}x")
            print("Kiln's stages (median s):")
            for k, v in stage_med.items():
                print(f"  {k:<32} {v:6.3f}")
        return 0
    finally:
        sshd.stop()
        moto.stop()
        for leftover in ("/tmp/cert.pem", "/tmp/key.pem"):  # Packer leaves its X.509 pair
            p = Path(leftover)
            if p.exists() and p.read_text() == "x509 stand-in\n":
                p.unlink()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
