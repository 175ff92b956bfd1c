"""Recurring schedules: the routes, every bad input, and exactly one job per firing, on moto running the workflow.

Firings are delivered to ``on_schedule`` as EventBridge Scheduler delivers
them: the target input the schedule holds in the emulated Scheduler, with
``<aws.scheduler.scheduled-time>`` replaced by the firing time.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from chalicelib import config, firing, jobs, statuses, store
from tests.support import Instance, wait_for, wait_terminal

HELLO = {"image": "hello-world:latest", "maxRuntimeSeconds": 60, "instanceTypes": ["m5.large"]}
NIGHTLY = {"expression": "cron(0 2 * * ? *)", "timezone": "Europe/Berlin", "name": "nightly", "job": HELLO}
LATER = (datetime.now(UTC) + timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%SZ")


def post(client: Any, body: Any) -> Any:
    """POST /schedules with a JSON body."""
    raw = body if isinstance(body, str) else json.dumps(body)
    return client.http.post("/schedules", headers={"Content-Type": "application/json"}, body=raw)


def patch(client: Any, schedule_id: str, body: Any) -> Any:
    """PATCH /schedules/{id} with a JSON body."""
    return client.http.request("PATCH", f"/schedules/{schedule_id}", headers={"Content-Type": "application/json"},
                               body=json.dumps(body))


def create(client: Any, **changes: Any) -> dict[str, Any]:
    """A schedule created through the API (the nightly one, changed as asked)."""
    response = post(client, {**NIGHTLY, **changes})
    assert response.status_code == 201, response.body
    return dict(response.json_body)


def emulated(schedule_id: str) -> dict[str, Any]:
    """The schedule as EventBridge Scheduler holds it."""
    return dict(boto3.client("scheduler").get_schedule(Name=schedule_id, GroupName=config.schedule_group()))


def deliver(schedule_id: str, fired_at: str) -> dict[str, Any]:
    """Fire the schedule as EventBridge Scheduler does: its target input, the time filled in, to on_schedule."""
    from app import on_schedule

    text = emulated(schedule_id)["Target"]["Input"].replace("<aws.scheduler.scheduled-time>", fired_at)
    return dict(on_schedule(json.loads(text), None))


def test_create_returns_the_schedule_with_next_runs_and_arms_eventbridge_scheduler(api):
    """POST /schedules: 201, Location, nextRuns in UTC; one Scheduler schedule, flexible window off, in the group."""
    response = post(api, NIGHTLY)
    assert response.status_code == 201, response.body
    schedule = response.json_body
    assert response.headers["Location"] == f"/schedules/{schedule['scheduleId']}"
    assert schedule["overlap"] == "skip" and schedule["enabled"] is True and schedule["skippedRuns"] == 0
    assert len(schedule["nextRuns"]) == 3 and all(t.endswith(":00Z") for t in schedule["nextRuns"])
    # 02:00 in Berlin is 00:00 or 01:00 UTC, depending on daylight saving.
    assert {t[11:13] for t in schedule["nextRuns"]} <= {"00", "01"}
    assert schedule["lastJobs"] == [] and "apiUrl" not in schedule and "jobId" not in schedule
    held = emulated(schedule["scheduleId"])
    assert held["ScheduleExpression"] == "cron(0 2 * * ? *)" and held["ScheduleExpressionTimezone"] == "Europe/Berlin"
    assert held["FlexibleTimeWindow"] == {"Mode": "OFF"} and held["State"] == "ENABLED"
    assert held["Target"]["Arn"] == config.schedule_target_arn()
    assert held["Target"]["RoleArn"] == config.scheduler_role_arn()
    assert json.loads(held["Target"]["Input"]) == {"scheduleId": schedule["scheduleId"],
                                                   "scheduledTime": "<aws.scheduler.scheduled-time>"}
    assert api.http.get(f"/schedules/{schedule['scheduleId']}").json_body["expression"] == "cron(0 2 * * ? *)"


def test_list_pages_through_schedules_newest_first(api):
    """GET /schedules: limit and nextToken walk every schedule once, newest first."""
    made = [create(api, name=f"s{i}")["scheduleId"] for i in range(3)]
    first = api.http.get("/schedules?limit=2").json_body
    second = api.http.get(f"/schedules?limit=2&nextToken={first['nextToken']}").json_body
    listed = [s["scheduleId"] for s in first["schedules"] + second["schedules"]]
    assert sorted(listed) == sorted(made) and len(listed) == 3
    assert listed[0] == made[-1]


def test_pause_resume_and_change_reach_eventbridge_scheduler(api):
    """PATCH: enabled false pauses (no next runs, Scheduler DISABLED), true resumes; other fields replace."""
    schedule_id = create(api)["scheduleId"]
    paused = patch(api, schedule_id, {"enabled": False})
    assert paused.status_code == 200 and paused.json_body["nextRuns"] == []
    assert emulated(schedule_id)["State"] == "DISABLED"
    resumed = patch(api, schedule_id, {"enabled": True, "expression": "rate(1 hour)", "timezone": "UTC"})
    assert resumed.status_code == 200 and len(resumed.json_body["nextRuns"]) == 3
    held = emulated(schedule_id)
    assert held["State"] == "ENABLED" and held["ScheduleExpression"] == "rate(1 hour)"
    runs = [datetime.fromisoformat(t) for t in resumed.json_body["nextRuns"]]
    assert runs[1] - runs[0] == timedelta(hours=1) == runs[2] - runs[1]


def test_delete_removes_the_schedule_and_its_firings_but_not_its_jobs(api):
    """DELETE: 204; the schedule is gone here and in Scheduler; a late firing makes nothing; made jobs go on."""
    schedule_id = create(api)["scheduleId"]
    text = emulated(schedule_id)["Target"]["Input"]
    made = deliver(schedule_id, LATER)
    assert api.http.delete(f"/schedules/{schedule_id}").status_code == 204
    assert api.http.get(f"/schedules/{schedule_id}").status_code == 404
    with pytest.raises(boto3.client("scheduler").exceptions.ResourceNotFoundException):
        emulated(schedule_id)
    from app import on_schedule

    late = on_schedule(json.loads(text.replace("<aws.scheduler.scheduled-time>", LATER)), None)
    assert late == {"scheduleId": schedule_id, "ignored": "no such schedule"}
    assert store.get(made["jobId"])["status"] == statuses.SCHEDULED
    assert api.http.delete(f"/schedules/{schedule_id}").status_code == 404


def test_the_same_firing_delivered_twice_makes_one_job_one_execution(api, aws):
    """Exactly once: a repeated delivery returns the job the first made; one execution exists, named after it."""
    schedule_id = create(api)["scheduleId"]
    first, again = deliver(schedule_id, LATER), deliver(schedule_id, LATER)
    assert first["created"] is True and again == {**first, "created": False}
    job = store.get(first["jobId"])
    assert job["scheduleId"] == schedule_id and job["scheduledAt"] == LATER and job["name"] == "nightly"
    assert job["jobId"] == firing.job_id(schedule_id, LATER)
    executions = boto3.client("stepfunctions").list_executions(stateMachineArn=aws.state_machine_arn)["executions"]
    assert [e["name"] for e in executions] == [first["jobId"]]
    listed = api.http.get(f"/jobs?scheduleId={schedule_id}").json_body["jobs"]
    assert [j["jobId"] for j in listed] == [first["jobId"]]


def test_a_repeat_starts_the_job_a_first_delivery_stored_but_died_before_starting(api, aws, monkeypatch):
    """The first delivery wrote the job and crashed; the repeat starts it, once; a third delivery changes nothing."""
    from chalicelib import workflow

    schedule_id = create(api)["scheduleId"]
    real_start = workflow.start
    monkeypatch.setattr(workflow, "start", lambda job, user_data: (_ for _ in ()).throw(SystemExit("crash")))
    with pytest.raises(SystemExit):
        deliver(schedule_id, LATER)
    monkeypatch.setattr(workflow, "start", real_start)
    job_id = firing.job_id(schedule_id, LATER)
    sfn = boto3.client("stepfunctions")
    assert store.get(job_id)["status"] == statuses.SCHEDULED
    assert sfn.list_executions(stateMachineArn=aws.state_machine_arn)["executions"] == []
    assert deliver(schedule_id, LATER) == {"scheduleId": schedule_id, "jobId": job_id, "created": False}
    assert deliver(schedule_id, LATER) == {"scheduleId": schedule_id, "jobId": job_id, "created": False}
    assert [e["name"] for e in sfn.list_executions(stateMachineArn=aws.state_machine_arn)["executions"]] == [job_id]
    api.http.post(f"/jobs/{job_id}/cancel")


@pytest.mark.slow
def test_a_schedules_job_runs_to_terminated_ok_and_shows_in_last_jobs(api):
    """A firing now: the job runs the whole workflow; the schedule lists it in lastJobs; GET /jobs?scheduleId= too."""
    schedule_id = create(api, overlap="allow")["scheduleId"]
    fired_at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    job_id = deliver(schedule_id, fired_at)["jobId"]
    Instance(api, job_id).callback(0)
    assert wait_terminal(job_id)["status"] == statuses.TERMINATED_OK
    schedule = api.http.get(f"/schedules/{schedule_id}").json_body
    assert schedule["lastJobs"] == [{"jobId": job_id, "status": "TerminatedOK", "scheduledAt": fired_at}]


def test_jobs_of_a_schedule_are_listed_newest_firing_first(api):
    """GET /jobs?scheduleId=: only that schedule's jobs, newest firing first, paginated."""
    schedule_id = create(api, overlap="allow")["scheduleId"]
    other = create(api, overlap="allow")["scheduleId"]
    times = [(datetime.now(UTC) + timedelta(days=d)).strftime("%Y-%m-%dT%H:%M:%SZ") for d in (3, 1, 2)]
    made = {t: deliver(schedule_id, t)["jobId"] for t in times}
    deliver(other, times[0])
    first = api.http.get(f"/jobs?scheduleId={schedule_id}&limit=2").json_body
    second = api.http.get(f"/jobs?scheduleId={schedule_id}&limit=2&nextToken={first['nextToken']}").json_body
    listed = [j["jobId"] for j in first["jobs"] + second["jobs"]]
    assert listed == [made[t] for t in sorted(times, reverse=True)]
    assert all(j["scheduleId"] == schedule_id for j in first["jobs"])
    for job_id in [*made.values()]:
        api.http.post(f"/jobs/{job_id}/cancel")


