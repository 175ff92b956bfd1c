"""How the client shows jobs to a person: coloured statuses, tables, the timeline, the cost.

Only presentation lives here; ``--json`` output never passes through it.
"""

from __future__ import annotations

import shlex
from datetime import datetime
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from jobscheduler.client import TERMINAL

STATUS_STYLE = {
    "Scheduled": "blue", "Requested": "cyan", "Running": "bold cyan", "Interrupted": "yellow",
    "FinishedOK": "green", "FinishedNOK": "red", "TerminatedOK": "bold green", "TerminatedNOK": "bold red",
    "TimedOut": "bold red", "Failed": "bold red", "Cancelled": "bold yellow",
}
BAR_WIDTH = 32


def console() -> Console:
    """The console every command (and each part of the local stack) prints to: standard output."""
    # soft_wrap: long lines (URLs, log lines) stay whole when output goes to a file or CI log;
    # there, tables get room too instead of the 80 columns assumed without a terminal.
    found = Console(highlight=False, soft_wrap=True)
    return found if found.is_terminal else Console(highlight=False, soft_wrap=True, width=160)


def status(value: str | None) -> Text:
    """A status in its colour (green ended well, red ended badly, yellow cancelled or interrupted)."""
    return Text(value or "-", style=STATUS_STYLE.get(value or "", "bold"))


def duration(seconds: float | None) -> str:
    """``0.42 s``, ``12.3 s``, ``4 min 05 s``, ``2 h 03 min``, ``3 d 04 h``."""
    if seconds is None:
        return "-"
    if seconds < 10:
        return f"{seconds:.2f} s"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes:02d} min"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours:02d} h"


def job_table(jobs: list[dict[str, Any]]) -> Table:
    """``list``: one row per job."""
    table = Table(box=None, header_style="bold", pad_edge=False)
    # Ids and statuses are never cut (people copy them); names and images wrap instead.
    table.add_column("JOB", no_wrap=True, min_width=36)
    table.add_column("STATUS", no_wrap=True, min_width=13)
    table.add_column("EXIT", justify="right", no_wrap=True)
    table.add_column("SCHEDULED", no_wrap=True, min_width=20)
    table.add_column("NAME", overflow="fold")
    table.add_column("IMAGE", overflow="fold")
    for job in jobs:
        exit_code = job.get("exitCode")
        table.add_row(job["jobId"], status(job.get("status")), "" if exit_code is None else str(exit_code),
                      job.get("scheduledAt", ""), job.get("name") or "", job.get("image", ""))
    return table


def job_details(job: dict[str, Any]) -> Table:
    """``status``: the job's fields, one per line."""
    table = Table(show_header=False, box=None, padding=(0, 2), pad_edge=False)
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    reason = f"  {job['statusReason']}" if job.get("statusReason") else ""
    rows: list[tuple[str, RenderableType | None]] = [
        ("job", job["jobId"]),
        ("name", job.get("name") or None),
        ("image", job.get("image")),
        ("command", shlex.join(job["command"]) if job.get("command") else None),
        ("status", status(job.get("status")) + Text(reason, style="dim")),
        ("exit code", None if job.get("exitCode") is None else str(job["exitCode"])),
        ("scheduled", job.get("scheduledAt")),
        ("created", job.get("createdAt")),
        ("submitted by", job.get("submittedBy")),
        ("held until", f"{job['holdUntil']}  (a shell: aws ssm start-session --target {job.get('instanceId')}; "
                       f"end it: jobscheduler release {job['jobId']})" if job.get("holdUntil") else None),
        ("ended", job.get("endedAt")),
        ("instance types", ", ".join(job.get("instanceTypes") or []) or None),
        ("capacity", f"{job.get('capacity', 'spot')}, up to {job.get('maxAttempts', '?')} attempts, "
                     f"max runtime {duration(job.get('maxRuntimeSeconds'))}"),
        ("cost", cost_text(job)),
        ("execution", job.get("executionArn")),
    ]
    for label, value in rows:
        if value is not None:
            table.add_row(label, value)
    return table


def cost_text(job: dict[str, Any]) -> Text | None:
    """The job's estimated cost and its saving against On-Demand, in words."""
    cost = job.get("cost")
    if not cost:
        ended = job.get("status") in TERMINAL
        return Text("being computed" if ended else "known once the job ends", style="dim")
    if cost.get("estimated") is None:
        return Text("unknown (no Spot price was found for an attempt)", style="dim")
    text = Text(f"{usd(cost['estimated'])} estimated for {duration(cost.get('billedSeconds'))} of instance time")
    if cost.get("saving") is not None:
        text.append(f"; {usd(cost['saving'])} ({cost.get('savingPercent') or 0:.1f} %) less than On-Demand "
                    f"({usd(cost['onDemand'])})", style="green")
    else:
        text.append("; On-Demand price unknown for this type or region", style="dim")
    return text


def usd(amount: float) -> str:
    """Dollars with the digits that matter: ``$1.27``, ``$0.0042``, ``$0.00000017``."""
    if abs(amount) >= 1 or amount == 0:
        return f"${amount:,.2f}"
    whole, _, fraction = f"{amount:.8f}".rstrip("0").partition(".")
    return f"${whole}.{fraction.ljust(2, '0')}"


