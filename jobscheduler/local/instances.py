"""The instance emulator: every instance of this stack that enters ``running`` boots its user data.

The user data is the real bootstrap script, run with bash in its own process
group, with the instance's metadata service and the stand-ins of
``standins.py``. The emulator then plays EC2:

- the script ends, or asks ``shutdown -h now``: the instance is terminated
  (the launch template's shutdown behaviour is ``terminate``);
- ``shutdown -h +N`` (the dead-man timer): terminated N minutes later unless gone by then;
- terminated from outside (the workflow, the sweeper): its processes get
  TERM, then KILL after a grace period, as at power-off.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError
from rich.console import Console
from rich.text import Text

from jobscheduler.local import runtime
from jobscheduler.local.metadata import Metadata, MetadataServer

POLL_SECONDS = 0.5
# Real instances boot for tens of seconds before user data runs; one second
# keeps that order of events (the workflow sees the instance running first).
BOOT_SECONDS = 1.0
# Like systemd at power-off: TERM, a grace period, then KILL.
POWER_OFF_GRACE_SECONDS = 5.0
INSTANCE_NICENESS = 10  # added to the stack's own priority (a higher value yields the CPU sooner)
GONE = ("shutting-down", "terminated")

# environment(instance_id, instance_dir, imds_url) -> the bootstrap's environment
Environment = Callable[[str, Path, str], dict[str, str]]


@dataclass
class Machine:
    """One emulated instance: its metadata service, its bootstrap process, its power state."""

    metadata: Metadata
    directory: Path
    boot_at: float
    server: MetadataServer = field(init=False)
    process: subprocess.Popen[bytes] | None = None
    shutdown_at: float | None = None
    power_off_at: float | None = None
    done: bool = False
    output: threading.Thread | None = None

    @property
    def instance_id(self) -> str:
        """The EC2 instance id."""
        return self.metadata.instance_id


@dataclass
class InstanceEmulator:
    """Watches EC2 for this stack's instances and runs each one's user data."""

    ec2: Any
    logs: Any  # the emulated engine's awslogs driver ships the containers' output with it
    stack_tag: str
    root: Path
    environment: Environment
    console: Console
    machines: dict[str, Machine] = field(default_factory=dict)
    # Instances whose life is over: only their ids are kept (a Machine holds its description,
    # servers, process and threads; a thousand finished jobs kept tens of MiB of them).
    finished: set[str] = field(default_factory=set)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        """Start watching in a background thread."""
        self._thread = threading.Thread(target=self._watch, name="instances", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop watching and power every instance's processes off; nothing is left running."""
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=10)
        for machine in self.machines.values():
            self._kill(machine, signal.SIGTERM)
        deadline = time.monotonic() + POWER_OFF_GRACE_SECONDS
        for machine in self.machines.values():
            while machine.process and not _exited(machine.process) and time.monotonic() < deadline:
                time.sleep(0.1)
            self._kill(machine, signal.SIGKILL)
            if machine.process:
                machine.process.wait()
            machine.server.stop()

    def interrupt(self, instance_id: str) -> bool:
        """Announce a Spot interruption in the instance's metadata; False if it is not ours or gone."""
        machine = self.machines.get(instance_id)
        if machine is None or machine.done:
            return False
        machine.metadata.interrupt()
        self._say(machine, "Spot interruption notice in its metadata (spot/instance-action)")
        return True

    def _watch(self) -> None:
        while not self._stop.wait(POLL_SECONDS):
            try:
                self.step(self._describe())
            except Exception as exc:  # keep emulating; the next pass may succeed
                self.console.print(f"[red]instance emulator: {exc}[/red]")

    def _describe(self) -> dict[str, dict[str, Any]]:
        # Terminated instances are left out (an instance missing here counts as
        # terminated): the answer stays as small as the number of live instances.
        filters = [{"Name": f"tag:{runtime.statuses().TAG_STACK}", "Values": [self.stack_tag]},
                   {"Name": "instance-state-name", "Values": ["pending", "running", "shutting-down", "stopping",
                                                              "stopped"]}]
        found: dict[str, dict[str, Any]] = {}
        for page in self.ec2.get_paginator("describe_instances").paginate(Filters=filters):
            for reservation in page["Reservations"]:
                found.update({i["InstanceId"]: i for i in reservation["Instances"]})
        return found

    def step(self, instances: dict[str, dict[str, Any]]) -> None:
        """One pass: boot new running instances, follow the lives of the others."""
        now = time.monotonic()
        for instance_id, instance in instances.items():
            if (instance_id not in self.machines and instance_id not in self.finished
                    and instance["State"]["Name"] == "running"):
                self.machines[instance_id] = self._launch(instance, now)
        for instance_id, machine in list(self.machines.items()):
            state = instances.get(instance_id, {}).get("State", {}).get("Name", "terminated")
            self._follow(machine, state, now)
            if machine.done:  # its processes are reaped, its metadata server stopped
                del self.machines[instance_id]
                self.finished.add(instance_id)

    def _launch(self, instance: dict[str, Any], now: float) -> Machine:
        metadata = Metadata.of(instance)
        directory = self.root / metadata.instance_id
        directory.mkdir(parents=True, exist_ok=True)
        machine = Machine(metadata, directory, boot_at=now + BOOT_SECONDS)
        machine.server = MetadataServer(metadata, lambda when: self._shutdown_requested(machine, when),
                                        self.ship_logs)
        machine.server.start()
        tags = metadata.tags
        self._say(machine, f"running ({metadata.instance_type}, {metadata.availability_zone}) "
                           f"for job {tags.get(runtime.statuses().TAG_JOB, '?')}: booting its user data")
        return machine

    def _follow(self, machine: Machine, state: str, now: float) -> None:
        if machine.process is None:
            if state in GONE:
                self._finish(machine, "terminated before its user data ran")
            elif now >= machine.boot_at:
                self._boot(machine)
            return
        if _exited(machine.process):
            self._kill(machine, signal.SIGKILL)  # anything the script left behind
            machine.process.wait()
            if state not in GONE:
                self._terminate(machine, f"user data ended (exit {machine.process.returncode}): powering off")
            self._finish(machine, "terminated")
        elif state in GONE:
            self._power_off(machine, now)
        elif machine.shutdown_at is not None and now >= machine.shutdown_at:
            self._terminate(machine, "shutdown time reached: powering off")
            self._power_off(machine, now)

    def _boot(self, machine: Machine) -> None:
        script = self._user_data(machine.instance_id)
        path = machine.directory / "user-data.sh"
        path.write_text(script)
        env = self.environment(machine.instance_id, machine.directory, machine.server.url)
        machine.process = subprocess.Popen(
            ["bash", str(path)], cwd=machine.directory, env=env, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
        # An instance is another machine in AWS: here it must not take the CPU from the emulated
        # AWS and the API, so it runs at a lower priority (everything it starts inherits it).
        with contextlib.suppress(OSError):
            niceness = min(19, os.getpriority(os.PRIO_PROCESS, 0) + INSTANCE_NICENESS)
            os.setpriority(os.PRIO_PROCESS, machine.process.pid, niceness)
        machine.output = threading.Thread(target=self._relay, args=(machine,), daemon=True,
                                          name=f"output-{machine.instance_id}")
        machine.output.start()

    def _user_data(self, instance_id: str) -> str:
        attribute = self.ec2.describe_instance_attribute(InstanceId=instance_id, Attribute="userData")
        # cloud-init's first step: decode (and gunzip) the user data.
        return str(runtime.module("chalicelib.bootstrap").decode_user_data(attribute["UserData"]["Value"]))

    def _relay(self, machine: Machine) -> None:
        assert machine.process is not None and machine.process.stdout is not None
        for raw in machine.process.stdout:
            line = raw.decode(errors="replace").rstrip("\n")
            self.console.print(Text(f"{machine.instance_id}  ", style="dim cyan") + Text(line))

    def ship_logs(self, batch: dict[str, Any]) -> None:
        """Put a container's output in its log stream (created on first use), as the awslogs driver does."""
        group, stream = batch["group"], batch["stream"]
        try:
            self.logs.put_log_events(logGroupName=group, logStreamName=stream, logEvents=batch["events"])
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ResourceNotFoundException":
                raise
            try:
                self.logs.create_log_stream(logGroupName=group, logStreamName=stream)
            except ClientError as again:
                if again.response["Error"]["Code"] != "ResourceAlreadyExistsException":
                    raise
            self.logs.put_log_events(logGroupName=group, logStreamName=stream, logEvents=batch["events"])

    def _shutdown_requested(self, machine: Machine, when: str) -> None:
        """The ``shutdown`` stand-in: ``now``, ``+N`` minutes, or ``cancel``."""
        if when == "cancel":
            machine.shutdown_at = None
        elif when.startswith("+") and when[1:].isdigit():
            machine.shutdown_at = time.monotonic() + 60 * int(when[1:])
            self._say(machine, f"shutdown scheduled in {when[1:]} min (dead-man timer)")
        else:
            machine.shutdown_at = time.monotonic()

    def _terminate(self, machine: Machine, why: str) -> None:
        self._say(machine, why)
        try:
            self.ec2.terminate_instances(InstanceIds=[machine.instance_id])
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "InvalidInstanceID.NotFound":
                raise

    def _power_off(self, machine: Machine, now: float) -> None:
        if machine.power_off_at is None:
            machine.power_off_at = now
            self._say(machine, "terminated: stopping its processes")
            self._kill(machine, signal.SIGTERM)
        elif now - machine.power_off_at > POWER_OFF_GRACE_SECONDS:
            self._kill(machine, signal.SIGKILL)

    def _kill(self, machine: Machine, signum: int) -> None:
        # The script leads its own session, so its group holds every process it started.
        # Only while the leader is not reaped: until then its id cannot be reused.
        if machine.process is None or machine.process.returncode is not None:
            return
        try:
            os.killpg(machine.process.pid, signum)
        except (ProcessLookupError, PermissionError):
            pass

    def _finish(self, machine: Machine, why: str) -> None:
        machine.done = True
        machine.server.stop()
        if machine.output:
            machine.output.join(timeout=2)
        self._say(machine, why)

    def _say(self, machine: Machine, message: str) -> None:
        self.console.print(Text(f"{machine.instance_id}  ", style="bold cyan") + Text(message, style="cyan"))


def _exited(process: subprocess.Popen[bytes]) -> bool:
    """Has the process ended? Asked without reaping it, so its group can still be signalled."""
    if process.returncode is not None:
        return True
    try:
        return os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return process.poll() is not None
