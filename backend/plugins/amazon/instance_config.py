"""The amazon-instance configuration: the amazon-ebs run and AMI keys plus what bundling an
instance-store AMI needs (the account, the S3 bucket, the X.509 pair, the AMI tools' commands)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from ...sdk.config import ConfigProblems, Deferred, opt
from .config import AmazonEBSConfig

INSTANCE_BUILDER_ID = "mitchellh.amazon.instance"

#: the bundle-volume command of the EC2 AMI tools (Packer's default, so templates that
#: override only one of the commands behave as they do there)
DEFAULT_BUNDLE_VOL_COMMAND = (
    "sudo -i -n ec2-bundle-vol -k {{.KeyPath}} -u {{.AccountId}} -c {{.CertPath}} "
    "-r {{.Architecture}} -e {{.PrivatePath}}/* -d {{.Destination}} -p {{.Prefix}} "
    "--batch --no-filter")

#: the upload command; with an instance profile the tools use the instance's role, so no
#: key is put on the command line. A session token (temporary credentials) goes in as -t.
DEFAULT_BUNDLE_UPLOAD_COMMAND = (
    "sudo -i -n ec2-upload-bundle -b {{.BucketName}} -m {{.ManifestPath}} "
    "-a {{.AccessKey}} -s {{.SecretKey}}{{if .Token}} -t {{.Token}}{{end}} "
    "-d {{.BundleDirectory}} --batch --region {{.Region}} --retry")
DEFAULT_BUNDLE_UPLOAD_COMMAND_PROFILE = (
    "sudo -i -n ec2-upload-bundle -b {{.BucketName}} -m {{.ManifestPath}} "
    "-d {{.BundleDirectory}} --batch --region {{.Region}} --retry")

#: the variables each command may use (anything else is reported by validate)
BUNDLE_VOL_VARS = ("AccountId", "Architecture", "CertPath", "Destination", "KeyPath", "Prefix",
                   "PrivatePath")
BUNDLE_UPLOAD_VARS = ("AccessKey", "BucketName", "BundleDirectory", "ManifestName",
                      "ManifestPath", "Region", "SecretKey", "Token")

#: amazon-ebs keys that mean nothing to an instance-store build
EBS_ONLY_KEYS = ("run_volume_tags", "run_volume_tag", "no_ephemeral", "skip_create_ami",
                 "fast_launch")

_ACCOUNT = re.compile(r"^\d{12}$")
_BUCKET = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{1,254}(/[^\s]*)?$")
_FIELD = re.compile(r"{{-?\s*\.([A-Za-z_][A-Za-z0-9_]*)")


@dataclass
class AmazonInstanceConfig(AmazonEBSConfig):
    account_id: str = opt("", doc="the AWS account number (12 digits; dashes are dropped)")
    s3_bucket: str = opt("", doc="the S3 bucket the bundle is uploaded to (made if missing)")
    x509_cert_path: str = opt("", doc="local X.509 certificate the AMI tools sign with")
    x509_key_path: str = opt("", doc="local private key of x509_cert_path")
    x509_upload_path: str = opt("", doc="directory on the instance for the X.509 pair "
                                "(default /tmp; Kiln uses a private directory inside it)")
    bundle_destination: str = opt("", doc="directory on the instance the bundle is written "
                                  "to (default /tmp)")
    bundle_prefix: Deferred = opt(Deferred(""), doc="file name prefix of the bundle (default "
                                  "image-{{timestamp}})")
    bundle_vol_command: Deferred = opt(Deferred(""), doc="command that bundles the volume")
    bundle_upload_command: Deferred = opt(Deferred(""), doc="command that uploads the bundle")

    def __post_init__(self) -> None:
        super().__post_init__()
        self.account_id = self.account_id.replace("-", "").strip()
        if not self.x509_upload_path:
            self.x509_upload_path = "/tmp"
        if not self.bundle_destination:
            self.bundle_destination = "/tmp"
        if not self.bundle_prefix:
            self.bundle_prefix = Deferred("image-{{timestamp}}")

    def check(self) -> None:
        try:
            super().check()
            p: list[tuple[str, str]] = []
        except ConfigProblems as e:
            p = [(k, m.replace("the amazon-ebs builder", "the amazon-instance builder"))
                 for k, m in e.problems]
        ctype = self.communicator_type()
        if ctype in ("none", "winrm"):
            p.append(("communicator", f'the amazon-instance builder cannot use the "{ctype}" '
                      "communicator: the AMI tools run on the instance over ssh"))
        if not self.account_id:
            p.append(("account_id", "account_id is required: the 12-digit AWS account number "
                      "the bundle is made for (not the access key)"))
        elif not _ACCOUNT.match(self.account_id):
            p.append(("account_id", f"account_id must be the 12-digit AWS account number "
                      f"(dashes allowed), not {self.account_id!r}"))
        if not self.s3_bucket:
            p.append(("s3_bucket", "s3_bucket is required: the S3 bucket the bundle is "
                      "uploaded to and the AMI is registered from"))
        elif not _BUCKET.match(self.s3_bucket):
            p.append(("s3_bucket", f"{self.s3_bucket!r} is not an S3 bucket name (optionally "
                      "followed by /a/prefix)"))
        for key in ("x509_cert_path", "x509_key_path"):
            problem = _local_file_problem(key, getattr(self, key))
            if problem:
                p.append((key, problem))
        for key in ("x509_upload_path", "bundle_destination"):
            value = getattr(self, key)
            if not value.startswith("/"):
                p.append((key, f"{key} must be an absolute path on the instance, not {value!r}"))
            elif any(c in value for c in "\n\0"):
                p.append((key, f"{key} must not contain a newline or NUL"))
        if not str(self.bundle_prefix).strip():
            p.append(("bundle_prefix", "bundle_prefix must not be empty"))
        elif "/" in str(self.bundle_prefix).replace("}}", "").split("{{")[0]:
            p.append(("bundle_prefix", "bundle_prefix is a file name prefix: it cannot hold /"))
        for key, allowed in (("bundle_vol_command", BUNDLE_VOL_VARS),
                             ("bundle_upload_command", BUNDLE_UPLOAD_VARS)):
            for name in unknown_fields(str(getattr(self, key)), allowed):
                p.append((key, f"{key} uses {{{{.{name}}}}}, which it does not have; it may "
                          "use " + ", ".join("{{." + a + "}}" for a in allowed)))
        for key in EBS_ONLY_KEYS:
            if getattr(self, key) not in (None, False, "", [], {}, 0):
                p.append((key, f"{key} is an amazon-ebs key; the amazon-instance builder "
                          "makes an instance-store AMI and does not use it"))
        if p:
            raise ConfigProblems(p)

    # -- derived -------------------------------------------------------------------
    def vol_command(self) -> str:
        return str(self.bundle_vol_command) or DEFAULT_BUNDLE_VOL_COMMAND

    def upload_command(self) -> str:
        if self.bundle_upload_command:
            return str(self.bundle_upload_command)
        if self.iam_instance_profile:
            return DEFAULT_BUNDLE_UPLOAD_COMMAND_PROFILE
        return DEFAULT_BUNDLE_UPLOAD_COMMAND


def unknown_fields(text: str, allowed: tuple[str, ...]) -> list[str]:
    """The ``{{.Name}}`` fields of a command template that are not among ``allowed``."""
    out = []
    for name in _FIELD.findall(text):
        if name not in allowed and name not in out:
            out.append(name)
    return out


def _local_file_problem(key: str, path: str) -> str:
    if not path:
        return f"{key} is required: the X.509 {'certificate' if 'cert' in key else 'private key'}" \
               " the AMI tools sign the bundle with"
    full = os.path.abspath(os.path.expanduser(path))
    if not os.path.exists(full):
        return f"{key} {path} does not exist"
    if not os.path.isfile(full):
        return f"{key} {path} is not a regular file"
    if not os.access(full, os.R_OK):
        return f"{key} {path} is not readable"
    return ""
