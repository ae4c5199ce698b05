"""The amazon-ebs builder against a real moto server, provisioning the loopback sshd.

Every build runs ``python -m backend.cli build`` in a subprocess with fake AWS
credentials and ``custom_endpoint_ec2`` pointing at moto. moto hands out
instances with made-up addresses that must never be contacted, so every
template sets ``ssh_host``/``ssh_port`` to the loopback sshd: the shell
provisioner really runs there. After each build (good, failed, cancelled or
killed and then ``kiln cleanup``) the moto account must hold no running
instance, no kiln key pair, no kiln security group and no half-made AMI.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
REGION = "us-east-1"
COPY_REGION = "us-west-2"
CORPUS = REPO / "tests" / "corpus" / "real-world"

pytestmark = pytest.mark.timeout(120)


# --------------------------------------------------------------------------- helpers


def _with_repo(env: dict[str, str]) -> dict[str, str]:
    env = dict(env)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    return env


def kiln(args: list[str], env: dict[str, str], cwd: Path, timeout: float = 90
         ) -> subprocess.CompletedProcess[str]:
    """``kiln ARGS`` run from ``cwd`` (relative paths in templates resolve there)."""
    return subprocess.run([sys.executable, "-m", "kiln.backend.cli", *args], cwd=cwd,
                          env=_with_repo(env), capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def start_kiln(args: list[str], env: dict[str, str], cwd: Path, out: Path
               ) -> subprocess.Popen[str]:
    with open(out, "w") as fh:  # the child keeps its own copy of the descriptor
        return subprocess.Popen([sys.executable, "-m", "kiln.backend.cli", *args], cwd=cwd,
                                env=_with_repo(env), stdout=fh, stderr=subprocess.STDOUT,
                                text=True, stdin=subprocess.DEVNULL)


def wait_for_file(path: Path, proc: subprocess.Popen[str], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            raise AssertionError(f"kiln exited ({proc.returncode}) before {path} appeared")
        if time.monotonic() > deadline:
            raise AssertionError(f"{path} did not appear within {timeout}s")
        time.sleep(0.1)


def leftovers(moto: Any, ami_name: str = "") -> dict[str, list[str]]:
    """Everything a build may leave behind, in both regions used here."""
    out: dict[str, list[str]] = {"instances": [], "key_pairs": [], "security_groups": [],
                                 "amis": []}
    for region in (REGION, COPY_REGION):
        ec2 = moto.client("ec2", region)
        for r in ec2.describe_instances()["Reservations"]:
            for i in r["Instances"]:
                if i["State"]["Name"] != "terminated":
                    out["instances"].append(f"{region}:{i['InstanceId']}:{i['State']['Name']}")
        out["key_pairs"] += [k["KeyName"] for k in ec2.describe_key_pairs()["KeyPairs"]
                             if k["KeyName"].startswith("kiln_")]
        out["security_groups"] += [g["GroupName"] for g in
                                   ec2.describe_security_groups()["SecurityGroups"]
                                   if g["GroupName"].startswith("kiln_")]
        if ami_name:
            images = ec2.describe_images(
                Owners=["self"], Filters=[{"Name": "name", "Values": [ami_name]}])["Images"]
            out["amis"] += [f"{region}:{i['ImageId']}" for i in images]
    return out


def nothing_left(moto: Any, ami_name: str = "") -> None:
    left = leftovers(moto, ami_name)
    assert left == {"instances": [], "key_pairs": [], "security_groups": [], "amis": []}, left


def ledger_rows(state_dir: Path, kind_prefix: str = "aws-") -> list[tuple[str, str, int]]:
    db = state_dir / "ledger.db"
    if not db.exists():
        return []
    con = sqlite3.connect(db)
    try:
        return con.execute("SELECT kind, ident, kept FROM resources WHERE kind LIKE ?",
                           (kind_prefix + "%",)).fetchall()
    except sqlite3.OperationalError:  # Kiln has not created the table yet
        return []
    finally:
        con.close()


class Build:
    """One test's template and the environment to build it in."""

    def __init__(self, tmp: Path, moto: Any, sshd: Any, source: dict[str, str],
                 state_dir: Path):
        self.tmp = tmp
        self.moto = moto
        self.sshd = sshd
        self.state_dir = state_dir
        self.token = uuid.uuid4().hex[:10]
        self.name = f"ebs-{self.token}"
        self.ami_name = f"kiln-test-{self.token}"
        self.marker = Path(f"/tmp/kiln-ebs-{self.token}.txt")
        self.manifest = tmp / "manifest.json"
        self.builder: dict[str, Any] = {
            "type": "amazon-ebs",
            "name": self.name,
            "region": REGION,
            "custom_endpoint_ec2": moto.endpoint,
            "source_ami_filter": {"filters": {"name": source["name"]}, "owners": ["self"],
                                  "most_recent": True},
            "instance_type": "t3.micro",
            "ami_name": self.ami_name,
            "ssh_host": sshd.host,
            "ssh_port": sshd.port,
            "ssh_username": sshd.user,
            "ssh_private_key_file": sshd.private_key_path,
            "ssh_timeout": "20s",
        }
        self.provisioners: list[dict[str, Any]] = [
            {"type": "shell", "inline": [f"echo built-by-kiln > {self.marker}"]}]
        self.post_processors: list[Any] = [{"type": "manifest", "output": str(self.manifest)}]
        self.env = moto.aws_env(REGION)
        self.env["KILN_STATE_DIR"] = str(state_dir)

    def write(self) -> Path:
        tpl = {"builders": [self.builder], "provisioners": self.provisioners,
               "post-processors": self.post_processors}
        path = self.tmp / "template.json"
        path.write_text(json.dumps(tpl, indent=2))
        return path

    def run(self, *flags: str) -> subprocess.CompletedProcess[str]:
        path = self.write()
        return kiln(["build", "-color=false", *flags, str(path)], self.env, self.tmp)

    def cleanup_marker(self) -> None:
        self.marker.unlink(missing_ok=True)


