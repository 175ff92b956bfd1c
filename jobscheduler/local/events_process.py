"""The job events in a process of their own: the table's stream read into ``on_job_change``, the events printed.

In AWS the stream's records go to a Lambda function of their own; here they
did so on a thread of the stack's process, where each batch (the records, the
events it publishes, the printing) took the interpreter lock from the API's
requests: 43% of that process's busy time while jobs were posted, and the
API's overhead over its two AWS calls went from about 1.19 to 1.33 (four
rounds of 300 sequential ``POST /jobs``, each against the same calls made
directly). Like every child of the stack (``child.py``), it never outlives
the stack; it reads the runtime's settings and the AWS endpoint from the
environment the stack gives it, as the Lambda function reads its own.

Run by :class:`JobEventsProcess`, as ``python -m jobscheduler.local.events_process STREAM_ARN QUEUE_URL``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from jobscheduler.local.child import ChildProcess, serve

READY = "jobscheduler-events ready"


class JobEventsProcess(ChildProcess):
    """A child process delivering the job table's stream to ``on_job_change`` and printing the job events."""

    def __init__(self, stream_arn: str, queue_url: str, ready_timeout: float = 60) -> None:
        super().__init__("jobscheduler.local.events_process", [stream_arn, queue_url], READY,
                         "the job events' process", ready_timeout)


def main(stream_arn: str, queue_url: str) -> None:
    """Deliver and print job events until SIGTERM or until stdin closes."""
    from jobscheduler.local import runtime
    from jobscheduler.local.events import JobChangeStream, JobEventsWiring
    from jobscheduler.render import console

    def start() -> Callable[[], None]:
        new_client = runtime.module("chalicelib.aws").new_client
        changes = JobChangeStream(new_client("dynamodbstreams"), new_client("sqs"),
                                  JobEventsWiring(stream_arn, queue_url), runtime.app_module(), console())
        changes.start()
        return changes.stop

    serve(READY, start)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
