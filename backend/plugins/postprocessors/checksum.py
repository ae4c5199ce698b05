"""The checksum post-processor: append the artifact files' digests to checksum files.

For each type in ``checksum_types`` and each file, the line ``<hex>\\t<base
name>\\n`` is appended to ``output``, rendered with ``{{.BuildName}}``,
``{{.BuilderType}}``, ``{{.ChecksumType}}`` and the artifact's generated data.
The new artifact lists the input files plus the checksum files this run
created.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

from ...sdk.config import ConfigProblems, Deferred, opt
from ...sdk.plugin import Artifact, PostProcessor, StepError
from ..shell_local_common import render_runtime

BUILDER_ID = "packer.post-processor.checksum"
DEFAULT_OUTPUT = "packer_{{.BuildName}}_{{.BuilderType}}_{{.ChecksumType}}.checksum"
CHECKSUM_TYPES = ("md5", "sha1", "sha224", "sha256", "sha384", "sha512")
CHUNK = 1 << 20


@dataclass
class ChecksumConfig:
    checksum_types: list[str] | None = opt(None, doc="md5 sha1 sha224 sha256 sha384 sha512 "
                                           "(default md5)")
    output: Deferred = opt(Deferred(DEFAULT_OUTPUT), doc="checksum file path; may use "
                           "{{.BuildName}}, {{.BuilderType}}, {{.ChecksumType}}")

    def types(self) -> list[str]:
        return ["md5"] if self.checksum_types is None else list(self.checksum_types)

    def target_template(self) -> str:
        return str(self.output or DEFAULT_OUTPUT)

    def check(self) -> None:
        problems = [("checksum_types", f"unknown checksum type {t!r}; the types are "
                     f"{', '.join(CHECKSUM_TYPES)}") for t in self.types()
                    if t not in CHECKSUM_TYPES]
        if problems:
            raise ConfigProblems(problems)


def file_digest(path: str, kind: str, cancel=None) -> str:
    h = hashlib.new(kind)
    try:
        with open(path, "rb") as f:
            while chunk := f.read(CHUNK):
                h.update(chunk)
                if cancel is not None:
                    cancel.check()
    except OSError as e:
        raise StepError(f"cannot read {path}: {e.strerror or e}") from e
    return h.hexdigest()


class ChecksumPostProcessor(PostProcessor):
    type_name = "checksum"
    Config = ChecksumConfig
    deferred_keys = ("output",)
    default_keep = (True, True)

    config: ChecksumConfig

    def post_process(self, ctx, ui, artifact: Artifact) -> Artifact:
        inputs = artifact.files()
        files = list(inputs)
        data = dict(artifact.state("generated_data") or {})
        data.update(BuildName=ctx.build_name, BuilderType=ctx.build_type)
        for kind in self.config.types():
            data["ChecksumType"] = kind
            for path in inputs:
                target = render_runtime(ctx, self.config.target_template(), data, "output")
                if not os.path.exists(target):
                    files.append(target)
                parent = os.path.dirname(target)
                try:
                    if parent:
                        os.makedirs(parent, mode=0o755, exist_ok=True)
                    fd = os.open(target, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
                except OSError as e:
                    raise StepError(f"cannot open {target}: {e.strerror or e}") from e
                with os.fdopen(fd, "ab") as out:
                    digest = file_digest(path, kind, ctx.cancel)
                    line = f"{digest}\t{os.path.basename(path)}\n"
                    out.write(line.encode("utf-8", "surrogateescape"))
        return Artifact(BUILDER_ID, id="", files=files,
                        string=f"Created artifact from files: {', '.join(files)}")
