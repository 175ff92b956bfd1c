"""Job events, cost per job, the logs route and the timeline route, on moto running the real workflow.

The ``on_job_change`` handler gets the job table's real stream records (moto
keeps a stream when the table has one enabled), as Lambda's event source
mapping would hand them over; the events it publishes are read back from an
SQS queue behind an EventBridge rule, the way a user would route them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.config import Config

from chalicelib import config, cost, events, jobs, store
from tests import events as test_events
from tests.support import Instance, post_job, wait_for, wait_terminal

HELLO = {"image": "hello-world:latest", "maxRuntimeSeconds": 60, "instanceTypes": ["m5.large"]}
HAPPY_STATUSES = ["Scheduled", "Requested", "Running", "FinishedOK", "TerminatedOK"]
LOG_GROUP = "/jobscheduler/test/jobs"
LATER = (datetime.now(UTC) + timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Wiring:
    """The table's stream and a queue behind the rule a user would write for job events."""

    stream_arn: str
    queue_url: str

    def records(self) -> list[dict[str, Any]]:
        """Every record the stream holds, oldest first, as Lambda's event source mapping passes them on."""
        # botocore sends stream calls to an account-id host that moto does not serve.
        streams = boto3.client("dynamodbstreams", config=Config(account_id_endpoint_mode="disabled"))
        (shard,) = streams.describe_stream(StreamArn=self.stream_arn)["StreamDescription"]["Shards"]
        iterator = streams.get_shard_iterator(StreamArn=self.stream_arn, ShardId=shard["ShardId"],
                                              ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        records = streams.get_records(ShardIterator=iterator, Limit=1000)["Records"]
        return list(test_events.as_lambda_delivers(records, self.stream_arn)["Records"])

    def published(self) -> list[dict[str, Any]]:
        """Every event the rule delivered to the queue so far."""
        sqs, found = boto3.client("sqs"), []
        while True:
            messages = sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10).get("Messages", [])
            if not messages:
                return found
            for message in messages:
                found.append(json.loads(message["Body"]))
                sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])


