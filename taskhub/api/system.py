"""Health, workers and stats."""

from __future__ import annotations

import importlib
import logging

from litestar import get
from litestar.datastructures import State

from taskhub.api.hub import hub_of
from taskhub.api.liveness import worker_alive
from taskhub.api.models import Health, Stats, WorkerList, WorkerOut
from taskhub.projections import queries
from taskhub.projections import transitions as t

log = logging.getLogger(__name__)

WAL_RESET_FIXED = (3, 51, 3)  # SQLite 3.7.0 to 3.51.2 can corrupt a WAL with several writers (NOTES.md)


def version_tuple(text: str) -> tuple[int, ...]:
    parts: list[int] = []
    for piece in text.split("."):
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)


def has_wal_reset_bug(version: str) -> bool:
    return version_tuple(version) < WAL_RESET_FIXED


def containment() -> str:
    """The reaper's process containment on this machine, when the runtime can tell."""
    try:
        killing = importlib.import_module("taskhub.runtime.killing")
        return str(killing.containment_level())
    except Exception as exc:  # the module is optional to the API; never fail health over it
        log.debug("health.containment_unknown error=%s", exc)
        return "unknown"


@get("/api/health", operation_id="getHealth", summary="Liveness and facts: last seq, SQLite version, containment")
async def health(state: State) -> Health:
    hub = hub_of(state)
    registry = hub.registry
    return Health(
        status="ok",
        last_seq=await queries.last_seq(hub.log.reader),
        sqlite_version=hub.sqlite_version,
        sqlite_wal_reset_bug=has_wal_reset_bug(hub.sqlite_version),
        containment=hub.containment,
        tasks=len(registry.tasks),
        task_errors=len(registry.errors),
        streams=hub.slots.open,
    )


@get("/api/workers", operation_id="listWorkers", summary="Workers, whether each is alive, and the runs each holds")
async def workers(state: State) -> WorkerList:
    hub = hub_of(state)
    views = await queries.list_workers(hub.log.reader)
    running: dict[str, list[str]] = {}
    for run in await queries.active_runs(hub.log.reader):
        if run.worker_id is not None:
            running.setdefault(run.worker_id, []).append(run.run_id)
    items = [
        WorkerOut(
            worker_id=w.worker_id,
            pid=w.pid,
            host=w.host,
            concurrency=w.concurrency,
            started_at=w.started_at,
            stopped_at=w.stopped_at,
            alive=worker_alive(w),
            running=sorted(running.get(w.worker_id, []), key=lambda r: (len(r), r)),
        )
        for w in views
    ]
    return WorkerList(items=items)


@get("/api/stats", operation_id="getStats", summary="Run counts by status, overall and per task")
async def stats(state: State) -> Stats:
    hub = hub_of(state)
    by_task = await queries.status_counts(hub.log.reader)
    by_status: dict[str, int] = dict.fromkeys(t.STATUSES, 0)
    for counts in by_task.values():
        for status, n in counts.items():
            by_status[status] = by_status.get(status, 0) + n
    return Stats(by_status=by_status, by_task=by_task)


ROUTES = [health, workers, stats]
