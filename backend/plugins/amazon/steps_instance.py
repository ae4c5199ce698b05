"""EC2 steps of the instance: run it, wait for it, connect, clear temporary keys, stop it,
modify it."""

from __future__ import annotations

import os
import re
import uuid
from typing import Any

from ...sdk.plugin import StepError
from . import common as aws
from .steps_base import AwsStep, _Build, _cleanup_error, _record, _release, _update


class RunInstanceStep(AwsStep):
    title = "Launch source instance"

    def __init__(self, build: _Build):
        super().__init__(build)
        self.volumes: dict[str, str] = {}  # volume id -> device name

    def run(self, ctx) -> None:
        c = self.c
        b = self.b
        access = b.access
        assert access is not None
        token = str(uuid.uuid4())
        params = self._params(ctx, token)
        types = list(c.spot_instance_types) or [c.instance_type]
        b.spot = c.is_spot()
        ctx.ui.say("Launching a spot AWS instance..." if b.spot
                   else "Launching a source AWS instance...")
        b.instance_entry = _record(ctx, "aws-instance", token,
                                   access.ledger_data(client_token=token))
        res = None
        for i, itype in enumerate(types):
            try:
                res = b.ec2.run_instances(InstanceType=itype, **params)
                break
            except Exception as e:
                if not aws.is_aws_error(e):
                    raise
                capacity = aws.error_code(e) in ("InsufficientInstanceCapacity",
                                                 "SpotMaxPriceTooLow", "Unsupported")
                if capacity and i + 1 < len(types):
                    ctx.ui.say(f"No capacity for {itype} ({aws.aws_error(e)}); trying "
                               f"{types[i + 1]}")
                    continue
                if aws.answered(e):  # refused: no instance exists
                    _release(ctx, b.instance_entry)
                    b.instance_entry = None
                raise StepError(f"Error launching source instance: {aws.aws_error(e)}") from e
        assert res is not None
        inst = res["Instances"][0]
        iid = inst["InstanceId"]
        b.instance_id = iid
        b.instance = inst
        _update(ctx, b.instance_entry, ident=iid,
                data=access.ledger_data(client_token=token, instance_id=iid))
        ctx.instance_id = iid
        ctx.state["instance_id"] = iid
        ctx.ui.say(f"Instance ID: {iid}")

    def _params(self, ctx, token: str) -> dict[str, Any]:
        c = self.c
        b = self.b
        p: dict[str, Any] = {"ImageId": b.source_image["ImageId"], "MinCount": 1, "MaxCount": 1,
                             "ClientToken": token}
        if b.key_name:
            p["KeyName"] = b.key_name
        user_data = c.user_data
        if c.user_data_file:
            try:
                with open(os.path.expanduser(c.user_data_file), encoding="utf-8") as f:
                    user_data = f.read()
            except OSError as e:
                raise StepError(f"cannot read user_data_file {c.user_data_file}: "
                                f"{e.strerror or e}") from e
        if user_data:
            p["UserData"] = user_data
        if c.iam_instance_profile:
            key = "Arn" if c.iam_instance_profile.startswith("arn:") else "Name"
            p["IamInstanceProfile"] = {key: c.iam_instance_profile}
        bdms = [d.api() for d in c.launch_block_device_mappings]
        if c.no_ephemeral:
            taken = {m["DeviceName"] for m in bdms}
            bdms += [{"DeviceName": f"xvdc{chr(97 + i)}", "NoDevice": ""} for i in range(26)
                     if f"xvdc{chr(97 + i)}" not in taken]
        if bdms:
            p["BlockDeviceMappings"] = bdms
        placement: dict[str, Any] = {}
        if b.availability_zone and not b.subnet_id:
            placement["AvailabilityZone"] = b.availability_zone
        pl = c.placement
        tenancy = c.tenancy or (pl.tenancy if pl else "")
        if tenancy:
            placement["Tenancy"] = tenancy
        if pl is not None:
            if pl.host_id:
                placement["HostId"] = pl.host_id
            if pl.host_resource_group_arn:
                placement["HostResourceGroupArn"] = pl.host_resource_group_arn
            if pl.partition_number:
                placement["PartitionNumber"] = int(pl.partition_number)
            if pl.group_name:
                placement["GroupName"] = pl.group_name
        if placement:
            p["Placement"] = placement
        if c.ebs_optimized:
            p["EbsOptimized"] = True
        if c.shutdown_behavior:
            p["InstanceInitiatedShutdownBehavior"] = c.shutdown_behavior
        if c.metadata_options is not None and c.metadata_options.api():
            p["MetadataOptions"] = c.metadata_options.api()
        if c.enable_unlimited_credits or c.enable_t2_unlimited:
            p["CreditSpecification"] = {"CpuCredits": "unlimited"}
        if c.enable_nitro_enclave:
            p["EnclaveOptions"] = {"Enabled": True}
        if c.capacity_reservation_id:
            p["CapacityReservationSpecification"] = {
                "CapacityReservationTarget": {"CapacityReservationId": c.capacity_reservation_id}}
        elif c.capacity_reservation_group_arn:
            p["CapacityReservationSpecification"] = {"CapacityReservationTarget": {
                "CapacityReservationResourceGroupArn": c.capacity_reservation_group_arn}}
        elif c.capacity_reservation_preference:
            p["CapacityReservationSpecification"] = {
                "CapacityReservationPreference": c.capacity_reservation_preference}
        licenses = []
        for spec in c.license_specifications:
            arn = ""
            if isinstance(spec, dict):
                req = spec.get("license_configuration_request") or {}
                arn = req.get("license_configuration_arn", "") if isinstance(req, dict) else ""
            if arn:
                licenses.append({"LicenseConfigurationArn": arn})
        if licenses:
            p["LicenseSpecifications"] = licenses
        if c.associate_public_ip_address is not None:
            nic: dict[str, Any] = {"DeviceIndex": 0, "DeleteOnTermination": True,
                                   "AssociatePublicIpAddress": bool(c.associate_public_ip_address)}
            if b.subnet_id:
                nic["SubnetId"] = b.subnet_id
            if b.group_ids:
                nic["Groups"] = list(b.group_ids)
            p["NetworkInterfaces"] = [nic]
        else:
            if b.subnet_id:
                p["SubnetId"] = b.subnet_id
            if b.group_ids:
                p["SecurityGroupIds"] = list(b.group_ids)
        if c.is_spot():
            spot: dict[str, Any] = {"SpotInstanceType": "one-time",
                                    "InstanceInterruptionBehavior": "terminate"}
            if c.spot_price != "auto":
                spot["MaxPrice"] = c.spot_price
            if c.block_duration_minutes:
                spot["BlockDurationMinutes"] = int(c.block_duration_minutes)
            p["InstanceMarketOptions"] = {"MarketType": "spot", "SpotOptions": spot}
        kiln = aws.kiln_tags(ctx)
        run_tags = b.render_tags(ctx, c.all_tags("run_tag"), "run_tags")
        run_tags.setdefault("Name", "Kiln Builder")
        specs = [aws.tag_spec("instance", {**run_tags, **kiln}),
                 aws.tag_spec("volume", {**b.render_tags(ctx, c.all_tags("run_volume_tag"),
                                                         "run_volume_tags"), **kiln})]
        if c.is_spot():
            specs.append(aws.tag_spec("spot-instances-request", {
                **b.render_tags(ctx, c.all_tags("spot_tag"), "spot_tags"), **kiln}))
        p["TagSpecifications"] = specs
        return p

    def cleanup(self, ctx) -> None:
        b = self.b
        if b.instance_entry is None and not b.instance_id:
            return
        ec2 = b.ec2
        ids = [b.instance_id] if b.instance_id else []
        if not ids:
            # the launch failed or its answer was lost: find the instance by its tags
            try:
                ids = aws.live_instances(ec2, [
                    {"Name": f"tag:{aws.RUN_TAG}", "Values": [str(ctx.run_id)]},
                    {"Name": f"tag:{aws.BUILD_TAG}", "Values": [str(ctx.build_name)]}])
            except Exception as e:
                _cleanup_error(ctx, "looking for the source instance", e)
                return
        if ids:
            self._remember_volumes(ec2, ids)
            ctx.ui.say("Terminating the source AWS instance...")
            try:
                aws.terminate_and_wait(ec2, ids, progress=ctx.ui.progress)
            except Exception as e:
                _cleanup_error(ctx, f"terminating {', '.join(ids)}", e)
                return
        self._delete_volumes(ctx, ec2)
        _release(ctx, b.instance_entry)
        b.instance_entry = None

    def _remember_volumes(self, ec2, ids: list[str]) -> None:
        """Volumes AWS keeps after termination (launch mappings say which to keep)."""
        keep = {d.device_name for d in self.c.launch_block_device_mappings}
        try:
            for iid in ids:
                _state, inst = aws.instance_state(ec2, iid)
                for bdm in inst.get("BlockDeviceMappings") or []:
                    vol = (bdm.get("Ebs") or {}).get("VolumeId")
                    if vol and bdm.get("DeviceName") not in keep:
                        self.volumes[vol] = bdm.get("DeviceName", "")
        except Exception:  # best effort: the reaper still knows the instance
            pass

    def _delete_volumes(self, ctx, ec2) -> None:
        for vol in list(self.volumes):
            try:
                found = ec2.describe_volumes(VolumeIds=[vol]).get("Volumes") or []
                if found and found[0].get("State") == "available":
                    ctx.ui.say(f"Deleting leftover volume {vol}")
                    ec2.delete_volume(VolumeId=vol)
            except Exception as e:
                if not (aws.is_aws_error(e) and aws.gone(e)):
                    _cleanup_error(ctx, f"deleting volume {vol}", e)
            self.volumes.pop(vol, None)


