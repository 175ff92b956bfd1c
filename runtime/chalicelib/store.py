"""The job table in DynamoDB.

Every status change is a conditional write naming the statuses it may leave,
so a duplicate, a late message or a race can never move a job backwards.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from decimal import Decimal
from typing import Any, cast

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from . import aws, config, pages
from .jobs import Attempt, Job
from .schema import JobError
from .statuses import STATUSES, TERMINAL, check_write

BY_STATUS = "byStatus"
BY_TIME = "byTime"
# The jobs a recurring schedule made, newest firing first (only they carry scheduleId).
BY_SCHEDULE = "bySchedule"
SCHEDULE_ID = re.compile(r"sch-[0-9a-f]{32}")
# Every job carries kind=job so the byTime index lists them all in time order.
KIND = "job"
# GET /jobs: a page holds 1 to MAX_LIMIT jobs, DEFAULT_LIMIT unless asked.
DEFAULT_LIMIT = 50
MAX_LIMIT = 100

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


class AlreadyExists(Exception):
    """A job with that id is already stored."""


def table_definition(name: str) -> dict[str, Any]:
    """CreateTable arguments for the job table (used by the tests and the local stack; CDK mirrors it)."""
    projection = {"ProjectionType": "ALL"}
    return {
        "TableName": name,
        "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": [
            {"AttributeName": attr, "AttributeType": "S"}
            for attr in ("jobId", "status", "kind", "sortKey", "scheduleId")
        ],
        "KeySchema": [{"AttributeName": "jobId", "KeyType": "HASH"}],
        "GlobalSecondaryIndexes": [
            {"IndexName": BY_STATUS, "Projection": projection, "KeySchema": [
                {"AttributeName": "status", "KeyType": "HASH"}, {"AttributeName": "sortKey", "KeyType": "RANGE"}]},
            {"IndexName": BY_TIME, "Projection": projection, "KeySchema": [
                {"AttributeName": "kind", "KeyType": "HASH"}, {"AttributeName": "sortKey", "KeyType": "RANGE"}]},
            {"IndexName": BY_SCHEDULE, "Projection": projection, "KeySchema": [
                {"AttributeName": "scheduleId", "KeyType": "HASH"},
                {"AttributeName": "sortKey", "KeyType": "RANGE"}]},
        ],
    }


def to_item(record: Mapping[str, Any]) -> dict[str, Any]:
    """A plain dict as a DynamoDB item (``None`` values are left out)."""
    return {k: _serializer.serialize(_number(v)) for k, v in record.items() if v is not None}


def _number(value: Any) -> Any:
    # DynamoDB numbers are decimals: a float (memoryGiB 0.5) goes in by its shortest repr, exactly.
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, dict):
        return {k: _number(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_number(v) for v in value]
    return value


def from_item(item: dict[str, Any]) -> dict[str, Any]:
    """A DynamoDB item as a plain dict, numbers as ``int``."""
    return {k: _plain(_deserializer.deserialize(v)) for k, v in item.items()}


def put_new(job: Job) -> None:
    """Store a new job; :class:`AlreadyExists` if the id is taken (an idempotency key's race)."""
    record = {**job, "kind": KIND, "sortKey": f"{job['scheduledAt']}#{job['jobId']}"}
    try:
        aws.dynamodb().put_item(TableName=config.jobs_table(), Item=to_item(record),
                                ConditionExpression="attribute_not_exists(jobId)")
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
            raise AlreadyExists(job["jobId"]) from None
        raise


def get(job_id: str) -> Job | None:
    """The stored job, or ``None``."""
    item = aws.dynamodb().get_item(TableName=config.jobs_table(), Key=_key(job_id), ConsistentRead=True)
    return cast(Job, from_item(item["Item"])) if "Item" in item else None


def update(job_id: str, values: dict[str, Any], *, allowed_from: tuple[str, ...] = (),
           not_in: tuple[str, ...] = (), condition: str = "", expected: dict[str, Any] | None = None,
           remove: tuple[str, ...] = ()) -> Job | None:
    """Set ``values`` on the job if its status is in ``allowed_from`` (and not in ``not_in``).

    ``condition`` is extra DynamoDB condition text without placeholders (for
    example ``attribute_not_exists(cancelRequested)``); ``expected`` maps
    attributes to the values they must still have. Returns the job as
    written, or ``None`` when the condition refused the write. A guard that
    would let the write make a move the statuses' table does not allow is a
    ``ValueError`` before anything is sent.
    """
    check_write(values.get("status"), allowed_from, not_in)
    names = {f"#f{i}": k for i, k in enumerate(values)}
    attr_values = {f":v{i}": _serializer.serialize(v) for i, v in enumerate(values.values())}
    expression = "SET " + ", ".join(f"#f{i} = :v{i}" for i in range(len(values)))
    if remove:
        names.update({f"#r{i}": k for i, k in enumerate(remove)})
        expression += " REMOVE " + ", ".join(f"#r{i}" for i in range(len(remove)))
    conditions = ["attribute_exists(jobId)"]
    for prefix, statuses, template in (("a", allowed_from, "#status IN ({})"),
                                       ("n", not_in, "NOT (#status IN ({}))")):
        if statuses:
            names["#status"] = "status"
            placeholders: dict[str, Any] = {f":{prefix}{i}": {"S": s} for i, s in enumerate(statuses)}
            attr_values.update(placeholders)
            conditions.append(template.format(", ".join(placeholders)))
    for i, (attribute, value) in enumerate((expected or {}).items()):
        names[f"#e{i}"] = attribute
        attr_values[f":e{i}"] = _serializer.serialize(value)
        conditions.append(f"#e{i} = :e{i}")
    if condition:
        conditions.append(condition)
    try:
        result = aws.dynamodb().update_item(
            TableName=config.jobs_table(), Key=_key(job_id), UpdateExpression=expression,
            ConditionExpression=" AND ".join(conditions), ExpressionAttributeNames=names,
            ExpressionAttributeValues=attr_values, ReturnValues="ALL_NEW")
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
            return None
        raise
    return cast(Job, from_item(result["Attributes"]))


def end_if_not_terminal(job_id: str, status: str, reason: str, moment: str,
                        attempts: list[Attempt] | None = None) -> Job | None:
    """Move the job to a terminal status unless it already has one (optionally closing its attempts)."""
    values: dict[str, Any] = {"status": status, "statusReason": reason, "updatedAt": moment, "endedAt": moment}
    if attempts is not None:
        values["attempts"] = attempts
    return update(job_id, values, not_in=tuple(sorted(TERMINAL)), remove=("taskToken",))


def parse_query(params: Mapping[str, str]) -> tuple[str | None, int, str | None]:
    """``status``, ``limit`` and ``nextToken`` of ``GET /jobs``, validated (a ``JobError`` names the culprit)."""
    pages.refuse_unknown(params, ("status", "limit", "nextToken", "scheduleId"))
    status = params.get("status")
    if status is not None and status not in STATUSES:
        raise JobError("status", f"must be one of {', '.join(STATUSES)}")
    schedule_id = params.get("scheduleId")
    if schedule_id is not None and status is not None:
        raise JobError("scheduleId", "cannot be combined with status")
    if schedule_id is not None and not SCHEDULE_ID.fullmatch(schedule_id):
        raise JobError("scheduleId", "must be a schedule id: sch- and 32 hexadecimal digits")
    return status, pages.limit(params, DEFAULT_LIMIT, MAX_LIMIT), pages.token(params)


def list_jobs(status: str | None, limit: int, next_token: str | None,
              due_before: str | None = None, schedule_id: str | None = None) -> tuple[list[Job], str | None]:
    """One page of jobs, newest scheduledAt first, from an index (never a table scan).

    ``due_before`` (with a status) keeps to jobs scheduled before that moment.
    This is the API's own page (Limit and ExclusiveStartKey), so it is one
    Query call rather than a paginator; :func:`each_job` reads them all.
    ``schedule_id`` lists the jobs that schedule made instead.
    """
    args = _query(status, due_before) if schedule_id is None else _schedule_query(schedule_id)
    if next_token:
        args["ExclusiveStartKey"] = decode_token(next_token, args["IndexName"])
        # A page of one schedule's jobs continues only that schedule's list (another's key is outside the query).
        if schedule_id is not None and args["ExclusiveStartKey"]["scheduleId"] != {"S": schedule_id}:
            raise pages.BadToken()
    page = aws.dynamodb().query(**args, Limit=limit)
    last = page.get("LastEvaluatedKey")
    return [cast(Job, from_item(i)) for i in page["Items"]], (encode_token(last, args["IndexName"]) if last else None)


def each_job(status: str, due_before: str | None = None, page_size: int = 100) -> Iterator[Job]:
    """Every job with the status, newest scheduledAt first, read a page at a time as it is consumed."""
    paginator = aws.dynamodb().get_paginator("query")
    for page in paginator.paginate(**_query(status, due_before), PaginationConfig={"PageSize": page_size}):
        for item in page["Items"]:
            yield cast(Job, from_item(item))


def encode_token(key: dict[str, Any], index: str) -> str:
    """The page token for the next ``list_jobs`` call: the index and the start key."""
    return pages.encode({"i": index, "k": key})


def decode_token(token: str, index: str) -> dict[str, Any]:
    """The start key inside a page token; :class:`pages.BadToken` if it is not one of ours for this list."""
    position = pages.decode(token)
    key = position.get("k")
    expected = {"jobId", "sortKey", {BY_STATUS: "status", BY_SCHEDULE: "scheduleId"}.get(index, "kind")}
    if position.get("i") != index or not isinstance(key, dict) or set(key) != expected:
        raise pages.BadToken()
    if not all(isinstance(v, dict) and isinstance(v.get("S"), str) and len(v) == 1 for v in key.values()):
        raise pages.BadToken()
    return dict(key)


def _query(status: str | None, due_before: str | None) -> dict[str, Any]:
    # The Query arguments for jobs of one status (byStatus) or of any (byTime), newest first.
    if status:
        index, key_condition, values = BY_STATUS, "#p = :p", {":p": {"S": status}}
        names = {"#p": "status"}
        if due_before:
            key_condition += " AND sortKey < :before"
            values[":before"] = {"S": due_before}
    else:
        index, key_condition, values = BY_TIME, "#p = :p", {":p": {"S": KIND}}
        names = {"#p": "kind"}
    return {"TableName": config.jobs_table(), "IndexName": index, "KeyConditionExpression": key_condition,
            "ExpressionAttributeNames": names, "ExpressionAttributeValues": values, "ScanIndexForward": False}


def _schedule_query(schedule_id: str) -> dict[str, Any]:
    # The Query arguments for the jobs one schedule made, newest firing first.
    return {"TableName": config.jobs_table(), "IndexName": BY_SCHEDULE, "KeyConditionExpression": "scheduleId = :s",
            "ExpressionAttributeValues": {":s": {"S": schedule_id}}, "ScanIndexForward": False}


def _key(job_id: str) -> dict[str, Any]:
    return {"jobId": {"S": job_id}}


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, set):
        return sorted(_plain(v) for v in value)
    return value
