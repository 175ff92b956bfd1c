"""The deployed system in a real AWS account: ``make test-aws`` (never part of ``make test`` or CI).

Deploys a stack of its own (a unique name) with the project's pinned CDK CLI,
runs a job that succeeds, one that fails, one cancelled while it runs and one
whose Spot instance AWS FIS interrupts, checks how each ends and that no
instance of the stack is left, then destroys the stack, on failure too. It
needs credentials for an account whose region is CDK-bootstrapped. See the
README's Deploy section for its cost and duration.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from chalicelib.statuses import TAG_STACK
from jobscheduler.client import TERMINAL, Client

ROOT = Path(__file__).resolve().parents[2]
INPUT = ROOT / "input"
# A Spot instance boots, pulls and runs in a few minutes; a deploy or destroy takes longer.
JOB_MINUTES = 15
CDK_MINUTES = 40


@dataclass
class Deployed:
    """The throwaway stack: its name, outputs and an API client."""

    name: str
    outputs: dict[str, str]
    api: Client

    def run(self, body: dict[str, Any], until: Callable[[dict[str, Any]], bool] = lambda job: job["status"] in TERMINAL,
            minutes: float = JOB_MINUTES) -> dict[str, Any]:
        """Schedule ``body`` now and poll the job until ``until`` holds."""
        return self.wait(self.api.schedule(body)["jobId"], until, minutes)

    def wait(self, job_id: str, until: Callable[[dict[str, Any]], bool] = lambda job: job["status"] in TERMINAL,
             minutes: float = JOB_MINUTES) -> dict[str, Any]:
        """Poll the job every 10 s until ``until`` holds."""
        deadline = time.monotonic() + minutes * 60
        while not until(job := self.api.get(job_id)):
            assert time.monotonic() < deadline, f"job {job_id} is still {job['status']}: {job.get('statusReason')}"
            time.sleep(10)
        return job

    def live_instances(self) -> list[str]:
        """Instances of this stack that are not terminated or terminating."""
        pages = boto3.client("ec2").get_paginator("describe_instances").paginate(Filters=[
            {"Name": f"tag:{TAG_STACK}", "Values": [self.name]},
            {"Name": "instance-state-name", "Values": ["pending", "running", "stopping", "stopped"]}])
        return [i["InstanceId"] for page in pages for r in page["Reservations"] for i in r["Instances"]]

    def assert_no_instance_left(self) -> None:
        """Every instance of the stack is gone (termination is asynchronous: allow a minute)."""
        deadline = time.monotonic() + 60
        while (left := self.live_instances()) and time.monotonic() < deadline:
            time.sleep(5)
        assert left == [], f"instances left running: {left}"


def cdk(*args: str) -> None:
    """The pinned CDK CLI (package.json) on this project's app."""
    env = {**os.environ, "JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION": "1"}
    subprocess.run(["npx", "--no-install", "cdk", *args], cwd=ROOT, env=env, check=True, timeout=CDK_MINUTES * 60)


@pytest.fixture(scope="session")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployed]:
    """Deploy a uniquely named stack; destroy it (and its retained job table) whatever happens."""
    if boto3.session.Session().get_credentials() is None:
        pytest.fail("make test-aws needs AWS credentials (a profile, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)")
    name = f"JobSchedulerLive{uuid.uuid4().hex[:8]}"
    outputs_file = tmp_path_factory.mktemp("cdk") / "outputs.json"
    # API Gateway's logging role is one per region: make one only if the account has none.
    has_log_role = bool(boto3.client("apigateway").get_account().get("cloudwatchRoleArn"))
    context = ["-c", f"stackName={name}", "-c", f"apiGatewayLogRole={str(not has_log_role).lower()}"]
    try:
        cdk("deploy", name, *context, "--require-approval", "never", "--outputs-file", str(outputs_file))
        outputs = json.loads(outputs_file.read_text())[name]
        yield Deployed(name, outputs, Client.connect(api=outputs["ApiUrl"]))
    finally:
        try:
            cdk("destroy", name, *context, "--force")
        finally:
            _delete_retained_table(name)


def _delete_retained_table(stack_name: str) -> None:
    # The job table outlives `cdk destroy` by design (RETAIN); a test stack's must not.
    ddb = boto3.client("dynamodb")
    for page in ddb.get_paginator("list_tables").paginate():
        for table in page["TableNames"]:
            if table.startswith(f"{stack_name}-"):
                ddb.delete_table(TableName=table)


def example(name: str) -> dict[str, Any]:
    """An ``input/`` body, due now."""
    body = json.loads((INPUT / name).read_text())
    body.pop("scheduledAt", None)
    return dict(body)


