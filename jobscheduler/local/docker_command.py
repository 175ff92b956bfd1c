"""The emulated instance's ``docker`` command: the entry point of the stand-in (see ``standins.py``).

An instance calls ``docker`` three times a job (``info``, ``pull``, ``run``),
each a fresh interpreter. Without an engine ``info``, ``pull`` and ``login``
answer at once, importing nothing but ``os`` and ``sys``; ``run`` and ``stop``
(and every command when an engine answers) go to ``docker_runner``, whose
imports cost a fresh interpreter some 40 ms of CPU. Locally the instances'
CPU is the stack's machine's CPU: 32 jobs in flight made the instance
processes use more of it than the emulated AWS did.

Run as ``python -S -m jobscheduler.local.docker_command ARGS``.
"""

from __future__ import annotations

import os
import sys

REAL_DOCKER = "JOBSCHEDULER_LOCAL_REAL_DOCKER"
PREFIX = "[local docker]"


def say(message: str) -> None:
    """A line from the stand-in itself, kept apart from the container's output."""
    print(f"{PREFIX} {message}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    """Dispatch one docker command line."""
    args = list(sys.argv[1:] if argv is None else argv)
    command, rest = (args[0], args[1:]) if args else ("", [])
    if command in ("run", "stop"):
        from jobscheduler.local import docker_runner

        return docker_runner.main(args)
    real = os.environ.get(REAL_DOCKER)
    if real:
        os.execv(real, [real, *args])
    return _without_engine(command, rest)


def _without_engine(command: str, rest: list[str]) -> int:
    if command == "info":
        return 0
    if command == "pull":
        say(f"no Docker engine here: not pulling {rest[-1] if rest else 'the image'}")
        return 0
    if command == "login":
        sys.stdin.read()  # the password arrives on stdin; nothing to log in to
        return 0
    say(f"docker {command}: not provided without a Docker engine")
    return 1


if __name__ == "__main__":
    sys.exit(main())
