"""The job: its fields, how a request body becomes one, and its statuses.

A body is checked before anything is written: first against the OpenAPI
document's ``JobBody`` schema (:mod:`.schema`), then here for what a schema
cannot say (one field against another, the deployment's account, region and
secret prefixes). Every problem is a :class:`JobError` naming the field, which
the API turns into a 400.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, NotRequired, TypedDict

from . import bootstrap, config, resources, schema, times
from .schema import JobError
from .statuses import (  # noqa: F401  (re-exported: the job's statuses, defined in .statuses)
    CANCELLED,
    FAILED,
    FINISHED_NOK,
    FINISHED_OK,
    INTERRUPTED,
    REQUESTED,
    RUNNING,
    SCHEDULED,
    STATUSES,
    TERMINAL,
    TERMINATED_NOK,
    TERMINATED_OK,
    TIMED_OUT,
)
from .times import now, timestamp

MAX_AHEAD = timedelta(days=365)
WORKFLOW_MARGIN = timedelta(days=1)
MIN_PRICE = Decimal("0.001")
_DEFAULTS = {name: field["default"] for name, field in schema.component(schema.JOB_BODY)["properties"].items()
             if "default" in field}
# Fields of the stored record that no API response may carry.
PRIVATE_FIELDS = frozenset({"taskToken", "secretHash", "kind", "sortKey", "idempotencyKey", "bodyHash",
                            "retryDue"})


class Attempt(TypedDict, total=False):
    """One instance's go at the job: written by the workflow when it launches, closed when it ends."""

    instanceId: str
    instanceType: str
    lifecycle: str
    subnetId: str
    launchedAt: str
    endedAt: str
    outcome: str
    availabilityZone: str
    spotPrice: str | None
    onDemandPrice: str | None
    exitCode: int


class Job(TypedDict):
    """A job as stored: what :func:`new_job` writes, then what storing it, the workflow and the API add."""

    jobId: str
    name: str
    image: str
    scheduledAt: str
    env: dict[str, str]
    instanceTypes: list[str]
    maxRuntimeSeconds: int
    capacity: str
    maxAttempts: int
    status: str
    statusReason: str
    createdAt: str
    updatedAt: str
    attempts: list[Attempt]
    command: NotRequired[list[str]]
    heartbeatSeconds: NotRequired[int]
    secrets: NotRequired[dict[str, str]]
    finishBy: NotRequired[str]
    executionArn: NotRequired[str]
    secretHash: NotRequired[str]
    bodyHash: NotRequired[str]
    kind: NotRequired[str]
    sortKey: NotRequired[str]
    taskToken: NotRequired[str]
    instanceId: NotRequired[str]
    capacityRequests: NotRequired[int]
    exitCode: NotRequired[int]
    requestedAt: NotRequired[str]
    runningAt: NotRequired[str]
    finishedAt: NotRequired[str]
    endedAt: NotRequired[str]
    cancelRequested: NotRequired[str]
    cost: NotRequired[dict[str, Any]]
    scheduleId: NotRequired[str]
    submittedBy: NotRequired[str]
    maxPrice: NotRequired[str]
    retry: NotRequired[dict[str, Any]]
    failedRuns: NotRequired[int]
    retryDue: NotRequired[str]
    debug: NotRequired[dict[str, int]]
    holdUntil: NotRequired[str]
    resources: NotRequired[dict[str, Any]]


def parse_time(field: str, value: str) -> datetime:
    """A date-time the schema let through (its form) as an aware datetime, if the calendar has it."""
    try:
        return times.parse(value)
    except ValueError as exc:
        raise JobError(field, f"is not a valid date-time ({exc})") from None


