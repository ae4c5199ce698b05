"""The amazon-instance builder against a real moto server (EC2 and S3 over HTTP), provisioning
and bundling on the loopback sshd.

moto's instances have made-up addresses, so every template sets ``ssh_host``/``ssh_port`` to
the loopback sshd: the provisioners and the bundle commands really run there.

The EC2 AMI tools are stand-ins (tests/support/ami_tools.py): the real ec2-bundle-vol
images the root volume of the EC2 instance it runs on and ec2-upload-bundle talks to S3
itself, so neither can run here. The stand-ins write a bundle manifest and parts, and upload
them to moto's S3 with the AWS CLI and the keys they were handed.

moto's RegisterImage drops ImageLocation; the ``registration`` fixture makes it keep it and,
as EC2 does, refuse a manifest that is not in S3, so a registration before the upload fails.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from ami_tools import Tools
from test_amazon_ebs import (
    REGION,
    AuthorizeTemporaryKey,
    kiln,
    ledger_rows,
    leftovers,
    nothing_left,
    start_kiln,
    wait_for_file,
)

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))


pytestmark = pytest.mark.timeout(150)

@pytest.fixture(scope="module")
def source_ami(moto_server: Any) -> dict[str, str]:
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.ec2.models import ec2_backends

    name = f"kiln-src-instance-store-{uuid.uuid4().hex[:8]}"
    ami = moto_server.client("ec2", REGION).register_image(
        Name=name, RootDeviceName="/dev/sda1", Architecture="x86_64")["ImageId"]
    # moto's RegisterImage drops Architecture, and its instances take theirs from the image
    # (Packer 1.6.6 crashes on an instance without one): set it as EC2 would have
    ec2_backends[DEFAULT_ACCOUNT_ID][REGION].amis[ami].architecture = "x86_64"
    return {"id": ami, "name": name}


def manifest_in_moto(account: str, bucket: str, key: str) -> bool:
    from moto.s3.models import s3_backends

    try:
        return s3_backends[account]["aws"].head_object(bucket, key) is not None
    except Exception:
        return False


@pytest.fixture
def registration(monkeypatch: pytest.MonkeyPatch, moto_server: Any) -> None:
    """moto's RegisterImage keeps ImageLocation and, like EC2, needs the manifest in S3."""
    from moto.ec2.exceptions import EC2ClientError
    from moto.ec2.responses.amis import AmisResponse

    original = AmisResponse.register_image

    def register_image(self: Any) -> Any:
        location = self._get_param("ImageLocation") or ""
        dry = str(self._get_param("DryRun", "false")).lower() == "true"
        if location and not dry:
            bucket, _, key = location.partition("/")
            if not manifest_in_moto(self.current_account, bucket, key):
                raise EC2ClientError("InvalidManifest",
                                     f"the manifest {location} is not in S3")
        before = set(self.ec2_backend.amis)
        result = original(self)
        for ami_id in set(self.ec2_backend.amis) - before:
            image = self.ec2_backend.amis[ami_id]
            image.image_location = location
            image.root_device_type = "instance-store"
            image.virtualization_type = self._get_param("VirtualizationType") or "paravirtual"
        return result

    monkeypatch.setattr(AmisResponse, "register_image", register_image)


