"""The job's Step Functions execution: its input, its start, and its task token.

The execution input carries everything the workflow needs, including the poll
and back-off intervals, so tests run in seconds while production polls gently.
"""

from __future__ import annotations

import json
import logging
import math
from typing import Any

from botocore.exceptions import ClientError

from . import aws, config, times
from .jobs import Job

log = logging.getLogger(__name__)

# Errors that mean the token is already spent: the message is a harmless repeat.
_STALE_TOKEN = {"TaskDoesNotExist", "TaskTimedOut", "InvalidToken", "ExecutionDoesNotExist"}
# Step Functions keeps 25,000 events per execution; stay well inside with every loop bounded.
MAX_EVENTS = 25_000
# History events of one pass of each loop, on its longest path (a Task state records five,
# a Pass, Choice or Wait state two): back off, count, create the launch template version,
# request, delete it, read the fleet's errors; wait, count, check the instance, read its state.
EVENTS_PER_REQUEST = 32
EVENTS_PER_POLL = 11
# A failed run run again: the task's failure, read the cause, terminate, close the attempt, wait, count.
EVENTS_PER_RERUN = 24


def execution_input(job: Job, user_data: str) -> dict[str, Any]:
    """The input of the job's execution (``user_data`` is base64)."""
    poll, backoff = config.poll_seconds(), config.backoff_seconds()
    spot_requests = max(1, math.ceil(config.provisioning_seconds() / backoff))
    on_demand_requests = max(1, math.ceil(min(config.provisioning_seconds(), 300) / backoff))
    if job.get("finishBy"):
        spot_requests = min(spot_requests, _requests_before_deadline(job, backoff))
    max_polls = max(1, math.ceil(config.boot_seconds() / poll))
    # Each failed run that is run again takes one more instance than Spot interruptions do.
    reruns = job["retry"]["attempts"] - 1 if job.get("retry") else 0
    spot_requests, max_polls = _bounded(spot_requests, on_demand_requests, max_polls, job["maxAttempts"] + reruns,
                                        reruns)
    policy = job.get("capacity", "spot")
    # Only a job that sends heartbeats has heartbeatSeconds: the workflow then
    # runs it in the RunJob state that has a heartbeat limit (the ASL requires
    # it to be shorter than the max runtime; jobs.new_job checks that).
    beats = {"heartbeatSeconds": job["heartbeatSeconds"]} if job.get("heartbeatSeconds") else {}
    fallback = policy == "spot-then-on-demand" or bool(job.get("finishBy"))
    return {
        "jobId": job["jobId"],
        "scheduledAt": job["scheduledAt"],
        "maxRuntimeSeconds": job["maxRuntimeSeconds"],
        **beats,
        "userData": user_data,
        "launchTemplate": config.launch_template(gpus=bool((job.get("resources") or {}).get("gpus"))),
        "overrides": _overrides(job, job.get("maxPrice") if policy != "on-demand" else None),
        **_price_cap(job, fallback),
        **({"retry": {"delaySeconds": job["retry"]["delaySeconds"]}} if job.get("retry") else {}),
        **({"debug": dict(job["debug"])} if job.get("debug") else {}),
        "capacity": {
            "type": "on-demand" if policy == "on-demand" else "spot",
            "fallback": "on-demand" if fallback else "none",
            "maxRequests": on_demand_requests if policy == "on-demand" else spot_requests,
            "onDemandRequests": on_demand_requests,
            "lastAttempt": job["maxAttempts"] - 1,
        },
        "timing": {"pollSeconds": poll, "backoffSeconds": backoff, "maxPolls": max_polls,
                   "stopGraceSeconds": config.stop_grace_seconds()},
        "counters": {"attempt": 0, "requests": 1, "polls": 0},
    }


def _overrides(job: Job, max_price: str | None) -> list[dict[str, str]]:
    # Every allowed type in every subnet; a price cap is EC2's own per-override Spot maximum.
    cap = {"MaxPrice": max_price} if max_price else {}
    return [{"InstanceType": t, "SubnetId": s, **cap} for t in job["instanceTypes"] for s in config.subnet_ids()]


