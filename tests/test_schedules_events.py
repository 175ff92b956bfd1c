"""Events of recurring schedules: their jobs' status changes carry scheduleId; a skipped firing is an event too.

The job table's real stream records go to ``on_job_change`` as in
tests/test_job_events.py; what reaches the default bus is read back from an
SQS queue behind the rules a user would write.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import boto3

from chalicelib import events, firing
from tests.support import Instance, wait_terminal
from tests.test_job_events import on_job_change, wiring  # noqa: F401  (the stream and the queue)
from tests.test_schedules import create, deliver

LATER = (datetime.now(UTC) + timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_status_changes_of_a_schedules_job_carry_its_schedule_id(api, wiring):  # noqa: F811
    """Every Job Status Change of a job a schedule made names the schedule; the schedule's own writes are no event."""
    schedule_id = create(api, overlap="allow")["scheduleId"]
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    job_id = deliver(schedule_id, now)["jobId"]
    Instance(api, job_id).callback(0)
    wait_terminal(job_id)
    answer = on_job_change(wiring.records())
    published = wiring.published()
    assert [e["detail"]["status"] for e in published] == ["Scheduled", "Requested", "Running", "FinishedOK",
                                                          "TerminatedOK"]
    assert answer["published"] == len(published)
    assert {(e["detail"]["jobId"], e["detail"]["scheduleId"], e["detail"]["scheduledAt"]) for e in published} == {
        (job_id, schedule_id, now)}


def test_a_skipped_firing_publishes_schedule_firing_skipped_once(api, wiring):  # noqa: F811
    """overlap skip: the skipped firing is one event naming the schedule, its time and the job still running."""
    bus, sqs = boto3.client("events"), boto3.client("sqs")
    queue_arn = sqs.get_queue_attributes(QueueUrl=wiring.queue_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"]
    bus.put_rule(Name="skipped-firings", EventPattern=json.dumps({"source": [events.SOURCE],
                                                                   "detail-type": [firing.SKIPPED]}))
    bus.put_targets(Rule="skipped-firings", Targets=[{"Id": "queue", "Arn": queue_arn}])
    schedule_id = create(api, name="nightly")["scheduleId"]
    running = deliver(schedule_id, LATER)["jobId"]
    later = (datetime.now(UTC) + timedelta(days=31)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert deliver(schedule_id, later)["counted"] is True
    assert deliver(schedule_id, later)["counted"] is False  # a repeated delivery is no second event
    (event,) = wiring.published()
    assert (event["source"], event["detail-type"]) == ("jobscheduler", "Schedule Firing Skipped")
    assert event["detail"] == {"scheduleId": schedule_id, "name": "nightly", "scheduledTime": later,
                               "reason": "overlap skip: the previous job has not ended", "runningJobs": [running],
                               "skippedRuns": 1}
    api.http.post(f"/jobs/{running}/cancel")
