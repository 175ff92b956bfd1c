"""The console's server, over real HTTP: what it forwards, how it signs, what it never lets through.

The API it forwards to here is a recorder on 127.0.0.1 that answers what a
test tells it to: the real API never returns a task token (nothing would be
left to strip) and the local API does not check SigV4 (nothing would show a
signature). The console with the real API is in test_console_browser.py.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests

from jobscheduler.client import Client
from jobscheduler.ui import vendor
from jobscheduler.ui.server import ConsoleServer, PortTaken
from tests.test_local import free_port

CALLBACK_SECRET = "cb-secret-0123456789abcdef"
TASK_TOKEN = "AQCEAAAAKgAAAAMAAAAAAAAAAT-task-token"
LEAKY_JOB = {
    "jobId": "6dae7055-6d54-4358-83f7-152d171e6b07", "status": "Running", "taskToken": TASK_TOKEN,
    "secretHash": "sha256-of-the-secret", "callbackSecret": CALLBACK_SECRET, "idempotencyKey": "k1",
    "attempts": [{"instanceId": "i-1", "taskToken": TASK_TOKEN}], "env": {"GREETING": "hello"},
}


@dataclass
class Recorder:
    """An HTTP server that records each request and answers ``routes[path]``, else ``answer`` (status, JSON)."""

    url: str = ""
    requests: list[dict[str, Any]] = field(default_factory=list)
    answer: tuple[int, Any] = (200, {})
    routes: dict[str, tuple[int, Any]] = field(default_factory=dict)


@pytest.fixture
def upstream() -> Iterator[Recorder]:
    recorder = Recorder()

    class Handler(BaseHTTPRequestHandler):
        def _any(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            recorder.requests.append({"method": self.command, "path": self.path, "headers": dict(self.headers),
                                      "body": self.rfile.read(length) if length else b""})
            status, body = recorder.routes.get(self.path.split("?")[0], recorder.answer)
            self.send_response(status)
            if status == 204:  # no body, as the API's DELETE answers
                self.end_headers()
                return
            data = json.dumps(body).encode()
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PATCH = do_DELETE = _any

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    recorder.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield recorder
    server.shutdown()
    server.server_close()


@pytest.fixture
def console(upstream: Recorder) -> Iterator[str]:
    server = ConsoleServer(Client(upstream.url), free_port())
    server.start()
    yield server.url
    server.stop()


def test_console_strips_task_tokens_and_secrets(upstream, console):
    """Whatever the API answers, no task token, callback secret or its hash reaches the page."""
    upstream.answer = (200, {"jobs": [LEAKY_JOB], "nextToken": None})
    answer = requests.get(f"{console}/api/jobs?status=Running&limit=5", timeout=10)
    assert answer.status_code == 200
    for word in (TASK_TOKEN, CALLBACK_SECRET, "secretHash", "idempotencyKey"):
        assert word not in answer.text
    (job,) = answer.json()["jobs"]
    assert job == {"jobId": LEAKY_JOB["jobId"], "status": "Running", "attempts": [{"instanceId": "i-1"}],
                   "env": {"GREETING": "hello"}}
    (seen,) = upstream.requests
    assert (seen["method"], seen["path"]) == ("GET", "/jobs?status=Running&limit=5")


def test_console_forwards_errors_and_bodies_as_the_api_gives_them(upstream, console):
    """A 400 keeps its status and message; the body and Idempotency-Key reach the API, cookies do not."""
    upstream.answer = (400, {"Code": "BadRequestError", "Message": "image: is required"})
    answer = requests.post(f"{console}/api/jobs", data=b'{"name": "x"}', timeout=10,
                           headers={"Content-Type": "application/json", "Idempotency-Key": "k-1",
                                    "Cookie": "session=abc", "Authorization": "Bearer from-the-page"})
    assert (answer.status_code, answer.json()["Message"]) == (400, "image: is required")
    (seen,) = upstream.requests
    assert seen["body"] == b'{"name": "x"}'
    assert seen["headers"]["Idempotency-Key"] == "k-1"
    assert "Cookie" not in seen["headers"] and "Authorization" not in seen["headers"]


def test_console_forwards_a_patch_and_a_bodiless_204(upstream, console):
    """Pause is a PATCH whose body reaches the API; a delete's 204 reaches the page as a 204 with no body."""
    schedule = "/schedules/sch-0123456789abcdef0123456789abcdef"
    upstream.routes = {schedule: (200, {"scheduleId": schedule.rsplit("/", 1)[1], "enabled": False})}
    paused = requests.patch(f"{console}/api{schedule}", json={"enabled": False}, timeout=10)
    assert (paused.status_code, paused.json()["enabled"]) == (200, False)
    upstream.routes = {schedule: (204, None)}
    deleted = requests.delete(f"{console}/api{schedule}", timeout=10)
    assert (deleted.status_code, deleted.content) == (204, b"")
    assert "Content-Length" not in deleted.headers
    assert [(r["method"], r["path"], r["body"]) for r in upstream.requests] == [
        ("PATCH", schedule, b'{"enabled": false}'), ("DELETE", schedule, b"")]


