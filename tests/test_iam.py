"""Every Lambda function under the IAM policies its role gets in the synthesised template, enforced by moto.

The functions run with a session of their role, the workflow's AWS calls with a
session of the state machine's role, both holding exactly the template's
statements (see ``tests/iam.py`` for how the template's references resolve and
what moto checks). A grant missing from the stack fails here; so does a grant
nothing uses. The events the functions get are AWS's documented samples
(``tests/events/``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Iterator
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from chalicelib import config, jobs, scheduler, store
from chalicelib.statuses import TAG_JOB, TAG_STACK
from infra.app import DEFAULT_STACK_NAME
from jobscheduler.local import events as local_events
from jobscheduler.local.cloud import ACCOUNT_ROLE
from tests import events, iam
from tests.support import Instance, execution_status, wait_for, wait_terminal, wait_until
from tests.test_stack import Synth

HELLO = {"image": "hello-world:latest", "maxRuntimeSeconds": 60, "instanceTypes": ["m5.large"]}
LATER = (datetime.now(UTC) + timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
# Actions a function's role must grant for AWS to call them on the function's
# behalf; the function's own code never calls them.
ON_BEHALF = {
    "logs:CreateLogStream": "Lambda writes the function's own log",
    "logs:PutLogEvents": "Lambda writes the function's own log",
    "dynamodb:DescribeStream": "the event source mapping reads the job table's stream",
    "dynamodb:GetRecords": "the event source mapping reads the job table's stream",
    "dynamodb:GetShardIterator": "the event source mapping reads the job table's stream",
    "dynamodb:ListStreams": "the event source mapping reads the job table's stream",
    "sqs:SendMessage": "Lambda sends a failed asynchronous invocation to the on-failure destination",
    "iam:PassRole": "EventBridge Scheduler checks that the caller of CreateSchedule may pass the scheduler role",
}
WORKFLOW_ROLE = ACCOUNT_ROLE.rsplit("/", 1)[1]  # the role the emulated state machine runs as
# The template's names the emulation has no counterpart for (tests/iam.py resolves them to nothing).
UNEMULATED = {"AWS::Logs::LogGroup", "AWS::EC2::Subnet", "AWS::EC2::SecurityGroup", "AWS::IAM::Role",
              "AWS::SQS::Queue", "Parameter"}


@pytest.fixture
def stack_tag() -> str:
    """The emulated stack takes the template's stack name: its sweeper rule and stack tag match the template's."""
    return DEFAULT_STACK_NAME


def functions(synth: Synth) -> set[str]:
    """The template's Lambda functions, by logical id."""
    return set(synth.resources("AWS::Serverless::Function"))


@pytest.fixture
def enforce(aws, synth: Synth, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., iam.Enforcement]]:
    """Turn IAM on, with the template's policies (optionally less some actions, to prove they are needed)."""
    paths = {name: synth.logical_id(f"{name}/Resource")
             for name in ("Jobs", "JobWorkflow", "JobLogs", "JobInstance", "GpuJobInstance")}
    names = iam.emulated_names(synth.template, paths, aws)
    with ExitStack() as stack:
        def start(without: Collection[str] = (), workflow_without: Collection[str] = ()) -> iam.Enforcement:
            return stack.enter_context(iam.enforced(synth.template, names, aws, monkeypatch, functions(synth),
                                                    without, workflow_without))

        yield start


def http(enforcement: iam.Enforcement, api: Any, method: str, path: str, body: Any = None,
         headers: dict[str, str] | None = None) -> Any:
    """One request to the API, handled as the API function."""
    raw = json.dumps(body) if body is not None else b""
    with enforcement.as_function("APIHandler"):
        return api.http.request(method, path, headers={"Content-Type": "application/json", **(headers or {})},
                                body=raw)


def invoke(enforcement: iam.Enforcement, function: str, event: dict[str, Any]) -> Any:
    """Call one of the runtime's Lambda functions as Lambda would, as that function."""
    import app

    handler = {"OnSpotInterruption": app.on_spot_interruption, "OnExecutionEnded": app.on_execution_ended,
               "Sweeper": app.sweeper, "OnJobChange": app.on_job_change, "OnSchedule": app.on_schedule}[function]
    with enforcement.as_function(function):
        return handler(event, None)


