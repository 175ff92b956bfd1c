"""What a job says about itself beyond its image: who submitted it, its price cap, retries on failure.

Each field runs through the API and the real workflow in moto; each bad input is a 400 naming the field.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
from moto.ec2.models import EC2Backend
from rich.console import Console

from chalicelib import bootstrap, cost, events, jobs, lifecycle, resources, store
from jobscheduler import render
from jobscheduler.local.cloud import CPU_IMAGE, GPU_IMAGE
from tests import events as test_events
from tests.faults import SPOT_ABOVE_CAP, injected
from tests.support import (
    Instance,
    instances,
    live_instances,
    post_job,
    states_passed,
    wait_for,
    wait_terminal,
    wait_until,
)
from tests.test_workflow import HAPPY_PATH

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


def scheduled_details(execution_arn: str, state: str) -> list[dict[str, Any]]:
    """The TaskScheduled details of each entry into Task ``state``, from the execution's history."""
    history = boto3.client("stepfunctions").get_execution_history(executionArn=execution_arn, maxResults=1000)
    events, found = history["events"], []
    for index, event in enumerate(events):
        if event.get("stateEnteredEventDetails", {}).get("name") == state:
            scheduled = next(e for e in events[index:] if "taskScheduledEventDetails" in e)
            found.append(scheduled["taskScheduledEventDetails"])
    return found


def scheduled_parameters(execution_arn: str, state: str) -> list[dict[str, Any]]:
    """The parameters each entry into Task ``state`` sent to AWS."""
    return [json.loads(details["parameters"]) for details in scheduled_details(execution_arn, state)]


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


# --- retry ---------------------------------------------------------------------------------------------------


def run_failing(api, body: dict[str, Any], *exit_codes: int) -> dict[str, Any]:
    """Schedule ``body`` and answer each run, on its own instance, with the next exit code; the ended job."""
    job = post_job(api, body).json_body
    previous = None
    for code in exit_codes:
        instance = Instance(api, job["jobId"], previous=previous)
        assert instance.callback(code).status_code == 202
        previous = instance.instance_id
    return wait_terminal(job["jobId"])


def test_a_failed_run_is_run_again_on_a_new_instance(api):
    """Exit 3 with retry on 3: the attempt ends Failed with its exit code, the job is Requested for run 2 of 3
    (saying so), and run 2 on a new instance ends the job TerminatedOK."""
    retry = {"attempts": 3, "onExitCodes": [3, 137], "delaySeconds": 1}
    done = run_failing(api, {**HELLO, "retry": retry}, 3, 0)
    assert done["status"] == jobs.TERMINATED_OK, done["statusReason"]
    first, second = done["attempts"]
    assert (first["outcome"], first["exitCode"]) == ("Failed", 3)
    assert second["outcome"] == jobs.TERMINATED_OK and "exitCode" not in second
    assert first["instanceId"] != second["instanceId"]
    assert {i["InstanceId"]: i["State"]["Name"] for i in instances(done["jobId"])} == {
        first["instanceId"]: "terminated", second["instanceId"]: "terminated"}
    assert done["failedRuns"] == 1 and done["exitCode"] == 0 and done["retry"] == retry
    (between,) = scheduled_parameters(done["executionArn"], "MarkRunFailed")
    assert between["ExpressionAttributeValues"][":reason"]["S"] == "run 2 of 3 after exit 3"
    assert between["ExpressionAttributeValues"][":requested"]["S"] == jobs.REQUESTED
    assert "retryDue" not in api.http.get(f"/jobs/{done['jobId']}").json_body


def test_the_job_ends_terminated_nok_only_when_its_runs_are_spent(api):
    """Two runs in all, both exit 3: TerminatedNOK with the last exit code, the first attempt Failed."""
    done = run_failing(api, {**HELLO, "retry": {"attempts": 2}}, 3, 3)
    assert (done["status"], done["exitCode"]) == (jobs.TERMINATED_NOK, 3)
    assert [a["outcome"] for a in done["attempts"]] == ["Failed", jobs.TERMINATED_NOK]
    assert done["failedRuns"] == 1 and live_instances() == []


