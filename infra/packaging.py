"""The Chalice app inside the CDK stack: packaging it cleanly, and reading what it packaged.

``chalice.cdk.Chalice`` runs ``chalice package`` and includes the SAM template
it writes. Three of its habits need a fence: it writes under the working
directory, it copies the stage's environment variables into ``os.environ``
(:func:`isolated` keeps both away from this process), and it gives every
function the Lambda runtime of the Python it runs under (:func:`pin_runtime`).
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any, cast

import aws_cdk as cdk
import jsii
from aws_cdk import aws_events as events
from chalice.cdk import Chalice

# The Lambda runtimes the stack may deploy: both on Amazon Linux 2023, and open
# for function creation until 2028 (python3.12) and 2029 (python3.13) in AWS's
# runtime deprecation table. python3.11 and older run on Amazon Linux 2.
SUPPORTED_LAMBDA_RUNTIMES = ("python3.12", "python3.13")
DEFAULT_LAMBDA_RUNTIME = "python3.13"


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


def pin_runtime(api: Chalice, runtime: str, source_dir: Path) -> None:
    """Give every function ``runtime``, whatever Python packaged the app.

    Chalice builds third-party dependencies for the Python that runs it, so
    the app may list none unless that Python is the runtime's own version.
    """
    if runtime not in SUPPORTED_LAMBDA_RUNTIMES:
        raise ValueError(f"Lambda runtime {runtime!r} is not one of {', '.join(SUPPORTED_LAMBDA_RUNTIMES)}")
    local = f"python{sys.version_info.major}.{sys.version_info.minor}"
    built = [r for r in requirements(source_dir) if not _pure_python(r)]
    if local != runtime and built:
        raise ValueError(f"{source_dir / 'requirements.txt'} lists {', '.join(built)}, which chalice builds for "
                         f"{local}; synthesise with "
                         f"the runtime's Python ({runtime}), or use pure-Python packages (any Python runs those)")
    for function in sam_resources(api, "AWS::Serverless::Function"):
        function.add_property_override("Runtime", runtime)


def requirements(source_dir: Path) -> list[str]:
    """The requirements the app's ``requirements.txt`` lists (comments and blank lines left out)."""
    listed = source_dir / "requirements.txt"
    lines = listed.read_text().splitlines() if listed.exists() else []
    return [r for r in (line.split("#", 1)[0].strip() for line in lines) if r]


def distribution_name(requirement: str) -> str:
    """The distribution a requirement line names (``fastjsonschema>=2.21,<3`` -> ``fastjsonschema``)."""
    return re.split(r"[\s<>=!~;\[]", requirement, maxsplit=1)[0]


def _pure_python(requirement: str) -> bool:
    """Whether the installed distribution a requirement names is pure Python (its wheel runs on any Python)."""
    try:
        wheel = metadata.distribution(distribution_name(requirement)).read_text("WHEEL") or ""
    except metadata.PackageNotFoundError:
        return False
    return "Root-Is-Purelib: true" in wheel

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

    def __init__(self, arn: str, *, dead_letter_queue_arn: str, retry_attempts: int,
                 max_event_age: cdk.Duration) -> None:
        self.arn = arn
        self.dead_letter_queue_arn = dead_letter_queue_arn
        self.retry_attempts = retry_attempts
        self.max_event_age = max_event_age

    def bind(self, rule: Any, id: str | None = None) -> events.RuleTargetConfig:
        """The target's ARN; events EventBridge could not deliver go to the dead-letter queue."""
        return events.RuleTargetConfig(
            arn=self.arn,
            dead_letter_config=events.CfnRule.DeadLetterConfigProperty(arn=self.dead_letter_queue_arn),
            retry_policy=events.CfnRule.RetryPolicyProperty(
                maximum_retry_attempts=self.retry_attempts,
                maximum_event_age_in_seconds=int(self.max_event_age.to_seconds())))