def attempts_table(attempts: list[dict[str, Any]]) -> Table | None:
    """``status``: one row per instance the job used."""
    if not attempts:
        return None
    table = Table(box=None, header_style="bold", pad_edge=False, title="attempts", title_justify="left",
                  title_style="bold")
    for column in ("#", "INSTANCE", "TYPE", "AZ", "LIFECYCLE", "SPOT $/h", "LAUNCHED", "ENDED", "OUTCOME"):
        table.add_column(column, no_wrap=True)
    for number, attempt in enumerate(attempts, 1):
        price = attempt.get("spotPrice")
        table.add_row(str(number), attempt.get("instanceId", ""), attempt.get("instanceType", ""),
                      attempt.get("availabilityZone") or "", attempt.get("lifecycle", ""),
                      "" if price is None else str(price), attempt.get("launchedAt", ""),
                      attempt.get("endedAt", ""), status(attempt.get("outcome")))
    return table


def timeline(answer: dict[str, Any]) -> RenderableType:
    """``status``: each state the execution passed, when it started and how long it took, as bars in time."""
    states = answer.get("states") or []
    if not states:
        return Text("timeline: the execution has not started (or never will)", style="dim")
    # A state starts when the one before it ends; the durations are exact where the
    # entered times are only to the second.
    offsets = [0.0]
    for state in states[:-1]:
        offsets.append(offsets[-1] + state["seconds"])
    total = max(offsets[-1] + states[-1]["seconds"], 0.001)
    table = Table(box=None, header_style="bold", pad_edge=False, title="timeline", title_justify="left",
                  title_style="bold")
    for column, justify in (("STATE", "left"), ("AT", "right"), ("TOOK", "right"), ("", "left")):
        table.add_column(column, justify=justify, no_wrap=True)  # type: ignore[arg-type]
    for state, offset in zip(states, offsets, strict=True):
        running = state.get("exitedAt") is None
        start = int(offset / total * BAR_WIDTH)
        length = max(1, round(state["seconds"] / total * BAR_WIDTH))
        start = min(start, BAR_WIDTH - 1)
        mark = "█" * min(length, BAR_WIDTH - start) if state["seconds"] > 0 else "·"
        bar = Text(" " * start) + Text(mark, style="yellow" if running else "cyan")
        took = duration(state["seconds"]) + (" …" if running else "")
        table.add_row(state["name"], f"+{duration(offset)}", took, bar)
    caption = f"execution {answer.get('executionStatus') or '-'}" + (" (truncated)" if answer.get("truncated") else "")
    return Group(table, Text(caption, style="dim"))


def change_line(job: dict[str, Any]) -> Text:
    """``watch``: one status change, stamped with the local time."""
    name = job.get("status") or "-"
    return Text.assemble(f"{datetime.now():%H:%M:%S}  ", status(name), " " * max(1, 15 - len(name)),
                         (job.get("statusReason") or "", "dim"))



def schedule_table(schedules: list[dict[str, Any]]) -> Table:
    """``schedules list``: one row per schedule."""
    table = Table(box=None, header_style="bold", pad_edge=False)
    table.add_column("SCHEDULE", no_wrap=True, min_width=36)
    table.add_column("STATE", no_wrap=True)
    table.add_column("EXPRESSION", no_wrap=True)
    table.add_column("ZONE", no_wrap=True)
    table.add_column("NEXT RUN (UTC)", no_wrap=True, min_width=20)
    table.add_column("SKIPPED", justify="right", no_wrap=True)
    table.add_column("NAME", overflow="fold")
    for schedule in schedules:
        runs = schedule.get("nextRuns") or []
        table.add_row(schedule["scheduleId"], _state(schedule), schedule.get("expression", ""),
                      schedule.get("timezone", ""), runs[0] if runs else "-", str(schedule.get("skippedRuns", 0)),
                      schedule.get("name") or "")
    return table


def schedule_details(schedule: dict[str, Any]) -> RenderableType:
    """``schedules show``: the schedule's fields, its next runs and its latest jobs."""
    table = Table(show_header=False, box=None, padding=(0, 2), pad_edge=False)
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    job = schedule.get("job") or {}
    skipped = f"{schedule.get('skippedRuns', 0)}" + (f", last for {schedule['lastSkippedAt']}"
                                                     if schedule.get("lastSkippedAt") else "")
    rows: list[tuple[str, RenderableType | None]] = [
        ("schedule", schedule["scheduleId"]),
        ("name", schedule.get("name") or None),
        ("state", _state(schedule)),
        ("expression", f"{schedule.get('expression')} in {schedule.get('timezone')}"),
        ("overlap", schedule.get("overlap")),
        ("window", " to ".join(t or "…" for t in (schedule.get("startAt"), schedule.get("endAt")))
         if schedule.get("startAt") or schedule.get("endAt") else None),
        ("job", f"{job.get('image', '')}" + (f"  {shlex.join(job['command'])}" if job.get("command") else "")),
        ("next runs (UTC)", ", ".join(schedule.get("nextRuns") or []) or "none"),
        ("skipped runs", skipped),
        ("created", schedule.get("createdAt")),
        ("by", schedule.get("submittedBy")),
    ]
    for label, value in rows:
        if value is not None:
            table.add_row(label, value)
    last = schedule.get("lastJobs") or []
    if not last:
        return Group(table, Text("no jobs yet", style="dim"))
    jobs = Table(box=None, header_style="bold", pad_edge=False, title="latest jobs", title_justify="left",
                 title_style="bold")
    for column in ("JOB", "STATUS", "SCHEDULED"):
        jobs.add_column(column, no_wrap=True)
    for made in last:
        jobs.add_row(made["jobId"], status(made.get("status")), made.get("scheduledAt", ""))
    return Group(table, Text(""), jobs)


def _state(schedule: dict[str, Any]) -> Text:
    return Text("enabled", style="green") if schedule.get("enabled", True) else Text("paused", style="yellow")
