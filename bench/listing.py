"""List flatness: ``GET /jobs?status=...&limit=50`` with 100 jobs in the table, then with 10,000.

The table of a local stack is seeded directly with BatchWriteItem: copies of
a job record the API wrote, finished (90% TerminatedOK, 10% TerminatedNOK,
so the sweeper leaves them alone), each with its own id and time. One
attribute differs from a real record: ``kind``, which is not ``job``, so
the local stack's stream consumer skips the seeded rows; publishing 10,000
seeded "status changes" would keep the emulator busy for many minutes (see
the README). ``kind`` only keys the unfiltered list's index; the
status list under test reads the ``byStatus`` index, which holds every row.

Beside the API's latency, the same Query made directly against the emulator
shows how much of any growth is the emulator's own (moto evaluates a Query
over the whole table; DynamoDB reads only the page), and ``ScannedCount``
shows what DynamoDB would read (and bill) per request. The API's own work
(routing, decoding 50 items, the response) is timed in process, against
moto in the same process with the same rows, with the time spent inside
DynamoDB calls taken out.

Run: ``.venv/bin/python -m bench.listing [--small 100] [--large 10000] [--json PATH]``
"""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import requests

from bench.common import HELLO, Row, Stack, cli, local_stack, median, ratio, report

STATUS = "TerminatedOK"
SEED_KIND = "bench-seed"
REPEATS = 9
SEEDERS = 3


def _template(stack: Stack) -> dict[str, Any]:
    later = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    job = stack.schedule({**HELLO, "scheduledAt": later})
    item = stack.client("dynamodb").get_item(TableName="Jobs", Key={"jobId": {"S": job["jobId"]}})["Item"]
    return dict(item)


def _finished(template: dict[str, Any], number: int) -> dict[str, Any]:
    """A finished job like ``template``, scheduled ``number`` minutes into 2026."""
    job_id = str(uuid.uuid4())
    moment = (datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=number)).strftime("%Y-%m-%dT%H:%M:%SZ")
    status = "TerminatedNOK" if number % 10 == 9 else STATUS
    attempt = {"instanceId": {"S": "i-0123456789abcdef0"}, "instanceType": {"S": "m7i.large"},
               "lifecycle": {"S": "spot"}, "availabilityZone": {"S": "us-east-1a"},
               "launchedAt": {"S": moment}, "endedAt": {"S": moment}, "outcome": {"S": status}}
    return {**template, "jobId": {"S": job_id}, "kind": {"S": SEED_KIND}, "status": {"S": status},
            "sortKey": {"S": f"{moment}#{job_id}"}, "scheduledAt": {"S": moment}, "createdAt": {"S": moment},
            "updatedAt": {"S": moment}, "endedAt": {"S": moment}, "exitCode": {"N": "0" if status == STATUS else "1"},
            "statusReason": {"S": "the container exited"}, "attempts": {"L": [{"M": attempt}]},
            "executionArn": {"S": template["sortKey"]["S"]}}


def _seed(ddb: Any, template: dict[str, Any], start: int, stop: int) -> None:
    """Rows ``start`` to ``stop`` - 1, 25 to a BatchWriteItem, a few calls at a time."""

    def write(first: int) -> None:
        requests_ = [{"PutRequest": {"Item": _finished(template, n)}} for n in range(first, min(first + 25, stop))]
        pending: dict[str, Any] = {"Jobs": requests_}
        for _ in range(10):  # unprocessed items are retried, a bounded number of times
            pending = ddb.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}
            if not pending:
                return
        raise RuntimeError("BatchWriteItem left items unprocessed ten times")

    with ThreadPoolExecutor(SEEDERS) as pool:
        list(pool.map(write, range(start, stop, 25)))


def _latencies(stack: Stack) -> dict[str, Any]:
    ddb = stack.client("dynamodb")
    url = f"{stack.api}/jobs?status={STATUS}&limit=50"
    api, direct, returned, scanned = [], [], 0, 0
    for _ in range(REPEATS):
        began = time.perf_counter()
        response = requests.get(url, timeout=60)
        api.append(time.perf_counter() - began)
        response.raise_for_status()
        returned = len(response.json()["jobs"])
        began = time.perf_counter()
        page = ddb.query(TableName="Jobs", IndexName="byStatus", KeyConditionExpression="#p = :p",
                         ExpressionAttributeNames={"#p": "status"}, ExpressionAttributeValues={":p": {"S": STATUS}},
                         ScanIndexForward=False, Limit=50)
        direct.append(time.perf_counter() - began)
        scanned = page["ScannedCount"]
    # Paired: each API request against the Query made right after it, so load drifts cancel out.
    own = median(a - d for a, d in zip(api, direct, strict=True))
    return {"api_p50": median(api), "direct_p50": median(direct), "api_minus_query_paired_p50": own,
            "returned": returned, "scanned": scanned, "api": api, "direct": direct}


