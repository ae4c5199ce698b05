"""What every EC2 step shares: the build's state (_Build), the AMIs made (_Ami), rendering
run-time templates, and ledger records for what a step creates."""

from __future__ import annotations

import re
from typing import Any

from ...sdk.plugin import Step, StepError
from . import common as aws
from .config import AmazonEBSConfig
from .funcs import amazon_extra_funcs


class _Build:
    """What the steps of one build share."""

    def __init__(self, config: AmazonEBSConfig):
        self.config = config
        self.access: aws.AwsAccess | None = None
        self.source_image: dict[str, Any] = {}
        self.info: dict[str, Any] = {}  # BuildRegion, SourceAMI... for rendering
        self.vpc_id = ""
        self.subnet_id = ""
        self.availability_zone = ""
        self.key_name = ""
        self.temporary_key = False  # key_name is a key pair Kiln made (and will delete)
        self.private_key = ""
        self.key_file = ""
        self.group_ids: list[str] = []
        self.instance_id = ""
        self.instance: dict[str, Any] = {}
        self.instance_entry: int | None = None
        self.spot = False
        self.ami_name = ""
        self.ami_name_checked = False
        self.amis: dict[str, str] = {}
        self.snapshots: dict[str, list[str]] = {}
        self.done = False

    @property
    def ec2(self) -> Any:
        assert self.access is not None
        return self.access.ec2()

    def polling(self, default_delay: float, default_attempts: int) -> aws.Polling:
        return aws.Polling.from_config(self.config.aws_polling, default_delay, default_attempts)

    def render(self, ctx, text: str, what: str) -> str:
        return render(ctx, text, self.info, what)

    def render_tags(self, ctx, tags: dict[str, str], what: str) -> dict[str, str]:
        out = {}
        for k, v in tags.items():
            key = self.render(ctx, str(k), f"{what} key")
            out[key] = self.render(ctx, str(v), f"{what} {key!r}")
        return out


class _Ami:
    """An AMI this build made (in one region) and its ledger entries."""

    def __init__(self, region: str, ami_id: str = "", entry: int | None = None, name: str = ""):
        self.region = region
        self.ami_id = ami_id
        self.entry = entry
        self.name = name
        self.snap_entries: dict[str, int | None] = {}
        self.removed = False


def render(ctx, text: str, data: dict[str, Any], what: str) -> str:
    """Render a run-time field with the build's data and Amazon's extra functions."""
    text = str(text or "")
    if "{{" not in text:
        return text
    from ...template import funcs as F
    from ...template import gotmpl

    funcs = F.packer_funcs(F.FuncContext(
        user_vars=ctx.user_vars, template_path=ctx.template_path, build_name=ctx.build_name,
        build_type=ctx.build_type, extra=amazon_extra_funcs(), build_data_keys=data,
    ))
    try:
        return gotmpl.render_until_stable(text, funcs, data)
    except ValueError as e:
        raise StepError(f"cannot render {what} {text!r}: {e}") from e


def _uses_source_data(text: str) -> bool:
    return "{{" in text and bool(re.search(r"\.(SourceAMI|BuildRegion)|build\s", text))


def _record(ctx, kind: str, ident: str, data: dict[str, Any]) -> int | None:
    if ctx.ledger is None:
        return None
    return ctx.ledger.record(kind, ident, build=ctx.build_name, data=data)


def _update(ctx, entry: int | None, ident: str | None = None,
            data: dict[str, Any] | None = None) -> None:
    if ctx.ledger is not None and entry is not None:
        ctx.ledger.update(entry, ident=ident, data=data)


def _release(ctx, entry: int | None) -> None:
    if ctx.ledger is not None and entry is not None:
        ctx.ledger.release(entry)


def _cleanup_error(ctx, what: str, e: BaseException) -> None:
    msg = aws.aws_error(e) if aws.is_aws_error(e) else str(e)
    ctx.ui.error(f"Error {what}: {msg}; `kiln cleanup` will retry")


class AwsStep(Step):
    def __init__(self, build: _Build):
        self.b = build
        self.c = build.config
