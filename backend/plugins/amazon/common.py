"""What Kiln's Amazon builders share: AWS sessions, error texts, waiting, tags, reaping.

boto3 and botocore are imported inside the functions that use them, so that
validating a template (``kiln validate``) never pays for them.

Resources are tagged ``kiln:run`` (the run id) and ``kiln:build`` (the build
name) when they are created, and recorded in the ledger *before* they are
created, with what :func:`reap` needs to find and remove them again: region,
endpoint, profile. Credentials are never written to the ledger: ``kiln
cleanup`` uses the default credential chain (environment, profile, instance
role) plus the stored endpoint.
"""

from __future__ import annotations

import os
import re
import time
from typing import TYPE_CHECKING, Any, Callable

from ...sdk.plugin import Cancelled, StepError

if TYPE_CHECKING:
    from ...sdk.context import BuildContext

RUN_TAG = "kiln:run"
BUILD_TAG = "kiln:build"

#: error codes that mean "it is already gone"
GONE_CODES = (
    "InvalidInstanceID.NotFound", "InvalidKeyPair.NotFound", "InvalidGroup.NotFound",
    "InvalidAMIID.NotFound", "InvalidAMIID.Unavailable", "InvalidSnapshot.NotFound",
    "InvalidVolume.NotFound", "InvalidGroupId.Malformed", "NoSuchEntity",
)


# --------------------------------------------------------------------------- errors


_XML_CODE = re.compile(r"<Code>([^<]+)</Code>")
_XML_MESSAGE = re.compile(r"<Message>([^<]*)</Message>")


def error_code(e: BaseException) -> str:
    """The AWS error code of a botocore ClientError ("" for anything else)."""
    resp = getattr(e, "response", None)
    if isinstance(resp, dict):
        err = resp.get("Error") or {}
        code = str(err.get("Code") or "")
        if code.isdigit():  # an XML error body where JSON was expected (moto's denials)
            m = _XML_CODE.search(str(err.get("Message") or ""))
            if m:
                return m.group(1)
        return code
    return ""


def _error_message(e: BaseException) -> str:
    msg = str((getattr(e, "response", {}).get("Error") or {}).get("Message") or "")
    m = _XML_MESSAGE.search(msg) if msg.lstrip().startswith("<") else None
    return m.group(1) if m else msg


def is_aws_error(e: BaseException) -> bool:
    """True for botocore's exceptions (API errors, connection errors, bad responses)."""
    mod = type(e).__module__ or ""
    return mod.startswith(("botocore", "boto3", "urllib3")) or isinstance(e, (ConnectionError,))


def aws_error(e: BaseException) -> str:
    """One line a user can act on: ``Code: message`` for API errors."""
    code = error_code(e)
    if code:
        msg = _error_message(e)
        return f"{code}: {msg}" if msg else code
    text = str(e).strip()
    first = text.splitlines()[0] if text else type(e).__name__
    if type(e).__name__ == "ResponseParserError":
        return "the EC2 endpoint sent a response that is not an AWS API answer " \
               "(an internal server error?)"
    return first


def answered(e: BaseException) -> bool:
    """The endpoint answered the call with an error, so the call created nothing.

    Connection failures and timeouts are different: the request may have been
    carried out, so the ledger entry stays for ``kiln cleanup``.
    """
    return bool(error_code(e)) or type(e).__name__ == "ResponseParserError"


#: error codes of a call the credentials may not make (moto says AccessDenied for EC2 too)
DENIED_CODES = ("UnauthorizedOperation", "AccessDenied", "AccessDeniedException",
                "UnauthorizedAccess", "Client.UnauthorizedOperation")


def denied(e: BaseException) -> bool:
    """The credentials lack a permission for this call."""
    return error_code(e) in DENIED_CODES


def gone(e: BaseException) -> bool:
    code = error_code(e)
    return code in GONE_CODES or code.endswith(".NotFound")


# --------------------------------------------------------------------------- sessions


