"""Phases x faults: after every scenario no instance is left and the job tells the truth.

Each scenario holds the job in one phase (waiting, requesting capacity,
launched and booting, running, terminating), injects one fault into the
emulated AWS or plays one event, then lets the system settle. The table of
outcomes is printed at the end of the run.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.dynamodb.models import DynamoDBBackend
from moto.ec2.models import EC2Backend
from moto.ec2.models.instances import InstanceState

from chalicelib import jobs, statuses, store, times
from tests.faults import (
    FLEET_ERRORS,
    NO_SPOT_CAPACITY,
    NOT_VISIBLE_YET,
    SPOT_ABOVE_CAP,
    Faults,
    injected,
    update_of,
)
from tests.support import (
    Instance,
    execution_status,
    instances,
    live_instances,
    post_job,
    wait_for,
    wait_terminal,
    wait_until,
)

MATRIX_FILE = Path(__file__).resolve().parent.parent / ".pytest_cache" / "fault-matrix.jsonl"
# The controller names a file of its own for each run (xdist workers inherit it).
MATRIX_ENV = "JOBSCHEDULER_FAULT_MATRIX"


def matrix_file() -> Path:
    """Where this run's rows go."""
    return Path(os.environ.get(MATRIX_ENV) or MATRIX_FILE)


@dataclass
class Run:
    """What a scenario works with."""

    api: Any
    aws: Any
    faults: Faults
    job: dict[str, Any]

    @property
    def job_id(self) -> str:
        return str(self.job["jobId"])

    def instance(self, previous: str | None = None) -> Instance:
        return Instance(self.api, self.job_id, previous=previous)

    def stop_execution(self, before_event: Callable[[], None] = lambda: None) -> None:
        """A console Stop, then (after ``before_event``) EventBridge's ABORTED event to the handler."""

        boto3.client("stepfunctions").stop_execution(executionArn=self.job["executionArn"])
        before_event()
        self.ended_event("ABORTED")

    def ended_event(self, status: str) -> None:
        from app import on_execution_ended

        on_execution_ended({"detail": {"executionArn": self.job["executionArn"], "name": self.job_id,
                                       "stateMachineArn": self.aws.state_machine_arn, "status": status}}, None)

    def cancel(self) -> int:
        return int(self.api.http.post(f"/jobs/{self.job_id}/cancel").status_code)

    def interrupt(self, instance_id: str) -> None:
        from app import on_spot_interruption

        on_spot_interruption({"detail": {"instance-id": instance_id}}, None)


def soon(seconds: int = 2) -> str:
    """A scheduledAt for a job that must wake up during the test."""
    return times.timestamp(times.now() + timedelta(seconds=seconds))


def booting(faults: Faults) -> Callable[[], None]:
    """Launched instances stay 'pending' for the workflow until the returned release() is called."""
    original = EC2Backend.describe_instance_status
    held = {"on": True}

    def describe(backend: Any, instance_ids: list[str], include_all_instances: bool, filters: Any) -> Any:
        found = original(backend, instance_ids, include_all_instances, filters)
        if not held["on"]:
            return found
        # A running instance is answered as pending (a copy: EC2 itself still holds it running).
        booting = []
        for instance in found:
            if instance.state == "running":
                instance = copy.copy(instance)
                instance._state = InstanceState("pending", 0)
            booting.append(instance)
        return booting

    EC2Backend.describe_instance_status = describe  # type: ignore[method-assign]
    faults._undo.append(lambda: setattr(EC2Backend, "describe_instance_status", original))
    return lambda: held.update(on=False)


def terminate_externally(instance_id: str) -> None:
    boto3.client("ec2").terminate_instances(InstanceIds=[instance_id])


# --- scenarios: each drives one phase x fault and returns the job's final record --------------------------
# A scenario that injects a fault also waits for it to fire (all its times): one that never fired proves nothing.


def waiting_aws_fails_once(r: Run) -> None:
    fault = r.faults.fail(DynamoDBBackend, "update_item", times=1, when=update_of("requestedAt"))
    response = r.instance().callback(0)
    assert response.status_code == 202, response.body
    r.faults.wait_fired(fault)


