"""jobscheduler's API: schedule a Docker job on a Spot instance at a chosen time.

Routes stay a few lines: parse, call one function in ``chalicelib``, return.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from chalice import (
    BadRequestError,
    Chalice,
    ConflictError,
    ForbiddenError,
    IAMAuthorizer,
    NotFoundError,
    Response,
    UnauthorizedError,
)
from chalice.app import Request

from chalicelib import (
    auth,
    cleanup,
    config,
    events,
    firing,
    jobs,
    lifecycle,
    logs,
    schedules,
    schema,
    store,
    timeline,
)
from chalicelib.schema import JobError

app = Chalice(app_name="jobscheduler")
# People (and their tools) sign management calls with SigV4; the instance routes
# use the job's own callback secret instead, since an instance has no such identity.
iam = IAMAuthorizer()
MAX_BODY_BYTES = 64 * 1024


def api_errors(view: Callable[..., Any]) -> Callable[..., Any]:
    """Turn the runtime's exceptions into Chalice's 4xx (and 503) error responses."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return view(*args, **kwargs)
        except JobError as exc:  # also a nextToken this API did not hand out (pages.BadToken)
            raise BadRequestError(str(exc)) from None
        except lifecycle.NotFound as exc:
            raise NotFoundError(f"jobId: no job {exc}") from None
        except schedules.NotFound as exc:
            raise NotFoundError(f"scheduleId: no schedule {exc}") from None
        except lifecycle.Conflict as exc:
            raise ConflictError(str(exc)) from None
        except auth.Unauthorized as exc:
            raise UnauthorizedError(f"Authorization: {exc}") from None
        except auth.Forbidden as exc:
            raise ForbiddenError(f"Authorization: {exc}") from None
        except lifecycle.StartFailed as exc:
            return error(503, "ServiceUnavailable", f"job {exc} could not be started and was marked Failed; "
                                                    "try again")

    return wrapper


def error(status: int, code: str, message: str) -> Response:
    """An error in Chalice's shape."""
    return Response(body={"Code": code, "Message": message}, status_code=status)


def current() -> Request:
    """The request being handled (always set inside a route)."""
    request = app.current_request
    assert request is not None
    return request


def json_body() -> Any:
    """The request's JSON body, bounded in size."""
    request = current()
    if len(request.raw_body or b"") > MAX_BODY_BYTES:
        raise JobError("body", f"is larger than {MAX_BODY_BYTES} bytes")
    return request.json_body


def api_url() -> str:
    """The base URL the instance calls back to: configured, or the one this request came in on."""
    configured = config.api_url()
    if configured:
        return configured
    request = current()
    context = request.context or {}
    if context.get("domainName") and context.get("stage"):
        return f"https://{context['domainName']}/{context['stage']}"
    proto = request.headers.get("x-forwarded-proto", "http")
    return f"{proto}://{request.headers.get('host', 'localhost')}"


def idempotency() -> tuple[str, str] | None:
    """(caller, key) from the Idempotency-Key header; keys are scoped to the signed-in caller."""
    request = current()
    key = request.headers.get("idempotency-key")
    if key is None:
        return None
    if not 1 <= len(key) <= 255 or not key.isascii() or not key.isprintable():
        raise JobError("Idempotency-Key", "must be 1 to 255 printable ASCII characters")
    identity = (request.context or {}).get("identity") or {}
    return str(identity.get("userArn") or identity.get("caller") or "anonymous"), key


def submitter() -> str:
    """Who is scheduling: the caller's IAM ARN when deployed (IAM auth signs every call), ``local`` otherwise."""
    identity = (current().context or {}).get("identity") or {}
    return str(identity.get("userArn") or "local")


@app.route("/jobs", methods=["POST"], authorizer=iam)
@api_errors
def schedule_job() -> Response:
    """Schedule a job: 201 with the job and its Location (200 when an Idempotency-Key repeats)."""
    job, created = lifecycle.schedule(json_body(), api_url(), idempotency(), submitter())
    headers: dict[str, str | list[str]] = {"Location": f"/jobs/{job['jobId']}"}
    if not created:
        headers["Idempotent-Replayed"] = "true"
    return Response(body=jobs.public(job), status_code=201 if created else 200, headers=headers)


@app.route("/jobs", methods=["GET"], authorizer=iam)
@api_errors
def list_jobs() -> dict[str, Any]:
    """One page of jobs, newest first; ?status= filters, ?limit= 1-100, ?nextToken= continues."""
    params = dict(current().query_params or {})
    status, limit, token = store.parse_query(params)
    items, next_token = store.list_jobs(status, limit, token, schedule_id=params.get("scheduleId"))
    return {"jobs": [jobs.public(j) for j in items], "nextToken": next_token}


@app.route("/jobs/{job_id}", methods=["GET"], authorizer=iam)
@api_errors
def get_job(job_id: str) -> dict[str, Any]:
    """The job with its status, attempts and execution."""
    return jobs.public(lifecycle.get(job_id))


