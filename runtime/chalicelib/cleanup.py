"""The layers behind the workflow's own catch: no instance outlives its job.

1. ``execution_ended``: EventBridge tells us an execution ended FAILED,
   TIMED_OUT or ABORTED (a console Stop runs no Catch); terminate the job's
   instances by tag and end the job unless it already ended.
2. ``sweep``: every few minutes, terminate instances of this stack whose job is
   terminal, unknown or without a running execution, and end jobs whose
   execution ended without a terminal status.
Both also delete the launch template versions the workflow made for a job's
capacity requests (it deletes each one itself as soon as the request is
answered; one is left over only when the execution stopped in between).
Both are idempotent: running them twice changes nothing the first did not.

The sweeper runs only while there is work in flight, so an idle stack costs
nothing: a sweep that finds no instance of this stack, no job between
Scheduled and its end, and no Scheduled job past its time turns its own
schedule off; the first job to leave Scheduled turns it on again (``arm``,
from the job table's stream).
"""

from __future__ import annotations

import itertools
import logging
import os
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from . import aws, config, jobs, statuses, store, times, workflow
from .statuses import IN_FLIGHT, TAG_JOB, TAG_STACK, TERMINATED_AFTER

if TYPE_CHECKING:  # development-only stubs
    from mypy_boto3_ec2.type_defs import FilterTypeDef, InstanceTypeDef

log = logging.getLogger(__name__)

LIVE_STATES = ("pending", "running", "stopping", "stopped")
ENDED = {"FAILED", "TIMED_OUT", "ABORTED"}
# A job younger than this may not have its execution yet: the sweeper leaves it alone.
GRACE = timedelta(minutes=5)
# DeleteLaunchTemplateVersions takes at most this many versions per call.
VERSIONS_PER_DELETE = 200


def live_instances(job_id: str | None = None) -> list[InstanceTypeDef]:
    """Instances of this stack (optionally of one job) that are not terminated."""
    filters: list[FilterTypeDef] = [{"Name": f"tag:{TAG_STACK}", "Values": [config.stack_tag()]},
                                    {"Name": "instance-state-name", "Values": list(LIVE_STATES)}]
    if job_id:
        filters.append({"Name": f"tag:{TAG_JOB}", "Values": [job_id]})
    found: list[InstanceTypeDef] = []
    for page in aws.ec2().get_paginator("describe_instances").paginate(Filters=filters):
        found += [i for r in page["Reservations"] for i in r["Instances"]]
    return found


def terminate(instance_ids: list[str]) -> list[str]:
    """Terminate these instances; an instance already gone is no error."""
    if not instance_ids:
        return []
    try:
        aws.ec2().terminate_instances(InstanceIds=instance_ids)
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "InvalidInstanceID.NotFound":
            raise
        for instance_id in instance_ids:  # one unknown id fails the batch: go one by one
            terminate_one(instance_id)
    log.info("terminated %s", instance_ids)
    return instance_ids


def terminate_one(instance_id: str) -> None:
    """Terminate one instance, ignoring one that no longer exists."""
    try:
        aws.ec2().terminate_instances(InstanceIds=[instance_id])
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "InvalidInstanceID.NotFound":
            raise


def execution_ended(detail: dict[str, Any]) -> dict[str, Any]:
    """Handle a Step Functions execution that ended without running its own cleanup."""
    status, job_id = detail.get("status"), detail.get("name")
    if status not in ENDED or not job_id or detail.get("stateMachineArn") != config.state_machine_arn():
        return {"ignored": True}
    killed = terminate([i["InstanceId"] for i in live_instances(job_id)])
    ended = end_job(job_id, f"the workflow execution ended {status}")
    for template in config.launch_template_ids():
        delete_launch_template_versions(launch_template_versions(template).get(job_id, []), template)
    return {"jobId": job_id, "terminated": killed, "ended": ended}


def end_job(job_id: str, reason: str) -> str | None:
    """Give a job whose workflow is gone the terminal status that tells the truth."""
    job = store.get(job_id)
    if job is None or job["status"] in statuses.TERMINAL:
        return None
    if job.get("cancelRequested"):
        status = statuses.CANCELLED
    else:
        # A finished job whose workflow ended before marking it still tells the truth.
        status = TERMINATED_AFTER.get(job["status"], statuses.FAILED)
    moment = times.timestamp(times.now())
    attempts: list[jobs.Attempt] = [a if a.get("outcome") else {**a, "outcome": status, "endedAt": moment}
                for a in job.get("attempts", [])]
    written = store.end_if_not_terminal(job_id, status, reason, moment, attempts)
    return written["status"] if written else None


