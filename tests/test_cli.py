"""The ``jobscheduler`` client, run as a user runs it, against a started local stack.

Every command is run as a subprocess (the console script's module) and
checked for its output and its exit code: 0 ok, 1 the watched job ended not
OK, 2 usage or a refused request, 3 no such job, 4 API error. Every
``--json`` output must parse.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Any

import pytest

from jobscheduler import client as api
from tests.test_local import TERMINAL, Stack, free_port, stack

UNKNOWN = "00000000-0000-0000-0000-000000000000"


def run(stack: Stack | None, *args: str, env: dict[str, str] | None = None, timeout: float = 180) -> Any:
    """``jobscheduler ARGS`` with ``JOBSCHEDULER_API`` pointing at the stack."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("JOBSCHEDULER_")}
    if stack is not None:
        environment[api.API_VARIABLE] = stack.api
    environment.update(env or {})
    return subprocess.run([sys.executable, "-m", "jobscheduler.cli", *args], capture_output=True, text=True,
                          env=environment, timeout=timeout)


def ok(result: Any) -> Any:
    """The result, asserting exit code 0."""
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def schedule(stack: Stack, *args: str) -> dict[str, Any]:
    """``schedule ARGS --json``: the created job."""
    return dict(json.loads(ok(run(stack, "schedule", *args, "--json")).stdout))


@pytest.fixture(scope="module")
def finished(stack: Stack) -> dict[str, dict[str, Any]]:
    """Two jobs scheduled with the client and run to their end: ``ok`` (from a file) and ``failing`` (options)."""
    jobs = {
        "ok": schedule(stack, "input/env-and-command.json", "--at", "now"),
        "failing": schedule(stack, "--image", "busybox:1.36", "--name", "cli failing", "-e", "WHO=cli",
                            "--command", 'sh -c "echo to stdout; echo \\"$WHO\\" to stderr >&2; exit 3"'),
    }
    # The cost is written just after the job ends (from the table's stream): wait for both.
    return {name: stack.wait_for(job["jobId"], lambda j: j["status"] in TERMINAL and "cost" in j)
            for name, job in jobs.items()}


pytestmark = pytest.mark.slow


def test_schedule_json_is_the_created_job(stack):
    """`schedule FILE --at +1h --json`: the job as the API created it, scheduled an hour ahead."""
    job = schedule(stack, "input/hello-world.json", "--at", "+1h")
    assert job["status"] == "Scheduled" and job["name"] == "hello world"
    assert job["scheduledAt"] > time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3500))
    ok(run(stack, "cancel", job["jobId"]))


def test_watch_follows_a_job_to_terminated_ok_and_exits_zero(stack):
    """`schedule FILE --watch`: one line per status change, ending TerminatedOK, exit 0."""
    result = ok(run(stack, "schedule", "input/hello-world.json", "--watch", "--interval", "0.1"))
    lines = result.stdout.splitlines()
    assert lines[0].startswith("scheduled ")
    statuses = [line.split()[1] for line in lines if line[:2].isdigit() and line[2:3] == ":"]
    assert statuses[0] == "Scheduled" and statuses[-1] == "TerminatedOK" and "Running" in statuses
    assert "ended TerminatedOK" in lines[-1] and "exit code 0" in lines[-1]


def test_watch_exits_one_when_the_job_ends_not_ok(stack, finished):
    """`watch` of a job that ended TerminatedNOK exits 1; with --json it prints the job as JSON lines."""
    job_id = finished["failing"]["jobId"]
    result = run(stack, "watch", job_id)
    assert result.returncode == api.JOB_NOT_OK and "TerminatedNOK" in result.stdout and "exit code 3" in result.stdout
    as_json = run(stack, "watch", job_id, "--json")
    assert as_json.returncode == api.JOB_NOT_OK
    (line,) = as_json.stdout.splitlines()
    assert json.loads(line)["status"] == "TerminatedNOK"


def test_list_shows_a_table_and_json_pages(stack, finished):
    """`list`: a table with every job id and status; `--status` filters; `--json` pages with `--all`."""
    table = ok(run(stack, "list")).stdout
    assert table.splitlines()[0].split()[:4] == ["JOB", "STATUS", "EXIT", "SCHEDULED"]
    for job in finished.values():
        assert job["jobId"] in table and job["status"] in table
    failed = json.loads(ok(run(stack, "list", "--status", "TerminatedNOK", "--json")).stdout)
    assert [j["jobId"] for j in failed["jobs"]] == [finished["failing"]["jobId"]]
    first = json.loads(ok(run(stack, "list", "--limit", "1", "--json")).stdout)
    assert len(first["jobs"]) == 1 and first["nextToken"]
    every = json.loads(ok(run(stack, "list", "--limit", "1", "--all", "--json")).stdout)
    assert {j["jobId"] for j in finished.values()} <= {j["jobId"] for j in every["jobs"]}
    assert every["nextToken"] is None


