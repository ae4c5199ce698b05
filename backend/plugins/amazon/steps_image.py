"""EC2 steps of the image: deregister the old one, create, wait, copy to regions, modify
attributes, deprecate, tag; and the AMI artifact."""

from __future__ import annotations

import uuid
from typing import Any

from ...sdk.plugin import Artifact, StepError
from . import common as aws
from .config import BUILDER_ID, AmazonEBSConfig, ami_name_problem, parse_rfc3339
from .steps_base import AwsStep, _Ami, _Build, _cleanup_error, _record, _release, _update
from .steps_network import check_ami_name_free


class DeregisterStep(AwsStep):
    title = "Deregister old AMIs"

    def run(self, ctx) -> None:
        c = self.c
        b = self.b
        access = b.access
        assert access is not None
        name = ami_name_for(ctx, b)
        for region in [c.region] + c.copy_regions():
            ec2 = access.ec2(region)
            images = aws.call(f"Error looking for AMIs named {name} in {region}",
                              ec2.describe_images, Owners=["self"],
                              Filters=[{"Name": "name", "Values": [name]}]).get("Images") or []
            for image in images:
                aws.call(f"Error deregistering {image['ImageId']}", ec2.deregister_image,
                         ImageId=image["ImageId"])
                ctx.ui.say(f"Deregistered AMI {name}, id: {image['ImageId']} ({region})")
                if c.force_delete_snapshot:
                    for snap in aws.image_snapshots(image):
                        aws.call(f"Error deleting snapshot {snap}", ec2.delete_snapshot,
                                 SnapshotId=snap)
                        ctx.ui.say(f"Deleted snapshot: {snap}")
        b.ami_name_checked = True


def ami_name_for(ctx, b: _Build) -> str:
    if not b.ami_name:
        name = b.render(ctx, b.config.ami_name, "ami_name")
        problem = ami_name_problem(name)
        if problem:
            raise StepError(problem)
        b.ami_name = name
    return b.ami_name


class CreateImageStep(AwsStep):
    title = "Create AMI"

    def __init__(self, build: _Build):
        super().__init__(build)
        self.ami: _Ami | None = None

    def run(self, ctx) -> None:
        c = self.c
        b = self.b
        name = self.free_name(ctx)
        description = b.render(ctx, c.ami_description, "ami_description")
        ctx.ui.say(f"Creating AMI {name} from instance {b.instance_id}")
        params: dict[str, Any] = {
            "InstanceId": b.instance_id, "Name": name,
            "TagSpecifications": [aws.tag_spec("image", aws.kiln_tags(ctx))],
        }
        if description:
            params["Description"] = description
        if c.ami_block_device_mappings:
            params["BlockDeviceMappings"] = [d.api() for d in c.ami_block_device_mappings]
        self.keep(ctx, self.make(ctx, name, b.ec2.create_image, params, "Error creating AMI"))

    def free_name(self, ctx) -> str:
        """The AMI's rendered name, checked free in the region unless a forced build
        deregisters what has it."""
        c, b = self.c, self.b
        name = ami_name_for(ctx, b)
        forced = c.force_deregister or getattr(ctx.options, "force", False)
        if not b.ami_name_checked and not forced:
            check_ami_name_free(b.ec2, name, c.region)
        return name

    def make(self, ctx, name: str, call: Any, params: dict[str, Any], failure: str) -> str:
        """``call(**params)`` (CreateImage, RegisterImage) with the AMI in the ledger before
        it exists; a refused call leaves no record. Returns the new AMI's id."""
        access = self.b.access
        assert access is not None
        self.ami = _Ami(self.c.region, name=name)
        self.ami.entry = _record(ctx, "aws-image", name, access.ledger_data(name=name))
        try:
            res = call(**params)
        except Exception as e:
            if not aws.is_aws_error(e):
                raise
            if aws.answered(e):  # refused: there is no AMI to deregister
                _release(ctx, self.ami.entry)
                self.ami = None
            raise StepError(f"{failure}: {aws.aws_error(e)}") from e
        ami_id = res["ImageId"]
        self.ami.ami_id = ami_id
        _update(ctx, self.ami.entry, ident=ami_id, data=access.ledger_data(name=name,
                                                                           ami_id=ami_id))
        return ami_id

    def keep(self, ctx, ami_id: str) -> None:
        """Say the new AMI and make it the build's AMI in its region."""
        ctx.ui.say(f"AMI: {ami_id}")
        self.b.amis[self.c.region] = ami_id
        ctx.state["amis"] = self.b.amis
        ctx.state["created_ami"] = self.ami

    def cleanup(self, ctx) -> None:
        ami = self.ami
        if ami is None or ami.removed:
            return
        if self.b.done:
            forget_ami(ctx, ami)
            return
        if ami.entry is None and not ami.ami_id:
            return
        ctx.ui.say("Deregistering the AMI and deleting associated snapshots because of "
                   "cancellation, or error...")
        discard_ami(ctx, self.b, ami)
        if self.b.amis.get(ami.region) == ami.ami_id:
            self.b.amis.pop(ami.region, None)


