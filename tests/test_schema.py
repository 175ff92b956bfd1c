"""The OpenAPI document's schemas are the one definition of a request body.

One table of job bodies and one of callback bodies go to three judges: the
compiled schema alone (``chalicelib.schema``), a standard JSON Schema 2020-12
validator reading the same document (what a client's tools see), and the API.
They must agree: accepted, or refused naming the same field. The rows marked
as code rules are the few a schema cannot say; there the schema accepts and
the API refuses.
"""

from __future__ import annotations

import json
import typing
from datetime import UTC, datetime, timedelta
from typing import Any

import jsonschema_rs
import pytest

from chalicelib import jobs, lifecycle, schema
from tests.conftest import example_bodies, load
from tests.support import Instance, post_job, wait_terminal

LATER = datetime.now(UTC) + timedelta(days=30)
FAR = LATER.strftime("%Y-%m-%dT%H:%M:%SZ")
DIGEST = "sha256:" + "0123456789abcdef" * 4
SECRET_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:jobscheduler/api-key-AbCdEf"


def job(**fields: Any) -> dict[str, Any]:
    """A body scheduled a month ahead (nothing runs), with ``fields`` on top."""
    return {"image": "busybox:1.36", "scheduledAt": FAR, **fields}


# (field the API names first, or None when accepted; body)
JOB_BODIES: list[tuple[str | None, Any]] = [
    (None, job()),
    (None, job(image="python:3.12-slim")),
    (None, job(image=f"busybox@{DIGEST}")),
    (None, job(image=f"ghcr.io/org/app:v1@{DIGEST}")),
    (None, job(image="localhost:5000/team/app")),
    (None, job(image="Registry.Example.com:443/a/b_c:tag")),
    (None, job(image="my.image")),
    (None, job(scheduledAt=None, name=None, command=None, instanceTypes=None, heartbeatSeconds=None,
               secrets=None, finishBy=None)),
    (None, job(scheduledAt=LATER.strftime("%Y-%m-%dT%H:%M:%S.123456789+02:00"))),
    (None, job(env={"A_1": "x" * 4096, "_B": ""}, command=["sh", "-c", "echo hi"])),
    (None, job(instanceTypes=["m6i.large", "c7g.xlarge"], capacity="spot-then-on-demand", maxAttempts=10)),
    (None, job(maxRuntimeSeconds=60, heartbeatSeconds=59)),
    (None, job(name="nightly report ✓", secrets={"TOKEN": "/jobscheduler/token", "KEY": SECRET_ARN})),
    (None, job(finishBy=(LATER + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ"))),
    ("body", []),
    ("body", "just a string"),
    ("body", None),
    ("image", {"scheduledAt": FAR}),
    ("image", job(image="")),
    ("image", job(image="UPPER/case")),
    ("image", job(image="bad image")),
    ("image", job(image=42)),
    ("image", job(image="-privileged")),
    ("image", job(image="python\n")),
    ("image", job(image="a_b.c/app")),
    ("image", job(image="busybox@sha256:abc")),
    ("image", job(image="a" * 256)),
    ("colour", job(colour="blue")),
    ("scheduledAt", job(scheduledAt="tomorrow")),
    ("scheduledAt", job(scheduledAt="2026-12-01T03:00:00")),
    ("scheduledAt", job(scheduledAt="2026-12-01t03:00:00z")),
    ("scheduledAt", job(scheduledAt=1767225600)),
    ("env", job(env=["A=1"])),
    ("env", job(env=None)),
    ("env", job(env={f"V{i}": "" for i in range(101)})),
    ("env.1BAD", job(env={"1BAD": "x"})),
    ("env.A-B", job(env={"A-B": "x"})),
    ("env.NUM", job(env={"NUM": 1})),
    ("env.NUL", job(env={"NUL": "a\u0000b"})),
    ("env.LONG", job(env={"LONG": "x" * 8193})),
    ("command", job(command="echo hi")),
    ("command", job(command=[])),
    ("command", job(command=["x"] * 257)),
    ("command[1]", job(command=["echo", 3])),
    ("command[0]", job(command=["a\u0000"])),
    ("instanceTypes", job(instanceTypes=[])),
    ("instanceTypes", job(instanceTypes=["m5.large", "m5.large"])),
    ("instanceTypes[0]", job(instanceTypes=["huge"])),
    ("instanceTypes[0]", job(instanceTypes=["m5.large\n"])),
    ("maxRuntimeSeconds", job(maxRuntimeSeconds=0)),
    ("maxRuntimeSeconds", job(maxRuntimeSeconds="60")),
    ("maxRuntimeSeconds", job(maxRuntimeSeconds=True)),
    ("maxRuntimeSeconds", job(maxRuntimeSeconds=10**9)),
    ("maxRuntimeSeconds", job(maxRuntimeSeconds=None)),
    ("maxRuntimeSeconds", job(maxRuntimeSeconds=1.5)),
    ("heartbeatSeconds", job(heartbeatSeconds=0)),
    ("capacity", job(capacity="reserved")),
    ("capacity", job(capacity=None)),
    ("maxAttempts", job(maxAttempts=11)),
    ("name", job(name="x" * 129)),
    ("name", job(name="two\nlines")),
    ("secrets", job(secrets=["TOKEN"])),
    ("secrets.1X", job(secrets={"1X": "/jobscheduler/x"})),
    ("secrets.TOKEN", job(secrets={"TOKEN": "not a parameter name!"})),
    ("secrets.TOKEN", job(secrets={"TOKEN": 5})),
    ("finishBy", job(finishBy="soon")),
    ("submittedBy", job(submittedBy="arn:aws:iam::123456789012:user/someone-else")),
    (None, job(maxPrice="0.08")),
    (None, job(maxPrice="12", capacity="spot-then-on-demand")),
    ("maxPrice", job(maxPrice=0.08)),
    ("maxPrice", job(maxPrice="$0.08")),
    ("maxPrice", job(maxPrice="0.08 USD")),
    ("maxPrice", job(maxPrice="1e-2")),
    (None, job(retry={"attempts": 3, "onExitCodes": [1, 137], "delaySeconds": 30})),
    (None, job(retry={"attempts": 1}, maxAttempts=1)),
    (None, job(retry=None)),
    ("retry", job(retry=3)),
    ("retry.attempts", job(retry={})),
    ("retry.attempts", job(retry={"attempts": 11})),
    ("retry.attempts", job(retry={"attempts": "3"})),
    ("retry.onExitCodes", job(retry={"attempts": 2, "onExitCodes": []})),
    ("retry.onExitCodes", job(retry={"attempts": 2, "onExitCodes": [1, 1]})),
    ("retry.onExitCodes[0]", job(retry={"attempts": 2, "onExitCodes": [0]})),
    ("retry.onExitCodes[1]", job(retry={"attempts": 2, "onExitCodes": [1, 256]})),
    ("retry.delaySeconds", job(retry={"attempts": 2, "delaySeconds": -1})),
    ("retry.delaySeconds", job(retry={"attempts": 2, "delaySeconds": 86401})),
    ("retry.tries", job(retry={"attempts": 2, "tries": 1})),
    (None, job(debug={"keepOnFailureSeconds": 14400})),
    (None, job(debug=None)),
    ("debug", job(debug=1800)),
    ("debug.keepOnFailureSeconds", job(debug={})),
    ("debug.keepOnFailureSeconds", job(debug={"keepOnFailureSeconds": 14401})),
    ("debug.keepOnFailureSeconds", job(debug={"keepOnFailureSeconds": 0})),
    ("debug.keepOnFailureSeconds", job(debug={"keepOnFailureSeconds": "1800"})),
    ("debug.port", job(debug={"keepOnFailureSeconds": 60, "port": 22})),
    (None, job(resources={"vcpus": 4, "memoryGiB": 16})),
    (None, job(resources={"vcpus": 1, "memoryGiB": 0.5, "burstable": True})),
    ("resources", job(resources=[4, 16])),
    ("resources.vcpus", job(resources={"memoryGiB": 16})),
    ("resources.vcpus", job(resources={"vcpus": 1.5, "memoryGiB": 16})),
    ("resources.memoryGiB", job(resources={"vcpus": 4, "memoryGiB": 0.25})),
    ("resources.burstable", job(resources={"vcpus": 4, "memoryGiB": 16, "burstable": "yes"})),
    (None, job(resources={"vcpus": 4, "memoryGiB": 16, "gpus": 1})),
    ("resources.gpus", job(resources={"vcpus": 4, "memoryGiB": 16, "gpus": 0})),
    ("resources.gpus", job(resources={"vcpus": 4, "memoryGiB": 16, "gpus": 1.5})),
    ("resources.gpus", job(resources={"vcpus": 4, "memoryGiB": 16, "gpus": "1"})),
    ("resources.gpus", job(resources={"vcpus": 4, "memoryGiB": 16, "gpus": 17})),
    ("resources.gpus", job(resources={"vcpus": 4, "memoryGiB": 16, "gpus": True})),
    ("resources.cpus", job(resources={"vcpus": 4, "memoryGiB": 16, "cpus": 4})),
]
# What a schema cannot say: the calendar, one field against another, the deployment, the rendered script.
CODE_RULES: list[tuple[str, Any]] = [
    ("scheduledAt", job(scheduledAt="2026-13-01T03:00:00Z")),
    ("scheduledAt", job(scheduledAt="2099-01-01T00:00:00Z")),
    ("finishBy", job(finishBy=FAR)),
    ("heartbeatSeconds", job(maxRuntimeSeconds=60, heartbeatSeconds=60)),
    ("name", job(name="line\u2028separator")),
    ("image", job(image="210987654321.dkr.ecr.us-east-1.amazonaws.com/team/job:7")),
    ("secrets.TOKEN", job(secrets={"TOKEN": "/elsewhere/token"})),
    ("secrets.TOKEN", job(secrets={"TOKEN": SECRET_ARN.replace(":123456789012:", ":210987654321:")})),
    ("secrets.BASH_ENV", job(secrets={"BASH_ENV": "/jobscheduler/x"})),
    ("env", job(env={f"V{i}": "x" * 2000 for i in range(9)})),
    ("maxPrice", job(maxPrice="0.001")),
    ("maxPrice", job(maxPrice="0.08", capacity="on-demand")),
    ("retry", job(scheduledAt=(LATER + timedelta(days=200)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                  maxRuntimeSeconds=2592000, retry={"attempts": 10})),
    ("resources", job(resources={"vcpus": 4, "memoryGiB": 16}, instanceTypes=["m5.large"])),
    ("resources", job(resources={"vcpus": 448, "memoryGiB": 24576})),
    ("resources", job(resources={"vcpus": 4, "memoryGiB": 16, "gpus": 16})),
]
OK = {"status": "FinishedOK", "exitCode": 0}
CALLBACK_BODIES: list[tuple[str | None, Any]] = [
    (None, {"status": "FinishedNOK", "exitCode": 3}),
    (None, {**OK, "instanceId": None}),
    (None, {**OK, "instanceId": "i-0123456789abcdef0123456789abcde"[:32]}),
    ("body", ["FinishedOK"]),
    ("status", {"status": "Done", "exitCode": 0}),
    ("status", {"exitCode": 0}),
    ("exitCode", {"status": "FinishedOK"}),
    ("exitCode", {"status": "FinishedOK", "exitCode": 2}),
    ("exitCode", {"status": "FinishedNOK", "exitCode": 0}),
    ("exitCode", {"status": "FinishedNOK", "exitCode": 256}),
    ("exitCode", {"status": "FinishedOK", "exitCode": False}),
    ("instanceId", {**OK, "instanceId": "i-" + "0" * 31}),
    ("instanceId", {**OK, "instanceId": 7}),
    ("extra", {**OK, "extra": 1}),
]


def ids(rows: list[tuple[str | None, Any]]) -> list[str]:
    return [f"{i}-{field or 'accepted'}" for i, (field, _) in enumerate(rows)]


def schema_verdict(name: str, body: Any) -> str | None:
    """The field the compiled schema names first, or None."""
    try:
        schema.validate(name, body)
    except schema.JobError as exc:
        return exc.field
    return None


def standard_accepts(name: str, body: Any) -> bool:
    """A standard 2020-12 validator (ECMA regexes, formats as annotations) on the same document."""
    document = {"$ref": f"#/components/schemas/{name}", "components": schema.DOCUMENT["components"]}
    return bool(jsonschema_rs.Draft202012Validator(document).is_valid(body))


def api_verdict(response: Any) -> str | None:
    """None when the API took the body past validation; the field its 400 names first otherwise."""
    if response.status_code != 400:
        return None
    message = response.json_body["Message"]
    return str(message.partition(": ")[0])


@pytest.mark.parametrize(("field", "body"), JOB_BODIES, ids=ids(JOB_BODIES))
def test_job_body_schema_alone(field, body):
    """The compiled JobBody schema and a standard validator give the table's verdict."""
    assert schema_verdict(schema.JOB_BODY, body) == field
    assert standard_accepts(schema.JOB_BODY, body) == (field is None)


@pytest.mark.parametrize("path", example_bodies(), ids=lambda p: p.name)
def test_every_example_body_is_valid_by_the_schema_alone(path):
    """Each input/*.json is a JobBody by the compiled schema and by a standard validator."""
    body = load(path)
    assert schema_verdict(schema.JOB_BODY, body) is None and standard_accepts(schema.JOB_BODY, body)


def test_the_routes_validate_the_bodies_the_document_names():
    """POST /jobs takes a JobBody and the callback a Callback: the schemas the runtime compiles."""
    def body_of(path: str) -> str:
        content = schema.DOCUMENT["paths"][path]["post"]["requestBody"]["content"]["application/json"]
        return str(content["schema"]["$ref"]).rpartition("/")[2]

    assert (body_of("/jobs"), body_of("/jobs/{jobId}/callback")) == (schema.JOB_BODY, schema.CALLBACK)


@pytest.mark.parametrize(("field", "body"), CODE_RULES, ids=[f"{i}-{f}" for i, (f, _) in enumerate(CODE_RULES)])
def test_code_rules_are_what_the_schema_cannot_say(field, body):
    """The schema accepts these bodies; only the code's rules refuse them."""
    assert schema_verdict(schema.JOB_BODY, body) is None and standard_accepts(schema.JOB_BODY, body)


def test_the_api_gives_the_schemas_verdict_on_every_job_body(api):
    """POST /jobs accepts what the schema accepts and refuses the rest naming the schema's field (201 or 400 only)."""
    disagreements = []
    for field, body in JOB_BODIES + CODE_RULES:
        response = post_job(api, json.dumps(body))  # a str body too is sent as JSON
        assert response.status_code in (201, 400), response.body
        if response.status_code == 201:
            api.http.post(f"/jobs/{response.json_body['jobId']}/cancel")
        expected = schema_verdict(schema.JOB_BODY, body) if (field, body) in JOB_BODIES else field
        if api_verdict(response) != expected or expected != field:
            disagreements.append((field, api_verdict(response), json.dumps(body)[:80]))
    assert disagreements == []


@pytest.mark.parametrize(("field", "body"), CALLBACK_BODIES, ids=ids(CALLBACK_BODIES))
def test_callback_schema_alone(field, body):
    """The compiled Callback schema (instanceId capped, exit code matching the status) gives the table's verdict."""
    assert schema_verdict(schema.CALLBACK, body) == field
    assert standard_accepts(schema.CALLBACK, body) == (field is None)


def test_the_api_gives_the_schemas_verdict_on_every_callback_body(api):
    """The job's own instance posts each body: bad ones are 400 naming the schema's field, the job unchanged."""
    created = post_job(api, {"image": "hello-world:latest", "maxRuntimeSeconds": 60}).json_body
    instance = Instance(api, created["jobId"])
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {instance.secret}"}
    disagreements = []
    for field, body in sorted(CALLBACK_BODIES, key=lambda row: row[0] is None):  # the accepted ones end it
        response = api.http.post(f"/jobs/{created['jobId']}/callback", headers=headers, body=json.dumps(body))
        if api_verdict(response) != schema_verdict(schema.CALLBACK, body) or api_verdict(response) != field:
            disagreements.append((field, response.status_code, response.body))
    assert disagreements == []
    assert wait_terminal(created["jobId"])["status"] == jobs.TERMINATED_NOK


def test_request_rules_that_read_as_a_regex_have_words():
    """Every pattern, const or not in a request schema has the description its error message is made of."""
    def walk(node: Any, where: str) -> list[str]:
        if isinstance(node, list):
            return [w for i, item in enumerate(node) for w in walk(item, f"{where}[{i}]")]
        if not isinstance(node, dict):
            return []
        missing = [where] if {"pattern", "const", "not"} & set(node) and "description" not in node else []
        # An "if" or a "not" holds conditions, never the rule an error reports.
        return missing + [w for key, value in node.items() if key not in ("if", "not")
                          for w in walk(value, f"{where}.{key}")]

    assert walk(schema.component(schema.JOB_BODY), "JobBody") == []
    assert walk(schema.component(schema.CALLBACK), "Callback") == []


def test_a_callback_reports_the_statuses_the_runtime_finishes_on():
    """The Callback schema's statuses are the ones the runtime maps to a terminal status."""
    assert set(schema.component(schema.CALLBACK)["properties"]["status"]["enum"]) == set(lifecycle.FINISHED)


def test_the_stored_job_is_what_the_document_describes():
    """The Job and Attempt types hold every body field, and their public fields are the documented Job and Attempt."""
    stored = set(typing.get_type_hints(jobs.Job))
    assert set(schema.component(schema.JOB_BODY)["properties"]) <= stored
    assert stored - jobs.PRIVATE_FIELDS == set(schema.component("Job")["properties"])
    assert set(typing.get_type_hints(jobs.Attempt)) == set(schema.component("Attempt")["properties"])


def schedule(**fields: Any) -> dict[str, Any]:
    """A schedule body, with ``fields`` on top (its job: a job body without scheduledAt)."""
    return {"expression": "cron(0 2 * * ? *)", "job": {"image": "busybox:1.36"}, **fields}


SCHEDULE_BODIES: list[tuple[str | None, Any]] = [
    (None, schedule()),
    (None, schedule(expression="rate(5 minutes)", timezone="Europe/Berlin", name="nightly", overlap="allow",
                    enabled=False, startAt=FAR, endAt=None)),
    (None, schedule(job={"image": "busybox:1.36", "env": {"A": "1"}, "command": ["true"], "maxRuntimeSeconds": 60})),
    ("body", []),
    ("expression", {"job": {"image": "busybox:1.36"}}),
    ("expression", schedule(expression="")),
    ("expression", schedule(expression=5)),
    ("job", schedule(job=None)),
    ("job", {"expression": "rate(1 hour)"}),
    ("job.image", schedule(job={})),
    ("job.image", schedule(job={"image": "UPPER/case"})),
    ("job.scheduledAt", schedule(job={"image": "busybox:1.36", "scheduledAt": FAR})),
    ("job.colour", schedule(job={"image": "busybox:1.36", "colour": "red"})),
    ("job.env.1BAD", schedule(job={"image": "busybox:1.36", "env": {"1BAD": "x"}})),
    ("overlap", schedule(overlap="queue")),
    ("enabled", schedule(enabled="yes")),
    ("timezone", schedule(timezone="")),
    ("startAt", schedule(startAt="tomorrow")),
    ("endAt", schedule(endAt=5)),
    ("name", schedule(name="two\nlines")),
    ("colour", schedule(colour="red")),
]
# What the schedule's schema cannot say: the expression's grammar, the zone's existence, times against each other.
SCHEDULE_CODE_RULES: list[tuple[str, Any]] = [
    ("expression", schedule(expression="cron(0 2 * * * *)")),
    ("expression", schedule(expression="rate(30 seconds)")),
    ("timezone", schedule(timezone="Mars/Olympus")),
    ("endAt", schedule(startAt=FAR, endAt=FAR)),
    ("job.heartbeatSeconds", schedule(job={"image": "busybox:1.36", "maxRuntimeSeconds": 60,
                                           "heartbeatSeconds": 60})),
]


@pytest.mark.parametrize(("field", "body"), SCHEDULE_BODIES, ids=ids(SCHEDULE_BODIES))
def test_schedule_body_schema_alone(field, body):
    """The compiled ScheduleBody schema (its job the JobBody schema) and a standard validator give the verdict."""
    assert schema_verdict(schema.SCHEDULE_BODY, body) == field
    assert standard_accepts(schema.SCHEDULE_BODY, body) == (field is None)


def test_the_api_gives_the_schemas_verdict_on_every_schedule_body(api):
    """POST /schedules: 201 for what the schema accepts, else 400 naming the schema's field; code rules as listed."""
    disagreements = []
    for field, body in SCHEDULE_BODIES + SCHEDULE_CODE_RULES:
        if field is not None and (field, body) in SCHEDULE_CODE_RULES:
            assert schema_verdict(schema.SCHEDULE_BODY, body) is None and standard_accepts(schema.SCHEDULE_BODY, body)
        response = api.http.post("/schedules", headers={"Content-Type": "application/json"}, body=json.dumps(body))
        assert response.status_code in (201, 400), response.body
        if api_verdict(response) != field:
            disagreements.append((field, api_verdict(response), json.dumps(body)[:80]))
    assert disagreements == []


def test_schedule_rules_that_read_as_a_regex_have_words():
    """The schedule's own pattern and not rules have the words their errors are made of."""
    body = schema.component(schema.SCHEDULE_BODY)["properties"]
    assert all("description" in body[name] for name in ("expression", "name", "startAt", "endAt"))
    assert "description" in body["job"]["allOf"][1]["properties"]["scheduledAt"]