class AwsAccess:
    """A boto3 session built from a template's access settings, and its EC2 clients.

    ``settings`` is any object with the access keys of an Amazon builder config
    (access_key, secret_key, token, profile, region, custom_endpoint_ec2,
    shared_credentials_file, insecure_skip_tls_verify, max_retries, assume_role).
    """

    def __init__(self, settings: Any, secret: Callable[[str], None] | None = None):
        self.settings = settings
        self.region = settings.region
        self.endpoint = settings.custom_endpoint_ec2 or ""
        self._secret = secret or (lambda s: None)
        self._session: Any = None
        self._clients: dict[tuple[str, str], Any] = {}

    # -- session ------------------------------------------------------------------
    @property
    def session(self) -> Any:
        if self._session is None:
            self._session = self._make_session()
        return self._session

    def _make_session(self) -> Any:
        import boto3
        import botocore.exceptions
        import botocore.session

        s = self.settings
        try:
            core = botocore.session.Session(profile=s.profile or None)
            if getattr(s, "shared_credentials_file", ""):
                core.set_config_variable("credentials_file",
                                         os.path.expanduser(s.shared_credentials_file))
            kwargs: dict[str, Any] = {}
            if s.access_key or s.secret_key:
                kwargs = {"aws_access_key_id": s.access_key or None,
                          "aws_secret_access_key": s.secret_key or None,
                          "aws_session_token": s.token or None}
            session = boto3.session.Session(region_name=s.region or None, botocore_session=core,
                                            **kwargs)
        except botocore.exceptions.ProfileNotFound as e:
            raise StepError(f"AWS profile {s.profile!r} was not found: {e}") from e
        if not self.region:  # from AWS_REGION, AWS_DEFAULT_REGION or the profile
            self.region = session.region_name or ""
            if not self.region:
                raise StepError("no AWS region: set region, or AWS_REGION in the environment")
        role = getattr(s, "assume_role", None)
        if role is not None and role.role_arn:
            session = self._assume(session, role)
        return session

    def _assume(self, session: Any, role: Any) -> Any:
        import boto3

        params: dict[str, Any] = {
            "RoleArn": role.role_arn,
            "RoleSessionName": role.session_name or f"kiln-{int(time.time())}",
        }
        if role.external_id:
            params["ExternalId"] = role.external_id
        if role.duration_seconds:
            params["DurationSeconds"] = int(role.duration_seconds)
        if role.policy:
            params["Policy"] = role.policy
        if role.policy_arns:
            params["PolicyArns"] = [{"arn": a} for a in role.policy_arns]
        if role.tags:
            params["Tags"] = [{"Key": k, "Value": str(v)} for k, v in role.tags.items()]
        if role.transitive_tag_keys:
            params["TransitiveTagKeys"] = list(role.transitive_tag_keys)
        try:
            creds = session.client("sts", config=self.client_config()).assume_role(
                **params)["Credentials"]
        except Exception as e:
            if is_aws_error(e):
                raise StepError(f"cannot assume role {role.role_arn}: {aws_error(e)}") from e
            raise
        for key in ("AccessKeyId", "SecretAccessKey", "SessionToken"):
            self._secret(creds.get(key) or "")
        return boto3.session.Session(
            aws_access_key_id=creds["AccessKeyId"], aws_secret_access_key=creds["SecretAccessKey"],
            aws_session_token=creds["SessionToken"], region_name=self.region)

    def default_region(self) -> str:
        """The template's region, else the one the environment or profile gives."""
        if not self.region:
            _ = self.session  # making the session resolves it (or fails clearly)
        return self.region

    def check_credentials(self) -> None:
        """Fail early when no credentials can be found (no network call)."""
        import botocore.exceptions

        try:
            creds = self.session.get_credentials()
        except botocore.exceptions.BotoCoreError as e:
            raise StepError(f"cannot load AWS credentials: {e}") from e
        if creds is None:
            raise StepError(
                "no AWS credentials found: set access_key and secret_key, a profile, or the "
                "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY environment variables")
        frozen = creds.get_frozen_credentials()
        # mask what the credential chain found too; short test values are left alone
        for value in (frozen.access_key, frozen.secret_key, frozen.token):
            if value and len(value) >= 16:
                self._secret(value)

    def client_config(self) -> Any:
        import botocore.config

        retries = int(getattr(self.settings, "max_retries", 0) or 0)
        return botocore.config.Config(
            retries={"max_attempts": retries if retries > 0 else 5, "mode": "standard"},
            connect_timeout=15, read_timeout=120, user_agent_extra="kiln",
        )

    def ec2(self, region: str | None = None) -> Any:
        region = region or self.default_region()
        key = ("ec2", region)
        client = self._clients.get(key)
        if client is None:
            verify = False if getattr(self.settings, "insecure_skip_tls_verify", False) else None
            client = self.session.client(
                "ec2", region_name=region, endpoint_url=self.endpoint or None,
                config=self.client_config(), verify=verify)
            self._clients[key] = client
        return client

    def client(self, service: str, region: str | None = None) -> Any:
        region = region or self.default_region()
        key = (service, region)
        c = self._clients.get(key)
        if c is None:
            c = self.session.client(service, region_name=region, config=self.client_config())
            self._clients[key] = c
        return c

    # -- ledger ---------------------------------------------------------------------
    def ledger_data(self, region: str | None = None, **extra: Any) -> dict[str, Any]:
        """What ``kiln cleanup`` needs to reach a resource: never a credential."""
        s = self.settings
        data: dict[str, Any] = {"region": region or self.region, "endpoint": self.endpoint}
        if s.profile:
            data["profile"] = s.profile
        if getattr(s, "shared_credentials_file", ""):
            data["shared_credentials_file"] = os.path.expanduser(s.shared_credentials_file)
        role = getattr(s, "assume_role", None)
        if role is not None and role.role_arn:
            data["role_arn"] = role.role_arn
        data.update(extra)
        return data


