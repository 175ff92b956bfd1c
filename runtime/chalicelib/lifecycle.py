"""What happens to a job: scheduled, finished, cancelled.

Each function here is one use case behind a route; the routes in ``app.py``
only parse the request and shape the response.
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from . import auth, aws, bootstrap, config, jobs, schema, statuses, store, times, workflow
from .jobs import Job
from .schema import JobError

log = logging.getLogger(__name__)

# The statuses a callback reports, and what each becomes once the instance is gone.
FINISHED = statuses.TERMINATED_AFTER
_IDEMPOTENCY_NAMESPACE = uuid.UUID("6b1f8a3e-52c4-4a47-9d2e-8f0d6c1e7a55")
# What EC2 answers for an id that names no instance of this account and region.
NOT_AN_INSTANCE = ("InvalidInstanceID.NotFound", "InvalidInstanceID.Malformed")
# The error a failed run that earns another ends its task with: the workflow reads the job (its
# retryDue and exit code), terminates the instance, closes the attempt Failed and asks for a new one.
RETRY_RUN = "RetryRun"
# The error a failed run whose job has debug.keepOnFailureSeconds ends its task with: the
# workflow reads the job and holds the instance (a new task token) until released or the time is up.
HOLD = "HoldForDebug"


class NotFound(Exception):
    """No job with that id."""


class Conflict(Exception):
    """The request does not fit the job's current status."""


class StartFailed(Exception):
    """The execution could not be started; the job was marked Failed."""


def schedule(body: Any, api_url: str, idempotency: tuple[str, str] | None = None,
             submitted_by: str | None = None) -> tuple[Job, bool]:
    """Validate, store and start one job; returns the stored job and whether it is new.

    Everything is validated (user data size included) before anything is written.
    ``idempotency`` is (caller, key): the same key from the same caller returns
    the job it first created (one job, one execution, one instance); the same
    key with another body is a :class:`Conflict`. ``submitted_by`` is the caller's identity, kept on the job.
    """
    job = jobs.new_job(body, submitted_by)
    if not idempotency:
        return _store_and_start(job, api_url), True
    job["jobId"] = idempotent_id(*idempotency)
    return start_once(job, body, api_url)


def idempotent_id(caller: str, key: str) -> str:
    """The job id a caller's idempotency key stands for (so a repeat cannot create a second job)."""
    return str(uuid.uuid5(_IDEMPOTENCY_NAMESPACE, f"{caller}\n{key}"))


def _store_and_start(job: Job, api_url: str) -> Job:
    secret, user_data = _user_data(job, api_url)
    job["secretHash"] = auth.hash_secret(secret)
    # Executions are named after their job, so the ARN is known before the start:
    # one write per job, and the record never lacks it.
    job["executionArn"] = workflow.execution_arn(job["jobId"])
    store.put_new(job)
    return _start(job, user_data)


def _user_data(job: Job, api_url: str) -> tuple[str, str]:
    secret = auth.new_secret()
    try:
        script = bootstrap.render_user_data(job, api_url=api_url, secret=secret,
                                            log_group=config.job_log_group(), region=config.region())
    except ValueError as exc:
        raise _as_job_error(exc) from None
    return secret, bootstrap.encode_user_data(script)


def _start(job: Job, user_data: str) -> Job:
    try:
        workflow.start(job, user_data)
    except workflow.AlreadyStarted:
        pass  # a repeat of the same request started it a moment ago
    except (BotoCoreError, ClientError) as exc:
        log.exception("could not start the execution of %s", job["jobId"])
        store.end_if_not_terminal(job["jobId"], statuses.FAILED, f"could not start the workflow: {exc}",
                                  times.timestamp(times.now()))
        raise StartFailed(job["jobId"]) from exc
    return job


def _replay(existing: Job, job: Job, api_url: str) -> Job:
    if existing.get("bodyHash") != job["bodyHash"]:
        raise Conflict("Idempotency-Key: was used before with a different body")
    if existing["status"] != statuses.SCHEDULED or workflow.exists(workflow.execution_arn(existing["jobId"])):
        return existing
    # The first request stored the job but died before starting it: start it now, with a new secret.
    secret, user_data = _user_data(existing, api_url)
    updated = store.update(existing["jobId"], {"secretHash": auth.hash_secret(secret)},
                           allowed_from=(statuses.SCHEDULED,))
    return _start(updated, user_data) if updated else get(existing["jobId"])


def _body_hash(body: Any) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def get(job_id: str) -> Job:
    """The stored job, or :class:`NotFound`."""
    job = store.get(job_id) if _plausible_id(job_id) else None
    if job is None:
        raise NotFound(job_id)
    return job


