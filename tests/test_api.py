"""The REST contract: validation, listing, reading, and who may call back."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import boto3
import pytest

from chalicelib import config, jobs, store
from tests.conftest import example_bodies, load
from tests.support import Instance, post_job, wait_for, wait_terminal

HELLO = {"image": "hello-world:latest", "maxRuntimeSeconds": 60}
FAR = (datetime.now(UTC) + timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%SZ")


def table_items() -> int:
    return len(boto3.client("dynamodb").scan(TableName="Jobs")["Items"])


def executions(aws) -> int:
    return len(boto3.client("stepfunctions").list_executions(stateMachineArn=aws.state_machine_arn)["executions"])


@pytest.mark.parametrize("path", example_bodies(), ids=lambda p: p.name)
def test_every_example_body_is_scheduled(api, path):
    """Every documented body in input/ is accepted and starts its execution."""
    body = load(path)
    response = post_job(api, body)
    assert response.status_code == 201, response.body
    job = response.json_body
    assert response.headers["Location"] == f"/jobs/{job['jobId']}"
    assert job["status"] == jobs.SCHEDULED and job["image"] == body["image"]
    assert job["env"] == body.get("env", {}) and job.get("command") == body.get("command")
    assert job["executionArn"].endswith(f":{job['jobId']}")
    assert "secretHash" not in job and "taskToken" not in job
    api.http.post(f"/jobs/{job['jobId']}/cancel")  # the example has served; do not launch for it


BAD_BODIES = [
    ("body", "[]"),
    ("body", '"just a string"'),
    ("image", {}),
    ("image", {"image": ""}),
    ("image", {"image": "UPPER/case"}),
    ("image", {"image": "bad image"}),
    ("image", {"image": 42}),
    ("image", {"image": "-privileged"}),
    ("scheduledAt", {**HELLO, "scheduledAt": "tomorrow"}),
    ("scheduledAt", {**HELLO, "scheduledAt": "2026-12-01T03:00:00"}),
    ("scheduledAt", {**HELLO, "scheduledAt": "2026-13-01T03:00:00Z"}),
    ("scheduledAt", {**HELLO, "scheduledAt": "2099-01-01T00:00:00Z"}),
    ("scheduledAt", {**HELLO, "scheduledAt": 1767225600}),
    ("env", {**HELLO, "env": ["A=1"]}),
    ("env.1BAD", {**HELLO, "env": {"1BAD": "x"}}),
    ("env.A-B", {**HELLO, "env": {"A-B": "x"}}),
    ("env.NUM", {**HELLO, "env": {"NUM": 1}}),
    ("env.NUL", {**HELLO, "env": {"NUL": "a\u0000b"}}),
    ("command", {**HELLO, "command": "echo hi"}),
    ("command", {**HELLO, "command": []}),
    ("command[1]", {**HELLO, "command": ["echo", 3]}),
    ("instanceTypes", {**HELLO, "instanceTypes": []}),
    ("instanceTypes[0]", {**HELLO, "instanceTypes": ["huge"]}),
    ("instanceTypes", {**HELLO, "instanceTypes": ["m5.large", "m5.large"]}),
    ("maxRuntimeSeconds", {**HELLO, "maxRuntimeSeconds": 0}),
    ("maxRuntimeSeconds", {**HELLO, "maxRuntimeSeconds": "60"}),
    ("maxRuntimeSeconds", {**HELLO, "maxRuntimeSeconds": True}),
    ("maxRuntimeSeconds", {**HELLO, "maxRuntimeSeconds": 10**9}),
    ("heartbeatSeconds", {**HELLO, "heartbeatSeconds": 120}),
    ("capacity", {**HELLO, "capacity": "reserved"}),
    ("name", {**HELLO, "name": "x" * 129}),
    ("colour", {**HELLO, "colour": "blue"}),
    ("secrets.TOKEN", {**HELLO, "secrets": {"TOKEN": "not a parameter name!"}}),
    ("finishBy", {**HELLO, "finishBy": "2020-01-01T00:00:00Z"}),
    ("env", {**HELLO, "env": {f"V{i}": "x" * 2000 for i in range(9)}}),
]


@pytest.mark.parametrize(("field", "body"), BAD_BODIES, ids=[f"{i}-{f}" for i, (f, _) in enumerate(BAD_BODIES)])
def test_bad_body_is_refused_naming_the_field(api, aws, field, body):
    """Each bad body gets a 400 whose message names the field; nothing is written or started."""
    response = post_job(api, body)
    assert response.status_code == 400, response.body
    assert response.json_body["Code"] == "BadRequestError"
    assert response.json_body["Message"].startswith(f"{field}:"), response.json_body
    assert table_items() == 0 and executions(aws) == 0


def test_malformed_json_and_huge_body_are_4xx(api, aws):
    """Broken JSON and an oversized body are client errors that write nothing."""
    assert post_job(api, "{not json").status_code == 400
    assert post_job(api, json.dumps({**HELLO, "name": "x" * 70_000})).status_code == 400
    assert table_items() == 0 and executions(aws) == 0


# The emulator's account and region are the deployment's own; these are another's.
HOME = "123456789012.dkr.ecr.us-east-1.amazonaws.com/team/job:7"
HOME_SECRET = "arn:aws:secretsmanager:us-east-1:123456789012:secret:jobscheduler/api-key-AbCdEf"
ELSEWHERE = [
    ("image", {"image": "210987654321.dkr.ecr.us-east-1.amazonaws.com/team/job:7"}),
    ("image", {"image": "123456789012.dkr.ecr.eu-west-1.amazonaws.com/team/job:7"}),
    ("secrets.API_KEY", {"secrets": {"API_KEY": HOME_SECRET.replace(":123456789012:", ":210987654321:")}}),
    ("secrets.API_KEY", {"secrets": {"API_KEY": HOME_SECRET.replace(":us-east-1:", ":eu-west-1:")}}),
]
ELSEWHERE_IDS = ["image-account", "image-region", "secret-account", "secret-region"]


@pytest.mark.parametrize(("field", "change"), ELSEWHERE, ids=ELSEWHERE_IDS)
def test_images_and_secrets_of_other_accounts_or_regions_are_refused(api, aws, field, change):
    """The instance role reads only this account's images and secrets in this region: others are a 400."""
    response = post_job(api, {**HELLO, "scheduledAt": FAR, **change})
    assert response.status_code == 400, response.body
    message = response.json_body["Message"]
    assert message.startswith(f"{field}:") and "allowCrossAccount" in message, message
    assert table_items() == 0 and executions(aws) == 0