def forget_ami(ctx, ami: _Ami) -> None:
    """The AMI is the build's result: drop it from the ledger, keep it in AWS."""
    for entry in ami.snap_entries.values():
        _release(ctx, entry)
    ami.snap_entries.clear()
    _release(ctx, ami.entry)
    ami.entry = None


def discard_ami(ctx, b: _Build, ami: _Ami) -> bool:
    """Deregister ``ami`` and delete its snapshots; release its ledger entries."""
    assert b.access is not None
    ec2 = b.access.ec2(ami.region)
    try:
        ids = [ami.ami_id] if ami.ami_id else [
            i["ImageId"] for i in ec2.describe_images(
                Owners=["self"], Filters=[
                    {"Name": "name", "Values": [ami.name]},
                    {"Name": f"tag:{aws.RUN_TAG}", "Values": [str(ctx.run_id)]}],
            ).get("Images") or []]
        for ami_id in ids:
            aws.delete_image(ec2, ami_id, say=ctx.ui.say)
        for snap in ami.snap_entries:
            aws.delete_snapshot(ec2, snap)
    except Exception as e:
        _cleanup_error(ctx, f"removing AMI {ami.ami_id or ami.name} in {ami.region}", e)
        return False
    forget_ami(ctx, ami)
    ami.removed = True
    return True


def _wait_images(ctx, b: _Build, amis: list[_Ami], what: str) -> None:
    """Wait until every AMI is available; record and kiln-tag its snapshots."""
    assert b.access is not None
    pending = {a.ami_id: a for a in amis}

    def available() -> bool:
        for ami_id, a in list(pending.items()):
            image = aws.describe_image(b.access.ec2(a.region), ami_id)
            state = (image or {}).get("State", "")
            if state == "available":
                _note_snapshots(ctx, b, a, image or {})
                pending.pop(ami_id)
            elif state in ("failed", "error", "invalid", "deregistered"):
                reason = ((image or {}).get("StateReason") or {}).get("Message") or state
                raise StepError(f"AMI {ami_id} in {a.region} failed: {reason}")
        return not pending

    try:
        aws.wait_for(ctx, what, available, b.polling(15, 240))
    except StepError:
        raise
    except Exception as e:
        if aws.is_aws_error(e):
            raise StepError(f"Error waiting for AMI: {aws.aws_error(e)}") from e
        raise


def _note_snapshots(ctx, b: _Build, a: _Ami, image: dict[str, Any]) -> None:
    assert b.access is not None
    snaps = aws.image_snapshots(image)
    b.snapshots[a.region] = snaps
    for snap in snaps:
        if snap not in a.snap_entries:
            a.snap_entries[snap] = _record(ctx, "aws-snapshot", snap, b.access.ledger_data(
                a.region, snapshot_id=snap, ami_id=a.ami_id))
    if snaps:
        aws.call("Error tagging snapshots", b.access.ec2(a.region).create_tags,
                 Resources=snaps, Tags=aws.tag_list(aws.kiln_tags(ctx)))


class WaitImageStep(AwsStep):
    title = "Wait for AMI"

    def run(self, ctx) -> None:
        ami = ctx.state.get("created_ami")
        assert ami is not None
        ctx.ui.say("Waiting for AMI to become ready...")
        _wait_images(ctx, self.b, [ami], f"Waiting for {ami.ami_id} to become available")


