"""``kiln iam policy``: the derivation table, the documents it prints, and the code walk
that keeps the table complete."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "support"))

from iam_moto import PACKER_DOCUMENTED_ACTIONS  # noqa: E402
from kiln.backend.plugins.amazon.iam.table import (  # noqa: E402
    OPERATION_ACTIONS,
    SERVICE_PREFIX,
    TABLE_ACTIONS,
)

AMAZON_CODE = sorted([*REPO.glob("backend/plugins/amazon/*.py"),
                      *REPO.glob("backend/plugins/amazon/chroot/*.py"),
                      *REPO.glob("backend/plugins/datasources/amazon_*.py"),
                      REPO / "backend/plugins/amazon/iam/preflight.py"])


def boto3_operations() -> dict[str, set[str]]:
    """snake_case method name -> IAM actions, for every operation of the services Kiln's
    amazon plugins use (from botocore's own service models)."""
    import botocore.session
    from botocore import xform_name

    session = botocore.session.get_session()
    out: dict[str, set[str]] = {}
    for service, prefix in SERVICE_PREFIX.items():
        model = session.get_service_model(service)
        for op in model.operation_names:
            action = f"{prefix}:{op}"
            out.setdefault(xform_name(op), set()).add(OPERATION_ACTIONS.get(action, action))
    return out


def calls_in(path: Path, ops: dict[str, set[str]]) -> list[tuple[str, int, str]]:
    """(file, line, method) for every ``x.<boto3 operation>`` in the code, called or passed
    on (``aws.call(..., ec2.describe_vpcs, ...)``); ``aws.<name>`` is one of our helpers
    (``aws.delete_snapshot`` calls ``ec2.delete_snapshot`` itself, which is counted)."""
    tree = ast.parse(path.read_text())
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in ops:
            if isinstance(node.value, ast.Name) and node.value.id == "aws":
                continue
            found.append((path.name, node.lineno, node.attr))
    return found


def test_every_boto3_call_of_the_amazon_plugins_has_an_entry_in_the_table() -> None:
    ops = boto3_operations()
    calls = [c for p in AMAZON_CODE if p.exists() for c in calls_in(p, ops)]
    # the walk sees the calls we know are there (so it walks the right code)
    names = {c[2] for c in calls}
    assert {"run_instances", "create_image", "describe_images", "import_key_pair",
            "copy_image", "get_parameter", "get_secret_value", "assume_role",
            "register_image", "list_objects_v2", "delete_object", "create_volume",
            "attach_volume"} <= names, names
    missing = []
    for file, line, method in calls:
        if not ops[method] & TABLE_ACTIONS:
            missing.append(f"{file}:{line}: {method} ({', '.join(sorted(ops[method]))})")
    assert not missing, "boto3 calls with no entry in backend/iam/table.py:\n" + \
        "\n".join(missing)


def test_the_code_walk_finds_a_call_the_table_lacks(tmp_path: Path) -> None:
    """The walk is not vacuous: a call outside the table is reported."""
    ops = boto3_operations()
    code = tmp_path / "amazon_new.py"
    code.write_text("def f(ec2):\n    return ec2.create_fleet(Type='instant')\n")
    calls = calls_in(code, ops)
    assert calls == [("amazon_new.py", 2, "create_fleet")]
    assert not ops["create_fleet"] & TABLE_ACTIONS


# --------------------------------------------------------------------------- derivation


def policy(tmp_path: Path, *flags: str, template: dict[str, Any] | None = None,
           hcl: str | None = None, **extra: Any) -> subprocess.CompletedProcess[str]:
    key = tmp_path / "id_test"
    key.write_text("not really a key\n")
    if hcl is not None:
        path = tmp_path / "t.pkr.hcl"
        path.write_text(hcl)
    else:
        builder = {"type": "amazon-ebs", "region": "us-east-1", "source_ami": "ami-12345678",
                   "instance_type": "t3.micro", "ami_name": "kiln-test", "ssh_username": "u",
                   "ssh_private_key_file": str(key)}
        builder.update(extra)
        path = tmp_path / "t.json"
        path.write_text(json.dumps(template or {"builders": [builder]}))
    return subprocess.run([sys.executable, "-m", "kiln.backend.cli", "iam", "policy", *flags,
                           str(path)], capture_output=True, text=True, cwd=tmp_path,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO),
                               "HOME": str(tmp_path)}, timeout=60)


