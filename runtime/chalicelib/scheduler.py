"""The EventBridge Scheduler side of a schedule: one schedule per record, in the stack's group.

Each schedule invokes ``on_schedule`` (as the scheduler role, which may
invoke nothing else) with the schedule id and EventBridge Scheduler's own
firing time, ``<aws.scheduler.scheduled-time>``: the one fact a repeated
delivery shares with the first, and so the key of exactly-once (:mod:`.firing`).
``FlexibleTimeWindow`` is off: a firing is due at its time. A firing that
cannot be delivered after the retries goes to the dead-letter queue, which an
alarm watches.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, cast

from botocore.exceptions import ClientError

from . import aws, config, times

if TYPE_CHECKING:  # the stubs are a development dependency; Lambda has none
    from mypy_boto3_scheduler import EventBridgeSchedulerClient

SCHEDULED_TIME = "<aws.scheduler.scheduled-time>"
# Within the hour a firing is still worth a job; past it, it is dropped to the dead letters.
RETRY_POLICY = {"MaximumRetryAttempts": 10, "MaximumEventAgeInSeconds": 3600}


def client() -> EventBridgeSchedulerClient:
    """EventBridge Scheduler client."""
    return cast("EventBridgeSchedulerClient", aws.client("scheduler"))


def target_input(schedule_id: str) -> str:
    """What each firing hands ``on_schedule``: the schedule and the time it fired for."""
    return json.dumps({"scheduleId": schedule_id, "scheduledTime": SCHEDULED_TIME})


def put(record: Mapping[str, Any], create: bool) -> None:
    """Create the record's schedule, or replace it with the record's settings (UpdateSchedule replaces all)."""
    target: dict[str, Any] = {"Arn": config.schedule_target_arn(), "RoleArn": config.scheduler_role_arn(),
                              "Input": target_input(record["jobId"]), "RetryPolicy": RETRY_POLICY}
    dead_letters = config.schedule_dead_letter_arn()
    if dead_letters:
        target["DeadLetterConfig"] = {"Arn": dead_letters}
    args: dict[str, Any] = {
        "Name": record["jobId"], "GroupName": config.schedule_group(),
        "ScheduleExpression": record["expression"], "ScheduleExpressionTimezone": record["timezone"],
        "FlexibleTimeWindow": {"Mode": "OFF"}, "Target": target,
        "State": "ENABLED" if record.get("enabled", True) else "DISABLED",
        "Description": (record.get("name") or "")[:512],
    }
    # EventBridge Scheduler refuses a start in the past; a schedule that has started needs none.
    if record.get("startAt") and times.parse(record["startAt"]) > times.now():
        args["StartDate"] = times.parse(record["startAt"])
    if record.get("endAt"):
        args["EndDate"] = times.parse(record["endAt"])
    if create:
        client().create_schedule(**args)
    else:
        client().update_schedule(**args)


def delete(schedule_id: str) -> None:
    """Delete the schedule (already gone is fine: a delete that failed half-way is repeated)."""
    try:
        client().delete_schedule(Name=schedule_id, GroupName=config.schedule_group())
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "ResourceNotFoundException":
            raise