@pytest.fixture(scope="module")
def source_ami(moto_server: Any) -> dict[str, str]:
    """A source AMI registered in moto (and both regions warmed: ~2 s each the first time)."""
    name = f"kiln-src-ubuntu-{uuid.uuid4().hex[:8]}"
    ec2 = moto_server.client("ec2", REGION)
    ami = ec2.register_image(Name=name, RootDeviceName="/dev/sda1",
                             Description="source image for Kiln tests")["ImageId"]
    moto_server.client("ec2", COPY_REGION).describe_key_pairs()
    return {"id": ami, "name": name}


@pytest.fixture
def build(tmp_path: Path, moto_server: Any, sshd: Any, source_ami: dict[str, str],
          kiln_state_dir: Path) -> Any:
    b = Build(tmp_path, moto_server, sshd, source_ami, kiln_state_dir)
    yield b
    b.cleanup_marker()


class AuthorizeTemporaryKey:
    """Play the part of cloud-init: put Kiln's temporary key into the sshd's authorized_keys.

    Kiln writes the private half of its temporary key pair to a 0600 temp file it
    records in the ledger; we read it from there, derive the public key, and
    append it, so the build connects with the key it generated itself.
    """

    def __init__(self, sshd: Any, state_dir: Path, auth: Path | None = None):
        self.auth = auth or Path(sshd.dir) / "authorized_keys"
        self.original = self.auth.read_text()
        self.state_dir = state_dir
        self.key_name = ""
        self.private_key = ""
        self.key_path = ""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self) -> AuthorizeTemporaryKey:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self.auth.write_text(self.original)

    def _watch(self) -> None:
        from cryptography.hazmat.primitives import serialization

        while not self._stop.is_set():
            for _kind, ident, _kept in ledger_rows(self.state_dir, "tempfile"):
                if ident.endswith(".pem") and os.path.exists(ident):
                    text = Path(ident).read_text()
                    if "PRIVATE KEY" not in text:
                        continue
                    key = serialization.load_pem_private_key(text.encode(), None) \
                        if "OPENSSH" not in text else \
                        serialization.load_ssh_private_key(text.encode(), None)
                    pub = key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                                        serialization.PublicFormat.OpenSSH)
                    self.private_key = text
                    self.key_path = ident
                    # as cloud-init writes it: the key pair's name is the comment
                    names = [i for _k, i, _kept in ledger_rows(self.state_dir, "aws-keypair")]
                    self.key_name = names[0] if names else "kiln-temporary"
                    self.auth.write_text(self.original + pub.decode() + f" {self.key_name}\n")
                    return
            time.sleep(0.05)


