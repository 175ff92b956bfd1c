"""The local stack end to end: ``jobscheduler local`` started as a user starts it, used over real HTTP.

One stack serves the module; ``--once`` gets a stack of its own. Every
instance runs the real bootstrap in the instance emulator.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests

from chalicelib.statuses import TERMINAL
from jobscheduler.local.cloud import GPU_IMAGE
from jobscheduler.local.stack import wait_serving
from tests.conftest import example_bodies, load
from tests.support import wait_until

pytestmark = pytest.mark.slow

EXPECTED = {
    "env-and-command.json": ("TerminatedOK", 0),
    "failing-command.json": ("TerminatedNOK", 3),
    # No GPU here: the emulator drops --gpus all (saying so) and the script finds no nvidia-smi, then trains.
    "gpu-training.json": ("TerminatedOK", 0),
    "hello-world.json": ("TerminatedOK", 0),
    "nightly.json": ("TerminatedOK", 0),
    # Fails at random with exit 3, run again up to 3 runs in all: either one run finally exits 0,
    # or all three fail.
    "retry-flaky.json": {("TerminatedOK", 0), ("TerminatedNOK", 3)},
}
SLEEPER = {"name": "sleeps through a Spot interruption", "image": "busybox:1.36",
           "command": ["sleep", "20"], "maxRuntimeSeconds": 120}
WORK_FILES = "instances' user data and work files: "


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "jobscheduler.cli", *args]


def processes_under(directory: Path) -> list[int]:
    """Processes whose working directory is inside ``directory`` (every instance process starts there)."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            cwd = Path(os.readlink(proc / "cwd").removesuffix(" (deleted)"))
        except (OSError, ValueError):
            continue
        if cwd == directory or directory in cwd.parents:
            found.append(int(proc.name))
    return found


def entered_states(sfn: Any, execution_arn: str) -> list[str]:
    events = sfn.get_execution_history(executionArn=execution_arn, maxResults=1000)["events"]
    return [e["stateEnteredEventDetails"]["name"] for e in events if "stateEnteredEventDetails" in e]


def work_files(output: str) -> Path:
    line = next(line for line in output.splitlines() if line.startswith(WORK_FILES))
    return Path(line.removeprefix(WORK_FILES).strip())


