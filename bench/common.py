"""What every benchmark shares: a local stack to measure, its memory, quantiles, result rows.

The stack is ``jobscheduler local --no-demo`` started as a user starts it, in
its own process group on free ports of 127.0.0.1, so the load generator (this
process) does not compete with it for the GIL and its memory can be read on
its own. Every wait here has a deadline.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import boto3
import requests
from botocore.config import Config

from jobscheduler.client import TERMINAL  # noqa: F401  (re-exported to the benchmarks)
from jobscheduler.local.stack import wait_serving

REPO = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"
REGION = "us-east-1"
HELLO: dict[str, Any] = {"name": "bench hello", "image": "hello-world:latest", "maxRuntimeSeconds": 600}
WORK_FILES = "instances' user data and work files: "
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


def free_port() -> int:
    """A port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def quantile(values: Iterable[float], q: float) -> float:
    """The ``q`` quantile (0..1) by linear interpolation between closest ranks."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    position = q * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def median(values: Iterable[float]) -> float:
    """The 0.5 quantile."""
    return quantile(values, 0.5)


def parse_time(value: str | datetime) -> float:
    """Seconds since the epoch of an RFC 3339 string (``Z`` or an offset) or an aware datetime."""
    if isinstance(value, datetime):
        return value.timestamp()
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def until(deadline: float, done: Callable[[], bool], interval: float = 0.5) -> bool:
    """Poll ``done`` until it is true or ``deadline`` (monotonic) passes; was it done?"""
    while True:
        if done():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def aws_client(endpoint: str, service: str, pool: int = 10) -> Any:
    """A boto3 client for the local endpoint (any credentials work there)."""
    return boto3.session.Session().client(
        service, endpoint_url=endpoint, region_name=REGION, aws_access_key_id="bench",
        aws_secret_access_key="bench",
        config=Config(retries={"mode": "standard", "max_attempts": 3}, max_pool_connections=pool))


def history(sfn: Any, execution_arn: str) -> list[dict[str, Any]]:
    """Every event of an execution, oldest first (paginated: histories can be long)."""
    events: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"executionArn": execution_arn, "maxResults": 1000}
    for _ in range(100):  # 100,000 events: far past Step Functions' own 25,000 limit
        page = sfn.get_execution_history(**kwargs)
        events += page["events"]
        if not page.get("nextToken"):
            break
        kwargs["nextToken"] = page["nextToken"]
    return events


def entered(events: list[dict[str, Any]]) -> list[str]:
    """The states an execution entered, in order: what a state transition is billed for."""
    return [e["stateEnteredEventDetails"]["name"] for e in events if "stateEnteredEventDetails" in e]


# --- the local stack's process tree and its memory ---


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as stat:
                # The command name is in parentheses and may hold spaces: split after it.
                ppid = int(stat.read().rpartition(")")[2].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        tree.setdefault(ppid, []).append(int(entry.name))
    return tree


def process_tree(root: int) -> list[int]:
    """``root`` and every process descended from it."""
    tree, found, todo = _children(), [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo += tree.get(pid, [])
    return found


def rss_bytes(pid: int) -> int:
    """Resident set size of one process (0 if it is gone)."""
    try:
        with open(f"/proc/{pid}/statm") as statm:
            return int(statm.read().split()[1]) * PAGE_SIZE
    except (OSError, ValueError, IndexError):
        return 0


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of one process, in seconds (0 if it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def load_average() -> float:
    """This machine's one-minute load average (other work skews every timing here)."""
    return os.getloadavg()[0]


def cpu_busy(seconds: float = 1.0) -> float:
    """Share of this machine's CPU time (all cores) spent busy over the next ``seconds``.

    Unlike the load average, which trails by a minute, this is what other
    work takes right now.
    """
    def totals() -> tuple[int, int]:
        with open("/proc/stat") as stat:
            fields = [int(v) for v in stat.readline().split()[1:]]
        return sum(fields), fields[3] + fields[4]  # all, idle + iowait

    all_before, idle_before = totals()
    time.sleep(seconds)
    all_after, idle_after = totals()
    spent = all_after - all_before
    return 1 - (idle_after - idle_before) / spent if spent else 0.0


def pss_bytes(pid: int) -> int:
    """Proportional set size of one process: its RSS with each shared page split among its sharers.

    Summing RSS over a process tree counts shared pages once per process (a
    child forked from the stack, before it execs, would count the whole stack
    again); summing PSS counts every page once.
    """
    try:
        with open(f"/proc/{pid}/smaps_rollup") as rollup:
            for line in rollup:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


# The local stack's own child processes (each runs one of these modules), beside the instances'.
STACK_CHILDREN = (b"jobscheduler.local.aws_process", b"jobscheduler.local.events_process")