def test_status_shows_fields_cost_attempts_and_timeline(stack, finished):
    """`status`: the job's fields, its cost against On-Demand, its attempt, and the states it passed, timed."""
    job = finished["ok"]
    text = ok(run(stack, "status", job["jobId"])).stdout
    for expected in ("greeting from env", "TerminatedOK", "attempts", job["instanceId"], "timeline", "RunJob",
                     "MarkDone", "execution SUCCEEDED", "estimated", "less than On-Demand"):
        assert expected in text, expected
    answer = json.loads(ok(run(stack, "status", job["jobId"], "--json")).stdout)
    assert answer["job"]["jobId"] == job["jobId"] and answer["job"]["cost"]["currency"] == "USD"
    states = [s["name"] for s in answer["timeline"]["states"]]
    assert states[0] == "WaitUntilScheduled" and states[-1] == "MarkDone"
    (attempt,) = answer["job"]["attempts"]
    assert attempt["spotPrice"] is not None and attempt["availabilityZone"]


def test_logs_prints_the_containers_output(stack, finished):
    """`logs`: stdout and stderr of the container, in order; `--json` lines; `-t` stamps each line."""
    output = ok(run(stack, "logs", finished["failing"]["jobId"]))
    assert output.stdout.splitlines() == ["to stdout", "cli to stderr"]
    assert f"output of {finished['failing']['instanceId']}" in output.stderr
    lines = ok(run(stack, "logs", finished["ok"]["jobId"], "--json")).stdout.splitlines()
    events = [json.loads(line) for line in lines]
    assert [e["message"] for e in events] == ["hello spot capacity"]
    assert events[0]["instanceId"] == finished["ok"]["instanceId"] and events[0]["timestamp"] > 0
    stamped = ok(run(stack, "logs", "-t", finished["ok"]["jobId"])).stdout
    assert stamped.startswith("20") and stamped.rstrip().endswith("Z hello spot capacity")


def test_logs_follow_prints_output_as_it_comes_until_the_job_ends(stack):
    """`logs --follow` on a running job prints lines written later, and returns once the job has ended."""
    job = schedule(stack, "--image", "busybox:1.36", "--command", 'sh -c "echo first; sleep 3; echo second"')
    stack.wait_for(job["jobId"], lambda j: j["status"] == "Running")
    result = ok(run(stack, "logs", job["jobId"], "--follow", "--interval", "0.2"))
    assert result.stdout.splitlines() == ["first", "second"]
    assert stack.job(job["jobId"])["status"] in TERMINAL


def test_cancel_then_cancel_again(stack):
    """`cancel`: 0 and the Cancelled job; a second cancel is refused by the API (exit 4), saying why."""
    job = schedule(stack, "--image", "busybox:1.36", "--at", "+2h")
    first = ok(run(stack, "cancel", job["jobId"], "--json"))
    assert json.loads(first.stdout)["status"] == "Cancelled"
    again = run(stack, "cancel", job["jobId"])
    assert again.returncode == api.API_ERROR and "can no longer be cancelled" in again.stderr
    assert "Cancelled" in ok(run(stack, "status", job["jobId"])).stdout


@pytest.mark.parametrize("command", ["status", "watch", "cancel", "release", "logs"])
def test_unknown_job_exits_three(stack, command):
    """Every command that names a job exits 3 for one that does not exist, naming it."""
    result = run(stack, command, UNKNOWN)
    assert result.returncode == api.NOT_FOUND and UNKNOWN in result.stderr


@pytest.mark.parametrize("args, says", [
    (["schedule"], "give a job file or --image"),
    (["schedule", "--image", "busybox:1.36", "--env", "NOVALUE"], "NAME=value"),
    (["schedule", "--image", "Not An Image"], "image:"),
    (["schedule", "--image", "busybox:1.36", "--at", "tomorrow"], "scheduledAt:"),
    (["schedule", "--image", "busybox:1.36", "--max-price", "cheap"], "maxPrice:"),
    (["list", "--status", "Bogus"], "status:"),
    (["list", "--limit", "0"], "--limit"),
])
def test_bad_usage_and_refused_requests_exit_two(stack, args, says):
    """Bad arguments (checked by the client) and bodies the API refuses (400) both exit 2, saying what is wrong."""
    result = run(stack, *args)
    assert result.returncode == api.USAGE, result.stdout + result.stderr
    assert says in result.stderr


