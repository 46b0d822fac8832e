"""The worker view and its fold. Liveness is not stored: it is checked against the live host."""

from __future__ import annotations

import msgspec

from taskhub.events.types import Envelope, Event, WorkerStarted, WorkerStopped


class WorkerView(msgspec.Struct, frozen=True):
    worker_id: str
    pid: int
    host: str
    concurrency: int
    create_time: float
    started_at: str
    stopped_at: str | None = None
    stop_reason: str | None = None
    last_seq: int = 0


def apply_worker(view: WorkerView | None, env: Envelope) -> WorkerView | None:
    return step_worker(view, env.data, env.worker_id, env.seq, env.ts)


def step_worker(view: WorkerView | None, event: Event, worker_id: str | None, seq: int, ts: str) -> WorkerView | None:
    """`apply_worker` on the envelope's fields, for a replay that reads rows and builds no Envelope."""
    match event:
        case WorkerStarted():
            # A restart under the same id replaces the old incarnation.
            return WorkerView(
                worker_id=worker_id or "",
                pid=event.pid,
                host=event.host,
                concurrency=event.concurrency,
                create_time=event.create_time,
                started_at=ts,
                last_seq=seq,
            )
        case WorkerStopped():
            if view is None:
                return None
            return msgspec.structs.replace(view, stopped_at=ts, stop_reason=event.reason, last_seq=seq)
    return view