def actions(tmp_path: Path, **extra: Any) -> set[str]:
    r = policy(tmp_path, **extra)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["Version"] == "2012-10-17"
    out: set[str] = set()
    for s in doc["Statement"]:
        assert s["Effect"] == "Allow" and s["Sid"].isalnum()
        out |= set(s["Action"])
    return out


def test_plain_template_needs_a_subset_of_packers_documented_list(tmp_path: Path) -> None:
    plain = actions(tmp_path)
    assert plain <= set(PACKER_DOCUMENTED_ACTIONS), plain - set(PACKER_DOCUMENTED_ACTIONS)
    # ...and much less than all of it: no copy, sharing, key pair, volume attach, password
    assert len(plain) < len(PACKER_DOCUMENTED_ACTIONS) - 10
    for absent in ("ec2:CopyImage", "ec2:ModifyImageAttribute", "ec2:CreateKeyPair",
                   "ec2:DeleteKeyPair", "ec2:GetPasswordData", "ec2:AttachVolume",
                   "ec2:DescribeVpcs"):
        assert absent not in plain


OPTIONS = [
    ({"ami_regions": ["us-west-2"]}, {"ec2:CopyImage"}),
    ({"ami_users": ["111122223333"]}, {"ec2:ModifyImageAttribute"}),
    ({"ami_groups": ["all"]}, {"ec2:ModifyImageAttribute"}),
    ({"snapshot_users": ["111122223333"]}, {"ec2:ModifySnapshotAttribute"}),
    ({"encrypt_boot": True}, {"ec2:CopyImage"}),
    ({"encrypt_boot": True, "kms_key_id": "alias/builds"},
     {"ec2:CopyImage", "kms:CreateGrant", "kms:Decrypt", "kms:DescribeKey",
      "kms:GenerateDataKeyWithoutPlaintext", "kms:ReEncryptFrom", "kms:ReEncryptTo"}),
    ({"iam_instance_profile": "builder"}, {"iam:PassRole", "iam:GetInstanceProfile"}),
    ({"iam_instance_profile": "builder", "skip_profile_validation": True}, {"iam:PassRole"}),
    ({"vpc_filter": {"filters": {"tag:Name": "build"}}},
     {"ec2:DescribeVpcs", "ec2:DescribeSubnets"}),
    ({"subnet_id": "subnet-12345678"}, {"ec2:DescribeSubnets"}),
    ({"ena_support": True}, {"ec2:ModifyInstanceAttribute"}),
    ({"deprecate_at": "2030-01-02T15:04:05Z"}, {"ec2:EnableImageDeprecation"}),
    ({"force_deregister": True, "force_delete_snapshot": True}, set()),
    ({"decode_authorization_messages": True}, {"sts:DecodeAuthorizationMessage"}),
    ({"assume_role": {"role_arn": "arn:aws:iam::111122223333:role/build"}},
     {"sts:AssumeRole"}),
]


@pytest.mark.parametrize("extra,added", OPTIONS, ids=[",".join(o[0]) for o in OPTIONS])
def test_each_option_adds_exactly_its_actions(tmp_path: Path, extra: dict[str, Any],
                                              added: set[str]) -> None:
    plain = actions(tmp_path)
    assert actions(tmp_path, **extra) - plain == added


def test_options_that_take_actions_away(tmp_path: Path) -> None:
    plain = actions(tmp_path)
    given = actions(tmp_path, security_group_ids=["sg-12345678"])
    assert plain - given == {"ec2:CreateSecurityGroup", "ec2:DeleteSecurityGroup",
                             "ec2:DescribeSecurityGroups", "ec2:AuthorizeSecurityGroupIngress"}
    no_ami = actions(tmp_path, skip_create_ami=True)
    assert {"ec2:CreateImage", "ec2:StopInstances"} & no_ami == set()
    # a temporary key pair (no key of the template's own) is imported, then deleted
    tmp = actions(tmp_path, ssh_private_key_file="")
    assert tmp - plain == {"ec2:ImportKeyPair", "ec2:DeleteKeyPair"}
    named = actions(tmp_path, ssh_keypair_name="mine")
    assert not {"ec2:ImportKeyPair", "ec2:DeleteKeyPair", "ec2:CreateKeyPair"} & named


