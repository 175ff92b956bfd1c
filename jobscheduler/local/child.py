"""A part of the local stack in a process of its own, which never outlives the stack.

The stack starts each child as ``python -m <module> ARGS...`` and waits for the
line the child prints once it is ready. A child ignores Ctrl-C (the terminal
sends it to the whole group; the stack stops its children after its own
clean-up), ends on SIGTERM, and ends by itself when its stdin closes, which
happens when the stack's process is gone however it went (even killed with
SIGKILL). After the ready line the child's stdout is its stderr, which it
shares with the stack: what it prints later lands among the stack's own lines.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from typing import IO

STOP_GRACE_SECONDS = 10.0


class ChildProcess:
    """A child process running ``module`` with ``args``, started and ready, or a RuntimeError saying why not."""

    def __init__(self, module: str, args: Sequence[str], ready: str, what: str, ready_timeout: float = 60,
                 env: dict[str, str] | None = None) -> None:
        self.what = what
        # stdin stays open, never written: its end tells the child that the stack is gone.
        self.process = subprocess.Popen([sys.executable, "-m", module, *args], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, env=env)
        try:
            self._wait_ready(ready, ready_timeout)
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self, ready: str, timeout: float) -> None:
        found: list[str] = []
        reader = threading.Thread(target=lambda: found.append(_ready_line(self.process.stdout, ready)), daemon=True)
        reader.start()
        reader.join(timeout)
        if not found or found[0] != ready:
            code = self.process.poll()
            why = f"exited {code}" if code is not None else f"did not start in {timeout:.0f} s"
            raise RuntimeError(f"{self.what} {why}")

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


def _ready_line(stream: IO[bytes] | None, ready: str) -> str:
    """The ready line, once it comes (anything a library printed before it is skipped); "" at end of file."""
    for raw in iter(stream.readline if stream is not None else (lambda: b""), b""):
        if raw.decode(errors="replace").strip() == ready:
            return ready
    return ""


def serve(ready: str, start: Callable[[], Callable[[], None]]) -> None:
    """The child's side: ``start()`` its work (returning how to stop it), say ``ready``, run until told to end.

    Ends on SIGTERM or when stdin closes; the stop function gets a few seconds, then the process exits
    without waiting for threads still running.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the stack decides when to stop
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda signum, frame: done.set())
    stop = start()
    print(ready, flush=True)
    # Nothing reads stdout after the ready line: anything printed later goes to stderr instead.
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())

    def parent_gone() -> None:
        sys.stdin.buffer.read()  # returns at end of file: the stack's process has closed it, or is gone
        done.set()

    threading.Thread(target=parent_gone, name="parent-watch", daemon=True).start()
    while not done.wait(1.0):
        pass
    stopping = threading.Thread(target=stop, daemon=True)
    stopping.start()
    stopping.join(timeout=5)
    sys.stdout.flush()
    os._exit(0)