def test_unreachable_api_exits_four():
    """Nothing listening at --api: exit 4 and a message naming the URL."""
    url = f"http://127.0.0.1:{free_port()}"
    result = run(None, "list", "--api", url)
    assert result.returncode == api.API_ERROR and url in result.stderr


def test_endpoint_comes_from_the_stacks_outputs(stack):
    """Without --api or JOBSCHEDULER_API, the client reads the ApiUrl output of the CloudFormation stack."""
    template = {"Resources": {"Queue": {"Type": "AWS::SQS::Queue"}},
                "Outputs": {api.API_OUTPUT: {"Value": f"{stack.api}/"}}}
    stack.client("cloudformation").create_stack(StackName="CliTest", TemplateBody=json.dumps(template))
    aws = {"AWS_ENDPOINT_URL": stack.aws, "AWS_ACCESS_KEY_ID": "any", "AWS_SECRET_ACCESS_KEY": "any",
           "AWS_DEFAULT_REGION": "us-east-1"}
    listed = ok(run(None, "list", "--stack", "CliTest", "--json", env=aws))
    assert "jobs" in json.loads(listed.stdout)
    missing = run(None, "list", "--stack", "NoSuchStack", env=aws)
    assert missing.returncode == api.API_ERROR
    assert "--api" in missing.stderr and api.API_VARIABLE in missing.stderr and "NoSuchStack" in missing.stderr


def test_local_stack_prints_the_job_events_it_published(stack, finished):
    """Each status change went table stream -> on_job_change -> EventBridge rule -> queue, and was printed."""
    job_id = finished["failing"]["jobId"]
    deadline = time.monotonic() + 10
    expected = [f"{job_id}  {before} -> {after}" for before, after in (
        ("-", "Scheduled"), ("Scheduled", "Requested"), ("Requested", "Running"), ("Running", "FinishedNOK"),
        ("FinishedNOK", "TerminatedNOK"))]
    while True:
        printed = [line.split("Job Status Change", 1)[1].strip() for line in stack.log.read_text().splitlines()
                   if line.startswith("event Job Status Change") and job_id in line]
        if printed == expected or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert printed == expected


def test_schedule_gpus_asks_for_gpu_types(stack):
    """--gpus 1 with --vcpus and --memory: resources.gpus, and only GPU types; --gpus alone is refused."""
    job = schedule(stack, "--image", "busybox:1.36", "--at", "+1h", "--vcpus", "4", "--memory", "16", "--gpus", "1")
    assert job["resources"] == {"vcpus": 4, "memoryGiB": 16, "gpus": 1}
    assert job["instanceTypes"] and all(t.startswith(("g", "p")) for t in job["instanceTypes"])
    ok(run(stack, "cancel", job["jobId"]))
    alone = run(stack, "schedule", "--image", "busybox:1.36", "--gpus", "1")
    assert alone.returncode != 0 and "--gpus" in alone.stderr


def test_schedule_takes_an_option_for_every_job_shape_field(stack):
    """--vcpus/--memory, --max-price, --retry..., --keep-on-failure become the body's fields; release of a job
    that is not held is refused by the API (exit 4, saying why)."""
    job = schedule(stack, "--image", "busybox:1.36", "--at", "+1h", "--vcpus", "2", "--memory", "4",
                   "--max-price", "0.5", "--retry", "3", "--retry-on", "3", "--retry-on", "137",
                   "--retry-delay", "30", "--keep-on-failure", "600")
    assert job["resources"] == {"vcpus": 2, "memoryGiB": 4} and job["instanceTypes"]
    assert job["maxPrice"] == "0.5" and job["debug"] == {"keepOnFailureSeconds": 600}
    assert job["retry"] == {"attempts": 3, "onExitCodes": [3, 137], "delaySeconds": 30}
    assert job["submittedBy"] == "local"
    refused = run(stack, "release", job["jobId"])
    assert refused.returncode == api.API_ERROR and "not held" in refused.stderr
    ok(run(stack, "cancel", job["jobId"]))
