"""The walk-through: ``input/hello-world.json`` scheduled over HTTP and followed to its end.

Everything goes through the public API, as a user's client would; only the
list of states the execution passed comes from Step Functions itself.
"""

from __future__ import annotations

import json
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import requests
from rich.console import Console
from rich.table import Table

from jobscheduler.client import TERMINAL
from jobscheduler.render import STATUS_STYLE

INPUT_DIR = Path(__file__).resolve().parents[2] / "input"
HELLO_WORLD = INPUT_DIR / "hello-world.json"
# Fast enough to see the short-lived statuses (Requested lasts well under a second locally).
WATCH_SECONDS = 0.05


def schedule(api_url: str, body: dict[str, Any]) -> dict[str, Any]:
    """``POST /jobs``; the created job."""
    response = requests.post(f"{api_url}/jobs", json=body, timeout=30)
    if response.status_code != 201:
        raise RuntimeError(f"POST /jobs answered {response.status_code}: {response.text}")
    return dict(response.json())


def follow(api_url: str, job_id: str, console: Console, timeout: float = 120) -> dict[str, Any]:
    """Print each status change with its time until the job is terminal; the final job.

    A status can last less than one poll (a finished container's job is
    terminated within milliseconds): one the poll missed is printed from the
    time the job record keeps for it (``runningAt``, ``finishedAt``).
    """
    deadline, seen = time.monotonic() + timeout, None
    while True:
        response = requests.get(f"{api_url}/jobs/{job_id}", timeout=30)
        response.raise_for_status()
        job = dict(response.json())
        if job["status"] != seen:
            for status, at in _missed(seen, job):
                _print_status(console, at, status, job.get("statusReason"))
            seen = job["status"]
            _print_status(console, datetime.now().astimezone(), seen, job.get("statusReason"))
        if seen in TERMINAL:
            return job
        if time.monotonic() > deadline:
            raise TimeoutError(f"job {job_id} is still {seen} after {timeout:.0f} s")
        time.sleep(WATCH_SECONDS)


def _missed(seen: str | None, job: dict[str, Any]) -> list[tuple[str, datetime]]:
    """The statuses between ``seen`` and the job's current one that its record shows it passed."""
    passed = []
    if seen in ("Scheduled", "Requested") and job.get("runningAt") and job["status"] != "Running":
        passed.append(("Running", job["runningAt"]))
    if seen not in ("FinishedOK", "FinishedNOK") and job.get("finishedAt") and job["status"] in TERMINAL:
        passed.append(("FinishedOK" if job.get("exitCode") == 0 else "FinishedNOK", job["finishedAt"]))
    return [(status, datetime.fromisoformat(at).astimezone()) for status, at in passed]


def _print_status(console: Console, at: datetime, status: str, reason: str | None) -> None:
    console.print(f"{at.strftime('%H:%M:%S')}  [{STATUS_STYLE.get(status, 'bold')}]{status:<14}[/]  "
                  f"[dim]{reason or ''}[/dim]")

def states_passed(sfn: Any, execution_arn: str) -> list[str]:
    """Names of the states the execution entered, in order."""
    names, kwargs = [], {"executionArn": execution_arn, "maxResults": 1000}
    while True:
        page = sfn.get_execution_history(**kwargs)
        names += [e["stateEnteredEventDetails"]["name"] for e in page["events"] if "stateEnteredEventDetails" in e]
        if not page.get("nextToken"):
            return names
        kwargs["nextToken"] = page["nextToken"]


def summary(console: Console, job: dict[str, Any], seconds: float, states: list[str]) -> None:
    """The job at a glance: status, instance, exit code, duration, states passed."""
    table = Table(show_header=False, box=None, padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    table.add_row("job", f"{job['jobId']}  ({job.get('name') or job['image']})")
    table.add_row("status", f"[{STATUS_STYLE.get(job['status'], 'bold')}]{job['status']}[/]  "
                            f"{job.get('statusReason') or ''}")
    for attempt in job.get("attempts") or []:
        table.add_row("instance", f"{attempt.get('instanceId')}  {attempt.get('instanceType', '')} "
                                  f"{attempt.get('lifecycle', '')}  -> {attempt.get('outcome', '?')}")
    table.add_row("exit code", str(job.get("exitCode", "-")))
    table.add_row("duration", f"{seconds:.1f} s from POST /jobs to {job['status']}")
    console.print(table)
    # Outside the table, so the path stays on one line, whatever the terminal's width.
    console.print(f"  {'states':<13}{' -> '.join(states)}", markup=False)


def run_hello_world(api_url: str, sfn: Any, console: Console) -> dict[str, Any]:
    """Schedule hello-world, follow it, print the summary; the final job."""
    body = json.loads(HELLO_WORLD.read_text())
    console.rule(f"POST /jobs  {HELLO_WORLD.relative_to(INPUT_DIR.parent)}")
    started = time.monotonic()
    job = schedule(api_url, body)
    console.print(f"job {job['jobId']} created")
    final = follow(api_url, job["jobId"], console)
    seconds = time.monotonic() - started
    console.rule("summary")
    summary(console, final, seconds, states_passed(sfn, final["executionArn"]) if final.get("executionArn") else [])
    return final


def curl_hint(console: Console, api_url: str, aws_endpoint: str, log_group: str) -> None:
    """How to schedule and inspect one's own job."""
    body = '{"image": "busybox:1.36", "command": ["sh", "-c", "echo hello from my job"]}'
    console.rule("your turn")
    console.print("Schedule your own job (any input/*.json works too):", markup=False)
    console.print(f"  curl -s -X POST {api_url}/jobs -H 'Content-Type: application/json' -d '{body}'", markup=False)
    console.print(f"  curl -s {api_url}/jobs/JOB_ID", markup=False)
    console.print("Look inside the emulated AWS (any credentials, region us-east-1):", markup=False)
    console.print(f"  aws --endpoint-url {aws_endpoint} ec2 describe-instances", markup=False)
    console.print(f"  aws --endpoint-url {aws_endpoint} logs filter-log-events --log-group-name {log_group}",
                  markup=False)
    console.print(f"Interrupt a job's Spot instance:  jobscheduler local interrupt INSTANCE_ID "
                  f"--api-port {api_url.rsplit(':', 1)[1]}", markup=False)
    console.print("Ctrl-C stops everything.", markup=False)
