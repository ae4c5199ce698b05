"""An amazon-chroot build, stage by stage: moto over HTTP for EC2, a loopback instance
metadata service, and a loop device with an ext4 busybox tree as the attached volume
(tests/support/chroot_tree.py). Needs root and the Docker engine (for the tree).

Kiln only: Packer 1.6.6's amazon-chroot builder needs a real EC2 host (its metadata
service and a real attached EBS device), so there is nothing to put beside it here.
Prints the median time of each stage over RUNS builds, and the wall time of the whole
``kiln build``.

    sudo python bench/bench_chroot.py [--runs N] [--json]
"""

from __future__ import annotations

import argparse
import json
import re
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

from chroot_tree import DeviceKernel, LoopTree, can_loop_mount  # noqa: E402
from common import kiln_env  # noqa: E402
from imds_server import ImdsServer  # noqa: E402
from kiln_services import MotoServer  # noqa: E402

REGION = "us-east-1"
STAGE_LINE = re.compile(r"^\s{6,}(\S.*?)\s{2,}(\d+\.\d+)s\s+(\w+)\s*$")


def stage_times(output: str) -> dict[str, float]:
    """The stage timing table Kiln prints after the summary."""
    out: dict[str, float] = {}
    seen = False
    for line in output.splitlines():
        if "Stage timings" in line:
            seen = True
            continue
        m = STAGE_LINE.match(line) if seen else None
        if m:
            out[m.group(1)] = float(m.group(2))
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    reason = can_loop_mount()
    if reason:
        raise SystemExit(f"bench_chroot: {reason}")
    times: dict[str, list[float]] = {}
    walls: list[float] = []
    with MotoServer() as moto, tempfile.TemporaryDirectory(prefix="kiln-bench-chroot-") as tmp:
        ec2 = moto.client("ec2", REGION)
        vol = ec2.create_volume(Size=1, AvailabilityZone="us-east-1a")["VolumeId"]
        snap = ec2.create_snapshot(VolumeId=vol)["SnapshotId"]
        src = f"bench-chroot-src-{uuid.uuid4().hex[:8]}"
        ami = ec2.register_image(Name=src, RootDeviceName="/dev/sda1",
                                 VirtualizationType="hvm",
                                 BlockDeviceMappings=[{"DeviceName": "/dev/sda1",
                                                       "Ebs": {"SnapshotId": snap}}])["ImageId"]
        host = ec2.run_instances(ImageId=ami, MinCount=1, MaxCount=1)["Instances"][0]
        with ImdsServer(host["InstanceId"]) as imds, LoopTree() as loop:
            env = moto.aws_env(REGION, base=kiln_env(tmp))
            env.update(AWS_POLL_DELAY_SECONDS="0.1",
                       AWS_EC2_METADATA_SERVICE_ENDPOINT=imds.endpoint)
            for i in range(args.runs):
                work = Path(tmp) / f"run{i}"
                (work / "dev").mkdir(parents=True)
                device = work / "dev" / "xvdf"
                tpl = {"builders": [{
                    "type": "amazon-chroot", "region": REGION,
                    "custom_endpoint_ec2": moto.endpoint,
                    "source_ami_filter": {"filters": {"name": src}, "owners": ["self"]},
                    "ami_name": f"bench-chroot-{uuid.uuid4().hex[:10]}",
                    "device_path": str(device), "mount_path": f"{work}/mnt/{{{{.Device}}}}"}],
                    "provisioners": [{"type": "shell", "inline": ["echo hi > /etc/bench"]}]}
                path = work / "template.json"
                path.write_text(json.dumps(tpl))
                with DeviceKernel(ec2, host["InstanceId"], device, loop.device):
                    t0 = time.perf_counter()
                    p = subprocess.run([sys.executable, "-m", "kiln.backend.cli", "build",
                                        "-color=false", str(path)], env=env, cwd=work,
                                       capture_output=True, text=True, timeout=300)
                    walls.append(time.perf_counter() - t0)
                if p.returncode != 0:
                    raise SystemExit(f"kiln build failed:\n{p.stdout}\n{p.stderr}")
                for stage, secs in stage_times(p.stdout + p.stderr).items():
                    times.setdefault(stage, []).append(secs)
    table = {stage: statistics.median(v) for stage, v in times.items()}
    wall = statistics.median(walls)
    if args.json:
        print(json.dumps({"runs": args.runs, "wall": wall, "stages": table}, indent=2))
        return 0
    print(f"amazon-chroot build against moto + a loop device, median of {args.runs} runs")
    print("(Packer 1.6.6: nothing to compare; its chroot builder needs a real EC2 host)")
    width = max(len(s) for s in table)
    for stage, secs in table.items():
        print(f"  {stage:<{width}}  {secs:7.3f}s")
    print(f"  {'sum of stages':<{width}}  {sum(table.values()):7.3f}s")
    print(f"  {'kiln build wall time':<{width}}  {wall:7.3f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