# --------------------------------------------------------------------------- validation


def validate(path: Path) -> subprocess.CompletedProcess[str]:
    return kiln(["validate", str(path)], dict(os.environ), path.parent, timeout=60)


def test_validate_reports_amazon_problems_with_locations(tmp_path: Path) -> None:
    tpl = {"builders": [{
        "type": "amazon-ebs", "region": "us-east-1", "instance_type": "t3.micro",
        "ssh_username": "ubuntu", "ami_name": "bad:name*",
        "source_ami_filter": {"filters": {"name": "ubuntu/*"}},
        "imds_support": "v2.0", "metadata_options": {"http_tokens": "sometimes"},
        "kms_key_id": "alias/mine", "launch_block_device_mappings": [
            {"device_name": "/dev/sda1", "volume_type": "gp2", "throughput": 300}],
        "ssh_interface": "carrier_pigeon",
    }]}
    path = tmp_path / "t.json"
    path.write_text(json.dumps(tpl, indent=2))
    r = validate(path)
    assert r.returncode == 1, r.stdout + r.stderr
    text = r.stdout + r.stderr
    assert "characters AWS does not allow" in text and "clean_resource_name" in text
    assert "must declare an owner" in text
    assert 'http_tokens must be "optional" or "required"' in text
    assert "kms_key_id is only used with encrypt_boot" in text
    assert "throughput can only be set for gp3 volumes" in text
    assert "carrier_pigeon" in text
    assert "imds_support" not in text  # a modern key, accepted
    assert "t.json:" in text  # problems carry the template location


def test_validate_accepts_modern_keys_and_does_not_import_boto3(tmp_path: Path) -> None:
    tpl = {"builders": [{
        "type": "amazon-ebs", "region": "us-east-1", "instance_type": "t3.micro",
        "ssh_username": "ubuntu", "ami_name": "app {{timestamp}} {{ isotime | clean_ami_name }}",
        "ami_description": "from {{ .SourceAMIName }}",
        "source_ami_filter": {"filters": {"name": "ubuntu/*"}, "owners": ["099720109477"],
                              "most_recent": True, "include_deprecated": False},
        "imds_support": "v2.0", "deprecate_at": "2031-01-01T00:00:00Z",
        "metadata_options": {"http_endpoint": "enabled", "http_tokens": "required",
                             "http_put_response_hop_limit": 1,
                             "instance_metadata_tags": "enabled"},
        "aws_polling": {"delay_seconds": 5, "max_attempts": 10},
        "tags": {"Base": "{{ .SourceAMIName }}"}, "run_tags": {"Owner": "{{build_name}}"},
        "tag": [{"key": "Extra", "value": "{{ .BuildRegion }}"}],
        "temporary_security_group_source_cidrs": ["10.0.0.0/8"],
        "ami_org_arns": ["arn:aws:organizations::111122223333:organization/o-123"],
        "skip_profile_validation": True, "ssh_interface": "private_ip",
        "encrypt_boot": True, "kms_key_id": "alias/mine",
        "region_kms_key_ids": {"us-west-2": "alias/other"}, "ami_regions": ["us-west-2"],
    }]}
    path = tmp_path / "t.json"
    path.write_text(json.dumps(tpl, indent=2))
    example = REPO / "templates" / "amazon-ebs.json"
    for target in (path, example):
        r = kiln(["validate", str(target)], dict(os.environ, PYTHONVERBOSE="1"), tmp_path)
        assert r.returncode == 0, r.stdout + r.stderr[-3000:]
        assert "import 'boto3'" not in r.stderr and "import 'botocore'" not in r.stderr


