"""Debug runs: a template's provisioners on the null builder (its post-processors on the
file builder are in :mod:`.ppdebug`).

The provisioners stay exactly as written and only the builder is swapped, so a user
debugging a script gets an answer in seconds, on a machine kept from a failed build, an SSH
target, or (asked for explicitly) this host.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ..template.model import BuildDef, Template
from ..template.source import Loc, from_plain


@dataclass(frozen=True)
class NullTarget:
    """Where the null builder's provisioners run.

    kind: ``local`` (this host), ``ssh`` (host/port/user with a key or password)
    or ``docker`` (a container kept from an earlier build).
    """

    kind: str = "local"
    host: str = ""
    port: int = 22
    user: str = ""
    password: str = ""
    private_key_file: str = ""
    container: str = ""
    label: str = ""
    run_id: str = ""  # a kept machine: the run that kept it
    build: str = ""  # and its build

    def communicator_config(self) -> dict:
        if self.kind == "local":
            return {"communicator": "local"}
        if self.kind == "docker":
            return {"communicator": "docker", "ssh_host": self.container}
        cfg = {"communicator": "ssh", "ssh_host": self.host, "ssh_port": self.port,
               "ssh_username": self.user}
        if self.private_key_file:
            cfg["ssh_private_key_file"] = self.private_key_file
        elif self.password:
            cfg["ssh_password"] = self.password
        return cfg

    def short(self) -> str:
        """Where, in a few words: "this host", "container 8e81a2b3", "ubuntu@10.0.0.5:22"."""
        if self.kind == "local":
            return "this host"
        if self.kind == "docker":
            c = self.container
            return f"container {c[:8] if _is_hex(c) else c}"
        return f"{self.user}@{self.host}:{self.port}"

    def describe(self) -> str:
        if self.label:
            return self.label
        if self.kind == "local":
            return "this host"
        if self.kind == "docker":
            return f"container {self.container[:12]}"
        return f"{self.user}@{self.host}:{self.port}"


def provisioners_on_null(template: Template, target: NullTarget, builds: list[str] | None = None) -> Template:
    """Every (selected) build's builder replaced by a null builder connected to ``target``.

    Provisioners, their only/except/override and the error-cleanup provisioner
    stay as they are; post-processors are dropped (they need a real artifact).
    """
    out = []
    for b in template.builds:
        if builds and b.name not in builds:
            continue
        loc = Loc(b.loc.file, b.loc.line, b.loc.col, b.loc.path)
        config = from_plain(target.communicator_config(), loc)
        out.append(dataclasses.replace(b, index=len(out), type="null", config=config, post_processors=()))
    return dataclasses.replace(template, builds=tuple(out))


def _is_hex(text: str) -> bool:
    return len(text) >= 12 and all(c in "0123456789abcdef" for c in text)


def kept_machines(ledger_entries) -> list[NullTarget]:
    """Machines kept by earlier failed builds (on-error abort/ask) that provisioners can target."""
    out = []
    for e in ledger_entries:
        if not e.kept:
            continue
        if e.kind == "docker-container":
            cid = str(e.data.get("id") or e.ident)
            out.append(NullTarget(kind="docker", container=cid, run_id=e.run_id, build=e.build,
                                  label=f"container {cid[:12]} kept from build {e.build}"))
        elif e.kind == "aws-instance" and e.data.get("ssh_host"):
            d = e.data
            out.append(NullTarget(kind="ssh", host=d["ssh_host"], port=int(d.get("ssh_port", 22)),
                                  user=d.get("ssh_username", ""), private_key_file=d.get("ssh_private_key_file", ""),
                                  run_id=e.run_id, build=e.build,
                                  label=f"instance {e.ident} kept from build {e.build}"))
    return out


__all__ = ["NullTarget", "provisioners_on_null", "kept_machines", "BuildDef"]
