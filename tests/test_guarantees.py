"""Issue-level promises: cancel in every phase, Spot recovery, heartbeats, capacity policy, cleanup layers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import boto3
import pytest

from chalicelib import config, jobs, statuses, store
from tests import events
from tests.faults import injected
from tests.support import (
    Instance,
    execution_status,
    instances,
    live_instances,
    post_job,
    states_passed,
    wait_for,
    wait_terminal,
    wait_until,
)

HELLO = {"image": "hello-world:latest", "maxRuntimeSeconds": 60}


def later(days: int = 1) -> str:
    return (datetime.now(UTC) + timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%SZ")


def schedule(api, **fields) -> dict:
    response = post_job(api, {**HELLO, **fields})
    assert response.status_code == 201, response.body
    return response.json_body


def spot_warning(instance_id: str) -> dict:
    return events.spot_interruption_warning(instance_id)


def execution_event(job: dict, status: str, aws) -> dict:
    return events.execution_status_change(job["executionArn"], aws.state_machine_arn, status)


# --- cancel ---------------------------------------------------------------------------------------------


def test_cancel_while_waiting_launches_nothing(api):
    """Cancelled before its time: Cancelled at once, execution stopped, no instance ever."""
    job = schedule(api, scheduledAt=later())
    response = api.http.post(f"/jobs/{job['jobId']}/cancel")
    assert response.status_code == 202 and response.json_body["status"] == jobs.CANCELLED
    assert execution_status(job["executionArn"]) == "ABORTED"
    assert instances() == []
    again = api.http.post(f"/jobs/{job['jobId']}/cancel")
    assert again.status_code == 409 and "Cancelled" in again.json_body["Message"]


def test_cancel_while_requesting_capacity_leaves_no_instance(api):
    """Cancelled while no capacity comes: the next capacity round sees it, nothing is launched."""
    with injected() as faults:
        faults.no_spot_capacity()
        job = schedule(api)
        wait_for(job["jobId"], {jobs.REQUESTED})
        assert api.http.post(f"/jobs/{job['jobId']}/cancel").status_code == 202
        done = wait_terminal(job["jobId"])
    assert done["status"] == jobs.CANCELLED
    assert "CancelledBeforeLaunch" in states_passed(job["executionArn"])
    assert instances() == []


def test_cancel_while_running_terminates_the_instance(api):
    """Cancelled while running: the task fails with Cancelled, the instance is terminated."""
    job = schedule(api)
    Instance(api, job["jobId"])
    wait_for(job["jobId"], {jobs.RUNNING})
    assert api.http.post(f"/jobs/{job['jobId']}/cancel").status_code == 202
    done = wait_terminal(job["jobId"])
    assert done["status"] == jobs.CANCELLED
    assert "CancelledWhileRunning" in states_passed(job["executionArn"])
    assert live_instances() == []
    assert done["attempts"][0]["outcome"] == jobs.CANCELLED


def test_cancel_after_the_end_is_409(api):
    """A finished job cannot be cancelled and stays as it ended."""
    job = schedule(api)
    Instance(api, job["jobId"]).callback(0)
    wait_terminal(job["jobId"])
    response = api.http.post(f"/jobs/{job['jobId']}/cancel")
    assert response.status_code == 409
    assert store.get(job["jobId"])["status"] == jobs.TERMINATED_OK


def test_cancel_and_callback_race_has_one_outcome(api):
    """Callback and cancel at once: whichever lands first wins, never both."""
    job = schedule(api)
    instance = Instance(api, job["jobId"])
    wait_for(job["jobId"], {jobs.RUNNING})
    callback = instance.callback(0).status_code
    cancel = api.http.post(f"/jobs/{job['jobId']}/cancel").status_code
    done = wait_terminal(job["jobId"])
    assert (callback, cancel) == (202, 409)
    assert done["status"] == jobs.TERMINATED_OK and live_instances() == []


# --- Spot interruption ------------------------------------------------------------------------------------


def test_spot_interruption_moves_the_job_to_a_new_instance(api):
    """A Spot warning: attempt Preempted, job Interrupted, a new instance runs it to TerminatedOK."""
    from app import on_spot_interruption

    job = schedule(api)
    first = Instance(api, job["jobId"])
    wait_for(job["jobId"], {jobs.RUNNING})
    assert on_spot_interruption(spot_warning(first.instance_id), None)["status"] == jobs.INTERRUPTED
    second = Instance(api, job["jobId"], previous=first.instance_id)
    assert second.instance_id != first.instance_id
    assert first.callback(0).status_code == 409  # the preempted instance's late word does not count
    second.callback(0)
    done = wait_terminal(job["jobId"])
    assert done["status"] == jobs.TERMINATED_OK
    assert [(a["instanceId"], a["outcome"]) for a in done["attempts"]] == [
        (first.instance_id, statuses.PREEMPTED), (second.instance_id, jobs.TERMINATED_OK)]
    assert live_instances() == []
    assert states_passed(job["executionArn"]).count("RequestCapacity") == 2


def test_interrupted_on_every_attempt_fails(api):
    """maxAttempts=1 and a Spot warning: the job fails and says why; nothing is left running."""
    from app import on_spot_interruption

    job = schedule(api, maxAttempts=1)
    first = Instance(api, job["jobId"])
    wait_for(job["jobId"], {jobs.RUNNING})
    on_spot_interruption(spot_warning(first.instance_id), None)
    done = wait_terminal(job["jobId"])
    assert done["status"] == jobs.FAILED and "interrupted" in done["statusReason"]
    assert done["attempts"][0]["outcome"] == statuses.PREEMPTED
    assert live_instances() == []


def test_spot_warning_for_unknown_instance_is_ignored(api):
    """A warning for an instance that is not ours changes nothing."""
    from app import on_spot_interruption

    assert on_spot_interruption(spot_warning("i-0123456789abcdef0"), None)["ignored"] is True


# --- heartbeats -------------------------------------------------------------------------------------------


def test_heartbeats_keep_a_job_alive_and_their_loss_times_it_out(api):
    """With heartbeatSeconds, beats keep it Running; silence ends it TimedOut with the reason."""
    import time

    job = schedule(api, heartbeatSeconds=2, maxRuntimeSeconds=60)
    instance = Instance(api, job["jobId"])
    wait_for(job["jobId"], {jobs.RUNNING})
    headers = {"Authorization": f"Bearer {instance.secret}"}
    for _ in range(6):
        assert api.http.post(f"/jobs/{job['jobId']}/heartbeat", headers=headers).status_code == 202
        time.sleep(0.5)
    assert store.get(job["jobId"])["status"] == jobs.RUNNING
    assert api.http.post(f"/jobs/{job['jobId']}/heartbeat").status_code == 401
    done = wait_terminal(job["jobId"])
    assert done["status"] == jobs.TIMED_OUT and "heartbeat" in done["statusReason"]
    assert "HeartbeatLost" in states_passed(job["executionArn"])
    assert live_instances() == []


def test_heartbeat_must_be_shorter_than_the_max_runtime(api):
    """Step Functions requires a heartbeat limit below the timeout: heartbeatSeconds >= maxRuntimeSeconds is
    a 400 naming heartbeatSeconds, and nothing is scheduled."""
    for heartbeat in (60, 61):
        response = post_job(api, {**HELLO, "heartbeatSeconds": heartbeat})
        assert response.status_code == 400, response.body
        assert response.json_body["Message"].startswith("heartbeatSeconds"), response.json_body
    assert post_job(api, {**HELLO, "heartbeatSeconds": 59}).status_code == 201


# --- capacity policy ---------------------------------------------------------------------------------------


def test_on_demand_policy_launches_on_demand(api):
    """capacity=on-demand asks for on-demand from the start."""
    job = schedule(api, capacity="on-demand")
    instance = Instance(api, job["jobId"])
    instance.callback(0)
    done = wait_terminal(job["jobId"])
    assert done["attempts"][0]["lifecycle"] == "on-demand"


def test_spot_then_on_demand_falls_back_when_spot_is_gone(api):
    """spot-then-on-demand: no Spot within the provisioning deadline -> on-demand, job done."""
    with injected() as faults:
        faults.no_spot_capacity()
        job = schedule(api, capacity="spot-then-on-demand")
        instance = Instance(api, job["jobId"])
        instance.callback(0)
        done = wait_terminal(job["jobId"])
    assert done["status"] == jobs.TERMINATED_OK
    assert done["attempts"][0]["lifecycle"] == "on-demand"
    passed = states_passed(job["executionArn"])
    assert "FallBackToOnDemand" in passed and passed.count("RequestCapacity") == 4


def test_on_demand_fallback_gets_its_own_requests(api):
    """spot-then-on-demand with no capacity at all: every Spot request, then onDemandRequests on-demand
    requests (not one), then Failed; nothing is launched."""
    from chalicelib import workflow

    with injected() as faults:
        faults.no_capacity()
        job = schedule(api, capacity="spot-then-on-demand")
        done = wait_terminal(job["jobId"], timeout=60)
    assert done["status"] == jobs.FAILED and "no capacity" in done["statusReason"]
    plan = workflow.execution_input(store.get(job["jobId"]), "")["capacity"]
    assert (plan["maxRequests"], plan["onDemandRequests"]) == (3, 3)  # from the tests' timing settings
    passed = states_passed(job["executionArn"])
    assert passed.count("FallBackToOnDemand") == 1
    requests = passed.count("RequestCapacity")
    assert requests == plan["maxRequests"] + plan["onDemandRequests"]
    assert passed[passed.index("FallBackToOnDemand"):].count("RequestCapacity") == plan["onDemandRequests"]
    assert instances() == []


def test_finish_by_switches_to_on_demand_early(api):
    """finishBy leaves no slack for Spot retries: one Spot try, then on-demand, even with policy spot."""
    with injected() as faults:
        faults.no_spot_capacity()
        finish_by = (datetime.now(UTC) + timedelta(seconds=64)).strftime("%Y-%m-%dT%H:%M:%SZ")
        job = schedule(api, finishBy=finish_by)
        Instance(api, job["jobId"]).callback(0)
        done = wait_terminal(job["jobId"])
    assert done["status"] == jobs.TERMINATED_OK and done["attempts"][0]["lifecycle"] == "on-demand"
    assert states_passed(job["executionArn"]).count("RequestCapacity") == 2


# --- cleanup layers ----------------------------------------------------------------------------------------


def test_stopped_execution_is_cleaned_up_by_the_event_handler(api, aws):
    """A console Stop runs no Catch: the ABORTED event's handler terminates by tag and ends the job."""
    from app import on_execution_ended

    job = schedule(api)
    Instance(api, job["jobId"])
    wait_for(job["jobId"], {jobs.RUNNING})
    boto3.client("stepfunctions").stop_execution(executionArn=job["executionArn"])
    assert len(live_instances()) == 1
    result = on_execution_ended(execution_event(job, "ABORTED", aws), None)
    assert len(result["terminated"]) == 1 and result["ended"] == jobs.FAILED
    assert live_instances() == []
    assert "ABORTED" in store.get(job["jobId"])["statusReason"]
    assert on_execution_ended(execution_event(job, "ABORTED", aws), None) == {
        "jobId": job["jobId"], "terminated": [], "ended": None}


