"""i: the IAM policy of the selected template, one key away."""

from __future__ import annotations

import json

import pytest
from tui_helpers import SIZE, null_builder, ready, select_template, shell, wait_for, write_template

pytestmark = pytest.mark.tui


def amazon_builder(**extra) -> dict:
    b = {"type": "amazon-ebs", "name": "ami", "region": "eu-west-1", "source_ami": "ami-12345678",
         "instance_type": "t3.micro", "ami_name": "kiln-dash", "ssh_username": "ubuntu",
         "ami_regions": ["eu-central-1"]}
    b.update(extra)
    return b


async def test_i_shows_the_selected_amazon_templates_policy_and_why(proj, app_factory):
    write_template(proj / "ami.json", [amazon_builder()], [shell("true")])
    write_template(proj / "local.json", [null_builder("local")], [shell("true")])
    app = app_factory(proj)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, app)
        await select_template(pilot, app, "ami.json")
        await pilot.press("i")
        await wait_for(pilot, lambda: type(app.screen).__name__ == "IamPolicyScreen",
                       what="the IAM policy screen")
        screen = app.screen
        assert "Copy AMI to regions" in screen.explain
        assert "because ami_regions has eu-central-1" in screen.explain
        doc = json.loads(screen.policy)
        actions = {a for s in doc["Statement"] for a in s["Action"]}
        assert "ec2:CopyImage" in actions and "ec2:ImportKeyPair" in actions
        await pilot.press("c")
        assert json.loads(app.clipboard) == doc
        await pilot.press("escape")
        await wait_for(pilot, lambda: type(app.screen).__name__ != "IamPolicyScreen",
                       what="closed")
        # a template without AWS says so, and opens nothing
        await select_template(pilot, app, "local.json")
        await pilot.press("i")
        await pilot.pause(0.3)
        assert type(app.screen).__name__ != "IamPolicyScreen"
