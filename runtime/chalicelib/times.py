"""Time as the runtime writes and reads it: one way to get now, one to format, one to parse.

Every time the runtime stores or returns is RFC 3339 in UTC, to the second,
with a ``Z`` (``2026-12-01T03:00:00Z``): Step Functions' Wait reads that form
through TimestampPath, and strings in that form sort in time order, which the
job table's index keys rely on.
"""

from __future__ import annotations

from datetime import UTC, datetime


def now() -> datetime:
    """The current time in UTC (one place, so tests read clearly)."""
    return datetime.now(UTC)


def timestamp(moment: datetime) -> str:
    """RFC 3339 in UTC with a ``Z``, to the second: the one format we store and Step Functions reads."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse(text: str) -> datetime:
    """An ISO 8601 / RFC 3339 date-time (``Z`` or an offset; fractions of any length) as an aware datetime.

    Step Functions writes its own times with fractions and ``+00:00``, the
    runtime to the second with ``Z``; both read the same. A time without an
    offset is taken as UTC. ``ValueError`` if ``text`` is not a date-time.
    """
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
