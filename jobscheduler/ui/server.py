"""The console's web server: the page, its files, and ``/api/...`` forwarded to the jobscheduler API.

It listens on 127.0.0.1 only. The browser never holds AWS credentials: the
server signs each forwarded request with SigV4 when the API is in AWS (the
``jobscheduler`` client's signing, same rules), and forwards only the
headers the API needs. Answers lose every field a page must not see (task
token, callback secret and its hash, idempotency bookkeeping) before they
leave. Requests for another host name (DNS rebinding) or a state-changing
request from another origin are refused, since the server acts with the
user's credentials.
"""

from __future__ import annotations

import errno
import json
import mimetypes
import re
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from jobscheduler.client import ApiError, Client

HOST = "127.0.0.1"
STATIC = Path(__file__).resolve().parent / "static"
API_PREFIX = "/api/"
WORKFLOW_ROUTE = "/console/workflow.json"
MAX_BODY_BYTES = 64 * 1024
# Fields no answer may carry to the page, at any depth: the workflow's task token, the callback secret
# (and its hash), and the API's own bookkeeping. The API already leaves them out; this is the second lock.
PRIVATE_FIELDS = frozenset({"taskToken", "callbackSecret", "secret", "secretHash", "bodyHash", "idempotencyKey"})
# What the page may not ask for: the instance's routes (they take the callback secret) and the local stack's controls.
REFUSED_PATHS = re.compile(r"^/(?:jobs/[^/]+/(?:callback|heartbeat)|_local/)")
FORWARDED_HEADERS = ("Content-Type", "Idempotency-Key")
# Everything the page loads comes from the console itself; Alpine evaluates its attribute expressions
# with Function() and Mermaid styles its drawings inline, hence the two allowances.
PAGE_POLICY = ("default-src 'self'; script-src 'self' 'unsafe-eval'; style-src 'self' 'unsafe-inline'; "
               "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; "
               "base-uri 'none'; form-action 'none'")
TYPES = {".js": "text/javascript", ".css": "text/css", ".html": "text/html", ".json": "application/json",
         ".svg": "image/svg+xml", ".png": "image/png", ".txt": "text/plain", ".md": "text/plain"}


class PortTaken(OSError):
    """The console's port is in use."""


def scrub(value: Any) -> Any:
    """``value`` without any :data:`PRIVATE_FIELDS` key, at any depth."""
    if isinstance(value, dict):
        return {k: scrub(v) for k, v in value.items() if k not in PRIVATE_FIELDS}
    if isinstance(value, list):
        return [scrub(v) for v in value]
    return value


def workflow() -> dict[str, Any]:
    """The workflow as a Mermaid flowchart (from ``job.asl.json``) and each state's node id in it."""
    from infra import definition
    from jobscheduler import diagram

    return {"mermaid": diagram.mermaid(), "ids": {name: diagram.node_id(name) for name in definition.states()}}


