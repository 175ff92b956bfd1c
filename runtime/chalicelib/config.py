"""Names of the settings the runtime reads, and getters for them.

CDK sets these variables on the Lambda function; the local stack and the tests
set them in the environment. Required settings are read with ``os.environ[...]``
inside the getters, so a missing one fails loudly at the first call and never
at import time.
"""

from __future__ import annotations

import os

JOBS_TABLE = "JOBS_TABLE"
STATE_MACHINE_ARN = "STATE_MACHINE_ARN"
LAUNCH_TEMPLATE_ID = "LAUNCH_TEMPLATE_ID"
SUBNET_IDS = "SUBNET_IDS"
STACK_TAG = "STACK_TAG"
SWEEPER_RULE = "SWEEPER_RULE"
JOB_LOG_GROUP = "JOB_LOG_GROUP"
API_URL = "API_URL"
DEFAULT_INSTANCE_TYPES = "DEFAULT_INSTANCE_TYPES"
POLL_SECONDS = "POLL_SECONDS"
BACKOFF_SECONDS = "BACKOFF_SECONDS"
PROVISIONING_SECONDS = "PROVISIONING_SECONDS"
BOOT_SECONDS = "BOOT_SECONDS"
MAX_ATTEMPTS = "MAX_ATTEMPTS"
STOP_GRACE_SECONDS = "STOP_GRACE_SECONDS"
SECRET_PARAMETER_PREFIX = "SECRET_PARAMETER_PREFIX"
SECRET_NAME_PREFIX = "SECRET_NAME_PREFIX"
ACCOUNT_ID = "ACCOUNT_ID"
ALLOW_CROSS_ACCOUNT = "ALLOW_CROSS_ACCOUNT"

FALLBACK_INSTANCE_TYPES = "m7i.large,m6i.large,m6a.large,m5.large,c6i.large,c5.large"


def jobs_table() -> str:
    """Name of the DynamoDB table holding the job records."""
    return os.environ[JOBS_TABLE]


def state_machine_arn() -> str:
    """ARN of the job workflow."""
    return os.environ[STATE_MACHINE_ARN]


def subnet_ids() -> list[str]:
    """Subnets the workflow may launch into (comma-separated in the environment)."""
    return [s.strip() for s in os.environ[SUBNET_IDS].split(",") if s.strip()]


def sweeper_rule() -> str | None:
    """Name of the EventBridge rule that runs the sweeper, which turns it on and off (unset: always on)."""
    return os.environ.get(SWEEPER_RULE) or None


def stack_tag() -> str:
    """Value of the ``jobscheduler:stack`` tag on every instance this stack launches."""
    return os.environ[STACK_TAG]


def job_log_group() -> str | None:
    """CloudWatch Logs group for the containers' output; unset means no log shipping."""
    return os.environ.get(JOB_LOG_GROUP) or None


def api_url() -> str | None:
    """Public base URL of the API, when it cannot be derived from the request."""
    value = os.environ.get(API_URL, "").rstrip("/")
    return value or None


def region() -> str:
    """The AWS region the runtime works in."""
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"


def default_instance_types() -> list[str]:
    """Instance types a job gets when it names none: several, so Spot has choice."""
    raw = os.environ.get(DEFAULT_INSTANCE_TYPES) or FALLBACK_INSTANCE_TYPES
    return [t.strip() for t in raw.split(",") if t.strip()]


def _seconds(name: str, default: int) -> int:
    value = int(os.environ.get(name) or default)
    if value < 1:
        raise ValueError(f"{name} must be a positive number of seconds, not {value}")
    return value


def poll_seconds() -> int:
    """How often the workflow asks whether a launched instance is running."""
    return _seconds(POLL_SECONDS, 10)


def backoff_seconds() -> int:
    """How long the workflow waits between two capacity requests."""
    return _seconds(BACKOFF_SECONDS, 30)


def provisioning_seconds() -> int:
    """How long a job may wait for capacity before it fails (or falls back to on-demand)."""
    return _seconds(PROVISIONING_SECONDS, 900)


