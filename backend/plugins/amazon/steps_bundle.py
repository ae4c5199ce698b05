"""The amazon-instance steps after provisioning: put the X.509 pair on the instance, bundle
the volume and upload the bundle with the AMI tools, take the pair off again, and register
the AMI from the bundle's manifest in S3."""

from __future__ import annotations

import os
import shlex
from typing import Any

from ...sdk.cancel import CancelToken
from ...sdk.plugin import StepError
from . import common as aws
from .instance_config import AmazonInstanceConfig
from .steps_base import AwsStep, _Build, _record, _release, render
from .steps_image import CreateImageStep

#: how long removing the X.509 pair may take when the build is already failing
CLEANUP_TIMEOUT = 60.0


class BundleState:
    """What the bundle steps hand on: where the X.509 pair is, the bundle's names."""

    def __init__(self) -> None:
        self.x509_dir = ""  # the private directory on the instance holding the pair
        self.cert_path = ""
        self.key_path = ""
        self.prefix = ""
        self.manifest_name = ""
        self.manifest_path = ""  # on the instance
        self.image_location = ""  # bucket/manifest in S3


def _run(ctx, command: str, what: str, cancel: CancelToken | None = None,
         timeout: float | None = None, show: bool = True) -> tuple[int, list[str]]:
    """Run ``command`` on the instance; its output is shown (masked; stdout only when
    ``show``); returns the exit status and the stdout lines."""
    from ...sdk.communicator import CommunicatorError

    comm = ctx.communicator
    if comm is None:
        raise StepError(f"cannot {what}: the build has no connection to the instance")
    lines: list[str] = []

    def collect(stream: str, out: list[str], partial: bool = False) -> None:
        if stream == "stdout":
            lines.extend(out)
        if show or stream == "stderr":  # a helper command's complaint is worth seeing
            ctx.ui.output(stream, out, partial)

    try:
        status = comm.run(command, collect, cancel or ctx.cancel, timeout=timeout)
    except CommunicatorError as e:
        raise StepError(f"cannot {what}: {e}") from e
    return status, lines


def remove_x509(ctx, st: BundleState, cleanup: bool) -> bool:
    """Delete the X.509 pair's directory on the instance; True when it is gone."""
    if not st.x509_dir:
        return True
    command = f"rm -rf -- {shlex.quote(st.x509_dir)}"
    try:
        if cleanup:  # the build may be cancelled: this must still run, briefly
            status, _ = _run(ctx, command, "remove the X.509 files", CancelToken(),
                             CLEANUP_TIMEOUT, show=False)
        else:
            status, _ = _run(ctx, command, "remove the X.509 files", show=False)
    except StepError as e:
        if not cleanup:
            raise
        ctx.ui.error(f"Could not remove the X.509 files in {st.x509_dir}: {e}")
        return False
    if status != 0:
        message = f"Could not remove the X.509 files in {st.x509_dir} (exit status {status})"
        if not cleanup:
            raise StepError(message)
        ctx.ui.error(message)
        return False
    ctx.ui.say(f"Removed the X.509 certificate and key from {st.x509_dir}")
    st.x509_dir = ""
    return True


class BundleStep(AwsStep):
    """A step of the bundle: the build's steps plus the bundle's own state."""

    def __init__(self, build: _Build, st: BundleState):
        super().__init__(build)
        self.st = st


class UploadX509Step(BundleStep):
    title = "Upload X.509 certificate"

    def run(self, ctx) -> None:
        c: AmazonInstanceConfig = self.c  # type: ignore[assignment]
        ctx.ui.say("Uploading X509 Certificate...")
        # a directory only this login can enter: the key never sits under a guessable name
        # in a shared /tmp, and a planted symlink cannot redirect it
        base = c.x509_upload_path.rstrip("/")  # "/" gives "" and so "/kiln-x509.*"
        status, out = _run(ctx, f"umask 077 && mktemp -d {shlex.quote(base)}/kiln-x509.XXXXXXXXXX",
                           "make a directory for the X.509 files", show=False)
        folder = out[-1].strip() if out else ""
        if status != 0 or not folder.startswith("/"):
            raise StepError(f"Error uploading X509 cert: cannot make a private directory in "
                            f"x509_upload_path {c.x509_upload_path} (exit status {status}); it "
                            "must exist and be writable on the instance")
        self.st.x509_dir = folder
        self.st.cert_path = f"{folder}/cert.pem"
        self.st.key_path = f"{folder}/key.pem"
        from ...sdk.communicator import CommunicatorError

        for local, remote in ((c.x509_cert_path, self.st.cert_path),
                              (c.x509_key_path, self.st.key_path)):
            try:
                ctx.communicator.upload(remote, _abs(local), mode=0o600)
            except CommunicatorError as e:
                raise StepError(f"Error uploading X509 cert: {e}") from e

    def cleanup(self, ctx) -> None:
        remove_x509(ctx, self.st, cleanup=True)