def test_real_world_amazon_templates_decode() -> None:
    """Every amazon-ebs builder of the corpus prepares without a problem of its own.

    Required variables get a stand-in value, so the builder configs are really
    decoded and checked; templates whose AMI source is a variable left empty
    upstream report exactly that.
    """
    sys.path.insert(0, str(REPO))
    from kiln.backend.engine.prepare import Options, Preparer
    from kiln.backend.template.errors import TemplateError
    from kiln.backend.template.legacy import load_legacy

    checked = []
    problems = []
    for path in sorted(CORPUS.glob("*.json")):
        raw = json.loads(path.read_text())
        if not isinstance(raw, dict) or not any(
                b.get("type") == "amazon-ebs" for b in raw.get("builders", [])):
            continue
        declared = raw.get("variables") or {}
        used = set(re.findall(r"user\s+`([^`]+)`", path.read_text()))
        stand_in = {k: "1" for k in used | set(declared) if declared.get(k) is None}
        try:
            template = load_legacy(str(path), stand_in)
        except TemplateError as e:  # Packer 1.6.6 rejects these too (e.g. a templated duration)
            assert not [p for p in e.problems if p.loc.path.startswith("builders[")], str(e)
            continue
        prep = Preparer(template, Options())
        for b in template.builds:
            if b.type == "amazon-ebs":
                prep.prepare_build(b)
                checked.append(f"{path.name}:{b.name}")
        problems += [f"{path.name}: {p}" for p in prep.problems
                     if p.loc.path.startswith("builders[")
                     and any(f"builders[{b.index}]" in p.loc.path for b in template.builds
                             if b.type == "amazon-ebs")]
    assert len(checked) >= 20, checked
    # what is left is about the corpus itself (files not copied, an AMI from an empty
    # variable) or about our stand-in value "1" -- never an unknown key or a wrong type
    allowed = ("does not exist", "a source AMI must be given", "'1'", '"1"')
    assert not [p for p in problems if not any(a in p for a in allowed)], problems
    assert any("a source AMI must be given" in p for p in problems)


# --------------------------------------------------------------------------- builds


