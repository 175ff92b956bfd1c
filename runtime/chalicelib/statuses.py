"""A job's statuses, the moves allowed between them, and the tags that tie an instance to its job.

The one definition: the runtime imports these, the workflow's ASL writes the
same literals (tests/test_statuses.py reads the ASL and checks each status it
writes, and each guard, against ``TRANSITIONS``), the README's table is drawn
from ``MEANINGS`` and ``TRANSITIONS``, and the client's copy is checked equal.
"""

from __future__ import annotations

from collections.abc import Iterable

SCHEDULED = "Scheduled"
REQUESTED = "Requested"
RUNNING = "Running"
FINISHED_OK = "FinishedOK"
FINISHED_NOK = "FinishedNOK"
INTERRUPTED = "Interrupted"
TERMINATED_OK = "TerminatedOK"
TERMINATED_NOK = "TerminatedNOK"
TIMED_OUT = "TimedOut"
CANCELLED = "Cancelled"
FAILED = "Failed"

TERMINAL = frozenset({TERMINATED_OK, TERMINATED_NOK, TIMED_OUT, CANCELLED, FAILED})
STATUSES = (SCHEDULED, REQUESTED, RUNNING, FINISHED_OK, FINISHED_NOK, INTERRUPTED, *sorted(TERMINAL))
# While a job is in one of these, an instance may exist for it.
IN_FLIGHT = tuple(s for s in STATUSES if s not in TERMINAL and s != SCHEDULED)
# The callback reports a Finished status; once the instance is gone the job is Terminated.
TERMINATED_AFTER = {FINISHED_OK: TERMINATED_OK, FINISHED_NOK: TERMINATED_NOK}

# An attempt ends with the job's terminal status, or with one of these when Spot took its instance.
PREEMPTED = "Preempted"  # the interruption warning came
LOST = "Lost"  # the instance was gone before the job started on it
ATTEMPT_OUTCOMES = (PREEMPTED, LOST, *sorted(TERMINAL))

MEANINGS = {
    SCHEDULED: "waiting for its `scheduledAt`",
    REQUESTED: "asking EC2 for an instance, or waiting for it to boot",
    RUNNING: "the container runs; the workflow waits for the instance's callback",
    FINISHED_OK: "the container exited 0; its instance is being terminated",
    FINISHED_NOK: "the container exited non-zero; its instance is being terminated (then, if `retry` allows, "
                  "the job is `Requested` again for its next run)",
    INTERRUPTED: "Spot took the instance (attempt `Preempted` or `Lost`); waiting for a new one",
    TERMINATED_OK: "exited 0, instance terminated",
    TERMINATED_NOK: "exited non-zero (`exitCode`), instance terminated",
    TIMED_OUT: "no callback within `maxRuntimeSeconds`, or no heartbeat within `heartbeatSeconds`",
    CANCELLED: "cancelled by `POST /jobs/{jobId}/cancel`",
    FAILED: "could not run: no capacity in time, EC2 refused the launch, interrupted on every attempt, "
            "or its workflow failed",
}

# The moves between statuses that have not ended. Besides these, any status
# that is not terminal may end, with any terminal status: the workflow's last
# write and the clean-up handlers name the end, and guard only against a job
# that has already ended. A terminal status never changes. Writing a job's
# own status again (Interrupted, after a second preemption) is no move.
_MOVES = {
    SCHEDULED: {REQUESTED},
    REQUESTED: {RUNNING, FINISHED_OK, FINISHED_NOK, INTERRUPTED},
    RUNNING: {FINISHED_OK, FINISHED_NOK, INTERRUPTED},
    INTERRUPTED: {RUNNING, FINISHED_OK, FINISHED_NOK},
    FINISHED_OK: set(),
    FINISHED_NOK: {REQUESTED},  # a failed run that the job's retry runs again
}
TRANSITIONS: dict[str, frozenset[str]] = {
    status: frozenset() if status in TERMINAL else frozenset(_MOVES[status] | TERMINAL) for status in STATUSES
}

# The tags every instance of the stack carries from its launch (the workflow's CreateFleet writes them).
TAG_JOB = "jobscheduler:job"
TAG_STACK = "jobscheduler:stack"


def may_move(old: str, new: str) -> bool:
    """Whether a job in ``old`` may be written ``new`` (the same status again is no move)."""
    return old == new or new in TRANSITIONS[old]


def guarded(allowed_from: Iterable[str] = (), not_in: Iterable[str] = ()) -> frozenset[str]:
    """The statuses a conditional write lets through: ``allowed_from`` (all if empty), less ``not_in``."""
    allowed, refused = frozenset(allowed_from), frozenset(not_in)
    unknown = (allowed | refused) - set(STATUSES)
    if unknown:
        raise ValueError(f"not statuses: {sorted(unknown)}")
    return (allowed or frozenset(STATUSES)) - refused


def check_write(status: str | None, allowed_from: Iterable[str] = (), not_in: Iterable[str] = ()) -> None:
    """Refuse (``ValueError``) a guard that would let a status write make a move ``TRANSITIONS`` does not have.

    A write that sets no status needs no guard; one that does must name the statuses it may leave.
    """
    sources = guarded(allowed_from, not_in)
    if status is None:
        return
    if status not in TRANSITIONS:
        raise ValueError(f"{status!r} is not a status")
    if sources == frozenset(STATUSES):
        raise ValueError(f"a write of {status} must name the statuses it may leave")
    refused = sorted(s for s in sources if not may_move(s, status))
    if refused:
        raise ValueError(f"{', '.join(refused)} may not become {status}")
