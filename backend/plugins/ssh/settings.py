"""The ssh communicator's settings (Packer's SSH config) and keys: loading, generating, and what
of them is secret."""

from __future__ import annotations

import io
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ...sdk.plugin import StepError

if TYPE_CHECKING:
    pass


@dataclass
class Endpoint:
    """Who to log in as, where, and how (the target machine or a bastion)."""

    host: str
    port: int
    user: str
    password: str = ""
    pkey: Any = None  # paramiko.PKey
    key_text: str = ""
    key_file: str = ""
    agent: bool = False
    what: str = "SSH"  # "SSH" or "bastion", for messages

    @property
    def dest(self) -> str:
        return f"{self.user}@{self.host}:{self.port}"

    def method(self) -> str:
        if self.pkey is not None:
            return f"private key {self.key_file}" if self.key_file else "private key"
        if self.agent:
            return "the SSH agent"
        if self.password:
            return "password"
        return "no credentials"


def _load_certificate(pkey: Any, cert_file: str, setting: str) -> None:
    cert = os.path.expanduser(cert_file)
    try:
        pkey.load_certificate(cert)
    except (OSError, ValueError) as e:
        raise StepError(f"{setting} is invalid: {cert}: {e}") from e


@dataclass
class SSHSettings:
    target: Endpoint
    bastion: Endpoint | None = None
    proxy: tuple[str, int, str, str] | None = None  # host, port, user, password
    pty: bool = False
    keepalive: float = 5.0
    read_write_timeout: float = 0.0
    file_transfer: str = "scp"
    ciphers: list[str] = field(default_factory=list)
    kex: list[str] = field(default_factory=list)
    timeout: float = 300.0
    handshake_attempts: int = 10
    #: (bind address, port, host, host port), as ssh -L / -R
    local_tunnels: list[tuple[str, int, str, int]] = field(default_factory=list)
    remote_tunnels: list[tuple[str, int, str, int]] = field(default_factory=list)
    #: forward this host's SSH agent to commands (Packer's default when SSH_AUTH_SOCK is set)
    forward_agent: bool = False

    @classmethod
    def from_config(
        cls, config: Any, host: str, private_key: str | None = None, extra_key: str | None = None
    ) -> SSHSettings:
        """Read a CommunicatorConfig; raises StepError for unusable settings."""
        if not host:
            raise StepError("SSH needs a host: set ssh_host (the builder found no address)")
        user = config.ssh_username
        if not user:
            raise StepError("an ssh_username must be given")
        key_file = (
            os.path.expanduser(config.ssh_private_key_file) if config.ssh_private_key_file else ""
        )
        key_text = private_key or extra_key or ""
        pkey = None
        if key_text:
            pkey = load_private_key_text(key_text, "the temporary private key")
        elif key_file:
            pkey, key_text = load_private_key_file(key_file, "ssh_private_key_file")
        if pkey is not None and config.ssh_certificate_file:
            _load_certificate(pkey, config.ssh_certificate_file, "ssh_certificate_file")
        target = Endpoint(
            host=host,
            port=int(config.ssh_port or 22),
            user=user,
            password=config.ssh_password or "",
            pkey=pkey,
            key_text=key_text,
            key_file=key_file,
            agent=bool(config.ssh_agent_auth),
        )
        bastion = None
        if config.ssh_bastion_host:
            bkey_file = config.ssh_bastion_private_key_file
            bpkey, btext = None, ""
            if bkey_file:
                bkey_file = os.path.expanduser(bkey_file)
                bpkey, btext = load_private_key_file(bkey_file, "ssh_bastion_private_key_file")
            elif not config.ssh_bastion_password and not config.ssh_bastion_agent_auth:
                bpkey, btext, bkey_file = pkey, key_text, key_file  # Packer's default
            if bpkey is not None and config.ssh_bastion_certificate_file:
                _load_certificate(
                    bpkey, config.ssh_bastion_certificate_file, "ssh_bastion_certificate_file"
                )
            bastion = Endpoint(
                host=config.ssh_bastion_host,
                port=int(config.ssh_bastion_port or 22),
                user=config.ssh_bastion_username or user,
                password=config.ssh_bastion_password or "",
                pkey=bpkey,
                key_text=btext,
                key_file=bkey_file or "",
                agent=bool(config.ssh_bastion_agent_auth),
                what="bastion",
            )
        proxy = None
        if config.ssh_proxy_host:
            proxy = (
                config.ssh_proxy_host,
                int(config.ssh_proxy_port or 1080),
                config.ssh_proxy_username or "",
                config.ssh_proxy_password or "",
            )
        return cls(
            target=target,
            bastion=bastion,
            proxy=proxy,
            pty=bool(config.ssh_pty),
            keepalive=float(config.ssh_keep_alive_interval or 0),
            read_write_timeout=float(config.ssh_read_write_timeout or 0),
            file_transfer=config.ssh_file_transfer_method or "scp",
            ciphers=list(config.ssh_ciphers or []),
            kex=list(config.ssh_key_exchange_algorithms or []),
            timeout=config.effective_ssh_timeout(),
            handshake_attempts=config.effective_handshake_attempts(),
            local_tunnels=[
                _parse_tunnel(t, "ssh_local_tunnels")
                for t in getattr(config, "ssh_local_tunnels", None) or []
            ],
            remote_tunnels=[
                _parse_tunnel(t, "ssh_remote_tunnels")
                for t in getattr(config, "ssh_remote_tunnels", None) or []
            ],
            forward_agent=not getattr(config, "ssh_disable_agent_forwarding", False)
            and bool(os.environ.get("SSH_AUTH_SOCK")),
        )

    def secrets(self) -> list[str]:
        out: list[str] = []
        for ep in (self.target, self.bastion):
            if ep is None:
                continue
            if ep.password:
                out.append(ep.password)
            out.extend(key_secrets(ep.key_text))
        if self.proxy and self.proxy[3]:
            out.append(self.proxy[3])
        return out