class RegionCopyStep(AwsStep):
    title = "Copy AMI to regions"

    def __init__(self, build: _Build):
        super().__init__(build)
        self.copies: list[_Ami] = []
        self.intermediary: _Ami | None = None

    def run(self, ctx) -> None:
        c = self.c
        b = self.b
        access = b.access
        assert access is not None
        source: _Ami = ctx.state["created_ami"]
        regions = c.copy_regions()
        for r in c.ami_regions:
            if r == c.region and not c.encrypt_boot:
                ctx.ui.say(f"Not copying the AMI to its own build region {r}")
        encrypt = bool(c.encrypt_boot)
        if encrypt:
            regions = [c.region] + regions
        verb = "Encrypting" if encrypt else "Copying"
        ctx.ui.say(f"{verb} AMI ({source.ami_id}) to other regions...")
        description = b.render(ctx, c.ami_description, "ami_description")
        for region in regions:
            ctx.cancel.check()
            ctx.ui.say(f"Copying to: {region}")
            copy = _Ami(region, name=source.name)
            copy.entry = _record(ctx, "aws-image", source.name,
                                 access.ledger_data(region, name=source.name))
            self.copies.append(copy)
            params: dict[str, Any] = {"SourceImageId": source.ami_id, "SourceRegion": c.region,
                                      "Name": source.name, "ClientToken": str(uuid.uuid4())}
            if description:
                params["Description"] = description
            if encrypt:
                params["Encrypted"] = True
                key = c.region_kms_key_ids.get(region) or (c.kms_key_id if region == c.region
                                                          else "")
                if key:
                    params["KmsKeyId"] = key
            try:
                res = access.ec2(region).copy_image(**params)
            except Exception as e:
                if not aws.is_aws_error(e):
                    raise
                if aws.answered(e):
                    _release(ctx, copy.entry)
                    self.copies.remove(copy)
                raise StepError(f"Error copying AMI ({source.ami_id}) to region ({region}): "
                                f"{aws.aws_error(e)}") from e
            copy.ami_id = res["ImageId"]
            _update(ctx, copy.entry, ident=copy.ami_id,
                    data=access.ledger_data(region, name=source.name, ami_id=copy.ami_id))
            aws.call(f"Error tagging AMI {copy.ami_id}", access.ec2(region).create_tags,
                     Resources=[copy.ami_id], Tags=aws.tag_list(aws.kiln_tags(ctx)))
        ctx.ui.say("Waiting for all copies to complete...")
        _wait_images(ctx, b, self.copies, "Waiting for the AMI copies")
        for copy in self.copies:
            b.amis[copy.region] = copy.ami_id
        if encrypt or c.skip_save_build_region:
            # the unencrypted (or unwanted) build-region AMI was only a stepping stone
            self.intermediary = source
            if not encrypt:
                b.amis.pop(c.region, None)
            what = "unencrypted" if encrypt else "build-region"
            ctx.ui.say(f"Deleting the intermediary {what} AMI {source.ami_id}")
            if not discard_ami(ctx, b, source):
                raise StepError(f"could not delete the intermediary AMI {source.ami_id}")
        ctx.state["amis"] = b.amis

    def cleanup(self, ctx) -> None:
        if self.b.done:
            for copy in self.copies:
                forget_ami(ctx, copy)
            return
        if not self.copies:
            return
        ctx.ui.say("Deregistering the AMI copies because of cancellation, or error...")
        for copy in self.copies:
            if not copy.removed and (copy.ami_id or copy.entry is not None):
                discard_ami(ctx, self.b, copy)
            if self.b.amis.get(copy.region) == copy.ami_id:
                self.b.amis.pop(copy.region, None)
        self.copies = []


class ModifyAmiStep(AwsStep):
    title = "Set AMI permissions"

    def run(self, ctx) -> None:
        c = self.c
        b = self.b
        access = b.access
        assert access is not None
        launch: list[dict[str, str]] = [{"UserId": u} for u in c.ami_users]
        launch += [{"Group": g} for g in c.ami_groups]
        launch += [{"OrganizationArn": a} for a in c.ami_org_arns]
        launch += [{"OrganizationalUnitArn": a} for a in c.ami_ou_arns]
        for region, ami_id in sorted(b.amis.items()):
            ec2 = access.ec2(region)
            ctx.ui.say(f"Modifying attributes on AMI ({ami_id})...")
            if launch:
                aws.call(f"Error sharing AMI {ami_id}", ec2.modify_image_attribute,
                         ImageId=ami_id, LaunchPermission={"Add": launch})
            if c.ami_product_codes:
                aws.call(f"Error setting product codes on {ami_id}", ec2.modify_image_attribute,
                         ImageId=ami_id, ProductCodes=list(c.ami_product_codes))
            if c.imds_support:
                aws.call(f"Error setting IMDS support on {ami_id}", ec2.modify_image_attribute,
                         ImageId=ami_id, ImdsSupport={"Value": c.imds_support})
            if c.snapshot_users or c.snapshot_groups:
                for snap in b.snapshots.get(region, []):
                    ctx.ui.say(f"Modifying attributes on snapshot ({snap})...")
                    params: dict[str, Any] = {"SnapshotId": snap,
                                              "Attribute": "createVolumePermission",
                                              "OperationType": "add"}
                    if c.snapshot_users:
                        params["UserIds"] = list(c.snapshot_users)
                    if c.snapshot_groups:
                        params["GroupNames"] = list(c.snapshot_groups)
                    aws.call(f"Error sharing snapshot {snap}", ec2.modify_snapshot_attribute,
                             **params)


