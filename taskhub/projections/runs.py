"""The run view and its fold: `apply_run(view, envelope) -> view`, pure and total over history."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec

from taskhub.events.types import (
    EVENT_TYPES,
    Artifact,
    Cancelled,
    CancelRequested,
    Claimed,
    Envelope,
    Exited,
    Heartbeat,
    Progress,
    Reaped,
    Result,
    RetryScheduled,
    Started,
    Submitted,
)
from taskhub.projections import transitions as t


class ProgressView(msgspec.Struct, frozen=True, gc=False):
    pct: float | None = None
    message: str | None = None
    extra: dict[str, Any] = {}


class ArtifactView(msgspec.Struct, frozen=True, gc=False):
    name: str
    description: str | None = None


# Views are never tracked by the cyclic GC (gc=False): they hold only decoded JSON, strings and numbers,
# so they cannot be part of a reference cycle, and a replay keeps one per run alive. Untracked, the
# first collection after replaying 1M events (250k runs) walks 0.18 s less of them.
class RunView(msgspec.Struct, frozen=True, gc=False):
    run_id: str
    task_id: str
    params: dict[str, Any]
    status: str
    num: int  # the seq of `submitted`: the run's place in submission order
    priority: int = 0
    attempt: int = 0
    max_attempts: int = 1
    timeout_s: float | None = None
    not_before: str | None = None
    idempotency_key: str | None = None
    task_version: str | None = None
    retry_of: str | None = None
    submitted_at: str | None = None
    claimed_at: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    worker_id: str | None = None
    fence: int | None = None
    lease_expires_at: str | None = None
    pid: int | None = None
    pgid: int | None = None
    create_time: float | None = None
    host: str | None = None
    argv: list[str] | None = None
    exit_code: int | None = None
    signal: int | None = None
    outcome: str | None = None
    failure_reason: str | None = None
    error: str | None = None
    cancel_reason: str | None = None
    progress: ProgressView | None = None
    artifacts: list[ArtifactView] = []
    result: Any = None
    reaped: int = 0  # reaped events seen, for the audit's "exactly one per attempt"
    last_seq: int = 0


# Every replace() below names its fields in RunView's order: msgspec looks each keyword up from the
# field after the previous one found, so in order each is found in a step or two, and out of order it
# goes round the 36 fields again (claimed: 215 ns in order, 310 ns in reverse).
_replace = msgspec.structs.replace
# One empty list shared by every run folded from `submitted`: views are frozen values, and what changes
# a run's artifacts builds a new list (`_artifact`). A list per run would be one more object for the
# cyclic GC to walk after a replay (250k of them, 0.09 s, after 1M events).
_NO_ARTIFACTS: list[ArtifactView] = []
# What a new claim clears of the previous attempt.
_ATTEMPT_RESET: dict[str, Any] = dict.fromkeys(
    ("started_at", "finished_at", "pid", "pgid", "create_time", "argv", "exit_code", "signal", "outcome",
     "failure_reason", "error", "progress"),
)  # fmt: skip


def apply_run(view: RunView | None, env: Envelope) -> RunView | None:
    """Fold one event into a run's view. Never raises on history: unknown pairs only move last_seq.

    (state.fold_rows, replay's loop over raw rows, writes these lines out for rows: keep them alike.)"""
    event = env.data
    if view is None:
        if isinstance(event, Submitted) and env.run_id is not None:
            return submitted(env.run_id, event, env.seq, env.ts)
        return None
    # The lookup both checks the transition table and picks the handler (this runs once per event of
    # every replay; a match over the event classes cost an isinstance() per case tried). Every event
    # class has an entry, so only the status can miss.
    handler = HANDLERS[event.__class__].get(view.status)
    if handler is None:  # not in the table, or an annotation (refused): only the position moves
        return _replace(view, last_seq=env.seq)
    return handler(view, event, env.seq, env.ts, env.worker_id)


def _claimed(view: RunView, event: Claimed, seq: int, ts: str, worker_id: str | None) -> RunView:
    if view.attempt:  # a retry: forget the previous attempt (a first claim has nothing to forget)
        view = _replace(view, **_ATTEMPT_RESET)
    return _replace(
        view,
        status=t.CLAIMED,
        attempt=event.attempt,
        claimed_at=ts,
        worker_id=worker_id,
        fence=event.fence,
        lease_expires_at=event.lease_expires_at,
        last_seq=seq,
    )


def _started(view: RunView, event: Started, seq: int, ts: str, worker_id: str | None) -> RunView:
    return _replace(
        view,
        status=t.CANCELLING if view.status == t.CANCELLING else t.RUNNING,
        started_at=ts,
        pid=event.pid,
        pgid=event.pgid,
        create_time=event.create_time,
        host=event.host,
        argv=event.argv,
        last_seq=seq,
    )


# (status, failure_reason) after an exit with each outcome and no reason given, read from transitions
# once: an exit then costs one lookup instead of two calls.
_PLAIN_EXITS = {o: (t.exit_status(o), t.exit_failure_reason(o, None)) for o in t.OUTCOMES}


def _exited(view: RunView, event: Exited, seq: int, ts: str, worker_id: str | None) -> RunView:
    outcome = event.outcome
    known = _PLAIN_EXITS.get(outcome) if event.reason is None else None
    status, failure_reason = known or (t.exit_status(outcome), t.exit_failure_reason(outcome, event.reason))
    return _replace(
        view,
        status=status,
        finished_at=ts,
        lease_expires_at=None,
        exit_code=event.exit_code,
        signal=event.signal,
        outcome=outcome,
        failure_reason=failure_reason,
        error=event.error,
        last_seq=seq,
    )


def _heartbeat(view: RunView, event: Heartbeat, seq: int, ts: str, worker_id: str | None) -> RunView:
    return _replace(view, lease_expires_at=event.lease_expires_at, last_seq=seq)


def _progress(view: RunView, event: Progress, seq: int, ts: str, worker_id: str | None) -> RunView:
    return _replace(view, progress=ProgressView(event.pct, event.message, event.extra), last_seq=seq)


def _artifact(view: RunView, event: Artifact, seq: int, ts: str, worker_id: str | None) -> RunView:
    kept = [a for a in view.artifacts if a.name != event.name]
    kept.append(ArtifactView(event.name, event.description))
    return _replace(view, artifacts=kept, last_seq=seq)


def _result(view: RunView, event: Result, seq: int, ts: str, worker_id: str | None) -> RunView:
    return _replace(view, result=event.value, last_seq=seq)


def _cancel_requested(view: RunView, event: CancelRequested, seq: int, ts: str, worker_id: str | None) -> RunView:
    return _replace(view, status=t.CANCELLING, cancel_reason=event.reason, last_seq=seq)


def _cancelled(view: RunView, event: Cancelled, seq: int, ts: str, worker_id: str | None) -> RunView:
    return _replace(view, status=t.CANCELLED, finished_at=ts, cancel_reason=event.reason, last_seq=seq)


def _reaped(view: RunView, event: Reaped, seq: int, ts: str, worker_id: str | None) -> RunView:
    status = t.CANCELLED if view.status == t.CANCELLING else t.FAILED
    return _replace(
        view,
        status=status,
        finished_at=ts,
        lease_expires_at=None,
        outcome=None,
        failure_reason=None if status == t.CANCELLED else event.reason,
        reaped=view.reaped + 1,
        last_seq=seq,
    )


def _retry_scheduled(view: RunView, event: RetryScheduled, seq: int, ts: str, worker_id: str | None) -> RunView:
    return _replace(
        view, status=t.QUEUED, not_before=event.not_before, worker_id=None, lease_expires_at=None, last_seq=seq
    )


# (view, event, seq, ts, worker_id) -> the view after the event
Handler = Callable[[RunView, Any, int, str, "str | None"], RunView]
_BY_TYPE: dict[type, Handler] = {
    Claimed: _claimed,
    Started: _started,
    Exited: _exited,
    Heartbeat: _heartbeat,
    Progress: _progress,
    Artifact: _artifact,
    Result: _result,
    CancelRequested: _cancel_requested,
    Cancelled: _cancelled,
    Reaped: _reaped,
    RetryScheduled: _retry_scheduled,
}
_CLASSES = {cls.__struct_config__.tag: cls for cls in EVENT_TYPES}
# event class -> {status before: handler}, for exactly the pairs of the transition table. Two lookups
# by keys that hash at once (a class, an interned status) beat one by a (status, class) tuple built and
# hashed per event (~20 ns an event of a replay).
HANDLERS: dict[type, dict[str, Handler]] = {cls: {} for cls in EVENT_TYPES}
for _status, _name in t.TRANSITIONS:
    if _status is not None:
        HANDLERS[_CLASSES[_name]][_status] = _BY_TYPE[_CLASSES[_name]]


def submitted(run_id: str, event: Submitted, seq: int, ts: str) -> RunView:
    # The first 14 fields by position, in RunView's order (keywords cost 464 ns a view, this 270 ns).
    return RunView(
        run_id,
        event.task_id,
        event.params,
        t.QUEUED,
        seq,  # num
        event.priority,
        0,  # attempt
        event.max_attempts,
        event.timeout_s,
        event.not_before,
        event.idempotency_key,
        event.task_version,
        event.retry_of,
        ts,  # submitted_at
        artifacts=_NO_ARTIFACTS,
        last_seq=seq,
    )
