"""Recurring schedules: a job template, an expression, and the record of what the schedule did.

A schedule lives in two places. The job table holds its record (``kind``
``schedule``, its id in the table's key attribute; single-table design, so
no second table and no new grant), with the job template, ``skippedRuns``
and the API URL its jobs call back to. EventBridge Scheduler holds the
schedule that fires (:mod:`.scheduler`), one per record, in the stack's
group; each firing reaches :mod:`.firing`.

A body is validated before anything is written: the OpenAPI document's
``ScheduleBody`` (whose ``job`` is the job schema without ``scheduledAt``),
then here what a schema cannot say: the expression and time zone
(:mod:`.cron`), ``endAt`` after ``startAt``, and the job template as
``POST /jobs`` checks it (its messages prefixed ``job.``).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from . import aws, config, cron, jobs, lifecycle, pages, scheduler, schema, store, times
from .schema import JobError
from .statuses import TERMINAL

KIND = "schedule"
ID_PREFIX = "sch-"
LAST_JOBS = 5
DEFAULT_LIMIT, MAX_LIMIT = 50, 100
TOKEN_LIST = "schedules"  # what a GET /schedules page token says it continues
# Fields of the stored record no response carries (the key attribute is shown as scheduleId).
PRIVATE_FIELDS = frozenset({"jobId", "kind", "sortKey", "apiUrl"})
_DEFAULTS = {name: field["default"] for name, field in schema.component(schema.SCHEDULE_BODY)["properties"].items()
             if "default" in field}


class NotFound(Exception):
    """No schedule with that id."""


def create(body: Any, api_url: str, caller: str | None) -> dict[str, Any]:
    """Validate, store and arm a schedule; the stored record."""
    schema.validate(schema.SCHEDULE_BODY, body)
    settings = {**_DEFAULTS, **{k: v for k, v in body.items() if v is not None}}
    check(settings, api_url)
    now = times.now()
    moment = times.timestamp(now)
    schedule_id = ID_PREFIX + uuid.uuid4().hex
    # Microseconds in the (private) sort key: schedules made within a second still list newest first.
    order = now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    record = {**settings, "jobId": schedule_id, "kind": KIND, "sortKey": f"{order}#{schedule_id}",
              "createdAt": moment, "updatedAt": moment, "skippedRuns": 0, "apiUrl": api_url,
              "submittedBy": caller}
    item = store.to_item(record)
    aws.dynamodb().put_item(TableName=config.jobs_table(), Item=item, ConditionExpression="attribute_not_exists(jobId)")
    try:
        scheduler.put(record, create=True)
    except ClientError as exc:
        aws.dynamodb().delete_item(TableName=config.jobs_table(), Key={"jobId": {"S": schedule_id}})
        if exc.response["Error"]["Code"] == "ValidationException":  # what our checks let through, AWS did not
            raise JobError("expression", f"EventBridge Scheduler refused the schedule: "
                                         f"{exc.response['Error'].get('Message', '')}") from None
        raise
    return record


def update(schedule_id: str, body: Any) -> dict[str, Any]:
    """Change the fields given (re-checked as a whole); the stored record."""
    schema.validate(schema.SCHEDULE_PATCH, body)
    record = get(schedule_id)
    changes = {k: v for k, v in body.items() if v is not None}
    removed = tuple(k for k, v in body.items() if v is None)  # endAt or name: null clears it
    merged = {k: v for k, v in {**_settings(record), **changes}.items() if k not in removed}
    schema.validate(schema.SCHEDULE_BODY, merged)
    check(merged, record["apiUrl"])
    values = {**changes, "updatedAt": times.timestamp(times.now())}
    names = {f"#f{i}": k for i, k in enumerate(values)}
    expression = "SET " + ", ".join(f"#f{i} = :v{i}" for i in range(len(values)))
    if removed:
        names.update({f"#r{i}": k for i, k in enumerate(removed)})
        expression += " REMOVE " + ", ".join(f"#r{i}" for i in range(len(removed)))
    try:
        answer = aws.dynamodb().update_item(
            TableName=config.jobs_table(), Key={"jobId": {"S": schedule_id}}, UpdateExpression=expression,
            ConditionExpression="attribute_exists(jobId)", ExpressionAttributeNames=names,
            ExpressionAttributeValues={f":v{i}": v for i, v in enumerate(store.to_item(values).values())},
            ReturnValues="ALL_NEW")
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":  # deleted meanwhile
            raise NotFound(schedule_id) from None
        raise
    updated = store.from_item(answer["Attributes"])
    scheduler.put(updated, create=False)
    return updated


def delete(schedule_id: str) -> None:
    """Stop the firings, then forget the schedule; the jobs it made go on."""
    get(schedule_id)
    scheduler.delete(schedule_id)
    aws.dynamodb().delete_item(TableName=config.jobs_table(), Key={"jobId": {"S": schedule_id}})


def get(schedule_id: str) -> dict[str, Any]:
    """The stored schedule, or :class:`NotFound`."""
    found = find(schedule_id)
    if found is None:
        raise NotFound(schedule_id)
    return found


def find(schedule_id: str) -> dict[str, Any] | None:
    """The stored schedule, or ``None`` (ids of another form name nothing and cost no read)."""
    if not store.SCHEDULE_ID.fullmatch(schedule_id):
        return None
    item = aws.dynamodb().get_item(TableName=config.jobs_table(), Key={"jobId": {"S": schedule_id}},
                                   ConsistentRead=True).get("Item")
    record = store.from_item(item) if item else None
    return record if record and record.get("kind") == KIND else None


def parse_query(params: Mapping[str, str]) -> tuple[int, str | None]:
    """``limit`` and ``nextToken`` of ``GET /schedules``."""
    pages.refuse_unknown(params, ("limit", "nextToken"))
    return pages.limit(params, DEFAULT_LIMIT, MAX_LIMIT), pages.token(params)


def page(limit: int, next_token: str | None) -> tuple[list[dict[str, Any]], str | None]:
    """One page of schedules, newest first, from the byTime index's ``schedule`` partition."""
    args: dict[str, Any] = {
        "TableName": config.jobs_table(), "IndexName": store.BY_TIME, "KeyConditionExpression": "#k = :k",
        "ExpressionAttributeNames": {"#k": "kind"}, "ExpressionAttributeValues": {":k": {"S": KIND}},
        "ScanIndexForward": False, "Limit": limit}
    if next_token:
        args["ExclusiveStartKey"] = _start_key(next_token)
    answer = aws.dynamodb().query(**args)
    last = answer.get("LastEvaluatedKey")
    return [store.from_item(i) for i in answer["Items"]], pages.encode({"i": TOKEN_LIST, "k": last}) if last else None