def launch(tags: dict[str, str] | None = None) -> str:
    """An instance launched outside the workflow (by the test's administrator), with these tags."""
    extra = {"TagSpecifications": [{"ResourceType": "instance", "Tags": [
        {"Key": k, "Value": v} for k, v in tags.items()]}]} if tags else {}
    return str(boto3.client("ec2").run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1,
                                                 **extra)["Instances"][0]["InstanceId"])


def state(instance_id: str) -> str:
    """The instance's state name."""
    reservations = boto3.client("ec2").describe_instances(InstanceIds=[instance_id])["Reservations"]
    return str(reservations[0]["Instances"][0]["State"]["Name"])


def item(job: dict[str, Any]) -> dict[str, Any]:
    """The job as its table item (DynamoDB JSON), as a stream record carries it."""
    return store.to_item(job)


# --- every function, every grant ----------------------------------------------------------------------------


@pytest.mark.slow
def test_every_function_runs_under_its_roles_policy_and_uses_every_grant(api, aws, synth, enforce):
    """Routes, stream and event handlers, sweeper and workflow all work with only their roles' grants; nothing is
    refused, and every action the functions' role grants is called (or is one AWS calls on its behalf)."""
    enforced = enforce()
    job = spot_job_to_the_end(api, aws, enforced)
    # (it states its resources: the instance types that meet them are looked up as it is scheduled)
    sized = {"image": HELLO["image"], "resources": {"vcpus": 2, "memoryGiB": 4}, "scheduledAt": LATER}
    cancelled = http(enforced, api, "POST", "/jobs", sized).json_body
    assert http(enforced, api, "POST", f"/jobs/{cancelled['jobId']}/cancel").status_code == 202
    stopped = stopped_job_cleaned_up(api, aws, enforced)
    sweep_until_idle(aws, enforced)
    schedule_made_fired_and_deleted(api, enforced)

    assert store.get(job["jobId"])["status"] == jobs.TERMINATED_OK
    assert store.get(cancelled["jobId"])["status"] == jobs.CANCELLED
    assert store.get(stopped["jobId"])["status"] == jobs.FAILED
    assert enforced.denied() == []
    assert enforced.ran == functions(synth)
    kinds = {synth.template["Resources"].get(name.split(".")[0], {"Type": "Parameter"})["Type"]
             for name in enforced.unresolved}
    assert kinds <= UNEMULATED, enforced.unresolved
    roles = {iam.function_role(synth.template, f) for f in functions(synth)}
    grants = iam.granted([d for role in roles for d in iam.role_documents(synth.template, role)])
    assert enforced.actions() == grants - set(ON_BEHALF), "granted but never called, or called but not granted"