def _parse_tunnel(spec: str, key: str) -> tuple[str, int, str, int]:
    """``[bind_address:]port:host:hostport`` (ssh -L / -R syntax)."""
    parts = spec.rsplit(":", 3) if spec.count(":") >= 3 else spec.split(":")
    if len(parts) == 3:
        parts = ["127.0.0.1", *parts]
    try:
        bind, port, host, hport = parts
        out = (bind or "127.0.0.1", int(port), host, int(hport))
    except ValueError:
        raise StepError(f"{key} item {spec!r} is not [bind_address:]port:host:hostport") from None
    if not (0 < out[1] < 65536 and 0 < out[3] < 65536) or not host:
        raise StepError(f"{key} item {spec!r} is not [bind_address:]port:host:hostport")
    return out


def key_secrets(text: str) -> list[str]:
    """The key text and each of its body lines: output is masked line by line."""
    if not text:
        return []
    out = [text, text.strip()]
    for line in text.splitlines():
        line = line.strip()
        if len(line) >= 16 and not line.startswith("-----"):
            out.append(line)
    return out


def load_private_key_file(path: str, key_name: str) -> tuple[Any, str]:
    """(paramiko key, key text) from a private key file; StepError if it is unusable."""
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as f:
            text = f.read()
    except OSError as e:
        raise StepError(f"{key_name} is invalid: {path}: {e.strerror or e}") from e
    return load_private_key_text(text, f"{key_name} {path}"), text


def load_private_key_text(text: str, what: str) -> Any:
    import paramiko

    errors = []
    for cls in (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey):
        try:
            return cls.from_private_key(io.StringIO(text))
        except paramiko.PasswordRequiredException:
            raise StepError(
                f"{what} is encrypted with a passphrase; Kiln needs an unencrypted "
                "key (or use ssh_agent_auth with the key loaded in an agent)"
            ) from None
        except (paramiko.SSHException, ValueError, TypeError, IndexError) as e:
            errors.append(str(e))
    raise StepError(f"{what} is invalid: not an RSA, ECDSA or ed25519 private key Kiln can read")


def generate_key_pair(
    kind: str = "rsa", bits: int | None = None, comment: str = ""
) -> tuple[str, str]:
    """A new key pair: (private key PEM text, public key in OpenSSH ``authorized_keys`` form).

    ``rsa`` (default 4096 bits, PKCS#1 PEM), ``ed25519`` (OpenSSH format) or
    ``ecdsa`` (256/384/521 bits, default 521). Both halves are text.
    """
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

    kind = (kind or "rsa").lower()
    if kind == "rsa":
        key: Any = rsa.generate_private_key(public_exponent=65537, key_size=bits or 4096)
        priv = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    elif kind == "ed25519":
        key = ed25519.Ed25519PrivateKey.generate()
        priv = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption(),
        )
    elif kind == "ecdsa":
        curves = {256: ec.SECP256R1(), 384: ec.SECP384R1(), 521: ec.SECP521R1()}
        curve = curves.get(bits or 521)
        if curve is None:
            raise ValueError(f"ecdsa keys are 256, 384 or 521 bits, not {bits}")
        key = ec.generate_private_key(curve)
        priv = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    else:
        raise ValueError(f'unknown key pair type "{kind}": expected rsa, ed25519 or ecdsa')
    pub = (
        key.public_key()
        .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        .decode()
    )
    if comment:
        pub = f"{pub} {comment}"
    return priv.decode(), pub
