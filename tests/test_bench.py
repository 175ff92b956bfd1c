"""The benchmarks' arithmetic, and a smoke run of every script on tiny sizes (no timing is asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench import common, cost, precision

REPO = Path(__file__).resolve().parent.parent


def test_quantile_interpolates_between_ranks():
    """p50 of 1..4 is 2.5, p0 and p100 are the ends."""
    assert common.quantile([4, 1, 3, 2], 0.5) == 2.5
    assert (common.quantile([1, 2, 3], 0), common.quantile([1, 2, 3], 1)) == (1, 3)


def test_poller_lateness_is_the_wait_for_the_next_tick():
    """A one-minute poll at random phases: never negative, never a minute, half a minute in the middle."""
    late = precision.poller_lateness([1_800_000_000.0] * 10, trials=500)
    assert len(late) == 5000 and all(0 <= x < 60 for x in late)
    assert 25 < common.quantile(late, 0.5) < 35


def test_item_size_follows_dynamodb_rules():
    """Names plus values: strings by UTF-8 bytes, numbers by digits, lists and maps with their overhead."""
    item = {"id": {"S": "abc"}, "n": {"N": "12345"}, "ok": {"BOOL": True},
            "l": {"L": [{"S": "x"}]}, "m": {"M": {"k": {"S": "vv"}}}}
    assert cost.item_size(item) == (2 + 3) + (1 + 4) + (2 + 1) + (1 + 3 + 1 + 1) + (1 + 3 + 1 + 1 + 2)


def test_read_units_round_up_to_4_kb_halved():
    """An eventually consistent read: half a unit per 4 KB started, half a unit at least."""
    assert cost.read_units(0) == 0.5
    assert cost.read_units(4096) == 0.5
    assert cost.read_units(4097) == 1.0


def test_poller_cost_grows_with_the_table_and_sweeper_stops_at_its_timeout():
    """Scanning 100x the rows costs about 100x; a sweeper run longer than the timeout reads only its share."""
    small, large = cost.poller_month(1_000, 1000)["dynamodb"], cost.poller_month(100_000, 1000)["dynamodb"]
    assert 90 < large / small < 110
    assert cost.sweeper_month(calls=1_000_000, rru=100)["share_of_jobs_checked"] < 0.01
    # A sweeper whose schedule is off costs nothing a month, only its last run.
    off, on = cost.sweeper_month(calls=10, rru=3, runs=0), cost.sweeper_month(calls=10, rru=3)
    assert off["dollars"] == 0 < off["dollars_per_run"] < on["dollars"]


def test_transitions_count_entered_states_and_retries():
    """Each StateEntered is a transition, and so is each retry of a task."""
    events = [{"type": "WaitStateEntered", "stateEnteredEventDetails": {"name": "Wait"}},
              {"type": "TaskStateEntered", "stateEnteredEventDetails": {"name": "Task"}},
              {"type": "TaskScheduled"}, {"type": "TaskFailed"}, {"type": "TaskScheduled"}]
    assert cost.transitions(events)["transitions"] == 3


@pytest.mark.slow
def test_every_benchmark_runs_on_tiny_sizes(tmp_path):
    """`bench.run --quick` runs each script end to end and writes one JSON with rows for each."""
    out = tmp_path / "quick.json"
    done = subprocess.run([sys.executable, "-m", "bench.run", "--quick", "--budget", "400", "--out", str(out)],
                          cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    results = json.loads(out.read_text())["benchmarks"]
    assert [r.get("name", "") for r in results] == [
        "5 Lambda weight", "2 cost per job", "1 start precision", "3 API overhead", "4 list flatness",
        "6 throughput, memory"]
    failed = [r for r in results if "error" in r]
    assert failed == [], failed