@dataclass
class Stack:
    """A running ``jobscheduler local`` and clients for it."""

    api: str
    aws: str
    api_port: int
    log: Path

    def client(self, service: str) -> Any:
        return boto3.client(service, endpoint_url=self.aws, region_name="us-east-1",
                            aws_access_key_id="any", aws_secret_access_key="any")

    def schedule(self, body: dict[str, Any]) -> dict[str, Any]:
        response = requests.post(f"{self.api}/jobs", json=body, timeout=30)
        assert response.status_code == 201, response.text
        return dict(response.json())

    def job(self, job_id: str) -> dict[str, Any]:
        response = requests.get(f"{self.api}/jobs/{job_id}", timeout=30)
        response.raise_for_status()
        return dict(response.json())

    def wait_for(self, job_id: str, done: Any, timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while not done(job := self.job(job_id)):
            assert time.monotonic() < deadline, f"job {job_id} is still {job['status']}\n{self.log.read_text()}"
            time.sleep(0.2)
        return job

    def wait_terminal(self, job_id: str, timeout: float = 60) -> dict[str, Any]:
        return self.wait_for(job_id, lambda job: job["status"] in TERMINAL, timeout)


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM (the stack cleans up), then SIGKILL if it does not end in time."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """``jobscheduler local --no-demo`` on free ports, stopped (always) after the module."""
    api_port, aws_port = free_port(), free_port()
    log = tmp_path_factory.mktemp("local") / "stack.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            cli("local", "--no-demo", "--api-port", str(api_port), "--aws-port", str(aws_port)),
            stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        api = f"http://127.0.0.1:{api_port}"
        wait_serving(api, process, log)
        yield Stack(api, f"http://127.0.0.1:{aws_port}", api_port, log)
    finally:
        stop(process)
    instances = work_files(log.read_text())
    assert processes_under(instances) == [], "instance processes outlived the stack"


@pytest.fixture(scope="module")
def examples(stack: Stack) -> dict[str, dict[str, Any]]:
    """Every input/*.json, scheduled at once, each followed to its end: file name -> final job."""
    created = {path.name: stack.schedule(load(path)) for path in example_bodies()}
    return {name: stack.wait_terminal(job["jobId"]) for name, job in created.items()}


def test_every_example_has_an_expectation():
    """A new input/*.json needs its expected end here."""
    assert sorted(path.name for path in example_bodies()) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_local_example_ends_as_expected(examples, name):
    """Each example, run through the real bootstrap, ends with its expected status and exit code."""
    job, expected = examples[name], EXPECTED[name]
    assert (job["status"], job["exitCode"]) in (expected if isinstance(expected, set) else {expected}), job
    *failed, last = job["attempts"]
    assert last["outcome"] == job["status"]
    # Each run before the last failed (exit 3) and was run again on a new instance.
    assert [(a["outcome"], a["exitCode"]) for a in failed] == [("Failed", 3)] * len(failed)
    runs = job.get("retry", {}).get("attempts", 1)
    assert len(failed) == runs - 1 if job["status"] == "TerminatedNOK" else len(failed) < runs


def test_local_leaves_no_instance_running(stack, examples):
    """After the jobs end, no instance is pending or running in the emulated EC2."""
    pages = stack.client("ec2").describe_instances()["Reservations"]
    states = {i["InstanceId"]: i["State"]["Name"] for r in pages for i in r["Instances"]}
    assert len(states) >= len(examples)
    assert [i for i, state in states.items() if state in ("pending", "running")] == []


def test_local_container_output_reaches_cloudwatch_logs(stack, examples):
    """What the job's command printed is in the local CloudWatch Logs, in the job's stream."""
    job = examples["env-and-command.json"]
    logs = stack.client("logs")
    (group,) = logs.describe_log_groups(logGroupNamePrefix="/jobscheduler/")["logGroups"]
    # The bootstrap names the stream jobId/instanceId (moto ignores FilterLogEvents' stream prefix).
    events = logs.get_log_events(logGroupName=group["logGroupName"],
                                 logStreamName=f"{job['jobId']}/{job['instanceId']}")["events"]
    assert [e["message"] for e in events] == ["hello spot capacity"]


def test_local_gpu_job_runs_from_the_gpu_template_without_a_gpu_and_says_so(stack, examples):
    """The GPU example launched from the GPU launch template's image; its log stream says --gpus all was
    dropped (no GPU here), then has the script's output."""
    job = examples["gpu-training.json"]
    (attempt,) = job["attempts"]
    assert attempt["instanceType"] in job["instanceTypes"] and job["instanceTypes"][0].startswith("g")
    ec2 = stack.client("ec2")
    (reservation,) = ec2.describe_instances(InstanceIds=[job["instanceId"]])["Reservations"]
    assert reservation["Instances"][0]["ImageId"] == GPU_IMAGE
    logs = stack.client("logs")
    (group,) = logs.describe_log_groups(logGroupNamePrefix="/jobscheduler/")["logGroups"]
    events = logs.get_log_events(logGroupName=group["logGroupName"],
                                 logStreamName=f"{job['jobId']}/{job['instanceId']}")["events"]
    messages = [e["message"] for e in events]
    assert messages[0] == "[local docker] no GPU on this machine: --gpus all is ignored, the job runs without one"
    assert messages[-1] == "trained: y = 3.00 x + 1.00"


def test_local_interrupt_moves_the_job_to_a_second_instance(stack):
    """`jobscheduler local interrupt` preempts the instance; the job finishes TerminatedOK on a new one."""
    job = stack.schedule(SLEEPER)
    running = stack.wait_for(job["jobId"], lambda j: j["status"] == "Running")
    # The notice must find the container running, for the bootstrap to stop it: the local docker
    # writes the container's pid file when its process has started.
    containers = work_files(stack.log.read_text()) / running["instanceId"] / "containers"
    wait_until(lambda: list(containers.glob("*.pid")), "the container starting", timeout=60)
    answer = subprocess.run(cli("local", "interrupt", running["instanceId"], "--api-port", str(stack.api_port)),
                            capture_output=True, text=True, timeout=60)
    assert answer.returncode == 0, answer.stdout + answer.stderr
    assert "Interrupted" in answer.stdout
    done = stack.wait_terminal(job["jobId"], timeout=90)
    assert (done["status"], done["exitCode"]) == ("TerminatedOK", 0)
    first, second = done["attempts"]
    assert (first["instanceId"], first["outcome"]) == (running["instanceId"], "Preempted")
    assert second["outcome"] == "TerminatedOK" and second["instanceId"] != first["instanceId"]
    ec2 = stack.client("ec2")
    described = ec2.describe_instances(InstanceIds=[first["instanceId"], second["instanceId"]])["Reservations"]
    assert {i["State"]["Name"] for r in described for i in r["Instances"]} == {"terminated"}


def test_local_execution_stopped_from_outside_ends_the_job(stack):
    """A Stop runs no Catch: the execution-ended event reaches the runtime's handler, which ends the job."""
    later = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    job = stack.schedule({**SLEEPER, "scheduledAt": later})
    sfn = stack.client("stepfunctions")
    # While it waits for its time: moto stops an execution there at once, but ignores a
    # Stop that comes before the first state, and inside a waitForTaskToken task (RunJob)
    # it ends the execution only after the callback.
    deadline = time.monotonic() + 10
    while "WaitUntilScheduled" not in entered_states(sfn, job["executionArn"]):
        assert time.monotonic() < deadline, "the execution never entered WaitUntilScheduled"
        time.sleep(0.1)
    sfn.stop_execution(executionArn=job["executionArn"], cause="console Stop")
    done = stack.wait_terminal(job["jobId"], timeout=30)
    assert done["status"] == "Failed" and "ABORTED" in done["statusReason"]
    assert done.get("attempts", []) == []


def test_local_interrupt_of_an_unknown_instance_fails(stack):
    """An instance the local stack does not run is refused, with a message naming it."""
    answer = subprocess.run(cli("local", "interrupt", "i-0000000000000000f", "--api-port", str(stack.api_port)),
                            capture_output=True, text=True, timeout=60)
    assert answer.returncode == 1 and "i-0000000000000000f" in answer.stdout


@pytest.mark.parametrize("method", ["TRACE", "PROPFIND", "DELETE"])
def test_local_api_answers_an_unsupported_method_with_405_and_allow(stack, method):
    """A method no route takes gets the API's JSON error shape, 405 and the route's methods in Allow (not HTML 501)."""
    response = requests.request(method, f"{stack.api}/jobs", timeout=30)
    assert response.status_code == 405
    assert response.json()["Code"] == "MethodNotAllowedError" and method in response.json()["Message"]
    assert set(response.headers["Allow"].replace(" ", "").split(",")) == {"GET", "POST"}


def test_local_docker_stop_kills_a_job_that_ignores_term(tmp_path):
    """Without an engine, `docker stop --time 1` TERMs the job, then KILLs it after a second: exit 137."""
    env = {**os.environ, "JOBSCHEDULER_LOCAL_INSTANCE_DIR": str(tmp_path), "JOBSCHEDULER_LOCAL_REAL_DOCKER": ""}
    docker = [sys.executable, "-m", "jobscheduler.local.docker_command"]
    job = subprocess.Popen([*docker, "run", "--name", "job", "-e", "WORD=ready", "busybox:1.36",
                            "sh", "-c", 'trap "" TERM; echo "$WORD"; sleep 30'],
                           env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        assert job.stdout is not None and job.stdout.readline() == "ready\n"
        started = time.monotonic()
        stopped = subprocess.run([*docker, "stop", "--time", "1", "job"], env=env, capture_output=True, timeout=30)
        assert stopped.returncode == 0
        assert job.wait(timeout=10) == 137
        assert 1 <= time.monotonic() - started < 5
    finally:
        os.killpg(job.pid, signal.SIGKILL)  # the orphaned sleep keeps the group alive until now
        job.wait()


def test_local_once_runs_hello_world_and_exits_zero():
    """`jobscheduler local --once`: hello-world goes to TerminatedOK, the summary shows it, and nothing is left."""
    api_port, aws_port = free_port(), free_port()
    started = time.monotonic()
    run = subprocess.run(cli("local", "--once", "--api-port", str(api_port), "--aws-port", str(aws_port)),
                         capture_output=True, text=True, timeout=120)
    output = run.stdout + run.stderr
    assert run.returncode == 0, output
    assert time.monotonic() - started < 60
    assert f"API: http://127.0.0.1:{api_port}" in output
    assert f"AWS endpoint: http://127.0.0.1:{aws_port}" in output
    assert "IAM is not enforced locally" in output and "UserWarning" not in output  # the stack's words, not chalice's
    statuses = [line.split()[1] for line in output.splitlines() if line[:2].isdigit() and line[2:3] == ":"]
    assert statuses[0] == "Scheduled" and statuses[-1] == "TerminatedOK"
    assert {"Running", "FinishedOK"} <= set(statuses)
    assert "-> RunJob -> TerminateInstance -> MarkDone" in output
    instances = work_files(output)
    assert not instances.exists() and processes_under(instances) == []


def test_demo_prints_the_statuses_a_poll_missed_from_the_job_record():
    """A job seen Requested then TerminatedOK passed Running and FinishedOK: their record times fill the gap."""
    from jobscheduler.local import demo

    job = {"status": "TerminatedOK", "runningAt": "2026-12-01T10:00:01Z", "finishedAt": "2026-12-01T10:00:02Z",
           "exitCode": 0}
    assert [status for status, _ in demo._missed("Requested", job)] == ["Running", "FinishedOK"]
    assert [status for status, _ in demo._missed("FinishedOK", job)] == []
    assert [status for status, _ in demo._missed("Running", {**job, "exitCode": 3})] == ["FinishedNOK"]
    assert demo._missed("Requested", {"status": "Running", "runningAt": "2026-12-01T10:00:01Z"}) == []