def test_overlap_skip_makes_no_job_while_the_previous_runs_and_counts_it_once(api):
    """skip: a firing while the previous job has not ended makes nothing; skippedRuns counts it once, repeats not."""
    schedule_id = create(api)["scheduleId"]
    previous = deliver(schedule_id, LATER)["jobId"]
    later = (datetime.now(UTC) + timedelta(days=31)).strftime("%Y-%m-%dT%H:%M:%SZ")
    skipped = deliver(schedule_id, later)
    assert skipped == {"scheduleId": schedule_id, "skipped": True, "counted": True}
    assert deliver(schedule_id, later)["counted"] is False
    assert store.get(firing.job_id(schedule_id, later)) is None
    schedule = api.http.get(f"/schedules/{schedule_id}").json_body
    assert schedule["skippedRuns"] == 1 and schedule["lastSkippedAt"] == later
    assert [j["jobId"] for j in schedule["lastJobs"]] == [previous]
    # Once the previous job has ended, the next firing makes its job.
    api.http.post(f"/jobs/{previous}/cancel")
    wait_terminal(previous)
    nxt = (datetime.now(UTC) + timedelta(days=32)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert deliver(schedule_id, nxt)["created"] is True


@pytest.mark.slow
def test_overlap_cancel_previous_cancels_the_running_job_then_starts(api):
    """cancel-previous: the running job is cancelled (its instance terminated), then the firing's job starts."""
    schedule_id = create(api, overlap="cancel-previous")["scheduleId"]
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    previous = deliver(schedule_id, now)["jobId"]
    Instance(api, previous)
    wait_for(previous, {jobs.RUNNING})
    made = deliver(schedule_id, LATER)
    assert made["created"] is True
    assert wait_terminal(previous)["status"] == statuses.CANCELLED
    assert store.get(made["jobId"])["status"] == statuses.SCHEDULED
    api.http.post(f"/jobs/{made['jobId']}/cancel")


def test_a_paused_schedules_late_firing_makes_nothing(api):
    """A firing that arrives after the schedule was paused is ignored."""
    schedule_id = create(api)["scheduleId"]
    patch(api, schedule_id, {"enabled": False})
    assert deliver(schedule_id, LATER) == {"scheduleId": schedule_id, "ignored": "paused"}


def test_a_templates_own_name_wins_over_the_schedules(api):
    """The job's own name wins (without one, the job takes the schedule's: see the firing-twice test)."""
    schedule_id = create(api, job={**HELLO, "name": "own"})["scheduleId"]
    assert store.get(deliver(schedule_id, LATER)["jobId"])["name"] == "own"


BAD = [
    ("expression", {"expression": "cron(0 2 * * *)"}),
    ("expression", {"expression": "cron(0 2 * * * *)"}),  # both day fields set
    ("expression", {"expression": "cron(0 2 ? * ? *)"}),
    ("expression", {"expression": "cron(61 2 * * ? *)"}),
    ("expression", {"expression": "cron(0 2 ? * 8 *)"}),
    ("expression", {"expression": "cron(0 2 * * ? 1969)"}),
    ("expression", {"expression": "rate(0 minutes)"}),
    ("expression", {"expression": "rate(30 seconds)"}),
    ("expression", {"expression": "rate(2 hour)"}),
    ("expression", {"expression": "every night"}),
    ("expression", {"expression": 5}),
    ("expression", {"expression": None}),
    ("timezone", {"timezone": "Mars/Olympus"}),
    ("timezone", {"timezone": "../etc/passwd"}),
    ("job", {"job": "hello-world"}),
    ("job.image", {"job": {}}),
    ("job.image", {"job": {"image": "UPPER/case"}}),
    ("job.scheduledAt", {"job": {**HELLO, "scheduledAt": LATER}}),
    ("job.colour", {"job": {**HELLO, "colour": "red"}}),
    ("job.env.1BAD", {"job": {**HELLO, "env": {"1BAD": "x"}}}),
    ("job.heartbeatSeconds", {"job": {**HELLO, "heartbeatSeconds": 60}}),
    ("job.secrets.X", {"job": {**HELLO, "secrets": {"X": "/elsewhere/x"}}}),
    ("job.env", {"job": {**HELLO, "env": {f"V{i}": "x" * 2000 for i in range(9)}}}),  # user data over 16 KB
    ("overlap", {"overlap": "queue"}),
    ("enabled", {"enabled": "yes"}),
    ("startAt", {"startAt": "tomorrow"}),
    ("endAt", {"startAt": "2099-01-02T00:00:00Z", "endAt": "2099-01-01T00:00:00Z"}),
    ("endAt", {"endAt": "2020-01-01T00:00:00Z"}),
    ("name", {"name": "a\nb"}),
    ("colour", {"colour": "red"}),
]


@pytest.mark.parametrize(("field", "changes"), BAD, ids=[f"{f}-{i}" for i, (f, _) in enumerate(BAD)])
def test_bad_schedule_is_a_400_naming_the_field_and_changes_nothing(api, field, changes):
    """Every bad input: 400, the message starts with the field, nothing stored, nothing in Scheduler."""
    body = {k: v for k, v in {**NIGHTLY, **changes}.items() if not (k == "expression" and v is None)}
    response = post(api, body)
    assert response.status_code == 400, response.body
    assert response.json_body["Message"].startswith(f"{field}: "), response.json_body
    assert api.http.get("/schedules").json_body["schedules"] == []
    assert boto3.client("scheduler").list_schedules(GroupName=config.schedule_group())["Schedules"] == []


@pytest.mark.parametrize(("field", "changes"), [
    ("expression", {"expression": "cron(0 2 * * * *)"}),
    ("timezone", {"timezone": "Nowhere/Town"}),
    ("job.maxRuntimeSeconds", {"job": {**HELLO, "maxRuntimeSeconds": 0}}),
    ("startAt", {"startAt": LATER}),  # a start cannot be moved once set
    ("body", {}),
])
def test_bad_patch_is_a_400_naming_the_field_and_changes_nothing(api, field, changes):
    """PATCH with a bad field: 400 naming it; the schedule and its Scheduler twin stay as they were."""
    schedule = create(api)
    response = patch(api, schedule["scheduleId"], changes)
    assert response.status_code == 400 and response.json_body["Message"].startswith(f"{field}: "), response.body
    after = api.http.get(f"/schedules/{schedule['scheduleId']}").json_body
    assert after["expression"] == schedule["expression"] and after["job"] == schedule["job"]
    assert after["updatedAt"] == schedule["updatedAt"]
    assert emulated(schedule["scheduleId"])["ScheduleExpression"] == schedule["expression"]


@pytest.mark.parametrize("path", ["/schedules/sch-00000000000000000000000000000000", "/schedules/nope"])
def test_unknown_schedule_is_a_404_naming_it(api, path):
    """GET, PATCH and DELETE of an unknown schedule: 404 naming scheduleId."""
    for response in (api.http.get(path), patch(api, path.rsplit("/", 1)[1], {"enabled": False}),
                     api.http.delete(path)):
        assert response.status_code == 404 and response.json_body["Message"].startswith("scheduleId: ")


def test_list_query_is_checked(api):
    """GET /schedules and GET /jobs?scheduleId= refuse what they do not know."""
    assert api.http.get("/schedules?limit=0").json_body["Message"].startswith("limit: ")
    assert api.http.get("/schedules?status=x").json_body["Message"].startswith("status: ")
    assert api.http.get("/schedules?nextToken=abc").json_body["Message"].startswith("nextToken: ")
    # A token continues only its own list: the schedules', the jobs', one schedule's jobs.
    first, second = create(api, overlap="allow")["scheduleId"], create(api, overlap="allow")["scheduleId"]
    for schedule_id in (first, second):
        for days in (1, 2):
            deliver(schedule_id, (datetime.now(UTC) + timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%SZ"))
    tokens = {"schedules": api.http.get("/schedules?limit=1").json_body["nextToken"],
              "jobs": api.http.get("/jobs?limit=1").json_body["nextToken"],
              "first": api.http.get(f"/jobs?scheduleId={first}&limit=1").json_body["nextToken"]}
    assert all(tokens.values())
    for path, foreign in (("/schedules?", tokens["jobs"]), ("/jobs?", tokens["schedules"]),
                          (f"/jobs?scheduleId={second}&", tokens["first"]), ("/schedules?", tokens["first"])):
        refused = api.http.get(f"{path}nextToken={foreign}")
        assert refused.status_code == 400 and refused.json_body["Message"].startswith("nextToken: "), path
    for query in ("scheduleId=sch-00000000000000000000000000000000&status=Running", "scheduleId=", "scheduleId=x"):
        refused = api.http.get(f"/jobs?{query}")
        assert refused.status_code == 400 and refused.json_body["Message"].startswith("scheduleId: "), query


def test_a_firing_without_a_time_makes_nothing(api):
    """An input whose placeholder was never filled in (or is no time) is logged and ignored, not retried forever."""
    from app import on_schedule

    schedule_id = create(api)["scheduleId"]
    for bad in ("<aws.scheduler.scheduled-time>", "", "yesterday"):
        assert on_schedule({"scheduleId": schedule_id, "scheduledTime": bad}, None) == {
            "ignored": "no valid scheduledTime"}
    assert api.http.get(f"/jobs?scheduleId={schedule_id}").json_body["jobs"] == []
