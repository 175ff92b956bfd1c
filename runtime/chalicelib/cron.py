"""EventBridge Scheduler's schedule expressions, and the times they fire at.

``cron(minutes hours day-of-month month day-of-week year)`` and
``rate(value minute|minutes|hour|hours|day|days)``, as EventBridge Scheduler
reads them. The cron fields are evaluated by ``cronsim`` (Debian cron's
semantics, ``L``, ``W`` and ``#`` included); this module only translates
AWS's dialect into it:

- AWS numbers the days of the week 1-7 from Sunday, cron 0-6: numbers shift by one.
- ``?`` (one of the two day fields must be it, never both) is cron's ``*``.
- ``a/b`` (from a, every b) is cron's ``a-MAX/b``.
- The sixth field, the year (1970-2199), has no counterpart: it filters the times cronsim yields.

A cron fires at wall-clock times in its time zone. Across daylight saving
changes EventBridge Scheduler skips a time the spring-forward jump removes
and fires once, not twice, at a time the fall-back repeats; so do we
(cronsim, like Debian cron, would fire a skipped time at the jump). A rate
fires every period from its start, whatever the clock says.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from cronsim import CronSim, CronSimError

FIELD = "expression"
MIN_YEAR, MAX_YEAR = 1970, 2199
_RATE = re.compile(r"^rate\((\d{1,9}) (minute|minutes|hour|hours|day|days)\)$")
_CRON = re.compile(r"^cron\((.*)\)$")
_UNITS = {"minute": 60, "hour": 3600, "day": 86400}
_DAYS = {"SUN": 1, "MON": 2, "TUE": 3, "WED": 4, "THU": 5, "FRI": 6, "SAT": 7}
_MAXIMA = (59, 23, 31, 12, 7)  # the last value of each field, for a/b
# How far ahead to look for the next firing (a cron in a year past the last has none).
_HORIZON_YEARS = 30


class ExpressionError(ValueError):
    """The expression or the time zone is not one EventBridge Scheduler accepts; ``field`` names which."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Expression:
    """A parsed schedule expression: a rate (``period``) or a cron (``fields`` in cronsim's dialect, ``years``)."""

    text: str
    period: timedelta | None = None
    fields: str = ""
    years: frozenset[int] = frozenset()
    nearest_weekday_to: int | None = None  # nW in day-of-month: cronsim knows LW but not nW


def parse(text: str) -> Expression:
    """The expression, checked as EventBridge Scheduler checks it; :class:`ExpressionError` if it is not valid."""
    rate = _RATE.match(text)
    if rate:
        value, unit = int(rate[1]), rate[2]
        if value < 1:
            raise ExpressionError(FIELD, "a rate must be at least 1 minute")
        singular = unit.rstrip("s")
        if (value == 1) != (unit == singular):  # AWS: singular for 1, plural above
            raise ExpressionError(FIELD, f"must be rate(1 {singular}) or rate({max(value, 2)} {singular}s): "
                                         "the unit is singular for 1 and plural above")
        return Expression(text, period=timedelta(seconds=value * _UNITS[unit.rstrip("s")]))
    cron = _CRON.match(text)
    if not cron:
        raise ExpressionError(FIELD, "must be cron(minutes hours day-of-month month day-of-week year) or "
                                     "rate(value unit), like cron(0 2 * * ? *) or rate(1 hour)")
    return _parse_cron(text, cron[1].split(" "))


def zone(name: str) -> ZoneInfo:
    """The IANA time zone ``name``; :class:`ExpressionError` naming ``timezone`` if there is none."""
    if name not in _zone_names():
        raise ExpressionError("timezone", f"{name!r} is not an IANA time zone name like UTC or Europe/Berlin")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ExpressionError("timezone", f"{name!r} is not an IANA time zone name") from None


def firings(expression: Expression, tz: ZoneInfo, after: datetime, anchor: datetime,
            end: datetime | None = None) -> Iterator[datetime]:
    """The firing times (UTC) strictly after ``after`` and not after ``end``, in order.

    ``anchor`` is where a rate starts counting (its start, or when it was
    made); a cron ignores it.
    """
    times = _rate_times(expression.period, after, anchor) if expression.period else _cron_times(expression, tz, after)
    for moment in times:
        if end is not None and moment > end:
            return
        yield moment


def next_runs(expression: Expression, tz: ZoneInfo, after: datetime, anchor: datetime,
              end: datetime | None = None, count: int = 3) -> list[datetime]:
    """The next ``count`` firing times (fewer if the schedule ends first)."""
    found = []
    for moment in firings(expression, tz, after, anchor, end):
        found.append(moment)
        if len(found) == count:
            break
    return found