def waiting_aws_fails_always(r: Run) -> None:
    r.faults.wait_fired(r.faults.fail(DynamoDBBackend, "update_item", when=update_of("requestedAt")))


def waiting_stopped(r: Run) -> None:
    r.stop_execution()


def waiting_cancel(r: Run) -> None:
    assert r.cancel() == 202


def requesting_aws_fails_once(r: Run) -> None:
    fault = r.faults.fail(EC2Backend, "create_fleet", times=1)
    r.instance().callback(0)
    r.faults.wait_fired(fault)


def requesting_aws_fails_always(r: Run) -> None:
    r.faults.wait_fired(r.faults.fail(EC2Backend, "create_fleet"))


def requesting_launch_error(r: Run) -> None:
    r.faults.fleet_errors(("UnauthorizedOperation", "You are not authorized to perform this operation."))
    r.faults.wait_fired(FLEET_ERRORS)


def requesting_capacity_errors(r: Run) -> None:
    r.faults.fleet_errors(("InsufficientInstanceCapacity", "We currently do not have sufficient capacity."),
                          times=2)
    r.instance().callback(0)
    r.faults.wait_fired(FLEET_ERRORS, times=2)


def requesting_spot_above_cap(r: Run) -> None:
    r.faults.spot_market("0.10")
    r.faults.wait_fired(SPOT_ABOVE_CAP)


def requesting_spot_above_cap_then_on_demand(r: Run) -> None:
    r.faults.spot_market("0.10")
    r.faults.wait_fired(SPOT_ABOVE_CAP)
    r.instance().callback(0)


def requesting_stopped(r: Run) -> None:
    r.faults.no_spot_capacity()
    wait_for(r.job_id, {jobs.REQUESTED})
    r.stop_execution()


def requesting_cancel(r: Run) -> None:
    r.faults.no_spot_capacity()
    wait_for(r.job_id, {jobs.REQUESTED})
    assert r.cancel() == 202


def requesting_capacity_returns(r: Run) -> None:
    r.faults.no_spot_capacity()
    r.faults.wait_fired(NO_SPOT_CAPACITY)  # a capacity request came back empty
    r.faults.clear()
    r.instance().callback(0)


def launched_record_fails(r: Run) -> None:
    r.faults.wait_fired(r.faults.fail(DynamoDBBackend, "update_item", when=update_of("list_append")))


def launched_stopped(r: Run) -> None:
    booting(r.faults)
    r.instance()
    r.stop_execution()


def launched_instance_disappears(r: Run) -> None:
    release = booting(r.faults)
    first = r.instance()
    terminate_externally(first.instance_id)
    second = r.instance(previous=first.instance_id)
    release()
    second.callback(0)


def launched_cancel(r: Run) -> None:
    release = booting(r.faults)
    r.instance()
    assert r.cancel() == 202
    release()


def launched_quick_callback(r: Run) -> None:
    release = booting(r.faults)
    r.instance().callback(0)
    release()


def launched_finishes_before_seen_running(r: Run) -> None:
    """A quick job calls back, then its instance shuts itself down, all before the workflow saw it running."""
    booting(r.faults)
    instance = r.instance()
    assert instance.callback(0).status_code == 202
    terminate_externally(instance.instance_id)


def launched_not_known_yet(r: Run) -> None:
    r.faults.not_visible_yet(times=3)
    r.instance().callback(0)
    r.faults.wait_fired(NOT_VISIBLE_YET, times=3)


def launched_never_boots(r: Run) -> None:
    booting(r.faults)
    r.instance()


def running_aws_fails_once(r: Run) -> None:
    instance = r.instance()
    wait_for(r.job_id, {jobs.RUNNING})
    fault = r.faults.fail(DynamoDBBackend, "update_item", times=1, when=update_of("finishedAt"))
    assert instance.callback(0).status_code >= 500  # the bootstrap retries a 5xx ...
    r.faults.wait_fired(fault)
    assert instance.callback(0).status_code == 202  # ... and the retry lands


