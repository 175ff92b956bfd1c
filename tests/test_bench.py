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
    assert "UserWarning" not in done.stdout + done.stderr  # figures, not chalice's local-mode notice


@pytest.mark.parametrize(("compare", "goal", "value", "met"), [
    ("<", 1.3, 1.29, True), ("<", 1.3, 1.3, False), ("<", 1.3, 1.31, False),
    ("<=", 1.5, 1.5, True), ("<=", 1.5, 1.5000001, False), ("<=", 1.0, 0.0, True),
    ("==", 0, 0, True), ("==", 0, 0.0001, False), ("==", 0, -0.0, True),
    (">=", 150, 150, True), (">=", 150, 149.99, False), (">", 0, 0, False),
    ("<=", 1.0, float("nan"), False), ("<", 700, float("inf"), False),
])
def test_a_target_is_met_exactly_at_its_edge(compare, goal, value, met):
    """Each comparison judges the edge value as written: "<" excludes it, "<=" includes it; NaN never meets."""
    from bench.targets import Target

    assert Target("b.f", "figure", compare, goal, "s").met(value) is met


def test_every_judged_row_takes_its_target_and_verdict_from_the_file():
    """A row with a key gets the file's target text and its verdict; no value at all is missed."""
    from bench.targets import load

    assert load()["listing.ratio"].text == "<= 1.5"
    assert load()["throughput.peak_mib"].text == "< 700 MiB"
    assert common.Row("4", "list", "x", key="listing.ratio", value=1.5).met is True
    assert common.Row("4", "list", "x", key="listing.ratio", value=1.51).met is False
    assert common.Row("4", "list", "x", key="listing.ratio").met is False
    with pytest.raises(KeyError, match="nope.nope is not in targets.toml"):
        common.Row("4", "list", "x", key="nope.nope", value=1)


def test_verdicts_name_every_target_met_missed_or_not_measured():
    """A whole run's verdicts: one per target, a target no row reported is "not measured"."""
    from bench.targets import parse, verdicts

    targets = parse({"a": {"x": {"compare": "<", "target": 1, "unit": "s"},
                           "y": {"compare": ">=", "target": 2, "unit": "jobs"},
                           "z": {"compare": "==", "target": 0, "unit": ""}}})
    rows = [{"key": "a.x", "value": 0.5}, {"key": "a.y", "value": 1}, {"metric": "no key"}]
    assert {v["key"]: v["verdict"] for v in verdicts(rows, targets)} == {
        "a.x": "met", "a.y": "missed", "a.z": "not measured"}


@pytest.mark.parametrize("spec", [{"compare": "~", "target": 1}, {"compare": "<", "target": "1"},
                                  {"compare": "<", "target": True}, {"compare": "<", "target": 1, "extra": 2}])
def test_a_malformed_target_is_refused(spec):
    """An unknown comparison, a target that is not a number, or an unknown field is a ValueError naming the key."""
    from bench.targets import parse

    with pytest.raises(ValueError, match="a.x"):
        parse({"a": {"x": spec}})


def test_every_target_in_the_file_is_reported_by_a_benchmark():
    """Each key in targets.toml appears in a benchmark's source, so none stays "not measured" by a typo."""
    from bench.targets import load

    sources = "".join(path.read_text() for path in (REPO / "bench").glob("*.py"))
    missing = [key for key in load() if f'"{key}"' not in sources and key.rsplit("_", 1)[0] not in sources]
    assert missing == []
