"""What happens to a job: scheduled, finished, cancelled.

Each function here is one use case behind a route; the routes in ``app.py``
only parse the request and shape the response.
"""

from __future__ import annotations

import logging
from typing import Any

from . import auth, bootstrap, config, jobs, store, workflow
from .jobs import JobError

log = logging.getLogger(__name__)

FINISHED = {"FinishedOK": jobs.TERMINATED_OK, "FinishedNOK": jobs.TERMINATED_NOK}


class NotFound(Exception):
    """No job with that id."""


class Conflict(Exception):
    """The request does not fit the job's current status."""


class StartFailed(Exception):
    """The execution could not be started; the job was marked Failed."""


def schedule(body: Any, api_url: str) -> dict[str, Any]:
    """Validate, store and start one job; returns the stored job.

    Everything is validated (user data size included) before anything is written.
    """
    job = jobs.new_job(body)
    secret = auth.new_secret()
    script = bootstrap.render_user_data(job, api_url=api_url, secret=secret,
                                        log_group=config.job_log_group(), region=config.region())
    size = len(script.encode())
    if size > bootstrap.MAX_USER_DATA_BYTES:
        raise JobError("env", f"env, secrets and command make the instance user data {size} bytes; "
                              f"the limit is {bootstrap.MAX_USER_DATA_BYTES}")
    job["secretHash"] = auth.hash_secret(secret)
    store.put_new(job)
    try:
        arn = workflow.start(job, bootstrap.encode_user_data(script))
    except Exception as exc:
        log.exception("could not start the execution of %s", job["jobId"])
        store.end_if_not_terminal(job["jobId"], jobs.FAILED, f"could not start the workflow: {exc}",
                                  jobs.timestamp(jobs.now()))
        raise StartFailed(job["jobId"]) from exc
    return store.update(job["jobId"], {"executionArn": arn}) or job


def get(job_id: str) -> dict[str, Any]:
    """The stored job, or :class:`NotFound`."""
    job = store.get(job_id) if _plausible_id(job_id) else None
    if job is None:
        raise NotFound(job_id)
    return job


def finish(job_id: str, authorization: str | None, body: Any) -> dict[str, Any]:
    """The instance reports the container's exit; completes the workflow's task.

    A repeat is harmless: the result is recorded once and the token completed
    again only if it still waits.
    """
    job = get(job_id)
    auth.check_bearer(authorization, job.get("secretHash"))
    status, exit_code, instance_id = _callback_body(body)
    if instance_id and job.get("instanceId") and instance_id != job["instanceId"]:
        raise Conflict(f"instanceId {instance_id} is not the job's current instance")
    if job["status"] in jobs.TERMINAL:
        raise Conflict(f"the job already ended {job['status']}")
    recorded = store.update(
        job_id,
        {"status": status, "exitCode": exit_code, "statusReason": f"the container exited {exit_code}",
         "finishedAt": jobs.timestamp(jobs.now()), "updatedAt": jobs.timestamp(jobs.now())},
        allowed_from=(jobs.REQUESTED, jobs.RUNNING, jobs.INTERRUPTED),
        condition="attribute_not_exists(cancelRequested)")
    if recorded is None:
        recorded = get(job_id)
        if recorded["status"] not in FINISHED or recorded.get("exitCode") != exit_code:
            raise Conflict(f"the job is {recorded['status']} and cannot take this result")
    token = recorded.get("taskToken")
    if token:
        outcome = {"status": FINISHED[recorded["status"]], "reason": f"the container exited {exit_code}"}
        workflow.succeed(token, outcome)
    return recorded


def _callback_body(body: Any) -> tuple[str, int, str | None]:
    if not isinstance(body, dict):
        raise JobError("body", "must be a JSON object")
    unknown = sorted(set(body) - {"status", "exitCode", "instanceId"})
    if unknown:
        raise JobError(unknown[0], "is not a callback field (status, exitCode, instanceId)")
    status, exit_code = body.get("status"), body.get("exitCode")
    if status not in FINISHED:
        raise JobError("status", "must be FinishedOK or FinishedNOK")
    if isinstance(exit_code, bool) or not isinstance(exit_code, int) or not 0 <= exit_code <= 255:
        raise JobError("exitCode", "must be a whole number from 0 to 255")
    if (status == "FinishedOK") != (exit_code == 0):
        raise JobError("exitCode", "FinishedOK goes with exit code 0, FinishedNOK with any other")
    instance_id = body.get("instanceId")
    if instance_id is not None and (not isinstance(instance_id, str) or len(instance_id) > 32):
        raise JobError("instanceId", "must be an instance id like i-0123456789abcdef0")
    return status, exit_code, instance_id


def _plausible_id(job_id: str) -> bool:
    # Job ids are UUIDs; anything else cannot exist, and is not worth a read.
    return len(job_id) == 36 and all(c in "0123456789abcdef-" for c in job_id)
