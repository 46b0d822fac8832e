"""The run state machine: one table that code and tests both read.

`TRANSITIONS[(status_before, event_type)]` is the set of statuses the run may have after the event.
A pair missing from the table is an illegal transition. `None` is "no run yet".
"""

from __future__ import annotations

QUEUED, CLAIMED, RUNNING, CANCELLING = "queued", "claimed", "running", "cancelling"
SUCCEEDED, FAILED, CANCELLED = "succeeded", "failed", "cancelled"

STATUSES = (QUEUED, CLAIMED, RUNNING, CANCELLING, SUCCEEDED, FAILED, CANCELLED)
ACTIVE = frozenset({CLAIMED, RUNNING, CANCELLING})  # a worker holds a lease
TERMINAL = frozenset({SUCCEEDED, FAILED, CANCELLED})

FAILURE_REASONS = ("exit_code", "timeout", "lease_expired", "worker_gone", "spawn_error")
OUTCOMES = ("succeeded", "failed", "cancelled", "timed_out")
REAP_REASONS = ("lease_expired", "worker_gone")

_ENDINGS = frozenset({SUCCEEDED, FAILED, CANCELLED})

TRANSITIONS: dict[tuple[str | None, str], frozenset[str]] = {
    (None, "submitted"): frozenset({QUEUED}),
    (QUEUED, "claimed"): frozenset({CLAIMED}),
    (QUEUED, "cancelled"): frozenset({CANCELLED}),
    (CLAIMED, "started"): frozenset({RUNNING}),
    (CANCELLING, "started"): frozenset({CANCELLING}),
    (CLAIMED, "cancel_requested"): frozenset({CANCELLING}),
    (RUNNING, "cancel_requested"): frozenset({CANCELLING}),
    (FAILED, "retry_scheduled"): frozenset({QUEUED}),
}
for _status in ACTIVE:
    TRANSITIONS[(_status, "heartbeat")] = frozenset({_status})
    TRANSITIONS[(_status, "progress")] = frozenset({_status})
    TRANSITIONS[(_status, "artifact")] = frozenset({_status})
    TRANSITIONS[(_status, "result")] = frozenset({_status})
    TRANSITIONS[(_status, "exited")] = _ENDINGS
    TRANSITIONS[(_status, "reaped")] = frozenset({FAILED, CANCELLED})

# Annotations about a run that never change its status (a refused late report).
ANNOTATIONS = frozenset({"refused"})


def allowed(status: str | None, event_type: str) -> bool:
    return event_type in ANNOTATIONS or (status, event_type) in TRANSITIONS


_EXIT_STATUS = {"succeeded": SUCCEEDED, "cancelled": CANCELLED}


def exit_status(outcome: str) -> str:
    return _EXIT_STATUS.get(outcome, FAILED)


def exit_failure_reason(outcome: str, reason: str | None) -> str | None:
    if outcome == "succeeded" or outcome == "cancelled":
        return None
    if outcome == "timed_out":
        return "timeout"
    return reason or "exit_code"