def sweep(max_jobs: int = 200) -> dict[str, Any]:
    """One sweeper pass: stray instances terminated, orphaned jobs ended; idle, the schedule turned off."""
    strays = [i["InstanceId"] for i in live_instances() if _stray(i)]
    terminate(strays)
    ended = [job_id for job_id in _orphaned_jobs(max_jobs) if end_job(job_id, "its workflow is no longer running")]
    for template in config.launch_template_ids():
        delete_launch_template_versions([number for job_id, numbers in launch_template_versions(template).items()
                                         if _left_over(job_id) for number in numbers], template)
    return {"terminated": strays, "ended": ended, "sleeping": _sleep_if_idle()}


def launch_template_versions(template: str | None = None) -> dict[str, list[str]]:
    """The versions of a launch template of this stack (default: the CPU jobs') that the workflow made,
    by job id (their description)."""
    template = template or os.environ.get(config.LAUNCH_TEMPLATE_ID)
    if not template:
        return {}
    found: dict[str, list[str]] = {}
    pages = aws.ec2().get_paginator("describe_launch_template_versions").paginate(
        LaunchTemplateId=template, PaginationConfig={"PageSize": 200})
    for page in pages:
        for version in page["LaunchTemplateVersions"]:
            job_id = version.get("VersionDescription") or ""
            # The stack's own versions have no job id for a description; its default is never touched.
            if not version.get("DefaultVersion") and _is_job_id(job_id):
                found.setdefault(job_id, []).append(str(version["VersionNumber"]))
    return found


def delete_launch_template_versions(numbers: list[str], template: str | None = None) -> list[str]:
    """Delete these versions of a launch template of this stack (default: the CPU jobs'); returns the numbers."""
    template = template or os.environ.get(config.LAUNCH_TEMPLATE_ID)
    if not template or not numbers:
        return []
    for start in range(0, len(numbers), VERSIONS_PER_DELETE):
        # A version already gone comes back in UnsuccessfullyDeletedLaunchTemplateVersions, not as an error.
        aws.ec2().delete_launch_template_versions(
            LaunchTemplateId=template, Versions=numbers[start:start + VERSIONS_PER_DELETE])
    log.info("deleted launch template versions %s", numbers)
    return numbers


def arm() -> bool:
    """Turn the sweeper's schedule on (a job left Scheduled); False where no rule is named."""
    rule = config.sweeper_rule()
    if rule:
        aws.client("events").enable_rule(Name=rule)
    return bool(rule)


def _sleep_if_idle() -> bool:
    rule = config.sweeper_rule()
    if not rule or _work_in_flight():
        return False
    events = aws.client("events")
    events.disable_rule(Name=rule)
    # A job may have left Scheduled while we looked, and its arm() come before our disable.
    if _work_in_flight():
        events.enable_rule(Name=rule)
        return False
    log.info("nothing in flight: the sweeper's schedule is off until a job starts")
    return True


def _work_in_flight() -> bool:
    if live_instances():
        return True
    # While a job is in flight, an instance may exist for it: the sweeper stays on.
    if any(store.list_jobs(status, 1, None)[0] for status in IN_FLIGHT):
        return True
    return bool(store.list_jobs(statuses.SCHEDULED, 1, None, due_before=times.timestamp(times.now()))[0])


def _stray(instance: InstanceTypeDef) -> bool:
    tags = {t["Key"]: t["Value"] for t in instance.get("Tags", [])}
    job = store.get(tags.get(TAG_JOB, "")) if tags.get(TAG_JOB) else None
    if job is None or job["status"] in statuses.TERMINAL:
        return True
    return not _execution_running(job)


def _left_over(job_id: str) -> bool:
    # A version outlives its capacity request only when the execution stopped in between.
    job = store.get(job_id)
    return job is None or job["status"] in statuses.TERMINAL or not _execution_running(job)


def _is_job_id(text: str) -> bool:
    try:
        return str(uuid.UUID(text)) == text
    except ValueError:
        return False


def _orphaned_jobs(max_jobs: int) -> list[str]:
    cutoff = times.timestamp(times.now() - GRACE)
    orphans = (job["jobId"] for job in _unended_jobs(cutoff)
               if job["createdAt"] < cutoff and not _execution_running(job))
    # Jobs are read a page at a time only as far as the first max_jobs orphans need.
    return list(itertools.islice(orphans, max_jobs))


def _unended_jobs(cutoff: str) -> Iterator[jobs.Job]:
    for status in (s for s in statuses.STATUSES if s not in statuses.TERMINAL):
        # A job waiting for its time costs nothing, and on_execution_ended covers its execution:
        # only overdue ones are read, so a sweep's work does not grow with the jobs waiting.
        yield from store.each_job(status, due_before=cutoff if status == statuses.SCHEDULED else None)


def _execution_running(job: jobs.Job) -> bool:
    # The ARN follows from the job id, so a job whose ARN was never written is still found.
    try:
        arn = workflow.execution_arn(job["jobId"])
        return bool(aws.sfn().describe_execution(executionArn=arn)["status"] == "RUNNING")
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "ExecutionDoesNotExist":
            return False
        raise
