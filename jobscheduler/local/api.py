"""The runtime's Chalice ``app`` served over real HTTP by waitress, a production WSGI server.

chalice's ``LocalGateway`` turns each request into the API Gateway event the
app gets in Lambda, exactly as ``chalice local`` does; what serves HTTP is
waitress instead of chalice's development server: a pool of worker threads,
kept-alive connections parked without holding a thread, TCP_NODELAY, and a
listen queue that holds a burst (a dropped SYN is retried 1, 3, 7 ... s
later). Requests are handled on threads (the instance calls back while a
client polls), so the app's ``current_request`` is made per thread, as
``chalice.local`` does.

Paths under ``/_local/`` never reach the app: they are the local stack's own
control routes (``jobscheduler local interrupt``), handled by ``admin``.
Any method reaches the app, which answers a method a route lacks with a JSON
405 and an ``Allow`` header, as the deployed API does.
"""

from __future__ import annotations

import base64
import json
import warnings
from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Any
from urllib.parse import quote

from chalice.app import Chalice
from chalice.config import Config
from chalice.local import LocalChalice, LocalGateway, LocalGatewayException

from jobscheduler.local.cloud import HOST, WaitressServer

ADMIN_PREFIX = "/_local/"
# admin(method, path, body) -> (HTTP status, JSON-able answer)
Admin = Callable[[str, str, bytes], tuple[int, Any]]
StartResponse = Callable[..., Any]
THREADS = 32  # requests in progress at once: a burst of callbacks, each waiting on the emulated AWS
# The WSGI names of the two headers that do not come as HTTP_*.
_PLAIN_HEADERS = {"CONTENT_TYPE": "Content-Type", "CONTENT_LENGTH": "Content-Length"}


class GatewayApp:
    """A WSGI application around chalice's ``LocalGateway`` and the ``/_local/`` control routes."""

    def __init__(self, app: Chalice, admin: Admin) -> None:
        _per_thread_requests(app)
        self._gateway = LocalGateway(app, Config.create(app_name=app.app_name))
        self._admin = admin

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        method, path = environ["REQUEST_METHOD"], _raw_path(environ)
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length > 0 else b""
        if path.startswith(ADMIN_PREFIX):
            return self._control(method, path, body, start_response)
        try:
            response = self._gateway.handle_request(method=method, path=path, headers=_headers(environ),
                                                    body=body or None)
        except LocalGatewayException as error:
            return _respond(start_response, error.CODE, dict(error.headers), error.body)
        headers = {**response["headers"], **response.get("multiValueHeaders", {})}
        answer = response.get("body")
        if response.get("isBase64Encoded") and answer is not None:
            answer = base64.b64decode(answer)
        return _respond(start_response, response["statusCode"], headers, answer)

    def _control(self, method: str, path: str, body: bytes, start_response: StartResponse) -> Iterable[bytes]:
        try:
            status, answer = self._admin(method, path, body)
        except Exception as exc:  # a control route must answer, not drop the connection
            status, answer = 500, {"Code": "InternalError", "Message": str(exc)}
        return _respond(start_response, status, {"Content-Type": "application/json"}, json.dumps(answer))


def _raw_path(environ: dict[str, Any]) -> str:
    """The request target as sent (path and query, still percent-encoded), as chalice's server passes it."""
    raw = environ.get("REQUEST_URI")
    if raw:
        return str(raw)
    path = quote(environ.get("PATH_INFO", "/").encode("latin-1"), safe="/:@!$&'()*+,;=-._~")
    query = environ.get("QUERY_STRING")
    return f"{path}?{query}" if query else path


def _headers(environ: dict[str, Any]) -> dict[str, str]:
    """Request headers by their usual names (``Content-Type``, ``Authorization`` ...)."""
    found = {}
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            found[key[5:].replace("_", "-").title()] = value
        elif key in _PLAIN_HEADERS and value:
            found[_PLAIN_HEADERS[key]] = value
    return found


def _respond(start_response: StartResponse, code: int, headers: dict[str, Any],
             body: str | bytes | None) -> list[bytes]:
    payload = body.encode() if isinstance(body, str) else (body or b"")
    out: list[tuple[str, str]] = [("Content-Type", str(headers.pop("Content-Type", "application/json")))]
    for name, value in headers.items():
        if name.lower() in ("content-length", "content-type"):
            continue
        out += [(name, str(v)) for v in value] if isinstance(value, list) else [(name, str(value))]
    out.append(("Content-Length", str(len(payload))))
    try:
        reason = HTTPStatus(code).phrase
    except ValueError:
        reason = "Unknown"
    start_response(f"{code} {reason}", out)
    return [payload]


class ApiServer(WaitressServer):
    """The app on ``host``:``port``, served by waitress in a background thread."""

    def __init__(self, app: Chalice, host: str, port: int, admin: Admin) -> None:
        quiet_iam_authorizer_warning()
        if host != HOST:
            raise ValueError(f"the local API serves on {HOST} only")
        super().__init__(GatewayApp(app, admin), port, name="jobscheduler-local", threads=THREADS)
        self.url = f"http://{host}:{port}"


def quiet_iam_authorizer_warning() -> None:
    """chalice.local warns, with its file path, on the first requests to IAM-auth routes; whoever serves the app
    locally already says that IAM is not enforced there, so the warning is noise among its lines."""
    warnings.filterwarnings("ignore", message="IAMAuthorizer is not a supported in local mode", category=UserWarning)


def _per_thread_requests(app: Chalice) -> None:
    """Make ``app.current_request`` thread-local, as chalice.local does for ``chalice local``."""
    if isinstance(app, LocalChalice):
        return
    app.__class__ = type("LocalJobscheduler", (LocalChalice, app.__class__), {})
