"""Each path of the job workflow, run for real by moto from the one ASL file."""

from __future__ import annotations

import json

import boto3
import pytest

from chalicelib import config, jobs, statuses
from tests.faults import FLEET_ERRORS, NO_SPOT_CAPACITY, NOT_VISIBLE_YET, injected
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
HAPPY_PATH = ["WaitUntilScheduled", "MarkRequested", "CreateLaunchTemplateVersion", "RequestCapacity",
              "DeleteLaunchTemplateVersion", "GotInstance?", "RecordInstance", "CheckInstance", "InstanceState?",
              "RunJob", "TerminateInstance", "MarkDone"]


def schedule(api, body=HELLO) -> dict:
    response = post_job(api, body)
    assert response.status_code == 201, response.body
    return response.json_body


def template_versions(aws) -> dict[int, str]:
    """The stack launch template's versions: number -> description."""
    versions = boto3.client("ec2").describe_launch_template_versions(
        LaunchTemplateId=aws.launch_template_id)["LaunchTemplateVersions"]
    return {v["VersionNumber"]: v.get("VersionDescription", "") for v in versions}


def scheduled_tasks(execution_arn: str, state: str) -> list[dict]:
    """Each task the state scheduled (parameters, time limits), as Step Functions recorded it."""
    events = boto3.client("stepfunctions").get_execution_history(
        executionArn=execution_arn, maxResults=1000)["events"]
    entered = False
    tasks = []
    for event in events:
        if "stateEnteredEventDetails" in event:
            entered = event["stateEnteredEventDetails"]["name"] == state
        elif entered and "taskScheduledEventDetails" in event:
            tasks.append(event["taskScheduledEventDetails"])
    return tasks


def task_calls(execution_arn: str, state: str) -> list[dict]:
    """The parameters of each AWS call the state made."""
    return [json.loads(task["parameters"]) for task in scheduled_tasks(execution_arn, state)]


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
    # HELLO names no instance types: the job asked for the stack's defaults, and got one of them.
    assert done["instanceTypes"] == config.default_instance_types()
    assert attempt["instanceType"] in done["instanceTypes"]


def test_user_data_comes_from_a_launch_template_version_deleted_after_the_request(api, aws):
    """The job's user data reaches its instance through a launch template version made for the request
    (the stack's version plus the user data, described by the job id) and deleted once it is answered;
    CreateFleet names that version and nothing younger than a year of the EC2 API."""
    job = schedule(api)
    instance = Instance(api, job["jobId"])
    assert instance.script.startswith("#!") and instance.secret  # the job's own rendered bootstrap
    instance.callback(0)
    done = wait_terminal(job["jobId"])
    assert done["status"] == jobs.TERMINATED_OK
    (created,) = task_calls(done["executionArn"], "CreateLaunchTemplateVersion")
    assert created["LaunchTemplateId"] == aws.launch_template_id and created["SourceVersion"] == "1"
    assert created["VersionDescription"] == job["jobId"] and created["LaunchTemplateData"]["UserData"]
    (fleet,) = task_calls(done["executionArn"], "RequestCapacity")
    (spec,) = [c["LaunchTemplateSpecification"] for c in fleet["LaunchTemplateConfigs"]]
    assert spec == {"LaunchTemplateId": aws.launch_template_id, "Version": "2"}
    (deleted,) = task_calls(done["executionArn"], "DeleteLaunchTemplateVersion")
    assert deleted == {"LaunchTemplateId": aws.launch_template_id, "Versions": ["2"]}
    assert template_versions(aws) == {1: ""}  # only the stack's own version is left


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
    assert tags[statuses.TAG_JOB] == job["jobId"] and tags[statuses.TAG_STACK] == aws.stack_tag
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


def test_no_capacity_retries_then_fails(api):
    """No Spot capacity: the workflow backs off and asks again, then fails the job; no instance exists."""
    with injected() as faults:
        faults.no_spot_capacity()
        job = schedule(api)
        done = wait_terminal(job["jobId"], timeout=30)
    assert faults.calls == {NO_SPOT_CAPACITY: 3}  # each of the three requests met the empty pools
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


# --- launch errors: an instant fleet reports them in Errors ----------------------------------------------


def test_launch_error_fails_the_job_at_once_with_its_code_and_message(api, aws):
    """CreateFleet answers an error that is not about capacity (a bad parameter, a missing permission,
    a broken launch template): the job fails at once, saying what EC2 said; no retry, no instance."""
    with injected() as faults:
        faults.fleet_errors(("InvalidParameterValue", "The launch template's AMI is not available"))
        job = schedule(api)
        done = wait_terminal(job["jobId"], timeout=30)
    assert done["status"] == jobs.FAILED
    assert done["statusReason"] == ("EC2 refused the launch: InvalidParameterValue: "
                                    "The launch template's AMI is not available")
    passed = states_passed(done["executionArn"])
    assert passed.count("RequestCapacity") == 1 and "LaunchRefused" in passed and "BackOff" not in passed
    assert instances() == [] and template_versions(aws) == {1: ""}