def test_an_exit_code_not_listed_is_not_run_again(api):
    """onExitCodes [1]: exit 2 ends the job at once, TerminatedNOK, one attempt."""
    done = run_failing(api, {**HELLO, "retry": {"attempts": 3, "onExitCodes": [1]}}, 2)
    assert (done["status"], done["exitCode"]) == (jobs.TERMINATED_NOK, 2)
    assert [a["outcome"] for a in done["attempts"]] == [jobs.TERMINATED_NOK]
    assert "failedRuns" not in done


def test_spot_interruptions_never_count_as_failed_runs(api):
    """maxAttempts 2 and two runs: a failed run, then a Spot interruption, then the second run succeeds."""
    from app import on_spot_interruption

    job = post_job(api, {**HELLO, "maxAttempts": 2, "retry": {"attempts": 2}}).json_body
    first = Instance(api, job["jobId"])
    assert first.callback(1).status_code == 202
    second = Instance(api, job["jobId"], previous=first.instance_id)
    wait_for(job["jobId"], {jobs.RUNNING})
    on_spot_interruption(test_events.spot_interruption_warning(second.instance_id), None)
    third = Instance(api, job["jobId"], previous=second.instance_id)
    assert third.callback(0).status_code == 202
    done = wait_terminal(job["jobId"])
    assert done["status"] == jobs.TERMINATED_OK, done["statusReason"]
    assert [a["outcome"] for a in done["attempts"]] == ["Failed", "Preempted", jobs.TERMINATED_OK]
    assert done["failedRuns"] == 1


def test_max_runtime_is_per_run(api):
    """Each run's task gets maxRuntimeSeconds of its own (the timeout Step Functions starts at each RunJob)."""
    done = run_failing(api, {**HELLO, "maxRuntimeSeconds": 45, "retry": {"attempts": 2}}, 1, 0)
    assert done["status"] == jobs.TERMINATED_OK
    runs = scheduled_details(done["executionArn"], "RunJob")
    assert [r.get("timeoutInSeconds") for r in runs] == [45, 45]


