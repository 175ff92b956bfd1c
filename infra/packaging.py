"""The Chalice app inside the CDK stack: packaging it cleanly, and reading what it packaged.

``chalice.cdk.Chalice`` runs ``chalice package`` and includes the SAM template
it writes. Two of its habits need a fence: it writes under the working
directory, and it copies the stage's environment variables into
``os.environ``. :func:`isolated` keeps both away from this process.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import aws_cdk as cdk
import jsii
from aws_cdk import aws_events as events
from chalice.cdk import Chalice


@contextlib.contextmanager
def isolated(outdir: Path, region: str) -> Iterator[None]:
    """Package inside the cloud assembly directory, with a region, and restore the environment after."""
    saved = dict(os.environ)
    if cdk.Token.is_unresolved(region):
        region = os.environ.get("CDK_DEFAULT_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    os.environ["AWS_DEFAULT_REGION"] = region  # chalice needs one even though nothing is called
    outdir.mkdir(parents=True, exist_ok=True)
    try:
        with contextlib.chdir(outdir):
            yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def sam_resources(api: Chalice, resource_type: str) -> list[cdk.CfnResource]:
    """The resources of one type in the template ``chalice package`` produced."""
    return [cast(cdk.CfnResource, c) for c in api.sam_template.node.children
            if cdk.CfnResource.is_cfn_resource(c) and cast(cdk.CfnResource, c).cfn_resource_type == resource_type]


@jsii.implements(events.IRuleTarget)
class FunctionTarget:
    """A function that Chalice packaged into this stack, as an EventBridge rule target.

    ``targets.LambdaFunction`` would need it imported by ARN, and then warns
    that it cannot tell the function's environment; the stack grants the
    invoke permission next to the rule instead.
    """

    def __init__(self, arn: str) -> None:
        self.arn = arn

    def bind(self, rule: Any, id: str | None = None) -> events.RuleTargetConfig:
        """The target's ARN."""
        return events.RuleTargetConfig(arn=self.arn)
