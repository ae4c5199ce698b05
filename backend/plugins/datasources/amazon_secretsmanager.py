"""The ``amazon-secretsmanager`` data source: a secret from AWS Secrets Manager.

Outputs ``value`` (the whole secret string, or with ``key`` the value of that key of a
JSON secret), ``secret_string``, ``secret_binary`` and ``version_id``. Every value read
is masked in every output, log and event.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

from ...sdk.config import opt
from ...sdk.plugin import DataSource, StepError
from ..amazon import common as aws
from ..amazon.config import AwsAccessConfig


@dataclass
class SecretsManagerConfig(AwsAccessConfig):
    name: str = opt("", required=True, doc="the secret's name or ARN")
    key: str = opt("", doc="of a JSON secret, the key whose value is `value`")
    version_id: str = opt("", doc="a version of the secret (default: the current one)")
    version_stage: str = opt("", doc="a staging label (default AWSCURRENT)")


class SecretsManagerDataSource(DataSource):
    Config = SecretsManagerConfig
    outputs = ("value", "secret_string", "secret_binary", "version_id")

    def __init__(self, config: SecretsManagerConfig):
        self.config = config

    def execute(self, add_secret) -> dict[str, Any]:
        c = self.config
        access = aws.AwsAccess(c, secret=add_secret)
        params: dict[str, Any] = {"SecretId": c.name}
        if c.version_id:
            params["VersionId"] = c.version_id
        if c.version_stage or not c.version_id:
            params["VersionStage"] = c.version_stage or "AWSCURRENT"
        secret = aws.data_lookup(
            access, c.skip_credential_validation, f"reading secret {c.name}",
            lambda: access.client("secretsmanager").get_secret_value(**params),
            action="secretsmanager:GetSecretValue")
        text = secret.get("SecretString") or ""
        binary = secret.get("SecretBinary") or b""
        binary_text = base64.b64encode(binary).decode() if binary else ""
        for v in (text, binary_text):
            add_secret(v)
        value = text
        if c.key:
            try:
                fields = json.loads(text)
            except ValueError:
                fields = None
            if not isinstance(fields, dict):
                raise StepError(f"secret {c.name} is not a JSON object, so it has no key "
                                f'"{c.key}"')
            if c.key not in fields:
                raise StepError(f'secret {c.name} has no key "{c.key}" (it has: '
                                f"{', '.join(sorted(fields))})")
            value = fields[c.key] if isinstance(fields[c.key], str) else json.dumps(fields[c.key])
            add_secret(value)
        return {"value": value, "secret_string": text, "secret_binary": binary_text,
                "version_id": str(secret.get("VersionId", ""))}