def _start_key(token: str) -> dict[str, Any]:
    # Only a token of this list: a job list's start key would lie outside the schedules' partition.
    position = pages.decode(token)
    key = position.get("k")
    if position.get("i") != TOKEN_LIST or not isinstance(key, dict) or key.get("kind") != {"S": KIND}:
        raise pages.BadToken()
    if set(key) != {"jobId", "sortKey", "kind"} or not all(
            isinstance(v, dict) and list(v) == ["S"] and isinstance(v["S"], str) for v in key.values()):
        raise pages.BadToken()
    return dict(key)


def public(record: Mapping[str, Any], now: datetime | None = None) -> dict[str, Any]:
    """The schedule as the API returns it: its next runs and latest jobs added."""
    view = {k: v for k, v in record.items() if k not in PRIVATE_FIELDS}
    view["scheduleId"] = record["jobId"]
    for name in ("name", "startAt", "endAt", "lastSkippedAt", "submittedBy"):
        view.setdefault(name, None)
    view["nextRuns"] = [times.timestamp(t) for t in next_runs(record, now or times.now())]
    view["lastJobs"] = [{"jobId": j["jobId"], "status": j["status"], "scheduledAt": j["scheduledAt"]}
                        for j in latest_jobs(record["jobId"])]
    return view


def next_runs(record: Mapping[str, Any], now: datetime, count: int = 3) -> list[datetime]:
    """The next firing times of an enabled schedule (none while paused)."""
    if not record.get("enabled", True):
        return []
    expression, tz = cron.parse(record["expression"]), cron.zone(record["timezone"])
    start = times.parse(record["startAt"]) if record.get("startAt") else None
    end = times.parse(record["endAt"]) if record.get("endAt") else None
    after = max(now, start - timedelta(microseconds=1)) if start else now
    return cron.next_runs(expression, tz, after, start or times.parse(record["createdAt"]), end, count)


def latest_jobs(schedule_id: str, limit: int = LAST_JOBS) -> list[jobs.Job]:
    """The newest jobs the schedule made, newest firing first."""
    found, _ = store.list_jobs(None, limit, None, schedule_id=schedule_id)
    return found


def running_jobs(schedule_id: str, other_than: str) -> list[jobs.Job]:
    """The schedule's latest jobs that have not ended (the overlap rule's 'previous job')."""
    return [j for j in latest_jobs(schedule_id) if j["status"] not in TERMINAL and j["jobId"] != other_than]


def check(settings: Mapping[str, Any], api_url: str) -> None:
    """What the schema cannot say about a schedule; :class:`JobError` naming the field."""
    try:
        cron.parse(settings["expression"])
        cron.zone(settings["timezone"])
    except cron.ExpressionError as exc:
        raise JobError(exc.field, str(exc)) from None
    start = jobs.parse_time("startAt", settings["startAt"]) if settings.get("startAt") else None
    end = jobs.parse_time("endAt", settings["endAt"]) if settings.get("endAt") else None
    if end is not None and start is not None and end <= start:
        raise JobError("endAt", "must be after startAt")
    if end is not None and end <= times.now():
        raise JobError("endAt", "is in the past: the schedule would never fire")
    try:
        lifecycle.check_user_data(jobs.new_job(settings["job"]), api_url)
    except JobError as exc:
        raise JobError(f"job.{exc.field}", str(exc).split(": ", 1)[1]) from None


def _settings(record: Mapping[str, Any]) -> dict[str, Any]:
    # The body fields of a stored schedule: what PATCH merges its changes into.
    allowed = schema.component(schema.SCHEDULE_BODY)["properties"]
    return {k: v for k, v in record.items() if k in allowed}