class WaitInstanceStep(AwsStep):
    title = "Wait for instance"

    def run(self, ctx) -> None:
        b = self.b
        iid = b.instance_id
        ctx.ui.say(f"Waiting for instance ({iid}) to become ready...")

        def running() -> bool:
            state, inst = aws.instance_state(b.ec2, iid)
            if inst:
                b.instance = inst
            if state in ("shutting-down", "terminated", "stopping", "stopped"):
                reason = (inst.get("StateReason") or {}).get("Message") or state
                raise StepError(f"instance {iid} did not start: {reason}")
            return state == "running"

        try:
            aws.wait_for(ctx, f"Waiting for {iid} to run", running, b.polling(5, 120))
        except StepError:
            raise
        except Exception as e:
            if aws.is_aws_error(e):
                raise StepError(f"Error waiting for instance {iid}: {aws.aws_error(e)}") from e
            raise


class ConnectStep(AwsStep):
    title = "Connect"

    def run(self, ctx) -> None:
        from ...sdk.communicator import CommunicatorError
        from ..communicators.connect import connect

        c = self.c
        b = self.b
        ctype = c.communicator_type()
        if ctype == "none":
            ctx.communicator = connect(ctx, c)
            return
        host = c.ssh_host or self._instance_address(ctx)
        port = c.ssh_port_number()
        if b.instance_entry is not None and b.access is not None:
            # what the dashboard needs to reach a kept machine (never the key itself)
            _update(ctx, b.instance_entry, data=b.access.ledger_data(
                instance_id=b.instance_id, ssh_host=host, ssh_port=port,
                ssh_username=c.ssh_username, ssh_private_key_file=b.key_file))
        parts = ["ssh"]
        if b.key_file:
            parts += ["-i", b.key_file]
        parts += ["-p", str(port), f"{c.ssh_username}@{host}"]
        hint = " ".join(parts)
        try:
            if ctype == "ssh":
                from ..ssh.communicator import connect_ssh

                ctx.communicator = connect_ssh(ctx, c, host=host,
                                               private_key=b.private_key or None)
            else:
                ctx.communicator = connect(ctx, c, host=host)
        except CommunicatorError as e:
            raise StepError(str(e)) from e
        finally:
            ctx.access_hint = hint

    def _instance_address(self, ctx) -> str:
        c = self.c
        b = self.b
        iface = c.ssh_interface or ("private_ip" if c.ssh_private_ip else "")
        fields = {"public_ip": "PublicIpAddress", "private_ip": "PrivateIpAddress",
                  "public_dns": "PublicDnsName", "private_dns": "PrivateDnsName"}
        for attempt in range(1, 4):
            inst = b.instance
            host = ""
            if iface == "ipv6":
                for nic in inst.get("NetworkInterfaces") or []:
                    for addr in nic.get("Ipv6Addresses") or []:
                        host = host or addr.get("Ipv6Address", "")
            elif iface:
                host = inst.get(fields[iface]) or ""
            elif inst.get("VpcId"):
                host = inst.get("PublicIpAddress") or ""
                if not host and attempt == 3:
                    host = inst.get("PrivateIpAddress") or ""
            else:
                host = inst.get("PublicDnsName") or ""
            if host:
                return host
            if attempt < 3:
                ctx.cancel.sleep(1)
                _state, fresh = aws.instance_state(b.ec2, b.instance_id)
                if fresh:
                    b.instance = fresh
        raise StepError(f"couldn't determine an address for instance {b.instance_id} "
                        f"(ssh_interface {iface or 'default'}); set ssh_interface or ssh_host")

    def cleanup(self, ctx) -> None:
        comm = ctx.communicator
        if comm is not None:
            comm.close()


