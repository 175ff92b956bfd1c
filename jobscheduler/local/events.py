"""The events moto does not emit, delivered to the runtime's handlers as EventBridge would.

- "Step Functions Execution Status Change" for this state machine's
  executions ending FAILED, TIMED_OUT or ABORTED -> ``on_execution_ended``
  (found by polling the executions, once each).
- The sweeper's schedule: ``sweeper`` every minute while its rule is enabled
  (the sweeper turns it off when idle, a job leaving Scheduled turns it on).
- "EC2 Spot Instance Interruption Warning" -> ``on_spot_interruption``, on
  demand (``jobscheduler local interrupt``).
- The job table's stream -> ``on_job_change``, as Lambda's event source
  mapping would deliver it (``JobChangeStream``); the "Job Status Change"
  events it publishes reach a queue through the same EventBridge rule a user
  would write, and are printed from there.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import ModuleType
from typing import Any

from rich.console import Console

ACCOUNT = "123456789012"
REGION = "us-east-1"
ENDED = ("FAILED", "TIMED_OUT", "ABORTED")
POLL_SECONDS = 1.0
SWEEP_SECONDS = 60.0

Handler = Callable[[dict[str, Any], Any], Any]


def _envelope(source: str, detail_type: str, resources: list[str], detail: dict[str, Any]) -> dict[str, Any]:
    """An EventBridge event around ``detail``."""
    return {"version": "0", "id": str(uuid.uuid4()), "detail-type": detail_type, "source": source,
            "account": ACCOUNT, "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), "region": REGION,
            "resources": resources, "detail": detail}


def execution_ended_event(execution: dict[str, Any]) -> dict[str, Any]:
    """The event EventBridge sends when an execution (as ListExecutions lists it) has ended."""
    detail = {"executionArn": execution["executionArn"], "stateMachineArn": execution["stateMachineArn"],
              "name": execution["name"], "status": execution["status"]}
    return _envelope("aws.states", "Step Functions Execution Status Change", [execution["executionArn"]], detail)


def spot_interruption_event(instance_id: str) -> dict[str, Any]:
    """The two-minute warning EC2 sends before Spot reclaims ``instance_id``."""
    arn = f"arn:aws:ec2:{REGION}:{ACCOUNT}:instance/{instance_id}"
    return _envelope("aws.ec2", "EC2 Spot Instance Interruption Warning", [arn],
                     {"instance-id": instance_id, "instance-action": "terminate"})


@dataclass
class EventDispatcher:
    """Polls the state machine's executions and keeps the sweeper's schedule, in one thread."""

    sfn: Any
    state_machine_arn: str
    handlers: ModuleType  # runtime/app.py: on_execution_ended, sweeper, on_spot_interruption
    console: Console
    rules: Any = None  # an events client: the sweeper runs while its rule is enabled, as in EventBridge
    sweeper_rule: str | None = None
    _delivered: set[str] = field(default_factory=set)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        """Start polling in a background thread."""
        self._thread = threading.Thread(target=self._run, name="events", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop polling (a handler already running finishes first)."""
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=30)

    def deliver_spot_interruption(self, instance_id: str) -> Any:
        """Call ``on_spot_interruption`` with the warning for ``instance_id``; returns its answer."""
        return self._call("on_spot_interruption", spot_interruption_event(instance_id))

    def poll_executions(self) -> None:
        """Deliver one event for every execution that has ended FAILED, TIMED_OUT or ABORTED."""
        for status in ENDED:
            pages = self.sfn.get_paginator("list_executions").paginate(
                stateMachineArn=self.state_machine_arn, statusFilter=status)
            for execution in (e for page in pages for e in page["executions"]):
                if execution["executionArn"] not in self._delivered:
                    self._delivered.add(execution["executionArn"])
                    self._call("on_execution_ended", execution_ended_event(execution))

    def sweep(self) -> Any:
        """One scheduled sweeper run, if its rule is enabled (``None`` if not)."""
        if self.rules and self.sweeper_rule and self.rules.describe_rule(Name=self.sweeper_rule)["State"] != "ENABLED":
            return None
        return self._call("sweeper", _envelope("aws.events", "Scheduled Event", [], {}), quiet=True)

    def _run(self) -> None:
        next_sweep = time.monotonic() + SWEEP_SECONDS
        while not self._stop.wait(POLL_SECONDS):
            self._guarded(self.poll_executions)
            if time.monotonic() >= next_sweep:
                next_sweep = time.monotonic() + SWEEP_SECONDS
                self._guarded(self.sweep)

    def _guarded(self, step: Callable[[], Any]) -> None:
        try:
            step()
        except Exception as exc:  # one failed poll must not end the dispatching
            self.console.print(f"[red]event dispatch: {exc}[/red]")

    def _call(self, name: str, event: dict[str, Any], quiet: bool = False) -> Any:
        handler: Handler = getattr(self.handlers, name)
        answer = handler(event, None)
        if not quiet or _did_something(answer):
            self.console.print(f"[magenta]event[/magenta] {event['detail-type']} -> {name}: {answer}")
        return answer