def spot_job_to_the_end(api, aws, enforced: iam.Enforcement) -> dict[str, Any]:
    """A job with heartbeats: read, beat, priced, sweep while running, interrupted, moved, finished, logs, timeline."""
    response = http(enforced, api, "POST", "/jobs", {**HELLO, "heartbeatSeconds": 30})
    assert response.status_code == 201, response.body
    job_id = response.json_body["jobId"]
    assert http(enforced, api, "GET", "/jobs").json_body["jobs"][0]["jobId"] == job_id
    assert http(enforced, api, "GET", f"/jobs/{job_id}").status_code == 200
    assert http(enforced, api, "GET", "/openapi.json").status_code == 200
    first = Instance(api, job_id)
    running = wait_for(job_id, {jobs.RUNNING})
    beat = http(enforced, api, "POST", f"/jobs/{job_id}/heartbeat", headers={"Authorization": f"Bearer {first.secret}"})
    assert beat.status_code == 202, beat.body
    stream = f"arn:aws:dynamodb:{iam.REGION}:{iam.ACCOUNT}:table/{aws.table}/stream/2026-01-01T00:00:00.000"
    change = events.stream_event([(item({**running, "status": jobs.SCHEDULED}), item(running))], stream)
    answer = invoke(enforced, "OnJobChange", change)
    assert (answer["published"], answer["armed"], answer["priced"]) == (1, True, [first.instance_id])
    rule = f"arn:aws:events:{iam.REGION}:{iam.ACCOUNT}:rule/{aws.sweeper_rule}"
    assert invoke(enforced, "Sweeper", events.scheduled_event(rule))["sleeping"] is False
    warning = events.spot_interruption_warning(first.instance_id)
    assert invoke(enforced, "OnSpotInterruption", warning)["status"] == jobs.INTERRUPTED
    second = Instance(api, job_id, previous=first.instance_id)
    # The callback must meet the second run's waiting task token (SendTaskSuccess), not come before it
    # (then the workflow reads it from the record and the grant goes unused).
    wait_until(lambda: (j := store.get(job_id)) and j["status"] == jobs.RUNNING
               and j["instanceId"] == second.instance_id and j.get("taskToken"),
               "the second run waiting for its callback")
    with enforced.as_function("APIHandler"):
        assert second.callback(0).status_code == 202
    done = wait_terminal(job_id)
    logs = boto3.client("logs")
    logs.create_log_stream(logGroupName=aws.log_group, logStreamName=f"{job_id}/{second.instance_id}")
    logs.put_log_events(logGroupName=aws.log_group, logStreamName=f"{job_id}/{second.instance_id}",
                        logEvents=[{"timestamp": int(datetime.now(UTC).timestamp() * 1000), "message": "hello"}])
    lines = http(enforced, api, "GET", f"/jobs/{job_id}/logs").json_body["events"]
    assert [e["message"] for e in lines] == ["hello"]
    timeline = http(enforced, api, "GET", f"/jobs/{job_id}/timeline").json_body
    assert timeline["executionStatus"] == "SUCCEEDED"
    return done


def stopped_job_cleaned_up(api, aws, enforced: iam.Enforcement) -> dict[str, Any]:
    """A running job whose execution is stopped from the console: the ABORTED event ends it and its instance."""
    job = http(enforced, api, "POST", "/jobs", HELLO).json_body
    instance = Instance(api, job["jobId"])
    wait_for(job["jobId"], {jobs.RUNNING})
    ec2 = boto3.client("ec2")
    # Stopped between a capacity request's launch template version and its deletion, it leaves the version.
    leftover = ec2.create_launch_template_version(
        LaunchTemplateId=aws.launch_template_id, SourceVersion="1", VersionDescription=job["jobId"],
        LaunchTemplateData={"UserData": ""})["LaunchTemplateVersion"]["VersionNumber"]
    boto3.client("stepfunctions").stop_execution(executionArn=job["executionArn"])
    event = events.execution_status_change(job["executionArn"], aws.state_machine_arn, "ABORTED")
    answer = invoke(enforced, "OnExecutionEnded", event)
    assert (answer["terminated"], answer["ended"]) == ([instance.instance_id], jobs.FAILED)
    versions = ec2.describe_launch_template_versions(LaunchTemplateId=aws.launch_template_id)
    assert leftover not in [v["VersionNumber"] for v in versions["LaunchTemplateVersions"]]
    return job


def sweep_until_idle(aws, enforced: iam.Enforcement) -> None:
    """A stray instance of this stack is terminated; with nothing in flight the sweeper turns itself off."""
    stray = launch({TAG_STACK: aws.stack_tag, TAG_JOB: "no-such-job"})
    rule = f"arn:aws:events:{iam.REGION}:{iam.ACCOUNT}:rule/{aws.sweeper_rule}"
    answer = invoke(enforced, "Sweeper", events.scheduled_event(rule))
    assert (answer["terminated"], answer["sleeping"]) == ([stray], True)


def schedule_made_fired_and_deleted(api, enforced: iam.Enforcement) -> None:
    """A schedule is created, paused, resumed and listed; its firing makes one job; deleting it leaves the job."""
    created = http(enforced, api, "POST", "/schedules", {"expression": "rate(1 day)", "job": HELLO})
    assert created.status_code == 201, created.body
    schedule_id = created.json_body["scheduleId"]
    for enabled in (False, True):
        assert http(enforced, api, "PATCH", f"/schedules/{schedule_id}", {"enabled": enabled}).status_code == 200
    assert http(enforced, api, "GET", "/schedules").json_body["schedules"][0]["scheduleId"] == schedule_id
    # The target input the schedule holds (tests/test_schedules.py reads it back from the emulated Scheduler).
    firing = json.loads(scheduler.target_input(schedule_id).replace(scheduler.SCHEDULED_TIME, LATER))
    made = invoke(enforced, "OnSchedule", firing)
    assert made["created"] is True and invoke(enforced, "OnSchedule", firing)["created"] is False
    listed = http(enforced, api, "GET", f"/jobs?scheduleId={schedule_id}").json_body["jobs"]
    assert [j["jobId"] for j in listed] == [made["jobId"]]
    assert http(enforced, api, "DELETE", f"/schedules/{schedule_id}").status_code == 204
    assert http(enforced, api, "POST", f"/jobs/{made['jobId']}/cancel").status_code == 202


