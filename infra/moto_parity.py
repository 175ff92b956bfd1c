"""Where moto's workflow interpreter differs from AWS in a way our workflow relies on, make it agree.

Applied by the tests and the local stack, never in AWS. Each shim names the
AWS behaviour it restores.
"""

from __future__ import annotations

from typing import Any

_applied = False


def apply() -> None:
    """Install the shims once per process."""
    global _applied
    if _applied:
        return
    _heartbeat_timeout_error()
    _stop_right_after_start()
    _callback_before_the_wait()
    _atomic_item_writes()
    _applied = True


def _heartbeat_timeout_error() -> None:
    # AWS fails a task whose heartbeats stop with States.HeartbeatTimeout (which
    # States.Timeout also matches); moto reports every timeout as States.Timeout.
    from moto.stepfunctions.parser.api import HistoryEventType, TaskTimedOutEventDetails
    from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import FailureEvent
    from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name import StatesErrorName
    from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name_type import (
        StatesErrorNameType,
    )
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.state_task import StateTask
    from moto.stepfunctions.parser.asl.eval.callback.callback import HeartbeatTimeoutError
    from moto.stepfunctions.parser.asl.eval.event.event_detail import EventDetails

    original = StateTask._from_error

    def from_error(self: Any, env: Any, ex: Exception) -> Any:
        if isinstance(ex, HeartbeatTimeoutError):
            name = StatesErrorNameType.StatesHeartbeatTimeout
            return FailureEvent(
                env=env, error_name=StatesErrorName(typ=name), event_type=HistoryEventType.TaskTimedOut,
                event_details=EventDetails(taskTimedOutEventDetails=TaskTimedOutEventDetails(error=name.to_name())),  # type: ignore[typeddict-item]
            )
        return original(self, env, ex)

    StateTask._from_error = from_error  # type: ignore[method-assign]


def _stop_right_after_start() -> None:
    # AWS can stop an execution the moment it started; moto's worker thread sets
    # up its environment a little later and fails a stop that comes first.
    import time

    from moto.stepfunctions.parser.backend.execution_worker import ExecutionWorker

    original = ExecutionWorker.stop

    def stop(self: Any, stop_date: Any, error: str | None, cause: str | None) -> None:
        deadline = time.monotonic() + 5
        # set_stop only acts once the program runs (its state is None until then).
        while (self.env is None or self.env.program_state() is None) and time.monotonic() < deadline:
            time.sleep(0.01)
        original(self, stop_date, error, cause)

    ExecutionWorker.stop = stop  # type: ignore[method-assign]


def _callback_before_the_wait() -> None:
    # AWS completes a task whose SendTaskSuccess arrives the moment the task's
    # own call returned. moto sets up the heartbeat watch only after that call,
    # and a fresh watch forgets a result that came first, so the task then
    # waits for its timeout. A watch set up after the result starts notified.
    from moto.stepfunctions.parser.asl.eval.callback.callback import CallbackEndpoint

    original = CallbackEndpoint.setup_heartbeat_endpoint

    def setup_heartbeat_endpoint(self: Any, heartbeat_seconds: int) -> Any:
        endpoint = original(self, heartbeat_seconds)
        if self.get_outcome() is not None:
            endpoint.notify()
        return endpoint

    CallbackEndpoint.setup_heartbeat_endpoint = setup_heartbeat_endpoint  # type: ignore[method-assign]


def _atomic_item_writes() -> None:
    # DynamoDB applies each conditional write atomically. moto reads, checks and
    # writes an item without a lock, so two threads (the workflow's RunJob and an
    # instance's callback) can both pass their conditions and one write is lost.
    import functools
    import threading

    from moto.dynamodb.models import DynamoDBBackend

    lock = threading.RLock()
    for name in ("put_item", "update_item", "delete_item", "transact_write_items", "get_item"):
        original = getattr(DynamoDBBackend, name)

        @functools.wraps(original)
        def locked(self: Any, *args: Any, __original: Any = original, **kwargs: Any) -> Any:
            with lock:
                return __original(self, *args, **kwargs)

        setattr(DynamoDBBackend, name, locked)