def finish(job_id: str, authorization: str | None, body: Any) -> Job:
    """The instance reports the container's exit; completes the workflow's task.

    A repeat is harmless: the result is recorded once and the token completed
    again only if it still waits.
    """
    job = get(job_id)
    auth.check_bearer(authorization, job.get("secretHash"))
    status, exit_code, instance_id = _callback_body(body)
    if instance_id and job.get("instanceId") and instance_id != job["instanceId"]:
        raise Conflict(f"instanceId {instance_id} is not the job's current instance")
    if job["status"] in statuses.TERMINAL:
        raise Conflict(f"the job already ended {job['status']}")
    ended = next((a["outcome"] for a in job.get("attempts", []) if a.get("instanceId") == instance_id
                  and a.get("outcome")), None)
    if instance_id and ended:
        raise Conflict(f"the attempt on {instance_id} already ended {ended}")
    now = times.now()
    moment = times.timestamp(now)
    # A job back to waiting after a Spot interruption takes a result only from
    # its new instance, named in the callback and still current when written.
    allowed = (statuses.REQUESTED, statuses.RUNNING) + ((statuses.INTERRUPTED,) if instance_id else ())
    # A failed run that earns another says so on the job, for the workflow to read
    # whichever way it learns of the result (this token, or reading the job).
    again = jobs.rerun(job, status, exit_code)
    held = jobs.hold_until(job, status, again, now)
    recorded = store.update(
        job_id,
        {"status": status, "exitCode": exit_code, "statusReason": f"the container exited {exit_code}",
         "finishedAt": moment, "updatedAt": moment, **({"retryDue": again} if again else {}),
         **({"holdUntil": held} if held else {})},
        allowed_from=allowed, expected={"instanceId": instance_id} if instance_id else None,
        condition="attribute_not_exists(cancelRequested)")
    if recorded is None:
        recorded = get(job_id)
        if recorded["status"] not in FINISHED or recorded.get("exitCode") != exit_code:
            raise Conflict(f"the job is {recorded['status']} and cannot take this result")
    token = recorded.get("taskToken")
    if token and recorded.get("retryDue"):
        workflow.fail(token, RETRY_RUN, recorded["retryDue"])
    elif token and recorded.get("holdUntil"):
        workflow.fail(token, HOLD, f"held for debugging until {recorded['holdUntil']}")
    elif token:
        outcome = {"status": FINISHED[recorded["status"]], "reason": f"the container exited {exit_code}"}
        workflow.succeed(token, outcome)
    return recorded


def _as_job_error(exc: ValueError) -> JobError:
    # The renderer names the field first ("secrets.X: ..."); its size error names
    # none, and the user data is mostly env, secrets and command.
    field, sep, message = str(exc).partition(": ")
    if not sep or " " in field:
        return JobError("env", f"env, secrets and command together make {exc}")
    return JobError(field, message)


def _callback_body(body: Any) -> tuple[str, int, str | None]:
    # The Callback schema says it all, FinishedOK with exit code 0 included.
    schema.validate(schema.CALLBACK, body)
    return body["status"], body["exitCode"], body.get("instanceId")


def _plausible_id(job_id: str) -> bool:
    # Job ids are UUIDs; anything else cannot exist, and is not worth a read.
    return len(job_id) == 36 and all(c in "0123456789abcdef-" for c in job_id)


def cancel(job_id: str) -> Job:
    """Cancel in any phase; the workflow terminates whatever instance there is.

    A job still waiting for its time is cancelled on the spot (no instance can
    exist yet); otherwise the cancel is recorded and the waiting task failed,
    and the workflow's own conditional writes make the cancel win or lose
    cleanly against whatever step it races with.
    """
    job = get(job_id)
    moment = times.timestamp(times.now())
    waiting = store.update(job_id, {"status": statuses.CANCELLED, "statusReason": "cancelled before its time",
                                    "cancelRequested": moment, "updatedAt": moment, "endedAt": moment},
                           allowed_from=(statuses.SCHEDULED,))
    if waiting is not None:
        workflow.stop(job_id, "cancelled before its time")
        return waiting
    requested = store.update(job_id, {"cancelRequested": moment, "updatedAt": moment,
                                      "statusReason": "cancel requested"},
                             allowed_from=(statuses.REQUESTED, statuses.RUNNING, statuses.INTERRUPTED))
    if requested is None:
        # A failed run that is to run again is FinishedNOK for a moment: the cancel stops the next run.
        # So is one whose instance is held for debugging: the cancel ends the hold.
        requested = store.update(job_id, {"cancelRequested": moment, "updatedAt": moment,
                                          "statusReason": "cancel requested"},
                                 allowed_from=(statuses.FINISHED_NOK,),
                                 condition="(attribute_exists(retryDue) OR attribute_exists(holdUntil))")
    if requested is None:
        job = get(job_id)
        raise Conflict(f"the job is {job['status']}: it can no longer be cancelled")
    if requested.get("taskToken"):
        workflow.fail(requested["taskToken"], "Cancelled", "cancelled by the user")
    return requested


