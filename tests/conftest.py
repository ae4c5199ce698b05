"""Shared fixtures: real services (sshd, moto, registry, docker, packer) and state isolation.

Rule for service fixtures: when a service cannot run here, the fixture FAILS if the
environment variable CI is set (CI must never skip silently), and otherwise skips with a
reason naming what is missing. Every fixture stops what it started. Under pytest-xdist
each worker starts its own sshd/moto/registry on free ports; the Docker engine is
shared, so tests name docker objects with ``unique_name()`` and label them with
``docker_labels``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

import pytest

_TESTS = Path(__file__).resolve().parent
sys.path.insert(0, str(_TESTS / "support"))

import kiln_services  # noqa: E402
from kiln_services import (  # noqa: E402
    TEST_LABEL,
    MotoServer,
    Registry,
    ServiceUnavailable,
    Sshd,
    docker_unavailable_reason,
    ensure_base_image,
    packer_env,
    packer_path,
    packer_version,
    remove_labelled,
    unique_name,
)


def in_ci() -> bool:
    """True when the CI environment variable is set (to anything but ''/0/false/no)."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def service_unavailable(reason: str) -> NoReturn:
    """Fail under CI, skip otherwise."""
    if in_ci():
        pytest.fail(f"required service unavailable in CI: {reason}", pytrace=False)
    pytest.skip(reason)


# --------------------------------------------------------------------------- state


@pytest.fixture(autouse=True)
def kiln_state_dir(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """Per-test KILN_STATE_DIR and XDG_STATE_HOME, so no test touches real user state."""
    state = tmp_path_factory.mktemp("kiln-state")
    xdg = tmp_path_factory.mktemp("xdg-state")
    monkeypatch.setenv("KILN_STATE_DIR", str(state))
    monkeypatch.setenv("XDG_STATE_HOME", str(xdg))
    # a docker build's output differs on a cache hit: tests that compare it with Packer's
    # must not meet a result another test stored; the cache's own tests turn it on
    monkeypatch.setenv("KILN_CACHE", "false")
    return state


# --------------------------------------------------------------------------- sshd


@pytest.fixture(scope="session")
def sshd() -> Iterator[Sshd]:
    """A real OpenSSH server on 127.0.0.1 (see kiln_services.Sshd)."""
    server = Sshd()
    try:
        server.start()
    except ServiceUnavailable as exc:
        service_unavailable(str(exc))
    except Exception as exc:
        service_unavailable(f"sshd could not be started: {exc}")
    try:
        yield server
    finally:
        server.stop()


# --------------------------------------------------------------------------- moto


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    """moto in server mode on 127.0.0.1; ``.endpoint`` is the URL for boto3/Packer."""
    server = MotoServer()
    try:
        server.start()
    except ServiceUnavailable as exc:
        service_unavailable(str(exc))
    except Exception as exc:
        service_unavailable(f"moto server could not be started: {exc}")
    try:
        yield server
    finally:
        server.stop()


# --------------------------------------------------------------------------- registry


@pytest.fixture(scope="session")
def registry() -> Iterator[Registry]:
    """Debian's docker-registry on 127.0.0.1; ``.address`` is "127.0.0.1:PORT"."""
    server = Registry()
    try:
        server.start()
    except ServiceUnavailable as exc:
        service_unavailable(str(exc))
    except Exception as exc:
        service_unavailable(f"docker-registry could not be started: {exc}")
    try:
        yield server
    finally:
        server.stop()


# --------------------------------------------------------------------------- docker


@pytest.fixture(scope="session")
def docker_client_session_label() -> str:
    """A label value unique to this pytest process (xdist worker)."""
    return unique_name("session")


@pytest.fixture(scope="session")
def docker_client(docker_client_session_label: str) -> Iterator[Any]:
    """A docker SDK client for the (shared) engine. At session end, removes containers
    labelled with this session's ``docker_labels``."""
    reason = docker_unavailable_reason()
    if reason is not None:
        service_unavailable(reason)
    client = kiln_services.docker_client()
    try:
        yield client
    finally:
        try:
            remove_labelled(client, docker_client_session_label)
        finally:
            client.close()


@pytest.fixture
def docker_labels(docker_client_session_label: str) -> dict[str, str]:
    """Labels to put on every container a test creates (cleaned up at session end)."""
    return {TEST_LABEL: docker_client_session_label}


@pytest.fixture(scope="session")
def base_image(docker_client: Any) -> str:
    """The offline busybox image "kiln/busybox:latest" (built if missing)."""
    try:
        return ensure_base_image()
    except Exception as exc:
        service_unavailable(f"base image could not be built: {exc}")


# --------------------------------------------------------------------------- packer


@pytest.fixture(scope="session")
def packer() -> str:
    """Path of Packer 1.6.6 (the reference implementation)."""
    path = packer_path()
    if path is None:
        service_unavailable(
            "packer not installed: apt-get install packer (scripts/install-deps.sh)"
        )
    version = packer_version(path)
    if version is None:
        service_unavailable(f"{path} does not run (`packer version` failed)")
    return path


@pytest.fixture
def packer_environ(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Environment for one Packer run: CHECKPOINT_DISABLE, private config/cache dirs."""
    return packer_env(tmp_path_factory.mktemp("packer-env"))
