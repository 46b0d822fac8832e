"""The worker view and its fold. Liveness is not stored: it is checked against the live host."""

from __future__ import annotations

import msgspec

from taskhub.events.types import Envelope, WorkerStarted, WorkerStopped


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
    event = env.data
    match event:
        case WorkerStarted():
            # A restart under the same id replaces the old incarnation.
            return WorkerView(
                worker_id=env.worker_id or "",
                pid=event.pid,
                host=event.host,
                concurrency=event.concurrency,
                create_time=event.create_time,
                started_at=env.ts,
                last_seq=env.seq,
            )
        case WorkerStopped():
            if view is None:
                return None
            return msgspec.structs.replace(view, stopped_at=env.ts, stop_reason=event.reason, last_seq=env.seq)
    return view