def test_aws_hello_world_ends_terminated_ok(deployed: Deployed) -> None:
    """input/hello-world.json runs on Spot, calls back 0, and its instance is terminated."""
    job = deployed.run(example("hello-world.json"))
    assert (job["status"], job["exitCode"]) == ("TerminatedOK", 0), job
    assert job["attempts"] and job["attempts"][-1]["instanceId"].startswith("i-")
    deployed.assert_no_instance_left()


def test_aws_failing_command_ends_terminated_nok(deployed: Deployed) -> None:
    """input/failing-command.json exits 3: TerminatedNOK with exit code 3."""
    job = deployed.run(example("failing-command.json"))
    assert (job["status"], job["exitCode"]) == ("TerminatedNOK", 3), job
    deployed.assert_no_instance_left()


def test_aws_cancel_while_running_terminates_the_instance(deployed: Deployed) -> None:
    """A job cancelled while its container runs ends Cancelled, its instance gone."""
    body = {"name": "cancelled while running", "image": "busybox:1.36", "command": ["sleep", "900"],
            "maxRuntimeSeconds": 1200}
    job = deployed.run(body, until=lambda job: job["status"] == "Running")
    deployed.api.cancel(job["jobId"])
    assert deployed.wait(job["jobId"])["status"] == "Cancelled"
    deployed.assert_no_instance_left()


def test_aws_spot_interruption_moves_the_job_to_a_new_instance(deployed: Deployed) -> None:
    """AWS FIS sends the two-minute warning: the attempt ends Preempted and a second instance finishes the job."""
    body = {"name": "interrupted by FIS", "image": "busybox:1.36", "command": ["sleep", "240"],
            "maxRuntimeSeconds": 900, "maxAttempts": 3}
    job = deployed.run(body, until=lambda job: job["status"] == "Running")
    with fis_interruption(job["instanceId"]):
        done = deployed.wait(job["jobId"])
    assert done["status"] == "TerminatedOK", done
    outcomes = [attempt.get("outcome") for attempt in done["attempts"]]
    assert outcomes[0] == "Preempted" and len(outcomes) >= 2, done["attempts"]
    deployed.assert_no_instance_left()


class fis_interruption:  # noqa: N801 - used as a context manager, like contextlib's
    """An AWS FIS experiment sending a Spot interruption to one instance; its role and template removed after."""

    def __init__(self, instance_id: str) -> None:
        self.instance_id = instance_id
        self.iam, self.fis = boto3.client("iam"), boto3.client("fis")
        self.role = f"jobscheduler-live-fis-{uuid.uuid4().hex[:8]}"
        self.template_id = ""

    def __enter__(self) -> fis_interruption:
        region = boto3.session.Session().region_name
        account = boto3.client("sts").get_caller_identity()["Account"]
        role_arn = self.iam.create_role(RoleName=self.role, AssumeRolePolicyDocument=json.dumps({
            "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                    "Principal": {"Service": "fis.amazonaws.com"}}]}))["Role"]["Arn"]
        instance_arn = f"arn:aws:ec2:{region}:{account}:instance/{self.instance_id}"
        self.iam.put_role_policy(RoleName=self.role, PolicyName="interrupt", PolicyDocument=json.dumps({
            "Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Action": "ec2:SendSpotInstanceInterruptions", "Resource": instance_arn},
                {"Effect": "Allow", "Action": "ec2:DescribeInstances", "Resource": "*"}]}))
        self.template_id = self._create_template(role_arn, instance_arn)
        self.fis.start_experiment(experimentTemplateId=self.template_id, clientToken=uuid.uuid4().hex)
        return self

    def _create_template(self, role_arn: str, instance_arn: str) -> str:
        # A new role takes a few seconds to be usable by FIS.
        deadline = time.monotonic() + 120
        while True:
            try:
                return str(self.fis.create_experiment_template(
                    clientToken=uuid.uuid4().hex, description="jobscheduler live test", roleArn=role_arn,
                    stopConditions=[{"source": "none"}],
                    targets={"instance": {"resourceType": "aws:ec2:spot-instance", "resourceArns": [instance_arn],
                                          "selectionMode": "ALL"}},
                    actions={"interrupt": {"actionId": "aws:ec2:send-spot-instance-interruptions",
                                           "parameters": {"durationBeforeInterruption": "PT2M"},
                                           "targets": {"SpotInstances": "instance"}}})["experimentTemplate"]["id"])
            except ClientError as exc:
                if exc.response["Error"]["Code"] != "ValidationException" or time.monotonic() > deadline:
                    raise
                time.sleep(10)

    def __exit__(self, *exc: object) -> None:
        if self.template_id:
            self.fis.delete_experiment_template(id=self.template_id)
        self.iam.delete_role_policy(RoleName=self.role, PolicyName="interrupt")
        self.iam.delete_role(RoleName=self.role)