@pytest.mark.parametrize(("field", "change"), ELSEWHERE, ids=ELSEWHERE_IDS)
def test_other_accounts_and_regions_are_accepted_when_the_stack_allows(api, monkeypatch, field, change):
    """Deployed with allowCrossAccount, the same bodies are scheduled."""
    monkeypatch.setenv(config.ALLOW_CROSS_ACCOUNT, "true")
    response = post_job(api, {**HELLO, "scheduledAt": FAR, **change})
    assert response.status_code == 201, response.body
    api.http.post(f"/jobs/{response.json_body['jobId']}/cancel")


def test_this_accounts_image_and_secret_are_accepted(api):
    """An ECR image and a secret of the deployment's own account and region are scheduled."""
    response = post_job(api, {**HELLO, "scheduledAt": FAR, "image": HOME, "secrets": {"API_KEY": HOME_SECRET}})
    assert response.status_code == 201, response.body
    api.http.post(f"/jobs/{response.json_body['jobId']}/cancel")


def test_scheduled_at_is_normalised_to_utc(api):
    """An offset is converted to UTC with a Z; a past time means now."""
    day = (datetime.now(UTC) + timedelta(days=100)).strftime("%Y-%m-%d")
    job = post_job(api, {**HELLO, "scheduledAt": f"{day}T12:00:00+02:00"}).json_body
    assert job["scheduledAt"] == f"{day}T10:00:00Z"
    past = post_job(api, {**HELLO, "scheduledAt": "2001-01-01T00:00:00Z"}).json_body
    assert past["scheduledAt"] >= past["createdAt"]
    for created in (job, past):
        api.http.post(f"/jobs/{created['jobId']}/cancel")


def test_get_job_and_unknown_job(api):
    """GET returns the job without secrets; an unknown id is 404 naming jobId."""
    job = post_job(api, {**HELLO, "scheduledAt": FAR}).json_body
    got = api.http.get(f"/jobs/{job['jobId']}")
    assert got.status_code == 200 and got.json_body["jobId"] == job["jobId"]
    assert set(got.json_body) >= {"status", "statusReason", "createdAt", "updatedAt", "exitCode", "attempts",
                                  "executionArn"}
    assert not set(got.json_body) & jobs.PRIVATE_FIELDS
    missing = api.http.get("/jobs/00000000-0000-4000-8000-000000000000")
    assert missing.status_code == 404 and missing.json_body["Message"].startswith("jobId:")
    assert api.http.get("/jobs/not-a-uuid").status_code == 404


