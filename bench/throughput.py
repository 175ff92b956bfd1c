"""Throughput and memory: hello-world jobs through their whole life on the local stack.

Jobs are posted as fast as the API takes them while at most ``--inflight``
are unfinished (a running execution), for at most ``--window`` seconds or
``--jobs`` jobs, whichever comes first; then the stack gets ``--drain``
seconds to finish them. Every instance boots the real bootstrap in the
instance emulator. Throughput is finished jobs over the whole run (ramp-up
and drain included). Memory is the stack's process tree (the stack and
every instance process), sampled every 0.25 s: the sum of each process's
PSS (its resident memory, shared pages split among their sharers, so a page
is counted once), beside the stack process's own peak RSS.

When the window ends before ``--jobs``, the figures for ``--jobs`` are
extrapolated, and the table says so: time from the measured rate; memory
from the stack process's growth per finished job (a straight line fitted to
the samples) plus the instance processes at the measured peak concurrency.

At the end nothing may be lost: every job terminal, no execution running, no
instance pending or running.

Run: ``.venv/bin/python -m bench.throughput [--jobs 1000] [--window 120] [--json PATH]``
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import requests

from bench.common import (
    HELLO,
    TERMINAL,
    MemorySampler,
    Row,
    Stack,
    cli,
    entered,
    history,
    local_stack,
    report,
)

MIB = 1024 * 1024
SAMPLED_HISTORIES = 40


def _running(sfn: Any, machine: str) -> int:
    count = 0
    kwargs: dict[str, Any] = {}
    for _ in range(100):
        page = sfn.list_executions(stateMachineArn=machine, statusFilter="RUNNING", maxResults=1000, **kwargs)
        count += len(page["executions"])
        if not page.get("nextToken"):
            break
        kwargs = {"nextToken": page["nextToken"]}
    return count


def _statuses(stack: Stack, job_ids: list[str]) -> dict[str, int]:
    ddb, wanted, found = stack.client("dynamodb"), set(job_ids), {}
    kwargs: dict[str, Any] = {}
    for _ in range(1000):
        page = ddb.scan(TableName="Jobs", ProjectionExpression="jobId, #s", ExpressionAttributeNames={"#s": "status"},
                        **kwargs)
        found.update({i["jobId"]["S"]: i["status"]["S"] for i in page["Items"] if i["jobId"]["S"] in wanted})
        if "LastEvaluatedKey" not in page:
            break
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    counts: dict[str, int] = {}
    for job_id in job_ids:
        status = found.get(job_id, "missing")
        counts[status] = counts.get(status, 0) + 1
    return counts


def _fit(samples: list[tuple[float, float]]) -> tuple[float, float]:
    """Least-squares line y = a + b x through (x, y) samples."""
    n = len(samples)
    mean_x = sum(x for x, _ in samples) / n
    mean_y = sum(y for _, y in samples) / n
    spread = sum((x - mean_x) ** 2 for x, _ in samples)
    slope = sum((x - mean_x) * (y - mean_y) for x, y in samples) / spread if spread else 0.0
    return mean_y - slope * mean_x, slope


def measure(jobs: int, window: int, inflight: int, drain: int) -> dict[str, Any]:
    """Run the load on a fresh stack; raw counts, times and memory."""
    with local_stack() as stack:
        sfn = stack.client("stepfunctions")
        with MemorySampler(stack.process.pid) as memory:
            started = time.monotonic()
            first = stack.schedule(HELLO)
            machine = first["executionArn"].rsplit(":", 1)[0].replace(":execution:", ":stateMachine:")
            submitted, progress = [first["jobId"]], []  # progress: (seconds, finished, stack PSS)
            cpu_before = stack.cpu_seconds()
            while len(submitted) < jobs and time.monotonic() - started < window:
                running = _running(sfn, machine)
                progress.append((time.monotonic() - started, len(submitted) - running, memory.samples[-1][2]
                                 if memory.samples else 0))
                for _ in range(max(0, inflight - running)):
                    if len(submitted) >= jobs or time.monotonic() - started >= window:
                        break
                    response = requests.post(f"{stack.api}/jobs", json=HELLO, timeout=60)
                    if response.status_code != 201:
                        raise RuntimeError(f"POST /jobs answered {response.status_code}: {response.text}")
                    submitted.append(response.json()["jobId"])
                time.sleep(0.5)
            posting_ended = time.monotonic() - started
            deadline = time.monotonic() + drain
            while (running := _running(sfn, machine)) and time.monotonic() < deadline:
                progress.append((time.monotonic() - started, len(submitted) - running, memory.samples[-1][2]))
                time.sleep(0.5)
            elapsed = time.monotonic() - started
            progress.append((elapsed, len(submitted) - running, memory.samples[-1][2]))
            stack_cpu = stack.cpu_seconds() - cpu_before
        statuses = _statuses(stack, submitted)
        live = stack.live_instances()
        with ThreadPoolExecutor(4) as pool:
            counts = list(pool.map(lambda job_id: len(entered(history(sfn, _arn(machine, job_id)))),
                                   submitted[:SAMPLED_HISTORIES]))
        peak_root_hwm = _high_water_mark(stack.process.pid)
    return {"orphans_after_stop": stack.orphans, "submitted": len(submitted), "posting_seconds": posting_ended,
            "elapsed": elapsed,
            "still_running": running, "statuses": statuses, "live_instances": len(live),
            "transitions_sampled": counts, "peak_tree": memory.peak, "peak_root_at_peak": memory.peak_root,
            "peak_stack_rss": memory.peak_root_rss,
            "peak_processes": memory.peak_processes, "stack_high_water_mark": peak_root_hwm,
            "stack_cpu_seconds": stack_cpu, "progress": progress}


def _arn(machine: str, job_id: str) -> str:
    return machine.replace(":stateMachine:", ":execution:", 1) + ":" + job_id


def _high_water_mark(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as status:
            line = next(line for line in status if line.startswith("VmHWM:"))
        return int(line.split()[1]) * 1024
    except (OSError, StopIteration):
        return 0


def run(jobs: int, window: int, inflight: int, drain: int) -> tuple[dict[str, Any], list[Row]]:
    """Measure, extrapolate where needed, lay out the rows."""
    raw = measure(jobs, window, inflight, drain)
    done = sum(n for status, n in raw["statuses"].items() if status in TERMINAL)
    rate = done / raw["elapsed"] * 60
    lost = raw["submitted"] - done + raw["still_running"] + raw["live_instances"]
    # The stack's growth per job, fitted after the first third of the run (start-up caches fill first).
    steady = [(finished, pss) for _, finished, pss in raw["progress"] if pss and finished >= max(5, done / 3)]
    base, per_job = _fit(steady) if len(steady) > 2 else (raw["peak_root_at_peak"], 0.0)
    instances_at_peak = raw["peak_tree"] - raw["peak_root_at_peak"]
    measured_all = raw["submitted"] >= jobs
    projected_peak = raw["peak_tree"] if measured_all else max(raw["peak_tree"], base + per_job * jobs
                                                               + instances_at_peak)
    sampled = raw["transitions_sampled"]
    figures = {**raw, "finished": done, "jobs_per_minute": rate, "lost": lost,
               "stack_pss_base": base, "stack_pss_per_finished_job": per_job,
               "instance_processes_pss_at_peak": instances_at_peak, "projected_peak_for_jobs": projected_peak,
               "extrapolated": not measured_all, "target_jobs": jobs,
               "cpu_seconds_per_job_in_stack": raw["stack_cpu_seconds"] / max(1, done)}
    bench = "6 throughput, memory"
    label = f"{jobs:,} jobs" + ("" if measured_all else f" (extrapolated from {done})")
    rows = [
        Row(bench, f"finished jobs in {raw['elapsed']:.0f} s", f"{done} of {raw['submitted']}, "
            f"{raw['peak_processes']} processes at peak"),
        Row(bench, "jobs per minute (whole run)", f"{rate:.0f}", key="throughput.jobs_per_minute", value=rate),
        Row(bench, f"time for {label}", f"{jobs / rate:.1f} min" if rate else "n/a"),
        Row(bench, "lost: not terminal, still running, live instances", str(lost), key="throughput.lost", value=lost),
        Row(bench, "instance processes left running after the stack stopped", str(raw["orphans_after_stop"]),
            key="throughput.orphans", value=raw["orphans_after_stop"]),
        Row(bench, f"peak memory of the stack's process tree ({done} jobs, {inflight} in flight)",
            f"{raw['peak_tree'] / MIB:.0f} MiB",
            f"stack, emulator and job events {raw['peak_root_at_peak'] / MIB:.0f} MiB + instances "
            f"{instances_at_peak / MIB:.0f} MiB; stack's peak RSS {raw['peak_stack_rss'] / MIB:.0f} MiB"),
        Row(bench, f"peak memory, {label}", f"{projected_peak / MIB:.0f} MiB",
            f"stack grows {per_job / 1024:.0f} KiB per finished job", key="throughput.peak_mib",
            value=projected_peak / MIB),
        Row(bench, f"transitions per job on the local stack (first {len(sampled)})",
            f"mean {sum(sampled) / len(sampled):.1f}, max {max(sampled)}" if sampled else "n/a"),
    ]
    return figures, rows


def main() -> None:
    """Command line: print the rows, write the JSON."""
    args = cli(__doc__.splitlines()[0], {"jobs": 1000, "window": 120, "inflight": 16, "drain": 60})
    figures, rows = run(args.jobs, args.window, args.inflight, args.drain)
    report("6 throughput, memory", figures, rows, args.json)


if __name__ == "__main__":
    main()
