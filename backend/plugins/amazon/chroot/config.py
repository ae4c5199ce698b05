"""The amazon-chroot configuration: the access and AMI keys every EC2 builder has, plus
where and how the source volume is attached, mounted and entered."""

from __future__ import annotations

from dataclasses import dataclass

from ....sdk.config import ConfigProblems, Deferred, opt
from ..config import (
    VOLUME_TYPES,
    AmiConfig,
    AmiFilter,
    AwsAccessConfig,
    KeyValue,
    split_string_lists,
    valid_kms_key,
)

BUILDER_ID = "mitchellh.amazon.chroot"

#: what Packer mounts into the chroot when chroot_mounts is not given
DEFAULT_CHROOT_MOUNTS = (
    ("proc", "proc", "/proc"),
    ("sysfs", "sysfs", "/sys"),
    ("bind", "/dev", "/dev"),
    ("devpts", "devpts", "/dev/pts"),
    ("binfmt_misc", "binfmt_misc", "/proc/sys/fs/binfmt_misc"),
)

DEFAULT_MOUNT_PATH = "/mnt/packer-amazon-chroot-volumes/{{.Device}}"

ARCHITECTURES = ("arm64", "arm64_mac", "i386", "x86_64", "x86_64_mac")


@dataclass
class AmazonChrootConfig(AwsAccessConfig, AmiConfig):
    # -- the source ----------------------------------------------------------------
    source_ami: str = opt("", doc="the AMI whose root snapshot the volume is made from")
    source_ami_filter: AmiFilter | None = opt(None)
    from_scratch: bool = opt(False, doc="start from an empty volume that pre_mount_commands "
                             "partition and format")

    # -- the volume ----------------------------------------------------------------
    root_device_name: str = opt("", doc="the AMI's root device (with ami_block_device_mappings)")
    root_volume_size: int = opt(0, doc="GiB (default: the source snapshot's size)")
    root_volume_type: str = opt("", doc="gp2 (default), gp3, io1...")
    root_volume_tags: dict[str, Deferred] = opt(default_factory=dict)
    root_volume_tag: list[KeyValue] = opt(default_factory=list)
    root_volume_encrypt_boot: bool | None = opt(None)
    root_volume_kms_key_id: str = opt("")
    ami_architecture: str = opt("", doc="x86_64 (default), arm64, i386, x86_64_mac, arm64_mac")

    # -- the device and the mount -------------------------------------------------
    device_path: str = opt("", doc="where the volume appears on this host (default: the "
                           "first free /dev/sd[f-p] or /dev/xvd[f-p])")
    nvme_device_path: str = opt("", doc="the NVMe path of the volume on Nitro instances")
    mount_path: Deferred = opt(Deferred(""), doc="where the volume is mounted; {{.Device}} is "
                               "the device's name")
    mount_partition: str = opt("", doc='partition to mount ("1" by default, "0" the device)')
    mount_options: list[str] = opt(default_factory=list, doc="each passed as mount -o")
    chroot_mounts: list[list[str]] = opt(default_factory=list, doc="[type, device, path in "
                                         "the chroot] mounted before provisioning")
    copy_files: list[str] | None = opt(None, doc="host files copied into the chroot "
                                       "(default /etc/resolv.conf)")
    command_wrapper: Deferred = opt(Deferred(""), doc="wraps every command run for the build; "
                                    "{{.Command}} is the command")
    pre_mount_commands: list[Deferred] = opt(default_factory=list, doc="run on this host before "
                                             "mounting ({{.Device}})")
    post_mount_commands: list[Deferred] = opt(default_factory=list, doc="run on this host after "
                                              "mounting ({{.Device}}, {{.MountPath}})")

    def __post_init__(self) -> None:
        AmiConfig.__post_init__(self)
        split_string_lists(self, ("mount_options",))

    # -- defaults Packer fills in ----------------------------------------------------
    def mounts(self) -> list[tuple[str, str, str]]:
        if not self.chroot_mounts:
            return [tuple(m) for m in DEFAULT_CHROOT_MOUNTS]  # type: ignore[misc]
        return [(m[0], m[1], m[2]) for m in self.chroot_mounts]

    def files_to_copy(self) -> list[str]:
        if self.copy_files is None:
            return [] if self.from_scratch else ["/etc/resolv.conf"]
        return list(self.copy_files)

    def wrapper(self) -> str:
        return self.command_wrapper or "{{.Command}}"

    def partition(self) -> str:
        return self.mount_partition or "1"

    def architecture(self) -> str:
        return self.ami_architecture or "x86_64"

    def all_root_volume_tags(self) -> dict[str, str]:
        out = dict(self.root_volume_tags)
        for kv in self.root_volume_tag:
            out[kv.key] = kv.value
        return out

    def check(self) -> None:
        p = self.ami_problems()
        for i, m in enumerate(self.chroot_mounts):
            if len(m) != 3:
                p.append(("chroot_mounts", f"chroot_mounts[{i}] has {len(m)} elements; each "
                          'entry is three: [type, device, path], e.g. ["proc", "proc", '
                          '"/proc"]'))
            elif not str(m[2]).startswith("/"):
                p.append(("chroot_mounts", f"chroot_mounts[{i}]: the path in the chroot "
                          f"{m[2]!r} must be absolute"))
        if self.from_scratch:
            if not self.root_volume_size:
                p.append(("root_volume_size", "root_volume_size is required with from_scratch "
                          "(the size of the empty volume, in GiB)"))
            if not self.pre_mount_commands:
                p.append(("pre_mount_commands", "pre_mount_commands is required with "
                          "from_scratch: they partition and format the empty volume"))
            if not self.ami_virtualization_type:
                p.append(("ami_virtualization_type", "ami_virtualization_type is required "
                          'with from_scratch ("hvm" or "paravirtual")'))
            if not self.root_device_name:
                p.append(("root_device_name", "root_device_name is required with from_scratch"))
            if not self.ami_block_device_mappings:
                p.append(("ami_block_device_mappings", "ami_block_device_mappings is required "
                          "with from_scratch"))
        else:
            if not self.source_ami and (self.source_ami_filter is None
                                        or self.source_ami_filter.empty()):
                p.append(("source_ami", "a source AMI must be given: set source_ami or "
                          "source_ami_filter (or from_scratch with pre_mount_commands)"))
            if self.source_ami_filter is not None and not self.source_ami_filter.empty() \
                    and not self.source_ami_filter.owners:
                p.append(("source_ami_filter", "For security reasons, your source AMI filter "
                          "must declare an owner. Set source_ami_filter.owners (an account id, "
                          "self, amazon...)"))
            if self.ami_block_device_mappings and self.root_device_name:
                if not self.root_volume_size:
                    p.append(("root_volume_size", "root_volume_size is required when "
                              "ami_block_device_mappings is set"))
            elif self.ami_block_device_mappings:
                p.append(("root_device_name", "ami_block_device_mappings needs root_device_name "
                          "(which of the mappings is the root volume)"))
            elif self.root_device_name:
                p.append(("ami_block_device_mappings", "root_device_name needs "
                          "ami_block_device_mappings"))
        if self.root_volume_kms_key_id:
            if self.root_volume_encrypt_boot is not True:
                p.append(("root_volume_kms_key_id", "root_volume_kms_key_id needs "
                          "root_volume_encrypt_boot: true"))
            elif not valid_kms_key(self.root_volume_kms_key_id):
                p.append(("root_volume_kms_key_id", f"{self.root_volume_kms_key_id!r} is not a "
                          "KMS key id, alias or ARN"))
        if self.root_volume_type and self.root_volume_type not in VOLUME_TYPES:
            p.append(("root_volume_type", f'root_volume_type "{self.root_volume_type}" is not '
                      "one of " + ", ".join(VOLUME_TYPES)))
        if self.root_volume_size < 0:
            p.append(("root_volume_size", "root_volume_size must be a positive number of GiB"))
        if self.architecture() not in ARCHITECTURES:
            p.append(("ami_architecture", "ami_architecture must be one of "
                      + ", ".join(f'"{a}"' for a in ARCHITECTURES)))
        if self.uefi_data:
            if self.boot_mode == "legacy-bios":
                p.append(("uefi_data", 'uefi_data cannot be used with boot_mode "legacy-bios"'))
            elif not self.boot_mode and self.architecture() != "arm64":
                p.append(("uefi_data", 'uefi_data needs boot_mode "uefi": the '
                          f"{self.architecture()} architecture boots legacy-bios by default"))
        if not self.mount_partition.isdigit() and self.mount_partition:
            p.append(("mount_partition", f"mount_partition must be a partition number (0 for "
                      f"the whole device), not {self.mount_partition!r}"))
        for path, what in ((self.device_path, "device_path"),
                           (self.nvme_device_path, "nvme_device_path")):
            if path and not path.startswith("/"):
                p.append((what, f"{what} must be an absolute path such as /dev/xvdf"))
        for f in self.copy_files or []:
            if not f.startswith("/"):
                p.append(("copy_files", f"copy_files entries are absolute paths on this host "
                          f"(copied to the same path in the chroot), not {f!r}"))
        if self.command_wrapper and ".Command" not in self.command_wrapper:
            p.append(("command_wrapper", "command_wrapper must contain {{.Command}} (where the "
                      "command goes)"))
        for kv in self.root_volume_tag:
            if not kv.key:
                p.append(("root_volume_tag", "each root_volume_tag block needs a key"))
        if p:
            raise ConfigProblems(p)
