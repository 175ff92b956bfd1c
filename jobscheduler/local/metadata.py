"""One emulated instance's metadata service (IMDSv2), on its own 127.0.0.1 port.

The bootstrap reads ``instance-id``, polls ``spot/instance-action`` and, for
a job with secrets or a private ECR image, reads the instance role's
credentials (``iam/security-credentials/<role>``) to sign its AWS calls, which
go to the local endpoint (``JOBSCHEDULER_AWS_ENDPOINT``; moto accepts any
credentials). Only IMDSv2 is answered (a token from ``PUT /latest/api/token``
on every read), as on the stack's instances.

``POST /local/shutdown`` and ``POST /local/logs`` are not IMDS: they are how
the ``shutdown`` stand-in tells the emulator what the operating system would
tell the hypervisor, and how the stand-in docker hands a container's output
to the emulated engine's awslogs driver.
"""

from __future__ import annotations

import json
import secrets
import threading
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

# Spot gives two minutes' notice.
SPOT_NOTICE = timedelta(minutes=2)
# How long the served credentials say they last (moto checks neither them nor this).
CREDENTIALS_LIFETIME = timedelta(hours=6)
ROLE = "jobscheduler-instance"


@dataclass
class Metadata:
    """What the metadata service of one instance answers."""

    instance_id: str
    instance_type: str = ""
    availability_zone: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    spot_action: dict[str, str] | None = None
    token: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    role: str = ROLE
    session_token: str = field(default_factory=lambda: secrets.token_urlsafe(48))

    @classmethod
    def of(cls, instance: dict[str, Any]) -> Metadata:
        """The metadata of an instance as DescribeInstances returns it."""
        return cls(
            instance_id=instance["InstanceId"],
            instance_type=instance.get("InstanceType", ""),
            availability_zone=instance.get("Placement", {}).get("AvailabilityZone", ""),
            tags={t["Key"]: t["Value"] for t in instance.get("Tags", [])},
        )

    def interrupt(self) -> None:
        """Announce a Spot interruption: ``spot/instance-action`` answers from now on."""
        when = (datetime.now(UTC) + SPOT_NOTICE).strftime("%Y-%m-%dT%H:%M:%SZ")
        self.spot_action = {"action": "terminate", "time": when}

    def read(self, path: str) -> str | None:
        """The answer for ``/latest/meta-data/<path>``, or None (404)."""
        if path == "spot/instance-action":
            return json.dumps(self.spot_action) if self.spot_action else None
        if path == "tags/instance":
            return "\n".join(self.tags)
        if path.startswith("tags/instance/"):
            return self.tags.get(urllib.parse.unquote(path.removeprefix("tags/instance/")))
        if path == f"iam/security-credentials/{self.role}":
            return json.dumps(self.credentials())
        fixed = {"instance-id": self.instance_id, "instance-type": self.instance_type,
                 "placement/availability-zone": self.availability_zone,
                 "iam/security-credentials": self.role,
                 "services/domain": "amazonaws.com", "services/partition": "aws"}
        return fixed.get(path)

    def credentials(self) -> dict[str, str]:
        """The instance role's temporary credentials, shaped as IMDS serves them."""
        now = datetime.now(UTC)
        stamp = "%Y-%m-%dT%H:%M:%SZ"
        return {"Code": "Success", "LastUpdated": now.strftime(stamp), "Type": "AWS-HMAC",
                "AccessKeyId": "local", "SecretAccessKey": "local", "Token": self.session_token,
                "Expiration": (now + CREDENTIALS_LIFETIME).strftime(stamp)}


class MetadataServer:
    """Serves one instance's :class:`Metadata`; ``on_shutdown`` gets ``now``, ``+N`` or ``cancel``,
    ``on_logs`` a batch of output ``{"group", "stream", "events"}``."""

    def __init__(self, metadata: Metadata, on_shutdown: Callable[[str], None],
                 on_logs: Callable[[dict[str, Any]], None], host: str = "127.0.0.1") -> None:
        self.metadata = metadata
        self._server = ThreadingHTTPServer((host, 0), _handler(metadata, on_shutdown, on_logs))
        self._server.daemon_threads = True
        self.url = f"http://{host}:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.1,),
                                        name=f"imds-{metadata.instance_id}", daemon=True)

    def start(self) -> None:
        """Serve until :meth:`stop`."""
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and release the port."""
        if self._thread.is_alive():
            self._server.shutdown()
        self._server.server_close()


def _handler(metadata: Metadata, on_shutdown: Callable[[str], None],
             on_logs: Callable[[dict[str, Any]], None]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # the bootstrap polls every second
            pass

        def _answer(self, status: int, body: str = "") -> None:
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_PUT(self) -> None:
            ttl = self.headers.get("X-aws-ec2-metadata-token-ttl-seconds")
            if self.path != "/latest/api/token":
                self._answer(404)
            elif not ttl or not ttl.isdigit():
                self._answer(400, "missing X-aws-ec2-metadata-token-ttl-seconds")
            else:
                self._answer(200, metadata.token)

        def do_GET(self) -> None:
            if self.headers.get("X-aws-ec2-metadata-token") != metadata.token:
                self._answer(401)  # IMDSv1 is off on the stack's instances
                return
            answer = None
            if self.path.startswith("/latest/meta-data/"):
                answer = metadata.read(self.path.removeprefix("/latest/meta-data/").rstrip("/"))
            self._answer(404) if answer is None else self._answer(200, answer)

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode().strip()
            if self.path == "/local/shutdown":
                on_shutdown(body)
            elif self.path == "/local/logs":
                try:
                    on_logs(json.loads(body))
                except Exception as exc:  # tell the stand-in; it reports and stops shipping
                    self._answer(502, f"could not ship the output: {exc}")
                    return
            else:
                self._answer(404)
                return
            self._answer(200, "ok")

    return Handler
