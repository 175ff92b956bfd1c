"""The local stack's processes start and stop together: no child outlives the stack, however it ends.

``jobscheduler local`` runs the emulated AWS (jobscheduler/local/aws_process.py)
and the job events (jobscheduler/local/events_process.py) in child processes.
Ctrl-C, SIGTERM, a SIGKILL of the stack, and a start that fails half way must
each leave no process behind and free both ports.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from jobscheduler.local.stack import wait_serving

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def alive(pid: int) -> bool:
    """Is ``pid`` a running process (a zombie counts as gone)?"""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


def children(aws_port: int, module: str) -> list[int]:
    """Processes running ``module`` for the stack on ``aws_port`` (found by their command line, which names the port
    itself or in the job events' queue URL)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            command = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if module.encode() in command and any(str(aws_port).encode() in part for part in command[command.index(
                module.encode()) + 1:]) and alive(int(entry.name)):
            found.append(int(entry.name))
    return found


def emulators(aws_port: int) -> list[int]:
    """Processes serving the emulated AWS on ``aws_port``."""
    return children(aws_port, "jobscheduler.local.aws_process")


def job_events(aws_port: int) -> list[int]:
    """Processes delivering the job events of the stack on ``aws_port``."""
    return children(aws_port, "jobscheduler.local.events_process")


def eventually(check: object, timeout: float = 60) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return True
        time.sleep(0.2)
    return bool(check())  # type: ignore[operator]


def start_stack(tmp_path: Path) -> tuple[subprocess.Popen[bytes], int, int, Path]:
    api_port, aws_port = free_port(), free_port()
    log = tmp_path / "stack.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "jobscheduler.cli", "local", "--no-demo", "--api-port", str(api_port),
             "--aws-port", str(aws_port)], stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            cwd=REPO, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    wait_serving(f"http://127.0.0.1:{api_port}", process, log, timeout=120)
    # The API answers before the rest has started: wait for the stack to say it is serving.
    assert eventually(lambda: "serving" in log.read_text()), log.read_text()
    return process, api_port, aws_port, log


@pytest.mark.parametrize("how", ["ctrl-c", "sigterm"])
def test_stopping_the_stack_ends_the_emulator_and_frees_both_ports(tmp_path, how):
    """Ctrl-C (SIGINT to the whole process group, as a terminal sends it) or SIGTERM: both processes end."""
    process, api_port, aws_port, log = start_stack(tmp_path)
    try:
        (child,), (events,) = emulators(aws_port), job_events(aws_port)
        assert process.pid not in (child, events)
        if how == "ctrl-c":
            os.killpg(process.pid, signal.SIGINT)
        else:
            process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0, log.read_text()
        assert eventually(lambda: not alive(child)), "the emulated AWS outlived the stack"
        assert eventually(lambda: not alive(events)), "the job events' process outlived the stack"
        assert port_free(api_port) and port_free(aws_port)
        assert "stopped: moto, the API, the job events and every instance process are gone" in log.read_text()
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def test_a_killed_stack_leaves_no_child(tmp_path):
    """SIGKILL gives the stack no chance to clean up: each child notices its parent is gone and ends."""
    process, _, aws_port, _ = start_stack(tmp_path)
    (child,), (events,) = emulators(aws_port), job_events(aws_port)
    process.kill()
    process.wait()
    try:
        assert eventually(lambda: not alive(child)), "the emulated AWS outlived a killed stack"
        assert eventually(lambda: not alive(events)), "the job events' process outlived a killed stack"
        assert eventually(lambda: port_free(aws_port))
    finally:
        for pid in (child, events):
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize("refused", ["resources", "console"])
def test_a_start_that_fails_half_way_stops_every_child(tmp_path, refused):
    """Creating the resources (before the job events start) or serving the console (after) fails: start() fails,
    and no child of the stack is left."""
    aws_port, api_port = free_port(), free_port()
    target = "cloud.LocalCloud.create" if refused == "resources" else "LocalStack._start_console"
    script = textwrap.dedent(f"""
        from rich.console import Console
        from jobscheduler.local import cloud
        from jobscheduler.local.stack import LocalStack

        def refuse(*args, **kwargs):
            raise RuntimeError("no {refused} today")

        {target} = refuse
        stack = LocalStack({api_port}, {aws_port}, Console())
        try:
            stack.start()
        except RuntimeError as exc:
            print("failed:", exc, "emulator", stack._aws.pid if stack._aws else None, flush=True)
    """)
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert f"failed: no {refused} today" in done.stdout, done.stdout + done.stderr
    child = int(done.stdout.split("emulator")[-1].strip())
    assert not alive(child) and emulators(aws_port) == [] and job_events(aws_port) == []
    assert port_free(aws_port) and port_free(api_port)
