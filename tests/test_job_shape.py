"""What a job says about itself beyond its image: who submitted it, its price cap, retries on failure.

Each field runs through the API and the real workflow in moto; each bad input is a 400 naming the field.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
from rich.console import Console

from chalicelib import events, jobs, lifecycle, store
from jobscheduler import render
from tests import events as test_events
from tests.faults import SPOT_ABOVE_CAP, injected
from tests.support import Instance, live_instances, post_job, wait_terminal

HELLO = {"image": "hello-world:latest", "maxRuntimeSeconds": 60, "instanceTypes": ["m5.large"]}
ALICE = "arn:aws:iam::123456789012:user/alice"
LATER = (datetime.now(UTC) + timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%SZ")


def refused(api: Any, body: dict[str, Any]) -> str:
    """The field a 400 names (the test fails on any other answer); nothing was stored."""
    before = len(store.list_jobs(None, 100, None)[0])
    response = post_job(api, body)
    assert response.status_code == 400, response.body
    assert len(store.list_jobs(None, 100, None)[0]) == before
    return str(response.json_body["Message"].partition(": ")[0])


# --- submittedBy ---------------------------------------------------------------------------------------------


def test_submitted_by_is_local_on_the_local_stack(api):
    """A call with no IAM identity (the local stack) is recorded as submitted by ``local``."""
    job = post_job(api, {**HELLO, "scheduledAt": LATER}).json_body
    assert job["submittedBy"] == "local"
    assert api.http.get(f"/jobs/{job['jobId']}").json_body["submittedBy"] == "local"
    assert api.http.post(f"/jobs/{job['jobId']}/cancel").status_code == 202


def test_submitted_by_is_the_callers_iam_arn(aws):
    """Through API Gateway with IAM auth, the job records the ARN that signed the request."""
    from app import app

    response = app(test_events.api_request("POST", "/jobs", {**HELLO, "scheduledAt": LATER}, ALICE), None)
    assert response["statusCode"] == 201, response["body"]
    job = json.loads(response["body"])
    assert job["submittedBy"] == ALICE
    assert store.get(job["jobId"])["submittedBy"] == ALICE
    lifecycle.cancel(job["jobId"])


def test_submitted_by_is_never_taken_from_the_body(api):
    """A body that names its own submitter is refused, naming submittedBy."""
    assert refused(api, {**HELLO, "submittedBy": ALICE}) == "submittedBy"


def test_submitted_by_is_shown_by_status_and_carried_in_job_events(api):
    """The job events carry submittedBy, and ``jobscheduler status`` prints it."""
    job = post_job(api, HELLO).json_body
    Instance(api, job["jobId"]).callback(0)
    done = wait_terminal(job["jobId"])
    entry = events.event_entry("FinishedOK", done)
    assert json.loads(entry["Detail"])["submittedBy"] == "local"
    console = Console(record=True, width=200)
    console.print(render.job_details(jobs.public(done)))
    assert re.search(r"submitted by +local", console.export_text())


# --- maxPrice ------------------------------------------------------------------------------------------------


def scheduled_parameters(execution_arn: str, state: str) -> list[dict[str, Any]]:
    """The parameters each entry into Task ``state`` sent to AWS, from the execution's history."""
    history = boto3.client("stepfunctions").get_execution_history(executionArn=execution_arn, maxResults=1000)
    events, found = history["events"], []
    for index, event in enumerate(events):
        if event.get("stateEnteredEventDetails", {}).get("name") == state:
            scheduled = next(e for e in events[index:] if "taskScheduledEventDetails" in e)
            found.append(json.loads(scheduled["taskScheduledEventDetails"]["parameters"]))
    return found


def test_max_price_caps_every_spot_override_and_spot_under_it_runs(api):
    """Spot at 0.05 USD/h, cap 0.08: every override carries EC2's MaxPrice and the job runs on Spot."""
    with injected() as faults:
        seen = faults.spot_market("0.05")
        job = post_job(api, {**HELLO, "maxPrice": "0.08"}).json_body
        assert job["maxPrice"] == "0.08"
        Instance(api, job["jobId"]).callback(0)
        done = wait_terminal(job["jobId"])
    assert done["status"] == jobs.TERMINATED_OK
    assert [a["lifecycle"] for a in done["attempts"]] == ["spot"]
    assert seen and all(o["MaxPrice"] == "0.08" for request in seen for o in request["overrides"])


def test_no_spot_under_max_price_fails_saying_so(api):
    """Spot at 0.10 USD/h, cap 0.08, Spot only: every request is refused and the job ends Failed naming the cap."""
    with injected() as faults:
        seen = faults.spot_market("0.10")
        job = post_job(api, {**HELLO, "maxPrice": "0.08"}).json_body
        done = wait_terminal(job["jobId"])
        faults.wait_fired(SPOT_ABOVE_CAP, times=len(seen))
    assert done["status"] == jobs.FAILED
    assert done["statusReason"] == "no Spot capacity under maxPrice 0.08 USD/h within the provisioning deadline"
    assert done["attempts"] == [] and live_instances() == []
    assert {r["type"] for r in seen} == {"spot"} and len(seen) > 1


def test_a_job_without_max_price_pays_the_market(api):
    """The same market, no cap: the first Spot request launches (the refusal above is the cap's doing)."""
    with injected() as faults:
        seen = faults.spot_market("0.10")
        job = post_job(api, HELLO).json_body
        Instance(api, job["jobId"]).callback(0)
        done = wait_terminal(job["jobId"])
    assert done["status"] == jobs.TERMINATED_OK and len(seen) == 1
    assert all("MaxPrice" not in o for o in seen[0]["overrides"])
    assert faults.calls.get(SPOT_ABOVE_CAP) is None


def test_max_price_falls_back_to_on_demand_without_the_cap_and_says_so(api):
    """spot-then-on-demand with no Spot under the cap: On-Demand is asked for without MaxPrice, and the job's
    statusReason said why."""
    with injected() as faults:
        seen = faults.spot_market("0.10")
        job = post_job(api, {**HELLO, "maxPrice": "0.08", "capacity": "spot-then-on-demand"}).json_body
        Instance(api, job["jobId"]).callback(0)
        done = wait_terminal(job["jobId"])
    assert done["status"] == jobs.TERMINATED_OK
    assert [a["lifecycle"] for a in done["attempts"]] == ["on-demand"]
    assert [r["type"] for r in seen][-1] == "on-demand"
    assert all("MaxPrice" not in o for o in seen[-1]["overrides"])
    assert all(o["MaxPrice"] == "0.08" for r in seen if r["type"] == "spot" for o in r["overrides"])
    (note,) = scheduled_parameters(done["executionArn"], "NoteOnDemandFallback")
    assert note["ExpressionAttributeValues"][":reason"]["S"] == (
        "no Spot capacity under maxPrice 0.08 USD/h in time: asking for On-Demand")


def test_max_price_bad_inputs_name_the_field(api):
    """A price EC2 would refuse, or a cap on a job that never uses Spot, is a 400 naming maxPrice."""
    for body in ({**HELLO, "maxPrice": "0.0005"}, {**HELLO, "maxPrice": 0.08}, {**HELLO, "maxPrice": "cheap"},
                 {**HELLO, "maxPrice": "0.08", "capacity": "on-demand"}):
        assert refused(api, body) == "maxPrice", body
