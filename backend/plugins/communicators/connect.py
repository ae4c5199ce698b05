"""Open the communicator a builder's config asks for (Packer's StepConnect)."""

from __future__ import annotations

from typing import Any

from ...sdk.communicator import Communicator, NoneCommunicator


def connect(ctx: Any, config: Any, host: str = "", container_id: str = "") -> Communicator:
    """Return a connected communicator; progress and waits go to ``ctx.ui``.

    ``host`` is the address the builder found (the instance's IP); an explicit
    ``ssh_host`` in the template wins. ``container_id`` is the docker builder's
    container.
    """
    ctype = config.communicator_type()
    if ctype == "none":
        return NoneCommunicator()
    if ctype == "local":
        from .local import LocalCommunicator

        ctx.ui.say("Using the local communicator: provisioners run on this host")
        return LocalCommunicator(private_dir=lambda: ctx.temp_dir(prefix="kiln-local-"),
                                 ledger=ctx.ledger)
    if ctype in ("docker", "dockerWindowsContainer"):
        from ..docker.communicator import DockerCommunicator

        comm = DockerCommunicator.for_container(ctx, container_id or config.docker_container(),
                                                config)
        # as Packer: the container's address (empty on a network-less engine)
        ctx.ui.say(f"Using docker communicator to connect: {comm.host}")
        return comm
    if ctype == "ssh":
        from ..ssh.communicator import connect_ssh

        return connect_ssh(ctx, config, host=config.ssh_host or host)
    from ...sdk.plugin import StepError

    raise StepError(f'the "{ctype}" communicator is not supported by Kiln')
