"""The runtime and the real workflow in moto, in this process: for counting, not for timing.

Used where a benchmark needs to reach into the emulated AWS (inject "no Spot
capacity" into moto's EC2 backend, count the calls a handler makes) or where
only counts matter (state transitions do not depend on speed). The resources
come from ``LocalCloud.create``, the same code the local stack uses.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import boto3

from bench.common import REPO, TERMINAL

# Fast timing: the paths (and so the transitions) are the same, only the waits are shorter.
FAST = {"POLL_SECONDS": "1", "BACKOFF_SECONDS": "1", "STOP_GRACE_SECONDS": "1"}
_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
                "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1"}


@dataclass
class Emulated:
    """moto with the stack's resources, the runtime's modules, and the API as a test client."""

    cloud: Any  # jobscheduler.local.cloud.LocalCloud
    client: Any  # chalice.test.Client
    app: ModuleType

    def module(self, name: str) -> ModuleType:
        """A runtime module by its Lambda name (``chalicelib.store`` ...)."""
        from jobscheduler.local import runtime

        return runtime.module(name)

    def schedule(self, body: dict[str, Any]) -> dict[str, Any]:
        """``POST /jobs`` through the app."""
        response = self.client.http.post("/jobs", headers={"Content-Type": "application/json"},
                                         body=json.dumps(body))
        if response.status_code != 201:
            raise RuntimeError(f"POST /jobs answered {response.status_code}: {response.body!r}")
        return dict(response.json_body)

    def job(self, job_id: str) -> dict[str, Any]:
        """The stored job."""
        found = self.module("chalicelib.store").get(job_id)
        if found is None:
            raise KeyError(job_id)
        return dict(found)

    def wait_for(self, job_id: str, done: Any, timeout: float = 60) -> dict[str, Any]:
        """Poll the stored job until ``done(job)``."""
        deadline = time.monotonic() + timeout
        while not done(job := self.job(job_id)):
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} is still {job['status']} after {timeout} s")
            time.sleep(0.05)
        return job

    def wait_ended(self, job_id: str, timeout: float = 60) -> dict[str, Any]:
        """The job once terminal and its execution no longer running."""
        job = self.wait_for(job_id, lambda j: j["status"] in TERMINAL, timeout)
        sfn, deadline = boto3.client("stepfunctions"), time.monotonic() + timeout
        while sfn.describe_execution(executionArn=job["executionArn"])["status"] == "RUNNING":
            if time.monotonic() > deadline:
                raise TimeoutError(f"the execution of {job_id} is still running")
            time.sleep(0.05)
        return self.job(job_id)

    def callback(self, job: dict[str, Any], exit_code: int) -> None:
        """What the bootstrap posts when the container exits."""
        body = {"status": "FinishedOK" if exit_code == 0 else "FinishedNOK", "exitCode": exit_code,
                "instanceId": job["instanceId"]}
        headers = {"Content-Type": "application/json",
                   "Authorization": f"Bearer {callback_secret(job['instanceId'])}"}
        response = self.client.http.post(f"/jobs/{job['jobId']}/callback", headers=headers, body=json.dumps(body))
        if response.status_code != 202:
            raise RuntimeError(f"callback answered {response.status_code}: {response.body!r}")


def callback_secret(instance_id: str) -> str:
    """The job's callback secret, read from the user data the instance booted with."""
    attribute = boto3.client("ec2").describe_instance_attribute(InstanceId=instance_id, Attribute="userData")
    from jobscheduler.local import runtime

    script = str(runtime.module("chalicelib.bootstrap").decode_user_data(attribute["UserData"]["Value"]))
    line = next(line for line in script.splitlines() if line.startswith("JS_CALLBACK_SECRET="))
    return shlex.split(line.partition("=")[2])[0]


@contextmanager
def emulated(extra_env: dict[str, str] | None = None) -> Iterator[Emulated]:
    """moto executing the real workflow, the stack's resources, the app; the environment restored after."""
    for path in (str(REPO / "runtime"), str(REPO)):
        if path not in sys.path:
            sys.path.insert(0, path)
    from chalice.test import Client
    from moto import mock_aws

    from jobscheduler.local import api, cloud, moto_parity, runtime

    saved = dict(os.environ)
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_SESSION_TOKEN"):
        os.environ.pop(name, None)
    os.environ.update(_CREDENTIALS)
    moto_parity.apply()
    import logging

    logging.getLogger("moto.stepfunctions.parser").setLevel(logging.CRITICAL)
    try:
        with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
            runtime.module("chalicelib.aws").reset()
            resources = cloud.LocalCloud.create(boto3.session.Session())
            os.environ.update(resources.runtime_environment("http://127.0.0.1:9"))
            os.environ.update(FAST)
            os.environ.update(extra_env or {})
            app = runtime.app_module()
            api.quiet_iam_authorizer_warning()  # the bench's figures, not chalice's local-mode notice
            with Client(app.app) as client:
                yield Emulated(resources, client, app)
            runtime.module("chalicelib.aws").reset()
    finally:
        os.environ.clear()
        os.environ.update(saved)


@contextmanager
def counting_calls(*clients: Any) -> Iterator[Counter[str]]:
    """Count the AWS operations these boto3 clients make (``dynamodb.Query`` ...)."""
    calls: Counter[str] = Counter()
    handlers = []
    for client in clients:
        service = client.meta.service_model.service_name

        def count(model: Any, service: str = service, **kwargs: Any) -> None:
            calls[f"{service}.{model.name}"] += 1

        client.meta.events.register("before-call.*.*", count)
        handlers.append((client, count))
    try:
        yield calls
    finally:
        for client, handler in handlers:
            client.meta.events.unregister("before-call.*.*", handler)


@contextmanager
def without_spot_capacity(rounds: int) -> Iterator[dict[str, int]]:
    """moto's CreateFleet finds no Spot capacity for the next ``rounds`` requests (as tests/faults.py does)."""
    from moto.ec2.models.fleets import Fleet

    original = Fleet.create_spot_requests
    state = {"left": rounds, "refused": 0}

    def maybe_none(fleet: Any, weight_to_add: Any) -> Any:
        if state["left"] > 0:
            state["left"] -= 1
            state["refused"] += 1
            return []
        return original(fleet, weight_to_add)

    Fleet.create_spot_requests = maybe_none  # type: ignore[method-assign, assignment]
    try:
        yield state
    finally:
        Fleet.create_spot_requests = original  # type: ignore[method-assign]