def release(job_id: str) -> Job:
    """End a failed run's debug hold now: the workflow terminates the instance and ends the job TerminatedNOK."""
    job = get(job_id)
    if job["status"] != statuses.FINISHED_NOK or not job.get("holdUntil"):
        raise Conflict(f"the job is {job['status']} and not held for debugging")
    outcome = {"status": statuses.TERMINATED_NOK,
               "reason": f"the container exited {job.get('exitCode')}; released from its debug hold"}
    # Until the workflow has stored the hold's own token, the one on the job is the spent run's.
    if not job.get("taskToken") or not workflow.succeed(job["taskToken"], outcome):
        raise Conflict("the hold has not started yet; try again in a few seconds")
    return job


def heartbeat(job_id: str, authorization: str | None) -> Job:
    """The instance says the container is alive; keeps a job with heartbeatSeconds running."""
    job = get(job_id)
    auth.check_bearer(authorization, job.get("secretHash"))
    if job["status"] != statuses.RUNNING or not job.get("taskToken"):
        raise Conflict(f"the job is {job['status']}, not Running")
    if not workflow.heartbeat(job["taskToken"]):
        raise Conflict("the job's run already ended")
    return job


def interrupted(instance_id: str) -> dict[str, Any]:
    """A Spot interruption warning for ``instance_id``: hand the job to a new instance.

    The attempt is marked Preempted and the job Interrupted (never a job
    failure); failing the task token sends the workflow back to capacity.
    """
    job_id = _job_of(instance_id)
    job = store.get(job_id) if job_id else None
    if job_id is None or job is None or job.get("instanceId") != instance_id or job["status"] in statuses.TERMINAL:
        return {"instanceId": instance_id, "ignored": True}
    index = next((i for i, a in enumerate(job.get("attempts", [])) if a.get("instanceId") == instance_id), None)
    moment = times.timestamp(times.now())
    values: dict[str, Any] = {"status": statuses.INTERRUPTED, "statusReason": "Spot interruption warning",
                              "updatedAt": moment}
    if index is not None:
        attempts = job["attempts"]
        attempts[index] = {**attempts[index], "outcome": statuses.PREEMPTED, "endedAt": moment}
        values["attempts"] = attempts
    updated = store.update(job_id, values, allowed_from=(statuses.REQUESTED, statuses.RUNNING),
                           condition="attribute_not_exists(cancelRequested)")
    if updated is None:
        return {"jobId": job_id, "ignored": True}
    if job.get("taskToken"):
        workflow.fail(job["taskToken"], "SpotInterrupted", f"Spot is reclaiming {instance_id}")
    return {"jobId": job_id, "instanceId": instance_id, "status": statuses.INTERRUPTED}


def _job_of(instance_id: str) -> str | None:
    """The job an instance of this stack runs; None only when the instance is not ours.

    DescribeInstances is what the functions' role may call (DescribeTags it may
    not). Any other failure (access denied, throttling) raises, so EventBridge
    delivers the warning again instead of the job waiting out its time.
    """
    try:
        reservations = aws.ec2().describe_instances(InstanceIds=[instance_id])["Reservations"]
    except ClientError as exc:
        if exc.response["Error"]["Code"] not in NOT_AN_INSTANCE:
            raise
        log.info("%s is not an instance of this account: %s", instance_id, exc.response["Error"]["Code"])
        return None
    tags = {t["Key"]: t["Value"] for r in reservations for i in r["Instances"] for t in i.get("Tags", [])}
    if tags.get(statuses.TAG_STACK) != config.stack_tag():
        log.info("%s is not an instance of this stack", instance_id)
        return None
    return tags.get(statuses.TAG_JOB)


def start_once(job: Job, body: Any, api_url: str) -> tuple[Job, bool]:
    """Store and start a job whose id the caller derived; a repeat returns the stored job (and whether it is new).

    As with an idempotency key: one id, one job, one execution (named after it), one instance.
    """
    job["bodyHash"] = _body_hash(body)
    existing = store.get(job["jobId"])
    if existing is not None:
        return _replay(existing, job, api_url), False
    try:
        return _store_and_start(job, api_url), True
    except store.AlreadyExists:
        # The same id raced itself: the other request created it.
        return _replay(get(job["jobId"]), job, api_url), False


def check_user_data(job: Job, api_url: str) -> None:
    """Render the job's user data once, to refuse now (a ``JobError``) what could never boot (the 16 KB limit)."""
    _user_data(job, api_url)
