"""Cost per job, and what the system costs while nothing is due.

Per job: the real workflow runs in moto (in process, so "no Spot capacity"
can be injected into the EC2 backend) through four paths: happy, non-zero
exit, one capacity retry, one Spot preemption. A billed state transition is
counted as one per ``...StateEntered`` event of the execution history, plus
one per Task retry (a ``TaskScheduled`` beyond the first of its state entry),
since AWS bills retries as transitions too.

Idle: our executions wait in ``Wait`` states, which cost nothing while they
wait; the one thing that runs on a schedule is the sweeper (every 5 minutes
in the CDK stack), and only while a job is in flight: a run that finds
nothing in flight turns its own schedule off. The sweeper is run once
against N waiting jobs and against N finished jobs: its AWS calls are
counted, and whether its schedule is off afterwards decides how often it
runs in an idle month. Beside it, the original design's poller: a Lambda
every minute that scans the whole job table, priced from the measured size
of a job record.

Run: ``.venv/bin/python -m bench.cost [--json PATH]``
"""

from __future__ import annotations

import json
import math
import os
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3

from bench.common import HELLO, Row, cli, entered, history, ratio, report
from bench.emulated import Emulated, counting_calls, emulated, without_spot_capacity

# Prices, us-east-1, checked 2026-11-29 with the search tool:
# - Step Functions Standard: $0.025 per 1,000 state transitions, retries billed as transitions
#   (https://aws.amazon.com/step-functions/pricing/).
# - DynamoDB on demand: $0.125 per million read request units since the 2024-11-01 price cut; an
#   eventually consistent read of up to 4 KB is half a unit (https://aws.amazon.com/dynamodb/pricing/on-demand/
#   for the units; the figure as reported by airbyte.com/data-engineering-resources/dynamodb-pricing, July 2025).
# - Lambda: $0.20 per million requests, $0.0000166667 per GB-second, x86
#   (https://docs.aws.amazon.com/whitepapers/latest/how-aws-pricing-works/lambda.html).
# Free tiers are left out on both sides of every comparison.
PRICES_CHECKED = "2026-11-29"
PRICES: dict[str, float] = {
    "sfn_per_transition": 0.025 / 1000,
    "ddb_per_rru": 0.125 / 1e6,
    "lambda_per_request": 0.20 / 1e6,
    "lambda_per_gb_second": 0.0000166667,
}
MONTH_MINUTES = 30 * 24 * 60  # 43,200 runs of a one-minute poller
SWEEPS_PER_MONTH = MONTH_MINUTES // 5  # the CDK stack's sweeper: rate(5 minutes)
LAMBDA_GB, LAMBDA_TIMEOUT = 0.25, 30.0  # the stack's functions: 256 MB, 30 s
# Lambda duration is not measurable here: assumed 50 ms plus 20 ms per AWS call (a Scan page counts as one).
LAMBDA_BASE_SECONDS, LAMBDA_SECONDS_PER_CALL = 0.05, 0.02
SCAN_PAGE_BYTES = 1024 * 1024


# --- item sizes, as DynamoDB bills them ---


def attribute_size(value: dict[str, Any]) -> int:
    """Bytes of one attribute value by DynamoDB's sizing rules (its name is counted by the caller)."""
    (kind, data), = value.items()
    if kind == "S":
        return len(data.encode())
    if kind == "N":
        digits = data.lstrip("-").replace(".", "").strip("0") or "0"
        return math.ceil(len(digits) / 2) + 1
    if kind == "B":
        return len(data)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "L":
        return 3 + sum(1 + attribute_size(v) for v in data)
    if kind == "M":
        return 3 + sum(1 + len(k.encode()) + attribute_size(v) for k, v in data.items())
    if kind in ("SS", "NS", "BS"):
        return sum(attribute_size({kind[0]: v}) for v in data)
    raise ValueError(f"unknown attribute type {kind}")


