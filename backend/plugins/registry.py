"""Plugin lookup by Packer type name; modules are imported only when used."""

from __future__ import annotations

import importlib
from typing import Any

# kind -> type name -> "module:Class"
PLUGINS: dict[str, dict[str, str]] = {
    "builder": {
        "null": "kiln.backend.plugins.builders.null:NullBuilder",
        "file": "kiln.backend.plugins.builders.file:FileBuilder",
        "docker": "kiln.backend.plugins.builders.docker:DockerBuilder",
        "amazon-ebs": "kiln.backend.plugins.builders.amazon_ebs:AmazonEBSBuilder",
    },
    "provisioner": {
        "shell": "kiln.backend.plugins.provisioners.shell:ShellProvisioner",
        "shell-local": "kiln.backend.plugins.provisioners.shell_local:ShellLocalProvisioner",
        "file": "kiln.backend.plugins.provisioners.file:FileProvisioner",
        "ansible": "kiln.backend.plugins.provisioners.ansible:AnsibleProvisioner",
        "ansible-local": "kiln.backend.plugins.provisioners.ansible_local:AnsibleLocalProvisioner",
        "breakpoint": "kiln.backend.plugins.provisioners.breakpoint:BreakpointProvisioner",
    },
    "post-processor": {
        "manifest": "kiln.backend.plugins.postprocessors.manifest:ManifestPostProcessor",
        "compress": "kiln.backend.plugins.postprocessors.compress:CompressPostProcessor",
        "artifice": "kiln.backend.plugins.postprocessors.artifice:ArtificePostProcessor",
        "checksum": "kiln.backend.plugins.postprocessors.checksum:ChecksumPostProcessor",
        "shell-local": "kiln.backend.plugins.postprocessors.shell_local:ShellLocalPostProcessor",
        "docker-tag": "kiln.backend.plugins.postprocessors.docker_tag:DockerTagPostProcessor",
        "docker-save": "kiln.backend.plugins.postprocessors.docker_save:DockerSavePostProcessor",
        "docker-import": "kiln.backend.plugins.postprocessors.docker_import:DockerImportPostProcessor",
        "docker-push": "kiln.backend.plugins.postprocessors.docker_push:DockerPushPostProcessor",
    },
    "data source": {
        "amazon-ami": "kiln.backend.plugins.datasources.amazon_ami:AmazonAmiDataSource",
        "amazon-parameterstore":
            "kiln.backend.plugins.datasources.amazon_parameterstore:ParameterStoreDataSource",
        "amazon-secretsmanager":
            "kiln.backend.plugins.datasources.amazon_secretsmanager:SecretsManagerDataSource",
        "http": "kiln.backend.plugins.datasources.http:HttpDataSource",
        "null": "kiln.backend.plugins.datasources.null:NullDataSource",
    },
}

# Packer plugins Kiln knows by name but does not implement: a clear message
# instead of "unknown type".
KNOWN_ELSEWHERE = {
    "builder": (
        "amazon-instance amazon-chroot amazon-ebssurrogate amazon-ebsvolume azure-arm "
        "googlecompute qemu virtualbox-iso virtualbox-ovf vmware-iso vmware-vmx "
        "parallels-iso hyperv-iso vagrant lxd lxc digitalocean hcloud openstack oracle-oci "
        "proxmox proxmox-iso vsphere-iso vsphere-clone"
    ).split(),
    "provisioner": (
        "powershell windows-restart windows-shell chef-solo chef-client puppet-masterless "
        "puppet-server salt-masterless converge inspec goss"
    ).split(),
    "post-processor": (
        "vagrant vagrant-cloud atlas amazon-import googlecompute-export vsphere vsphere-template "
        "ucloud-import digitalocean-import"
    ).split(),
    "data source": (
        "hcp-packer-iteration hcp-packer-image "
        "hcp-packer-version hcp-packer-artifact git-commit git-repository git-tree sshkey"
    ).split(),
}

_cache: dict[tuple[str, str], Any] = {}


class PluginLoadError(Exception):
    """A plugin module failed to import (a missing optional dependency, say)."""


def names(kind: str) -> list[str]:
    return sorted(PLUGINS[kind])


def lookup(kind: str, type_name: str) -> Any | None:
    """The plugin class for ``type_name``, or None when Kiln has none."""
    key = (kind, type_name)
    if key in _cache:
        return _cache[key]
    target = PLUGINS[kind].get(type_name)
    if target is None:
        return None
    module, _, cls = target.partition(":")
    try:
        plugin = getattr(importlib.import_module(module), cls)
    except (ImportError, AttributeError) as e:
        raise PluginLoadError(f'the {kind} "{type_name}" could not be loaded: {e}') from e
    _cache[key] = plugin
    return plugin


def unknown_message(kind: str, type_name: str) -> str:
    from ..template.errors import did_you_mean

    if type_name in KNOWN_ELSEWHERE.get(kind, ()):
        return (
            f'the {kind} type "{type_name}" is a Packer plugin that Kiln does not implement; '
            f"Kiln's {kind}s are: {', '.join(names(kind))}"
        )
    return f'unknown {kind} type "{type_name}"{did_you_mean(type_name, PLUGINS[kind])}; ' \
        f"Kiln's {kind}s are: {', '.join(names(kind))}"
