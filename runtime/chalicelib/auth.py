"""Per-job callback secrets: only the job's own instance can finish it.

The secret is 256 random bits, given once to the instance in its user data and
stored only as a SHA-256 hash; a presented secret is compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets


class Unauthorized(Exception):
    """No credentials were presented (401)."""


class Forbidden(Exception):
    """Credentials were presented but are not this job's (403)."""


def new_secret() -> str:
    """A fresh 256-bit secret, URL-safe text."""
    return secrets.token_urlsafe(32)


def hash_secret(secret: str) -> str:
    """The stored form of a secret."""
    return hashlib.sha256(secret.encode()).hexdigest()


def check_bearer(header: str | None, stored_hash: str | None) -> None:
    """Raise unless ``header`` is ``Bearer <the secret whose hash is stored_hash>``."""
    if not header:
        raise Unauthorized("missing Authorization: Bearer <callback secret>")
    scheme, _, presented = header.partition(" ")
    if scheme.lower() != "bearer" or not presented.strip():
        raise Unauthorized("Authorization must be 'Bearer <callback secret>'")
    expected = stored_hash or ""
    if not hmac.compare_digest(hash_secret(presented.strip()), expected):
        raise Forbidden("the callback secret is not this job's")