def new_job(body: Any, submitted_by: str | None = None) -> Job:
    """Validate a ``POST /jobs`` body and return the job record to store (status ``Scheduled``).

    ``submitted_by`` is the caller as the API knows it (never a body field: the schema refuses one).
    """
    schema.validate(schema.JOB_BODY, body)
    created = now()
    runtime: int = body.get("maxRuntimeSeconds", _DEFAULTS["maxRuntimeSeconds"])
    scheduled = _scheduled_at(body.get("scheduledAt"), created, runtime)
    job: Job = {
        "jobId": str(uuid.uuid4()),
        "name": _name(body.get("name")),
        "image": _image(body["image"]),
        "scheduledAt": timestamp(scheduled),
        "env": dict(body.get("env", {})),
        "instanceTypes": _instance_types(body),
        "maxRuntimeSeconds": runtime,
        "capacity": body.get("capacity", _DEFAULTS["capacity"]),
        "maxAttempts": body.get("maxAttempts", config.max_attempts()),
        "status": SCHEDULED,
        "statusReason": "waiting for scheduledAt",
        "createdAt": timestamp(created),
        "updatedAt": timestamp(created),
        "attempts": [],
    }
    if body.get("command") is not None:
        job["command"] = list(body["command"])
    if body.get("heartbeatSeconds") is not None:
        job["heartbeatSeconds"] = _heartbeat(body["heartbeatSeconds"], runtime)
    if body.get("secrets") is not None:
        job["secrets"] = _secrets(body["secrets"])
    if body.get("finishBy") is not None:
        job["finishBy"] = _finish_by(body["finishBy"], scheduled, runtime)
    if body.get("maxPrice") is not None:
        job["maxPrice"] = _max_price(body["maxPrice"], job["capacity"])
    if body.get("retry") is not None:
        job["retry"] = _retry(body["retry"], scheduled, created, runtime)
    if body.get("debug") is not None:
        job["debug"] = dict(body["debug"])
    if body.get("resources") is not None:
        job["resources"] = dict(body["resources"])
    if submitted_by is not None:
        job["submittedBy"] = submitted_by
    return job


def public(job: Mapping[str, Any]) -> dict[str, Any]:
    """The job as the API returns it: never the task token or the callback secret's hash."""
    view = {k: _uniform_time(k, v) for k, v in job.items() if k not in PRIVATE_FIELDS}
    view["attempts"] = [{k: _uniform_time(k, v) for k, v in a.items()} for a in job.get("attempts", [])]
    view.setdefault("exitCode", None)
    view.setdefault("executionArn", None)
    view.setdefault("attempts", [])
    if view.get("status") in TERMINAL:
        view.pop("holdUntil", None)  # shown while held only
    return view


def _uniform_time(field: str, value: Any) -> Any:
    # The workflow writes Step Functions' own timestamps (fractions, +00:00);
    # the API shows every time as the runtime writes it: UTC to the second with a Z.
    if not (field.endswith("At") and isinstance(value, str) and "T" in value):
        return value
    try:
        return timestamp(times.parse(value))
    except ValueError:
        return value


def _scheduled_at(value: str | None, created: datetime, runtime: int) -> datetime:
    if value is None:
        return created
    moment = parse_time("scheduledAt", value)
    # The whole execution (wait, capacity, run) must fit a workflow's one-year limit.
    if moment + timedelta(seconds=runtime) + WORKFLOW_MARGIN - created > MAX_AHEAD:
        raise JobError("scheduledAt", "is too far ahead: a job must start and end within a year "
                                      "(scheduledAt + maxRuntimeSeconds + one day)")
    return max(moment, created)


def _finish_by(value: str, scheduled: datetime, runtime: int) -> str:
    moment = parse_time("finishBy", value)
    if moment < scheduled + timedelta(seconds=runtime):
        raise JobError("finishBy", "must leave room for maxRuntimeSeconds after scheduledAt")
    return timestamp(moment)


def _instance_types(body: Mapping[str, Any]) -> list[str]:
    # Named types, the types that meet the job's resources (resolved once, now), or the deployment's default.
    if body.get("resources") is not None:
        if body.get("instanceTypes") is not None:
            raise JobError("resources", "and instanceTypes are two ways to choose instances: give one")
        return resources.instance_types(body["resources"])
    return list(body.get("instanceTypes") or config.default_instance_types())