class Build:
    def __init__(self, tmp: Path, moto: Any, sshd: Any, source: dict[str, str],
                 state_dir: Path):
        self.tmp = tmp
        self.moto = moto
        self.sshd = sshd
        self.state_dir = state_dir
        self.token = uuid.uuid4().hex[:10]
        self.name = f"instance-{self.token}"
        self.ami_name = f"kiln-instance-{self.token}"
        self.bucket = f"kiln-bundles-{self.token}"
        self.tools = Tools(tmp, moto.endpoint)
        self.destination = tmp / "bundle"
        self.destination.mkdir()
        self.marker = tmp / "provisioned.txt"
        self.manifest = tmp / "manifest.json"
        cert, key = tmp / "cert.pem", tmp / "pk.pem"
        cert.write_text("-----BEGIN CERTIFICATE-----\nkiln-test-certificate\n"
                        "-----END CERTIFICATE-----\n")
        key.write_text("-----BEGIN PRIVATE KEY-----\nkiln-test-x509-key-" + self.token
                       + "\n-----END PRIVATE KEY-----\n")
        key.chmod(0o600)
        self.x509_key = key
        self.builder: dict[str, Any] = {
            "type": "amazon-instance",
            "name": self.name,
            "region": REGION,
            "custom_endpoint_ec2": moto.endpoint,
            "source_ami_filter": {"filters": {"name": source["name"]}, "owners": ["self"],
                                  "most_recent": True},
            "instance_type": "m3.medium",
            "ami_name": self.ami_name,
            "ami_virtualization_type": "hvm",
            "account_id": "1234-5678-9012",
            "s3_bucket": self.bucket,
            "x509_cert_path": str(cert),
            "x509_key_path": str(key),
            "bundle_destination": str(self.destination),
            "bundle_prefix": f"kiln-{self.token}-{{{{timestamp}}}}",
            "bundle_vol_command": self.tools.vol_command(),
            "bundle_upload_command": self.tools.upload_command(),
            "ssh_host": sshd.host,
            "ssh_port": sshd.port,
            "ssh_username": sshd.user,
            "ssh_private_key_file": sshd.private_key_path,
            "ssh_timeout": "20s",
        }
        self.provisioners: list[dict[str, Any]] = [
            {"type": "shell", "inline": [f"echo provisioned > {self.marker}"]}]
        self.env = moto.aws_env(REGION)
        self.env["KILN_STATE_DIR"] = str(state_dir)

    def write(self) -> Path:
        path = self.tmp / "template.json"
        path.write_text(json.dumps({
            "builders": [self.builder], "provisioners": self.provisioners,
            "post-processors": [{"type": "manifest", "output": str(self.manifest)}]}, indent=2))
        return path

    def run(self, *flags: str) -> subprocess.CompletedProcess[str]:
        return kiln(["build", "-color=false", *flags, str(self.write())], self.env, self.tmp)

    def temporary_key(self) -> None:
        """Let Kiln make (and delete) a key pair, as a build without a key of its own does."""
        self.builder.pop("ssh_private_key_file")
        self.builder["temporary_key_pair_type"] = "ed25519"

    def x509_gone(self) -> None:
        calls = self.tools.calls("bundle")
        assert calls, "ec2-bundle-vol never ran"
        for call in calls:
            assert not os.path.exists(call["cert"]) and not os.path.exists(call["key"]), call
            assert not os.path.exists(os.path.dirname(call["key"])), call


@pytest.fixture
def build(tmp_path: Path, moto_server: Any, sshd: Any, source_ami: dict[str, str],
          kiln_state_dir: Path, registration: None) -> Build:
    return Build(tmp_path, moto_server, sshd, source_ami, kiln_state_dir)


def s3_keys(moto: Any, bucket: str) -> list[str]:
    s3 = moto.client("s3", REGION)
    try:
        return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", []))
    except s3.exceptions.NoSuchBucket:
        return []


# --------------------------------------------------------------------------- validation


def test_validate_reports_every_instance_key_with_its_location(tmp_path: Path) -> None:
    tpl = {"builders": [{
        "type": "amazon-instance", "region": "us-east-1", "source_ami": "ami-12345678",
        "instance_type": "m3.medium", "ssh_username": "ec2-user", "ami_name": "x {{timestamp}}",
        "account_id": "AKIAEXAMPLE", "s3_bucket": "my bucket",
        "x509_cert_path": str(tmp_path / "missing-cert.pem"),
        "x509_upload_path": "relative/dir", "bundle_destination": "tmp",
        "bundle_prefix": "a/b-{{timestamp}}",
        "bundle_vol_command": "ec2-bundle-vol -s {{.SecretKey}}",
        "bundle_upload_command": "ec2-upload-bundle -k {{.KeyPath}}",
        "ami_virtualization_type": "fast", "no_ephemeral": True,
    }]}
    path = tmp_path / "t.json"
    path.write_text(json.dumps(tpl, indent=2))
    r = kiln(["validate", str(path)], dict(os.environ), tmp_path)
    text = r.stdout + r.stderr
    assert r.returncode == 1, text
    expected = {
        "account_id": "account_id must be the 12-digit AWS account number",
        "s3_bucket": "'my bucket' is not an S3 bucket name",
        "x509_cert_path": "missing-cert.pem does not exist",
        "x509_key_path": "x509_key_path is required",
        "x509_upload_path": "x509_upload_path must be an absolute path",
        "bundle_destination": "bundle_destination must be an absolute path",
        "bundle_prefix": "bundle_prefix is a file name prefix",
        "bundle_vol_command": "bundle_vol_command uses {{.SecretKey}}",
        "bundle_upload_command": "bundle_upload_command uses {{.KeyPath}}",
        "ami_virtualization_type": 'ami_virtualization_type must be "hvm" or "paravirtual"',
        "no_ephemeral": "no_ephemeral is an amazon-ebs key",
    }
    lines = text.splitlines()
    for key, message in expected.items():
        hit = [x for x in lines if f"builders[0].{key}:" in x and message in x]
        assert hit, (key, text)
        assert hit[0].startswith(f"{path}:"), hit  # file:line:column of the key
    missing = {"account_id": "", "s3_bucket": "", "x509_cert_path": ""}
    path.write_text(json.dumps({"builders": [{**tpl["builders"][0], **missing}]}))
    r = kiln(["validate", str(path)], dict(os.environ), tmp_path)
    for key in missing:
        assert f"builders[0].{key}: {key} is required" in r.stdout + r.stderr, r.stdout