def call(what: str, fn: Callable[..., Any], **kwargs: Any) -> Any:
    """Call one AWS API; turn its failure into a StepError starting with ``what``."""
    try:
        return fn(**kwargs)
    except Exception as e:
        if is_aws_error(e):
            raise StepError(f"{what}: {aws_error(e)}") from e
        raise


# --------------------------------------------------------------------------- tags


def kiln_tags(ctx: BuildContext) -> dict[str, str]:
    return {RUN_TAG: str(ctx.run_id), BUILD_TAG: str(ctx.build_name)}


def tag_list(tags: dict[str, str]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in tags.items()]


def tag_spec(resource: str, tags: dict[str, str]) -> dict[str, Any]:
    return {"ResourceType": resource, "Tags": tag_list(tags)}


def filter_list(filters: dict[str, Any]) -> list[dict[str, Any]]:
    """A template's ``filters`` map as EC2 ``Filters`` (a list value gives several values)."""
    out = []
    for name, value in filters.items():
        values = [str(v) for v in value] if isinstance(value, list) else [str(value)]
        out.append({"Name": name, "Values": values})
    return out


def data_lookup(access: AwsAccess, skip_credential_validation: bool, what: str,
                fn: Callable[[], Any],
                messages: dict[str, Callable[[], str]] | None = None,
                action: str = "") -> Any:
    """A data source's AWS call: credentials checked first (unless skipped), AWS errors as
    StepError (``messages`` maps an error code to a message of its own, made when needed).
    A denied call names ``action``, the IAM permission it needs."""
    try:
        if not skip_credential_validation:
            access.check_credentials()
        return fn()
    except Exception as e:
        if not is_aws_error(e):
            raise
        if action and denied(e):
            raise StepError(f"missing permission {action} (needed for {what}); nothing was "
                            f"created. Add it to the policy (kiln iam policy TEMPLATE prints "
                            f"the whole policy): {aws_error(e)}") from e
        special = (messages or {}).get(error_code(e))
        raise StepError(special() if special else f"{what} failed: {aws_error(e)}") from e