def _max_price(value: str, capacity: str) -> str:
    # EC2 refuses a maximum Spot price of USD 0.001 or less (InvalidParameterValue) when it launches.
    if Decimal(value) <= MIN_PRICE:
        raise JobError("maxPrice", f"must be more than {MIN_PRICE} (EC2's least maximum Spot price)")
    if capacity == "on-demand":
        raise JobError("maxPrice", "caps the Spot price, and capacity on-demand never uses Spot")
    return value


def _retry(value: dict[str, Any], scheduled: datetime, created: datetime, runtime: int) -> dict[str, Any]:
    retry = {"delaySeconds": 0, **value}
    # Every run, and the wait before each, must fit the workflow's one-year limit too.
    runs = retry["attempts"] * runtime + (retry["attempts"] - 1) * retry["delaySeconds"]
    if scheduled + timedelta(seconds=runs) + WORKFLOW_MARGIN - created > MAX_AHEAD:
        raise JobError("retry", "would not end within a year: scheduledAt + attempts x maxRuntimeSeconds "
                                "+ the delays between runs + one day")
    return retry


def rerun(job: Mapping[str, Any], status: str, exit_code: int) -> str | None:
    """Why the failed run that just ended gets another ("run 2 of 3 after exit 3"), or None if it does not."""
    retry = job.get("retry")
    if not retry or status != FINISHED_NOK:
        return None
    if retry.get("onExitCodes") and exit_code not in retry["onExitCodes"]:
        return None
    run = int(job.get("failedRuns", 0)) + 1
    if run >= retry["attempts"]:
        return None
    return f"run {run + 1} of {retry['attempts']} after exit {exit_code}"


def hold_until(job: Mapping[str, Any], status: str, retry_due: str | None, moment: datetime) -> str | None:
    """Until when the instance of a run that ends the job FinishedNOK stays up for debugging, or None."""
    debug = job.get("debug")
    if not debug or status != FINISHED_NOK or retry_due:
        return None
    return timestamp(moment + timedelta(seconds=int(debug["keepOnFailureSeconds"])))


def _name(value: str | None) -> str:
    # The schema's pattern refuses control characters; what else does not print, a regex here cannot say.
    if value is not None and not value.isprintable():
        raise JobError("name", f"must be {schema.component(schema.JOB_BODY)['properties']['name']['description']}")
    return value or ""


def _image(value: str) -> str:
    ecr = bootstrap.ECR_IMAGE.match(value)
    if ecr:
        _check_home("image", "an ECR image", ecr["account"], ecr["region"])
    return value


def _check_home(field: str, what: str, account: str, region: str) -> None:
    """Refuse what the instance role cannot read: another account's or region's, unless the stack allows it."""
    if config.cross_account_allowed():
        return
    home_account, home_region = config.account_id(), config.region()
    if (account, region) != (home_account, home_region):
        raise JobError(field, f"is {what} of account {account} in {region}; this deployment reads only account "
                              f"{home_account} in {home_region} (deploy with -c allowCrossAccount=true to allow "
                              "other accounts and regions)")


def _heartbeat(value: int, runtime: int) -> int:
    # Step Functions requires a task's HeartbeatSeconds to be shorter than its TimeoutSeconds.
    if value >= runtime:
        raise JobError("heartbeatSeconds", f"must be less than maxRuntimeSeconds ({runtime})")
    return value


def _secrets(value: dict[str, str]) -> dict[str, str]:
    for name, ref in value.items():
        field = f"secrets.{name}"
        # The instance role may read only under these prefixes: refuse now what would fail at boot.
        parameters, names = config.secret_parameter_prefix(), config.secret_name_prefix()
        if ref.startswith("arn:"):  # the schema allows only a Secrets Manager ARN here
            if not ref.split(":secret:", 1)[1].startswith(names):
                raise JobError(field, f"must name a secret under {names}")
            region, account = ref.split(":")[3:5]
            _check_home(field, "a secret", account, region)
        elif not ref.startswith(parameters):
            raise JobError(field, f"must name a parameter under {parameters}")
    return dict(value)
