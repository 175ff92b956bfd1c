"""Lazily created, cached boto3 clients.

Clients are made on first use, never at import time, so moto (tests) or an
``AWS_ENDPOINT_URL`` (local stack) is in place before any client exists.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

# What AWS answers when the caller's role lacks a permission (or its credentials
# are not accepted): never a condition to work around, always one to surface.
REFUSED = frozenset({"AccessDenied", "AccessDeniedException", "UnauthorizedOperation",
                     "UnrecognizedClientException", "InvalidClientTokenId", "ExpiredTokenException"})

_CONFIG = Config(retries={"mode": "standard", "max_attempts": 5}, connect_timeout=5, read_timeout=30)


@cache
def client(service: str) -> Any:
    """The shared client for ``service`` (``dynamodb``, ``stepfunctions``, ``ec2`` ...)."""
    return boto3.session.Session().client(service, config=_CONFIG)


def dynamodb() -> Any:
    """DynamoDB client."""
    return client("dynamodb")


def sfn() -> Any:
    """Step Functions client."""
    return client("stepfunctions")


def ec2() -> Any:
    """EC2 client."""
    return client("ec2")


def logs() -> Any:
    """CloudWatch Logs client."""
    return client("logs")


def refused(exc: ClientError) -> bool:
    """Whether AWS refused the call for lack of a permission or valid credentials."""
    return exc.response.get("Error", {}).get("Code") in REFUSED


def reset() -> None:
    """Forget every client (tests switch emulators between cases)."""
    client.cache_clear()
