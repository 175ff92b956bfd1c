"""Start precision: jobs due in the same second, how late their capacity request starts.

On the local stack, ``--jobs`` hello-world jobs are scheduled through the API
for one second T; lateness is the time the execution entered
``RequestCapacity`` (from its history) minus T. The history also splits it:
the timer (``WaitUntilScheduled`` exited minus T) and our own steps
(``RequestCapacity`` entered minus the timer firing: ``MarkRequested``).

moto's timer truncates the remaining wait to whole seconds, so it wakes up
to a second *early*; AWS truncates the timestamp, not the wait. The figure
judged against the target is therefore the conservative one: our steps'
delay after a timer that fired no earlier than T. Before the burst, five jobs
due together on the otherwise idle stack show the same delay without the
contention of 200 executions sharing one emulator process.

Beside it, the original design's one-minute poller on the same due times:
a tick every 60 s at a phase drawn uniformly at random (``--trials`` draws,
fixed seed), each job starting at the first tick at or after its due time,
with no time at all for the poller's own work (in its favour).

Run: ``.venv/bin/python -m bench.precision [--jobs 200] [--json PATH]``
"""

from __future__ import annotations

import math
import random
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import requests

from bench.common import HELLO, Row, Stack, cli, local_stack, parse_time, quantile, ratio, report

POLL_PERIOD = 60.0
SEED = 8
QUIET_JOBS, WARM_UP_JOBS = 5, 10
# Seconds per POST /jobs allowed when choosing T for the quiet jobs, plus a margin.
POST_BUDGET, MARGIN = 0.5, 4.0
# The burst's due time allows each POST this much more than the warm-up's took.
POST_SLOWDOWN = 1.25
# 200 booting instances take the stack a minute to stop by itself: after this long they are killed.
STOP_GRACE = 10
CHECK_SECONDS = 2.0  # how often the burst's progress is checked


def poller_lateness(due: list[float], trials: int, seed: int = SEED) -> list[float]:
    """Lateness of each due time under a one-minute poll at ``trials`` random phases."""
    rng = random.Random(seed)
    late = []
    for _ in range(trials):
        phase = rng.uniform(0, POLL_PERIOD)
        late += [(phase - d) % POLL_PERIOD for d in due]
    return late


def _schedule_all(stack: Stack, count: int, due: str) -> tuple[list[dict[str, Any]], float]:
    def post(_: int) -> dict[str, Any]:
        response = requests.post(f"{stack.api}/jobs", json={**HELLO, "scheduledAt": due}, timeout=60)
        if response.status_code != 201:
            raise RuntimeError(f"POST /jobs answered {response.status_code}: {response.text}")
        return dict(response.json())

    started = time.monotonic()
    with ThreadPoolExecutor(2) as pool:
        jobs = list(pool.map(post, range(count)))
    return jobs, time.monotonic() - started


def _all_requested(stack: Stack, job_ids: set[str], deadline: float) -> bool:
    ddb = stack.client("dynamodb")

    def waiting() -> int:
        count = 0
        kwargs: dict[str, Any] = {}
        for _ in range(100):
            page = ddb.scan(TableName="Jobs", ProjectionExpression="jobId, #s",
                            ExpressionAttributeNames={"#s": "status"}, **kwargs)
            count += sum(1 for i in page["Items"] if i["status"]["S"] == "Scheduled" and i["jobId"]["S"] in job_ids)
            if "LastEvaluatedKey" not in page:
                break
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        return count

    while time.monotonic() < deadline:
        if waiting() == 0:
            return True
        time.sleep(CHECK_SECONDS)
    return False


def _timeline(sfn: Any, execution_arn: str) -> dict[str, float]:
    # The first dozen events reach RequestCapacity; asking for no more keeps the emulator light.
    events = sfn.get_execution_history(executionArn=execution_arn, maxResults=15)["events"]
    found: dict[str, float] = {}
    for event in events:
        name = event.get("stateEnteredEventDetails", {}).get("name")
        if event["type"] == "WaitStateExited":
            found.setdefault("woke", parse_time(event["timestamp"]))
        elif name == "RequestCapacity":
            found.setdefault("requested", parse_time(event["timestamp"]))
    return found


def burst(stack: Stack, jobs: int, seconds_per_post: float) -> dict[str, Any]:
    """``jobs`` jobs due in one second, chosen so that posting them all ends before it; their timelines."""
    lead = math.ceil(jobs * seconds_per_post + MARGIN)
    due_at = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=lead)
    due = due_at.strftime("%Y-%m-%dT%H:%M:%SZ")
    created, posting = _schedule_all(stack, jobs, due)
    on_time = [j for j in created if j["scheduledAt"] == due]
    slack = due_at.timestamp() - time.time()
    # Scanning the table is work for the emulator: none before the burst, little during it.
    time.sleep(max(0.0, slack + CHECK_SECONDS))
    if not _all_requested(stack, {j["jobId"] for j in on_time}, time.monotonic() + max(0.0, slack) + 120):
        raise RuntimeError("some jobs never left Scheduled within two minutes of their time")
    processing = time.time() - due_at.timestamp()
    sfn = stack.client("stepfunctions", pool=4)
    with ThreadPoolExecutor(4) as pool:
        timelines = list(pool.map(lambda j: _timeline(sfn, j["executionArn"]), on_time))
    return {"due": due, "due_epoch": due_at.timestamp(), "created": len(created), "on_time": len(on_time),
            "posting_seconds": posting, "slack_seconds": slack, "all_requested_after": processing,
            "timelines": timelines}