def measure(small: int, large: int) -> dict[str, Any]:
    """Seed, measure at ``small`` rows, seed up to ``large``, measure again."""
    with local_stack() as stack:
        template = _template(stack)
        ddb = stack.client("dynamodb")
        _seed(ddb, template, 0, small - 1)  # the template job is the one more
        quiet_small = stack.wait_quiet()
        at_small = _latencies(stack)
        began = time.monotonic()
        _seed(ddb, template, small - 1, large - 1)
        seeding = time.monotonic() - began
        quiet_large = stack.wait_quiet(timeout=90)
        at_large = _latencies(stack)
        rows = stack.client("dynamodb").describe_table(TableName="Jobs")["Table"].get("ItemCount")
    return {"small": {"rows": small, **at_small, "quiet": quiet_small},
            "large": {"rows": large, **at_large, "quiet": quiet_large}, "seed_seconds": seeding,
            "item_count_reported": rows}


def api_own_time(small: int, large: int) -> dict[str, Any]:
    """Median time of the API's list route in process, minus its DynamoDB calls, at both sizes."""
    import boto3

    from bench.emulated import emulated

    found: dict[str, Any] = {}
    with emulated() as e:
        later = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
        job = e.schedule({**HELLO, "scheduledAt": later})
        ddb = boto3.client("dynamodb")
        template = ddb.get_item(TableName="Jobs", Key={"jobId": {"S": job["jobId"]}})["Item"]
        runtime_ddb = e.module("chalicelib.aws").dynamodb()
        spent: list[float] = []
        runtime_ddb.meta.events.register("before-call.dynamodb.*", lambda **kw: spent.append(-time.perf_counter()))
        runtime_ddb.meta.events.register("after-call.dynamodb.*", lambda **kw: spent.append(time.perf_counter()))
        for label, (start, stop) in (("small", (0, small - 1)), ("large", (small - 1, large - 1))):
            _seed(ddb, template, start, stop)
            own = []
            for _ in range(REPEATS):
                spent.clear()
                began = time.perf_counter()
                response = e.client.http.get(f"/jobs?status={STATUS}&limit=50")
                total = time.perf_counter() - began
                if response.status_code != 200:
                    raise RuntimeError(f"GET /jobs answered {response.status_code}")
                own.append(total - sum(spent))
            found[label] = median(own)
    return found


def run(small: int, large: int) -> tuple[dict[str, Any], list[Row]]:
    """Measure and lay out the rows."""
    raw = measure(small, large)
    raw["api_own_in_process"] = own = api_own_time(small, large)
    s, big = raw["small"], raw["large"]
    own_small, own_large = own["small"], own["large"]
    bench = "4 list flatness"
    rows = [
        Row(bench, f"GET /jobs?status=&limit=50 p50, {large:,} vs {small} jobs",
            f"{big['api_p50'] * 1000:.0f} ms", f"{s['api_p50'] * 1000:.0f} ms", ratio(big["api_p50"], s["api_p50"]),
            key="listing.ratio", value=big["api_p50"] / s["api_p50"]),
        Row(bench, "  the same Query straight to the emulator", f"{big['direct_p50'] * 1000:.0f} ms",
            f"{s['direct_p50'] * 1000:.0f} ms", ratio(big["direct_p50"], s["direct_p50"])),
        Row(bench, "  the API's own work, in process, DynamoDB calls taken out", f"{own_large * 1000:.1f} ms",
            f"{own_small * 1000:.1f} ms", ratio(own_large, own_small)),
        Row(bench, "  items read per request (ScannedCount)", str(big["scanned"]), str(s["scanned"]),
            ratio(big["scanned"], s["scanned"])),
    ]
    figures = {**raw, "ratio": big["api_p50"] / s["api_p50"], "own_ratio": own_large / own_small}
    return figures, rows


def main() -> None:
    """Command line: print the rows, write the JSON."""
    args = cli(__doc__.splitlines()[0], {"small": 100, "large": 10_000})
    figures, rows = run(args.small, args.large)
    report("4 list flatness", figures, rows, args.json)


if __name__ == "__main__":
    main()
