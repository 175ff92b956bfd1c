"""A container's output, shipped to a CloudWatch Logs stream as docker's awslogs driver would.

Lines are sent in batches, about once a second and at the end, so a
long-running job's output shows up while it runs. On a real instance the
engine's driver makes the PutLogEvents calls; here the engine is part of the
emulator, so batches go to the instance's control endpoint
(``POST /local/logs``) and the emulator makes the calls with its own client.
An instance process thus never loads an AWS SDK (a quarter of a second of
CPU per job).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

FLUSH_SECONDS = 1.0
# PutLogEvents takes at most 10,000 events and 1 MB per call; stay well under both.
MAX_BATCH = 1000
MAX_MESSAGE = 200_000


class LogShipper:
    """Collects lines and sends them to ``group``/``stream`` through ``endpoint``; ``on_error`` hears of failures."""

    def __init__(self, group: str, stream: str, endpoint: str, on_error: Callable[[str], None] = print) -> None:
        self.group, self.stream, self._endpoint, self._on_error = group, stream, endpoint, on_error
        self._pending: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._closed = threading.Event()
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
        import urllib.request  # not for docker info or pull, which ship nothing

        try:
            for start in range(0, len(batch), MAX_BATCH):
                body = {"group": self.group, "stream": self.stream, "events": batch[start:start + MAX_BATCH]}
                request = urllib.request.Request(f"{self._endpoint}/local/logs", data=json.dumps(body).encode(),
                                                 headers={"Content-Type": "application/json"}, method="POST")
                with urllib.request.urlopen(request, timeout=30) as answer:
                    answer.read()
        except Exception as exc:  # the job must not fail because its logs could not be shipped
            self._broken = True
            self._on_error(f"could not ship output to CloudWatch Logs {self.group}/{self.stream}: {exc}")

    def _flush_periodically(self) -> None:
        while not self._closed.wait(FLUSH_SECONDS):
            self.flush()