def is_stack_child(pid: int) -> bool:
    """Is ``pid`` one of a local stack's own child processes (the emulated AWS, the job events)?"""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            command = cmdline.read()
    except OSError:
        return False
    return any(module in command for module in STACK_CHILDREN)


@dataclass
class MemorySampler:
    """Samples a process tree's memory in a thread (summed PSS, and the root's RSS); keeps the peak.

    "The stack" is the root process with its own children (the emulated AWS and
    the job events, see ``STACK_CHILDREN``): what grows with finished jobs. The
    rest of the tree is the instances' processes.
    """

    root: int
    interval: float = 0.25
    peak: int = 0
    peak_processes: int = 0
    peak_root: int = 0  # the stack's own PSS (root and its own children) at the tree's peak
    peak_root_rss: int = 0  # the root process's highest RSS seen
    samples: list[tuple[float, int, int, int]] = field(default_factory=list)  # (monotonic, tree, stack, processes)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def sample(self) -> int:
        """One reading of the tree's summed PSS (also updates the peaks)."""
        pids = process_tree(self.root)
        sizes = {pid: pss_bytes(pid) for pid in pids}
        self.peak_root_rss = max(self.peak_root_rss, rss_bytes(self.root))
        total = sum(sizes.values())
        own = sum(size for pid, size in sizes.items() if pid == self.root or is_stack_child(pid))
        self.samples.append((time.monotonic(), total, own, len(pids)))
        if total > self.peak:
            self.peak, self.peak_processes, self.peak_root = total, len(pids), own
        return total

    def __enter__(self) -> MemorySampler:
        self._thread = threading.Thread(target=self._run, name="rss", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()


# --- the local stack ---


@dataclass
class Stack:
    """A running ``jobscheduler local --no-demo`` and clients for it."""

    process: subprocess.Popen[bytes]
    api: str
    aws: str
    log: Path
    http: requests.Session = field(default_factory=requests.Session)
    orphans: int = 0  # instance processes still running after the stack stopped (and killed then)

    def client(self, service: str, pool: int = 10) -> Any:
        """A boto3 client for the stack's AWS endpoint."""
        return aws_client(self.aws, service, pool)

    def schedule(self, body: dict[str, Any], session: requests.Session | None = None) -> dict[str, Any]:
        """``POST /jobs``: the created job."""
        response = (session or self.http).post(f"{self.api}/jobs", json=body, timeout=30)
        if response.status_code != 201:
            raise RuntimeError(f"POST /jobs answered {response.status_code}: {response.text}")
        return dict(response.json())

    def job(self, job_id: str) -> dict[str, Any]:
        """``GET /jobs/{jobId}``."""
        response = self.http.get(f"{self.api}/jobs/{job_id}", timeout=30)
        response.raise_for_status()
        return dict(response.json())

    def instance_dir(self) -> Path | None:
        """Where the emulator keeps the instances' work files (from the start-up banner)."""
        for line in self.log.read_text(errors="replace").splitlines():
            if line.startswith(WORK_FILES):
                return Path(line.removeprefix(WORK_FILES).strip())
        return None

    def cpu_seconds(self) -> float:
        """CPU time (user + system) the stack's own processes (it and its own children) have used so far."""
        own = [pid for pid in process_tree(self.process.pid) if pid == self.process.pid or is_stack_child(pid)]
        return sum(cpu_seconds(pid) for pid in own)

    def wait_quiet(self, busy: float = 0.15, window: float = 1.0, timeout: float = 60) -> bool:
        """Wait until the stack uses less than ``busy`` of a core over ``window`` seconds; was it quiet in time?"""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            before = self.cpu_seconds()
            time.sleep(window)
            if (self.cpu_seconds() - before) / window < busy:
                return True
        return False

    def live_instances(self) -> list[str]:
        """Instances pending or running in the emulated EC2."""
        ec2 = self.client("ec2")
        found = []
        for page in ec2.get_paginator("describe_instances").paginate(
                Filters=[{"Name": "instance-state-name", "Values": ["pending", "running"]}]):
            found += [i["InstanceId"] for r in page["Reservations"] for i in r["Instances"]]
        return found


def _start_time(pid: int) -> int | None:
    """When the process started (clock ticks since boot): tells a process from a later one with its pid."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return int(stat.read().rpartition(")")[2].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def kill_tree(root: int, grace: float) -> None:
    """SIGTERM ``root`` (the stack cleans up after itself), then SIGKILL whatever of its tree is left.

    The tree is noted first, by pid and start time: instance processes lead
    sessions of their own and would outlive a killed stack as orphans.
    """
    known = {pid: _start_time(pid) for pid in process_tree(root)}
    try:
        os.kill(root, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and _start_time(root) == known.get(root):
        with contextlib.suppress(ChildProcessError):
            if os.waitpid(root, os.WNOHANG)[0]:
                break
        time.sleep(0.2)
    known.update({pid: _start_time(pid) for pid in process_tree(root)})
    for pid, started in known.items():
        if started is not None and _start_time(pid) == started:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def processes_under(directory: Path) -> list[int]:
    """Processes whose working directory is inside ``directory`` (every instance process starts there)."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            cwd = Path(os.readlink(f"/proc/{entry.name}/cwd").removesuffix(" (deleted)"))
        except OSError:
            continue
        if cwd == directory or directory in cwd.parents:
            found.append(int(entry.name))
    return found


def kill_instances(directory: Path) -> int:
    """SIGKILL what still runs in an instance directory of a stack that is gone; how many were left.

    The stack's own stop can miss an instance its emulator boots while
    stopping, and a killed stack leaves them all; they lead sessions of their
    own, so nothing else reaches them.
    """
    left = 0
    for _ in range(5):
        pids = processes_under(directory)
        if not pids:
            break
        left = max(left, len(pids))
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.2)
    return left


