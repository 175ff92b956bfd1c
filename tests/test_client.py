"""The client library without a stack: SigV4 signing, when to sign, and how a job body is built from options."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import typer
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from jobscheduler import cli
from jobscheduler import client as api


class Recorder(BaseHTTPRequestHandler):
    """Answers every request with an empty job list and keeps what it received."""

    received: list[tuple[str, str, dict[str, str], bytes]] = []

    def _answer(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.received.append((self.command, self.path, dict(self.headers.items()), body))
        data = b'{"jobs": [], "nextToken": null}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = _answer

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def recorder() -> Iterator[str]:
    """A local HTTP server recording requests; its base URL."""
    Recorder.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_requests_are_signed_with_sigv4_for_execute_api(recorder, monkeypatch, method):
    """The signature the client sends is the one SigV4 computes for that request, service execute-api."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "session-token")
    client = api.Client(recorder, sign=True, region="eu-west-1")
    if method == "GET":
        client.list(status="Running", limit=5, next_token="abc_-123")
    else:
        client.schedule({"image": "busybox:1.36"}, idempotency_key="key-1")
    ((received_method, path, headers, body),) = Recorder.received
    authorization = headers["Authorization"]
    assert authorization.startswith(f"AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/{headers['X-Amz-Date'][:8]}/"
                                    "eu-west-1/execute-api/aws4_request")
    assert headers["X-Amz-Security-Token"] == "session-token"
    signed = authorization.split("SignedHeaders=")[1].split(",")[0].split(";")
    assert "host" in signed and "x-amz-date" in signed
    # Recompute the signature from what arrived, as API Gateway does.
    request = AWSRequest(method=received_method, url=recorder + path, data=body,
                         headers={k: v for k, v in headers.items() if k.lower() in signed})
    request.context["timestamp"] = headers["X-Amz-Date"]
    signer = SigV4Auth(Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "session-token"),
                       "execute-api", "eu-west-1")
    expected = signer.signature(signer.string_to_sign(request, signer.canonical_request(request)), request)
    assert authorization.endswith(f"Signature={expected}")


def test_only_api_gateway_hosts_are_signed_unless_told(monkeypatch):
    """execute-api hosts are signed; others are not; JOBSCHEDULER_SIGV4 overrides both ways."""
    gateway = "https://abc123defg.execute-api.eu-west-1.amazonaws.com/api"
    monkeypatch.delenv(api.SIGN_VARIABLE, raising=False)
    assert api.should_sign(gateway) and not api.should_sign("http://127.0.0.1:8000")
    monkeypatch.setenv(api.SIGN_VARIABLE, "1")
    assert api.should_sign("https://jobs.example.com")
    monkeypatch.setenv(api.SIGN_VARIABLE, "0")
    assert not api.should_sign(gateway)


def test_body_from_a_file_and_options(tmp_path: Path):
    """Options override the file; --env adds to its env; --command is split like a shell; --at now drops the time."""
    file = tmp_path / "job.json"
    file.write_text('{"image": "busybox:1.36", "env": {"A": "1"}, "scheduledAt": "2026-01-01T00:00:00Z"}')
    body = cli._body(file, image=None, at="now", env=["B=2=two"], command="sh -c 'echo hi'", name="n",
                     instance_types=["m5.large"], max_runtime=60)
    assert body == {"image": "busybox:1.36", "env": {"A": "1", "B": "2=two"}, "command": ["sh", "-c", "echo hi"],
                    "name": "n", "instanceTypes": ["m5.large"], "maxRuntimeSeconds": 60}
    with pytest.raises(typer.BadParameter):
        cli._body(None, image=None, at=None, env=[], command=None, name=None, instance_types=[], max_runtime=None)


def test_relative_times_are_from_now():
    """+90s, +30m, +2h and +1d become RFC 3339 UTC times; anything else is passed on for the API to judge."""
    later = datetime.fromisoformat(str(cli._when("+2h")).replace("Z", "+00:00"))
    assert 7190 < (later - datetime.now(UTC)).total_seconds() <= 7200
    assert cli._when("2026-12-01T03:00:00+01:00") == "2026-12-01T03:00:00+01:00"
    assert cli._when("now") is None and cli._when("+2x") == "+2x"


def test_local_without_its_extra_says_what_to_install():
    """The client installs without the emulator: `jobscheduler local` then names the extra to install, exit 2."""
    import subprocess
    import sys

    # None in sys.modules makes `import moto` fail as it does where moto is not installed.
    code = ("import sys; sys.modules['moto'] = None; sys.argv = ['jobscheduler', 'local', '--no-demo']; "
            "from jobscheduler.cli import main; main()")
    answer = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert answer.returncode == 2, answer.stderr
    assert "pip install 'jobscheduler[local]'" in answer.stdout and "moto" in answer.stdout