@pytest.mark.aws
@pytest.mark.ssh
def test_build_makes_tagged_amis_in_every_region(build: Build) -> None:
    build.builder.update({
        "ami_name": build.ami_name + " {{ .SourceAMIName }}",
        "ami_description": "built from {{ .SourceAMI }}",
        "ami_regions": [COPY_REGION],
        "tags": {"Base_AMI_Name": "{{ .SourceAMIName }}", "Built": "{{ build_name }}",
                 "Region": "{{ .BuildRegion }}"},
        "snapshot_tags": {"Snap": "yes"},
        "run_tags": {"Purpose": "kiln-test"},
        "ami_users": ["111122223333"],
    })
    build.provisioners = [{"type": "shell", "inline": [
        f"echo built-by-kiln {{{{ build `SourceAMIName` }}}} > {build.marker}"]}]
    r = build.run()
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    src = build.builder["source_ami_filter"]["filters"]["name"]
    # the provisioner ran on the loopback sshd, with the builder's generated data
    assert build.marker.read_text() == f"built-by-kiln {src}\n"

    full_name = f"{build.ami_name} {src}"
    amis = {}
    for region in (REGION, COPY_REGION):
        ec2 = build.moto.client("ec2", region)
        images = ec2.describe_images(
            Owners=["self"], Filters=[{"Name": "name", "Values": [full_name]}])["Images"]
        assert len(images) == 1, (region, images)
        image = images[0]
        amis[region] = image["ImageId"]
        tags = {t["Key"]: t["Value"] for t in image.get("Tags", [])}
        assert tags["Base_AMI_Name"] == src
        assert tags["Built"] == build.name
        assert tags["Region"] == REGION
        assert tags["kiln:build"] == build.name and tags["kiln:run"]
        perms = ec2.describe_image_attribute(ImageId=image["ImageId"],
                                             Attribute="launchPermission")
        assert {"UserId": "111122223333"} in perms["LaunchPermissions"]
        snaps = [m["Ebs"]["SnapshotId"] for m in image["BlockDeviceMappings"] if "Ebs" in m]
        snap = ec2.describe_snapshots(SnapshotIds=snaps)["Snapshots"][0]
        assert {"Key": "Snap", "Value": "yes"} in snap.get("Tags", [])
    source = build.moto.client("ec2", REGION).describe_images(
        Filters=[{"Name": "name", "Values": [src]}])["Images"][0]

    # the console shows Packer's artifact text; the manifest agrees
    assert (f"AMIs were created:\n{REGION}: {amis[REGION]}\n"
            f"{COPY_REGION}: {amis[COPY_REGION]}") in r.stdout
    manifest = json.loads(build.manifest.read_text())
    entry = manifest["builds"][-1]
    assert entry["artifact_id"] == f"{REGION}:{amis[REGION]},{COPY_REGION}:{amis[COPY_REGION]}"
    assert entry["builder_type"] == "amazon-ebs" and entry["name"] == build.name

    # steps ran in Packer's order, and every temporary resource is gone
    order = ["Found Image ID: " + source["ImageId"], "Creating temporary security group",
             "Launching a source AWS instance", "Connected to SSH!", "Stopping the source",
             f"Creating AMI {full_name}", "Copying to: us-west-2", "Adding tags to AMI",
             "Terminating the source AWS instance", "Deleting temporary security group"]
    positions = [r.stdout.find(s) for s in order]
    assert -1 not in positions and positions == sorted(positions), list(zip(order, positions, strict=True))
    nothing_left(build.moto)
    assert ledger_rows(build.state_dir) == []


@pytest.mark.aws
@pytest.mark.ssh
def test_existing_ami_name_stops_the_build_unless_forced(build: Build) -> None:
    ec2 = build.moto.client("ec2", REGION)
    old = ec2.register_image(Name=build.ami_name, RootDeviceName="/dev/sda1")["ImageId"]

    again = build.run()
    assert again.returncode == 1
    assert f'an AMI named "{build.ami_name}" already exists' in again.stdout
    assert "Launching" not in again.stdout  # stopped before creating anything
    nothing_left(build.moto)

    forced = build.run("-force")
    assert forced.returncode == 0, forced.stdout + forced.stderr
    assert f"Deregistered AMI {build.ami_name}, id: {old}" in forced.stdout
    now = ec2.describe_images(Owners=["self"], Filters=[
        {"Name": "name", "Values": [build.ami_name]}])["Images"]
    assert [i["ImageId"] for i in now] != [old] and len(now) == 1
    nothing_left(build.moto)


FAULTS = {
    # name: (builder changes, provisioners or None, text expected in the output)
    "missing-source-ami": ({"source_ami": "ami-0123456789abcdef0", "source_ami_filter": None},
                           None, "No AMI was found matching filters"),
    "ambiguous-source-ami": ({"source_ami_filter": "several"}, None,
                             "Your query returned more than one result"),
    "bad-instance-type": ({"instance_type": "t9.gigantic", "ssh_private_key_file": None,
                           "temporary_key_pair_type": "ed25519"},
                          None, "Error launching source instance: InvalidInstanceType"),
    "ssh-refuses-key": ({"ssh_private_key_file": None, "ssh_handshake_attempts": 1,
                         "temporary_key_pair_type": "ed25519", "ssh_timeout": "10s"},
                        None, "Error waiting for SSH"),
    "failing-provisioner": ({}, [{"type": "shell", "inline": ["echo about to fail", "exit 3"]}],
                            "non-zero exit status: 3"),
    "failing-region-copy": ({"ami_regions": ["xx-nowhere-1"], "skip_region_validation": True,
                             "max_retries": 1},
                            None, "Error copying AMI"),
}


