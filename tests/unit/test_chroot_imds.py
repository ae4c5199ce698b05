"""The instance metadata client against a loopback metadata service."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "support"))

from imds_server import ImdsServer  # noqa: E402
from kiln.backend.plugins.amazon.chroot.imds import Metadata, MetadataError  # noqa: E402
from kiln_services import free_port  # noqa: E402


def test_v2_token_first_and_the_endpoint_from_the_environment(monkeypatch) -> None:
    with ImdsServer("i-0123456789abcdef0") as imds:
        monkeypatch.setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", imds.endpoint + "/")
        assert Metadata().instance_id() == "i-0123456789abcdef0"
        assert imds.requests[0] == ("PUT", "/latest/api/token", False)
        assert imds.requests[1] == ("GET", "/latest/meta-data/instance-id", True)


def test_v1_only_service_is_read_without_a_token() -> None:
    with ImdsServer("i-0123456789abcdef0", require_token=False, tokens=False) as imds:
        assert Metadata(imds.endpoint).instance_id() == "i-0123456789abcdef0"
        assert imds.requests[-1] == ("GET", "/latest/meta-data/instance-id", False)


def test_no_metadata_service_says_where_the_builder_must_run() -> None:
    with pytest.raises(MetadataError, match="runs on the EC2 instance"):
        Metadata(f"http://127.0.0.1:{free_port()}").instance_id()
    with ImdsServer("not-an-instance") as imds, pytest.raises(MetadataError,
                                                             match="as the instance id"):
        Metadata(imds.endpoint).instance_id()
