"""The CDK app that `cdk synth` and `cdk deploy` run (see cdk.json): one stack, checked by cdk-nag."""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Run as a script, this file sees only infra/ on sys.path: add the project (for
# `infra`) and runtime/ (for `chalicelib`, whose names the stack shares).
for _path in (ROOT / "runtime", ROOT):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))
# jsii prints a Node.js end-of-life banner on every run; the CLI's own checks remain.
os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")

import aws_cdk as cdk  # noqa: E402
from aws_cdk import Validations  # noqa: E402
from cdk_nag import AwsSolutionsChecks  # noqa: E402

from infra.stack import JobSchedulerStack  # noqa: E402

DEFAULT_STACK_NAME = "JobScheduler"


def build(app: cdk.App) -> JobSchedulerStack:
    """Add the stack (named by the ``stackName`` context value) and cdk-nag to ``app``."""
    name = app.node.try_get_context("stackName") or DEFAULT_STACK_NAME
    # With credentials the CLI knows the account and region, and the VPC spans
    # every Availability Zone; without, the template is environment-agnostic.
    env = cdk.Environment(account=os.environ.get("CDK_DEFAULT_ACCOUNT"),
                          region=os.environ.get("CDK_DEFAULT_REGION"))
    stack = JobSchedulerStack(app, name, env=env,
                              description="jobscheduler: Docker jobs on EC2 Spot at a chosen time")
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    return stack


def main() -> None:
    """Synthesize the cloud assembly."""
    app = cdk.App()
    build(app)
    app.synth()


if __name__ == "__main__":
    main()
