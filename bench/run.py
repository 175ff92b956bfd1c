"""Run every benchmark, print one table, write ``bench/results/latest.json``.

Each benchmark runs in its own interpreter (``python -m bench.<name>``), one
after the other, so none inherits another's emulator, environment or load.
The whole run keeps to ``--budget`` seconds (default 570, under ten
minutes): the throughput benchmark goes last and gets whatever time is left.
``--quick`` runs tiny sizes (a smoke test of the scripts, not a measurement).

Run: ``make bench``, or ``.venv/bin/python -m bench.run [--quick] [--budget 570]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from bench.common import REPO, cpu_busy, kill_tree, load_average
from bench.targets import verdicts

RESULTS = REPO / "bench" / "results"
# (module, full-size arguments, quick arguments); throughput is sized by the time left.
BENCHES: list[tuple[str, list[str], list[str]]] = [
    ("weight", ["--imports", "7"], ["--imports", "2"]),
    ("cost", [], []),
    ("precision", ["--jobs", "200"], ["--jobs", "5", "--trials", "50"]),
    ("api_overhead", ["--jobs", "1000", "--seconds", "90"], ["--jobs", "10"]),
    ("listing", ["--small", "100", "--large", "10000"], ["--small", "60", "--large", "120"]),
]
THROUGHPUT_INFLIGHT = 32  # two cores are busy from about 24 unfinished hello-world jobs
THROUGHPUT_RESERVE = 75  # drain, checks and stopping the stack, after the posting window
MIN_WINDOW = 30
STOP_GRACE = 30  # a benchmark stopped at its timeout gets this long to stop its stack


def run_one(name: str, args: list[str], timeout: float, directory: Path) -> dict[str, Any]:
    """One benchmark in a fresh interpreter; its JSON (kept in ``directory``), or an error row."""
    out = directory / f"{name}.json"
    out.unlink(missing_ok=True)
    before, load, started = cpu_busy(), load_average(), time.monotonic()
    process = subprocess.Popen([sys.executable, "-m", f"bench.{name}", *args, "--json", str(out)], cwd=REPO,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        output, _ = process.communicate(timeout=timeout)
        failure = None if process.returncode == 0 and out.exists() else output[-3000:]
    except subprocess.TimeoutExpired:
        # SIGTERM lets the benchmark stop its local stack; whatever is left after that is killed.
        kill_tree(process.pid, grace=STOP_GRACE)
        process.communicate()
        failure = f"timed out after {timeout:.0f} s"
    seconds = time.monotonic() - started
    meta = {"seconds": round(seconds, 1), "busy_before": round(before, 3), "load_before": load, "args": args}
    if failure:
        return {"name": name, "error": failure, "rows": [{"bench": name, "metric": "FAILED", "ours": failure[-200:],
                                                        "met": False}], **meta}
    return {**json.loads(out.read_text()), **meta}


def table(results: list[dict[str, Any]], total: float, quick: bool) -> Table:
    """Every benchmark's rows in one table."""
    title = f"jobscheduler benchmarks ({'quick smoke run, not a measurement' if quick else 'full run'}, " \
            f"{total:.0f} s, {os.cpu_count()} cores)"
    out = Table(title=title, title_justify="left", show_lines=False)
    for column in ("bench", "metric", "ours", "baseline", "ratio", "target", "met"):
        out.add_column(column, overflow="fold")
    for result in results:
        for i, row in enumerate(result["rows"]):
            met = {True: "[green]met[/green]", False: "[red]missed[/red]", None: ""}[row.get("met")]
            bench = f"{row['bench']}\n[dim]{result['seconds']:.0f} s; CPU {result['busy_before']:.0%} busy " \
                    "before[/dim]" if i == 0 else ""
            out.add_row(bench, row["metric"], row.get("ours", ""), row.get("baseline", ""), row.get("ratio", ""),
                        row.get("target", ""), met, end_section=i == len(result["rows"]) - 1)
    return out


def verdict_table(judged: list[dict[str, Any]]) -> Table:
    """Every target of bench/targets.toml with its figure and verdict."""
    out = Table(title="targets (bench/targets.toml)", title_justify="left")
    for column in ("target", "figure", "value", "wanted", "verdict"):
        out.add_column(column, overflow="fold")
    colour = {"met": "green", "missed": "red", "not measured": "yellow"}
    for v in judged:
        value = "" if v["value"] is None else f"{v['value']:.3g} {v['unit']}".replace(" ratio", "")
        out.add_row(v["key"], v["figure"], value, v["target"], f"[{colour[v['verdict']]}]{v['verdict']}[/]")
    return out


def main() -> None:
    """Run them all within the budget."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: check that the scripts run")
    parser.add_argument("--budget", type=float, default=570, help="seconds for the whole run")
    parser.add_argument("--out", type=Path, default=RESULTS / "latest.json")
    args = parser.parse_args()
    each = args.out.parent / f"{args.out.stem}.d"  # each benchmark's own JSON, beside the summary
    each.mkdir(parents=True, exist_ok=True)
    console = Console(soft_wrap=False, width=max(160, Console().width))
    started = time.monotonic()
    results = []
    for name, full, quick in BENCHES:
        left = args.budget - (time.monotonic() - started)
        console.print(f"[bold]{name}[/bold] ... ({left:.0f} s left)")
        # Whatever happens, the throughput benchmark and a timed-out benchmark's clean-up still fit.
        timeout = max(30.0, left - MIN_WINDOW - THROUGHPUT_RESERVE - STOP_GRACE)
        results.append(run_one(name, quick if args.quick else full, timeout=timeout, directory=each))
        console.print(f"  {results[-1]['seconds']:.0f} s" + ("  [red]failed[/red]" if "error" in results[-1] else ""))
    left = args.budget - (time.monotonic() - started)
    window = 10 if args.quick else max(MIN_WINDOW, int(left - THROUGHPUT_RESERVE))
    throughput = ["--jobs", "5" if args.quick else "1000", "--window", str(window), "--drain", "60",
                  "--inflight", str(THROUGHPUT_INFLIGHT)]
    console.print(f"[bold]throughput[/bold] ... (posting window {window} s)")
    results.append(run_one("throughput", throughput, timeout=window + THROUGHPUT_RESERVE + 60, directory=each))
    total = time.monotonic() - started
    console.print(table(results, total, args.quick))
    judged = verdicts(row for result in results for row in result["rows"])
    console.print(verdict_table(judged))
    counts = {v: sum(1 for j in judged if j["verdict"] == v) for v in ("met", "missed", "not measured")}
    console.print(", ".join(f"{n} {v}" for v, n in counts.items()))
    summary = {"date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), "seconds": round(total, 1),
               "quick": args.quick, "commit": _commit(), "machine": machine(),
               "targets": judged, "verdicts": counts, "benchmarks": results}
    args.out.write_text(json.dumps(summary, indent=2, default=str))
    console.print(f"written: {args.out.relative_to(REPO) if args.out.is_relative_to(REPO) else args.out}  "
                  f"({total:.0f} s in all)")


def _commit() -> dict[str, Any]:
    """The commit measured, and whether the work tree differed from it (a dirty run measures uncommitted code)."""
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True)
    status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                            capture_output=True, text=True)
    return {"sha": head.stdout.strip(), "dirty": bool(status.stdout.strip()) if status.returncode == 0 else None}


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    return {"cores": os.cpu_count(), "python": platform.python_version(),
            "implementation": platform.python_implementation(), "platform": platform.platform(),
            "processor": platform.machine()}


if __name__ == "__main__":
    main()
