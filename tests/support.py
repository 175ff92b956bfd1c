"""Test helpers: create the emulated cloud, play the instance, read what happened."""

from __future__ import annotations

import json
import shlex
import time
from collections.abc import Callable
from typing import Any

import boto3

from chalicelib import jobs, store
from chalicelib.bootstrap import decode_user_data
from chalicelib.statuses import TAG_JOB
from jobscheduler.local.cloud import LocalCloud


def create_cloud(stack_tag: str) -> LocalCloud:
    """The stack's resources in whatever emulator is active: the local stack's own recipe."""
    return LocalCloud.create(boto3.session.Session(), stack_tag=stack_tag)


def wait_until(condition: Callable[[], Any], what: str, timeout: float = 30) -> Any:
    """Poll ``condition`` until it returns something true (returned); fail saying ``what`` did not happen."""
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen in {timeout} s")
        time.sleep(0.05)
    return result


def wait_for(job_id: str, statuses: set[str] | frozenset[str], timeout: float = 60) -> dict[str, Any]:
    """Poll the stored job until its status is one of ``statuses``."""
    deadline = time.monotonic() + timeout
    while True:
        job = store.get(job_id)
        if job and job["status"] in statuses:
            return job
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} is {job and job['status']}, expected one of {sorted(statuses)}")
        time.sleep(0.1)


def wait_terminal(job_id: str, timeout: float = 60) -> dict[str, Any]:
    """The job once terminal and its execution no longer running."""
    job = wait_for(job_id, jobs.TERMINAL, timeout)
    sfn = boto3.client("stepfunctions")
    deadline = time.monotonic() + timeout
    while job.get("executionArn") and sfn.describe_execution(executionArn=job["executionArn"])["status"] == "RUNNING":
        if time.monotonic() > deadline:
            raise AssertionError("the execution is still running")
        time.sleep(0.1)
    return store.get(job_id) or job


def states_passed(execution_arn: str) -> list[str]:
    """Names of the states the execution entered, in order."""
    events = boto3.client("stepfunctions").get_execution_history(executionArn=execution_arn, maxResults=1000)["events"]
    return [e["stateEnteredEventDetails"]["name"] for e in events if "stateEnteredEventDetails" in e]


def execution_status(execution_arn: str, settle: float = 5) -> str:
    """RUNNING, SUCCEEDED, FAILED ...; waits up to ``settle`` seconds for a running one to end."""
    sfn = boto3.client("stepfunctions")
    deadline = time.monotonic() + settle
    status = sfn.describe_execution(executionArn=execution_arn)["status"]
    while status == "RUNNING" and time.monotonic() < deadline:
        time.sleep(0.05)
        status = sfn.describe_execution(executionArn=execution_arn)["status"]
    return str(status)


def instances(job_id: str | None = None) -> list[dict[str, Any]]:
    """Every instance in the emulated EC2 (optionally only the job's)."""
    filters = [{"Name": f"tag:{TAG_JOB}", "Values": [job_id]}] if job_id else []
    pages = boto3.client("ec2").describe_instances(Filters=filters)["Reservations"]
    return [i for r in pages for i in r["Instances"]]


def live_instances() -> list[dict[str, Any]]:
    """Instances pending or running: after any test, there must be none."""
    return [i for i in instances() if i["State"]["Name"] in ("pending", "running")]


def user_data(instance_id: str) -> str:
    """The script the instance booted with."""
    attr = boto3.client("ec2").describe_instance_attribute(InstanceId=instance_id, Attribute="userData")
    return decode_user_data(attr["UserData"]["Value"])


def rendered_value(script: str, name: str) -> str:
    """The value of a ``NAME=...`` assignment in the rendered header."""
    for line in script.splitlines():
        if line.startswith(f"{name}="):
            return shlex.split(line.partition("=")[2])[0]
    raise KeyError(name)


class Instance:
    """Plays the job's instance against the in-process API: reads its user data, calls back."""

    def __init__(self, client: Any, job_id: str, timeout: float = 60, previous: str | None = None) -> None:
        job = wait_for(job_id, {jobs.RUNNING, jobs.REQUESTED, jobs.INTERRUPTED}, timeout)
        deadline = time.monotonic() + timeout
        while not job.get("instanceId") or job["instanceId"] == previous:
            if time.monotonic() > deadline:
                raise AssertionError("no instance was recorded")
            time.sleep(0.05)
            job = store.get(job_id) or job
        self.client, self.job_id, self.instance_id = client, job_id, job["instanceId"]
        self.script = user_data(self.instance_id)
        self.secret = rendered_value(self.script, "JS_CALLBACK_SECRET")

    def callback(self, exit_code: int, secret: str | None = None, **extra: Any) -> Any:
        """POST the callback as the bootstrap does."""
        body = {"status": "FinishedOK" if exit_code == 0 else "FinishedNOK", "exitCode": exit_code,
                "instanceId": self.instance_id, **extra}
        headers = {"Content-Type": "application/json",
                   "Authorization": f"Bearer {self.secret if secret is None else secret}"}
        return self.client.http.post(f"/jobs/{self.job_id}/callback", headers=headers, body=json.dumps(body))


def post_job(client: Any, body: Any, headers: dict[str, str] | None = None) -> Any:
    """POST /jobs with a JSON body."""
    raw = body if isinstance(body, str | bytes) else json.dumps(body)
    return client.http.post("/jobs", headers={"Content-Type": "application/json", **(headers or {})}, body=raw)
