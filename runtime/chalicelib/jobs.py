"""The job: its fields, how a request body becomes one, and its statuses.

Validation happens here, before anything is written: every problem is a
:class:`JobError` naming the field, which the API turns into a 400.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from . import bootstrap, config

SCHEDULED = "Scheduled"
REQUESTED = "Requested"
RUNNING = "Running"
FINISHED_OK = "FinishedOK"
FINISHED_NOK = "FinishedNOK"
INTERRUPTED = "Interrupted"
TERMINATED_OK = "TerminatedOK"
TERMINATED_NOK = "TerminatedNOK"
TIMED_OUT = "TimedOut"
CANCELLED = "Cancelled"
FAILED = "Failed"

TERMINAL = frozenset({TERMINATED_OK, TERMINATED_NOK, TIMED_OUT, CANCELLED, FAILED})
STATUSES = (SCHEDULED, REQUESTED, RUNNING, FINISHED_OK, FINISHED_NOK, INTERRUPTED, *sorted(TERMINAL))

CAPACITY_POLICIES = ("spot", "on-demand", "spot-then-on-demand")
MAX_AHEAD = timedelta(days=365)
WORKFLOW_MARGIN = timedelta(days=1)
MAX_RUNTIME_SECONDS = 30 * 24 * 3600
DEFAULT_RUNTIME_SECONDS = 3600

# Fields a job body may carry; anything else is refused rather than ignored.
FIELDS = frozenset({
    "image", "scheduledAt", "env", "command", "name", "instanceTypes", "maxRuntimeSeconds",
    "heartbeatSeconds", "capacity", "finishBy", "maxAttempts", "secrets",
})
# Fields of the stored record that no API response may carry.
PRIVATE_FIELDS = frozenset({"taskToken", "secretHash", "kind", "sortKey", "idempotencyKey", "bodyHash"})

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REGISTRY = re.compile(r"^(?:localhost|[a-zA-Z0-9](?:[a-zA-Z0-9.-]*[a-zA-Z0-9])?)(?::[0-9]{1,5})?$")
_REPOSITORY = re.compile(
    rf"^{_COMPONENT}(?:/{_COMPONENT})*(?::[A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}})?(?:@sha256:[a-f0-9]{{64}})?$"
)
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:Z|[+-]\d{2}:\d{2})$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
_INSTANCE_TYPE = re.compile(r"^[a-z][a-z0-9-]*\.[a-z0-9-]+$")
_SSM_NAME = re.compile(r"^(?:/[A-Za-z0-9_.\-]+)+$|^[A-Za-z0-9_.\-]+$")
_SECRET_ARN = re.compile(r"^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:[A-Za-z0-9/_+=.@\-]+$")


class JobError(ValueError):
    """A job body that cannot be accepted; ``field`` names the culprit."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


def now() -> datetime:
    """The current time in UTC (one place, so tests read clearly)."""
    return datetime.now(UTC)


def timestamp(moment: datetime) -> str:
    """RFC 3339 in UTC with a ``Z``, to the second: the one format we store and Step Functions reads."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(field: str, value: Any) -> datetime:
    """An RFC 3339 date-time with an explicit offset, as an aware datetime."""
    if not isinstance(value, str) or not _RFC3339.match(value):
        raise JobError(field, "must be an RFC 3339 date-time with an offset, like 2026-12-01T03:00:00Z")
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise JobError(field, f"is not a valid date-time ({exc})") from None


def new_job(body: Any) -> dict[str, Any]:
    """Validate a ``POST /jobs`` body and return the job record to store (status ``Scheduled``)."""
    if not isinstance(body, dict):
        raise JobError("body", "must be a JSON object")
    unknown = sorted(set(body) - FIELDS)
    if unknown:
        raise JobError(unknown[0], f"is not a job field (allowed: {', '.join(sorted(FIELDS))})")
    created = now()
    runtime = _int(body, "maxRuntimeSeconds", DEFAULT_RUNTIME_SECONDS, 1, MAX_RUNTIME_SECONDS)
    scheduled = _scheduled_at(body.get("scheduledAt"), created, runtime)
    job: dict[str, Any] = {
        "jobId": str(uuid.uuid4()),
        "name": _name(body.get("name")),
        "image": _image(body.get("image")),
        "scheduledAt": timestamp(scheduled),
        "env": _env("env", body.get("env", {})),
        "instanceTypes": _instance_types(body.get("instanceTypes")),
        "maxRuntimeSeconds": runtime,
        "capacity": _choice(body, "capacity", CAPACITY_POLICIES, "spot"),
        "maxAttempts": _int(body, "maxAttempts", config.max_attempts(), 1, 10),
        "status": SCHEDULED,
        "statusReason": "waiting for scheduledAt",
        "createdAt": timestamp(created),
        "updatedAt": timestamp(created),
        "attempts": [],
    }
    if body.get("command") is not None:
        job["command"] = _command(body["command"])
    if body.get("heartbeatSeconds") is not None:
        job["heartbeatSeconds"] = _heartbeat(body["heartbeatSeconds"], runtime)
    if body.get("secrets") is not None:
        job["secrets"] = _secrets(body["secrets"])
    if body.get("finishBy") is not None:
        job["finishBy"] = _finish_by(body["finishBy"], scheduled, runtime)
    return job


def public(job: dict[str, Any]) -> dict[str, Any]:
    """The job as the API returns it: never the task token or the callback secret's hash."""
    view = {k: _uniform_time(k, v) for k, v in job.items() if k not in PRIVATE_FIELDS}
    view["attempts"] = [{k: _uniform_time(k, v) for k, v in a.items()} for a in job.get("attempts", [])]
    view.setdefault("exitCode", None)
    view.setdefault("executionArn", None)
    view.setdefault("attempts", [])
    return view


