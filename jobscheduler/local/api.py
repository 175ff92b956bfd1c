"""The runtime's Chalice ``app`` served over real HTTP, the way ``chalice local`` serves it.

Requests are handled on threads (the instance calls back while a client
polls), so the app's ``current_request`` must be per thread: chalice.local's
``LocalChalice`` provides that, and ``serve`` switches the app to it just as
``chalice.local.create_local_server`` does.

Paths under ``/_local/`` never reach the app: they are the local stack's own
control routes (``jobscheduler local interrupt``), handled by ``admin``.
"""

from __future__ import annotations

import functools
import json
import threading
import warnings
from collections.abc import Callable
from typing import Any

from chalice.app import Chalice
from chalice.config import Config
from chalice.local import ChaliceRequestHandler, LocalChalice, LocalDevServer, ThreadedHTTPServer

ADMIN_PREFIX = "/_local/"
# admin(method, path, body) -> (HTTP status, JSON-able answer)
Admin = Callable[[str, str, bytes], tuple[int, Any]]


class LocalRequestHandler(ChaliceRequestHandler):
    """chalice.local's handler, plus the ``/_local/`` control routes and no per-request log lines."""

    # Headers and body go out in separate writes: without TCP_NODELAY a client
    # that reuses its connection waits ~40 ms for the delayed ACK each time.
    disable_nagle_algorithm = True

    def __init__(self, *args: Any, admin: Admin, **kwargs: Any) -> None:
        # BaseHTTPRequestHandler handles the request inside __init__: set first.
        self._admin = admin
        super().__init__(*args, **kwargs)

    def _dispatch(self) -> None:
        if self.path.startswith(ADMIN_PREFIX):
            self._handle_admin()
        else:
            self._generic_handle()

    do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = do_PATCH = do_OPTIONS = _dispatch

    def __getattr__(self, name: str) -> Any:
        # http.server answers a method it has no do_X for (TRACE, PROPFIND ...)
        # with an HTML 501; the app answers any method on a route with a JSON
        # 405 and an Allow header, as the deployed API does.
        if name.startswith("do_"):
            return self._dispatch
        raise AttributeError(name)

    def _handle_admin(self) -> None:
        length = int(self.headers.get("content-length", "0"))
        body = self.rfile.read(length) if length > 0 else b""
        try:
            status, answer = self._admin(self.command, self.path, body)
        except Exception as exc:  # a control route must answer, not drop the connection
            status, answer = 500, {"Code": "InternalError", "Message": str(exc)}
        self._send_http_response(status, {"Content-Type": "application/json"}, json.dumps(answer))

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the instance polls and calls back often; the console shows job events instead."""


class BurstProofServer(ThreadedHTTPServer):
    """chalice.local's threaded server with a listen queue that holds a burst.

    socketserver queues 5 connections: the 6th of a burst of callbacks has its
    SYN dropped and retried 1, 3, 7 ... seconds later.
    """

    request_queue_size = 1024


class ApiServer:
    """The app on 127.0.0.1:``port`` in a background thread."""

    def __init__(self, app: Chalice, host: str, port: int, admin: Admin) -> None:
        _per_thread_requests(app)
        # chalice.local warns, with its file path, on the first requests to IAM-auth routes; the stack
        # already says at start that IAM is not enforced here, so the warning is noise among the job's lines.
        warnings.filterwarnings("ignore", message="IAMAuthorizer is not a supported in local mode",
                                category=UserWarning)
        handler = functools.partial(LocalRequestHandler, admin=admin)
        self._server = LocalDevServer(app, Config.create(app_name=app.app_name), host, port,
                                      handler_cls=handler, server_cls=BurstProofServer)
        self.url = f"http://{host}:{port}"
        self._thread = threading.Thread(target=self._server.server.serve_forever, name="api", daemon=True)

    def start(self) -> None:
        """Serve until :meth:`stop`."""
        self._thread.start()

    def stop(self) -> None:
        """Stop accepting requests and release the port."""
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join(timeout=5)
        self._server.server.server_close()


def _per_thread_requests(app: Chalice) -> None:
    """Make ``app.current_request`` thread-local, as chalice.local does for ``chalice local``."""
    if isinstance(app, LocalChalice):
        return
    app.__class__ = type("LocalJobscheduler", (LocalChalice, app.__class__), {})