class ClearTemporaryKeysStep(AwsStep):
    """``ssh_clear_authorized_keys``: take the temporary key out of the machine's
    authorized_keys files before the AMI is made, so instances launched from it do not
    accept it. Failures are reported, not fatal (the key pair is deleted anyway)."""

    title = "Clear temporary keys"

    def run(self, ctx) -> None:
        from ...sdk.communicator import CommunicatorError

        b = self.b
        if not b.temporary_key or ctx.communicator is None:
            return
        ctx.ui.say("Trying to remove ephemeral keys from authorized_keys files")
        # a sed basic regular expression matching the name literally (it is in '...')
        pattern = re.sub(r"([.\[\]*^$\\/])", r"\\\1", b.key_name).replace("'", "'\\''")
        files = [("", "~/.ssh/authorized_keys")]
        if self.c.ssh_username != "root":
            files.append(("sudo -n ", "/root/.ssh/authorized_keys"))
        for prefix, path in files:
            command = (f"{prefix}sed -i.bak '/ {pattern}$/d' {path} && "
                       f"{prefix}rm -f {path}.bak")
            try:
                status = ctx.communicator.run(command, ctx.ui.output, ctx.cancel)
                why = f"exit status {status}"
            except CommunicatorError as e:
                status, why = -1, str(e)
            if status != 0:
                ctx.ui.say(f"Could not clean up {path} ({why}); lines ending in {b.key_name} "
                           "may remain")


