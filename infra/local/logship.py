"""A container's output, shipped to a CloudWatch Logs stream as docker's awslogs driver would.

Lines are sent in batches, about once a second and at the end, so a
long-running job's output shows up while it runs. The client comes from
the environment, which on an emulated instance points at the local endpoint.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

FLUSH_SECONDS = 1.0
# PutLogEvents takes at most 10,000 events and 1 MB per call; stay well under both.
MAX_BATCH = 1000
MAX_MESSAGE = 200_000


class LogShipper:
    """Collects lines and sends them to ``group``/``stream``; ``on_error`` hears of failures."""

    def __init__(self, group: str, stream: str, region: str | None,
                 on_error: Callable[[str], None] = print) -> None:
        self.group, self.stream, self._region, self._on_error = group, stream, region, on_error
        self._pending: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._client: Any = None
        self._broken = False
        self._thread = threading.Thread(target=self._flush_periodically, name="logship", daemon=True)
        self._thread.start()

    def add(self, line: str) -> None:
        """Queue one line of output, stamped now."""
        event = {"timestamp": int(time.time() * 1000), "message": line[:MAX_MESSAGE] or " "}
        with self._lock:
            self._pending.append(event)

    def close(self) -> None:
        """Send what is left and stop."""
        self._closed.set()
        self._thread.join(timeout=10)
        self.flush()

    def flush(self) -> None:
        """Send every queued line now."""
        with self._lock:
            batch, self._pending = self._pending, []
        if not batch or self._broken:
            return
        try:
            client = self._connect()
            for start in range(0, len(batch), MAX_BATCH):
                client.put_log_events(logGroupName=self.group, logStreamName=self.stream,
                                      logEvents=batch[start:start + MAX_BATCH])
        except Exception as exc:  # the job must not fail because its logs could not be shipped
            self._broken = True
            self._on_error(f"could not ship output to CloudWatch Logs {self.group}/{self.stream}: {exc}")

    def _flush_periodically(self) -> None:
        while not self._closed.wait(FLUSH_SECONDS):
            self.flush()

    def _connect(self) -> Any:
        if self._client is None:
            import boto3
            from botocore.exceptions import ClientError

            client = boto3.session.Session().client("logs", region_name=self._region)
            try:
                client.create_log_stream(logGroupName=self.group, logStreamName=self.stream)
            except ClientError as exc:
                if exc.response["Error"]["Code"] != "ResourceAlreadyExistsException":
                    raise
            self._client = client
        return self._client
