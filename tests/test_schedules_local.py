"""The local stack fires its schedules: the firing component on moto in-process, then ``jobscheduler local`` itself.

The component is given the time, so the in-process tests say exactly which
firings are due when; the local stack test lets a ``rate(1 minute)`` run on
the clock and checks the two jobs it made, a minute apart, each to its end.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import boto3
import pytest
import requests
from rich.console import Console

from chalicelib import config, firing, store
from jobscheduler.local.scheduler import ScheduleFiring
from tests.support import wait_until
from tests.test_local import Stack, stack  # noqa: F401  (the module's own local stack)

HELLO = {"image": "hello-world:latest", "maxRuntimeSeconds": 60, "instanceTypes": ["m5.large"]}


def create(api, **body) -> dict:
    """POST /schedules."""
    response = api.http.post("/schedules", headers={"Content-Type": "application/json"},
                             body=json.dumps({"job": HELLO, **body}))
    assert response.status_code == 201, response.body
    return dict(response.json_body)


def firing_component() -> ScheduleFiring:
    """The local stack's firing component, on the in-process moto and app."""
    import app

    return ScheduleFiring(boto3.client("scheduler"), config.schedule_group(), app, Console(quiet=True))


def created_at(schedule_id: str) -> datetime:
    """When EventBridge Scheduler made the schedule (a rate's anchor)."""
    held = boto3.client("scheduler").get_schedule(Name=schedule_id, GroupName=config.schedule_group())
    return held["CreationDate"].astimezone(UTC)


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_a_rate_fires_at_its_start_then_every_period_once_each(api):
    """rate(1 minute): due at creation, then a minute later; asking again fires nothing twice."""
    schedule_id = create(api, expression="rate(1 minute)", overlap="allow")["scheduleId"]
    anchor, local = created_at(schedule_id), firing_component()
    first = local.fire_due(anchor + timedelta(seconds=1))
    assert [a["jobId"] for a in first] == [firing.job_id(schedule_id, stamp(anchor))]
    assert local.fire_due(anchor + timedelta(seconds=59)) == []
    second = local.fire_due(anchor + timedelta(seconds=60))
    assert [a["jobId"] for a in second] == [firing.job_id(schedule_id, stamp(anchor + timedelta(minutes=1)))]
    for answer in first + second:
        assert answer["created"] is True
        api.http.post(f"/jobs/{answer['jobId']}/cancel")


def test_a_cron_fires_at_the_times_the_api_shows(api):
    """Each of the next runs the API shows fires when its time comes, not before."""
    schedule = create(api, expression="cron(*/5 * * * ? *)", overlap="allow")
    runs = [datetime.fromisoformat(t) for t in schedule["nextRuns"][:2]]
    local = firing_component()
    assert local.fire_due(runs[0] - timedelta(seconds=1)) == []
    made = local.fire_due(runs[1])
    assert [store.get(a["jobId"])["scheduledAt"] for a in made] == [stamp(t) for t in runs]
    for answer in made:
        api.http.post(f"/jobs/{answer['jobId']}/cancel")


def test_a_paused_or_deleted_schedule_does_not_fire(api):
    """Paused: nothing fires; resumed: firings after the resume only; deleted: nothing."""
    schedule_id = create(api, expression="rate(1 minute)")["scheduleId"]
    local = firing_component()
    api.http.request("PATCH", f"/schedules/{schedule_id}", headers={"Content-Type": "application/json"},
                     body=json.dumps({"enabled": False}))
    assert local.fire_due(datetime.now(UTC) + timedelta(minutes=5)) == []
    api.http.delete(f"/schedules/{schedule_id}")
    assert local.fire_due(datetime.now(UTC) + timedelta(minutes=10)) == []