def item_size(item: dict[str, Any]) -> int:
    """Bytes of a whole item: names plus values."""
    return sum(len(name.encode()) + attribute_size(value) for name, value in item.items())


def read_units(total_bytes: int) -> float:
    """Read request units of one eventually consistent Query or Scan that read ``total_bytes``."""
    return max(1, math.ceil(total_bytes / 4096)) * 0.5


# --- transitions per job ---


def transitions(events: list[dict[str, Any]]) -> dict[str, Any]:
    """Billed transitions of one execution, and what they are made of."""
    states = entered(events)
    task_entries = sum(1 for e in events if e["type"] == "TaskStateEntered")
    retries = max(0, sum(1 for e in events if e["type"] == "TaskScheduled") - task_entries)
    return {"transitions": len(states) + retries, "entered": len(states), "retries": retries, "states": states}


def _happy(e: Emulated) -> dict[str, Any]:
    job = e.schedule(HELLO)
    running = e.wait_for(job["jobId"], lambda j: j["status"] == "Running")
    e.callback(running, 0)
    return e.wait_ended(job["jobId"])


def _nonzero(e: Emulated) -> dict[str, Any]:
    job = e.schedule(HELLO)
    running = e.wait_for(job["jobId"], lambda j: j["status"] == "Running")
    e.callback(running, 3)
    return e.wait_ended(job["jobId"])


def _capacity_retry(e: Emulated) -> dict[str, Any]:
    with without_spot_capacity(rounds=1) as refused:
        job = e.schedule(HELLO)
        running = e.wait_for(job["jobId"], lambda j: j["status"] == "Running")
    if refused["refused"] != 1:
        raise RuntimeError("the first capacity request was not refused")
    e.callback(running, 0)
    return e.wait_ended(job["jobId"])


def _preemption(e: Emulated) -> dict[str, Any]:
    job = e.schedule(HELLO)
    first = e.wait_for(job["jobId"], lambda j: j["status"] == "Running")
    # What EventBridge delivers two minutes before Spot takes the instance back.
    e.app.on_spot_interruption({"detail": {"instance-id": first["instanceId"]}}, None)
    second = e.wait_for(job["jobId"], lambda j: j["status"] == "Running" and j["instanceId"] != first["instanceId"])
    e.callback(second, 0)
    return e.wait_ended(job["jobId"])


SCENARIOS = {"happy path": (_happy, "TerminatedOK"), "non-zero exit": (_nonzero, "TerminatedNOK"),
             "one capacity retry": (_capacity_retry, "TerminatedOK"),
             "one preemption": (_preemption, "TerminatedOK")}


def per_job() -> tuple[dict[str, Any], list[int]]:
    """Transitions of each scenario, and the DynamoDB sizes of the finished job records."""
    results, sizes = {}, []
    with emulated() as e:
        sfn, ddb = boto3.client("stepfunctions"), boto3.client("dynamodb")
        for name, (play, expected) in SCENARIOS.items():
            done = play(e)
            if done["status"] != expected:
                raise RuntimeError(f"{name}: the job ended {done['status']}, expected {expected}")
            results[name] = transitions(history(sfn, done["executionArn"]))
            item = ddb.get_item(TableName=e.cloud.table, Key={"jobId": {"S": done["jobId"]}})["Item"]
            sizes.append(item_size(item))
    return results, sizes


# --- idle: the sweeper against N jobs ---

WAITING_MACHINE = {"StartAt": "WaitUntilScheduled",
                    "States": {"WaitUntilScheduled": {"Type": "Wait", "Seconds": 3600, "End": True}}}


