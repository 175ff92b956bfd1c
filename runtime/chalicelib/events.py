"""Job events: every status change, published to EventBridge, and the cost bookkeeping it triggers.

Statuses are written by the runtime *and* by the workflow, so the one place
that sees every change is the job table's stream (new and old images). For
each record whose ``status`` differs, one event goes to the default bus:

    source "jobscheduler", detail-type "Job Status Change",
    detail = the job as the API shows it, plus "previousStatus"

Delivery is at least once (a failed batch is retried whole), as with any
EventBridge source. The same records drive :mod:`cost`: a new attempt gets
its prices, an ended job its cost; and a job leaving Scheduled turns the
sweeper's schedule on (:func:`cleanup.arm`).
"""

from __future__ import annotations

import json
import logging
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from . import aws, cleanup, cost, jobs, statuses, store
from .statuses import IN_FLIGHT

log = logging.getLogger(__name__)

SOURCE = "jobscheduler"
DETAIL_TYPE = "Job Status Change"
MAX_ENTRIES = 10  # PutEvents takes at most ten entries per call


class PublishFailed(RuntimeError):
    """EventBridge refused some entries; raising makes the stream deliver the batch again."""


def changes(records: list[dict[str, Any]]) -> list[tuple[str | None, dict[str, Any]]]:
    """(previous status, job as stored now) for each stream record that changed the status."""
    found = []
    for record in records:
        images = record.get("dynamodb", {})
        new = store.from_item(images["NewImage"]) if "NewImage" in images else None
        old = store.from_item(images["OldImage"]) if "OldImage" in images else None
        if new is None or new.get("kind") != store.KIND:
            continue  # a removed record, or not a job
        previous = old.get("status") if old else None
        if new.get("status") != previous:
            found.append((previous, new))
    return found


def event_entry(previous: str | None, job: dict[str, Any]) -> dict[str, Any]:
    """The PutEvents entry for one status change (never the task token or the secret's hash)."""
    detail = {**jobs.public(job), "previousStatus": previous}
    return {"Source": SOURCE, "DetailType": DETAIL_TYPE, "Detail": json.dumps(detail, default=str),
            "Resources": [job["executionArn"]] if job.get("executionArn") else []}


def publish(entries: list[dict[str, Any]]) -> int:
    """Put the entries on the default event bus, ten at a time; the number published."""
    for start in range(0, len(entries), MAX_ENTRIES):
        answer = aws.client("events").put_events(Entries=entries[start:start + MAX_ENTRIES])
        if answer.get("FailedEntryCount"):
            errors = {e.get("ErrorCode") for e in answer.get("Entries", []) if e.get("ErrorCode")}
            raise PublishFailed(f"EventBridge refused {answer['FailedEntryCount']} entries: {sorted(errors)}")
    return len(entries)


def on_job_change(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Handle one batch of the job table's stream: publish status changes, then price and cost."""
    found = changes(records)
    published = publish([event_entry(previous, job) for previous, job in found])
    # A job left Scheduled: the sweeper is on from now (a failure here retries the batch).
    armed = any(job.get("status") in IN_FLIGHT and previous not in IN_FLIGHT
                for previous, job in found) and cleanup.arm()
    priced: list[str] = []
    costed: list[str] = []
    for job in _latest_jobs(records):
        # Cost bookkeeping must not hold the events back over a passing AWS error: it
        # is logged, and the job's end (or the next change) tries again. A refusal
        # (a permission the role lacks) never passes: it raises, so the batch is retried
        # and the function's errors show it.
        try:
            if any("availabilityZone" not in a for a in job.get("attempts", [])):
                priced += cost.record_prices(job)
            if job.get("status") in statuses.TERMINAL and "cost" not in job and cost.record_cost(job["jobId"]):
                costed.append(job["jobId"])
        except ClientError as exc:
            if aws.refused(exc):
                raise
            log.exception("could not record the cost of %s", job.get("jobId"))
        except BotoCoreError:
            log.exception("could not record the cost of %s", job.get("jobId"))
    return {"published": published, "changes": [f"{job['jobId']} {prev} -> {job['status']}" for prev, job in found],
            "priced": priced, "costed": costed, "armed": bool(armed)}


def _latest_jobs(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    # One look per job per batch, at its newest image.
    latest: dict[str, dict[str, Any]] = {}
    for record in records:
        image = record.get("dynamodb", {}).get("NewImage")
        if image:
            job = store.from_item(image)
            if job.get("kind") == store.KIND:
                latest[job["jobId"]] = job
    return list(latest.values())
