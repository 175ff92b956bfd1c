"""Only the right caller can act: secrets stay secret, repeats stay single, forgeries change nothing."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import boto3
import pytest

from chalicelib import jobs, store
from tests.support import Instance, instances, post_job, wait_for, wait_terminal

HELLO = {"image": "hello-world:latest", "maxRuntimeSeconds": 60}
FAR = {**HELLO, "scheduledAt": (datetime.now(UTC) + timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%SZ")}


def executions(aws) -> list[dict]:
    return boto3.client("stepfunctions").list_executions(stateMachineArn=aws.state_machine_arn)["executions"]


def test_idempotency_key_returns_the_same_job(api, aws):
    """The same key and body: one job, one execution, one instance; the repeat says it is a replay."""
    headers = {"Idempotency-Key": "nightly-2026-11-29"}
    first = post_job(api, HELLO, headers)
    second = post_job(api, HELLO, headers)
    assert (first.status_code, second.status_code) == (201, 200)
    assert second.headers["Idempotent-Replayed"] == "true"
    assert first.json_body["jobId"] == second.json_body["jobId"]
    assert len(executions(aws)) == 1
    Instance(api, first.json_body["jobId"]).callback(0)
    wait_terminal(first.json_body["jobId"])
    assert post_job(api, HELLO, headers).json_body["status"] == jobs.TERMINATED_OK
    assert len(instances()) == 1


def test_idempotency_key_with_another_body_is_409(api, aws):
    """Reusing a key for a different job is refused and creates nothing."""
    headers = {"Idempotency-Key": "k-1"}
    first = post_job(api, {**FAR}, headers)
    other = post_job(api, {**FAR, "name": "something else"}, headers)
    assert other.status_code == 409 and other.json_body["Message"].startswith("Idempotency-Key:")
    assert len(executions(aws)) == 1
    api.http.post(f"/jobs/{first.json_body['jobId']}/cancel")


@pytest.mark.parametrize("key", ["", "x" * 256, "naïve", "tab\there"])
def test_bad_idempotency_key_is_400(api, aws, key):
    """A key that is empty, too long or not printable ASCII is refused naming the header."""
    response = post_job(api, FAR, {"Idempotency-Key": key})
    assert response.status_code == 400 and response.json_body["Message"].startswith("Idempotency-Key:")
    assert executions(aws) == []


def crash_before_start(api, headers: dict, monkeypatch) -> dict:
    """POST a job whose request dies after storing it, before starting its execution; the stored job."""
    from chalicelib import workflow

    real_start = workflow.start
    monkeypatch.setattr(workflow, "start", lambda job, user_data: (_ for _ in ()).throw(SystemExit("crash")))
    with pytest.raises(SystemExit):
        post_job(api, FAR, headers)
    monkeypatch.setattr(workflow, "start", real_start)
    (stored,) = store.list_jobs(None, 10, None)[0]
    return dict(stored)


def test_replay_starts_a_job_whose_first_request_died_before_starting(api, aws, monkeypatch):
    """A stored job without an execution (the first request crashed) is started by the repeat, once."""
    headers = {"Idempotency-Key": "crash-test"}
    stored = crash_before_start(api, headers, monkeypatch)
    assert stored["status"] == jobs.SCHEDULED and executions(aws) == []
    replay = post_job(api, FAR, headers)
    assert replay.status_code == 200 and replay.json_body["executionArn"]
    assert post_job(api, FAR, headers).json_body["executionArn"] == replay.json_body["executionArn"]
    assert len(executions(aws)) == 1
    api.http.post(f"/jobs/{stored['jobId']}/cancel")


def test_replays_racing_to_start_the_same_job_start_it_once(api, aws, monkeypatch):
    """A replay that finds no execution, then loses the start to its twin, still answers with the job."""
    from moto.stepfunctions.exceptions import ExecutionDoesNotExist
    from moto.stepfunctions.models import StepFunctionBackend

    from chalicelib import workflow

    headers = {"Idempotency-Key": "twins"}
    stored = crash_before_start(api, headers, monkeypatch)
    workflow.start(stored, "twin's user data")  # the twin replay started it, with its own secret
    real_describe = StepFunctionBackend.describe_execution

    def not_yet(backend, execution_arn):  # the replay looked just before the twin's start
        monkeypatch.setattr(StepFunctionBackend, "describe_execution", real_describe)
        raise ExecutionDoesNotExist("Execution Does Not Exist")

    monkeypatch.setattr(StepFunctionBackend, "describe_execution", not_yet)
    replay = post_job(api, FAR, headers)
    assert replay.status_code == 200, replay.json_body
    assert replay.json_body["status"] == jobs.SCHEDULED and replay.json_body["executionArn"] == stored["executionArn"]
    assert len(executions(aws)) == 1
    api.http.post(f"/jobs/{stored['jobId']}/cancel")


def test_no_route_returns_a_secret_hash_or_task_token(api):
    """Schedule, get, list, cancel and callback responses never carry secretHash or taskToken."""
    job = post_job(api, HELLO).json_body
    instance = Instance(api, job["jobId"])
    wait_for(job["jobId"], {jobs.RUNNING})
    assert store.get(job["jobId"]).get("taskToken")  # it is stored ...
    responses = [json.dumps(job), api.http.get(f"/jobs/{job['jobId']}").body.decode(),
                 api.http.get("/jobs").body.decode(), api.http.get("/jobs?status=Running").body.decode(),
                 instance.callback(0).body.decode()]
    wait_terminal(job["jobId"])
    responses.append(api.http.post(f"/jobs/{job['jobId']}/cancel").body.decode())
    for body in responses:  # ... and never shown
        assert "secretHash" not in body and "taskToken" not in body and instance.secret not in body


@pytest.mark.parametrize("who", ["none", "wrong", "other job", "after the end"])
def test_forged_heartbeats_are_refused(api, who):
    """Heartbeats without the job's secret, or after the job ended, are refused."""
    job = post_job(api, HELLO).json_body
    other = post_job(api, HELLO).json_body
    mine, theirs = Instance(api, job["jobId"]), Instance(api, other["jobId"])
    wait_for(job["jobId"], {jobs.RUNNING})
    if who == "after the end":
        mine.callback(0)
        wait_terminal(job["jobId"])
    secret = {"none": None, "wrong": "w" * 43, "other job": theirs.secret, "after the end": mine.secret}[who]
    headers = {"Authorization": f"Bearer {secret}"} if secret else {}
    response = api.http.post(f"/jobs/{job['jobId']}/heartbeat", headers=headers)
    assert response.status_code == {"none": 401, "wrong": 403, "other job": 403, "after the end": 409}[who]
    assert response.json_body["Message"]
    for instance in (mine, theirs):
        instance.callback(0)
        wait_terminal(instance.job_id)