def _rate_times(period: timedelta, after: datetime, anchor: datetime) -> Iterator[datetime]:
    steps = max(0, (after - anchor) // period + 1) if after >= anchor else 0
    try:
        moment = anchor + steps * period
        while True:
            yield moment
            moment += period
    except OverflowError:  # past the year 9999: a rate of millions of days has no next run
        return


def _cron_times(expression: Expression, tz: ZoneInfo, after: datetime) -> Iterator[datetime]:
    # Wall-clock times in the zone, from cronsim with naive datetimes (so it never
    # applies Debian's DST rules), then placed on the UTC time line as AWS does.
    start = after.astimezone(tz).replace(tzinfo=None, second=0, microsecond=0)
    if not expression.years:
        yield from _in_years(expression, tz, after, start, start.year + _HORIZON_YEARS)
        return
    # Year by year, each from its own first minute: a year far ahead costs one jump, not a walk.
    for year in sorted(y for y in expression.years if y >= start.year):
        yield from _in_years(expression, tz, after, max(start, datetime(year, 1, 1) - timedelta(minutes=1)), year)


def _in_years(expression: Expression, tz: ZoneInfo, after: datetime, start: datetime,
              last_year: int) -> Iterator[datetime]:
    for local in CronSim(expression.fields, start):
        if local.year > last_year:
            return
        if expression.nearest_weekday_to and local.day != _nearest_weekday(local, expression.nearest_weekday_to):
            continue
        moment = _on_time_line(local, tz)
        if moment is not None and moment > after:
            yield moment


def _on_time_line(local: datetime, tz: ZoneInfo) -> datetime | None:
    """The UTC moment of a wall-clock time; ``None`` for a time the zone skips (fold=0 for a repeated one)."""
    aware = local.replace(tzinfo=tz, fold=0)
    moment = aware.astimezone(UTC)
    if moment.astimezone(tz).replace(tzinfo=None) != local:
        return None
    return moment


def _parse_cron(text: str, fields: list[str]) -> Expression:
    if len(fields) != 6 or not all(fields):
        raise ExpressionError(FIELD, "a cron has six fields separated by single spaces: minutes hours "
                                     "day-of-month month day-of-week year, like cron(0 2 * * ? *)")
    minutes, hours, day_of_month, month, day_of_week, year = (f.upper() for f in fields)
    if (day_of_month == "?") == (day_of_week == "?"):
        raise ExpressionError(FIELD, "exactly one of day-of-month and day-of-week must be ?, like "
                                     "cron(0 2 * * ? *) or cron(0 2 ? * MON *)")
    if "?" in (minutes, hours, month, year):
        raise ExpressionError(FIELD, "? is allowed only in day-of-month or day-of-week")
    near = re.fullmatch(r"(\d{1,2})W", day_of_month)
    if near and not 1 <= int(near[1]) <= 31:
        raise ExpressionError(FIELD, f"day-of-month {day_of_month}: the day must be 1-31")
    if near:  # the weekday nearest day n lies within two days of it: cronsim offers those, we pick
        day = int(near[1])
        day_of_month = f"{max(1, day - 2)}-{min(31, day + 2)}"
    translated = [_steps(minutes, 0), _steps(hours, 1), "*" if day_of_month == "?" else _steps(day_of_month, 2),
                  _steps(month, 3), "*" if day_of_week == "?" else _day_of_week(day_of_week)]
    cron_fields = " ".join(translated)
    try:
        CronSim(cron_fields, datetime(2000, 1, 1))
    except CronSimError as exc:
        raise ExpressionError(FIELD, f"{text} is not a valid cron expression ({exc})") from None
    return Expression(text, fields=cron_fields, years=_years(year), nearest_weekday_to=int(near[1]) if near else None)


def _nearest_weekday(local: datetime, day: int) -> int:
    """The day of ``local``'s month that is the weekday nearest ``day`` (AWS's nW, as Quartz's), in the month.

    0 when the month has no such day (31W in April).
    """
    last = calendar.monthrange(local.year, local.month)[1]
    if day > last:
        return 0
    weekday = calendar.weekday(local.year, local.month, day)  # Monday 0 ... Sunday 6
    if weekday == 5:  # Saturday: the Friday before, or the Monday after on the 1st
        return day - 1 if day > 1 else day + 2
    if weekday == 6:  # Sunday: the Monday after, or the Friday before on the last day
        return day + 1 if day < last else day - 2
    return day


def _steps(field: str, index: int) -> str:
    # AWS's a/b means "from a, every b"; cron wants a range: a-MAX/b.
    return ",".join(f"{item.split('/')[0]}-{_MAXIMA[index]}/{item.split('/')[1]}"
                    if re.fullmatch(r"\d+/\d+", item) else item for item in field.split(","))


def _day_of_week(field: str) -> str:
    """AWS's day-of-week (1-7 = SUN-SAT, names, L, #) in cron's numbering (0-6 = SUN-SAT)."""
    items = []
    for item in field.split(","):
        if item == "L":  # the last day of the week: Saturday
            items.append("6")
            continue
        # Shift every day (number or name) by one; the n of d#n and a step after / stay.
        head, tail = re.fullmatch(r"([^#/]*)(.*)", _steps(item, 4)).groups()  # type: ignore[union-attr]
        items.append(re.sub(r"[A-Z]{3}|\d+", _shift_day, head) + tail)
    return ",".join(items)


def _shift_day(match: re.Match[str]) -> str:
    token = match[0]
    number = _DAYS.get(token) if token.isalpha() else int(token)
    if number is None or not 1 <= number <= 7:
        raise ExpressionError(FIELD, f"day-of-week {token} is not 1-7 or SUN-SAT")
    return str(number - 1)


def _years(field: str) -> frozenset[int]:
    """The years the sixth field allows (empty: every year)."""
    if field == "*":
        return frozenset()
    years: set[int] = set()
    for item in field.split(","):
        found = re.fullmatch(r"(\*|\d{4})(?:-(\d{4}))?(?:/(\d{1,3}))?", item)
        if not found:
            raise ExpressionError(FIELD, f"year {item} is not a year from {MIN_YEAR} to {MAX_YEAR}, a range or a step")
        first = MIN_YEAR if found[1] == "*" else int(found[1])
        last = int(found[2]) if found[2] else (MAX_YEAR if found[1] == "*" or found[3] else first)
        step = int(found[3] or 1)
        if not MIN_YEAR <= first <= last <= MAX_YEAR or step < 1:
            raise ExpressionError(FIELD, f"year {item} is not within {MIN_YEAR}-{MAX_YEAR}")
        years.update(range(first, last + 1, step))
    return frozenset(years)


def _zone_names() -> frozenset[str]:
    global _ZONES
    if _ZONES is None:
        _ZONES = frozenset(available_timezones())
    return _ZONES


_ZONES: frozenset[str] | None = None