def running_stopped(r: Run) -> None:
    r.instance()
    wait_for(r.job_id, {jobs.RUNNING})
    r.stop_execution()


def running_no_callback(r: Run) -> None:
    r.instance()


def running_instance_disappears(r: Run) -> None:
    instance = r.instance()
    wait_for(r.job_id, {jobs.RUNNING})
    terminate_externally(instance.instance_id)


def running_spot_interruption(r: Run) -> None:
    first = r.instance()
    wait_for(r.job_id, {jobs.RUNNING})
    r.interrupt(first.instance_id)
    response = r.instance(previous=first.instance_id).callback(0)
    assert response.status_code == 202, response.body


def running_duplicate_callback(r: Run) -> None:
    instance = r.instance()
    wait_for(r.job_id, {jobs.RUNNING})
    assert instance.callback(0).status_code == 202
    assert instance.callback(0).status_code in (202, 409)


def running_cancel(r: Run) -> None:
    r.instance()
    wait_for(r.job_id, {jobs.RUNNING})
    assert r.cancel() == 202


def running_exits_nonzero(r: Run) -> None:
    r.instance().callback(2)


def running_failed_run_retried(r: Run) -> None:
    first = r.instance()
    wait_for(r.job_id, {jobs.RUNNING})
    assert first.callback(2).status_code == 202
    assert r.instance(previous=first.instance_id).callback(0).status_code == 202


def running_retry_cancelled_between_runs(r: Run) -> None:
    first = r.instance()
    wait_for(r.job_id, {jobs.RUNNING})
    assert first.callback(2).status_code == 202
    wait_until(lambda: (store.get(r.job_id) or {}).get("failedRuns") == 1, "the failed run's close")
    assert r.cancel() == 202


def launched_fails_before_seen_running_retried(r: Run) -> None:
    release = booting(r.faults)
    first = r.instance()
    assert first.callback(2).status_code == 202
    release()
    assert r.instance(previous=first.instance_id).callback(0).status_code == 202


def held_until_debugged(r: Run) -> None:
    r.instance().callback(3)
    wait_until(lambda: "held for debugging" in (store.get(r.job_id) or {}).get("statusReason", ""), "the hold")
    assert live_instances()  # the failed run's instance is up while held


def running_held_instance_released(r: Run) -> None:
    held_until_debugged(r)
    assert r.api.http.post(f"/jobs/{r.job_id}/release").status_code == 202


def running_held_job_cancelled(r: Run) -> None:
    held_until_debugged(r)
    assert r.cancel() == 202


def terminating_aws_fails_once(r: Run) -> None:
    fault = r.faults.fail(EC2Backend, "terminate_instances", times=1)
    r.instance().callback(0)
    r.faults.wait_fired(fault)


def terminating_aws_fails_always(r: Run) -> None:
    fault = r.faults.fail(EC2Backend, "terminate_instances")
    r.instance().callback(0)
    r.faults.wait_fired(fault)
    settle(r)
    r.faults.clear()
    r.ended_event("FAILED")


def terminating_late_callback(r: Run) -> None:
    instance = r.instance()
    instance.callback(0)
    wait_terminal(r.job_id)
    assert instance.callback(0).status_code == 409


def terminating_cancel(r: Run) -> None:
    r.instance().callback(0)
    wait_terminal(r.job_id)
    assert r.cancel() == 409


def terminating_stopped(r: Run) -> None:
    fault = r.faults.fail(EC2Backend, "terminate_instances")
    r.instance().callback(0)
    r.faults.wait_fired(fault)  # the workflow is in TerminateInstance, retrying
    # Stopped while the fault still holds it there (cleared first, a retry could end the job before the stop);
    # cleared before the ABORTED event, whose handler terminates the instance.
    r.stop_execution(before_event=r.faults.clear)


def settle(r: Run) -> None:
    execution_status(r.job["executionArn"], settle=60)


def later() -> str:
    """A scheduledAt for a job that must still be waiting when the fault comes."""
    return soon(60)