def _price_cap(job: Job, fallback: bool) -> dict[str, Any]:
    # Only a job that may fall back to On-Demand gets the reason it will give, and only a capped
    # one the uncapped overrides (On-Demand has no Spot maximum): a plain job's input is unchanged.
    extra: dict[str, Any] = {}
    if job.get("maxPrice"):
        extra["maxPrice"] = job["maxPrice"]
    if fallback:
        under = f" under maxPrice {job['maxPrice']} USD/h" if job.get("maxPrice") else ""
        extra["onDemand"] = {"reason": f"no Spot capacity{under} in time: asking for On-Demand"}
        if job.get("maxPrice"):
            extra["onDemand"]["overrides"] = _overrides(job, None)
    return extra


class AlreadyStarted(Exception):
    """The job's execution exists already (started with another input)."""


def start(job: Job, user_data: str) -> str:
    """Start the job's execution, named after the job; returns its ARN.

    Starting again with the same name and input is idempotent in Step Functions;
    with another input it is :class:`AlreadyStarted`.
    """
    try:
        response = aws.sfn().start_execution(
            stateMachineArn=config.state_machine_arn(), name=job["jobId"],
            input=json.dumps(execution_input(job, user_data)))
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "ExecutionAlreadyExists":
            raise AlreadyStarted(job["jobId"]) from None
        raise
    return str(response["executionArn"])


def execution_arn(job_id: str) -> str:
    """The ARN of the job's execution (executions are named after their job)."""
    return config.state_machine_arn().replace(":stateMachine:", ":execution:", 1) + ":" + job_id


def exists(arn: str) -> bool:
    """Whether the execution was started."""
    try:
        aws.sfn().describe_execution(executionArn=arn)
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "ExecutionDoesNotExist":
            return False
        raise
    return True


def stop(job_id: str, cause: str) -> None:
    """Stop the job's execution (it runs no Catch: only for a job with no instance yet)."""
    try:
        aws.sfn().stop_execution(executionArn=execution_arn(job_id), error="Cancelled", cause=cause)
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "ExecutionDoesNotExist":
            raise


def succeed(token: str, outcome: dict[str, Any]) -> bool:
    """Complete the waiting task with ``outcome``; ``False`` if the token was already spent."""
    return _call(aws.sfn().send_task_success, taskToken=token, output=json.dumps(outcome))


def fail(token: str, error: str, cause: str) -> bool:
    """Fail the waiting task with ``error`` (``Cancelled``, ``SpotInterrupted``)."""
    return _call(aws.sfn().send_task_failure, taskToken=token, error=error, cause=cause)


def heartbeat(token: str) -> bool:
    """Tell the waiting task the instance is alive."""
    return _call(aws.sfn().send_task_heartbeat, taskToken=token)


def _call(method: Any, **kwargs: Any) -> bool:
    try:
        method(**kwargs)
    except ClientError as exc:
        if exc.response["Error"]["Code"] in _STALE_TOKEN:
            log.info("task token already spent: %s", exc.response["Error"]["Code"])
            return False
        raise
    return True


def _requests_before_deadline(job: Job, backoff: int) -> int:
    # Spot is sought only while the job could still finish by finishBy on it;
    # after that the workflow falls back to on-demand.
    scheduled, finish_by = times.parse(job["scheduledAt"]), times.parse(job["finishBy"])
    slack = (finish_by - scheduled).total_seconds() - job["maxRuntimeSeconds"] - config.boot_seconds()
    return max(1, math.floor(slack / backoff) + 1) if slack > 0 else 1


def _bounded(requests: int, on_demand: int, polls: int, attempts: int, reruns: int = 0) -> tuple[int, int]:
    # Worst case per attempt: every capacity request, then every poll; and each rerun's own states.
    budget = (MAX_EVENTS - 200 - reruns * EVENTS_PER_RERUN) // attempts
    while (requests + on_demand) * EVENTS_PER_REQUEST + polls * EVENTS_PER_POLL > budget:
        requests, polls = max(1, requests * 3 // 4), max(1, polls * 3 // 4)
    return requests, polls