class StopInstanceStep(AwsStep):
    title = "Stop instance"

    def run(self, ctx) -> None:
        b = self.b
        iid = b.instance_id
        if b.spot:
            ctx.ui.say("Spot instances are not stopped; the AMI is made from the running "
                       "instance")
            return
        if self.c.disable_stop_instance:
            ctx.ui.say("Automatic instance stop disabled. Please stop instance manually.")
        else:
            ctx.ui.say("Stopping the source instance...")
            aws.call(f"Error stopping instance {iid}", b.ec2.stop_instances, InstanceIds=[iid])
        ctx.ui.say("Waiting for the instance to stop...")

        def stopped() -> bool:
            state, _inst = aws.instance_state(b.ec2, iid)
            if state in ("terminated", "shutting-down", ""):
                raise StepError(f"instance {iid} was terminated instead of stopped")
            return state == "stopped"

        aws.wait_for(ctx, f"Waiting for {iid} to stop", stopped, b.polling(5, 120))


class ModifyInstanceStep(AwsStep):
    title = "Set instance attributes"

    def run(self, ctx) -> None:
        c = self.c
        b = self.b
        if c.ena_support is not None:
            ctx.ui.say(f"{'Enabling' if c.ena_support else 'Disabling'} Enhanced Networking "
                       "(ENA)...")
            aws.call("Error setting ENA support", b.ec2.modify_instance_attribute,
                     InstanceId=b.instance_id, EnaSupport={"Value": bool(c.ena_support)})
        if c.sriov_support:
            ctx.ui.say("Enabling Enhanced Networking (SR-IOV)...")
            aws.call("Error setting SR-IOV support", b.ec2.modify_instance_attribute,
                     InstanceId=b.instance_id, SriovNetSupport={"Value": "simple"})