# --- Spot warnings: only "not ours" is ignored -------------------------------------------------------------


@pytest.mark.slow
def test_spot_warning_for_an_instance_not_ours_is_ignored(api, aws, enforce):
    """Unknown or malformed ids, untagged instances and another stack's instance are ignored; nothing changes."""
    enforced = enforce()
    job = http(enforced, api, "POST", "/jobs", {**HELLO, "scheduledAt": LATER}).json_body
    others = launch({TAG_STACK: "AnotherStack", TAG_JOB: job["jobId"]})
    # Were the stack tag not checked, this job would be interrupted for another stack's instance.
    store.update(job["jobId"], {"status": jobs.REQUESTED, "instanceId": others}, allowed_from=(jobs.SCHEDULED,))
    ours_without_job = launch({TAG_STACK: aws.stack_tag})
    for instance_id in ("i-0123456789abcdef0", "not-an-instance", launch(), ours_without_job, others):
        answer = invoke(enforced, "OnSpotInterruption", events.spot_interruption_warning(instance_id))
        assert answer == {"instanceId": instance_id, "ignored": True}
    assert store.get(job["jobId"])["status"] == jobs.REQUESTED
    assert enforced.denied() == []
    boto3.client("stepfunctions").stop_execution(executionArn=job["executionArn"])


@pytest.mark.slow
def test_spot_warning_is_retried_when_the_lookup_is_refused(api, aws, enforce):
    """Without ec2:DescribeInstances the warning handler raises AccessDenied (EventBridge retries), never ignores."""
    enforced = enforce(without={"ec2:DescribeInstances"})
    ours = launch({TAG_STACK: aws.stack_tag, TAG_JOB: "00000000-0000-0000-0000-000000000000"})
    with pytest.raises(ClientError) as refused:
        invoke(enforced, "OnSpotInterruption", events.spot_interruption_warning(ours))
    assert refused.value.response["Error"]["Code"] in ("AccessDenied", "UnauthorizedOperation")
    assert [c.action for c in enforced.denied()] == ["ec2:DescribeInstances"]
    assert state(ours) == "running"


@pytest.mark.slow
def test_job_change_surfaces_a_refused_price_lookup(api, aws, enforce):
    """Cost bookkeeping logs a passing AWS error, but a refusal (no ec2:DescribeSpotPriceHistory) raises: the
    stream batch is retried and the function's errors show it, instead of every job silently having no cost."""
    enforced = enforce(without={"ec2:DescribeSpotPriceHistory"})
    response = http(enforced, api, "POST", "/jobs", HELLO)
    assert response.status_code == 201, response.body
    running = wait_for(Instance(api, response.json_body["jobId"]).job_id, {jobs.RUNNING})
    stream = f"arn:aws:dynamodb:{iam.REGION}:{iam.ACCOUNT}:table/{aws.table}/stream/2026-01-01T00:00:00.000"
    change = events.stream_event([(item({**running, "status": jobs.SCHEDULED}), item(running))], stream)
    with pytest.raises(ClientError) as refused:
        invoke(enforced, "OnJobChange", change)
    assert refused.value.response["Error"]["Code"] in ("AccessDenied", "UnauthorizedOperation")
    assert [c.action for c in enforced.denied()] == ["ec2:DescribeSpotPriceHistory"]
    boto3.client("stepfunctions").stop_execution(executionArn=running["executionArn"])