def test_resources_are_narrowed_and_say_so(tmp_path: Path) -> None:
    r = policy(tmp_path, ssh_private_key_file="", temporary_key_pair_name="kiln-ci-key",
               ami_regions=["eu-west-1"], iam_instance_profile="builder")
    doc = json.loads(r.stdout)
    by_sid = {s["Sid"]: s for s in doc["Statement"]}
    key = by_sid["CreateTemporaryKeyPair"]
    assert key["Resource"] == "arn:aws:ec2:us-east-1:*:key-pair/kiln-ci-key"
    assert by_sid["CopyAMIToRegions"]["Resource"] == ["arn:aws:ec2:us-east-1:*:*",
                                                      "arn:aws:ec2:eu-west-1:*:*"]
    assert by_sid["CheckPermissions"]["Resource"] == \
        "arn:aws:iam::*:instance-profile/builder"
    # Describe calls take no resource in IAM
    assert all(s["Resource"] == "*" for s in doc["Statement"]
               if any(":Describe" in a for a in s["Action"]))
    wide = json.loads(policy(tmp_path, "-narrow=false", ssh_private_key_file="").stdout)
    assert {s["Resource"] for s in wide["Statement"]} == {"*"}

    explain = policy(tmp_path, "-explain", ssh_private_key_file="",
                     temporary_key_pair_name="kiln-ci-key").stdout
    assert "Create temporary key pair\n    because no ssh_keypair_name" in explain
    assert "(narrowed to the key pair Kiln names (kiln-ci-key) in us-east-1)" in explain
    assert "ec2:ImportKeyPair" in explain and "ec2:CreateKeyPair" in explain  # the note
    assert "ec2:DescribeVpcs" in explain and "optional" in explain


def test_terraform_block(tmp_path: Path) -> None:
    r = policy(tmp_path, "-format=terraform", ami_users=["111122223333"])
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith('data "aws_iam_policy_document" "kiln_build" {\n')
    assert '    sid       = "SetAMIPermissions"\n' in r.stdout
    assert '    actions   = ["ec2:ModifyImageAttribute"]\n' in r.stdout
    assert r.stdout.count("statement {") == len(json.loads(policy(
        tmp_path, ami_users=["111122223333"]).stdout)["Statement"])


def test_data_sources_are_derived_without_running_them(tmp_path: Path) -> None:
    hcl = '''
data "amazon-parameterstore" "base" {
  name   = "/images/base"
  region = "eu-west-1"
}
data "amazon-secretsmanager" "token" {
  name   = "ci/token"
  region = "eu-west-1"
}
data "amazon-ami" "ubuntu" {
  filters = { name = "ubuntu/*" }
  owners  = ["099720109477"]
  region  = "eu-west-1"
}
source "null" "n" { communicator = "none" }
build { sources = ["source.null.n"] }
'''
    r = policy(tmp_path, hcl=hcl)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    got = {(a, json.dumps(s["Resource"])) for s in doc["Statement"] for a in s["Action"]}
    assert ("ssm:GetParameter", '"arn:aws:ssm:eu-west-1:*:parameter/images/base"') in got
    assert ("secretsmanager:GetSecretValue",
            '"arn:aws:secretsmanager:eu-west-1:*:secret:ci/token-*"') in got
    assert ("ec2:DescribeImages", '"*"') in got