def test_list_pages_through_a_status(api):
    """Paginated listing with a status filter visits every job once, newest scheduledAt first."""
    base = datetime.now(UTC) + timedelta(days=10)
    created = []
    for i in range(7):
        at = (base + timedelta(minutes=i)).strftime("%Y-%m-%dT%H:%M:%SZ")
        created.append(post_job(api, {**HELLO, "scheduledAt": at}).json_body["jobId"])
    api.http.post(f"/jobs/{created[0]}/cancel")
    seen, token, pages = [], None, 0
    while pages < 10:  # 6 jobs, 3 a page: a token that never ends fails below instead of hanging
        query = "/jobs?status=Scheduled&limit=3" + (f"&nextToken={token}" if token else "")
        page = api.http.get(query).json_body
        seen += [j["jobId"] for j in page["jobs"]]
        assert all(j["status"] == "Scheduled" for j in page["jobs"])
        pages, token = pages + 1, page["nextToken"]
        if not token:
            break
    assert token is None and seen == list(reversed(created[1:])) and pages >= 2
    everything = api.http.get("/jobs?limit=100").json_body["jobs"]
    assert {j["jobId"] for j in everything} == set(created)


@pytest.mark.parametrize("query", ["limit=0", "limit=101", "limit=ten", "limit=%C2%B2", "status=Sleeping",
                                   "nextToken=garbage", "nextToken=eyJpIjoiYnlUaW1lIiwiayI6e319", "sort=asc"])
def test_bad_list_query_is_400(api, query):
    """Bad limits, statuses, tokens and unknown parameters are 400s naming the parameter."""
    response = api.http.get(f"/jobs?{query}")
    assert response.status_code == 400
    assert response.json_body["Message"].startswith(query.split("=")[0] + ":")


def test_forged_callbacks_change_nothing(api):
    """No secret -> 401, another job's secret or a wrong one -> 403; the job is unchanged."""
    first = post_job(api, HELLO).json_body
    second = post_job(api, HELLO).json_body
    mine, other = Instance(api, first["jobId"]), Instance(api, second["jobId"])
    before = wait_for(first["jobId"], {jobs.RUNNING})
    headers = {"Content-Type": "application/json"}
    body = json.dumps({"status": "FinishedOK", "exitCode": 0})
    assert api.http.post(f"/jobs/{first['jobId']}/callback", headers=headers, body=body).status_code == 401
    assert mine.callback(0, secret=other.secret).status_code == 403
    assert mine.callback(0, secret="x" * 43).status_code == 403
    after = store.get(first["jobId"])
    assert (after["status"], after.get("exitCode")) == (before["status"], before.get("exitCode"))
    for instance in (mine, other):
        instance.callback(0)
        wait_terminal(instance.job_id)


def test_repeated_callback_is_harmless(api):
    """The same callback twice: one result, one completion, 202 both times."""
    job = post_job(api, HELLO).json_body
    instance = Instance(api, job["jobId"])
    assert instance.callback(4).status_code == 202
    assert instance.callback(4).status_code in (202, 409)
    done = wait_terminal(job["jobId"])
    assert (done["status"], done["exitCode"]) == (jobs.TERMINATED_NOK, 4)
    assert instance.callback(4).status_code == 409


@pytest.mark.parametrize("body", [{"status": "Done", "exitCode": 0}, {"status": "FinishedOK", "exitCode": 2},
                                  {"status": "FinishedNOK", "exitCode": 256}, {"status": "FinishedOK"},
                                  {"status": "FinishedOK", "exitCode": 0, "extra": 1}])
def test_bad_callback_body_is_400(api, body):
    """A callback body that does not make sense is refused and changes nothing."""
    job = post_job(api, HELLO).json_body
    instance = Instance(api, job["jobId"])
    response = api.http.post(f"/jobs/{job['jobId']}/callback", body=json.dumps(body),
                             headers={"Content-Type": "application/json", "Authorization": f"Bearer {instance.secret}"})
    assert response.status_code == 400
    assert store.get(job["jobId"])["status"] in (jobs.REQUESTED, jobs.RUNNING)
    instance.callback(0)
    wait_terminal(job["jobId"])


def test_start_failure_does_not_leave_job_scheduled(api, aws, monkeypatch):
    """If the execution cannot start, the job is Failed (not Scheduled forever) and the API says 503."""
    monkeypatch.setenv("STATE_MACHINE_ARN", aws.state_machine_arn + "-missing")
    response = post_job(api, HELLO)
    assert response.status_code == 503
    (item,) = boto3.client("dynamodb").scan(TableName="Jobs")["Items"]
    assert item["status"]["S"] == jobs.FAILED
