"""A schedule fires: exactly one job per firing, or a skip that is counted once.

EventBridge Scheduler delivers at least once. The job's id is derived from
the schedule id and the firing time, the execution is named after the job,
and the job is written only if its id is new: a firing delivered twice finds
the job the first delivery made (one job, one execution, one instance), and
starts it only if the first delivery died between writing and starting it.

The overlap rule looks at the schedule's latest jobs that have not ended:
``skip`` makes no job and counts the firing (once: the count moves only for a
firing later than the last one counted) and publishes a ``Schedule Firing
Skipped`` event; ``cancel-previous`` cancels them, then starts; ``allow``
just starts.
"""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any

from botocore.exceptions import ClientError

from . import aws, config, events, jobs, lifecycle, schedules, store, times
from .schema import JobError

log = logging.getLogger(__name__)

_FIRING_NAMESPACE = uuid.UUID("0d7e3f52-8a61-4c1b-9b2e-6a4f1c9d3e70")
SKIPPED = "Schedule Firing Skipped"


def job_id(schedule_id: str, fired_at: str) -> str:
    """The id of the job a firing makes: the same firing, the same id."""
    return str(uuid.uuid5(_FIRING_NAMESPACE, f"{schedule_id}\n{fired_at}"))


def fire(event: dict[str, Any]) -> dict[str, Any]:
    """Handle one firing (the target input :func:`scheduler.target_input` describes)."""
    schedule_id, fired_at = str(event.get("scheduleId", "")), str(event.get("scheduledTime", ""))
    try:
        moment = times.timestamp(times.parse(fired_at))
    except ValueError:
        log.error("a firing without a valid scheduledTime: %r", event)
        return {"ignored": "no valid scheduledTime"}
    schedule = schedules.find(schedule_id)
    if schedule is None or not schedule.get("enabled", True):
        # Deleted or paused since EventBridge Scheduler sent it.
        return {"scheduleId": schedule_id, "ignored": "no such schedule" if schedule is None else "paused"}
    new_id = job_id(schedule_id, moment)
    if store.get(new_id) is not None:
        # A repeat: the job is there (started now, should the first delivery have died before starting it).
        return _start(schedule, new_id, moment)
    running = schedules.running_jobs(schedule_id, other_than=new_id)
    if running and schedule["overlap"] == "skip":
        return _skip(schedule, moment, [j["jobId"] for j in running])
    if schedule["overlap"] == "cancel-previous":
        for previous in running:
            _cancel(previous["jobId"])
    return _start(schedule, new_id, moment)


def _start(schedule: dict[str, Any], new_id: str, moment: str) -> dict[str, Any]:
    body = dict(schedule["job"])
    try:
        job = jobs.new_job(body, schedule.get("submittedBy"))
    except JobError as exc:
        # The template was valid when stored; a deployment setting changed since. Retrying cannot help.
        log.error("schedule %s: its job template is refused now: %s", schedule["jobId"], exc)
        return {"scheduleId": schedule["jobId"], "error": f"job.{exc}"}
    job["jobId"], job["scheduleId"], job["scheduledAt"] = new_id, schedule["jobId"], moment
    if not job["name"] and schedule.get("name"):
        job["name"] = schedule["name"]
    api_url = config.api_url() or schedule["apiUrl"]
    try:
        made, created = lifecycle.start_once(job, {**body, "scheduleId": schedule["jobId"], "scheduledAt": moment},
                                             api_url)
    except lifecycle.Conflict:  # the template changed since the first delivery made the job: it stands
        return {"scheduleId": schedule["jobId"], "jobId": new_id, "created": False}
    return {"scheduleId": schedule["jobId"], "jobId": made["jobId"], "created": created}


def _cancel(previous: str) -> None:
    try:
        lifecycle.cancel(previous)
    except (lifecycle.Conflict, lifecycle.NotFound):
        pass  # it ended meanwhile


def _skip(schedule: dict[str, Any], moment: str, running: list[str]) -> dict[str, Any]:
    try:
        answer = aws.dynamodb().update_item(
            TableName=config.jobs_table(), Key={"jobId": {"S": schedule["jobId"]}},
            UpdateExpression="SET skippedRuns = if_not_exists(skippedRuns, :zero) + :one, lastSkippedAt = :at",
            ConditionExpression="attribute_exists(jobId) AND "
                                "(attribute_not_exists(lastSkippedAt) OR lastSkippedAt < :at)",
            ExpressionAttributeValues={":zero": {"N": "0"}, ":one": {"N": "1"}, ":at": {"S": moment}},
            ReturnValues="ALL_NEW")
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
            raise
        return {"scheduleId": schedule["jobId"], "skipped": True, "counted": False}
    skipped = store.from_item(answer["Attributes"])["skippedRuns"]
    detail = {"scheduleId": schedule["jobId"], "name": schedule.get("name"), "scheduledTime": moment,
              "reason": "overlap skip: the previous job has not ended", "runningJobs": running,
              "skippedRuns": skipped}
    events.publish([{"Source": events.SOURCE, "DetailType": SKIPPED, "Detail": json.dumps(detail),
                     "Resources": []}])
    return {"scheduleId": schedule["jobId"], "skipped": True, "counted": True}