def test_event_from_another_state_machine_is_ignored(api, aws):
    """Only this stack's executions are acted on."""
    from app import on_execution_ended

    other = aws.state_machine_arn.replace(":stateMachine:", ":execution:") + ":y"
    event = execution_event({"executionArn": other, "jobId": "y"}, "FAILED", aws)
    event["detail"]["stateMachineArn"] += "-other"
    assert on_execution_ended(event, None) == {"ignored": True}


def test_sweeper_terminates_strays_and_ends_orphans(api, aws):
    """Instances of unknown or ended jobs go; a job whose execution is gone gets a terminal status."""
    from app import sweeper

    ec2 = boto3.client("ec2")
    tags = [{"ResourceType": "instance", "Tags": [{"Key": statuses.TAG_STACK, "Value": aws.stack_tag},
                                                  {"Key": statuses.TAG_JOB, "Value": "no-such-job"}]}]
    stray = ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1, TagSpecifications=tags)
    foreign = ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1)
    job = schedule(api, scheduledAt=later())
    boto3.client("stepfunctions").stop_execution(executionArn=job["executionArn"])
    old = (datetime.now(UTC) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    # Its execution is gone and its time an hour past: it will never leave Scheduled on its own.
    store.update(job["jobId"], {"createdAt": old, "scheduledAt": old, "sortKey": f"{old}#{job['jobId']}"})
    result = sweeper({}, None)
    assert result["terminated"] == [stray["Instances"][0]["InstanceId"]]
    assert result["ended"] == [job["jobId"]]
    assert store.get(job["jobId"])["status"] == jobs.FAILED
    states = {i["InstanceId"]: i["State"]["Name"] for i in instances()}
    assert states[foreign["Instances"][0]["InstanceId"]] == "running"  # not ours: never touched
    assert sweeper({}, None) == {"terminated": [], "ended": [], "sleeping": True}
    ec2.terminate_instances(InstanceIds=[foreign["Instances"][0]["InstanceId"]])


def job_template_versions(aws, template: str | None = None) -> dict[str, str]:
    """Versions of the stack's launch template (or of ``template``) other than its own: description -> number."""
    versions = boto3.client("ec2").describe_launch_template_versions(
        LaunchTemplateId=template or aws.launch_template_id)["LaunchTemplateVersions"]
    return {v.get("VersionDescription", ""): str(v["VersionNumber"]) for v in versions if not v["DefaultVersion"]}


def test_execution_stopped_mid_request_leaves_no_launch_template_version(api, aws):
    """A console Stop between a request's launch template version and its deletion: the ABORTED event's
    handler deletes the job's version (and terminates what the request launched)."""
    import threading

    from moto.ec2.models import EC2Backend

    from app import on_execution_ended

    requesting, release = threading.Event(), threading.Event()
    original = EC2Backend.create_fleet

    def slow_fleet(backend, *args, **kwargs):
        requesting.set()
        release.wait(20)
        return original(backend, *args, **kwargs)

    with injected() as faults:
        EC2Backend.create_fleet = slow_fleet
        faults._undo.append(lambda: setattr(EC2Backend, "create_fleet", original))
        job = schedule(api)
        assert requesting.wait(20)
        boto3.client("stepfunctions").stop_execution(executionArn=job["executionArn"])
        release.set()
        assert execution_status(job["executionArn"]) == "ABORTED"
    assert list(job_template_versions(aws)) == [job["jobId"]]
    on_execution_ended(execution_event(job, "ABORTED", aws), None)
    assert job_template_versions(aws) == {}
    assert live_instances() == [] and store.get(job["jobId"])["status"] == jobs.FAILED


@pytest.mark.parametrize("kind", ["launch_template_id", "gpu_launch_template_id"])
def test_sweeper_deletes_launch_template_versions_of_ended_or_unknown_jobs(api, aws, kind):
    """Versions left by jobs that ended or never existed go, from the CPU and the GPU launch template alike;
    those of a job in flight, and versions that are not a job's, stay."""
    import uuid

    from app import sweeper

    ec2 = boto3.client("ec2")
    template = getattr(aws, kind)

    def version(description: str) -> None:
        ec2.create_launch_template_version(LaunchTemplateId=template, SourceVersion="1",
                                           VersionDescription=description, LaunchTemplateData={})

    running = schedule(api)
    wait_for(running["jobId"], {jobs.RUNNING})
    ended = schedule(api)
    Instance(api, ended["jobId"]).callback(0)
    wait_terminal(ended["jobId"])
    unknown = str(uuid.uuid4())
    for description in (running["jobId"], ended["jobId"], unknown, "a version someone else made"):
        version(description)
    sweeper({}, None)
    assert sorted(job_template_versions(aws, template)) == sorted([running["jobId"], "a version someone else made"])
    Instance(api, running["jobId"]).callback(0)
    wait_terminal(running["jobId"])
    sweeper({}, None)
    assert list(job_template_versions(aws, template)) == ["a version someone else made"]


def sweeper_schedule(aws) -> str:
    return str(boto3.client("events").describe_rule(Name=aws.sweeper_rule)["State"])


def status_change(before: dict, after: dict) -> dict:
    """The job table's stream record for one status change, as Lambda delivers it."""
    stream = f"arn:aws:dynamodb:us-east-1:123456789012:table/{config.jobs_table()}/stream/2026-01-01T00:00:00.000"
    return events.stream_event([(store.to_item(before), store.to_item(after))], stream)


def test_sweeper_runs_only_while_a_job_is_in_flight(api, aws):
    """Jobs only waiting for their time: the sweeper turns its schedule off. A job leaving Scheduled turns
    it on, and it stays on until that job has ended and its instance is gone."""
    from app import on_job_change, sweeper

    waiting = schedule(api, scheduledAt=later())
    assert sweeper({}, None)["sleeping"] is True
    assert sweeper_schedule(aws) == "DISABLED"
    job = schedule(api)
    running = wait_for(job["jobId"], {jobs.RUNNING})
    assert on_job_change(status_change(store.get(waiting["jobId"]), running), None)["armed"] is True
    assert sweeper_schedule(aws) == "ENABLED"
    assert sweeper({}, None) == {"terminated": [], "ended": [], "sleeping": False}
    assert sweeper_schedule(aws) == "ENABLED"
    assert Instance(api, job["jobId"]).callback(0).status_code == 202
    wait_terminal(job["jobId"])
    wait_until(lambda: live_instances() == [], "the job's instance ending")
    assert on_job_change(status_change(running, store.get(job["jobId"])), None)["armed"] is False
    assert sweeper({}, None)["sleeping"] is True
    assert sweeper_schedule(aws) == "DISABLED"
    api.http.post(f"/jobs/{waiting['jobId']}/cancel")


def test_failed_execution_after_finish_reports_the_truth(api, aws):
    """The workflow died after the callback: the handler ends the job by its real result."""
    from app import on_execution_ended

    with injected() as faults:
        from moto.ec2.models import EC2Backend

        faults.fail(EC2Backend, "terminate_instances")
        job = schedule(api)
        Instance(api, job["jobId"]).callback(5)
        wait_for(job["jobId"], {jobs.FINISHED_NOK})
        # TerminateInstance keeps failing: the execution ends FAILED once its retries run out.
        assert execution_status(job["executionArn"], settle=60) == "FAILED"
    assert states_passed(job["executionArn"])[-1] == "InstanceNotTerminated"
    assert len(live_instances()) == 1
    on_execution_ended(execution_event(job, "FAILED", aws), None)
    done = store.get(job["jobId"])
    assert (done["status"], done["exitCode"]) == (jobs.TERMINATED_NOK, 5)
    assert live_instances() == []