# phase, fault, scenario, job fields, expected status, reason fragment, attempts
SCENARIOS = [
    ("waiting", "AWS call fails once", waiting_aws_fails_once, {"scheduledAt": soon}, "TerminatedOK", "exited 0", 1),
    ("waiting", "AWS call keeps failing", waiting_aws_fails_always, {"scheduledAt": soon}, "Failed", "could not", 0),
    ("waiting", "execution stopped", waiting_stopped, {"scheduledAt": later}, "Failed", "ABORTED", 0),
    ("waiting", "cancel", waiting_cancel, {"scheduledAt": later}, "Cancelled", "cancelled", 0),
    ("requesting", "AWS call fails once", requesting_aws_fails_once, {}, "TerminatedOK", "exited 0", 1),
    ("requesting", "AWS call keeps failing", requesting_aws_fails_always, {}, "Failed", "no capacity", 0),
    ("requesting", "launch error", requesting_launch_error, {}, "Failed", "UnauthorizedOperation", 0),
    ("requesting", "capacity errors", requesting_capacity_errors, {}, "TerminatedOK", "exited 0", 1),
    ("requesting", "no Spot under maxPrice", requesting_spot_above_cap, {"maxPrice": "0.08"}, "Failed",
     "under maxPrice 0.08", 0),
    ("requesting", "maxPrice, then on-demand", requesting_spot_above_cap_then_on_demand,
     {"maxPrice": "0.08", "capacity": "spot-then-on-demand"}, "TerminatedOK", "exited 0", 1),
    ("requesting", "execution stopped", requesting_stopped, {}, "Failed", "ABORTED", 0),
    ("requesting", "cancel", requesting_cancel, {}, "Cancelled", "cancelled", 0),
    ("requesting", "capacity comes back", requesting_capacity_returns, {}, "TerminatedOK", "exited 0", 1),
    ("launched", "AWS call keeps failing", launched_record_fails, {}, "Failed", "could not record", 0),
    ("launched", "execution stopped", launched_stopped, {}, "Failed", "ABORTED", 1),
    ("launched", "instance disappears", launched_instance_disappears, {}, "TerminatedOK", "exited 0", 2),
    ("launched", "cancel", launched_cancel, {}, "Cancelled", "cancelled", 1),
    ("launched", "callback before running", launched_quick_callback, {}, "TerminatedOK", "exited 0", 1),
    ("launched", "done before seen running", launched_finishes_before_seen_running, {}, "TerminatedOK",
     "exited 0", 1),
    ("launched", "fails before seen running, retried", launched_fails_before_seen_running_retried,
     {"retry": {"attempts": 2}}, "TerminatedOK", "exited 0", 2),
    ("launched", "instance not known yet", launched_not_known_yet, {}, "TerminatedOK", "exited 0", 1),
    ("launched", "never reaches running", launched_never_boots, {}, "Failed", "did not reach running", 1),
    ("running", "AWS call fails once", running_aws_fails_once, {}, "TerminatedOK", "exited 0", 1),
    ("running", "execution stopped", running_stopped, {}, "Failed", "ABORTED", 1),
    ("running", "callback never comes", running_no_callback, {"maxRuntimeSeconds": 3}, "TimedOut", "maxRuntime", 1),
    ("running", "instance disappears", running_instance_disappears, {"maxRuntimeSeconds": 3}, "TimedOut",
     "maxRuntime", 1),
    ("running", "Spot interruption", running_spot_interruption, {}, "TerminatedOK", "exited 0", 2),
    ("running", "duplicate callback", running_duplicate_callback, {}, "TerminatedOK", "exited 0", 1),
    ("running", "cancel", running_cancel, {}, "Cancelled", "cancelled", 1),
    ("running", "container exits 2", running_exits_nonzero, {}, "TerminatedNOK", "exited 2", 1),
    ("running", "held instance released", running_held_instance_released, {"debug": {"keepOnFailureSeconds": 600}},
     "TerminatedNOK", "released", 1),
    ("running", "held job cancelled", running_held_job_cancelled, {"debug": {"keepOnFailureSeconds": 600}},
     "Cancelled", "cancelled", 1),
    ("running", "failed run retried", running_failed_run_retried, {"retry": {"attempts": 2}}, "TerminatedOK",
     "exited 0", 2),
    ("running", "retry cancelled between runs", running_retry_cancelled_between_runs,
     {"retry": {"attempts": 2, "delaySeconds": 30}}, "Cancelled", "cancelled", 1),
    ("terminating", "AWS call fails once", terminating_aws_fails_once, {}, "TerminatedOK", "exited 0", 1),
    ("terminating", "AWS call keeps failing", terminating_aws_fails_always, {}, "TerminatedOK", "FAILED", 1),
    ("terminating", "late callback", terminating_late_callback, {}, "TerminatedOK", "exited 0", 1),
    ("terminating", "cancel", terminating_cancel, {}, "TerminatedOK", "exited 0", 1),
    ("terminating", "execution stopped", terminating_stopped, {}, "TerminatedOK", "ABORTED", 1),
]


