"""Run views as the API shows them, with `blocked_by` explaining why a queued run waits."""

from __future__ import annotations

import asyncio
import operator
import time
from dataclasses import dataclass, field
from typing import Any

import aiosqlite
from msgspec.structs import astuple

from taskhub.api.liveness import worker_alive
from taskhub.api.models import Blocker, RunOut
from taskhub.events.clock import parse_iso
from taskhub.projections import queries
from taskhub.projections import transitions as t
from taskhub.projections.runs import RunView
from taskhub.runtime.registry_loader import LoadedTask, Registry

LIVENESS_TTL_S = 1.0  # worker liveness is re-checked at most this often
_HIDDEN = ("num", "reaped")  # internal: the submission ordinal (cursors carry it) and the audit counter
_FIELDS = tuple(f for f in RunView.__struct_fields__ if f not in _HIDDEN)
if RunOut.__struct_fields__ != (*_FIELDS, "blocked_by"):  # run_out passes the values by position
    raise TypeError("RunOut must list RunView's fields, in order, without num and reaped, then blocked_by")
_SHOWN = operator.itemgetter(*(i for i, f in enumerate(RunView.__struct_fields__) if f not in _HIDDEN))


def run_out(view: RunView, blocked_by: list[Blocker] | None = None) -> RunOut:
    values: tuple[Any, ...] = _SHOWN(astuple(view))
    return RunOut(*values, blocked_by=blocked_by if view.status == t.QUEUED else None)  # type: ignore[misc]


@dataclass
class LiveWorkers:
    """A short-lived cache of which workers are alive (psutil checks are not free). Requests that
    find it stale share one refresh: under load, each of the requests in flight started its own."""

    ttl_s: float = LIVENESS_TTL_S
    _checked_at: float = -1e9
    _alive: list[str] = field(default_factory=list)
    _refresh: asyncio.Future[None] | None = None

    async def alive(self, conn: aiosqlite.Connection) -> list[str]:
        if time.monotonic() - self._checked_at >= self.ttl_s:
            if self._refresh is None:
                self._refresh = asyncio.ensure_future(self._load(conn))
            await asyncio.shield(self._refresh)  # one caller cancelled does not cancel the others' refresh
        return self._alive

    async def _load(self, conn: aiosqlite.Connection) -> None:
        try:
            now = time.monotonic()
            workers = await queries.list_workers(conn)
            self._alive = [w.worker_id for w in workers if worker_alive(w)]
            self._checked_at = now
        finally:
            self._refresh = None


def _not_before(view: RunView, now: float) -> Blocker | None:
    if view.not_before is None:
        return None
    try:
        when = parse_iso(view.not_before)
    except ValueError:
        return None
    if when <= now:
        return None
    wait = when - now
    return Blocker(
        reason="not_before",
        message=f"not before {view.not_before} ({wait:.0f}s from now)",
        until=view.not_before,
    )


async def cheap_blockers(view: RunView, conn: aiosqlite.Connection, live: LiveWorkers, now: float) -> list[Blocker]:
    """The reasons that cost no per-run query: `not_before` and the absence of a live worker."""
    out: list[Blocker] = []
    if (later := _not_before(view, now)) is not None:
        out.append(later)
    if not await live.alive(conn):
        out.append(Blocker(reason="no_live_worker", message="no live worker: start one with `taskhub worker`"))
    return out


async def limit_blocker(view: RunView, conn: aiosqlite.Connection, loaded: LoadedTask | None) -> Blocker | None:
    """The task's max_concurrency, if its runs hold it all (one query, for a task with a limit only)."""
    limit = loaded.spec.max_concurrency if loaded is not None else None
    if limit is None:
        return None
    holders = await queries.active_of_task(conn, view.task_id)
    if len(holders) < limit:
        return None
    return Blocker(
        reason="max_concurrency",
        message=f"task {view.task_id} is at its limit of {limit} concurrent runs: {', '.join(holders)}",
        runs=holders,
    )


async def blockers(
    view: RunView, conn: aiosqlite.Connection, registry: Registry, live: LiveWorkers, now: float
) -> list[Blocker] | None:
    """Every reason a queued run waits (None when it is not queued; [] when it is next in line)."""
    if view.status != t.QUEUED:
        return None
    out = await cheap_blockers(view, conn, live, now)
    loaded = registry.tasks.get(view.task_id)
    if (held := await limit_blocker(view, conn, loaded)) is not None:
        out.append(held)
    if loaded is None:
        out.append(Blocker(reason="unknown_task", message=f"task {view.task_id} is not loaded; workers cannot run it"))
    ahead = await queries.count_ahead(conn, view)
    if ahead:
        out.append(
            Blocker(
                reason="runs_ahead",
                message=f"{ahead} queued run{'s' if ahead != 1 else ''} ahead (higher priority or submitted earlier)",
                count=ahead,
            )
        )
    return out
