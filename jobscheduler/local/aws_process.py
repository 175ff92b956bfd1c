"""The emulated AWS in a process of its own: moto's server, the parity shims, the workflow interpreter.

The local stack runs on two processes, so on two cores: this one answers
every AWS call and runs every execution; the stack's own process serves the
API, reads the table's stream, dispatches events and emulates instances. They
talk over the loopback, as a deployed stack's parts talk to AWS.

The child never outlives the stack: it ignores Ctrl-C (the stack stops it,
after its own clean-up), ends on SIGTERM, and ends by itself when its stdin
closes, which happens when the stack's process is gone however it went
(even killed with SIGKILL).

Run by :class:`EmulatorProcess`, as ``python -m jobscheduler.local.aws_process PORT``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from typing import IO

READY = "jobscheduler-aws ready"
STOP_GRACE_SECONDS = 10.0


class EmulatorProcess:
    """A child process serving the emulated AWS on 127.0.0.1:``port``."""

    def __init__(self, port: int, ready_timeout: float = 60) -> None:
        self.port = port
        # stdin stays open, never written: its end tells the child that the stack is gone.
        self.process = subprocess.Popen(
            [sys.executable, "-m", "jobscheduler.local.aws_process", str(port)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            # Two malloc arenas, not one per thread that ever allocated (up to 16 here): an emulator
            # running hundreds of executions' threads otherwise keeps freed memory spread over them all.
            env={**os.environ, "MOTO_PORT": str(port), "MALLOC_ARENA_MAX": "2"})
        try:
            self._wait_ready(ready_timeout)
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self, timeout: float) -> None:
        assert self.process.stdout is not None
        found: list[str] = []
        reader = threading.Thread(target=lambda: found.append(_ready_line(self.process.stdout)), daemon=True)
        reader.start()
        reader.join(timeout)
        if not found or found[0] != READY:
            code = self.process.poll()
            why = f"exited {code}" if code is not None else f"did not start in {timeout:.0f} s"
            raise RuntimeError(f"the emulated AWS on port {self.port} {why}")

    @property
    def pid(self) -> int:
        """The child's process id."""
        return self.process.pid

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after a grace period; the child is reaped either way."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=STOP_GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                stream.close()


def _ready_line(stream: IO[bytes] | None) -> str:
    """The ready line, once it comes (anything a library printed before it is skipped); "" at end of file."""
    for raw in iter(stream.readline if stream is not None else (lambda: b""), b""):
        if raw.decode(errors="replace").strip() == READY:
            return READY
    return ""


def main(port: int) -> None:
    """Serve the emulated AWS until SIGTERM or until stdin closes."""
    from jobscheduler.local import cloud

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the stack decides when to stop
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda signum, frame: done.set())
    server = cloud.start_moto(port)
    print(READY, flush=True)
    # Nothing reads stdout after the ready line: anything printed later goes to stderr instead.
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())

    def parent_gone() -> None:
        sys.stdin.buffer.read()  # returns at end of file: the stack's process has closed it, or is gone
        done.set()

    threading.Thread(target=parent_gone, name="parent-watch", daemon=True).start()
    while not done.wait(1.0):
        pass
    stopping = threading.Thread(target=server.stop, daemon=True)
    stopping.start()
    stopping.join(timeout=5)
    # Executions still running are threads of this process: exit without waiting for them.
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main(int(sys.argv[1]))
