"""Communicator settings shared by every builder that connects to a machine."""

from __future__ import annotations

from dataclasses import dataclass

from ...sdk.config import ConfigProblems, Duration, opt

COMMUNICATOR_TYPES = ("ssh", "none", "local", "docker", "winrm", "dockerWindowsContainer")


@dataclass
class CommunicatorConfig:
    communicator: str = opt("", doc="ssh (default), none, local (null builder), docker, winrm")
    pause_before_connecting: Duration = opt(Duration(0))

    # -- SSH ------------------------------------------------------------------
    ssh_host: str = opt("")
    ssh_port: int = opt(22)
    ssh_username: str = opt("")
    ssh_password: str = opt("", secret=True)
    ssh_private_key_file: str = opt("")
    ssh_certificate_file: str = opt("")
    ssh_agent_auth: bool = opt(False)
    ssh_keypair_name: str = opt("")
    temporary_key_pair_name: str = opt("")
    temporary_key_pair_type: str = opt("rsa")
    temporary_key_pair_bits: int = opt(0)
    ssh_timeout: Duration = opt(Duration(0))
    ssh_wait_timeout: Duration = opt(Duration(0))
    ssh_handshake_attempts: int = opt(0)
    ssh_pty: bool = opt(False)
    ssh_keep_alive_interval: Duration = opt(Duration(5))
    ssh_read_write_timeout: Duration = opt(Duration(0))
    ssh_file_transfer_method: str = opt("scp")
    ssh_disable_agent_forwarding: bool = opt(False)
    ssh_clear_authorized_keys: bool = opt(False)
    ssh_ciphers: list[str] = opt(default_factory=list)
    ssh_key_exchange_algorithms: list[str] = opt(default_factory=list)
    ssh_interface: str = opt("")
    ssh_ip_version: str = opt("")
    ssh_bastion_host: str = opt("")
    ssh_bastion_port: int = opt(22)
    ssh_bastion_username: str = opt("")
    ssh_bastion_password: str = opt("", secret=True)
    ssh_bastion_private_key_file: str = opt("")
    ssh_bastion_agent_auth: bool = opt(False)
    ssh_bastion_interactive: bool = opt(False)
    ssh_bastion_certificate_file: str = opt("")
    ssh_proxy_host: str = opt("")
    ssh_proxy_port: int = opt(1080)
    ssh_proxy_username: str = opt("")
    ssh_proxy_password: str = opt("", secret=True)
    ssh_local_tunnels: list[str] = opt(default_factory=list)
    ssh_remote_tunnels: list[str] = opt(default_factory=list)
    ssh_private_ip: bool = opt(False)

    # -- WinRM (accepted for validation; Kiln has no WinRM communicator) --------
    winrm_host: str = opt("")
    winrm_port: int = opt(0)
    winrm_username: str = opt("")
    winrm_password: str = opt("", secret=True)
    winrm_timeout: Duration = opt(Duration(0))
    winrm_use_ssl: bool = opt(False)
    winrm_insecure: bool = opt(False)
    winrm_use_ntlm: bool = opt(False)
    winrm_no_proxy: bool = opt(False)
    winrm_transport: str = opt("")

    #: the communicator used when the template names none
    _default_communicator = "ssh"

    def communicator_type(self) -> str:
        return self.communicator or self._default_communicator

    def effective_ssh_timeout(self) -> float:
        if self.ssh_wait_timeout:
            return float(self.ssh_wait_timeout)
        if self.ssh_timeout:
            return float(self.ssh_timeout)
        return 300.0

    def effective_handshake_attempts(self) -> int:
        return self.ssh_handshake_attempts or 10

    def communicator_problems(self) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        ctype = self.communicator_type()
        if ctype not in COMMUNICATOR_TYPES:
            out.append(("communicator", f'communicator type "{ctype}" is invalid; expected one of: '
                        + ", ".join(COMMUNICATOR_TYPES)))
        if self.ssh_file_transfer_method not in ("scp", "sftp"):
            out.append(("ssh_file_transfer_method", 'expected "scp" or "sftp"'))
        if self.temporary_key_pair_type not in ("rsa", "ed25519", "ecdsa", "dsa"):
            out.append(("temporary_key_pair_type", 'expected "rsa" or "ed25519"'))
        if self.ssh_bastion_host and not (
            self.ssh_bastion_password or self.ssh_bastion_private_key_file
            or self.ssh_private_key_file or self.ssh_bastion_agent_auth
        ):
            out.append(("ssh_bastion_host", "a bastion needs ssh_bastion_password, "
                        "ssh_bastion_private_key_file or ssh_bastion_agent_auth"))
        if self.ssh_bastion_host and self.ssh_proxy_host:
            out.append(("ssh_proxy_host", "ssh_bastion_host and ssh_proxy_host cannot both be set"))
        if self.ssh_certificate_file and not self.ssh_private_key_file:
            out.append(("ssh_certificate_file", "ssh_certificate_file needs ssh_private_key_file"))
        if self.ssh_interface and self.ssh_interface not in (
            "public_ip", "private_ip", "public_dns", "private_dns", "ipv6", "session_manager"
        ):
            out.append(("ssh_interface", f'unknown interface type "{self.ssh_interface}"'))
        return out

    def require_ssh_login(self, need_host: bool) -> list[tuple[str, str]]:
        """The checks the null builder makes for an SSH connection."""
        out = []
        if need_host and not self.ssh_host:
            out.append(("ssh_host", "a host must be given with ssh_host"))
        if not self.ssh_username:
            out.append(("ssh_username", "an ssh_username must be given"))
        given = [bool(self.ssh_password), bool(self.ssh_private_key_file), self.ssh_agent_auth]
        if sum(given) == 0:
            out.append(("ssh_password", "one of ssh_password, ssh_private_key_file or "
                        "ssh_agent_auth must be given"))
        elif sum(given) > 1:
            out.append(("ssh_password", "only one of ssh_password, ssh_private_key_file or "
                        "ssh_agent_auth may be given"))
        return out

    def file_problems(self) -> list[tuple[str, str]]:
        """Key files named in the config must exist and look like private keys (prepare time)."""
        import os

        out = []
        for key in ("ssh_private_key_file", "ssh_bastion_private_key_file", "ssh_certificate_file"):
            path = getattr(self, key)
            if not path:
                continue
            full = os.path.expanduser(path)
            try:
                with open(full, "rb") as f:
                    head = f.read(4096)
            except OSError as e:
                out.append((key, f"{path} cannot be read: {e.strerror or e}"))
                continue
            if key != "ssh_certificate_file" and b"PRIVATE KEY" not in head:
                out.append((key, f"{path} is not a private key file (no PRIVATE KEY block)"))
        return out

    def check(self) -> None:
        problems = self.communicator_problems()
        if problems:
            raise ConfigProblems(problems)