def test_errors_are_clear(tmp_path: Path) -> None:
    r = policy(tmp_path, template={"builders": [{"type": "null", "communicator": "none"}]})
    assert r.returncode == 1
    assert "uses no AWS builder or data source" in r.stderr
    r = policy(tmp_path, "-format=yaml")
    assert r.returncode == 1 and 'invalid value "yaml" for -format' in r.stderr
    r = policy(tmp_path, instance_type="")
    assert r.returncode == 1 and "instance_type" in r.stderr and "Traceback" not in r.stderr
    for argv in (["iam", "foo", "t.json"], ["iam", "check"], ["iam", "policy"],
                 ["iam", "policy", "-narrow=maybe", "t.json"]):
        r = subprocess.run([sys.executable, "-m", "kiln.backend.cli", *argv], capture_output=True,
                           text=True, cwd=tmp_path, env={"PATH": "/usr/bin:/bin",
                                                         "PYTHONPATH": str(REPO)}, timeout=60)
        assert r.returncode == 1, argv
        assert "Traceback" not in r.stderr and r.stderr.startswith(("Error: ", "Usage: ")), \
            (argv, r.stderr)


# --------------------------------------------------------------------------- error shapes


def client_error(code: str, message: str) -> Exception:
    from botocore.exceptions import ClientError

    return ClientError({"Error": {"Code": code, "Message": message}}, "GetParameter")


def test_an_xml_denial_where_json_was_expected_is_read_as_access_denied() -> None:
    """moto answers a denied JSON-protocol call (ssm, secretsmanager) with an XML body and
    HTTP 403, which botocore reports as code "403": Kiln reads the code and message out."""
    from kiln.backend.plugins.amazon import common as aws

    e = client_error("403", '<?xml version="1.0"?><ErrorResponse><Errors><Error><Code>'
                     "AccessDenied</Code><Message>User: u is not authorized to perform: "
                     "ssm:GetParameter</Message></Error></Errors></ErrorResponse>")
    assert aws.error_code(e) == "AccessDenied" and aws.denied(e)
    assert aws.aws_error(e) == "AccessDenied: User: u is not authorized to perform: " \
        "ssm:GetParameter"
    # real EC2's word for it, and moto's
    assert aws.denied(client_error("UnauthorizedOperation", "You are not authorized"))
    assert aws.denied(client_error("AccessDenied", "not authorized"))
    assert not aws.denied(client_error("InvalidAMIID.NotFound", "no such image"))


class _Sts:
    """A stand-in for STS: moto does not implement DecodeAuthorizationMessage, and real
    encoded messages come only from AWS itself."""

    def __init__(self, answer: Exception | str):
        self.answer = answer
        self.asked: list[str] = []

    def decode_authorization_message(self, EncodedMessage: str) -> dict[str, str]:  # noqa: N803
        self.asked.append(EncodedMessage)
        if isinstance(self.answer, Exception):
            raise self.answer
        return {"DecodedMessage": self.answer}


class _Access:
    endpoint = ""  # AWS itself

    def __init__(self, sts: _Sts):
        self.sts = sts

    def client(self, service: str) -> _Sts:
        assert service == "sts"
        return self.sts


def test_encoded_authorization_messages_are_decoded_when_allowed() -> None:
    from kiln.backend.plugins.amazon.iam.preflight import Preflight
    from kiln.backend.plugins.amazon.iam.table import Derivation

    text = ("You are not authorized to perform this operation. Encoded authorization "
            "failure message: AbC123-_xyz")
    decoded = json.dumps({"allowed": False, "context": {
        "action": "ec2:RunInstances", "resource": "arn:aws:ec2:us-east-1:1:instance/*"}})
    sts = _Sts(decoded)
    pf = Preflight(_Access(sts), None, Derivation())
    assert pf._decode(text) == ("You are not authorized to perform this operation. (decoded: "
                                "action ec2:RunInstances on arn:aws:ec2:us-east-1:1:instance/*)")
    assert sts.asked == ["AbC123-_xyz"]
    pf = Preflight(_Access(_Sts(client_error("AccessDenied", "no"))), None, Derivation())
    assert "sts:DecodeAuthorizationMessage would read it, and was denied" in pf._decode(text)
    assert pf._decode("plain message") == "plain message"