@pytest.mark.slow
def test_local_rate_schedule_makes_two_jobs_a_minute_apart_each_terminated_ok(stack: Stack):  # noqa: F811
    """`jobscheduler local`: rate(1 minute) fires on the clock; two jobs a minute apart both end TerminatedOK."""
    response = requests.post(f"{stack.api}/schedules", timeout=30, json={
        "expression": "rate(1 minute)", "name": "every minute", "job": {"image": "hello-world:latest"}})
    assert response.status_code == 201, response.text
    schedule_id = response.json()["scheduleId"]

    def two_made() -> list[dict] | None:
        found = requests.get(f"{stack.api}/jobs?scheduleId={schedule_id}", timeout=30).json()["jobs"]
        return list(found) if len(found) >= 2 else None

    jobs = wait_until(two_made, "two firings", timeout=150)
    requests.patch(f"{stack.api}/schedules/{schedule_id}", json={"enabled": False}, timeout=30)
    newer, older = jobs[:2]
    gap = datetime.fromisoformat(newer["scheduledAt"]) - datetime.fromisoformat(older["scheduledAt"])
    assert gap == timedelta(minutes=1)
    for job in (older, newer):
        done = stack.wait_terminal(job["jobId"], timeout=90)
        assert (done["status"], done["exitCode"], done["scheduleId"]) == ("TerminatedOK", 0, schedule_id)


# --- the client: `jobscheduler schedules ...` against the module's local stack ------------------------------


@pytest.mark.slow
def test_cli_schedules_create_show_pause_resume_list_delete(stack: Stack):  # noqa: F811
    """Each schedules command over real HTTP: --json parses, the human output says what matters, exit codes hold."""
    from tests.test_cli import ok, run

    created = json.loads(ok(run(stack, "schedules", "create", "input/nightly.json", "--cron", "0 2 * * ? *",
                                "--tz", "Europe/Berlin", "--name", "nightly", "--json")).stdout)
    schedule_id = created["scheduleId"]
    assert (created["expression"], created["timezone"], created["overlap"]) == (
        "cron(0 2 * * ? *)", "Europe/Berlin", "skip")
    assert created["job"]["name"] == "nightly report" and len(created["nextRuns"]) == 3
    listed = json.loads(ok(run(stack, "schedules", "list", "--json")).stdout)["schedules"]
    assert schedule_id in [s["scheduleId"] for s in listed]
    shown = ok(run(stack, "schedules", "show", schedule_id)).stdout
    assert "cron(0 2 * * ? *) in Europe/Berlin" in shown and created["nextRuns"][0] in shown and "no jobs yet" in shown
    paused = json.loads(ok(run(stack, "schedules", "pause", schedule_id, "--json")).stdout)
    assert paused["enabled"] is False and paused["nextRuns"] == []
    assert "resumed" in ok(run(stack, "schedules", "resume", schedule_id)).stdout
    jobs = json.loads(ok(run(stack, "list", "--schedule", schedule_id, "--json")).stdout)
    assert jobs == {"jobs": [], "nextToken": None}
    assert "deleted" in ok(run(stack, "schedules", "delete", schedule_id)).stdout
    gone = run(stack, "schedules", "show", schedule_id)
    assert gone.returncode == 3 and "scheduleId" in gone.stderr


@pytest.mark.slow
def test_cli_schedules_refuses_bad_input_with_exit_code_2(stack: Stack):  # noqa: F811
    """A cron the API refuses, no expression at all, or both kinds: exit 2 naming the problem; nothing created."""
    from tests.test_cli import run

    refused = run(stack, "schedules", "create", "input/nightly.json", "--cron", "0 2 * * * *")
    assert refused.returncode == 2 and "expression:" in refused.stderr
    # A job file with a time of its own: the time is left out (each firing sets it), and said so.
    hourly = run(stack, "schedules", "create", "input/env-and-command.json", "--rate", "1 hour", "--paused", "--json")
    assert hourly.returncode == 0 and "scheduledAt is left out" in hourly.stderr
    assert "scheduledAt" not in json.loads(hourly.stdout)["job"]
    for args in ((), ("--cron", "0 2 * * ? *", "--rate", "1 hour"), ("--cron", "0 2 * * ?")):
        result = run(stack, "schedules", "create", "input/nightly.json", *args)
        assert result.returncode == 2 and "--cron" in result.stderr, result.stderr
    listed = json.loads(run(stack, "schedules", "list", "--json").stdout)["schedules"]
    assert [s["expression"] for s in listed if s["expression"].startswith("cron(0 2 * * * *")] == []
