"""The local stack: moto, the resources, the API, the instance emulator, the event dispatcher and the job events.

``LocalStack`` starts them in dependency order and stops them in reverse;
``stop`` is safe to call at any point of ``start`` (a half-started stack is
cleaned up too). The stack also answers the control routes under
``/_local/`` on the API port (see ``api.py``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from rich.console import Console

from jobscheduler.local import cloud, runtime, standins
from jobscheduler.local.api import ADMIN_PREFIX, ApiServer
from jobscheduler.local.aws_process import EmulatorProcess
from jobscheduler.local.events import EventDispatcher, JobEventsWiring
from jobscheduler.local.events_process import JobEventsProcess
from jobscheduler.local.instances import InstanceEmulator
from jobscheduler.local.scheduler import ScheduleFiring

INTERRUPT_ROUTE = f"{ADMIN_PREFIX}interrupt/"


@dataclass
class LocalStack:
    """Everything ``jobscheduler local`` runs: the emulated AWS and the job events in child processes, the
    rest in this one.

    Instances are child processes too; ``stop`` ends every one of them.
    """

    api_port: int
    aws_port: int
    console: Console
    root: Path = Path()  # a fresh temporary directory once started
    resources: cloud.LocalCloud | None = None
    real_docker: str | None = None
    _stops: list[Callable[[], None]] = field(default_factory=list)
    _emulator: InstanceEmulator | None = None
    _events: EventDispatcher | None = None
    _job_events: JobEventsWiring | None = None
    ui_port: int = 8080  # the web console's; another is taken when this one is in use
    ui_url: str = ""
    _aws: EmulatorProcess | None = None

    @property
    def api_url(self) -> str:
        """Base URL of the API."""
        return f"http://{cloud.HOST}:{self.api_port}"

    @property
    def aws_endpoint(self) -> str:
        """The AWS endpoint every client can use (any credentials, region us-east-1)."""
        return f"http://{cloud.HOST}:{self.aws_port}"

    def start(self) -> None:
        """Start everything; on failure, what was started is stopped again."""
        cloud.check_port_free(self.aws_port, "--aws-port")
        cloud.check_port_free(self.api_port, "--api-port")
        self.root = Path(tempfile.mkdtemp(prefix="jobscheduler-local-"))
        self._stops.append(lambda: shutil.rmtree(self.root, ignore_errors=True))
        try:
            self._start_aws()
            self._start_api()
            self._start_instances()
            self._start_events()
            self._start_console()
        except BaseException:
            self.stop()
            raise

    @property
    def started(self) -> bool:
        """Is anything running that :meth:`stop` must stop?"""
        return bool(self._stops)

    def stop(self) -> None:
        """Stop everything started, newest first; instance processes are killed, ports released."""
        while self._stops:
            step = self._stops.pop()
            try:
                step()
            except Exception as exc:  # keep stopping the rest
                self.console.print(f"[red]while stopping: {exc}[/red]")

    def _start_aws(self) -> None:
        cloud.use_local_endpoint(self.aws_port)
        # The emulated AWS runs in a process of its own, on the other core (see aws_process.py).
        self._aws = EmulatorProcess(self.aws_port)
        self._stops.append(self._aws.stop)
        # The runtime's session makes the stack's own clients too (each session loads botocore's endpoint data
        # and the service models it uses again: EC2's alone is 22 MiB). Those made once the API serves are made
        # through the runtime's new_client, which makes one client at a time, as a session needs.
        session = runtime.module("chalicelib.aws").session()
        self.resources = cloud.LocalCloud.create(session)
        # Before the API serves: the stream must hold every job's first write.
        self._job_events = JobEventsWiring.create(session, self.resources.table)

    def _start_api(self) -> None:
        assert self.resources is not None
        # The runtime reads its settings from the environment, as in Lambda.
        os.environ.update(self.resources.runtime_environment(self.api_url))
        server = ApiServer(runtime.app_module().app, cloud.HOST, self.api_port, admin=self.admin)
        server.start()
        self._stops.append(server.stop)

    def _start_instances(self) -> None:
        assert self.resources is not None
        self.real_docker = standins.real_docker()
        directory = standins.write_standins(self.root / "bin")

        def environment(instance_id: str, instance_dir: Path, imds_url: str) -> dict[str, str]:
            return standins.instance_environment(
                standins=directory, instance_id=instance_id, instance_dir=instance_dir, imds_url=imds_url,
                aws_endpoint=self.aws_endpoint, region=cloud.REGION, real_docker_path=self.real_docker)

        new_client = runtime.module("chalicelib.aws").new_client
        self._emulator = InstanceEmulator(new_client("ec2"), new_client("logs"), self.resources.stack_tag,
                                          self.root / "instances", environment, self.console)
        self._emulator.start()
        self._stops.append(self._emulator.stop)

    def _start_events(self) -> None:
        assert self.resources is not None
        new_client = runtime.module("chalicelib.aws").new_client
        self._events = EventDispatcher(new_client("stepfunctions"), self.resources.state_machine_arn,
                                       runtime.app_module(), self.console, rules=new_client("events"),
                                       sweeper_rule=self.resources.sweeper_rule)
        self._events.start()
        self._stops.append(self._events.stop)
        assert self._job_events is not None
        # The table's stream and the events it makes run in a process of their own, as their Lambda
        # function does in AWS: here they took the interpreter lock from the API's requests.
        changes = JobEventsProcess(self._job_events.stream_arn, self._job_events.queue_url)
        self._stops.append(changes.stop)
        firing = ScheduleFiring(new_client("scheduler"), self.resources.schedule_group, runtime.app_module(),
                                self.console)
        firing.start()
        self._stops.append(firing.stop)

    def _start_console(self) -> None:
        from jobscheduler.client import Client
        from jobscheduler.ui.server import ConsoleServer

        server = ConsoleServer(Client(self.api_url), self.ui_port, any_port_if_taken=True)
        server.start()
        self._stops.append(server.stop)
        self.ui_url = server.url

    def admin(self, method: str, path: str, body: bytes) -> tuple[int, Any]:
        """The ``/_local/`` control routes: ``POST /_local/interrupt/{instanceId}``."""
        if method == "POST" and path.startswith(INTERRUPT_ROUTE):
            return self.interrupt(path.removeprefix(INTERRUPT_ROUTE).strip("/"))
        return 404, {"Code": "NotFound", "Message": f"no control route {method} {path}"}

    def interrupt(self, instance_id: str) -> tuple[int, Any]:
        """Deliver a Spot interruption warning: in the instance's metadata, then as the EventBridge event."""
        if self._emulator is None or self._events is None:
            return 503, {"Code": "ServiceUnavailable", "Message": "the local stack is still starting"}
        if not self._emulator.interrupt(instance_id):
            return 404, {"Code": "NotFound",
                         "Message": f"instanceId: {instance_id} is not a running instance of this local stack"}
        answer = self._events.deliver_spot_interruption(instance_id)
        return 200, {"instanceId": instance_id, "metadata": "spot/instance-action set",
                     "on_spot_interruption": json.loads(json.dumps(answer, default=str))}


def wait_serving(api: str, process: subprocess.Popen[bytes], log: Path, timeout: float = 60) -> None:
    """Wait until a ``jobscheduler local`` started as ``process`` answers at ``api``; its log if it never does."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the local stack exited {process.returncode}:\n{log.read_text()}")
        try:
            if requests.get(f"{api}/jobs?limit=1", timeout=2).status_code == 200:
                return
        except (requests.ConnectionError, requests.Timeout):  # not listening yet, or still busy starting
            pass
        time.sleep(0.2)
    raise RuntimeError(f"the local stack did not answer in {timeout} s:\n{log.read_text()}")