# --------------------------------------------------------------------------- source AMIs


def find_image(
    ec2: Any,
    image_id: str = "",
    filters: dict[str, Any] | None = None,
    owners: list[str] | None = None,
    most_recent: bool = False,
    include_deprecated: bool = False,
) -> dict[str, Any]:
    """The one image an id and/or a filter select (what an ``amazon-ami`` data source does too).

    Raises StepError with the messages Packer users search for: no match, or
    several matches without ``most_recent``.
    """
    params: dict[str, Any] = {}
    described = []
    if image_id:
        params["ImageIds"] = [image_id]
        described.append(f"image id {image_id}")
    if filters:
        params["Filters"] = filter_list(filters)
    if owners:
        params["Owners"] = list(owners)
    if include_deprecated:
        params["IncludeDeprecated"] = True
    if filters or owners:
        parts = [f"{k}={v}" for k, v in (filters or {}).items()]
        if owners:
            parts.append("owners=" + ",".join(owners))
        described.append(" ".join(parts))
    what = "; ".join(described) or "(nothing)"
    try:
        images = ec2.describe_images(**params).get("Images") or []
    except Exception as e:
        if not is_aws_error(e):
            raise
        if gone(e) or error_code(e).startswith("InvalidAMIID"):
            raise StepError(f"No AMI was found matching filters: {what} ({aws_error(e)})") from e
        if denied(e):
            raise StepError(f"missing permission ec2:DescribeImages (needed to find the AMI "
                            f"{what}); nothing was created: {aws_error(e)}") from e
        raise StepError(f"Error querying AMI: {aws_error(e)}") from e
    if not images:
        raise StepError(f"No AMI was found matching filters: {what}")
    if len(images) > 1 and not most_recent:
        raise StepError("Your query returned more than one result. Please try a more specific "
                        f"search, or set most_recent to true. ({len(images)} AMIs matched {what})")
    return max(images, key=lambda i: i.get("CreationDate") or "")


# --------------------------------------------------------------------------- waiting


class Polling:
    """How often and how long to poll: ``aws_polling`` or AWS_POLL_DELAY_SECONDS/AWS_MAX_ATTEMPTS."""

    def __init__(self, delay: float, attempts: int):
        self.delay = delay
        self.attempts = attempts

    @classmethod
    def from_config(cls, polling: Any, default_delay: float, default_attempts: int) -> Polling:
        delay = float(getattr(polling, "delay_seconds", 0) or 0)
        attempts = int(getattr(polling, "max_attempts", 0) or 0)
        if not delay:
            delay = _env_number("AWS_POLL_DELAY_SECONDS") or default_delay
        if not attempts:
            attempts = int(_env_number("AWS_MAX_ATTEMPTS") or default_attempts)
        return cls(max(0.0, delay), max(1, attempts))


def _env_number(name: str) -> float:
    try:
        return float(os.environ.get(name, "") or 0)
    except ValueError:
        return 0.0


def wait_for(
    ctx: BuildContext,
    what: str,
    check: Callable[[], bool],
    polling: Polling,
    cancellable: bool = True,
) -> None:
    """Poll ``check`` (at once, then every ``polling.delay`` seconds) until it returns True.

    ``check`` raises StepError for a state that will never come right. Progress
    goes to the dashboard; a cancelled build stops waiting at once unless
    ``cancellable`` is False (cleanups wait even after a cancel).
    """
    start = time.monotonic()
    for attempt in range(1, polling.attempts + 1):
        if cancellable:
            ctx.cancel.check()
        elapsed = time.monotonic() - start
        ctx.ui.progress(f"{what} (attempt {attempt}/{polling.attempts}, {elapsed:.0f}s)",
                        attempt, polling.attempts)
        if check():
            return
        if attempt == polling.attempts:
            break
        if cancellable:
            ctx.cancel.sleep(polling.delay)
        else:
            time.sleep(polling.delay)
    raise StepError(f"{what}: gave up after {polling.attempts} attempts "
                    f"({time.monotonic() - start:.0f}s); raise aws_polling.max_attempts to wait "
                    "longer")