def _did_something(answer: Any) -> bool:
    return isinstance(answer, dict) and any(answer.get(key) for key in ("terminated", "ended"))


JOB_EVENTS_RULE = "jobscheduler-job-events"
JOB_EVENTS_QUEUE = "jobscheduler-job-events"
STREAM_POLL_SECONDS = 0.3
# A poll prints at most this many receives of ten events, so the stream is read again soon under load.
MAX_RECEIVES_PER_POLL = 20


@dataclass
class JobEventsWiring:
    """The job table's stream, and the queue behind the rule on "Job Status Change" events."""

    stream_arn: str
    queue_url: str

    @classmethod
    def create(cls, session: Any, table: str) -> JobEventsWiring:
        """Turn the table's stream on (as the CDK stack does) and route job events to a queue."""
        stream_arn = session.client("dynamodb").update_table(
            TableName=table, StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
        )["TableDescription"]["LatestStreamArn"]
        sqs, bus = session.client("sqs"), session.client("events")
        queue_url = sqs.create_queue(QueueName=JOB_EVENTS_QUEUE)["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        bus.put_rule(Name=JOB_EVENTS_RULE, EventPattern=json.dumps(
            {"source": ["jobscheduler"], "detail-type": ["Job Status Change"]}))
        bus.put_targets(Rule=JOB_EVENTS_RULE, Targets=[{"Id": "local-queue", "Arn": queue_arn}])
        return cls(stream_arn, queue_url)


@dataclass
class JobChangeStream:
    """Reads the job table's stream in order and hands each batch to ``on_job_change``; prints the events."""

    streams: Any  # a dynamodbstreams client
    sqs: Any
    wiring: JobEventsWiring
    handlers: ModuleType  # runtime/app.py: on_job_change
    console: Console
    _iterator: str | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        """Start reading in a background thread, from the stream's first record."""
        self._thread = threading.Thread(target=self._run, name="job-changes", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop reading (a batch being handled finishes first)."""
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=30)

    def poll(self) -> int:
        """Deliver the records written since the last poll, then print the events they published."""
        if self._iterator is None:
            self._iterator = self._first_iterator()
        answer = self.streams.get_records(ShardIterator=self._iterator, Limit=100)
        records = answer.get("Records", [])
        if records:
            # Like Lambda: the batch is retried (same iterator) until the handler succeeds.
            self.handlers.on_job_change({"Records": records}, None)
        self._iterator = answer["NextShardIterator"]
        self.print_events()
        return len(records)

    def print_events(self) -> list[dict[str, Any]]:
        """Print (and remove) every job event waiting in the queue, ten a receive, as SQS hands them out."""
        shown: list[dict[str, Any]] = []
        for _ in range(MAX_RECEIVES_PER_POLL):
            messages = self.sqs.receive_message(QueueUrl=self.wiring.queue_url, MaxNumberOfMessages=10).get(
                "Messages", [])
            for message in messages:
                event = json.loads(message["Body"])
                detail = event.get("detail", {})
                self.console.print(f"[magenta]event[/magenta] {event.get('detail-type')}  {detail.get('jobId')}  "
                                   f"{detail.get('previousStatus') or '-'} -> [bold]{detail.get('status')}[/bold]")
                shown.append(event)
            if messages:
                # One call for the whole receive (at most ten, as DeleteMessageBatch takes), not one a message:
                # in a burst the emulator answers the workflow's calls first.
                self.sqs.delete_message_batch(QueueUrl=self.wiring.queue_url, Entries=[
                    {"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]} for n, m in enumerate(messages)])
            if len(messages) < 10:
                break  # drained: a queue left to grow costs every later receive (moto reads all it holds)
        return shown

    def _first_iterator(self) -> str:
        shards = self.streams.describe_stream(StreamArn=self.wiring.stream_arn)["StreamDescription"]["Shards"]
        return str(self.streams.get_shard_iterator(
            StreamArn=self.wiring.stream_arn, ShardId=shards[0]["ShardId"],
            ShardIteratorType="TRIM_HORIZON")["ShardIterator"])

    def _run(self) -> None:
        while not self._stop.wait(STREAM_POLL_SECONDS):
            try:
                while self.poll() and not self._stop.is_set():
                    pass  # drain a backlog before sleeping
            except Exception as exc:  # keep reading; the next poll retries the same batch
                self.console.print(f"[red]job changes: {exc}[/red]")
