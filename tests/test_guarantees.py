"""Issue-level promises: cancel in every phase, Spot recovery, heartbeats, capacity policy, cleanup layers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import boto3

from chalicelib import jobs, store
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
)

HELLO = {"image": "hello-world:latest", "maxRuntimeSeconds": 60}


def later(days: int = 1) -> str:
    return (datetime.now(UTC) + timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%SZ")


def schedule(api, **fields) -> dict:
    response = post_job(api, {**HELLO, **fields})
    assert response.status_code == 201, response.body
    return response.json_body


def spot_warning(instance_id: str) -> dict:
    return {"source": "aws.ec2", "detail-type": "EC2 Spot Instance Interruption Warning",
            "detail": {"instance-id": instance_id, "instance-action": "terminate"}}


def execution_event(job: dict, status: str, aws) -> dict:
    return {"source": "aws.states", "detail-type": "Step Functions Execution Status Change",
            "detail": {"executionArn": job["executionArn"], "stateMachineArn": aws.state_machine_arn,
                       "name": job["jobId"], "status": status}}


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
        (first.instance_id, "Preempted"), (second.instance_id, jobs.TERMINATED_OK)]
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
    assert done["attempts"][0]["outcome"] == "Preempted"
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
    assert live_instances() == []


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

    event = execution_event({"executionArn": "x", "jobId": "y"}, "FAILED", aws)
    event["detail"]["stateMachineArn"] += "-other"
    assert on_execution_ended(event, None) == {"ignored": True}


def test_sweeper_terminates_strays_and_ends_orphans(api, aws):
    """Instances of unknown or ended jobs go; a job whose execution is gone gets a terminal status."""
    from app import sweeper

    ec2 = boto3.client("ec2")
    tags = [{"ResourceType": "instance", "Tags": [{"Key": "jobscheduler:stack", "Value": aws.stack_tag},
                                                  {"Key": "jobscheduler:job", "Value": "no-such-job"}]}]
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


def sweeper_schedule(aws) -> str:
    return str(boto3.client("events").describe_rule(Name=aws.sweeper_rule)["State"])


def status_change(before: dict, after: dict) -> dict:
    """The job table's stream record for one status change."""
    return {"Records": [{"eventName": "MODIFY", "dynamodb": {"OldImage": store.to_item(before),
                                                              "NewImage": store.to_item(after)}}]}


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
    while live_instances():
        pass
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
        while execution_status(job["executionArn"]) == "RUNNING":
            pass
    assert states_passed(job["executionArn"])[-1] == "InstanceNotTerminated"
    assert len(live_instances()) == 1
    on_execution_ended(execution_event(job, "FAILED", aws), None)
    done = store.get(job["jobId"])
    assert (done["status"], done["exitCode"]) == (jobs.TERMINATED_NOK, 5)
    assert live_instances() == []
