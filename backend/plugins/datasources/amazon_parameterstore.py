"""The ``amazon-parameterstore`` data source: a parameter from AWS Systems Manager.

Outputs ``value``, ``version`` and ``arn``. A ``SecureString`` value is masked in every
output, log and event, like a sensitive variable.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ...sdk.config import opt
from ...sdk.plugin import DataSource
from ..amazon import common as aws
from ..amazon.config import AwsAccessConfig


@dataclass
class ParameterStoreConfig(AwsAccessConfig):
    name: str = opt("", required=True, doc="the parameter's name (or path)")
    with_decryption: bool = opt(False, doc="decrypt a SecureString")


class ParameterStoreDataSource(DataSource):
    Config = ParameterStoreConfig
    outputs = ("value", "version", "arn")

    def __init__(self, config: ParameterStoreConfig):
        self.config = config

    def execute(self, add_secret) -> dict[str, Any]:
        c = self.config
        access = aws.AwsAccess(c, secret=add_secret)
        param = aws.data_lookup(
            access, c.skip_credential_validation, f"reading parameter {c.name}",
            lambda: access.client("ssm").get_parameter(
                Name=c.name, WithDecryption=c.with_decryption)["Parameter"],
            {"ParameterNotFound": lambda: f"there is no parameter {c.name} in {access.region}"},
            action="ssm:GetParameter")
        value = str(param.get("Value", ""))
        if param.get("Type") == "SecureString":
            add_secret(value)
        return {"value": value, "version": int(param.get("Version") or 0),
                "arn": str(param.get("ARN", ""))}
