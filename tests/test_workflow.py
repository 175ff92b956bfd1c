"""Each path of the job workflow, run for real by moto from the one ASL file."""

from __future__ import annotations

import json

import boto3
import pytest

from chalicelib import jobs
from tests.support import (
    Instance,
    execution_status,
    instances,
    live_instances,
    post_job,
    states_passed,
    wait_for,
    wait_terminal,
)

HELLO = {"image": "hello-world:latest", "maxRuntimeSeconds": 60}
HAPPY_PATH = ["WaitUntilScheduled", "MarkRequested", "RequestCapacity", "GotInstance?", "RecordInstance",
              "CheckInstance", "InstanceRunning?", "RunJob", "TerminateInstance", "MarkDone"]


def schedule(api, body=HELLO) -> dict:
    response = post_job(api, body)
    assert response.status_code == 201, response.body
    return response.json_body


def test_happy_path_terminates_ok(api):
    """A job whose container exits 0 ends TerminatedOK, its instance terminated."""
    job = schedule(api)
    instance = Instance(api, job["jobId"])
    wait_for(job["jobId"], {jobs.RUNNING})
    assert instance.callback(0).status_code == 202
    done = wait_terminal(job["jobId"])
    assert (done["status"], done["exitCode"]) == (jobs.TERMINATED_OK, 0)
    assert states_passed(done["executionArn"]) == HAPPY_PATH
    assert execution_status(done["executionArn"]) == "SUCCEEDED"
    assert [i["State"]["Name"] for i in instances(job["jobId"])] == ["terminated"]
    (attempt,) = done["attempts"]
    assert attempt["instanceId"] == instance.instance_id
    assert attempt["lifecycle"] == "spot" and attempt["outcome"] == jobs.TERMINATED_OK
    assert attempt["instanceType"] in HELLO.get("instanceTypes", attempt["instanceType"])


def test_nonzero_exit_terminates_nok(api):
    """A container exiting 3 ends TerminatedNOK with exit code 3."""
    job = schedule(api)
    Instance(api, job["jobId"]).callback(3)
    done = wait_terminal(job["jobId"])
    assert (done["status"], done["exitCode"]) == (jobs.TERMINATED_NOK, 3)
    assert live_instances() == []


def test_instance_launch_is_tagged_and_spread(api, aws):
    """The fleet asks for every instance type in every subnet and tags the instance with job and stack."""
    job = schedule(api, {**HELLO, "instanceTypes": ["m6i.large", "m5.large"]})
    instance = Instance(api, job["jobId"])
    (described,) = instances(job["jobId"])
    tags = {t["Key"]: t["Value"] for t in described["Tags"]}
    assert tags["jobscheduler:job"] == job["jobId"] and tags["jobscheduler:stack"] == aws.stack_tag
    assert described["InstanceLifecycle"] == "spot"
    assert described["InstanceType"] in ("m6i.large", "m5.large")
    history = boto3.client("stepfunctions").get_execution_history(executionArn=job["executionArn"])["events"]
    (fleet_input,) = [e for e in history if e.get("stateEnteredEventDetails", {}).get("name") == "RequestCapacity"]
    overrides = json.loads(fleet_input["stateEnteredEventDetails"]["input"])["overrides"]
    assert sorted((o["InstanceType"], o["SubnetId"]) for o in overrides) == sorted(
        (t, s) for t in ("m6i.large", "m5.large") for s in aws.subnet_ids)
    instance.callback(0)
    wait_terminal(job["jobId"])


def test_max_runtime_without_callback_times_out(api):
    """No callback within maxRuntimeSeconds: TimedOut, instance terminated."""
    job = schedule(api, {**HELLO, "maxRuntimeSeconds": 2})
    done = wait_terminal(job["jobId"], timeout=30)
    assert done["status"] == jobs.TIMED_OUT
    assert "maxRuntimeSeconds" in done["statusReason"]
    assert "MaxRuntimeReached" in states_passed(done["executionArn"])
    assert [i["State"]["Name"] for i in instances(job["jobId"])] == ["terminated"]


def test_callback_before_running_is_kept(api):
    """A quick container calling back before the workflow saw it running still ends TerminatedOK."""
    job = schedule(api)
    instance = Instance(api, job["jobId"])
    instance.callback(0)
    done = wait_terminal(job["jobId"])
    assert (done["status"], done["exitCode"]) == (jobs.TERMINATED_OK, 0)
    assert live_instances() == []


@pytest.fixture
def no_capacity(aws):
    """moto's CreateFleet answers like AWS without Spot capacity: no instance, an error entry."""
    from moto.ec2.models import ec2_backends
    from moto.ec2.models.fleets import Fleet

    original = Fleet.create_spot_requests

    def none_available(self, weight_to_add):
        return []

    Fleet.create_spot_requests = none_available
    assert ec2_backends  # the backend module is loaded; the fleet class is what we wrap
    yield
    Fleet.create_spot_requests = original


def test_no_capacity_retries_then_fails(api, no_capacity):
    """No Spot capacity: the workflow backs off and asks again, then fails the job; no instance exists."""
    job = schedule(api)
    done = wait_terminal(job["jobId"], timeout=30)
    assert done["status"] == jobs.FAILED
    assert "no capacity" in done["statusReason"]
    passed = states_passed(done["executionArn"])
    assert passed.count("RequestCapacity") == 3
    assert passed.count("BackOff") == 2
    assert instances() == []


def test_callback_the_instant_the_token_is_stored_completes_the_run(api):
    """A callback landing right after RunJob stored its token (before the wait begins) still ends the run."""
    from moto.dynamodb.models import DynamoDBBackend

    from tests.faults import injected, update_of

    job = schedule(api)
    stores_token = update_of("taskToken")
    original = DynamoDBBackend.update_item
    sent = []

    def update_then_call_back(backend, *args, **kwargs):
        item = original(backend, *args, **kwargs)
        if stores_token(*args, **kwargs) and not sent:
            sent.append(Instance(api, job["jobId"]).callback(0).status_code)
        return item

    with injected() as faults:
        DynamoDBBackend.update_item = update_then_call_back
        faults._undo.append(lambda: setattr(DynamoDBBackend, "update_item", original))
        done = wait_terminal(job["jobId"])
    assert sent == [202]
    assert done["status"] == jobs.TERMINATED_OK
    assert states_passed(done["executionArn"])[-3:] == ["RunJob", "TerminateInstance", "MarkDone"]
