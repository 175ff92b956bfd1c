"""Pages of a listing: the API's one ``nextToken`` format and the query that asks for a page.

A token is the position where the next page starts, written as compact JSON
in URL-safe base64 without padding: opaque to clients, checked when it comes
back. What the position holds is up to the listing (a DynamoDB start key for
``GET /jobs``, a log stream and CloudWatch's own token for the logs).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from typing import Any

from .schema import JobError

TOKEN_PARAMETER = "nextToken"
NOT_OURS = "is not a token this API handed out"


class BadToken(JobError):
    """A ``nextToken`` this API did not hand out (a 400 naming ``nextToken``)."""

    def __init__(self, message: str = NOT_OURS) -> None:
        super().__init__(TOKEN_PARAMETER, message)


def encode(position: Mapping[str, Any]) -> str:
    """An opaque token for ``position`` (a JSON object)."""
    raw = json.dumps(position, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode(token: str, message: str = NOT_OURS) -> dict[str, Any]:
    """The position inside a token from :func:`encode`; :class:`BadToken` (with ``message``) for anything else.

    Only the format is checked here: the caller checks that the position is one it could have handed out.
    """
    try:
        position = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (binascii.Error, ValueError):  # bad base64, bad UTF-8 or bad JSON
        raise BadToken(message) from None
    if not isinstance(position, dict):
        raise BadToken(message)
    return position


def refuse_unknown(params: Mapping[str, str], allowed: tuple[str, ...]) -> None:
    """A ``JobError`` naming the first query parameter (alphabetically) that is not ``allowed``."""
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise JobError(unknown[0], f"is not a query parameter ({', '.join(allowed)})")


def limit(params: Mapping[str, str], default: int, maximum: int) -> int:
    """The page size asked for: ``limit``, a whole number from 1 to ``maximum``."""
    value = params.get("limit", str(default))
    # isdecimal, not isdigit: "²" is a digit that int() refuses.
    if not value.isdecimal() or not 1 <= int(value) <= maximum:
        raise JobError("limit", f"must be a whole number from 1 to {maximum}")
    return int(value)


def token(params: Mapping[str, str]) -> str | None:
    """The ``nextToken`` asked for (an empty one is none)."""
    return params.get(TOKEN_PARAMETER) or None
