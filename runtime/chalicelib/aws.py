"""Lazily created, cached boto3 clients.

Clients are made on first use, never at import time, so moto (tests) or an
``AWS_ENDPOINT_URL`` (local stack) is in place before any client exists.
"""

from __future__ import annotations

import threading
from functools import cache
from typing import TYPE_CHECKING, Any, cast

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

if TYPE_CHECKING:  # the stubs are a development dependency; Lambda has none
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_ec2 import EC2Client
    from mypy_boto3_events import EventBridgeClient
    from mypy_boto3_logs import CloudWatchLogsClient
    from mypy_boto3_stepfunctions import SFNClient

# What AWS answers when the caller's role lacks a permission (or its credentials
# are not accepted): never a condition to work around, always one to surface.
REFUSED = frozenset({"AccessDenied", "AccessDeniedException", "UnauthorizedOperation",
                     "UnrecognizedClientException", "InvalidClientTokenId", "ExpiredTokenException"})

_CONFIG = Config(retries={"mode": "standard", "max_attempts": 5}, connect_timeout=5, read_timeout=30)


# One session for every client: each session loads its own copy of botocore's endpoint data and of every
# service model it uses (6 MiB and more apiece). A session is not thread-safe, so clients are made one at a time.
_lock = threading.RLock()
_sessions: list[boto3.session.Session] = []


def session() -> boto3.session.Session:
    """The session every client of this process is made from."""
    with _lock:
        if not _sessions:
            _sessions.append(boto3.session.Session())
        return _sessions[0]


def new_client(service: str, config: Config | None = None) -> Any:
    """A client of its own from the shared session, made while no other thread makes one."""
    with _lock:
        return session().client(service, config=config)  # type: ignore[call-overload]  # any service name


@cache
def client(service: str) -> Any:
    """The shared client for ``service``; prefer the typed getters below."""
    return new_client(service, _CONFIG)


def dynamodb() -> DynamoDBClient:
    """DynamoDB client."""
    return cast("DynamoDBClient", client("dynamodb"))


def sfn() -> SFNClient:
    """Step Functions client."""
    return cast("SFNClient", client("stepfunctions"))


def ec2() -> EC2Client:
    """EC2 client."""
    return cast("EC2Client", client("ec2"))


def logs() -> CloudWatchLogsClient:
    """CloudWatch Logs client."""
    return cast("CloudWatchLogsClient", client("logs"))


def events() -> EventBridgeClient:
    """EventBridge client."""
    return cast("EventBridgeClient", client("events"))


def refused(exc: ClientError) -> bool:
    """Whether AWS refused the call for lack of a permission or valid credentials."""
    return exc.response.get("Error", {}).get("Code") in REFUSED


def reset() -> None:
    """Forget every client and the session (tests switch emulators and credentials between cases)."""
    with _lock:
        client.cache_clear()
        _sessions.clear()
