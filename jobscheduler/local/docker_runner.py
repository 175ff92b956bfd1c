"""``docker`` on an emulated instance: the real engine when one answers, else a local runner.

The bootstrap calls ``docker info``, ``pull``, ``login``, ``run`` and ``stop``.
Without an engine, ``run`` starts the job's command as a plain process with
the job's ``-e`` environment (no container isolation, and it says so); a job
without a command has nothing to run in place of the image, so that is
reported and the "container" exits 0. With an engine, ``run`` runs the image,
under a name unique to the instance (every emulated instance shares this
machine's one engine).

A GPU job's ``--gpus all`` is accepted and dropped, saying so on the console
and in the job's log stream: this machine has no GPU for the job (and an
engine without NVIDIA's container toolkit would refuse the option), so the
job runs as it would on a CPU, and a program that needs a GPU fails as it
would on a machine without one.

Either way the container's output reaches the console and the CloudWatch
Logs group and stream of the awslogs ``--log-opt``s, through the emulator
(see ``logship.py``): the engine's own awslogs driver would talk to real AWS.

Reached through ``docker_command`` (the stand-in's entry point); it needs only the standard library.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from jobscheduler.local.docker_command import PREFIX, REAL_DOCKER, say
from jobscheduler.local.logship import LogShipper

INSTANCE_ID = "JOBSCHEDULER_LOCAL_INSTANCE_ID"
INSTANCE_DIR = "JOBSCHEDULER_LOCAL_INSTANCE_DIR"
HOST_PATH = "JOBSCHEDULER_LOCAL_HOST_PATH"
CONTROL = "JOBSCHEDULER_LOCAL_CONTROL"
RELAY_DRAIN_SECONDS = 1.0


@dataclass
class RunSpec:
    """The parts of a ``docker run`` command line the bootstrap builds."""

    name: str = ""
    env: list[str] = field(default_factory=list)
    log_opts: dict[str, str] = field(default_factory=dict)
    image: str = ""
    command: list[str] = field(default_factory=list)
    gpus: str = ""


def parse_run(args: list[str]) -> RunSpec:
    """Parse ``docker run`` options up to the image; the rest is the command."""
    spec, words = RunSpec(), list(args)
    while words and words[0].startswith("-"):
        option = words.pop(0)
        if option == "--rm":
            continue
        if not words:
            raise ValueError(f"{option} needs a value")
        value = words.pop(0)
        if option == "--name":
            spec.name = value
        elif option in ("-e", "--env"):
            spec.env.append(value)
        elif option == "--gpus":
            spec.gpus = value
        elif option == "--log-opt":
            key, _, setting = value.partition("=")
            spec.log_opts[key] = setting
        elif option != "--log-driver":
            raise ValueError(f"{option} is not an option this stand-in knows")
    if not words:
        raise ValueError("no image given")
    spec.image, spec.command = words[0], words[1:]
    return spec


def container_environment(pairs: list[str]) -> dict[str, str]:
    """What docker gives the container: PATH and HOME, the ``-e NAME=value`` pairs, and a
    bare ``-e NAME`` copied from docker's own environment (how the bootstrap passes secrets)."""
    env = {"PATH": os.environ.get(HOST_PATH, os.defpath), "HOME": os.environ.get("HOME", "/"),
           "HOSTNAME": os.environ.get(INSTANCE_ID, "localhost")}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if sep:
            env[name] = value
        elif name in os.environ:
            env[name] = os.environ[name]
    return env


def _pid_file(name: str) -> Path:
    directory = Path(os.environ.get(INSTANCE_DIR, ".")) / "containers"
    directory.mkdir(parents=True, exist_ok=True)
    return directory / f"{name or 'unnamed'}.pid"


def _engine_name(name: str) -> str:
    # One engine serves every emulated instance; each instance's container gets its own name.
    return f"{name}-{os.environ.get(INSTANCE_ID, 'local')}"


def _exit_code(returncode: int) -> int:
    # Like docker: a container killed by signal N exits 128 + N.
    return 128 - returncode if returncode < 0 else returncode


def _shipper(spec: RunSpec) -> LogShipper | None:
    group, stream = spec.log_opts.get("awslogs-group"), spec.log_opts.get("awslogs-stream")
    if not group or not stream:
        return None
    if not os.environ.get(CONTROL):
        say(f"no {CONTROL}: the output is not shipped to CloudWatch Logs")
        return None
    return LogShipper(group, stream, os.environ[CONTROL], on_error=say)


