"""EventBridge Scheduler's firing, which moto does not do: the local stack's schedules fire on time.

The schedules live in the emulated Scheduler, in the stack's group, as the API
created them. Twice a second this reads the enabled ones and, when a firing
time has come, hands ``on_schedule`` the schedule's own target input with
``<aws.scheduler.scheduled-time>`` filled in, as EventBridge Scheduler does
(well inside the 2 s the local stack promises). Firing times come from the
runtime's own expression module, so the local stack fires at the times the
API shows in ``nextRuns``. A rate fires at its start (or creation), then
every period, as in AWS.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import ModuleType
from typing import Any

from rich.console import Console

from jobscheduler.local import runtime

POLL_SECONDS = 0.5
PLACEHOLDER = "<aws.scheduler.scheduled-time>"


@dataclass
class _Plan:
    """What is known of one schedule: its version (last modification) and its next firing time."""

    version: Any
    upcoming: Iterator[datetime]
    due: datetime | None


@dataclass
class ScheduleFiring:
    """Fires the enabled schedules of one group through ``on_schedule``, in one thread."""

    scheduler: Any  # a boto3 "scheduler" client on the local endpoint
    group: str
    handlers: ModuleType  # runtime/app.py
    console: Console
    _plans: dict[str, _Plan] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        """Start firing in a background thread."""
        self._thread = threading.Thread(target=self._run, name="schedules", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop firing (a firing being handled finishes first)."""
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=30)

    def fire_due(self, now: datetime) -> list[Any]:
        """Deliver every firing due by ``now``; the handler's answers."""
        answers = []
        names = self._enabled()
        for name in set(self._plans) - names:
            del self._plans[name]  # deleted or paused: a resumed schedule is planned afresh
        for name in sorted(names):
            schedule = self.scheduler.get_schedule(Name=name, GroupName=self.group)
            plan = self._plan(name, schedule)
            while plan.due is not None and plan.due <= now:
                answers.append(self._deliver(schedule, plan.due))
                plan.due = next(plan.upcoming, None)
        return answers

    def _enabled(self) -> set[str]:
        pages = self.scheduler.get_paginator("list_schedules").paginate(GroupName=self.group, State="ENABLED")
        return {s["Name"] for page in pages for s in page["Schedules"]}

    def _plan(self, name: str, schedule: dict[str, Any]) -> _Plan:
        version = schedule.get("LastModificationDate")
        plan = self._plans.get(name)
        if plan is None or plan.version != version:
            cron = runtime.module("chalicelib.cron")
            expression = cron.parse(schedule["ScheduleExpression"])
            tz = cron.zone(schedule.get("ScheduleExpressionTimezone") or "UTC")
            anchor = _utc(schedule.get("StartDate") or schedule["CreationDate"])
            # From the creation or the change on (a rate's first firing is its anchor itself).
            after = max(anchor, _utc(version or schedule["CreationDate"])) - timedelta(microseconds=1)
            end = _utc(schedule["EndDate"]) if schedule.get("EndDate") else None
            upcoming = cron.firings(expression, tz, after, anchor, end)
            plan = self._plans[name] = _Plan(version, upcoming, next(upcoming, None))
        return plan

    def _deliver(self, schedule: dict[str, Any], due: datetime) -> Any:
        fired_at = due.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        event = json.loads(schedule["Target"]["Input"].replace(PLACEHOLDER, fired_at))
        answer = self.handlers.on_schedule(event, None)
        self.console.print(f"[magenta]schedule[/magenta] {schedule['Name']} fired for {fired_at} "
                           f"-> on_schedule: {answer}")
        return answer

    def _run(self) -> None:
        while not self._stop.wait(POLL_SECONDS):
            try:
                self.fire_due(datetime.now(UTC))
            except Exception as exc:  # one failed round must not end the firing
                self.console.print(f"[red]schedule firing: {exc}[/red]")


def _utc(moment: datetime | float | str) -> datetime:
    """A time as botocore parses it (or moto leaves it) as an aware UTC datetime."""
    if isinstance(moment, datetime):
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    if isinstance(moment, int | float):
        return datetime.fromtimestamp(moment, UTC)
    return datetime.fromisoformat(moment)