@pytest.mark.slow
def test_workflow_calls_are_held_to_the_workflow_roles_policy(api, aws, enforce):
    """The workflow's AWS calls run as the state machine's role: without ec2:CreateFleet nothing is launched, the
    execution fails, and its ended event ends the job."""
    enforced = enforce(workflow_without={"ec2:CreateFleet"})
    job = http(enforced, api, "POST", "/jobs", HELLO).json_body
    assert execution_status(job["executionArn"], settle=30) == "FAILED"
    assert [(c.principal, c.action) for c in enforced.denied()] == [(WORKFLOW_ROLE, "ec2:CreateFleet")]
    assert boto3.client("ec2").describe_instances()["Reservations"] == []
    event = events.execution_status_change(job["executionArn"], aws.state_machine_arn, "FAILED")
    assert invoke(enforced, "OnExecutionEnded", event)["ended"] == jobs.FAILED


@pytest.mark.slow
def test_retry_debug_hold_release_and_price_cap_run_under_the_roles_policies(api, aws, enforce):
    """A capped job whose failed run is run again, then held for debugging and released: the workflow's new
    states and the release route need nothing their roles lack."""
    enforced = enforce()
    body = {**HELLO, "maxPrice": "0.5", "retry": {"attempts": 2}, "debug": {"keepOnFailureSeconds": 600}}
    job = http(enforced, api, "POST", "/jobs", body).json_body
    first = Instance(api, job["jobId"])
    wait_for(job["jobId"], {jobs.RUNNING})
    with enforced.as_function("APIHandler"):
        assert first.callback(3).status_code == 202
    second = Instance(api, job["jobId"], previous=first.instance_id)
    wait_for(job["jobId"], {jobs.RUNNING})
    with enforced.as_function("APIHandler"):
        assert second.callback(3).status_code == 202
    wait_until(lambda: "held for debugging" in (store.get(job["jobId"]) or {}).get("statusReason", ""), "the hold")
    assert http(enforced, api, "POST", f"/jobs/{job['jobId']}/release").status_code == 202
    done = wait_terminal(job["jobId"])
    assert (done["status"], [a["outcome"] for a in done["attempts"]]) == (jobs.TERMINATED_NOK,
                                                                           ["Failed", jobs.TERMINATED_NOK])
    assert enforced.denied() == []
    assert (state(first.instance_id), state(second.instance_id)) == ("terminated", "terminated")


@pytest.mark.slow
def test_a_gpu_job_runs_and_is_cleaned_up_under_the_roles_policies(api, aws, enforce):
    """A GPU job is sized (DescribeInstanceTypes), launched from the GPU launch template (its versions made and
    deleted by the workflow's role) and finished; a GPU template version a stopped execution left behind is
    deleted by OnExecutionEnded under the API's role. Nothing is refused."""
    enforced = enforce()
    body = {"image": HELLO["image"], "maxRuntimeSeconds": 60, "resources": {"vcpus": 4, "memoryGiB": 16, "gpus": 1}}
    job = http(enforced, api, "POST", "/jobs", body).json_body
    instance = Instance(api, job["jobId"])
    wait_for(job["jobId"], {jobs.RUNNING})
    with enforced.as_function("APIHandler"):
        assert instance.callback(0).status_code == 202
    assert wait_terminal(job["jobId"])["status"] == jobs.TERMINATED_OK
    created = [c for c in enforced.calls if c.action == "ec2:CreateLaunchTemplateVersion"]
    assert [c.resource.rsplit("/", 1)[1] for c in created] == [aws.gpu_launch_template_id]
    stopped = http(enforced, api, "POST", "/jobs", {**body, "scheduledAt": LATER}).json_body
    ec2 = boto3.client("ec2")
    leftover = ec2.create_launch_template_version(
        LaunchTemplateId=aws.gpu_launch_template_id, SourceVersion="1", VersionDescription=stopped["jobId"],
        LaunchTemplateData={"UserData": ""})["LaunchTemplateVersion"]["VersionNumber"]
    boto3.client("stepfunctions").stop_execution(executionArn=stopped["executionArn"])
    event = events.execution_status_change(stopped["executionArn"], aws.state_machine_arn, "ABORTED")
    assert invoke(enforced, "OnExecutionEnded", event)["ended"] == jobs.FAILED
    versions = ec2.describe_launch_template_versions(LaunchTemplateId=aws.gpu_launch_template_id)
    assert leftover not in [v["VersionNumber"] for v in versions["LaunchTemplateVersions"]]
    assert enforced.denied() == []