def test_retry_bad_inputs_name_the_field(api):
    """Runs out of range, exit code 0, a negative delay, unknown keys, or runs that cannot end within a year."""
    year = {"attempts": 10, "delaySeconds": 86400}
    cases = [({"attempts": 0}, "retry.attempts"), ({"attempts": 11}, "retry.attempts"),
             ({"attempts": 2, "onExitCodes": [0]}, "retry.onExitCodes[0]"),
             ({"attempts": 2, "onExitCodes": []}, "retry.onExitCodes"),
             ({"attempts": 2, "delaySeconds": -1}, "retry.delaySeconds"), ({"attempts": 2, "on": [1]}, "retry.on"),
             ({}, "retry.attempts"), (3, "retry")]
    for retry, field in cases:
        assert refused(api, {**HELLO, "retry": retry}) == field, retry
    far = (datetime.now(UTC) + timedelta(days=300)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert refused(api, {**HELLO, "scheduledAt": far, "maxRuntimeSeconds": 2592000, "retry": year}) == "retry"


def test_a_cancel_while_the_failed_run_closes_stops_the_next_run(api):
    """A cancel that comes while the failed run's instance is still being terminated (the job FinishedNOK, a
    retry due) is accepted, and the job ends Cancelled with no further run."""
    with injected() as faults:
        fault = faults.fail(EC2Backend, "terminate_instances", times=2)
        job = post_job(api, {**HELLO, "retry": {"attempts": 3}}).json_body
        first = Instance(api, job["jobId"])
        wait_for(job["jobId"], {jobs.RUNNING})
        assert first.callback(2).status_code == 202
        faults.wait_fired(fault)  # TerminateFailedRun is retrying: the job is still FinishedNOK
        assert store.get(job["jobId"])["status"] == jobs.FINISHED_NOK
        assert api.http.post(f"/jobs/{job['jobId']}/cancel").status_code == 202
        done = wait_terminal(job["jobId"])
    assert (done["status"], done["statusReason"]) == (jobs.CANCELLED, "cancelled between runs (the last one exited 2)")
    (attempt,) = done["attempts"]
    assert attempt["outcome"] == jobs.CANCELLED and attempt.get("endedAt") and live_instances() == []


# --- debug hold ----------------------------------------------------------------------------------------------


def held(api, body: dict[str, Any], exit_code: int = 3) -> tuple[dict[str, Any], Instance]:
    """Schedule ``body``, fail its run, and wait until the workflow holds the instance."""
    job = post_job(api, body).json_body
    instance = Instance(api, job["jobId"])
    wait_for(job["jobId"], {jobs.RUNNING})
    assert instance.callback(exit_code).status_code == 202
    wait_until(lambda: "held for debugging" in (store.get(job["jobId"]) or {}).get("statusReason", ""),
               "the hold")
    return api.http.get(f"/jobs/{job['jobId']}").json_body, instance


def instance_state(instance_id: str) -> str:
    (found,) = [i for i in instances() if i["InstanceId"] == instance_id]
    return str(found["State"]["Name"])


def test_a_failed_runs_instance_is_held_then_released(api):
    """debug.keepOnFailureSeconds: the failed run's instance stays up, the job shows holdUntil; release ends
    the hold at once: the instance is terminated and the job ends TerminatedNOK, holdUntil gone."""
    job, instance = held(api, {**HELLO, "debug": {"keepOnFailureSeconds": 600}})
    assert job["status"] == jobs.FINISHED_NOK and job["holdUntil"] > job["finishedAt"]
    assert instance_state(instance.instance_id) == "running"
    response = api.http.post(f"/jobs/{job['jobId']}/release")
    assert response.status_code == 202, response.body
    done = wait_terminal(job["jobId"])
    assert (done["status"], done["exitCode"]) == (jobs.TERMINATED_NOK, 3)
    assert "released" in done["statusReason"]
    assert instance_state(instance.instance_id) == "terminated"
    assert "holdUntil" not in api.http.get(f"/jobs/{job['jobId']}").json_body
    assert api.http.post(f"/jobs/{job['jobId']}/release").status_code == 409


def test_the_hold_ends_by_itself_when_its_time_is_up(api):
    """Nobody releases it: after keepOnFailureSeconds the instance is terminated, TerminatedNOK."""
    job, instance = held(api, {**HELLO, "debug": {"keepOnFailureSeconds": 2}})
    done = wait_terminal(job["jobId"])
    assert done["status"] == jobs.TERMINATED_NOK and "held for debugging until" in done["statusReason"]
    assert instance_state(instance.instance_id) == "terminated"
    (attempt,) = done["attempts"]
    assert attempt["endedAt"] >= job["holdUntil"][:19]  # the held minutes are on the attempt, so in the cost


def test_a_successful_run_is_never_held(api):
    """Exit 0 with debug: TerminatedOK at once, no holdUntil; release is a 409."""
    job = post_job(api, {**HELLO, "debug": {"keepOnFailureSeconds": 600}}).json_body
    Instance(api, job["jobId"]).callback(0)
    done = wait_terminal(job["jobId"])
    assert done["status"] == jobs.TERMINATED_OK and "holdUntil" not in done
    assert api.http.post(f"/jobs/{job['jobId']}/release").status_code == 409


def test_debug_bad_inputs_name_the_field(api):
    """More than four hours, zero, or an unknown key: a 400 naming the field."""
    for debug, field in [({"keepOnFailureSeconds": 14401}, "debug.keepOnFailureSeconds"),
                         ({"keepOnFailureSeconds": 0}, "debug.keepOnFailureSeconds"),
                         ({}, "debug.keepOnFailureSeconds"), ({"keepOnFailureSeconds": 60, "ssh": True}, "debug.ssh"),
                         (60, "debug")]:
        assert refused(api, {**HELLO, "debug": debug}) == field, debug


# --- resources -----------------------------------------------------------------------------------------------


def described(names: list[str]) -> dict[str, dict[str, Any]]:
    """EC2's description of each named instance type."""
    pages = boto3.client("ec2").get_paginator("describe_instance_types").paginate(InstanceTypes=names)
    return {t["InstanceType"]: t for page in pages for t in page["InstanceTypes"]}


def test_resources_become_the_instance_types_that_meet_them(api):
    """vcpus 4 and memoryGiB 16: every chosen type has at least that, none is burstable or accelerated, the
    closest fits come first, and the job runs on one of them."""
    job = post_job(api, {"image": "hello-world:latest", "maxRuntimeSeconds": 60,
                         "resources": {"vcpus": 4, "memoryGiB": 16}}).json_body
    chosen = job["instanceTypes"]
    assert 1 <= len(chosen) <= 20 and job["resources"] == {"vcpus": 4, "memoryGiB": 16}
    for name, kind in described(chosen).items():
        assert kind["VCpuInfo"]["DefaultVCpus"] >= 4 and kind["MemoryInfo"]["SizeInMiB"] >= 16 * 1024, name
        assert not kind["BurstablePerformanceSupported"] and "GpuInfo" not in kind, name
    assert described(chosen[:1])[chosen[0]]["VCpuInfo"]["DefaultVCpus"] == 4  # an exact fit exists
    Instance(api, job["jobId"]).callback(0)
    done = wait_terminal(job["jobId"])
    assert done["status"] == jobs.TERMINATED_OK and done["attempts"][0]["instanceType"] in chosen


def test_burstable_types_only_when_the_job_says_so(api):
    """A small job gets t-types only with burstable true."""
    small = {"image": "hello-world:latest", "scheduledAt": LATER}
    plain = post_job(api, {**small, "resources": {"vcpus": 2, "memoryGiB": 1}}).json_body
    bursty = post_job(api, {**small, "resources": {"vcpus": 2, "memoryGiB": 1, "burstable": True}}).json_body
    assert not any(kind["BurstablePerformanceSupported"] for kind in described(plain["instanceTypes"]).values())
    assert any(kind["BurstablePerformanceSupported"] for kind in described(bursty["instanceTypes"]).values())
    for job in (plain, bursty):
        assert api.http.post(f"/jobs/{job['jobId']}/cancel").status_code == 202


def test_resources_bad_inputs_name_the_field(api):
    """With instanceTypes, more than any type has, out of range, or an unknown key."""
    base = {"image": "hello-world:latest"}
    cases = [({**base, "instanceTypes": ["m5.large"], "resources": {"vcpus": 2, "memoryGiB": 4}}, "resources"),
             ({**base, "resources": {"vcpus": 448, "memoryGiB": 24576}}, "resources"),
             ({**base, "resources": {"vcpus": 0, "memoryGiB": 4}}, "resources.vcpus"),
             ({**base, "resources": {"vcpus": 2, "memoryGiB": "4"}}, "resources.memoryGiB"),
             ({**base, "resources": {"vcpus": 2}}, "resources.memoryGiB"),
             ({**base, "resources": {"vcpus": 2, "memoryGiB": 4, "cpus": 1}}, "resources.cpus")]
    for body, field in cases:
        assert refused(api, body) == field, body


# --- resources.gpus ------------------------------------------------------------------------------------------

GPU_JOB = {"image": "python:3.12-slim", "maxRuntimeSeconds": 60, "resources": {"vcpus": 4, "memoryGiB": 16, "gpus": 1}}


def test_a_gpu_job_gets_gpu_types_and_runs_from_the_gpu_launch_template(api, aws):
    """gpus 1: every chosen type has a whole NVIDIA GPU and nothing else accelerated, fewest GPUs and closest
    fit first; the execution's launch template version, fleet and clean-up are the GPU template's, and the
    instance boots its image."""
    job = post_job(api, GPU_JOB).json_body
    chosen = job["instanceTypes"]
    assert 1 <= len(chosen) <= 20 and job["resources"] == GPU_JOB["resources"]
    for name, kind in described(chosen).items():
        assert resources.nvidia_gpus(kind) >= 1 and not {"FpgaInfo", "InferenceAcceleratorInfo"} & set(kind), name
        assert kind["VCpuInfo"]["DefaultVCpus"] >= 4 and kind["MemoryInfo"]["SizeInMiB"] >= 16 * 1024, name
    assert "g4dn.xlarge" in chosen[:2] and "g6f.xlarge" not in chosen  # a fraction of a GPU is not a GPU
    Instance(api, job["jobId"]).callback(0)
    done = wait_terminal(job["jobId"])
    assert done["status"] == jobs.TERMINATED_OK and done["attempts"][0]["instanceType"] in chosen
    (created,) = scheduled_parameters(done["executionArn"], "CreateLaunchTemplateVersion")
    assert (created["LaunchTemplateId"], created["SourceVersion"]) == (aws.gpu_launch_template_id, "1")
    (fleet,) = scheduled_parameters(done["executionArn"], "RequestCapacity")
    assert fleet["LaunchTemplateConfigs"][0]["LaunchTemplateSpecification"]["LaunchTemplateId"] == \
        aws.gpu_launch_template_id
    (deleted,) = scheduled_parameters(done["executionArn"], "DeleteLaunchTemplateVersion")
    assert deleted["LaunchTemplateId"] == aws.gpu_launch_template_id
    (instance,) = instances()
    assert instance["ImageId"] == GPU_IMAGE and instance["InstanceType"] in chosen
    assert states_passed(done["executionArn"]) == HAPPY_PATH  # no state added for choosing the template


def test_a_cpu_job_keeps_the_stacks_launch_template_and_no_gpu_types(api, aws):
    """Without gpus: no GPU type, and the launch goes through the stack's own template and image."""
    job = post_job(api, {**GPU_JOB, "resources": {"vcpus": 4, "memoryGiB": 16}}).json_body
    assert not any("GpuInfo" in kind for kind in described(job["instanceTypes"]).values())
    Instance(api, job["jobId"]).callback(0)
    done = wait_terminal(job["jobId"])
    (fleet,) = scheduled_parameters(done["executionArn"], "RequestCapacity")
    assert fleet["LaunchTemplateConfigs"][0]["LaunchTemplateSpecification"]["LaunchTemplateId"] == \
        aws.launch_template_id
    (instance,) = instances()
    assert instance["ImageId"] == CPU_IMAGE


def test_a_gpu_jobs_user_data_gives_the_container_every_gpu(api):
    """The user data of the GPU job's launch template version runs docker with --gpus all; a CPU job's does not."""
    gpu = post_job(api, {**GPU_JOB, "scheduledAt": LATER}).json_body
    cpu = post_job(api, {**HELLO, "scheduledAt": LATER}).json_body
    scripts = {}
    for job in (gpu, cpu):
        execution = boto3.client("stepfunctions").describe_execution(executionArn=job["executionArn"])
        scripts[job["jobId"]] = bootstrap.decode_user_data(json.loads(execution["input"])["userData"])
        assert api.http.post(f"/jobs/{job['jobId']}/cancel").status_code == 202
    assert "JS_GPUS=1" in scripts[gpu["jobId"]] and "JS_GPUS=0" in scripts[cpu["jobId"]]


def test_gpus_bad_inputs_name_the_field(api):
    """Not a whole number of at least 1 (at most 16), or more GPUs than any type has: a 400 naming the field."""
    base = {"image": "hello-world:latest"}
    cases = [({**base, "resources": {"vcpus": 4, "memoryGiB": 16, "gpus": 0}}, "resources.gpus"),
             ({**base, "resources": {"vcpus": 4, "memoryGiB": 16, "gpus": 1.5}}, "resources.gpus"),
             ({**base, "resources": {"vcpus": 4, "memoryGiB": 16, "gpus": "1"}}, "resources.gpus"),
             ({**base, "resources": {"vcpus": 4, "memoryGiB": 16, "gpus": 17}}, "resources.gpus"),
             ({**base, "resources": {"vcpus": 4, "memoryGiB": 16, "gpus": True}}, "resources.gpus"),
             ({**base, "resources": {"vcpus": 4, "memoryGiB": 16, "gpus": 16}}, "resources"),
             ({**base, "resources": {"vcpus": 448, "memoryGiB": 16, "gpus": 1}}, "resources"),
             ({**base, "instanceTypes": ["g4dn.xlarge"], "resources": {"vcpus": 4, "memoryGiB": 16, "gpus": 1}},
              "resources")]
    for body, field in cases:
        assert refused(api, body) == field, body


def test_the_cost_table_prices_the_common_gpu_types_and_no_others():
    """g4dn, g5 and g6 from xlarge to 16xlarge have an On-Demand price; any other GPU type's is null, never guessed."""
    for family in ("g4dn", "g5", "g6"):
        for size in ("xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge"):
            assert cost.on_demand_price(f"{family}.{size}", "us-east-1") is not None, f"{family}.{size}"
    assert cost.on_demand_price("p5.48xlarge", "us-east-1") is None
    attempt = {"launchedAt": "2026-12-01T10:00:00Z", "endedAt": "2026-12-01T11:00:00Z", "lifecycle": "on-demand"}
    assert cost.estimate([{**attempt, "onDemandPrice": "0.526"}])["estimated"] == 0.526
    assert cost.estimate([{**attempt, "onDemandPrice": None}])["estimated"] is None