@app.route("/jobs/{job_id}/callback", methods=["POST"])
@api_errors
def callback(job_id: str) -> Response:
    """The job's instance reports the exit code (Bearer callback secret)."""
    authorization = current().headers.get("authorization")
    job = lifecycle.finish(job_id, authorization, json_body())
    return Response(body={"jobId": job_id, "status": job["status"], "exitCode": job.get("exitCode")},
                    status_code=202)


@app.route("/openapi.json", methods=["GET"], authorizer=iam)
def openapi() -> dict[str, Any]:
    """This API's OpenAPI 3.1 document."""
    return schema.DOCUMENT


@app.route("/jobs/{job_id}/cancel", methods=["POST"], authorizer=iam)
@api_errors
def cancel_job(job_id: str) -> Response:
    """Cancel the job in any phase: 202; 409 once it has ended."""
    return Response(body=jobs.public(lifecycle.cancel(job_id)), status_code=202)


@app.route("/jobs/{job_id}/release", methods=["POST"], authorizer=iam)
@api_errors
def release_job(job_id: str) -> Response:
    """End a failed run's debug hold now: 202; 409 when the job is not held."""
    return Response(body=jobs.public(lifecycle.release(job_id)), status_code=202)


@app.route("/jobs/{job_id}/heartbeat", methods=["POST"])
@api_errors
def heartbeat(job_id: str) -> Response:
    """The job's instance says it is alive (Bearer callback secret)."""
    lifecycle.heartbeat(job_id, current().headers.get("authorization"))
    return Response(body={"jobId": job_id, "status": "Running"}, status_code=202)


@app.lambda_function(name="on_execution_ended")
def on_execution_ended(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """EventBridge: an execution ended FAILED, TIMED_OUT or ABORTED; clean up by tag."""
    return cleanup.execution_ended(event.get("detail") or {})


@app.lambda_function(name="on_spot_interruption")
def on_spot_interruption(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """EventBridge: EC2 Spot Instance Interruption Warning; the job moves to a new instance."""
    return lifecycle.interrupted(str((event.get("detail") or {}).get("instance-id", "")))


@app.lambda_function(name="sweeper")
def sweeper(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Every few minutes while jobs are in flight: terminate stray instances, end orphaned jobs."""
    return cleanup.sweep()


@app.route("/jobs/{job_id}/logs", methods=["GET"], authorizer=iam)
@api_errors
def job_logs(job_id: str) -> dict[str, Any]:
    """One page of the container's output; ?limit= 1-1000, ?nextToken= continues (always returned)."""
    limit, token = logs.parse_query(dict(current().query_params or {}))
    lifecycle.get(job_id)
    return logs.page(job_id, limit, token)


@app.route("/jobs/{job_id}/timeline", methods=["GET"], authorizer=iam)
@api_errors
def job_timeline(job_id: str) -> dict[str, Any]:
    """The states the job's execution passed through, each with its time and duration."""
    return timeline.of(lifecycle.get(job_id))


@app.lambda_function(name="on_job_change")
def on_job_change(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """The job table's stream: publish each status change to EventBridge; price attempts, cost ended jobs."""
    return events.on_job_change(event.get("Records") or [])


@app.route("/schedules", methods=["POST"], authorizer=iam)
@api_errors
def create_schedule() -> Response:
    """Create a recurring schedule: 201 with it (next runs included) and its Location."""
    record = schedules.create(json_body(), api_url(), submitter())
    return Response(body=schedules.public(record), status_code=201,
                    headers={"Location": f"/schedules/{record['jobId']}"})


@app.route("/schedules", methods=["GET"], authorizer=iam)
@api_errors
def list_schedules() -> dict[str, Any]:
    """One page of schedules, newest first; ?limit= 1-100, ?nextToken= continues."""
    limit, token = schedules.parse_query(dict(current().query_params or {}))
    items, next_token = schedules.page(limit, token)
    return {"schedules": [schedules.public(s) for s in items], "nextToken": next_token}


@app.route("/schedules/{schedule_id}", methods=["GET"], authorizer=iam)
@api_errors
def get_schedule(schedule_id: str) -> dict[str, Any]:
    """The schedule with its next runs and latest jobs."""
    return schedules.public(schedules.get(schedule_id))


@app.route("/schedules/{schedule_id}", methods=["PATCH"], authorizer=iam)
@api_errors
def update_schedule(schedule_id: str) -> dict[str, Any]:
    """Change a schedule; enabled false pauses it, true resumes it."""
    return schedules.public(schedules.update(schedule_id, json_body()))


@app.route("/schedules/{schedule_id}", methods=["DELETE"], authorizer=iam)
@api_errors
def delete_schedule(schedule_id: str) -> Response:
    """Delete a schedule: 204; the jobs it made go on."""
    schedules.delete(schedule_id)
    return Response(body="", status_code=204)


@app.lambda_function(name="on_schedule")
def on_schedule(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """EventBridge Scheduler: a schedule fired; make its one job for this firing (or count a skip)."""
    return firing.fire(event)
