"""amazon-instance's configuration: Packer's defaults, and the bundle commands it renders."""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from kiln.backend.plugins.amazon.instance_config import (  # noqa: E402
    AmazonInstanceConfig,
    unknown_fields,
)
from kiln.backend.template import gotmpl  # noqa: E402

VOL_DATA = {"AccountId": "123456789012", "Architecture": "x86_64",
            "CertPath": "/tmp/kiln-x509.a/cert.pem", "Destination": "/mnt",
            "KeyPath": "/tmp/kiln-x509.a/key.pem", "Prefix": "image-1", "PrivatePath": "/tmp"}
UPLOAD_DATA = {"AccessKey": "AKIA", "BucketName": "b", "BundleDirectory": "/mnt",
               "ManifestName": "image-1.manifest.xml", "ManifestPath": "/mnt/image-1.manifest.xml",
               "Region": "eu-west-1", "SecretKey": "SECRET", "Token": ""}


def config(**kw) -> AmazonInstanceConfig:
    return AmazonInstanceConfig(**kw)


def test_defaults_are_packers() -> None:
    c = config(account_id="1234-5678-9012")
    assert c.account_id == "123456789012"  # dashes dropped
    assert (c.x509_upload_path, c.bundle_destination, c.bundle_prefix) == (
        "/tmp", "/tmp", "image-{{timestamp}}")
    assert gotmpl.render(c.vol_command(), {}, VOL_DATA) == (
        "sudo -i -n ec2-bundle-vol -k /tmp/kiln-x509.a/key.pem -u 123456789012 "
        "-c /tmp/kiln-x509.a/cert.pem -r x86_64 -e /tmp/* -d /mnt -p image-1 "
        "--batch --no-filter")
    assert gotmpl.render(c.upload_command(), {}, UPLOAD_DATA) == (
        "sudo -i -n ec2-upload-bundle -b b -m /mnt/image-1.manifest.xml -a AKIA -s SECRET "
        "-d /mnt --batch --region eu-west-1 --retry")


def test_a_session_token_is_passed_to_the_upload() -> None:
    c = config()
    rendered = gotmpl.render(c.upload_command(), {}, {**UPLOAD_DATA, "Token": "TOKEN"})
    assert " -s SECRET -t TOKEN -d /mnt " in rendered


def test_with_an_instance_profile_no_key_is_on_the_command_line() -> None:
    c = config(iam_instance_profile="bundler")
    rendered = gotmpl.render(c.upload_command(), {}, UPLOAD_DATA)
    assert "SECRET" not in rendered and "AKIA" not in rendered
    assert rendered.startswith("sudo -i -n ec2-upload-bundle -b b -m /mnt/image-1.manifest.xml")
    # the user's own command wins
    assert config(iam_instance_profile="x", bundle_upload_command="up {{.BucketName}}"
                  ).upload_command() == "up {{.BucketName}}"


def test_unknown_fields_are_named_once() -> None:
    assert unknown_fields("a {{.KeyPath}} {{ .Nope }} {{-.Nope}} {{.Prefix}}",
                          ("KeyPath", "Prefix")) == ["Nope"]
