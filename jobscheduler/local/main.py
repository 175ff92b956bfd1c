"""The two things ``jobscheduler local`` does: run the stack, and poke a running one."""

from __future__ import annotations

import json
import signal
import sys
from typing import Any, NoReturn

import boto3
import requests
from rich.console import Console

from jobscheduler.local import cloud, demo
from jobscheduler.local.stack import INTERRUPT_ROUTE, LocalStack

SWITCH_INTERVAL = 0.0005  # seconds


def _interrupted(signum: int, frame: Any) -> NoReturn:
    # SIGTERM takes the same road as Ctrl-C: through every cleanup.
    raise KeyboardInterrupt


def serve(api_port: int, aws_port: int, *, once: bool, demo_job: bool, console: Console,
          console_port: int = 8080) -> int:
    """Start the stack, run the demo job, then serve until Ctrl-C (or stop, with ``once``).

    Exit status: with ``once``, 0 only if the job ended TerminatedOK; 2 if a port is taken.
    """
    # This process's threads (the API's requests, the instances' metadata and logs, the dispatch) mostly wait on
    # the emulated AWS; one that is ready again waits for whichever holds the interpreter lock to let go, which
    # takes up to the switch interval (5 ms by default) when that one computes. A shorter interval shortens each
    # such wait: API overhead 1.19 against 1.23 over four rounds of 300 POST /jobs (docs/performance.md).
    sys.setswitchinterval(SWITCH_INTERVAL)
    stack = LocalStack(api_port, aws_port, console, ui_port=console_port)
    # Explicitly, since a shell starts background jobs with SIGINT ignored.
    signal.signal(signal.SIGINT, _interrupted)
    signal.signal(signal.SIGTERM, _interrupted)
    try:
        console.print("[bold]jobscheduler local[/bold]: starting moto, the API and the instance emulator ...")
        stack.start()
        _banner(stack, console)
        status = 0
        if demo_job or once:
            sfn = boto3.session.Session().client("stepfunctions")
            job = demo.run_hello_world(stack.api_url, sfn, console)
            status = 0 if job["status"] == "TerminatedOK" else 1
        if once:
            return status
        if demo_job:
            assert stack.resources is not None
            demo.curl_hint(console, stack.api_url, stack.aws_endpoint, stack.resources.log_group)
        console.print(f"[bold green]serving[/bold green] on {stack.api_url}")
        while True:
            signal.pause()
    except cloud.PortInUse as exc:
        console.print(f"[red]{exc}[/red]")
        return 2
    except KeyboardInterrupt:
        console.print("\nstopping ...")
        return 130 if once else 0
    finally:
        # A second Ctrl-C must not cut the cleanup short and leave instances running.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if stack.started:
            stack.stop()
            console.print("stopped: moto, the API, the job events and every instance process are gone")


def _banner(stack: LocalStack, console: Console) -> None:
    console.print(f"API: {stack.api_url}", markup=False)
    console.print(f"AWS endpoint: {stack.aws_endpoint}", markup=False)
    console.print("  any AWS client works against it: any credentials, region us-east-1", markup=False)
    console.print(f"Console: {stack.ui_url}", markup=False)
    console.print("[yellow]IAM is not enforced locally[/yellow]: the API's IAM (SigV4) auth is not checked "
                  "and moto allows every call.")
    if stack.real_docker:
        console.print(f"docker: using the Docker engine of {stack.real_docker}")
    else:
        console.print("[yellow]docker: no Docker engine reachable[/yellow]: a job's command runs as a plain "
                      "process on this machine, without container isolation")
    console.print(f"instances' user data and work files: {stack.root / 'instances'}", markup=False)


def interrupt(api_port: int, instance_id: str, console: Console) -> int:
    """Ask the local stack on ``api_port`` to deliver a Spot interruption warning to ``instance_id``."""
    url = f"http://{cloud.HOST}:{api_port}{INTERRUPT_ROUTE}{instance_id}"
    try:
        response = requests.post(url, timeout=60)
    except requests.ConnectionError:
        console.print(f"[red]no local stack answers on port {api_port}[/red] (start one with `jobscheduler local`)")
        return 1
    answer = response.json()
    if response.status_code != 200:
        console.print(f"[red]{answer.get('Message', answer)}[/red]")
        return 1
    console.print(f"Spot interruption warning delivered to {instance_id}: its metadata now announces it, "
                  f"and on_spot_interruption answered {json.dumps(answer['on_spot_interruption'])}", markup=False)
    return 0