def _abs(path: str) -> str:
    return os.path.abspath(os.path.expanduser(path))


class BundleVolumeStep(BundleStep):
    title = "Bundle volume"

    def run(self, ctx) -> None:
        c: AmazonInstanceConfig = self.c  # type: ignore[assignment]
        b = self.b
        st = self.st
        st.prefix = b.render(ctx, c.bundle_prefix, "bundle_prefix").strip()
        if not st.prefix or "/" in st.prefix or any(ch.isspace() for ch in st.prefix):
            raise StepError(f"bundle_prefix rendered to {st.prefix!r}: it must be a file name "
                            "prefix without / or spaces")
        architecture = (b.instance.get("Architecture") or b.source_image.get("Architecture")
                        or "x86_64")
        data = {"AccountId": c.account_id, "Architecture": architecture,
                "CertPath": st.cert_path, "Destination": c.bundle_destination,
                "KeyPath": st.key_path, "Prefix": st.prefix, "PrivatePath": c.x509_upload_path}
        command = render(ctx, c.vol_command(), data, "bundle_vol_command")
        ctx.ui.say("Bundling the volume...")
        if getattr(ctx.options, "debug", False):
            ctx.ui.say(f"Running: {command}")
        status, _ = _run(ctx, command, "bundle the volume")
        if status != 0:
            raise StepError(f"Volume bundling failed (exit status {status}); see the output "
                            "above for what went wrong. A common cause is ec2-bundle-vol not "
                            "being installed on the instance (the EC2 AMI tools).")
        st.manifest_name = f"{st.prefix}.manifest.xml"
        st.manifest_path = f"{c.bundle_destination.rstrip('/')}/{st.manifest_name}"


class UploadBundleStep(BundleStep):
    """Run the upload command. The bundle's objects are recorded in the ledger first: a
    failed or cancelled build deletes them again (``kiln cleanup`` after a kill), a
    successful one keeps them, since the AMI is read from them."""

    title = "Upload bundle"

    def __init__(self, build: _Build, st: BundleState):
        super().__init__(build, st)
        self.entry: int | None = None

    def run(self, ctx) -> None:
        c: AmazonInstanceConfig = self.c  # type: ignore[assignment]
        st = self.st
        access_key, secret_key, token = self._credentials()
        for value in (secret_key, token):
            if value:
                ctx.add_secret(value)
        if access_key and len(access_key) >= 16:
            ctx.add_secret(access_key)
        data = {"AccessKey": access_key, "BucketName": c.s3_bucket,
                "BundleDirectory": c.bundle_destination, "ManifestName": st.manifest_name,
                "ManifestPath": st.manifest_path, "Region": c.region, "SecretKey": secret_key,
                "Token": token}
        command = render(ctx, c.upload_command(), data, "bundle_upload_command")
        bucket, key_prefix = bundle_keys(c.s3_bucket, st.prefix)
        access = self.b.access
        assert access is not None
        self.entry = _record(ctx, "aws-s3-bundle", f"s3://{bucket}/{key_prefix}*",
                             access.ledger_data(bucket=bucket, key_prefix=key_prefix))
        ctx.ui.say("Uploading the bundle...")
        if getattr(ctx.options, "debug", False):
            ctx.ui.say(f"Running: {command}")
        status, _ = _run(ctx, command, "upload the bundle")
        if status != 0:
            if status == 3:
                ctx.ui.error(f"Please check that the bucket {c.s3_bucket} does not exist, or "
                             "exists and is writable: this exit status says it may belong to "
                             "another account.")
            raise StepError(f"Bundle upload failed (exit status {status}); see the output "
                            "above for what went wrong.")
        st.image_location = f"{c.s3_bucket.rstrip('/')}/{st.manifest_name}"
        ctx.ui.say(f"Uploaded the bundle: s3://{st.image_location}")

    def cleanup(self, ctx) -> None:
        if self.entry is None:
            return
        if self.b.done:  # the AMI is registered from these objects: they stay
            _release(ctx, self.entry)
            self.entry = None
            return
        c: AmazonInstanceConfig = self.c  # type: ignore[assignment]
        bucket, key_prefix = bundle_keys(c.s3_bucket, self.st.prefix)
        assert self.b.access is not None
        try:
            n = delete_bundle(self.b.access.client("s3"), bucket, key_prefix)
        except Exception as e:
            if not aws.is_aws_error(e):
                raise
            ctx.ui.error(f"Error deleting the bundle s3://{bucket}/{key_prefix}*: "
                         f"{aws.aws_error(e)}; `kiln cleanup` will retry")
            return
        if n:
            ctx.ui.say(f"Deleted the bundle's {n} objects from s3://{bucket}/{key_prefix}*")
        _release(ctx, self.entry)
        self.entry = None

    def _credentials(self) -> tuple[str, str, str]:
        c = self.c
        if c.access_key or c.secret_key:
            return c.access_key, c.secret_key, c.token
        access = self.b.access
        assert access is not None
        try:
            creds = access.session.get_credentials()
            frozen = creds.get_frozen_credentials() if creds is not None else None
        except Exception as e:
            if not aws.is_aws_error(e):
                raise
            raise StepError(f"cannot load the AWS credentials for the upload: "
                            f"{aws.aws_error(e)}") from e
        if frozen is None:
            return "", "", ""
        return frozen.access_key or "", frozen.secret_key or "", frozen.token or ""