@contextmanager
def local_stack(ready_timeout: float = 90, stop_grace: float = 60) -> Iterator[Stack]:
    """``jobscheduler local --no-demo`` on free ports, stopped (always) on exit.

    The stack gets ``stop_grace`` seconds to stop itself; then it and every
    process it started are killed.
    """
    api_port, aws_port = free_port(), free_port()
    directory = Path(tempfile.mkdtemp(prefix="jobscheduler-bench-"))
    log = directory / "stack.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "jobscheduler.cli", "local", "--no-demo",
             "--api-port", str(api_port), "--aws-port", str(aws_port)],
            cwd=REPO, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200"})
    stack = Stack(process, f"http://{HOST}:{api_port}", f"http://{HOST}:{aws_port}", log)
    try:
        wait_serving(stack.api, process, log, ready_timeout)
        yield stack
    finally:
        work = stack.instance_dir()
        kill_tree(process.pid, stop_grace)
        process.wait()
        if work is not None:
            stack.orphans = kill_instances(work)
            if work.parent.name.startswith("jobscheduler-local-"):
                shutil.rmtree(work.parent, ignore_errors=True)  # the stack's own, if it was killed before removing it
        shutil.rmtree(directory, ignore_errors=True)


def exit_on_sigterm() -> None:
    """Turn SIGTERM into SystemExit, so that ``with local_stack()`` stops the stack on the way out."""
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))


# --- results ---


@dataclass
class Row:
    """One line of the benchmark table."""

    bench: str
    metric: str
    ours: str
    baseline: str = ""
    ratio: str = ""
    target: str = ""
    met: bool | None = None
    key: str = ""  # a target in bench/targets.toml: the row is judged against it
    value: float | None = None  # the figure, in the target's unit

    def __post_init__(self) -> None:
        if self.key:
            from bench.targets import target

            goal = target(self.key)
            self.target = goal.text
            self.met = goal.met(self.value) if self.value is not None else False

    def as_dict(self) -> dict[str, Any]:
        """The row as JSON."""
        return dict(self.__dict__)


def ratio(ours: float, baseline: float) -> str:
    """``ours / baseline`` for the table."""
    if not baseline:
        return "n/a"
    value = ours / baseline
    return f"{value:.3f}" if value < 0.1 else f"{value:.2f}"


def cli(description: str, sizes: dict[str, int]) -> argparse.Namespace:
    """Arguments every benchmark script takes: its sizes, and where to write its JSON."""
    parser = argparse.ArgumentParser(description=description)
    for name, default in sizes.items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=int, default=default, dest=name)
    parser.add_argument("--json", type=Path, help="write the figures and rows here")
    exit_on_sigterm()
    return parser.parse_args()


def report(name: str, figures: dict[str, Any], rows: list[Row], json_path: Path | None) -> None:
    """Print the rows of one benchmark and write them with its figures as JSON."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=name, title_justify="left")
    for column in ("metric", "ours", "baseline", "ratio", "target", "met"):
        table.add_column(column)
    for row in rows:
        table.add_row(row.metric, row.ours, row.baseline, row.ratio, row.target, _met(row.met))
    Console(soft_wrap=True).print(table)
    if json_path:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps({"name": name, "figures": figures, "rows": [r.as_dict() for r in rows]},
                                        indent=2, default=str))


def _met(met: bool | None) -> str:
    return {True: "met", False: "missed", None: ""}[met]