# --- the events are AWS's documented shapes ----------------------------------------------------------------


def test_every_event_sample_names_the_aws_page_it_follows():
    """Each sample under tests/events/ names the AWS documentation page it copies."""
    pages = events.sources()
    assert set(pages) == {"ec2-spot-instance-interruption-warning", "step-functions-execution-status-change",
                          "dynamodb-stream-modify", "eventbridge-scheduled-event", "apigateway-rest-proxy-request"}
    assert all(page.startswith("https://docs.aws.amazon.com/") for page in pages.values())


@pytest.mark.parametrize("name, built", [
    ("ec2-spot-instance-interruption-warning", lambda: events.spot_interruption_warning("i-0123456789abcdef0")),
    ("step-functions-execution-status-change", lambda: events.execution_status_change(
        "arn:aws:states:us-east-1:123456789012:execution:jobs:job", "arn:aws:states:us-east-1:123456789012:"
        "stateMachine:jobs", "ABORTED")),
    ("eventbridge-scheduled-event", lambda: events.scheduled_event(
        "arn:aws:events:us-east-1:123456789012:rule/sweeper")),
    ("dynamodb-stream-modify", lambda: events.stream_event(
        [({"jobId": {"S": "a"}, "status": {"S": "Scheduled"}}, {"jobId": {"S": "a"}, "status": {"S": "Running"}})],
        "arn:aws:dynamodb:us-east-1:123456789012:table/Jobs/stream/2026-01-01T00:00:00.000")),
    ("apigateway-rest-proxy-request", lambda: events.api_request(
        "POST", "/jobs", {"image": "hello-world"}, "arn:aws:iam::123456789012:user/alice")),
])
def test_events_built_for_tests_keep_the_documented_shape(name, built):
    """Filling in ids changes values, never the shape AWS documents."""
    sample = events.load(name)
    event = built()
    if name == "dynamodb-stream-modify":  # the images are the table's own items
        for record in (sample["Records"][0], event["Records"][0]):
            for image in ("OldImage", "NewImage", "Keys"):
                record["dynamodb"][image] = {}
    if name == "apigateway-rest-proxy-request":  # the headers and query are the request's own
        for request in (sample, event):
            request.update(headers={}, multiValueHeaders={}, queryStringParameters={},
                           multiValueQueryStringParameters={})
    assert events.shape(event) == events.shape(sample)


def test_local_stack_delivers_events_in_the_documented_envelope():
    """The local stack's Spot warning and execution event have AWS's envelope and only documented detail keys."""
    warning = local_events.spot_interruption_event("i-0123456789abcdef0")
    assert events.shape(warning) == events.shape(events.load("ec2-spot-instance-interruption-warning"))
    ended = local_events.execution_ended_event({
        "executionArn": "arn:aws:states:us-east-1:123456789012:execution:jobs:job",
        "stateMachineArn": "arn:aws:states:us-east-1:123456789012:stateMachine:jobs", "name": "job",
        "status": "ABORTED"})
    sample = events.load("step-functions-execution-status-change")
    assert set(ended) == set(sample)
    assert set(ended["detail"]) <= set(sample["detail"])


# --- schedules: only the stack's group ---------------------------------------------------------------------


@pytest.mark.slow
def test_a_schedule_outside_the_stacks_group_is_refused_and_leaves_nothing(api, aws, enforce, monkeypatch):
    """Pointed at another schedule group, CreateSchedule is denied (the grant names only the stack's group); the
    schedule's record is removed again, so nothing is left that would never fire."""
    boto3.client("scheduler").create_schedule_group(Name="someone-elses")
    enforced = enforce()
    monkeypatch.setenv(config.SCHEDULE_GROUP, "someone-elses")
    response = http(enforced, api, "POST", "/schedules", {"expression": "rate(1 day)", "job": HELLO})
    assert response.status_code == 500
    assert [c.action for c in enforced.denied()] == ["scheduler:CreateSchedule"]
    monkeypatch.setenv(config.SCHEDULE_GROUP, f"{DEFAULT_STACK_NAME}-schedules")
    assert http(enforced, api, "GET", "/schedules").json_body["schedules"] == []