def measure(jobs: int) -> dict[str, Any]:
    """A few jobs on a quiet stack first, then the burst; the raw per-job timings."""
    phases: dict[str, float] = {}
    began = time.monotonic()
    with local_stack(stop_grace=STOP_GRACE) as stack:
        phases["start"] = time.monotonic() - began
        quiet = burst(stack, QUIET_JOBS, POST_BUDGET)
        stack.wait_quiet(timeout=15)  # the quiet jobs' instances come and go first
        # How fast a warm stack takes jobs (these are due tomorrow: their executions just wait).
        tomorrow = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
        per_post = _schedule_all(stack, WARM_UP_JOBS, tomorrow)[1] / WARM_UP_JOBS
        loud = burst(stack, jobs, per_post * POST_SLOWDOWN)
        phases["measure"] = time.monotonic() - began - phases["start"]
        stopping = time.monotonic()
    phases["stop"] = time.monotonic() - stopping
    phases["instance_processes_killed_after_stop"] = stack.orphans
    return {"quiet": quiet, "burst": loud, "phases": phases, "warm_seconds_per_post": per_post}


def analyse(burst_: dict[str, Any]) -> dict[str, Any]:
    """Lateness and its parts for one burst."""
    due = burst_["due_epoch"]
    complete = [t for t in burst_["timelines"] if "requested" in t and "woke" in t]
    # Had the timer fired at T rather than early, our steps would have started then.
    judged = [max(0.0, t["woke"] - due) + (t["requested"] - t["woke"]) for t in complete]
    return {"measured": len(complete), "lateness": _stats([t["requested"] - due for t in complete]),
            "timer_error": _stats([t["woke"] - due for t in complete]),
            "our_steps": _stats([t["requested"] - t["woke"] for t in complete]), "judged": _stats(judged),
            **{k: v for k, v in burst_.items() if k != "timelines"}}


def run(jobs: int, trials: int) -> tuple[dict[str, Any], list[Row]]:
    """Measure ours, simulate the poller on the same due times, lay out the rows."""
    raw = measure(jobs)
    loud, quiet = analyse(raw["burst"]), analyse(raw["quiet"])
    poller = _stats(poller_lateness([raw["burst"]["due_epoch"]] * max(1, loud["measured"]), trials))
    figures = {"jobs": jobs, "burst": loud, "quiet": quiet, "poller": poller, "poller_trials": trials,
               "phases": raw["phases"], "warm_seconds_per_post": raw["warm_seconds_per_post"]}
    bench = "1 start precision"
    late, timer, steps, judged = loud["lateness"], loud["timer_error"], loud["our_steps"], loud["judged"]
    rows = [Row(bench, "jobs due in the same second, created before it", f"{loud['on_time']} of {jobs}",
                met=loud["on_time"] == jobs == loud["measured"])]
    for q in ("p50", "p99", "max"):
        rows.append(Row(bench, f"lateness {q} (RequestCapacity entered - scheduledAt)", f"{late[q]:.2f} s",
                        f"{poller[q]:.1f} s (1-min poll)", ratio(late[q], poller[q])))
    rows += [
        Row(bench, "  moto's timer: woke - scheduledAt, p50 / min",
            f"{timer['p50']:+.2f} / {timer['min']:+.2f} s"),
        Row(bench, "  our steps: RequestCapacity - woke, p50 / p99", f"{steps['p50']:.2f} / {steps['p99']:.2f} s"),
        Row(bench, "lateness p99 had the timer never fired early", f"{judged['p99']:.2f} s",
            f"{poller['p99']:.1f} s (1-min poll)", ratio(judged["p99"], poller["p99"]),
            key="precision.burst_p99", value=judged["p99"]),
        Row(bench, f"lateness max, {quiet['measured']} jobs due on a quiet stack (same rule)",
            f"{quiet['judged']['max']:.2f} s", f"{poller['max']:.1f} s (1-min poll)",
            ratio(quiet["judged"]["max"], poller["max"]), key="precision.quiet_max", value=quiet["judged"]["max"]),
    ]
    return figures, rows


def _stats(values: list[float]) -> dict[str, float]:
    if not values:
        return {"p50": float("nan"), "p99": float("nan"), "max": float("nan"), "min": float("nan"), "n": 0}
    return {"p50": quantile(values, 0.5), "p99": quantile(values, 0.99), "max": max(values), "min": min(values),
            "n": len(values)}


def main() -> None:
    """Command line: print the rows, write the JSON."""
    args = cli(__doc__.splitlines()[0], {"jobs": 200, "trials": 2000})
    figures, rows = run(args.jobs, args.trials)
    report("1 start precision", figures, rows, args.json)


if __name__ == "__main__":
    main()