def run(spec: RunSpec) -> int:
    """``docker run``: the container's exit code (125 if it could not start, as docker)."""
    shipper = _shipper(spec)
    try:
        if spec.gpus:
            _note(f"no GPU on this machine: --gpus {spec.gpus} is ignored, the job runs without one", shipper)
        real = os.environ.get(REAL_DOCKER)
        if real:
            argv = [real, "run", "--rm", "--name", _engine_name(spec.name)]
            argv += [word for pair in spec.env for word in ("-e", pair)] + [spec.image, *spec.command]
            return _supervise(argv, os.environ.copy(), spec, shipper)
        if not spec.command:
            note = (f"no Docker engine here: image {spec.image} would run now; the job gives no command "
                    "to run in its place, so the container exits 0")
            say(note)
            if shipper:
                shipper.add(f"{PREFIX} {note}")
            return 0
        say(f"no Docker engine here: running the job's command as a plain process, "
            f"WITHOUT container isolation (image {spec.image} is not used)")
        return _supervise(spec.command, container_environment(spec.env), spec, shipper)
    finally:
        if shipper:
            shipper.close()


def _note(message: str, shipper: LogShipper | None) -> None:
    # On the console, and in the job's log stream where its user reads the output.
    say(message)
    if shipper:
        shipper.add(f"{PREFIX} {message}")


def _supervise(argv: list[str], env: dict[str, str], spec: RunSpec, shipper: LogShipper | None) -> int:
    """Run ``argv``, copy its output to the console and the log stream, return its exit code."""
    try:
        process = subprocess.Popen(argv, env=env, cwd=os.environ.get(INSTANCE_DIR), stdin=subprocess.DEVNULL,
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
                                   errors="replace")
    except FileNotFoundError:
        say(f"{argv[0]}: executable file not found in $PATH")
        return 127
    except PermissionError:
        say(f"{argv[0]}: permission denied")
        return 126
    pid_file = _pid_file(spec.name)
    pid_file.write_text(str(process.pid))
    # A TERM for the "container" (docker stop) or the whole instance reaches the job.
    signal.signal(signal.SIGTERM, lambda *_: process.send_signal(signal.SIGTERM))
    relay = threading.Thread(target=_relay, args=(process, shipper), daemon=True)
    relay.start()
    try:
        code = _exit_code(process.wait())
    finally:
        pid_file.unlink(missing_ok=True)
    # A container ends with its main process; a background child still holding the
    # output must not keep it "running" (it dies when the instance powers off).
    relay.join(timeout=RELAY_DRAIN_SECONDS)
    return code


def _relay(process: subprocess.Popen[str], shipper: LogShipper | None) -> None:
    assert process.stdout is not None
    for line in process.stdout:
        sys.stdout.write(line)
        sys.stdout.flush()
        if shipper:
            shipper.add(line.rstrip("\n"))


def stop(args: list[str]) -> int:
    """``docker stop [--time N] NAME``: TERM, then KILL after N seconds (docker's default 10)."""
    grace, names, words = 10.0, [], list(args)
    while words:
        word = words.pop(0)
        if word in ("-t", "--time") and words:
            grace = float(words.pop(0))
        else:
            names.append(word)
    real = os.environ.get(REAL_DOCKER)
    if real:
        return subprocess.call([real, "stop", "--time", str(int(grace)), *map(_engine_name, names)])
    return max((_stop_local(name, grace) for name in names), default=0)


def _stop_local(name: str, grace: float) -> int:
    pid_file = _pid_file(name)
    try:
        pid = int(pid_file.read_text())
    except (OSError, ValueError):
        say(f"Error response from daemon: No such container: {name}")
        return 1
    _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while pid_file.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    if pid_file.exists():
        _signal(pid, signal.SIGKILL)
    print(name, flush=True)
    return 0


def _signal(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass


def main(args: list[str]) -> int:
    """``docker run`` or ``docker stop`` (the other commands are ``docker_command``'s)."""
    command, rest = args[0], args[1:]
    if command == "run":
        try:
            return run(parse_run(rest))
        except ValueError as exc:
            say(f"docker run: {exc}")
            return 125
    return stop(rest)
