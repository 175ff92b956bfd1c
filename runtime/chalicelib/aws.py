"""Lazily created, cached boto3 clients.

Clients are made on first use, never at import time, so moto (tests) or an
``AWS_ENDPOINT_URL`` (local stack) is in place before any client exists.
"""

from __future__ import annotations

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


@cache
def client(service: str) -> Any:
    """The shared client for ``service``; prefer the typed getters below."""
    return boto3.session.Session().client(service, config=_CONFIG)  # type: ignore[call-overload]  # any service name


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
    """Forget every client (tests switch emulators between cases)."""
    client.cache_clear()