def test_validate_accepts_an_instance_template_without_importing_boto3(tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "pk.pem"
    cert.write_text("cert")
    key.write_text("key")
    example = REPO / "templates" / "amazon-instance.json"
    r = kiln(["validate", "-var", "account_id=123456789012", "-var", "s3_bucket=my-bundles",
              "-var", f"x509_cert_path={cert}", "-var", f"x509_key_path={key}", str(example)],
             dict(os.environ, PYTHONVERBOSE="1"), tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr[-3000:]
    assert "import 'boto3'" not in r.stderr and "import 'botocore'" not in r.stderr


# --------------------------------------------------------------------------- builds


@pytest.mark.aws
@pytest.mark.ssh
def test_build_bundles_uploads_and_registers_from_the_s3_manifest(build: Build) -> None:
    build.builder.update({"tags": {"Base": "{{ .SourceAMIName }}"},
                          "ami_users": ["111122223333"]})
    r = build.run()
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert build.marker.read_text() == "provisioned\n"  # the provisioner ran first

    # the stand-in tools got Packer's template variables
    (bundle,) = build.tools.calls("bundle")
    (upload,) = build.tools.calls("upload")
    prefix = bundle["prefix"]
    assert prefix.startswith(f"kiln-{build.token}-") and prefix.split("-")[-1].isdigit()
    assert bundle["account"] == "123456789012"  # dashes dropped, as Packer does
    assert bundle["arch"] == "x86_64" and bundle["dest"] == str(build.destination)
    assert bundle["cert"].startswith("/tmp/kiln-x509.") and bundle["cert"].endswith("/cert.pem")
    assert bundle["key"] == os.path.join(os.path.dirname(bundle["cert"]), "key.pem")
    # the X.509 pair was private on the machine, and was the user's key
    assert (bundle["keymode"], bundle["certmode"], bundle["dirmode"]) == ("600", "600", "700")
    import hashlib

    assert bundle["keysum"] == hashlib.sha256(build.x509_key.read_bytes()).hexdigest()
    assert upload["bucket"] == build.bucket and upload["region"] == REGION
    assert upload["manifest"] == f"{build.destination}/{prefix}.manifest.xml"
    assert upload["access"] == "testing"
    assert upload["secretsum"] == hashlib.sha256(b"testing").hexdigest()

    # the bundle is in S3 and the AMI was registered from its manifest
    manifest_key = f"{prefix}.manifest.xml"
    assert s3_keys(build.moto, build.bucket) == [manifest_key, f"{prefix}.part.0",
                                                 f"{prefix}.part.1"]
    ec2 = build.moto.client("ec2", REGION)
    (image,) = ec2.describe_images(Owners=["self"], Filters=[
        {"Name": "name", "Values": [build.ami_name]}])["Images"]
    assert image["ImageLocation"] == f"{build.bucket}/{manifest_key}"
    assert image["VirtualizationType"] == "hvm"
    tags = {t["Key"]: t["Value"] for t in image.get("Tags", [])}
    assert tags["Base"] == build.builder["source_ami_filter"]["filters"]["name"]
    perms = ec2.describe_image_attribute(ImageId=image["ImageId"], Attribute="launchPermission")
    assert {"UserId": "111122223333"} in perms["LaunchPermissions"]

    # the X.509 files are gone from the machine; temporary resources too
    build.x509_gone()
    assert f"AMIs were created:\n{REGION}: {image['ImageId']}" in r.stdout
    entry = json.loads(build.manifest.read_text())["builds"][-1]
    assert entry["builder_type"] == "amazon-instance"
    assert entry["artifact_id"] == f"{REGION}:{image['ImageId']}"
    order = ["Connected to SSH!", "Uploading X509 Certificate", "Bundling the volume",
             "Created " + manifest_key, "Uploading the bundle", f"Uploaded {prefix}.part.1",
             "Uploaded " + manifest_key,
             "Removed the X.509 certificate", f"Registering the AMI {build.ami_name}",
             "Adding tags to AMI", "Terminating the source AWS instance"]
    positions = [r.stdout.find(s) for s in order]
    assert -1 not in positions and positions == sorted(positions), \
        list(zip(order, positions, strict=True))
    nothing_left(build.moto)
    assert ledger_rows(build.state_dir) == []


@pytest.mark.aws
@pytest.mark.ssh
def test_secret_key_in_the_upload_command_never_shows(build: Build, tmp_path: Path) -> None:
    access_key = "AKIAKILN" + uuid.uuid4().hex[:12].upper()
    secret_key = "kiln/Secret+" + uuid.uuid4().hex + "xyz"
    session_token = "KilnSessionToken" + uuid.uuid4().hex * 2
    build.builder.update({"access_key": access_key, "secret_key": secret_key,
                          "token": session_token})
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        build.env.pop(var)  # the template's credentials are the only ones
    # the user's own upload command echoes what it runs, as a debugging user might
    build.builder["bundle_upload_command"] = "echo running with {{.SecretKey}} {{.Token}}; " \
        + build.tools.upload_command()
    events = tmp_path / "events.jsonl"
    r = build.run(f"-events={events}")
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert "running with <sensitive>" in out  # the echo was masked
    (upload,) = build.tools.calls("upload")
    import hashlib

    # the tools really got the secret (and the token, as -t)
    assert upload["secretsum"] == hashlib.sha256(secret_key.encode()).hexdigest()
    assert upload["token"] == "yes"
    secrets = [secret_key, session_token, access_key]
    assert not [s for s in secrets if s in out]
    template = build.write()
    written = [p for root in (build.state_dir, tmp_path) for p in root.rglob("*")
               if p.is_file() and p != template and build.tools.dir not in p.parents]
    assert any(p.suffix == ".log" for p in written) and events.exists()
    for p in written:
        data = p.read_bytes()
        assert not [s for s in secrets if s.encode() in data], f"{p} contains a secret"
    nothing_left(build.moto)


@pytest.mark.aws
@pytest.mark.ssh
def test_keys_from_the_environment_are_masked_in_the_upload_command(build: Build) -> None:
    """Credentials the template does not hold (the environment's here) go into the command
    too, and are masked even when nothing else saw them (skip_credential_validation)."""
    secret_key = "env/Secret+" + uuid.uuid4().hex + "xyz"
    build.env["AWS_SECRET_ACCESS_KEY"] = secret_key
    build.builder["skip_credential_validation"] = True
    build.builder["bundle_upload_command"] = "echo uploading with {{.SecretKey}}; " \
        + build.tools.upload_command()
    r = build.run("-preflight=false")  # the preflight would have seen the keys first
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert "uploading with <sensitive>" in out
    assert secret_key not in out
    (upload,) = build.tools.calls("upload")
    import hashlib

    assert upload["secretsum"] == hashlib.sha256(secret_key.encode()).hexdigest()


@pytest.mark.aws
@pytest.mark.ssh
def test_failing_bundle_command_cleans_everything_up(build: Build) -> None:
    (build.tools.dir / "fail-bundle").touch()
    build.temporary_key()
    with AuthorizeTemporaryKey(build.sshd, build.state_dir):
        r = build.run()
    out = r.stdout + r.stderr
    assert r.returncode == 1, out
    assert "stand-in bundling failed on purpose" in out
    assert "Volume bundling failed (exit status 7)" in out
    assert "Creating temporary keypair: kiln_" in out and "Deleting temporary keypair" in out
    assert "Uploading the bundle" not in out and "Registering the AMI" not in out
    build.x509_gone()
    nothing_left(build.moto, build.ami_name)
    assert s3_keys(build.moto, build.bucket) == []
    assert ledger_rows(build.state_dir) == []
    assert not build.manifest.exists()


@pytest.mark.aws
@pytest.mark.ssh
def test_registration_needs_the_manifest_in_s3(build: Build) -> None:
    """An upload command that uploads nothing: EC2 refuses the manifest, the build fails
    with its message, and nothing is left."""
    build.builder["bundle_upload_command"] = "echo not uploading {{.ManifestPath}}"
    r = build.run()
    out = r.stdout + r.stderr
    assert r.returncode == 1, out
    assert "Error registering AMI: InvalidManifest" in out
    build.x509_gone()
    nothing_left(build.moto, build.ami_name)
    assert ledger_rows(build.state_dir) == []


@pytest.mark.aws
@pytest.mark.ssh
def test_interrupt_during_bundling_cleans_up(build: Build) -> None:
    (build.tools.dir / "hang-bundle").touch()
    build.temporary_key()
    path = build.write()
    log = build.tmp / "out.txt"
    started = build.tools.dir / "bundle-started"
    with AuthorizeTemporaryKey(build.sshd, build.state_dir):
        proc = start_kiln(["build", "-color=false", str(path)], build.env, build.tmp, log)
        try:
            wait_for_file(started, proc, timeout=90)
            left = leftovers(build.moto)
            assert left["instances"] and left["key_pairs"] and left["security_groups"], left
            proc.send_signal(signal.SIGINT)
            proc.wait(90)
        finally:
            if proc.poll() is None:
                proc.kill()
    out = log.read_text()
    assert proc.returncode == 1, out
    assert "Cancelling build after receiving interrupt" in out
    assert "Terminating the source AWS instance" in out
    assert "Registering the AMI" not in out
    build.x509_gone()
    nothing_left(build.moto, build.ami_name)
    assert ledger_rows(build.state_dir) == []
    # the stand-in's sleep may outlive the session; it writes nothing more
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and build.tools.calls("upload"):
        time.sleep(0.1)
    assert build.tools.calls("upload") == []



@pytest.mark.aws
@pytest.mark.ssh
def test_failed_upload_deletes_the_parts_already_in_s3(build: Build) -> None:
    (build.tools.dir / "fail-upload").touch()
    r = build.run()
    out = r.stdout + r.stderr
    assert r.returncode == 1, out
    assert "ERROR: manifest upload failed" in out
    assert "Bundle upload failed (exit status 4)" in out
    assert "Deleted the bundle's 2 objects from s3://" in out
    assert s3_keys(build.moto, build.bucket) == []  # the parts went up, and were removed
    build.x509_gone()
    nothing_left(build.moto, build.ami_name)
    assert ledger_rows(build.state_dir) == []


@pytest.mark.aws
@pytest.mark.ssh
def test_killed_build_leaves_records_kiln_cleanup_removes(build: Build) -> None:
    """kill -9 while the upload runs: the instance, key pair, security group and the parts
    already in S3 are in the ledger, and `kiln cleanup` removes them all."""
    (build.tools.dir / "hang-upload").touch()
    build.temporary_key()
    path = build.write()
    log = build.tmp / "out.txt"
    started = build.tools.dir / "upload-started"
    with AuthorizeTemporaryKey(build.sshd, build.state_dir):
        proc = start_kiln(["build", "-color=false", str(path)], build.env, build.tmp, log)
        try:
            wait_for_file(started, proc, timeout=90)
            proc.send_signal(signal.SIGKILL)
            proc.wait(30)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert len(s3_keys(build.moto, build.bucket)) == 2  # the parts
    kinds = sorted(k for k, _i, _kept in ledger_rows(build.state_dir))
    assert kinds == ["aws-instance", "aws-keypair", "aws-s3-bundle", "aws-security-group"], kinds
    r = kiln(["cleanup"], build.env, build.tmp)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "removed aws-s3-bundle" in r.stdout, r.stdout
    assert s3_keys(build.moto, build.bucket) == []
    nothing_left(build.moto, build.ami_name)
    assert ledger_rows(build.state_dir) == []
    # the "instance" here is this machine, which a real cleanup terminates with the X.509
    # pair on it: remove the pair the killed build left
    for call in build.tools.calls("bundle"):
        shutil.rmtree(os.path.dirname(call["key"]), ignore_errors=True)


# --------------------------------------------------------------------------- least privilege


@pytest.fixture(scope="module")
def iam_moto() -> Any:
    """A moto_server of this module's own that enforces IAM (tests/support/iam_moto.py)."""
    from iam_moto import IamMoto

    server = IamMoto()
    server.start()
    try:
        server.client("ec2", REGION).describe_regions()  # load the default AMIs first
        yield server
    finally:
        server.stop()


@pytest.mark.aws
@pytest.mark.ssh
def test_the_derived_policy_is_enough_and_each_s3_statement_is_needed(
        iam_moto: Any, sshd: Any, tmp_path: Path) -> None:
    """A user holding exactly `kiln iam policy`'s document builds an amazon-instance AMI,
    the AMI tools uploading with the same keys, and deletes the parts of a failed upload;
    without s3:PutObject the upload is refused. (-narrow=false: moto matches Resource "*"
    only; the narrowing has unit tests.)"""
    from iam_moto import policy_document

    admin_ec2 = iam_moto.client("ec2", REGION)
    source = f"kiln-src-iam-{uuid.uuid4().hex[:8]}"
    admin_ec2.register_image(Name=source, RootDeviceName="/dev/sda1")
    iam_moto.enforce()
    tools = Tools(tmp_path, iam_moto.endpoint)
    (tmp_path / "bundle").mkdir()
    for name in ("cert.pem", "pk.pem"):
        (tmp_path / name).write_text("x509 stand-in\n")
    bucket = f"kiln-iam-bundles-{uuid.uuid4().hex[:8]}"
    builder = {
        "type": "amazon-instance", "region": REGION, "custom_endpoint_ec2": iam_moto.endpoint,
        "source_ami_filter": {"filters": {"name": source}, "owners": ["self"]},
        "instance_type": "m3.medium", "ami_name": f"kiln-iam-instance-{uuid.uuid4().hex[:8]}",
        "account_id": "123456789012", "s3_bucket": bucket,
        "x509_cert_path": str(tmp_path / "cert.pem"), "x509_key_path": str(tmp_path / "pk.pem"),
        "bundle_destination": str(tmp_path / "bundle"),
        "bundle_vol_command": tools.vol_command(), "bundle_upload_command": tools.upload_command(),
        "ssh_host": sshd.host, "ssh_port": sshd.port, "ssh_username": sshd.user,
        "ssh_private_key_file": sshd.private_key_path, "ssh_timeout": "20s"}
    path = tmp_path / "t.json"
    path.write_text(json.dumps({"builders": [builder]}))

    def env(keys: tuple[str, str]) -> dict[str, str]:
        e = iam_moto.env(keys)
        e["KILN_STATE_DIR"] = str(tmp_path / "state")
        return e

    r = kiln(["iam", "policy", "-narrow=false", str(path)], env(iam_moto.admin), tmp_path)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    actions = sorted({a for s in doc["Statement"] for a in s["Action"]})
    assert "ec2:RegisterImage" in actions and "ec2:CreateImage" not in actions
    # moto checks ListObjectsV2 against an action of that name where AWS checks
    # s3:ListBucket (which the policy has): grant moto's name too
    doc["Statement"].append({"Effect": "Allow", "Action": ["s3:ListObjectsV2"],
                             "Resource": "*"})
    s3 = iam_moto.client("s3", REGION)

    r = kiln(["build", "-color=false", str(path)], env(iam_moto.user(doc)), tmp_path)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert " denied" not in out
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"])
    assert len(keys) == 3 and keys[0].endswith(".manifest.xml"), keys

    # an upload that fails after the parts went up: the derived policy lets Kiln delete them
    (tools.dir / "fail-upload").touch()
    builder["ami_name"] += "-failed"
    builder["bundle_prefix"] = "failed-{{timestamp}}"
    path.write_text(json.dumps({"builders": [builder]}))
    r = kiln(["build", "-color=false", str(path)], env(iam_moto.user(doc)), tmp_path)
    out = r.stdout + r.stderr
    assert r.returncode == 1, out
    assert "Deleted the bundle's 2 objects" in out, out
    assert sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]) == keys
    (tools.dir / "fail-upload").unlink()

    # the same policy without s3:PutObject: the upload is refused and the build fails cleanly
    builder["ami_name"] += "-less"
    builder["bundle_prefix"] = "less-{{timestamp}}"
    path.write_text(json.dumps({"builders": [builder]}))
    less = [a for a in actions if a != "s3:PutObject"] + ["s3:ListObjectsV2"]
    r = kiln(["build", "-color=false", str(path)], env(iam_moto.user(policy_document(less))),
             tmp_path)
    out = r.stdout + r.stderr
    assert r.returncode == 1, out
    assert "Bundle upload failed" in out and "AccessDenied" in out, out
    left = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", []))
    assert left == keys  # only the first build's bundle
    for call in tools.calls("bundle"):
        assert not os.path.exists(os.path.dirname(call["key"]))