class ConsoleServer:
    """The console on ``127.0.0.1:port`` in a background thread, forwarding to ``client``'s API."""

    def __init__(self, client: Client, port: int = 8080, *, any_port_if_taken: bool = False) -> None:
        handler = type("Handler", (ConsoleHandler,), {"client": client})
        try:
            self._server = QuietServer((HOST, port), handler)
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
            if not any_port_if_taken:
                raise PortTaken(f"--port: {HOST}:{port} is already in use") from None
            self._server = QuietServer((HOST, 0), handler)
        self.port = int(self._server.server_address[1])
        self.url = f"http://{HOST}:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="console", daemon=True)

    def start(self) -> None:
        """Serve until :meth:`stop`."""
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and release the port."""
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join(timeout=5)
        self._server.server_close()


class QuietServer(ThreadingHTTPServer):
    """One thread per request; a browser opens several connections at once."""

    daemon_threads = True
    request_queue_size = 64


class ConsoleHandler(BaseHTTPRequestHandler):
    """Routes: ``/`` (the page), ``/static/...``, ``/console/workflow.json`` and ``/api/...``."""

    client: Client
    server_version = "jobscheduler-console"
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        """Files, the workflow, or a forwarded API read."""
        if not self._own_host():
            return
        path = urlsplit(self.path).path
        if path.startswith(API_PREFIX):
            self._forward()
        elif path == WORKFLOW_ROUTE:
            self._json(HTTPStatus.OK, workflow())
        elif path in ("/", "/index.html"):
            self._file(STATIC / "index.html")
        elif path.startswith("/static/"):
            self._file(STATIC / path.removeprefix("/static/"))
        else:
            self._json(HTTPStatus.NOT_FOUND, {"Code": "NotFound", "Message": f"path: no page {path}"})

    def do_POST(self) -> None:  # noqa: N802
        """A forwarded API write (schedule, cancel, pause, delete)."""
        if self._own_host() and self._same_origin():
            self._forward()

    do_DELETE = do_PATCH = do_PUT = do_POST

    def _own_host(self) -> bool:
        # A page on another site may resolve its own name to 127.0.0.1: only our address is served.
        port = self.connection.getsockname()[1]
        if self.headers.get("Host") in (f"{HOST}:{port}", f"localhost:{port}"):
            return True
        self._json(HTTPStatus.FORBIDDEN, {"Code": "Forbidden", "Message": "Host: the console answers only "
                                                                          "to its own address"})
        return False

    def _same_origin(self) -> bool:
        origin = self.headers.get("Origin")
        if origin is None or origin == f"http://{self.headers.get('Host')}":
            return True
        self._json(HTTPStatus.FORBIDDEN, {"Code": "Forbidden", "Message": "Origin: only the console's own pages "
                                                                          "may change jobs"})
        return False

    def _forward(self) -> None:
        target = "/" + self.path.removeprefix(API_PREFIX)
        if REFUSED_PATHS.match(urlsplit(target).path):
            self._json(HTTPStatus.FORBIDDEN, {"Code": "Forbidden", "Message": "path: not for the console"})
            return
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            self._json(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                       {"Code": "BadRequest", "Message": f"body: is larger than {MAX_BODY_BYTES} bytes"})
            return
        data = self.rfile.read(length) if length else b""
        headers = {name: self.headers[name] for name in FORWARDED_HEADERS if self.headers.get(name)}
        try:
            response = self.client.send(self.command, target, data=data, headers=headers)
        except ApiError as exc:
            self._json(HTTPStatus.BAD_GATEWAY, {"Code": "BadGateway", "Message": str(exc)})
            return
        if response.status_code == HTTPStatus.NO_CONTENT:  # DELETE /schedules/{id}: nothing to scrub or say
            self._send(HTTPStatus.NO_CONTENT, b"", "application/json", {"Cache-Control": "no-store"})
            return
        try:
            payload = response.json()
        except ValueError:
            payload = {"Code": "BadGateway", "Message": f"the API answered HTTP {response.status_code} "
                                                        f"without JSON: {response.text[:200]}"}
        self._json(response.status_code, scrub(payload))

    def _file(self, path: Path) -> None:
        resolved = path.resolve()
        if not resolved.is_relative_to(STATIC) or not resolved.is_file():
            self._json(HTTPStatus.NOT_FOUND, {"Code": "NotFound", "Message": f"path: no file {self.path}"})
            return
        kind = TYPES.get(resolved.suffix) or mimetypes.guess_type(resolved.name)[0] or "application/octet-stream"
        extra = {"Content-Security-Policy": PAGE_POLICY} if kind == "text/html" else {}
        self._send(HTTPStatus.OK, resolved.read_bytes(), kind, extra)

    def _json(self, status: int, value: Any) -> None:
        self._send(status, json.dumps(value).encode(), "application/json", {"Cache-Control": "no-store"})

    def _send(self, status: int, body: bytes, kind: str, extra: dict[str, str]) -> None:
        self.send_response(status)
        charset = "; charset=utf-8" if kind.startswith("text/") or kind == "application/json" else ""
        if status != HTTPStatus.NO_CONTENT:  # a 204 has no body, so no Content-Type or Content-Length either
            self.send_header("Content-Type", kind + charset)
            self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        for name, value in extra.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the page polls every few seconds."""


def serve(client: Client, port: int, announce: Any) -> None:
    """``jobscheduler ui``: serve until Ctrl-C; ``announce(url)`` is called once listening."""
    server = ConsoleServer(client, port)
    server.start()
    announce(server.url)
    try:
        threading.Event().wait()
    finally:
        server.stop()