def test_with_only_an_ec2_endpoint_the_preflight_never_asks_aws_itself(monkeypatch) -> None:
    """custom_endpoint_ec2 pointing at moto or a private endpoint: STS and IAM calls would
    go to AWS itself, so the preflight leaves them unchecked rather than make them."""
    from kiln.backend.plugins.amazon.iam.preflight import OTHER_ENDPOINT, Preflight
    from kiln.backend.plugins.amazon.iam.table import Derivation, Need

    class NoCalls:
        endpoint = "http://127.0.0.1:9"

        def client(self, service: str):
            raise AssertionError(f"asked {service}")

    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_STS", "AWS_ENDPOINT_URL_IAM"):
        monkeypatch.delenv(name, raising=False)
    pf = Preflight(NoCalls(), None, Derivation())
    assert pf.whoami() == ""
    need = Need("Launch source instance", ("iam:PassRole",), "iam_instance_profile is set")
    (v,) = pf._simulate([(need, "iam:PassRole")])
    assert v.status == "unchecked" and v.how == OTHER_ENDPOINT
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    assert pf.reaches("sts") and pf.reaches("iam")


# --------------------------------------------------------------------------- amazon-instance


def instance_extra(tmp_path: Path, **extra: Any) -> dict[str, Any]:
    for name in ("cert.pem", "pk.pem"):
        (tmp_path / name).write_text("x509\n")
    return {"type": "amazon-instance", "account_id": "123456789012",
            "s3_bucket": "kiln-bundles/images", "x509_cert_path": str(tmp_path / "cert.pem"),
            "x509_key_path": str(tmp_path / "pk.pem"), **extra}


def test_amazon_instance_registers_from_s3_instead_of_snapshotting(tmp_path: Path) -> None:
    ebs = actions(tmp_path)
    inst = actions(tmp_path, **instance_extra(tmp_path))
    # no snapshot: an instance-store AMI has none to delete when a build fails
    assert ebs - inst == {"ec2:CreateImage", "ec2:StopInstances", "ec2:DeleteSnapshot"}
    assert inst - ebs == {"ec2:RegisterImage", "s3:CreateBucket", "s3:GetBucketLocation",
                          "s3:ListBucket", "s3:PutObject", "s3:PutObjectAcl", "s3:DeleteObject"}
    doc = json.loads(policy(tmp_path, **instance_extra(tmp_path)).stdout)
    by_sid = {s["Sid"]: s for s in doc["Statement"]}
    # the S3 statements are narrowed to the bucket and the bundle's prefix in it
    assert by_sid["UploadBundle"]["Resource"] == "arn:aws:s3:::kiln-bundles"
    objects = [s for s in doc["Statement"] if "s3:PutObject" in s["Action"]]
    assert [s["Resource"] for s in objects] == ["arn:aws:s3:::kiln-bundles/images/*"]
    assert "s3:DeleteObject" in objects[0]["Action"]  # a failed build deletes its bundle
    register = [s for s in doc["Statement"] if "ec2:RegisterImage" in s["Action"]]
    assert [s["Resource"] for s in register] == ["arn:aws:ec2:us-east-1:*:*"]
    # options the shared steps know still add exactly their actions
    copies = actions(tmp_path, **instance_extra(tmp_path, ami_regions=["us-west-2"]))
    assert copies - inst == {"ec2:CopyImage", "ec2:DeleteSnapshot"}  # the copies' cleanup
    ebs_volume = [{"device_name": "/dev/sdb", "volume_size": 10}]
    assert actions(tmp_path, **instance_extra(
        tmp_path, ami_block_device_mappings=ebs_volume)) - inst == {"ec2:DeleteSnapshot"}


def test_amazon_instance_with_an_instance_profile_uploads_with_the_role(tmp_path: Path) -> None:
    r = policy(tmp_path, "-explain", **instance_extra(tmp_path, iam_instance_profile="bundler"))
    assert r.returncode == 0, r.stderr
    steps = r.stdout.split("Notes:")[0]
    assert "s3:PutObject" not in steps  # not this identity's
    assert "s3:DeleteObject" in steps  # but deleting a failed build's bundle is
    assert "the role of bundler needs s3:CreateBucket" in r.stdout
    assert "ec2:RegisterImage" in r.stdout and "iam:PassRole" in r.stdout