@pytest.mark.aws
@pytest.mark.ssh
@pytest.mark.parametrize("fault", list(FAULTS))
def test_a_failing_step_leaves_nothing_behind(build: Build, fault: str,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    changes, provisioners, expected = FAULTS[fault]
    for key, value in changes.items():
        if value is None:
            build.builder.pop(key, None)
        elif value == "several":  # two images match, and most_recent is not set
            name = build.builder["source_ami_filter"]["filters"]["name"]
            build.moto.client("ec2", REGION).register_image(
                Name=f"{name}-{build.token}", RootDeviceName="/dev/sda1")
            build.builder[key] = {"filters": {"name": f"{name}*"}, "owners": ["self"]}
        else:
            build.builder[key] = value
    if provisioners is not None:
        build.provisioners = provisioners
    if fault == "bad-instance-type":
        import moto.settings  # the server runs in this process: turn on its validation

        monkeypatch.setattr(moto.settings, "EC2_ENABLE_INSTANCE_TYPE_VALIDATION", True)
    r = build.run()
    out = r.stdout + r.stderr
    assert r.returncode == 1, out
    assert expected in out, out
    if fault in ("bad-instance-type", "ssh-refuses-key"):
        # a temporary key pair was made, and deleted again
        assert "Creating temporary keypair: kiln_" in out and "Deleting temporary keypair" in out
    if fault == "failing-region-copy":
        assert "Deregistering the AMI" in out
    nothing_left(build.moto, build.ami_name)
    assert ledger_rows(build.state_dir) == []
    assert not build.manifest.exists()


@pytest.mark.aws
@pytest.mark.ssh
def test_interrupt_during_provisioner_cleans_up(build: Build) -> None:
    started = Path(f"{build.marker}.started")
    build.provisioners = [{"type": "shell", "inline": [f"touch {started}", "sleep 30"]}]
    path = build.write()
    log = build.tmp / "out.txt"
    proc = start_kiln(["build", "-color=false", str(path)], build.env, build.tmp, log)
    try:
        wait_for_file(started, proc)
        # resources exist now...
        assert leftovers(build.moto)["instances"], "the instance should be running"
        proc.send_signal(signal.SIGINT)
        proc.wait(60)
    finally:
        if proc.poll() is None:
            proc.kill()
        started.unlink(missing_ok=True)
    out = log.read_text()
    assert proc.returncode == 1, out
    assert "Cancelling build after receiving interrupt" in out
    assert "Terminating the source AWS instance" in out
    assert "Creating AMI" not in out
    nothing_left(build.moto, build.ami_name)
    assert ledger_rows(build.state_dir) == []


@pytest.mark.aws
@pytest.mark.ssh
def test_killed_build_is_reaped_by_kiln_cleanup(build: Build) -> None:
    started = Path(f"{build.marker}.started")
    build.builder.pop("ssh_private_key_file")  # a temporary key pair, authorized below
    build.builder["temporary_key_pair_type"] = "ed25519"
    build.provisioners = [{"type": "shell", "inline": [f"touch {started}", "sleep 30"]}]
    path = build.write()
    log = build.tmp / "out.txt"
    with AuthorizeTemporaryKey(build.sshd, build.state_dir):
        proc = start_kiln(["build", "-color=false", str(path)], build.env, build.tmp, log)
        try:
            wait_for_file(started, proc)
            proc.send_signal(signal.SIGKILL)
            proc.wait(30)
        finally:
            if proc.poll() is None:
                proc.kill()
            started.unlink(missing_ok=True)
    left = leftovers(build.moto)
    assert left["instances"] and left["key_pairs"] and left["security_groups"], left
    kinds = sorted(k for k, _i, _kept in ledger_rows(build.state_dir))
    assert kinds == ["aws-instance", "aws-keypair", "aws-security-group"], kinds

    r = kiln(["cleanup"], build.env, build.tmp)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "removed aws-instance" in r.stdout
    nothing_left(build.moto, build.ami_name)
    assert ledger_rows(build.state_dir) == []
    assert ledger_rows(build.state_dir, "tempfile") == []


@pytest.mark.aws
@pytest.mark.ssh
def test_kept_machine_is_recorded_for_the_dashboard_and_reaped(build: Build) -> None:
    build.provisioners = [{"type": "shell", "inline": ["exit 7"]}]
    r = build.run("-on-error=abort")
    out = r.stdout + r.stderr
    assert r.returncode == 1, out
    assert f"Get into it with: ssh -i {build.sshd.private_key_path} -p {build.sshd.port} " \
           f"{build.sshd.user}@{build.sshd.host}" in out
    assert len(leftovers(build.moto)["instances"]) == 1

    sys.path.insert(0, str(REPO))
    from kiln.backend.engine.debugruns import kept_machines
    from kiln.backend.engine.ledger import Ledger

    ledger = Ledger("test-reader", path=str(build.state_dir / "ledger.db"))
    try:
        targets = kept_machines(ledger.entries())
    finally:
        ledger.close()
    assert [(t.host, t.port, t.user, t.private_key_file) for t in targets] == [
        (build.sshd.host, build.sshd.port, build.sshd.user, build.sshd.private_key_path)]

    clean = kiln(["cleanup", "--all"], build.env, build.tmp)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    nothing_left(build.moto, build.ami_name)


@pytest.mark.aws
@pytest.mark.ssh
def test_example_template_builds(build: Build, source_ami: dict[str, str]) -> None:
    """templates/amazon-ebs.json as shipped, pointed at moto and at the loopback sshd."""
    tpl = json.loads((REPO / "templates" / "amazon-ebs.json").read_text())
    tpl["builders"][0].update({k: build.builder[k] for k in (
        "ssh_host", "ssh_port", "ssh_username", "ssh_private_key_file")})
    # moto's registered images are neither "ebs" nor "hvm" as far as its filters go
    for key in ("root-device-type", "virtualization-type"):
        tpl["builders"][0]["source_ami_filter"]["filters"].pop(key)
    path = build.tmp / "amazon-ebs.json"
    path.write_text(json.dumps(tpl))
    prefix = f"kiln-example-{build.token}"
    r = kiln(["build", "-color=false", "-var", f"aws_endpoint={build.moto.endpoint}",
              "-var", f"source_ami_name={source_ami['name']}", "-var", "source_ami_owner=self",
              "-var", f"ami_prefix={prefix}", str(path)], build.env, build.tmp)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"building amazon-ebs from {source_ami['name']} in {REGION}" in r.stdout
    manifest = json.loads((build.tmp / "manifest.json").read_text())["builds"][0]
    region, ami = manifest["artifact_id"].split(":")
    assert region == REGION and manifest["custom_data"] == {"source_ami": source_ami["id"]}
    image = build.moto.client("ec2", REGION).describe_images(ImageIds=[ami])["Images"][0]
    assert image["Name"].startswith(prefix + " ") and ":" not in image["Name"]
    tags = {t["Key"]: t["Value"] for t in image["Tags"]}
    assert tags["Base_AMI"] == source_ami["id"] and tags["Name"] == prefix
    nothing_left(build.moto)


@pytest.mark.aws
@pytest.mark.ssh
def test_clear_authorized_keys_takes_the_temporary_key_out(
        tmp_path: Path, moto_server: Any, source_ami: dict[str, str],
        kiln_state_dir: Path) -> None:
    """ssh_clear_authorized_keys: the AMI must not accept the build's temporary key. An sshd
    of this test's own reads authorized_keys from a home directory of the test's, and
    sessions get that HOME, so the machine's real ~/.ssh is never touched."""
    from kiln_services import Sshd

    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True, mode=0o700)
    home.chmod(0o700)
    auth = home / ".ssh" / "authorized_keys"
    other = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKilnOtherKeyStaysInPlace0000000000000000 keep-me"
    auth.write_text(other + "\n")
    auth.chmod(0o600)
    server = Sshd(extra_config={"SetEnv": f"HOME={home}",
                                "AuthorizedKeysFile": str(auth)})
    server.start()
    try:
        b = Build(tmp_path, moto_server, server, source_ami, kiln_state_dir)
        b.builder.pop("ssh_private_key_file")
        b.builder["ssh_clear_authorized_keys"] = True
        with AuthorizeTemporaryKey(server, kiln_state_dir, auth) as authorizer:
            r = b.run()
            after = auth.read_text()
        out = r.stdout + r.stderr
        assert r.returncode == 0, out
        assert b.marker.exists()  # the provisioner ran over the temporary key
        assert authorizer.key_name.startswith("kiln_")
        assert "Trying to remove ephemeral keys from authorized_keys files" in out
        assert after == other + "\n", after  # only the temporary key's line went
        assert not (home / ".ssh" / "authorized_keys.bak").exists()
        nothing_left(moto_server)
    finally:
        server.stop()
        Path(f"/tmp/kiln-ebs-{b.token}.txt").unlink(missing_ok=True)


