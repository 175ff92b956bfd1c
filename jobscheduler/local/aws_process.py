"""The emulated AWS in a process of its own: moto's server, the parity shims, the workflow interpreter.

This process answers every AWS call and runs every execution, on a core of
its own; the stack's process serves the API, dispatches events and emulates
instances, and the job events have a process of their own
(``events_process.py``). They talk over the loopback, as a deployed stack's
parts talk to AWS. Like every child of the stack (``child.py``), it never
outlives the stack.

Run by :class:`EmulatorProcess`, as ``python -m jobscheduler.local.aws_process PORT``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

from jobscheduler.local.child import ChildProcess, serve

READY = "jobscheduler-aws ready"


class EmulatorProcess(ChildProcess):
    """A child process serving the emulated AWS on 127.0.0.1:``port``."""

    def __init__(self, port: int, ready_timeout: float = 60) -> None:
        self.port = port
        # Two malloc arenas, not one per thread that ever allocated (up to 16 here): an emulator
        # running hundreds of executions' threads otherwise keeps freed memory spread over them all.
        super().__init__("jobscheduler.local.aws_process", [str(port)], READY, f"the emulated AWS on port {port}",
                         ready_timeout, env={**os.environ, "MOTO_PORT": str(port), "MALLOC_ARENA_MAX": "2"})


def main(port: int) -> None:
    """Serve the emulated AWS until SIGTERM or until stdin closes."""
    from jobscheduler.local import cloud

    def start() -> Callable[[], None]:
        server = cloud.start_moto(port)
        return server.stop  # type: ignore[no-any-return]  # moto's server is untyped

    # Executions still running are threads of this process: serve() exits without waiting for them.
    serve(READY, start)


if __name__ == "__main__":
    main(int(sys.argv[1]))