@pytest.fixture
def wiring(aws, monkeypatch: pytest.MonkeyPatch) -> Iterator[Wiring]:
    """A NEW_AND_OLD_IMAGES stream on the job table, a job log group, and a rule on job events -> SQS."""
    table = boto3.client("dynamodb").update_table(
        TableName=aws.table, StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"})
    sqs, bus = boto3.client("sqs"), boto3.client("events")
    queue_url = sqs.create_queue(QueueName="job-events")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    bus.put_rule(Name="job-events", EventPattern=json.dumps({"source": [events.SOURCE],
                                                              "detail-type": [events.DETAIL_TYPE]}))
    bus.put_targets(Rule="job-events", Targets=[{"Id": "queue", "Arn": queue_arn}])
    boto3.client("logs").create_log_group(logGroupName=LOG_GROUP)
    monkeypatch.setenv(config.JOB_LOG_GROUP, LOG_GROUP)
    yield Wiring(table["TableDescription"]["LatestStreamArn"], queue_url)


def on_job_change(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Call the Lambda function as the event source mapping does, with records of the documented shape."""
    from app import on_job_change as handler

    (documented,) = test_events.load("dynamodb-stream-modify")["Records"]
    assert all(set(record) == set(documented) for record in records)
    return dict(handler({"Records": records}, None))


def run_to_the_end(api, exit_code: int = 0) -> dict[str, Any]:
    """Schedule HELLO, answer as its instance, and wait for the end."""
    job = post_job(api, HELLO).json_body
    instance = Instance(api, job["jobId"])
    wait_for(job["jobId"], {jobs.RUNNING})
    assert instance.callback(exit_code).status_code == 202
    return wait_terminal(job["jobId"])


def test_every_status_change_is_published_once_in_order(api, wiring):
    """A job's life, read from the table's stream, becomes one event per status, in order, with the public job."""
    done = run_to_the_end(api)
    answer = on_job_change(wiring.records())
    published = wiring.published()
    assert [e["detail"]["status"] for e in published] == HAPPY_STATUSES
    assert answer["published"] == len(HAPPY_STATUSES)
    assert [e["detail"]["previousStatus"] for e in published] == [None, *HAPPY_STATUSES[:-1]]
    for event in published:
        assert (event["source"], event["detail-type"]) == ("jobscheduler", "Job Status Change")
        assert event["detail"]["jobId"] == done["jobId"]
        assert not set(event["detail"]) & jobs.PRIVATE_FIELDS
    assert published[-1]["detail"]["exitCode"] == 0
    assert published[-1]["resources"] == [done["executionArn"]]


def test_records_without_a_status_change_publish_nothing(api, wiring):
    """Writes that keep the status (a reason, a price, a cost) are not events."""
    job = post_job(api, {**HELLO, "scheduledAt": LATER}).json_body
    store.update(job["jobId"], {"statusReason": "still waiting"})
    records = wiring.records()
    assert [r["eventName"] for r in records] == ["INSERT", "MODIFY"]  # put, reason
    assert on_job_change(records[1:])["published"] == 0
    assert wiring.published() == []
    api.http.post(f"/jobs/{job['jobId']}/cancel")


def test_attempt_prices_and_cost_are_recorded_once(api, wiring):
    """The attempt gets its AZ, Spot price at launch and On-Demand price; the ended job its cost, written once."""
    done = run_to_the_end(api)
    records = wiring.records()
    first = on_job_change(records)
    (attempt,) = store.get(done["jobId"])["attempts"]
    assert attempt["availabilityZone"].startswith("us-east-1")
    assert attempt["spotPrice"] == "0.00001"  # moto's Spot price history, quoted as EC2 quotes prices
    assert attempt["onDemandPrice"] == "0.096"  # m5.large in the bundled table
    assert first["costed"] == [done["jobId"]]
    job = api.http.get(f"/jobs/{done['jobId']}").json_body
    assert job["cost"]["billedSeconds"] == 60  # a few seconds of runtime, billed as EC2's one-minute minimum
    assert job["cost"]["estimated"] == pytest.approx(0.00001 / 60, abs=1e-6)
    assert job["cost"]["onDemand"] == pytest.approx(0.096 / 60, abs=1e-6)
    assert job["cost"]["saving"] == pytest.approx(job["cost"]["onDemand"] - job["cost"]["estimated"], abs=1e-6)
    again = on_job_change(records + wiring.records()[len(records):])
    assert (again["priced"], again["costed"]) == ([], [])
    assert store.get(done["jobId"])["cost"] == job["cost"]


def test_priced_attempts_survive_a_spot_interruption(api, wiring):
    """An attempt with its prices is rewritten whole when Spot takes the instance: the prices stay, nothing fails."""
    from app import on_spot_interruption

    job = post_job(api, {**HELLO, "maxAttempts": 1}).json_body
    running = wait_for(job["jobId"], {jobs.RUNNING})
    on_job_change(wiring.records())
    answer = on_spot_interruption({"detail": {"instance-id": running["instanceId"]}}, None)
    assert answer["status"] == jobs.INTERRUPTED
    (attempt,) = store.get(job["jobId"])["attempts"]
    assert (attempt["outcome"], attempt["spotPrice"]) == ("Preempted", "0.00001")
    done = wait_terminal(job["jobId"])
    assert done["status"] == jobs.FAILED  # one attempt allowed, and Spot took it


def test_cost_estimate_bills_per_second_with_a_minute_minimum():
    """Price x billed runtime per attempt; an unknown On-Demand price leaves the saving unknown, never guessed."""
    spot = {"lifecycle": "spot", "launchedAt": "2026-01-01T00:00:00Z", "endedAt": "2026-01-01T01:00:00Z",
            "spotPrice": "0.03", "onDemandPrice": "0.096"}
    short = {**spot, "endedAt": "2026-01-01T00:00:10Z"}
    on_demand = {**spot, "lifecycle": "on-demand", "spotPrice": None}
    assert cost.estimate([spot]) | {"onDemandPrices": ""} == {
        "currency": "USD", "estimated": 0.03, "onDemand": 0.096, "saving": 0.066, "savingPercent": 68.8,
        "billedSeconds": 3600, "onDemandPrices": ""}
    assert cost.estimate([short])["billedSeconds"] == 60
    assert cost.estimate([spot, on_demand])["estimated"] == pytest.approx(0.126)
    unknown = cost.estimate([{**spot, "onDemandPrice": None}])
    assert (unknown["estimated"], unknown["onDemand"], unknown["saving"]) == (0.03, None, None)
    assert cost.estimate([])["estimated"] == 0


def test_logs_route_pages_through_every_stream_of_the_job(api, wiring):
    """GET /jobs/{id}/logs reads the job's streams oldest first, in pages; the token always continues."""
    job = post_job(api, {**HELLO, "scheduledAt": LATER}).json_body
    first = api.http.get(f"/jobs/{job['jobId']}/logs").json_body
    assert (first["events"], first["jobId"]) == ([], job["jobId"])  # nothing shipped yet
    cw, now_ms = boto3.client("logs"), int(datetime.now(UTC).timestamp() * 1000)
    for instance, lines in (("i-first", ["one", "two", "three"]), ("i-second", ["four"])):
        cw.create_log_stream(logGroupName=LOG_GROUP, logStreamName=f"{job['jobId']}/{instance}")
        cw.put_log_events(logGroupName=LOG_GROUP, logStreamName=f"{job['jobId']}/{instance}", logEvents=[
            {"timestamp": now_ms + i, "message": line} for i, line in enumerate(lines)])
    cw.create_log_stream(logGroupName=LOG_GROUP, logStreamName="another-job/i-x")
    seen, token, pages = [], first["nextToken"], 0
    while pages < 10:  # 4 lines, 2 a page: pages that never run dry fail below instead of hanging
        page = api.http.get(f"/jobs/{job['jobId']}/logs?limit=2&nextToken={token}").json_body
        pages += 1
        if not page["events"]:
            break
        seen += [(e["instanceId"], e["message"]) for e in page["events"]]
        token = page["nextToken"]
    assert seen == [("i-first", "one"), ("i-first", "two"), ("i-first", "three"), ("i-second", "four")]
    assert pages == 3  # two full pages (the second spans both streams), then an empty one
    api.http.post(f"/jobs/{job['jobId']}/cancel")


@pytest.mark.parametrize("query, field", [("?limit=0", "limit"), ("?limit=5000", "limit"), ("?limit=%C2%B2", "limit"),
                                          ("?nextToken=bogus", "nextToken"), ("?since=1", "since")])
def test_logs_route_refuses_bad_queries(api, wiring, query, field):
    """A bad limit, a forged token or an unknown parameter is a 400 naming it."""
    job = post_job(api, {**HELLO, "scheduledAt": LATER}).json_body
    response = api.http.get(f"/jobs/{job['jobId']}/logs{query}")
    assert response.status_code == 400 and response.json_body["Message"].startswith(f"{field}:")
    api.http.post(f"/jobs/{job['jobId']}/cancel")


@pytest.mark.parametrize("route", ["logs", "timeline"])
def test_unknown_job_has_no_logs_or_timeline(api, wiring, route):
    """Both routes answer 404 for a job that does not exist."""
    response = api.http.get(f"/jobs/00000000-0000-0000-0000-000000000000/{route}")
    assert response.status_code == 404 and response.json_body["Message"].startswith("jobId:")


def test_timeline_lists_the_states_passed_with_durations(api, wiring):
    """GET /jobs/{id}/timeline: every state of the happy path, each entered, exited and timed."""
    done = run_to_the_end(api)
    answer = api.http.get(f"/jobs/{done['jobId']}/timeline").json_body
    assert answer["executionArn"] == done["executionArn"] and answer["executionStatus"] == "SUCCEEDED"
    names = [s["name"] for s in answer["states"]]
    assert names[0] == "WaitUntilScheduled" and names[-3:] == ["RunJob", "TerminateInstance", "MarkDone"]
    assert all(s["exitedAt"] and s["seconds"] >= 0 for s in answer["states"])
    run = next(s for s in answer["states"] if s["name"] == "RunJob")
    assert run["seconds"] > 0


def test_timeline_of_a_job_cancelled_before_its_time_is_short(api, wiring):
    """A job stopped while waiting shows the one state it was in, never an error."""
    job = post_job(api, {**HELLO, "scheduledAt": LATER}).json_body
    wait_for(job["jobId"], {jobs.SCHEDULED})
    api.http.post(f"/jobs/{job['jobId']}/cancel")
    answer = api.http.get(f"/jobs/{job['jobId']}/timeline").json_body
    assert [s["name"] for s in answer["states"]] in ([], ["WaitUntilScheduled"])
    assert answer["truncated"] is False


def test_the_local_stacks_printer_drains_every_waiting_event_at_each_poll(aws):
    """The local stack prints the job events from its queue; a poll takes every event waiting, ten a receive
    (a queue left to grow under load made every later receive of the emulator slower)."""
    import io

    from rich.console import Console

    from jobscheduler.local.events import JobChangeStream, JobEventsWiring

    wiring = JobEventsWiring.create(boto3.session.Session(), aws.table)
    sqs = boto3.client("sqs")
    sent = [{"detail-type": events.DETAIL_TYPE, "detail": {"jobId": f"job-{n}", "previousStatus": "Running",
                                                           "status": "FinishedOK"}} for n in range(35)]
    for start in range(0, len(sent), 10):
        sqs.send_message_batch(QueueUrl=wiring.queue_url, Entries=[
            {"Id": str(n), "MessageBody": json.dumps(event)} for n, event in enumerate(sent[start:start + 10])])
    out = io.StringIO()
    printer = JobChangeStream(streams=None, sqs=sqs, wiring=wiring, handlers=None,  # type: ignore[arg-type]
                              console=Console(file=out, width=200))
    shown = printer.print_events()
    assert sorted(e["detail"]["jobId"] for e in shown) == sorted(e["detail"]["jobId"] for e in sent)
    assert out.getvalue().count("Running -> FinishedOK") == 35
    left = sqs.get_queue_attributes(QueueUrl=wiring.queue_url, AttributeNames=["ApproximateNumberOfMessages"])
    assert left["Attributes"]["ApproximateNumberOfMessages"] == "0"
    assert printer.print_events() == []
