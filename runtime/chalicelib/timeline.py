"""The states a job's execution passed through, with when and how long: its timeline.

Read from the execution's history (names and times only: the history's
inputs carry user data and task tokens, so they are never requested).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from . import aws, times, workflow
from .jobs import Job

# Every loop in the workflow is bounded, so a history is at most a few thousand
# events; a page holds 1000.
PAGE_SIZE = 1000
MAX_EVENTS = 30 * PAGE_SIZE
MAX_STATES = 1000


def of(job: Job) -> dict[str, Any]:
    """``{"jobId", "executionArn", "executionStatus", "states": [...], "truncated"}`` for the job.

    Each state is ``{"name", "enteredAt", "exitedAt", "seconds"}``; a state the
    execution is still in has ``exitedAt`` null and its seconds so far.
    """
    arn = job.get("executionArn") or workflow.execution_arn(job["jobId"])
    events, status = _history(arn)
    states = states_from(events, now=times.now())
    return {"jobId": job["jobId"], "executionArn": arn if status else None, "executionStatus": status,
            "states": states[:MAX_STATES], "truncated": len(states) > MAX_STATES}


def states_from(events: list[dict[str, Any]], now: datetime) -> list[dict[str, Any]]:
    """Pair each StateEntered event with the StateExited event of the same state that follows it."""
    states: list[dict[str, Any]] = []
    open_states: dict[str, dict[str, Any]] = {}
    for event in events:
        moment = _utc(event["timestamp"])
        if "stateEnteredEventDetails" in event:
            state = {"name": event["stateEnteredEventDetails"]["name"], "entered": moment, "exited": None}
            states.append(state)
            open_states[state["name"]] = state
        elif "stateExitedEventDetails" in event:
            name = event["stateExitedEventDetails"]["name"]
            if name in open_states:
                open_states.pop(name)["exited"] = moment
    return [{"name": s["name"], "enteredAt": times.timestamp(s["entered"]),
             "exitedAt": times.timestamp(s["exited"]) if s["exited"] else None,
             "seconds": round(((s["exited"] or now) - s["entered"]).total_seconds(), 3)}
            for s in states]


def _history(arn: str) -> tuple[list[dict[str, Any]], str | None]:
    sfn = aws.sfn()
    try:
        status = str(sfn.describe_execution(executionArn=arn)["status"])
    except ClientError as exc:
        if exc.response["Error"]["Code"] in ("ExecutionDoesNotExist", "InvalidArn"):
            return [], None  # never started (the job failed to start, or was cancelled first)
        raise
    events: list[dict[str, Any]] = []
    pages = sfn.get_paginator("get_execution_history").paginate(
        executionArn=arn, includeExecutionData=False, PaginationConfig={"PageSize": PAGE_SIZE, "MaxItems": MAX_EVENTS})
    for page in pages:
        events += [dict(event) for event in page["events"]]
    return events, status


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)