@pytest.mark.aws
@pytest.mark.ssh
def test_secrets_never_reach_output_or_files(build: Build, tmp_path: Path) -> None:
    access_key = "AKIAKILN" + uuid.uuid4().hex[:12].upper()
    secret_key = "kiln/Secret+" + uuid.uuid4().hex + "xyz"
    session_token = "KilnSessionToken" + uuid.uuid4().hex * 2
    build.builder.update({"access_key": access_key, "secret_key": secret_key,
                          "token": session_token, "ami_regions": [COPY_REGION]})
    build.builder.pop("ssh_private_key_file")  # Kiln generates and imports a key pair
    build.provisioners = [{"type": "shell", "inline": [
        f"echo access key is {access_key}", f"echo secret is {secret_key}",
        f"echo built-by-kiln > {build.marker}"]}]
    events = tmp_path / "events.jsonl"
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        build.env.pop(var)  # the template's credentials are the only ones
    with AuthorizeTemporaryKey(build.sshd, build.state_dir) as authorizer:
        r = build.run(f"-events={events}")
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    private_key = authorizer.private_key
    assert "PRIVATE KEY" in private_key
    assert "<sensitive>" in out  # the provisioner's echo was masked
    assert build.marker.exists()

    key_lines = [x for x in private_key.splitlines() if len(x) >= 16 and "-----" not in x]
    secrets = [access_key, secret_key, session_token] + key_lines
    assert not [s for s in secrets if s in out]
    template = build.write()  # the user's file, not Kiln's
    written = [p for root in (build.state_dir, tmp_path) for p in root.rglob("*")
               if p.is_file() and p != template]
    assert any(p.name == "history.db" for p in written)
    assert any(p.suffix == ".log" for p in written)
    assert events.exists() and build.manifest.exists()
    for p in written:
        data = p.read_bytes()
        found = [s for s in secrets if s.encode() in data]
        assert not found, f"{p} contains a secret"
    # the temporary key file is gone
    assert authorizer.key_path and not os.path.exists(authorizer.key_path)
    assert ledger_rows(build.state_dir, "tempfile") == []
    nothing_left(build.moto)
