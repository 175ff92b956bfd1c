"""API overhead: scheduling through the API against making its AWS calls directly.

On one local stack, ``--jobs`` jobs are scheduled through ``POST /jobs`` over
HTTP, and ``--jobs`` more by making the calls a schedule needs directly with
boto3 against the same emulator: DynamoDB ``PutItem`` (the same record) and
Step Functions ``StartExecution`` (the same input), payloads prepared before
the clock starts. Jobs are due in a day, so executions just wait. The two
paths alternate in blocks, so both meet the same table and the same number of
waiting executions. Both keep their connections open, as any client would
(boto3 pools its own). The API's own
work (routing, validation, rendering the user data, hashing the secret, the
response) is timed in process, against moto in the same process, with the
time spent inside AWS calls taken out; there the execution belongs to a
one-state machine, so the emulator's own execution work does not land in the
figure.

``keep_alive_stall`` checks that a reused connection to the local API server
is no slower than a fresh one (it once waited 40 ms for delayed ACKs).

Both paths stop after the block that passes ``--seconds`` (``make bench``
gives it 60): the table says how many jobs each path scheduled.

Run: ``.venv/bin/python -m bench.api_overhead [--jobs 1000] [--seconds 600] [--json PATH]``
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import requests

from bench.common import HELLO, Row, Stack, cli, local_stack, median, ratio, report

BLOCK = 25


def _payloads(stack: Stack, body: dict[str, Any], count: int) -> list[tuple[dict[str, Any], str, str]]:
    """``count`` (item, execution input, job id) like the API's, copied from one job it created."""
    template = stack.schedule(body)
    ddb, sfn = stack.client("dynamodb"), stack.client("stepfunctions")
    item = ddb.get_item(TableName="Jobs", Key={"jobId": {"S": template["jobId"]}})["Item"]
    execution_input = json.loads(sfn.describe_execution(executionArn=template["executionArn"])["input"])
    prepared = []
    for _ in range(count):
        job_id = str(uuid.uuid4())
        record = {**item, "jobId": {"S": job_id},
                  "sortKey": {"S": item["sortKey"]["S"].replace(template["jobId"], job_id)},
                  "executionArn": {"S": item["executionArn"]["S"].replace(template["jobId"], job_id)}}
        prepared.append((record, json.dumps({**execution_input, "jobId": job_id}), job_id))
    return prepared


def measure(jobs: int, seconds: float) -> dict[str, Any]:
    """Time both paths on one stack, block by block, until ``jobs`` each or ``seconds`` have passed."""
    body = {**HELLO, "scheduledAt": (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")}
    with local_stack() as stack:
        prepared = _payloads(stack, body, jobs)
        machine = stack.job(stack.schedule(body)["jobId"])["executionArn"].rsplit(":", 1)[0].replace(
            ":execution:", ":stateMachine:")
        ddb, sfn = stack.client("dynamodb"), stack.client("stepfunctions")
        session = requests.Session()
        api, direct = [], []
        deadline = time.monotonic() + seconds
        for start in range(0, jobs, BLOCK):
            if time.monotonic() > deadline:
                break
            for _ in range(start, min(start + BLOCK, jobs)):
                began = time.perf_counter()
                response = session.post(f"{stack.api}/jobs", json=body, timeout=60)
                api.append(time.perf_counter() - began)
                if response.status_code != 201:
                    raise RuntimeError(f"POST /jobs answered {response.status_code}: {response.text}")
            for record, execution_input, job_id in prepared[start:start + BLOCK]:
                began = time.perf_counter()
                ddb.put_item(TableName="Jobs", Item=record, ConditionExpression="attribute_not_exists(jobId)")
                sfn.start_execution(stateMachineArn=machine, name=job_id, input=execution_input)
                direct.append(time.perf_counter() - began)
        stall = keep_alive_stall(stack)
    return {"api": api, "direct": direct, "keep_alive": stall}


def keep_alive_stall(stack: Stack, requests_each: int = 20) -> dict[str, float]:
    """Median ``GET /jobs/{unknown}`` (one GetItem, then 404) on fresh connections and on one reused connection."""
    url = f"{stack.api}/jobs/00000000-0000-0000-0000-000000000000"
    fresh, reused = [], []
    with requests.Session() as session:
        for _ in range(requests_each):
            began = time.perf_counter()
            requests.get(url, timeout=30)
            fresh.append(time.perf_counter() - began)
            began = time.perf_counter()
            session.get(url, timeout=30)
            reused.append(time.perf_counter() - began)
    return {"fresh": median(fresh), "reused": median(reused[1:])}


def api_own_time(requests_: int = 30) -> float:
    """Median time of ``POST /jobs`` in process, minus the time spent inside its AWS calls."""
    import os

    import boto3

    from bench.cost import WAITING_MACHINE
    from bench.emulated import emulated

    body = {**HELLO, "scheduledAt": (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")}
    with emulated() as e:
        machine = boto3.client("stepfunctions").create_state_machine(
            name="waiting", definition=json.dumps(WAITING_MACHINE),
            roleArn="arn:aws:iam::123456789012:role/bench")["stateMachineArn"]
        os.environ[e.module("chalicelib.config").STATE_MACHINE_ARN] = machine
        aws = e.module("chalicelib.aws")
        spent: list[float] = []
        for client in (aws.dynamodb(), aws.sfn()):
            client.meta.events.register("before-call.*.*", lambda **kw: spent.append(-time.perf_counter()))
            client.meta.events.register("after-call.*.*", lambda **kw: spent.append(time.perf_counter()))
        own = []
        for _ in range(requests_):
            spent.clear()
            began = time.perf_counter()
            e.schedule(body)
            own.append(time.perf_counter() - began - sum(spent))
    return median(own)


def run(jobs: int, seconds: float) -> tuple[dict[str, Any], list[Row]]:
    """Measure and lay out the rows."""
    raw = measure(jobs, seconds)
    raw["api_own_in_process"] = own = api_own_time()
    jobs = len(raw["api"])
    api_total, direct_total = sum(raw["api"]), sum(raw["direct"])
    figures = {"jobs_each": jobs, "api_seconds": api_total, "direct_seconds": direct_total,
               "api_p50": median(raw["api"]), "direct_p50": median(raw["direct"]),
               "ratio_total": api_total / direct_total, "keep_alive": raw["keep_alive"], "raw": raw}
    bench = "3 API overhead"
    rows = [
        Row(bench, f"schedule {jobs} jobs, total", f"{api_total:.1f} s via API",
            f"{direct_total:.1f} s PutItem+StartExecution", ratio(api_total, direct_total),
            key="api_overhead.ratio", value=api_total / direct_total),
        Row(bench, "per job, median", f"{median(raw['api']) * 1000:.0f} ms",
            f"{median(raw['direct']) * 1000:.0f} ms", ratio(median(raw["api"]), median(raw["direct"]))),
        Row(bench, "  the API's own work, in process, AWS calls taken out", f"{own * 1000:.1f} ms"),
        Row(bench, "  GET of an unknown job (one GetItem), reused connection",
            f"{raw['keep_alive']['reused'] * 1000:.0f} ms",
            f"{raw['keep_alive']['fresh'] * 1000:.0f} ms fresh connection",
            ratio(raw["keep_alive"]["reused"], raw["keep_alive"]["fresh"])),
    ]
    return figures, rows


def main() -> None:
    """Command line: print the rows, write the JSON."""
    args = cli(__doc__.splitlines()[0], {"jobs": 1000, "seconds": 600})
    figures, rows = run(args.jobs, args.seconds)
    report("3 API overhead", figures, rows, args.json)


if __name__ == "__main__":
    main()