def _seed(e: Emulated, count: int, status: str) -> int:
    """``count`` jobs as the API stores them, created an hour ago; waiting ones get a running execution."""
    jobs, store, workflow = (e.module(f"chalicelib.{m}") for m in ("jobs", "store", "workflow"))
    sfn = boto3.client("stepfunctions")
    created = (datetime.now(UTC) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    later = (datetime.now(UTC) + timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
    size = 0
    for _ in range(count):
        job = jobs.new_job({**HELLO, "scheduledAt": later})
        job.update(status=status, createdAt=created, updatedAt=created, secretHash="0" * 64,
                   executionArn=workflow.execution_arn(job["jobId"]))
        store.put_new(job)
        if status == "Scheduled":
            sfn.start_execution(stateMachineArn=e.cloud.state_machine_arn, name=job["jobId"], input="{}")
        size = item_size(store.to_item({**job, "kind": store.KIND, "sortKey": f"{job['scheduledAt']}#x"}))
    return size


def sweep_calls(count: int, status: str) -> dict[str, Any]:
    """The AWS calls (and read units) of one sweeper run with ``count`` jobs of ``status`` in the table.

    The executions of waiting jobs belong to a one-state machine that just
    waits (the sweeper only asks whether they run); starting the real one a
    thousand times would only slow the emulator.
    """
    with emulated() as e:
        arn = boto3.client("stepfunctions").create_state_machine(
            name="waiting", definition=json.dumps(WAITING_MACHINE),
            roleArn="arn:aws:iam::123456789012:role/bench")["stateMachineArn"]
        os.environ[e.module("chalicelib.config").STATE_MACHINE_ARN] = arn
        e.cloud.state_machine_arn = arn
        _seed(e, count, status)
        aws = e.module("chalicelib.aws")
        units: list[float] = []

        def read(parsed: dict[str, Any], **kwargs: Any) -> None:
            units.append(read_units(sum(item_size(i) for i in parsed.get("Items", []))))

        aws.dynamodb().meta.events.register("after-call.dynamodb.Query", read)
        started = time.perf_counter()
        with counting_calls(aws.dynamodb(), aws.sfn(), aws.ec2(), aws.client("events")) as calls:
            answer = e.module("app").sweeper({}, None)
        seconds = time.perf_counter() - started
        aws.dynamodb().meta.events.unregister("after-call.dynamodb.Query", read)
        schedule = boto3.client("events").describe_rule(Name=e.cloud.sweeper_rule)["State"]
    if answer.get("ended") or answer.get("terminated"):
        raise RuntimeError(f"the sweeper changed healthy jobs: {answer}")
    return {"jobs": count, "status": status, "calls": dict(calls), "total_calls": sum(calls.values()),
            "read_units": sum(units), "seconds_in_moto": round(seconds, 3), "schedule_after": schedule}


def _linear(small: dict[str, Any], large: dict[str, Any], key: str, n: int) -> float:
    """``key`` at ``n`` jobs, on the line through two measured runs."""
    slope = (large[key] - small[key]) / (large["jobs"] - small["jobs"])
    return small[key] + slope * (n - small["jobs"])


def run_seconds(calls_per_run: float) -> float:
    """Assumed duration of one run that makes ``calls_per_run`` AWS calls (uncapped)."""
    return LAMBDA_BASE_SECONDS + LAMBDA_SECONDS_PER_CALL * calls_per_run


def lambda_month(invocations: float, calls_per_run: float) -> float:
    """Requests plus (assumed) duration of a scheduled function for a month; a run ends at the timeout."""
    seconds = min(LAMBDA_TIMEOUT, run_seconds(calls_per_run))
    return invocations * (PRICES["lambda_per_request"] + seconds * LAMBDA_GB * PRICES["lambda_per_gb_second"])


def poller_month(rows: int, record_bytes: float) -> dict[str, float]:
    """The original design: every minute, a Lambda scans all ``rows`` job records."""
    table_bytes = rows * record_bytes
    pages = max(1, math.ceil(table_bytes / SCAN_PAGE_BYTES))
    rru = read_units(int(table_bytes))
    dynamodb = MONTH_MINUTES * rru * PRICES["ddb_per_rru"]
    return {"rru_per_run": rru, "dollars": dynamodb + lambda_month(MONTH_MINUTES, pages), "dynamodb": dynamodb}


def sweeper_month(calls: float, rru: float, runs: float = SWEEPS_PER_MONTH) -> dict[str, float]:
    """Our design: ``runs`` sweeper runs a month, with its measured calls and read units per run.

    A run that would outlast the function's timeout is cut there, reading only its share.
    """
    finished = min(1.0, LAMBDA_TIMEOUT / run_seconds(calls))
    dynamodb = runs * rru * finished * PRICES["ddb_per_rru"]
    once = rru * finished * PRICES["ddb_per_rru"] + lambda_month(1, calls)
    return {"rru_per_run": rru * finished, "dollars": dynamodb + lambda_month(runs, calls),
            "dynamodb": dynamodb, "share_of_jobs_checked": finished, "runs": runs, "dollars_per_run": once}


def run() -> tuple[dict[str, Any], list[Row]]:
    """Measure, price, and lay out the rows."""
    scenarios, sizes = per_job()
    record = sum(sizes) / len(sizes)
    sweeps = {"finished": sweep_calls(100, "TerminatedOK"),
              "waiting_100": sweep_calls(100, "Scheduled"), "waiting_300": sweep_calls(300, "Scheduled")}
    figures: dict[str, Any] = {"prices": {**PRICES, "checked": PRICES_CHECKED}, "scenarios": scenarios,
                               "record_bytes": sizes, "record_bytes_mean": record, "sweeps": sweeps, "idle": {}}
    bench = "2 cost per job"
    rows = []
    for name, found in scenarios.items():
        dollars = found["transitions"] * PRICES["sfn_per_transition"]
        key = "cost.happy_transitions" if name == "happy path" else ""
        rows.append(Row(bench, f"transitions, {name}", f"{found['transitions']} (${dollars * 1000:.3f}/1k jobs)",
                        key=key, value=found["transitions"] if key else None))
    finished = sweeps["finished"]
    asleep = all(s["schedule_after"] == "DISABLED" for s in sweeps.values())
    runs = 0 if asleep else SWEEPS_PER_MONTH
    for n in (1_000, 100_000):
        poller = poller_month(n, record)
        idle = sweeper_month(finished["total_calls"], finished["read_units"], runs)
        calls = _linear(sweeps["waiting_100"], sweeps["waiting_300"], "total_calls", n)
        waiting = sweeper_month(calls, _linear(sweeps["waiting_100"], sweeps["waiting_300"], "read_units", n), runs)
        figures["idle"][n] = {"poller": poller, "ours_finished": idle, "ours_waiting": waiting,
                              "sweeper_calls_waiting": calls}
        short = {1_000: "1k", 100_000: "100k"}[n]
        for what, ours, key in ((f"{n:,} finished jobs", idle, f"cost.idle_finished_{short}"),
                                (f"{n:,} jobs waiting", waiting, f"cost.idle_waiting_{short}")):
            cut = "" if ours["share_of_jobs_checked"] == 1 else \
                f", times out: checks {ours['share_of_jobs_checked']:.0%}"
            note = f"sweeper off after one run, ${ours['dollars_per_run']:.7f}" if asleep else f"sweeper{cut}"
            rows.append(Row(bench, f"idle $/month, {what}", f"${ours['dollars']:.4f} ({note})",
                            f"${poller['dollars']:.2f} (1-min scan)", ratio(ours["dollars"], poller["dollars"]),
                            key=key, value=ours["dollars"]))
    rows.append(Row(bench, "  sweeper's AWS calls in that run: 100 finished / 300 waiting jobs",
                    f"{finished['total_calls']} / {sweeps['waiting_300']['total_calls']}"))
    return figures, rows


def main() -> None:
    """Command line: print the rows, write the JSON."""
    args = cli(__doc__.splitlines()[0], {})
    figures, rows = run()
    report("2 cost per job", figures, rows, args.json)


if __name__ == "__main__":
    main()