@pytest.mark.slow
@pytest.mark.parametrize(("phase", "fault", "drive", "fields", "status", "reason", "attempts"), SCENARIOS,
                         ids=[f"{p}-{f.replace(' ', '-')}" for p, f, *_ in SCENARIOS])
def test_fault_matrix(api, aws, phase, fault, drive, fields, status, reason, attempts):
    """One phase x one fault: no instance and no launch template version left, the job terminal with the
    right status, reason and attempts."""
    with injected() as faults:
        body = {"image": "hello-world:latest", "maxRuntimeSeconds": 60}
        body.update({k: v() if callable(v) else v for k, v in fields.items()})
        response = post_job(api, body)
        assert response.status_code == 201, response.body
        run = Run(api, aws, faults, response.json_body)
        drive(run)
        done = wait_terminal(run.job_id, timeout=90)
        settle(run)
    record(phase, fault, done)
    assert done["status"] == status, done["statusReason"]
    assert reason in done["statusReason"]
    assert live_instances() == []
    assert job_template_versions(aws) == []
    assert_attempts_consistent(done, attempts)


def job_template_versions(aws: Any) -> list[str]:
    """Descriptions of the launch template versions the workflow made and did not delete."""
    versions = boto3.client("ec2").describe_launch_template_versions(
        LaunchTemplateId=aws.launch_template_id)["LaunchTemplateVersions"]
    return [v.get("VersionDescription", "") for v in versions if not v["DefaultVersion"]]


def assert_attempts_consistent(job: dict[str, Any], expected: int) -> None:
    """Every attempt closed, each on its own instance, each instance gone; the job's instance is the last one."""
    attempts = job["attempts"]
    assert len(attempts) == expected, attempts
    assert len({a["instanceId"] for a in attempts}) == len(attempts)
    assert all(a.get("outcome") and a.get("endedAt") for a in attempts), attempts
    # An earlier attempt ended for Spot, or was a failed run run again (Failed, with its exit code).
    assert all(a["outcome"] in (statuses.PREEMPTED, statuses.LOST) or (a["outcome"] == statuses.FAILED and
                                                                      "exitCode" in a) for a in attempts[:-1])
    assert all("exitCode" not in a for a in attempts if a["outcome"] != statuses.FAILED)
    if attempts:
        assert job["instanceId"] == attempts[-1]["instanceId"]
        states = {i["InstanceId"]: i["State"]["Name"] for i in instances(job["jobId"])}
        assert all(states[a["instanceId"]] == "terminated" for a in attempts)
    assert store.get(job["jobId"]).get("taskToken") is None


def record(phase: str, fault: str, job: dict[str, Any]) -> None:
    target = matrix_file()
    target.parent.mkdir(parents=True, exist_ok=True)
    row = {"phase": phase, "fault": fault, "status": job["status"], "reason": job["statusReason"],
           "attempts": "/".join(a.get("outcome", "?") for a in job["attempts"]) or "-"}
    with target.open("a") as out:
        out.write(json.dumps(row) + "\n")