def boot_seconds() -> int:
    """How long a launched instance may take to reach ``running``."""
    return _seconds(BOOT_SECONDS, 600)


def max_attempts() -> int:
    """Default number of instances a job may use when Spot interrupts it."""
    return _seconds(MAX_ATTEMPTS, 3)


def stop_grace_seconds() -> int:
    """How long a preempted instance gets to stop its container before the workflow terminates it.

    Spot warns two minutes ahead; the bootstrap's own grace is 90 seconds.
    """
    return _seconds(STOP_GRACE_SECONDS, 90)


def secret_parameter_prefix() -> str:
    """SSM parameters a job may name as secrets start with this (the instance role reads nothing else)."""
    return os.environ.get(SECRET_PARAMETER_PREFIX) or "/jobscheduler/"


def secret_name_prefix() -> str:
    """Secrets Manager secrets a job may name start with this."""
    return os.environ.get(SECRET_NAME_PREFIX) or "jobscheduler/"


def account_id() -> str:
    """The AWS account the stack runs in (Lambda's environment does not say)."""
    return os.environ[ACCOUNT_ID]


def cross_account_allowed() -> bool:
    """Whether jobs may name ECR images and secrets of other accounts or regions.

    The stack sets it from its ``allowCrossAccount`` context value, which also
    widens the instance role to match; unset means no.
    """
    return os.environ.get(ALLOW_CROSS_ACCOUNT, "").strip().lower() == "true"


# Recurring schedules (EventBridge Scheduler): the stack's group, what its schedules invoke, and as whom.
SCHEDULE_GROUP = "SCHEDULE_GROUP"
SCHEDULE_TARGET_ARN = "SCHEDULE_TARGET_ARN"
SCHEDULER_ROLE_ARN = "SCHEDULER_ROLE_ARN"
SCHEDULE_DEAD_LETTER_ARN = "SCHEDULE_DEAD_LETTER_ARN"


def schedule_group() -> str:
    """The EventBridge Scheduler schedule group this stack owns (its role may touch no other)."""
    return os.environ[SCHEDULE_GROUP]


def schedule_target_arn() -> str:
    """ARN of the ``on_schedule`` function every schedule invokes."""
    return os.environ[SCHEDULE_TARGET_ARN]


def scheduler_role_arn() -> str:
    """The role EventBridge Scheduler invokes ``on_schedule`` as (it may invoke nothing else)."""
    return os.environ[SCHEDULER_ROLE_ARN]


def schedule_dead_letter_arn() -> str | None:
    """The SQS queue a firing goes to when every delivery attempt failed (unset: none)."""
    return os.environ.get(SCHEDULE_DEAD_LETTER_ARN) or None


# Launch templates: each capacity request is a version of the job's, made from the stack's own version.
LAUNCH_TEMPLATE_VERSION = "LAUNCH_TEMPLATE_VERSION"
# The GPU jobs' launch template: the same, on the GPU variant of the stack's image.
GPU_LAUNCH_TEMPLATE_ID = "GPU_LAUNCH_TEMPLATE_ID"
GPU_LAUNCH_TEMPLATE_VERSION = "GPU_LAUNCH_TEMPLATE_VERSION"


def launch_template(gpus: bool) -> dict[str, str]:
    """The launch template (``id``, ``version``) a job's instances launch from: the GPU one for a GPU job."""
    if gpus:
        return {"id": os.environ[GPU_LAUNCH_TEMPLATE_ID], "version": os.environ[GPU_LAUNCH_TEMPLATE_VERSION]}
    return {"id": os.environ[LAUNCH_TEMPLATE_ID], "version": os.environ[LAUNCH_TEMPLATE_VERSION]}


def launch_template_ids() -> list[str]:
    """Every launch template of the stack whose versions the workflow makes (unset ones left out)."""
    return [t for t in (os.environ.get(LAUNCH_TEMPLATE_ID), os.environ.get(GPU_LAUNCH_TEMPLATE_ID)) if t]
