"""What an emulated instance's operating system looks like to the bootstrap.

The real bootstrap script runs unchanged; what it calls is provided here:

- ``docker``: ``python -m jobscheduler.local.docker_command`` (the real engine when
  one answers, else a local process runner).
- ``shutdown``: asks the emulator, through the instance's metadata server, to
  power the instance off now (``-h now``) or later (``-h +N``), or cancels.
- ``systemctl``: nothing to start (the stand-in docker is always ready) and
  no ECS agent to stop.

Every other command the bootstrap relies on (``curl``, ``python3``, ``date``,
``mktemp``, ...) is the machine's own. Its AWS calls go to the local endpoint.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from jobscheduler.local import docker_command, docker_runner

REPO_ROOT = Path(__file__).resolve().parents[2]

_DOCKER = """#!/bin/sh
# jobscheduler local: the instance's docker (see jobscheduler/local/docker_command.py).
# Standard library only: -S skips site-packages, a third of its start-up time.
PYTHONPATH={root}${{PYTHONPATH:+:$PYTHONPATH}} exec {python} -S -m jobscheduler.local.docker_command "$@"
"""

_SHUTDOWN = """#!/bin/bash
# jobscheduler local: the instance's shutdown. The emulator powers the instance
# off as EC2 would (shutdown behaviour terminate).
when=now
for arg in "$@"; do
  case $arg in
    -c) when=cancel ;;
    now | +[0-9]*) when=$arg ;;
  esac
done
curl -sS --fail --max-time 5 -X POST --data-binary "$when" "$JOBSCHEDULER_LOCAL_CONTROL/local/shutdown" >/dev/null
"""

_SYSTEMCTL = """#!/bin/sh
# jobscheduler local: "start" succeeds (the stand-in docker needs no daemon); any other
# request fails as for a unit that is not there (an emulated instance has no ECS agent).
[ "$1" = start ]
"""


def write_standins(directory: Path) -> Path:
    """Write the stand-in commands into ``directory``; returns it (it goes first on PATH)."""
    directory.mkdir(parents=True, exist_ok=True)
    scripts = {
        "docker": _DOCKER.format(root=shlex.quote(str(REPO_ROOT)), python=shlex.quote(sys.executable)),
        "shutdown": _SHUTDOWN,
        "systemctl": _SYSTEMCTL,
    }
    for name, text in scripts.items():
        path = directory / name
        path.write_text(text)
        path.chmod(0o755)
    return directory


def real_docker() -> str | None:
    """The path of a docker client whose engine answers, or None."""
    client = shutil.which("docker")
    if client is None:
        return None
    try:
        answer = subprocess.run([client, "info"], capture_output=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return client if answer.returncode == 0 else None


def instance_environment(*, standins: Path, instance_id: str, instance_dir: Path, imds_url: str,
                         aws_endpoint: str, region: str, real_docker_path: str | None) -> dict[str, str]:
    """The environment the bootstrap runs in: a clean one, as cloud-init gives user data.

    The bootstrap's AWS calls (ECR login, secrets) go to the local endpoint,
    signed with the credentials the instance's metadata serves; the container
    output reaches the local log group through the emulator. The bootstrap's
    timing is shortened for a local demo.
    """
    host_path = os.environ.get("PATH", os.defpath)
    return {
        "PATH": f"{standins}{os.pathsep}{host_path}",
        "HOME": os.environ.get("HOME", str(instance_dir)),
        "LANG": os.environ.get("LANG", "C.UTF-8"),
        "TMPDIR": str(instance_dir),
        "AWS_DEFAULT_REGION": region,
        "JOBSCHEDULER_IMDS_ENDPOINT": imds_url,
        "JOBSCHEDULER_AWS_ENDPOINT": aws_endpoint,
        "JOBSCHEDULER_SPOT_POLL_SECONDS": "1",
        "JOBSCHEDULER_STOP_GRACE_SECONDS": "5",
        "JOBSCHEDULER_RETRY_BASE_SECONDS": "1",
        docker_runner.CONTROL: imds_url,
        docker_runner.INSTANCE_ID: instance_id,
        docker_runner.INSTANCE_DIR: str(instance_dir),
        docker_runner.HOST_PATH: host_path,
        docker_command.REAL_DOCKER: real_docker_path or "",
    }