@pytest.mark.parametrize("errors", [
    [("InsufficientInstanceCapacity", "We currently do not have sufficient m6i.large capacity")],
    [("Unsupported", "m7i.large is not supported in us-east-1e"),
     ("UnfulfillableCapacity", "There is no Spot capacity available that matches your request")],
], ids=["insufficient-capacity", "unsupported-pool-and-no-spot"])
def test_capacity_errors_back_off_and_ask_again(api, aws, errors):
    """Errors that mean 'no capacity now' (in any of the pools asked) back off and ask again;
    when capacity comes, the job runs."""
    with injected() as faults:
        faults.fleet_errors(*errors, times=2)
        job = schedule(api)
        Instance(api, job["jobId"]).callback(0)
        done = wait_terminal(job["jobId"])
    assert done["status"] == jobs.TERMINATED_OK and faults.calls[FLEET_ERRORS] == 2
    passed = states_passed(done["executionArn"])
    assert passed.count("RequestCapacity") == 3 and passed.count("CapacityError?") == 2
    assert "LaunchRefused" not in passed
    assert live_instances() == [] and template_versions(aws) == {1: ""}


# --- EC2 is eventually consistent ------------------------------------------------------------------------


def test_instance_unknown_right_after_launch_counts_as_booting(api, monkeypatch):
    """DescribeInstanceStatus answers InvalidInstanceID.NotFound for a while after CreateFleet (EC2 is
    eventually consistent): the workflow keeps polling within the boot deadline and the job runs."""
    monkeypatch.setenv(config.BOOT_SECONDS, "12")  # room for the polls below
    with injected() as faults:
        faults.not_visible_yet(times=6)  # more than a Task's own retries would absorb
        job = schedule(api)
        Instance(api, job["jobId"]).callback(0)
        done = wait_terminal(job["jobId"])
    assert faults.calls[NOT_VISIBLE_YET] == 6
    assert done["status"] == jobs.TERMINATED_OK, done["statusReason"]
    assert states_passed(done["executionArn"]).count("CheckAgainLater?") == 6
    assert live_instances() == []


def test_instance_never_known_fails_the_job_after_the_boot_deadline(api):
    """If EC2 never knows the instance, the polls end with the boot deadline: Failed, with EC2's words,
    and the instance is terminated."""
    with injected() as faults:
        faults.not_visible_yet(times=10**6)
        job = schedule(api)
        done = wait_terminal(job["jobId"], timeout=30)
    assert done["status"] == jobs.FAILED
    assert done["statusReason"].startswith("could not check the instance: Ec2.Ec2Exception: The instance ID")
    assert [i["State"]["Name"] for i in instances(job["jobId"])] == ["terminated"]


# --- heartbeats -------------------------------------------------------------------------------------------


def test_job_without_heartbeats_runs_without_a_heartbeat_limit(api):
    """No heartbeatSeconds: RunJob has the max runtime as its only limit (Step Functions requires a heartbeat
    limit to be shorter than the timeout, so none is invented)."""
    job = schedule(api)
    Instance(api, job["jobId"]).callback(0)
    done = wait_terminal(job["jobId"])
    history = boto3.client("stepfunctions").get_execution_history(executionArn=done["executionArn"])["events"]
    started = json.loads(history[0]["executionStartedEventDetails"]["input"])
    assert "heartbeatSeconds" not in started
    (run,) = scheduled_tasks(done["executionArn"], "RunJob")
    assert run["timeoutInSeconds"] == HELLO["maxRuntimeSeconds"] and "heartbeatInSeconds" not in run


def test_job_with_heartbeats_runs_with_a_heartbeat_limit_below_its_timeout(api):
    """heartbeatSeconds given: RunJobWithHeartbeats waits with both limits, the heartbeat one shorter."""
    job = schedule(api, {**HELLO, "heartbeatSeconds": 30})
    Instance(api, job["jobId"]).callback(0)
    done = wait_terminal(job["jobId"])
    (run,) = scheduled_tasks(done["executionArn"], "RunJobWithHeartbeats")
    assert (run["heartbeatInSeconds"], run["timeoutInSeconds"]) == (30, HELLO["maxRuntimeSeconds"])
    assert "RunJob" not in states_passed(done["executionArn"])