def _uniform_time(field: str, value: Any) -> Any:
    # The workflow writes Step Functions' own timestamps (fractions, +00:00);
    # the API shows every time as the runtime writes it: UTC to the second with a Z.
    if not (field.endswith("At") and isinstance(value, str) and "T" in value):
        return value
    try:
        return timestamp(datetime.fromisoformat(value.replace("Z", "+00:00")))
    except ValueError:
        return value


def _scheduled_at(value: Any, created: datetime, runtime: int) -> datetime:
    if value is None:
        return created
    moment = parse_time("scheduledAt", value)
    # The whole execution (wait, capacity, run) must fit a workflow's one-year limit.
    if moment + timedelta(seconds=runtime) + WORKFLOW_MARGIN - created > MAX_AHEAD:
        raise JobError("scheduledAt", "is too far ahead: a job must start and end within a year "
                                      "(scheduledAt + maxRuntimeSeconds + one day)")
    return max(moment, created)


def _finish_by(value: Any, scheduled: datetime, runtime: int) -> str:
    moment = parse_time("finishBy", value)
    if moment < scheduled + timedelta(seconds=runtime):
        raise JobError("finishBy", "must leave room for maxRuntimeSeconds after scheduledAt")
    return timestamp(moment)


def _name(value: Any) -> str:
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > 128 or not value.isprintable():
        raise JobError("name", "must be a printable string of at most 128 characters")
    return value


def _image(value: Any) -> str:
    if value is None:
        raise JobError("image", "is required (a Docker image reference like python:3.12-slim)")
    if not isinstance(value, str) or len(value) > 255 or not _is_image(value):
        raise JobError("image", "must be a Docker image reference like python:3.12-slim or "
                                "123456789012.dkr.ecr.us-east-1.amazonaws.com/app:v1")
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


def _is_image(value: str) -> bool:
    # As docker parses it: the first part is a registry only if it has a dot, a
    # port or is localhost; otherwise the whole reference is a lowercase path.
    first, slash, rest = value.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        return bool(_REGISTRY.match(first) and _REPOSITORY.match(rest))
    return bool(_REPOSITORY.match(value))


def _text(field: str, value: Any, limit: int) -> str:
    if not isinstance(value, str):
        raise JobError(field, "must be a string")
    if "\x00" in value or len(value) > limit:
        raise JobError(field, f"must be at most {limit} characters, without NUL")
    return value


def _env(field: str, value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        raise JobError(field, "must be an object of NAME: \"value\" strings")
    if len(value) > 100:
        raise JobError(field, "may hold at most 100 variables")
    for name, item in value.items():
        if not _ENV_NAME.match(name):
            raise JobError(f"{field}.{name}", "is not a valid variable name (letters, digits, _; not first a digit)")
        _text(f"{field}.{name}", item, 8192)
    return dict(value)


def _command(value: Any) -> list[str]:
    if not isinstance(value, list) or not 1 <= len(value) <= 256:
        raise JobError("command", "must be a list of 1 to 256 strings")
    return [_text(f"command[{i}]", word, 8192) for i, word in enumerate(value)]


def _instance_types(value: Any) -> list[str]:
    if value is None:
        return config.default_instance_types()
    if not isinstance(value, list) or not 1 <= len(value) <= 20:
        raise JobError("instanceTypes", "must be a list of 1 to 20 instance types like m6i.large")
    for i, item in enumerate(value):
        if not isinstance(item, str) or len(item) > 64 or not _INSTANCE_TYPE.match(item):
            raise JobError(f"instanceTypes[{i}]", "is not an instance type like m6i.large")
    if len(set(value)) != len(value):
        raise JobError("instanceTypes", "lists an instance type twice")
    return list(value)


def _heartbeat(value: Any, runtime: int) -> int:
    # Step Functions requires a task's HeartbeatSeconds to be shorter than its TimeoutSeconds.
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise JobError("heartbeatSeconds", "must be a whole number of seconds from 1")
    if value >= runtime:
        raise JobError("heartbeatSeconds", f"must be less than maxRuntimeSeconds ({runtime})")
    return value


def _int(body: dict[str, Any], field: str, default: int | None, low: int, high: int) -> int:
    value = body.get(field, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise JobError(field, f"must be a whole number from {low} to {high}")
    return value


def _choice(body: dict[str, Any], field: str, allowed: tuple[str, ...], default: str) -> str:
    value = body.get(field, default)
    if value not in allowed:
        raise JobError(field, f"must be one of {', '.join(allowed)}")
    return str(value)


def _secrets(value: Any) -> dict[str, str]:
    if not isinstance(value, dict) or len(value) > 50:
        raise JobError("secrets", "must be an object of NAME: parameter name or Secrets Manager ARN")
    for name, ref in value.items():
        field = f"secrets.{name}"
        if not _ENV_NAME.match(name):
            raise JobError(field, "is not a valid variable name")
        if not isinstance(ref, str) or len(ref) > 2048 or not (_SSM_NAME.match(ref) or _SECRET_ARN.match(ref)):
            raise JobError(field, "must be an SSM parameter name or a Secrets Manager secret ARN")
        # The instance role may read only under these prefixes: refuse now what would fail at boot.
        parameters, names = config.secret_parameter_prefix(), config.secret_name_prefix()
        if _SECRET_ARN.match(ref):
            if not ref.split(":secret:", 1)[1].startswith(names):
                raise JobError(field, f"must name a secret under {names}")
            region, account = ref.split(":")[3:5]
            _check_home(field, "a secret", account, region)
        elif not ref.startswith(parameters):
            raise JobError(field, f"must name a parameter under {parameters}")
    return dict(value)
