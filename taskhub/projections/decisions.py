"""Decisions: pure functions from a view and a command to the events to append, or IllegalTransition."""

from __future__ import annotations

from typing import Any

from taskhub.errors import IllegalTransition, InvalidParams
from taskhub.events.clock import iso
from taskhub.events.types import (
    Cancelled,
    CancelRequested,
    Claimed,
    Event,
    Exited,
    Heartbeat,
    Reaped,
    RetryScheduled,
    Submitted,
)
from taskhub.projections import transitions as t
from taskhub.projections.runs import RunView

RETRY_BASE_S = 1.0
RETRY_MAX_S = 300.0
MAX_PRIORITY = 1_000_000


def _require(view: RunView, event_type: str) -> None:
    if not t.allowed(view.status, event_type):
        raise IllegalTransition(f"run {view.run_id} is {view.status}: cannot apply {event_type}")


def decide_submit(
    task_id: str,
    params: dict[str, Any],
    *,
    priority: int = 0,
    max_attempts: int = 1,
    timeout_s: float | None = None,
    not_before: str | None = None,
    idempotency_key: str | None = None,
    task_version: str | None = None,
    retry_of: str | None = None,
) -> Submitted:
    if isinstance(priority, bool) or not isinstance(priority, int) or abs(priority) > MAX_PRIORITY:
        raise InvalidParams(f"priority must be an integer within ±{MAX_PRIORITY}", field="priority")
    if max_attempts < 1:
        raise InvalidParams("max_attempts must be at least 1", field="max_attempts")
    if timeout_s is not None and timeout_s <= 0:
        raise InvalidParams("timeout_s must be positive", field="timeout_s")
    if idempotency_key is not None and not (0 < len(idempotency_key) <= 200):
        raise InvalidParams("idempotency_key must be 1 to 200 characters", field="idempotency_key")
    return Submitted(
        task_id=task_id,
        params=params,
        priority=priority,
        max_attempts=max_attempts,
        timeout_s=timeout_s,
        not_before=not_before,
        idempotency_key=idempotency_key,
        task_version=task_version,
        retry_of=retry_of,
    )


def decide_claim(view: RunView, fence: int, now: float, lease_s: float) -> Claimed:
    _require(view, "claimed")
    return Claimed(attempt=view.attempt + 1, fence=fence, lease_expires_at=iso(now + lease_s))


def decide_heartbeat(view: RunView, now: float, lease_s: float) -> Heartbeat:
    _require(view, "heartbeat")
    assert view.fence is not None
    return Heartbeat(fence=view.fence, lease_expires_at=iso(now + lease_s))


def decide_cancel(view: RunView, reason: str = "") -> list[Event]:
    """A queued run is cancelled at once; a claimed one asks its worker; a second request is a no-op."""
    if view.status == t.QUEUED:
        return [Cancelled(reason=reason)]
    if view.status == t.CANCELLING:
        return []
    if view.status in t.TERMINAL:
        raise IllegalTransition(f"run {view.run_id} has already finished ({view.status}): nothing to cancel")
    _require(view, "cancel_requested")
    return [CancelRequested(reason=reason)]


def retry_delay(attempt: int, jitter: float) -> float:
    """Exponential backoff: 1 s, 2 s, 4 s ... capped, stretched by up to 25% jitter (0 <= jitter < 1)."""
    delay: float = min(RETRY_BASE_S * 2.0 ** max(attempt - 1, 0), RETRY_MAX_S)
    return delay * (1 + 0.25 * jitter)


def _maybe_retry(view: RunView, fence: int, now: float, jitter: float) -> list[Event]:
    if view.attempt >= view.max_attempts:
        return []
    not_before = iso(now + retry_delay(view.attempt, jitter))
    return [RetryScheduled(fence=fence, next_attempt=view.attempt + 1, not_before=not_before)]


def decide_exit(
    view: RunView,
    *,
    fence: int,
    exit_code: int | None,
    signal: int | None,
    outcome: str,
    duration_s: float,
    now: float,
    jitter: float = 0.0,
    reason: str | None = None,
    error: str | None = None,
) -> list[Event]:
    _require(view, "exited")
    if view.status == t.CANCELLING and outcome != "succeeded":
        outcome = "cancelled"
    events: list[Event] = [
        Exited(
            fence=fence,
            exit_code=exit_code,
            signal=signal,
            outcome=outcome,
            duration_s=duration_s,
            reason=reason,
            error=error,
        )
    ]
    if outcome in ("failed", "timed_out"):
        events += _maybe_retry(view, fence, now, jitter)
    return events


def decide_reap(view: RunView, *, reason: str, killed_pids: list[int], now: float, jitter: float = 0.0) -> list[Event]:
    _require(view, "reaped")
    assert view.fence is not None
    events: list[Event] = [Reaped(fence=view.fence, reason=reason, killed_pids=sorted(killed_pids))]
    if view.status != t.CANCELLING:
        events += _maybe_retry(view, view.fence, now, jitter)
    return events