# --------------------------------------------------------------------------- Packer 1.6.6


@pytest.mark.aws
@pytest.mark.ssh
@pytest.mark.packer
def test_packer_and_kiln_hand_the_tools_the_same_values_and_register_alike(
        build: Build, packer: str, packer_environ: dict[str, str]) -> None:
    """The same template through Packer 1.6.6 and Kiln, against the same moto, sshd and
    stand-in tools: the bundle and upload commands get the same values (but the X.509
    directory, a private one in Kiln where Packer writes /tmp/cert.pem), the bundle lands
    in S3 under the same names and the AMI is registered from the manifest alike."""
    # Packer 1.6.6's upload command has no {{.Token}}: the template gives both the same one
    build.builder["bundle_upload_command"] = build.tools.upload_command().replace(
        "{{if .Token}} -t {{.Token}}{{end}}", "")
    results = {}
    for tool in ("packer", "kiln"):
        build.builder["ami_name"] = f"{build.ami_name}-{tool}"
        build.builder["bundle_prefix"] = f"{tool}-{build.token}"
        path = build.write()
        if tool == "packer":
            env = build.moto.aws_env(REGION, base=packer_environ)
            r = subprocess.run([packer, "build", "-color=false", str(path)], cwd=build.tmp,
                               env=env, capture_output=True, text=True, timeout=120,
                               stdin=subprocess.DEVNULL)
        else:
            r = build.run()
        assert r.returncode == 0, f"{tool}:\n{r.stdout}{r.stderr}"
        results[tool] = r.stdout
    bundles = build.tools.calls("bundle")
    uploads = build.tools.calls("upload")
    assert len(bundles) == len(uploads) == 2
    for call in bundles + uploads:  # the per-run values, made comparable
        for key in ("prefix", "manifest"):
            if key in call:
                call[key] = call[key].replace("packer-", "TOOL-").replace("kiln-", "TOOL-")
    packer_bundle, kiln_bundle = bundles
    assert packer_bundle["cert"] == "/tmp/cert.pem" and packer_bundle["key"] == "/tmp/key.pem"
    assert kiln_bundle["cert"].endswith("/cert.pem") and kiln_bundle["key"].endswith("/key.pem")
    assert kiln_bundle["keysum"] == packer_bundle["keysum"]  # the same key got there
    same = ("account", "arch", "dest", "prefix")
    assert {k: kiln_bundle[k] for k in same} == {k: packer_bundle[k] for k in same}
    assert uploads[0] == uploads[1]
    ec2 = build.moto.client("ec2", REGION)
    for tool in ("packer", "kiln"):
        (image,) = ec2.describe_images(Owners=["self"], Filters=[
            {"Name": "name", "Values": [f"{build.ami_name}-{tool}"]}])["Images"]
        assert image["ImageLocation"] == f"{build.bucket}/{tool}-{build.token}.manifest.xml"
        assert image["VirtualizationType"] == "hvm"
        assert f"AMIs were created:\n{REGION}: {image['ImageId']}" in results[tool]
    assert s3_keys(build.moto, build.bucket) == sorted(
        f"{tool}-{build.token}.{part}" for tool in ("packer", "kiln")
        for part in ("manifest.xml", "part.0", "part.1"))
    # Packer leaves its X.509 pair in /tmp; Kiln removed its own
    assert not os.path.exists(os.path.dirname(kiln_bundle["key"]))
    for leftover in ("/tmp/cert.pem", "/tmp/key.pem"):
        if Path(leftover).read_bytes() in (build.x509_key.read_bytes(),
                                           Path(build.builder["x509_cert_path"]).read_bytes()):
            Path(leftover).unlink()
    nothing_left(build.moto)