# --------------------------------------------------------------------------- EC2 helpers


def instance_state(ec2: Any, instance_id: str) -> tuple[str, dict[str, Any]]:
    """(state name, instance description); ("", {}) when the instance is unknown."""
    try:
        res = ec2.describe_instances(InstanceIds=[instance_id])
    except Exception as e:
        if gone(e):
            return "", {}
        raise
    for r in res.get("Reservations", []):
        for inst in r.get("Instances", []):
            return str((inst.get("State") or {}).get("Name") or ""), inst
    return "", {}


def image_snapshots(image: dict[str, Any]) -> list[str]:
    out = []
    for bdm in image.get("BlockDeviceMappings") or []:
        snap = (bdm.get("Ebs") or {}).get("SnapshotId")
        if snap:
            out.append(snap)
    return out


def describe_image(ec2: Any, ami_id: str) -> dict[str, Any] | None:
    try:
        images = ec2.describe_images(ImageIds=[ami_id]).get("Images") or []
    except Exception as e:
        if gone(e):
            return None
        raise
    return images[0] if images else None


def delete_image(ec2: Any, ami_id: str, say: Callable[[str], None] | None = None) -> None:
    """Deregister an AMI and delete its snapshots; quiet when they are already gone."""
    image = describe_image(ec2, ami_id)
    snaps = image_snapshots(image) if image else []
    if image is not None:
        try:
            ec2.deregister_image(ImageId=ami_id)
        except Exception as e:
            if not gone(e):
                raise
        if say:
            say(f"Deregistered AMI {ami_id}")
    for snap in snaps:
        delete_snapshot(ec2, snap)
        if say:
            say(f"Deleted snapshot {snap}")


def delete_snapshot(ec2: Any, snap: str) -> None:
    try:
        ec2.delete_snapshot(SnapshotId=snap)
    except Exception as e:
        if not gone(e):
            raise


def terminate_and_wait(ec2: Any, ids: list[str], timeout: float = 600.0,
                       progress: Callable[[str], None] | None = None) -> None:
    """Terminate instances and wait until none of them is left running (ignores cancels)."""
    if not ids:
        return
    try:
        ec2.terminate_instances(InstanceIds=ids)
    except Exception as e:
        if not gone(e):
            raise
    deadline = time.monotonic() + timeout
    delay = 0.0
    n = 0
    while True:
        n += 1
        pending = [i for i in ids if instance_state(ec2, i)[0] not in ("terminated", "")]
        if not pending:
            return
        if time.monotonic() > deadline:
            raise StepError(f"instance(s) {', '.join(pending)} did not terminate within "
                            f"{timeout:.0f}s")
        if progress:
            progress(f"Waiting for {', '.join(pending)} to terminate (attempt {n})")
        delay = min(max(delay * 1.5, 1.0), 10.0)
        time.sleep(delay)


def delete_security_group(ec2: Any, group_id: str, timeout: float = 300.0,
                          progress: Callable[[str], None] | None = None) -> None:
    """Delete a security group, retrying while instances that use it are still terminating."""
    deadline = time.monotonic() + timeout
    delay = 1.0
    n = 0
    while True:
        n += 1
        try:
            ec2.delete_security_group(GroupId=group_id)
            return
        except Exception as e:
            if gone(e):
                return
            if error_code(e) != "DependencyViolation" or time.monotonic() > deadline:
                raise
        if progress:
            progress(f"Security group {group_id} is still in use; retrying (attempt {n})")
        time.sleep(delay)
        delay = min(delay * 1.5, 10.0)


def live_instances(ec2: Any, filters: list[dict[str, Any]]) -> list[str]:
    states = ["pending", "running", "stopping", "stopped", "shutting-down"]
    res = ec2.describe_instances(
        Filters=filters + [{"Name": "instance-state-name", "Values": states}])
    return [i["InstanceId"] for r in res.get("Reservations", []) for i in r.get("Instances", [])]


