"""The ``amazon-ami`` data source: the id of the newest AMI that matches filters.

Evaluated when a template is loaded for a build (``kiln build``, the dashboard's
build, a retry's re-read). ``kiln validate`` leaves its outputs unknown unless
``-evaluate-datasources`` is given, so validating never talks to AWS.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ...sdk.config import ConfigProblems, opt
from ...sdk.plugin import DataSource
from ..amazon import common as aws
from ..amazon.config import AwsAccessConfig


@dataclass
class AmazonAmiConfig(AwsAccessConfig):
    filters: dict[str, Any] = opt(default_factory=dict, doc="EC2 DescribeImages filters")
    owners: list[str] = opt(default_factory=list, doc="account ids or aliases (self, amazon...)")
    most_recent: bool = opt(False, doc="pick the newest of several matches")
    include_deprecated: bool = opt(False, doc="also match deprecated AMIs")

    def check(self) -> None:
        problems = []
        if not self.filters and not self.owners:
            problems.append(("filters", "set filters (and owners) to say which AMI to look up"))
        if not self.owners:
            problems.append(("owners", 'owners must name who publishes the AMI (an account id, '
                             '"self" or an alias such as "amazon"), so that an image someone '
                             "else published with the same name is never picked"))
        if self.vault_aws_engine is not None and (self.vault_aws_engine.name
                                                  or self.vault_aws_engine.role_arn):
            problems.append(("vault_aws_engine", "vault_aws_engine is not supported by Kiln; "
                             "pass the credentials in the environment instead"))
        if problems:
            raise ConfigProblems(problems)


class AmazonAmiDataSource(DataSource):
    Config = AmazonAmiConfig
    #: what ``data.amazon-ami.NAME`` offers, as Packer's plugin does
    outputs = ("id", "name", "creation_date", "owner", "owner_name", "tags")

    def __init__(self, config: AmazonAmiConfig):
        self.config = config

    def execute(self, add_secret) -> dict[str, Any]:
        """Look the AMI up; StepError with a message a user can act on when that fails."""
        c = self.config
        access = aws.AwsAccess(c, secret=add_secret)
        image = aws.data_lookup(
            access, c.skip_credential_validation, "looking up the AMI",
            lambda: aws.find_image(access.ec2(), filters=c.filters, owners=c.owners,
                                   most_recent=c.most_recent,
                                   include_deprecated=c.include_deprecated),
            action="ec2:DescribeImages")
        return {
            "id": image.get("ImageId", ""),
            "name": image.get("Name", ""),
            "creation_date": image.get("CreationDate", ""),
            "owner": image.get("OwnerId", ""),
            "owner_name": image.get("ImageOwnerAlias", ""),
            "tags": {t["Key"]: t["Value"] for t in image.get("Tags") or []},
        }