class DeprecateStep(AwsStep):
    title = "Set AMI deprecation"

    def run(self, ctx) -> None:
        c = self.c
        b = self.b
        assert b.access is not None
        for region, ami_id in sorted(b.amis.items()):
            ec2 = b.access.ec2(region)
            if c.deprecate_at:
                ctx.ui.say(f"Setting the deprecation time of {ami_id} to {c.deprecate_at}")
                aws.call(f"Error deprecating {ami_id}", ec2.enable_image_deprecation,
                         ImageId=ami_id, DeprecateAt=parse_rfc3339(c.deprecate_at))
            dp = c.deregistration_protection
            if dp is not None and dp.enabled:
                ctx.ui.say(f"Enabling deregistration protection on {ami_id}")
                aws.call(f"Error protecting {ami_id}", ec2.enable_image_deregistration_protection,
                         ImageId=ami_id, WithCooldown=bool(dp.with_cooldown))


class CreateTagsStep(AwsStep):
    title = "Tag AMIs"

    def run(self, ctx) -> None:
        c = self.c
        b = self.b
        assert b.access is not None
        tags = b.render_tags(ctx, c.all_tags("tag"), "tags")
        snap_tags = b.render_tags(ctx, c.all_tags("snapshot_tag"), "snapshot_tags")
        for region, ami_id in sorted(b.amis.items()):
            ec2 = b.access.ec2(region)
            ctx.ui.say(f"Adding tags to AMI ({ami_id})...")
            if tags:
                ctx.ui.say("Creating AMI tags")
                for k, v in sorted(tags.items()):
                    ctx.ui.say(f'Adding tag: "{k}": "{v}"')
                aws.call(f"Error tagging AMI {ami_id}", ec2.create_tags,
                         Resources=[ami_id], Tags=aws.tag_list(tags))
            snaps = b.snapshots.get(region, [])
            if snap_tags and snaps:
                ctx.ui.say("Creating snapshot tags")
                for k, v in sorted(snap_tags.items()):
                    ctx.ui.say(f'Adding tag: "{k}": "{v}"')
                aws.call(f"Error tagging the snapshots of {ami_id}", ec2.create_tags,
                         Resources=list(snaps), Tags=aws.tag_list(snap_tags))


class AmiArtifact(Artifact):
    """AMIs by region; ``destroy()`` deregisters them and deletes their snapshots."""

    def __init__(self, amis: dict[str, str], config: AmazonEBSConfig, state: dict[str, Any],
                 builder_id: str = BUILDER_ID):
        super().__init__(builder_id, state=state)
        self.amis = dict(amis)
        self.config = config
        self._state["amis"] = dict(amis)

    def id(self) -> str:
        return ",".join(f"{r}:{a}" for r, a in sorted(self.amis.items()))

    def string(self) -> str:
        lines = [f"{r}: {a}" for r, a in sorted(self.amis.items())]
        return "AMIs were created:\n" + "\n".join(lines) + "\n"

    def files(self) -> list[str]:
        return []

    def destroy(self) -> None:
        access = aws.AwsAccess(self.config)
        for region, ami_id in sorted(self.amis.items()):
            try:
                aws.delete_image(access.ec2(region), ami_id)
            except Exception as e:
                if aws.is_aws_error(e):
                    raise StepError(f"Error deleting AMI {ami_id} in {region}: "
                                    f"{aws.aws_error(e)}") from e
                raise


def registered_ami_steps(ctx, b: _Build, register: list) -> list:
    """What every EC2 builder runs from registering its image on: deregister a same-named
    AMI when forced, the builder's own ``register`` steps, the wait, then the copies,
    sharing, deprecation and tags its settings ask for."""
    c = b.config
    steps: list = []
    if c.force_deregister or getattr(ctx.options, "force", False):
        steps.append(DeregisterStep(b))
    steps += [*register, WaitImageStep(b)]
    if c.copy_regions() or c.encrypt_boot:
        steps.append(RegionCopyStep(b))
    if (c.ami_users or c.ami_groups or c.ami_org_arns or c.ami_ou_arns or c.ami_product_codes
            or c.snapshot_users or c.snapshot_groups or c.imds_support):
        steps.append(ModifyAmiStep(b))
    if c.deprecate_at or (c.deregistration_protection is not None
                          and c.deregistration_protection.enabled):
        steps.append(DeprecateStep(b))
    if c.all_tags("tag") or c.all_tags("snapshot_tag"):
        steps.append(CreateTagsStep(b))
    return steps


def ami_artifact(ctx, b: _Build | None, config: AmazonEBSConfig, keys: tuple[str, ...],
                 builder_id: str = BUILDER_ID) -> AmiArtifact | None:
    """The build's AMIs as its artifact (None when it made none), with the generated data
    minus the machine's credentials; marks the build done so cleanup keeps the AMIs."""
    if b is None:
        return None
    b.done = True
    if not b.amis:
        return None
    data = {k: v for k, v in ctx.generated_data.items()
            if k not in ("SSHPrivateKey", "Password", "WinRMPassword")}
    for k in keys:
        data.setdefault(k, b.info.get(k, ""))
    return AmiArtifact(b.amis, config, {"generated_data": data}, builder_id=builder_id)

