"""Firing times: EventBridge Scheduler's expressions through the cron adapter, checked against times worked out by hand.

Each expected time below was computed by hand from the calendar and the
zone's rules (Europe/Berlin: CET = UTC+1, CEST = UTC+2 from the last Sunday of
March 02:00 to the last Sunday of October 03:00), not by running the code.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from chalicelib import cron


def runs(expression: str, after: str, count: int = 4, tz: str = "UTC", anchor: str | None = None) -> list[str]:
    """The next ``count`` firing times after ``after``, as UTC strings."""
    start = datetime.fromisoformat(after)
    found = cron.next_runs(cron.parse(expression), cron.zone(tz), start,
                           datetime.fromisoformat(anchor) if anchor else start, None, count)
    return [t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") for t in found]


def test_berlin_nightly_cron_across_spring_forward_follows_the_wall_clock():
    """02:30 Berlin every day: 01:30Z in winter; 29 March 2026 has no 02:30 (skipped, as AWS does); then 00:30Z."""
    assert runs("cron(30 2 * * ? *)", "2026-03-27T00:00:00+00:00", tz="Europe/Berlin") == [
        "2026-03-27T01:30:00Z", "2026-03-28T01:30:00Z", "2026-03-30T00:30:00Z", "2026-03-31T00:30:00Z"]


def test_berlin_cron_across_fall_back_fires_once_in_the_repeated_hour():
    """02:30 Berlin on 25 October 2026 happens twice (CEST, then CET): one firing, at the first (00:30Z)."""
    assert runs("cron(30 2 * * ? *)", "2026-10-24T00:00:00+00:00", tz="Europe/Berlin") == [
        "2026-10-24T00:30:00Z", "2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z", "2026-10-27T01:30:00Z"]


def test_berlin_hourly_cron_on_the_spring_forward_day_has_no_0200():
    """Every hour at :00 in Berlin on 29 March 2026: 01:00 CET (00:00Z), then 03:00 CEST (01:00Z); no 02:00."""
    assert runs("cron(0 * * * ? *)", "2026-03-28T23:30:00+00:00", count=3, tz="Europe/Berlin") == [
        "2026-03-29T00:00:00Z", "2026-03-29T01:00:00Z", "2026-03-29T02:00:00Z"]


def test_a_rate_counts_from_its_anchor_whatever_the_clock_says():
    """rate(1 day) across the Berlin change: every 24 hours from the anchor, the UTC time unchanged."""
    assert runs("rate(1 day)", "2026-03-28T12:00:00+00:00", count=3, tz="Europe/Berlin",
                anchor="2026-03-20T01:15:00+00:00") == [
        "2026-03-29T01:15:00Z", "2026-03-30T01:15:00Z", "2026-03-31T01:15:00Z"]


@pytest.mark.parametrize(("expression", "after", "expected"), [
    # AWS numbers the days 1-7 from Sunday: 2 is Monday. 2#1: the first Monday (6 April, 4 May 2026).
    ("cron(0 10 ? * 2#1 *)", "2026-04-01T00:00:00+00:00", ["2026-04-06T10:00:00Z", "2026-05-04T10:00:00Z"]),
    # 6L: the last Friday (24 April, 29 May 2026).
    ("cron(0 10 ? * 6L *)", "2026-04-01T00:00:00+00:00", ["2026-04-24T10:00:00Z", "2026-05-29T10:00:00Z"]),
    # Names mean the same days: MON-FRI from Friday 3 April 2026 skips the weekend.
    ("cron(0 10 ? * MON-FRI *)", "2026-04-03T00:00:00+00:00", ["2026-04-03T10:00:00Z", "2026-04-06T10:00:00Z"]),
    # 1,7 = Sunday and Saturday (4 and 5 April 2026).
    ("cron(0 10 ? * 1,7 *)", "2026-04-01T00:00:00+00:00", ["2026-04-04T10:00:00Z", "2026-04-05T10:00:00Z"]),
    # L in day-of-month: the last day (30 April, 31 May).
    ("cron(0 10 L * ? *)", "2026-04-01T00:00:00+00:00", ["2026-04-30T10:00:00Z", "2026-05-31T10:00:00Z"]),
    # 15W: the weekday nearest the 15th; 15 February 2026 is a Sunday -> Monday 16th; 15 March a Sunday -> 16th.
    ("cron(0 10 15W * ? *)", "2026-02-01T00:00:00+00:00", ["2026-02-16T10:00:00Z", "2026-03-16T10:00:00Z"]),
    # 1W: 1 August 2026 is a Saturday -> Monday 3rd (never the month before).
    ("cron(0 10 1W * ? *)", "2026-07-02T00:00:00+00:00", ["2026-08-03T10:00:00Z", "2026-09-01T10:00:00Z"]),
    # a/b is "from a, every b": minute 5/20 -> :05, :25, :45.
    ("cron(5/20 * * * ? *)", "2026-04-01T00:00:00+00:00", ["2026-04-01T00:05:00Z", "2026-04-01T00:25:00Z"]),
    # The year field: only 2028.
    ("cron(0 0 1 1 ? 2028)", "2026-04-01T00:00:00+00:00", ["2028-01-01T00:00:00Z"]),
    # A year already past: no firing at all.
    ("cron(0 0 1 1 ? 2020)", "2026-04-01T00:00:00+00:00", []),
])
def test_aws_cron_dialect(expression, after, expected):
    """AWS's day numbering, L, W, #, a/b and the year field give the hand-computed times."""
    assert runs(expression, after, count=2) == expected


@pytest.mark.parametrize(("expression", "words"), [
    ("cron(0 2 * * * *)", "exactly one of day-of-month and day-of-week must be ?"),
    ("cron(0 2 ? * ? *)", "exactly one of day-of-month and day-of-week must be ?"),
    ("cron(0 2 * * ?)", "six fields"),
    ("cron(0 ? * * ? *)", "? is allowed only"),
    ("cron(0 2 ? * 0 *)", "day-of-week 0 is not 1-7"),
    ("cron(0 2 32W * ? *)", "the day must be 1-31"),
    ("cron(0 2 * * ? 2200)", "year 2200"),
    ("rate(0 minutes)", "at least 1 minute"),
    ("rate(1 hours)", "singular for 1"),
    ("rate(5 seconds)", "must be cron("),
])
def test_expressions_aws_refuses_are_refused(expression, words):
    """What EventBridge Scheduler would refuse is an ExpressionError naming expression, saying why."""
    with pytest.raises(cron.ExpressionError) as refused:
        cron.parse(expression)
    assert refused.value.field == "expression" and words in str(refused.value)


def test_unknown_time_zone_is_refused_naming_timezone():
    """Only IANA names: a made-up zone or a path is refused."""
    for name in ("Mars/Olympus", "../../etc/passwd", "utc+2"):
        with pytest.raises(cron.ExpressionError) as refused:
            cron.zone(name)
        assert refused.value.field == "timezone"
    assert str(cron.zone("Europe/Berlin")) == "Europe/Berlin"


def test_a_rate_beyond_the_calendar_has_no_next_run():
    """rate(999999999 days) is valid syntax; its first run after the anchor is past year 9999: none, no error."""
    assert runs("rate(999999999 days)", "2026-01-01T00:00:00+00:00", anchor="2025-12-31T00:00:00+00:00") == []