# --------------------------------------------------------------------------- reaping


def reap_client(data: dict[str, Any]) -> Any:
    """An EC2 client for a ledger entry: default credential chain, the stored endpoint."""
    import botocore.config

    session = reap_session(data)
    cfg = botocore.config.Config(retries={"max_attempts": 5, "mode": "standard"},
                                 connect_timeout=15, read_timeout=120)
    return session.client("ec2", region_name=data.get("region") or None,
                          endpoint_url=data.get("endpoint") or None, config=cfg)


def reap_session(data: dict[str, Any]) -> Any:
    """The boto3 session for a ledger entry: its profile, credentials file and role."""
    import boto3
    import botocore.session

    core = botocore.session.Session(profile=data.get("profile") or None)
    if data.get("shared_credentials_file"):
        core.set_config_variable("credentials_file", data["shared_credentials_file"])
    session = boto3.session.Session(region_name=data.get("region") or None, botocore_session=core)
    if data.get("role_arn"):
        sts = session.client("sts")
        creds = sts.assume_role(RoleArn=data["role_arn"],
                                RoleSessionName=f"kiln-cleanup-{int(time.time())}")["Credentials"]
        session = boto3.session.Session(
            aws_access_key_id=creds["AccessKeyId"], aws_secret_access_key=creds["SecretAccessKey"],
            aws_session_token=creds["SessionToken"], region_name=data.get("region") or None)
    return session


def reap(entry: Any) -> None:
    """Remove one AWS resource a killed (or kept) run left; declared as the reaper of each aws-* kind in pyproject.toml."""
    data = dict(entry.data or {})
    ec2 = reap_client(data)
    kind = entry.kind
    run_filters = [{"Name": f"tag:{RUN_TAG}", "Values": [entry.run_id]}]
    if entry.build:
        run_filters.append({"Name": f"tag:{BUILD_TAG}", "Values": [entry.build]})
    if kind == "aws-instance":
        ids = [data["instance_id"]] if data.get("instance_id") else live_instances(ec2, run_filters)
        terminate_and_wait(ec2, ids)
    elif kind == "aws-keypair":
        try:
            ec2.delete_key_pair(KeyName=data.get("name") or entry.ident)
        except Exception as e:
            if not gone(e):
                raise
    elif kind == "aws-security-group":
        group_id = data.get("group_id") or (entry.ident if entry.ident.startswith("sg-") else "")
        if not group_id:
            found = ec2.describe_security_groups(
                Filters=[{"Name": "group-name", "Values": [data.get("name") or entry.ident]}]
                + run_filters).get("SecurityGroups") or []
            if not found:
                return
            group_id = found[0]["GroupId"]
        # the instance that uses the group goes first (the ledger lists the group before it)
        users = live_instances(ec2, [{"Name": "instance.group-id", "Values": [group_id]}])
        terminate_and_wait(ec2, users)
        delete_security_group(ec2, group_id)
    elif kind == "aws-image":
        ami = data.get("ami_id") or (entry.ident if entry.ident.startswith("ami-") else "")
        if ami:
            delete_image(ec2, ami)
            return
        found = ec2.describe_images(
            Owners=["self"],
            Filters=[{"Name": "name", "Values": [data.get("name") or entry.ident]}] + run_filters,
        ).get("Images") or []
        for image in found:
            delete_image(ec2, image["ImageId"])
    elif kind == "aws-snapshot":
        delete_snapshot(ec2, data.get("snapshot_id") or entry.ident)
    elif kind == "aws-volume":
        try:
            ec2.delete_volume(VolumeId=data.get("volume_id") or entry.ident)
        except Exception as e:
            if not gone(e):
                raise
    else:
        raise RuntimeError(f"the amazon reaper does not know resources of kind {kind!r}")


__all__ = [
    "AwsAccess", "Cancelled", "Polling", "aws_error", "call", "delete_image", "error_code",
    "filter_list", "gone", "kiln_tags", "reap", "tag_spec", "wait_for",
]
