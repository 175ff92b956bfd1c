"""The API over HTTP, for the ``jobscheduler`` commands (and any Python script).

The endpoint is ``--api``, else ``$JOBSCHEDULER_API``, else the ``ApiUrl``
output of the deployed CloudFormation stack (``JobScheduler`` unless named).
Requests to an API Gateway host (``*.execute-api.<region>.amazonaws.com``)
are signed with SigV4 using the caller's AWS credentials, which the deployed
API's IAM authorizer checks; ``JOBSCHEDULER_SIGV4=1`` (or ``0``) forces
signing on (or off) for any host, e.g. a custom domain in front of the API.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import requests

API_VARIABLE = "JOBSCHEDULER_API"
SIGN_VARIABLE = "JOBSCHEDULER_SIGV4"
STACK_VARIABLE = "JOBSCHEDULER_STACK"
DEFAULT_STACK = "JobScheduler"
API_OUTPUT = "ApiUrl"  # the CfnOutput infra/stack.py defines
EXECUTE_API_HOST = re.compile(r"^[a-z0-9]+\.execute-api\.([a-z0-9-]+)\.amazonaws\.com(?:\.cn)?$")
# The runtime's statuses.TERMINAL: the client installs without the runtime, so it keeps a copy
# (tests/test_statuses.py checks the two are equal).
TERMINAL = frozenset({"TerminatedOK", "TerminatedNOK", "TimedOut", "Cancelled", "Failed"})

# Exit codes a script can rely on.
OK = 0
JOB_NOT_OK = 1  # `watch`: the job ended, but not TerminatedOK
USAGE = 2  # bad arguments, an unreadable file, or the API refused the request as invalid (400)
NOT_FOUND = 3  # no such job or schedule (404)
API_ERROR = 4  # the API could not be reached, or answered with any other error (401/403/409/5xx)


class ApiError(Exception):
    """The API answered with an error, or could not be reached; ``exit_code`` says which kind."""

    exit_code = API_ERROR

    def __init__(self, message: str, status: int | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.code = status, code


class Refused(ApiError):
    """400: the request was invalid; the message names the field."""

    exit_code = USAGE


class NotFound(ApiError):
    """404: no such job (or schedule)."""

    exit_code = NOT_FOUND


def resolve_url(api: str | None = None, stack: str | None = None, region: str | None = None) -> str:
    """The API's base URL: the argument, the environment, or the stack's ``ApiUrl`` output."""
    url = api or os.environ.get(API_VARIABLE)
    if url:
        return url.rstrip("/")
    name = stack or os.environ.get(STACK_VARIABLE) or DEFAULT_STACK
    try:
        return stack_output(name, region).rstrip("/")
    except Exception as exc:  # no credentials, no stack, no output: say all three ways out
        raise ApiError(f"no API endpoint: pass --api URL, set {API_VARIABLE}, or deploy the stack "
                       f"(CloudFormation stack {name}, output {API_OUTPUT}: {exc})") from None


def stack_output(stack: str, region: str | None = None) -> str:
    """The ``ApiUrl`` output of a deployed stack."""
    import boto3

    described = boto3.session.Session(region_name=region).client("cloudformation").describe_stacks(
        StackName=stack)["Stacks"][0]
    for output in described.get("Outputs", []):
        if output["OutputKey"] == API_OUTPUT:
            return str(output["OutputValue"])
    raise LookupError(f"the stack has no {API_OUTPUT} output")


def should_sign(url: str) -> bool:
    """Sign requests to API Gateway hosts, unless ``JOBSCHEDULER_SIGV4`` says otherwise."""
    forced = os.environ.get(SIGN_VARIABLE, "").strip().lower()
    if forced in ("1", "true", "yes"):
        return True
    if forced in ("0", "false", "no"):
        return False
    return bool(EXECUTE_API_HOST.match(urlsplit(url).hostname or ""))


@dataclass
class Client:
    """One API endpoint; each method is one route and returns its JSON answer."""

    base_url: str
    sign: bool = False
    region: str | None = None
    timeout: float = 30
    _http: requests.Session = field(default_factory=requests.Session)

    @classmethod
    def connect(cls, api: str | None = None, stack: str | None = None, region: str | None = None) -> Client:
        """A client for the endpoint :func:`resolve_url` finds, signing when :func:`should_sign` says so."""
        url = resolve_url(api, stack, region)
        return cls(url, sign=should_sign(url), region=region)

    def schedule(self, body: dict[str, Any], idempotency_key: str | None = None) -> dict[str, Any]:
        """``POST /jobs``: the created (or, for a repeated key, the existing) job."""
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        return self.request("POST", "/jobs", body=body, headers=headers)

    def list(self, status: str | None = None, limit: int = 50, next_token: str | None = None,
             schedule_id: str | None = None) -> dict[str, Any]:
        """``GET /jobs``: one page, ``{"jobs": [...], "nextToken"}`` (``schedule_id``: the jobs it made)."""
        params = {"status": status, "limit": str(limit), "nextToken": next_token, "scheduleId": schedule_id}
        return self.request("GET", "/jobs", params={k: v for k, v in params.items() if v})

    def get(self, job_id: str) -> dict[str, Any]:
        """``GET /jobs/{id}``."""
        return self.request("GET", f"/jobs/{_id(job_id)}")

    def cancel(self, job_id: str) -> dict[str, Any]:
        """``POST /jobs/{id}/cancel``: the job, cancel recorded."""
        return self.request("POST", f"/jobs/{_id(job_id)}/cancel")

    def release(self, job_id: str) -> dict[str, Any]:
        """``POST /jobs/{id}/release``: a failed run's debug hold ends now."""
        return self.request("POST", f"/jobs/{_id(job_id)}/release")

    def logs(self, job_id: str, limit: int = 100, next_token: str | None = None) -> dict[str, Any]:
        """``GET /jobs/{id}/logs``: ``{"events": [...], "nextToken"}`` (a token is always returned)."""
        params = {"limit": str(limit), **({"nextToken": next_token} if next_token else {})}
        return self.request("GET", f"/jobs/{_id(job_id)}/logs", params=params)

    def timeline(self, job_id: str) -> dict[str, Any]:
        """``GET /jobs/{id}/timeline``: the states the execution passed, with durations."""
        return self.request("GET", f"/jobs/{_id(job_id)}/timeline")

    def create_schedule(self, body: dict[str, Any]) -> dict[str, Any]:
        """``POST /schedules``: the created schedule, with its next runs."""
        return self.request("POST", "/schedules", body=body)

    def list_schedules(self, limit: int = 50, next_token: str | None = None) -> dict[str, Any]:
        """``GET /schedules``: one page, ``{"schedules": [...], "nextToken"}``."""
        params = {"limit": str(limit), **({"nextToken": next_token} if next_token else {})}
        return self.request("GET", "/schedules", params=params)

    def get_schedule(self, schedule_id: str) -> dict[str, Any]:
        """``GET /schedules/{id}``: the schedule, its next runs and latest jobs."""
        return self.request("GET", f"/schedules/{_id(schedule_id, 'scheduleId')}")

    def update_schedule(self, schedule_id: str, changes: dict[str, Any]) -> dict[str, Any]:
        """``PATCH /schedules/{id}``: the schedule as changed (``{"enabled": false}`` pauses it)."""
        return self.request("PATCH", f"/schedules/{_id(schedule_id, 'scheduleId')}", body=changes)

    def delete_schedule(self, schedule_id: str) -> None:
        """``DELETE /schedules/{id}``: no more firings; the jobs it made go on."""
        self.request("DELETE", f"/schedules/{_id(schedule_id, 'scheduleId')}")

    def request(self, method: str, path: str, *, params: dict[str, str] | None = None, body: Any = None,
                headers: dict[str, str] | None = None) -> dict[str, Any]:
        """Send one request (signed if needed); the JSON answer, or an :class:`ApiError`."""
        data = json.dumps(body).encode() if body is not None else b""
        all_headers = dict(headers or {})
        if body is not None:
            all_headers["Content-Type"] = "application/json"
        return _answer(method, path, self.send(method, path, params=params, data=data, headers=all_headers))

    def send(self, method: str, path: str, *, params: dict[str, str] | None = None, data: bytes = b"",
             headers: dict[str, str] | None = None) -> requests.Response:
        """Send one request as given (signed if needed): the HTTP answer, whatever its status (the console
        forwards it as is); an :class:`ApiError` only when the API cannot be reached."""
        all_headers = {"Accept": "application/json", **(headers or {})}
        prepared = requests.Request(method, self.base_url + path, params=params, data=data or None,
                                    headers=all_headers).prepare()
        if self.sign:
            prepared.headers.update(self._signature(method, prepared.url or "", data, all_headers))
        try:
            return self._http.send(prepared, timeout=self.timeout)
        except requests.RequestException as exc:
            raise ApiError(f"could not reach the API at {self.base_url}: {exc}") from None

    def _signature(self, method: str, url: str, data: bytes, headers: dict[str, str]) -> dict[str, str]:
        import boto3
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest

        session = boto3.session.Session(region_name=self.region)
        credentials = session.get_credentials()
        if credentials is None:
            raise ApiError("no AWS credentials to sign the request with (SigV4): configure a profile or "
                           "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
        match = EXECUTE_API_HOST.match(urlsplit(url).hostname or "")
        region = match.group(1) if match else (self.region or session.region_name or "us-east-1")
        signed = AWSRequest(method=method, url=url, data=data, headers=dict(headers))
        SigV4Auth(credentials.get_frozen_credentials(), "execute-api", region).add_auth(signed)
        return dict(signed.headers.items())


def _answer(method: str, path: str, response: requests.Response) -> dict[str, Any]:
    try:
        payload = response.json()
    except ValueError:
        payload = None
    if response.status_code < 400 and isinstance(payload, dict):
        return payload
    if response.status_code == 204:  # DELETE: done, nothing to say
        return {}
    if isinstance(payload, dict) and payload.get("Message"):
        message, code = str(payload["Message"]), str(payload.get("Code", ""))
    elif isinstance(payload, dict) and payload.get("message"):  # API Gateway's own answers
        message, code = str(payload["message"]), ""
    else:
        message, code = f"{method} {path} answered HTTP {response.status_code}: {response.text[:200]}", ""
    kind = {400: Refused, 404: NotFound}.get(response.status_code, ApiError)
    raise kind(message, response.status_code, code)


def _id(job_id: str, field: str = "jobId") -> str:
    # Job ids are UUIDs, schedule ids sch-<hex>; anything else must not be able to change the path.
    if not re.fullmatch(r"[A-Za-z0-9-]{1,64}", job_id):
        raise NotFound(f"{field}: {job_id!r} is not a {'schedule' if field == 'scheduleId' else 'job'} id")
    return job_id
