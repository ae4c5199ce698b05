"""Smoke tests: the service fixtures start real services that answer on 127.0.0.1."""

from __future__ import annotations

import subprocess
import urllib.request
import uuid
from typing import Any

import paramiko
import pytest
from kiln_services import MotoServer, Registry, Sshd, unique_name


def _ssh_run(client: paramiko.SSHClient, command: str) -> tuple[int, str]:
    _stdin, stdout, _stderr = client.exec_command(command, timeout=30)
    out = stdout.read().decode()
    return stdout.channel.recv_exit_status(), out


def _connect(sshd: Sshd, **auth: Any) -> paramiko.SSHClient:
    client = paramiko.SSHClient()
    # No system known_hosts: accept the fresh temp host key of this sshd.
    client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
    client.connect(
        sshd.host,
        port=sshd.port,
        look_for_keys=False,
        allow_agent=False,
        timeout=10,
        banner_timeout=10,
        auth_timeout=10,
        **auth,
    )
    return client


@pytest.mark.ssh
@pytest.mark.parametrize("key", ["ed25519", "rsa"])
def test_sshd_key_login(sshd: Sshd, key: str) -> None:
    assert sshd.host == "127.0.0.1"
    key_path = sshd.private_key_path if key == "ed25519" else sshd.rsa_key_path
    client = _connect(sshd, username=sshd.user, key_filename=key_path)
    try:
        host_key = client.get_transport().get_remote_server_key()
        assert sshd.host_public_key.split()[1] == host_key.get_base64()
        assert _ssh_run(client, "echo hi") == (0, "hi\n")
        assert _ssh_run(client, "id -u") == (0, "0\n")
    finally:
        client.close()


@pytest.mark.ssh
def test_sshd_password_login(sshd: Sshd) -> None:
    client = _connect(sshd, username=sshd.password_user, password=sshd.password)
    try:
        assert _ssh_run(client, "echo hi") == (0, "hi\n")
        assert _ssh_run(client, "whoami") == (0, f"{sshd.password_user}\n")
    finally:
        client.close()


@pytest.mark.ssh
def test_sshd_rejects_wrong_password(sshd: Sshd) -> None:
    with pytest.raises(paramiko.AuthenticationException):
        _connect(sshd, username=sshd.password_user, password="not-the-password")


@pytest.mark.ssh
def test_sshd_sftp(sshd: Sshd, tmp_path: Any) -> None:
    client = _connect(sshd, username=sshd.user, key_filename=sshd.private_key_path)
    try:
        sftp = client.open_sftp()
        remote = f"/tmp/{unique_name('kiln-sftp')}"
        local = tmp_path / "f.txt"
        local.write_text("payload\n")
        sftp.put(str(local), remote)
        assert _ssh_run(client, f"cat {remote} && rm {remote}") == (0, "payload\n")
        sftp.close()
    finally:
        client.close()


@pytest.mark.aws
def test_moto_server_describe_regions(moto_server: MotoServer) -> None:
    assert moto_server.endpoint.startswith("http://127.0.0.1:")
    ec2 = moto_server.client("ec2", region="us-east-1")
    regions = {r["RegionName"] for r in ec2.describe_regions()["Regions"]}
    assert "us-east-1" in regions
    assert "eu-west-1" in regions


@pytest.mark.docker
def test_docker_runs_base_image(
    docker_client: Any, base_image: str, docker_labels: dict[str, str]
) -> None:
    name = unique_name("kiln-smoke")
    out = docker_client.containers.run(
        base_image,
        ["echo", "ok"],
        name=name,
        network_mode="none",
        labels=docker_labels,
        remove=True,
    )
    assert out == b"ok\n"
    assert docker_client.containers.list(all=True, filters={"name": name}) == []


@pytest.mark.docker
def test_registry_accepts_push(registry: Registry, docker_client: Any, base_image: str) -> None:
    assert registry.address.startswith("127.0.0.1:")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(f"{registry.url}/v2/", timeout=10) as resp:
        assert resp.status == 200

    repository = f"{registry.address}/kiln-smoke/busybox"
    tag = uuid.uuid4().hex[:12]
    image = docker_client.images.get(base_image)
    assert image.tag(repository, tag=tag)
    try:
        events = list(docker_client.images.push(repository, tag=tag, stream=True, decode=True))
        errors = [e for e in events if "error" in e or "errorDetail" in e]
        assert not errors, errors
        assert any("Digest" in e.get("aux", {}) for e in events), events
    finally:
        docker_client.images.remove(f"{repository}:{tag}")
    assert tag in registry.get_json("/v2/kiln-smoke/busybox/tags/list")["tags"]


@pytest.mark.packer
def test_packer_version(packer: str, packer_environ: dict[str, str]) -> None:
    proc = subprocess.run(
        [packer, "version"],
        capture_output=True,
        text=True,
        timeout=60,
        env=packer_environ,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0].strip() == "Packer v1.6.6"
