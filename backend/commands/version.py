"""``kiln version``."""

from __future__ import annotations


def cmd_version(argv: list[str], machine: bool) -> int:
    from .. import __version__
    from ..template.legacy import PACKER_COMPAT_VERSION

    if machine:
        import time

        print(f"{int(time.time())},,version,{__version__}")
    else:
        print(f"Kiln v{__version__} (Packer {PACKER_COMPAT_VERSION} template compatible)")
    return 0