@pytest.mark.parametrize(("ref", "ok"), [
    ("/jobscheduler/db/password", True),
    ("/other/db/password", False),
    ("arn:aws:secretsmanager:us-east-1:123456789012:secret:jobscheduler/api-key-AbCdEf", True),
    ("arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/api-key-AbCdEf", False),
])
def test_secrets_only_under_the_instance_roles_prefixes(api, ref, ok):
    """A job may name only secrets the instance role can read; the value never enters the job."""
    response = post_job(api, {**FAR, "secrets": {"API_KEY": ref}})
    if ok:
        assert response.status_code == 201 and response.json_body["secrets"] == {"API_KEY": ref}
        api.http.post(f"/jobs/{response.json_body['jobId']}/cancel")
    else:
        assert response.status_code == 400 and response.json_body["Message"].startswith("secrets.API_KEY:")


def test_secret_values_never_reach_user_data_record_or_history(api, aws):
    """A secret's value (set in SSM) appears nowhere the service writes: user data, job record, history."""
    value = "s3cr3t-value-that-must-not-leak"
    boto3.client("ssm").put_parameter(Name="/jobscheduler/db", Value=value, Type="SecureString")
    job = post_job(api, {**HELLO, "secrets": {"DB_PASSWORD": "/jobscheduler/db"}}).json_body
    instance = Instance(api, job["jobId"])
    assert "/jobscheduler/db" in instance.script  # the instance resolves the name itself
    history = boto3.client("stepfunctions").get_execution_history(executionArn=job["executionArn"])["events"]
    record = boto3.client("dynamodb").get_item(TableName=aws.table, Key={"jobId": {"S": job["jobId"]}})["Item"]
    for text in (instance.script, json.dumps(history, default=str), json.dumps(record)):
        assert value not in text
    instance.callback(0)
    wait_terminal(job["jobId"])