def test_console_signs_with_sigv4_for_an_api_in_aws(upstream, monkeypatch):
    """With signing on, the API receives a SigV4 signature for execute-api made from the user's credentials."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDCONSOLETEST")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret-key-of-the-user")
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    server = ConsoleServer(Client(upstream.url, sign=True, region="eu-west-1"), free_port())
    server.start()
    try:
        assert requests.post(f"{server.url}/api/jobs/{LEAKY_JOB['jobId']}/cancel", timeout=10).status_code == 200
    finally:
        server.stop()
    (seen,) = upstream.requests
    authorization = seen["headers"]["Authorization"]
    assert re.match(r"AWS4-HMAC-SHA256 Credential=AKIDCONSOLETEST/\d{8}/eu-west-1/execute-api/aws4_request, "
                    r"SignedHeaders=\S+, Signature=[0-9a-f]{64}$", authorization), authorization
    assert "X-Amz-Date" in seen["headers"]


@pytest.mark.parametrize(("method", "path", "headers"), [
    ("GET", "/api/jobs", {"Host": "attacker.example:80"}),  # DNS rebinding
    ("POST", "/api/jobs/6dae7055-6d54-4358-83f7-152d171e6b07/cancel", {"Origin": "http://attacker.example"}),
    ("POST", "/api/jobs/6dae7055-6d54-4358-83f7-152d171e6b07/callback", {}),  # the instance's route
    ("POST", "/api/jobs/6dae7055-6d54-4358-83f7-152d171e6b07/heartbeat", {}),
    ("POST", "/api/_local/interrupt/i-1", {}),
])
def test_console_refuses_what_a_page_must_not_do(upstream, console, method, path, headers):
    """Another host name, another site's page, the instance's routes, the local controls: 403, nothing sent on."""
    answer = requests.request(method, console + path, headers=headers, timeout=10)
    assert answer.status_code == 403
    assert answer.json()["Message"].split(":")[0] in ("Host", "Origin", "path")
    assert upstream.requests == []


@pytest.mark.parametrize("path", ["/static/../server.py", "/static/%2e%2e/server.py", "/static/vendor/../../vendor.py",
                                  "/static/nothing.js"])
def test_console_serves_only_its_static_files(console, path):
    """No path leads out of static/ (sent as written: a client library would tidy the dots away)."""
    connection = http.client.HTTPConnection(console.removeprefix("http://"), timeout=10)
    connection.request("GET", path)
    answer = connection.getresponse()
    assert answer.status == 404
    assert b"import" not in answer.read()
    connection.close()


def test_console_page_allows_only_its_own_origin(console):
    """The page comes with a policy that lets it load and call nothing but the console."""
    answer = requests.get(console + "/", timeout=10)
    assert answer.status_code == 200 and "text/html" in answer.headers["Content-Type"]
    policy = answer.headers["Content-Security-Policy"]
    assert "default-src 'self'" in policy and "connect-src 'self'" in policy
    for src in re.findall(r'(?:src|href)="([^"#]+)"', answer.text):
        assert src.startswith("/static/") or src == "data:,", src
        if src.startswith("/static/"):
            assert requests.get(console + src, timeout=10).status_code == 200, src


def test_console_workflow_is_the_asl_file(console):
    """The drawing's source names every state of job.asl.json, each with its node id."""
    from infra import definition

    answer = requests.get(console + "/console/workflow.json", timeout=10).json()
    assert sorted(answer["ids"]) == sorted(definition.states())
    for node in answer["ids"].values():
        assert re.search(rf"^    {re.escape(node)}\W", answer["mermaid"], re.M), node


def test_console_vendor_copies_equal_node_modules():
    """The libraries shipped in the package are byte for byte those package.json pins (run
    `python -m jobscheduler.ui.vendor` after `npm install` upgrades one)."""
    if not vendor.NODE_MODULES.is_dir():
        pytest.fail("node_modules is missing: run `npm ci` (make install does)", pytrace=False)
    shipped = sorted(path.name for path in vendor.VENDOR.iterdir())
    assert shipped == sorted(vendor.FILES)
    for name, source in vendor.FILES.items():
        assert (vendor.VENDOR / name).read_bytes() == (vendor.NODE_MODULES / source).read_bytes(), name
    pins = json.loads((vendor.ROOT / "package.json").read_text())["devDependencies"]
    for source in vendor.FILES.values():
        parts = source.split("/")
        package = "/".join(parts[:2]) if source.startswith("@") else parts[0]
        assert re.fullmatch(r"\d+\.\d+\.\d+", pins[package]), f"{package} must be pinned exactly"


def test_console_files_ship_in_the_package():
    """pyproject's package data takes the page and every vendored file (a pip install gets them)."""
    import tomllib

    patterns = tomllib.loads((vendor.ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    ui = Path(vendor.__file__).parent
    shipped = {path for pattern in patterns["jobscheduler.ui"] for path in ui.glob(pattern) if path.is_file()}
    assert shipped == {path for path in (ui / "static").rglob("*") if path.is_file()}


def test_jobscheduler_ui_serves_and_refuses_a_taken_port(upstream):
    """`jobscheduler ui --port P --api URL` prints its address and serves; a taken port is exit code 2."""
    port = free_port()
    command = [sys.executable, "-m", "jobscheduler.cli", "ui", "--port", str(port), "--api", upstream.url]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith(f"Console: http://127.0.0.1:{port}"), line
        upstream.answer = (200, {"jobs": [], "nextToken": None})
        assert requests.get(f"http://127.0.0.1:{port}/api/jobs", timeout=10).json() == upstream.answer[1]
        taken = subprocess.run(command, capture_output=True, text=True, env=env, timeout=60)
        assert taken.returncode == 2
        assert f"127.0.0.1:{port} is already in use" in taken.stderr
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_console_port_taken_is_an_error_for_ui_and_another_port_for_local(upstream):
    """ConsoleServer refuses a taken port unless told to take another (as the local stack does)."""
    first = ConsoleServer(Client(upstream.url), free_port())
    try:
        with pytest.raises(PortTaken):
            ConsoleServer(Client(upstream.url), first.port)
        second = ConsoleServer(Client(upstream.url), first.port, any_port_if_taken=True)
        assert second.port != first.port
        second.stop()
    finally:
        first.stop()