def bundle_keys(s3_bucket: str, prefix: str) -> tuple[str, str]:
    """The bucket and the key prefix of every object of the bundle (``s3_bucket`` may carry
    a folder: ec2-upload-bundle puts the files under it)."""
    bucket, _, folder = s3_bucket.partition("/")
    folder = folder.strip("/")
    return bucket, (f"{folder}/" if folder else "") + f"{prefix}."


def delete_bundle(s3: Any, bucket: str, key_prefix: str) -> int:
    """Delete the objects under ``key_prefix``; the number deleted (0 when the bucket is
    gone). A bundle is a manifest and its parts, a page or two of keys."""
    deleted = 0
    token = ""
    while True:
        params: dict[str, Any] = {"Bucket": bucket, "Prefix": key_prefix}
        if token:
            params["ContinuationToken"] = token
        try:
            page = s3.list_objects_v2(**params)
        except Exception as e:
            if aws.error_code(e) == "NoSuchBucket":
                return deleted
            raise
        # one DeleteObject per key: the batch call is another request shape that some S3
        # endpoints (and IAM simulators) do not map to s3:DeleteObject
        for o in page.get("Contents") or []:
            s3.delete_object(Bucket=bucket, Key=o["Key"])
            deleted += 1
        token = page.get("NextContinuationToken") or ""
        if not page.get("IsTruncated") or not token:
            return deleted


def reap_bundle(entry: Any) -> None:
    """``kiln cleanup``: delete the objects of a bundle a killed build uploaded (declared as
    the reaper of aws-s3-bundle); the default credential chain, as the other AWS reapers."""
    data = dict(entry.data or {})
    s3 = aws.reap_session(data).client("s3", region_name=data.get("region") or None)
    delete_bundle(s3, data["bucket"], data["key_prefix"])


class RemoveX509Step(BundleStep):
    title = "Remove X.509 certificate"

    def run(self, ctx) -> None:
        remove_x509(ctx, self.st, cleanup=False)


class RegisterAmiStep(CreateImageStep):
    """Register the AMI from the uploaded manifest; a failed build deregisters it again
    (CreateImageStep's cleanup)."""

    title = "Register AMI"

    def __init__(self, build: _Build, st: BundleState):
        super().__init__(build)
        self.st = st

    def run(self, ctx) -> None:
        c: AmazonInstanceConfig = self.c  # type: ignore[assignment]
        b = self.b
        name = self.free_name(ctx)
        description = b.render(ctx, c.ami_description, "ami_description")
        ctx.ui.say(f"Registering the AMI {name} from s3://{self.st.image_location}...")
        params: dict[str, Any] = {
            "ImageLocation": self.st.image_location, "Name": name,
            "TagSpecifications": [aws.tag_spec("image", aws.kiln_tags(ctx))],
        }
        if description:
            params["Description"] = description
        if c.ami_block_device_mappings:
            params["BlockDeviceMappings"] = [d.api() for d in c.ami_block_device_mappings]
        if c.ami_virtualization_type:
            params["VirtualizationType"] = c.ami_virtualization_type
        if c.sriov_support:
            params["SriovNetSupport"] = "simple"
        if c.ena_support:
            params["EnaSupport"] = True
        if c.tpm_support:
            params["TpmSupport"] = c.tpm_support
        if c.boot_mode:
            params["BootMode"] = c.boot_mode
        self.keep(ctx, self.make(ctx, name, b.ec2.register_image, params,
                                 "Error registering AMI"))
