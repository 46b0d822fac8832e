"""Async reads of the stored projections (aiosqlite), shared by the API, the worker and the reaper."""

from __future__ import annotations

from collections.abc import Sequence

import aiosqlite

from taskhub.projections.runs import RunView
from taskhub.projections.tables import RUN_DECODER, WORKER_DECODER
from taskhub.projections.workers import WorkerView

ACTIVE_SQL = "('claimed','running','cancelling')"


async def _runs(conn: aiosqlite.Connection, sql: str, args: Sequence[object] = ()) -> list[RunView]:
    async with conn.execute(sql, args) as cur:
        rows = await cur.fetchall()
    decode = RUN_DECODER.decode
    return [decode(r[0]) for r in rows]


async def get_run(conn: aiosqlite.Connection, run_id: str) -> RunView | None:
    found = await _runs(conn, "SELECT view FROM runs WHERE run_id = ?", (run_id,))
    return found[0] if found else None


async def list_runs(
    conn: aiosqlite.Connection,
    status: Sequence[str] | None = None,
    task_id: str | None = None,
    limit: int = 50,
    before: int | None = None,
) -> list[RunView]:
    """Newest first; `before` is a cursor (a run's `num`), stable under concurrent inserts."""
    where: list[str] = []
    args: list[object] = []
    if status:
        where.append(f"status IN ({','.join('?' * len(status))})")
        args.extend(status)
    if task_id is not None:
        where.append("task_id = ?")
        args.append(task_id)
    if before is not None:
        where.append("num < ?")
        args.append(before)
    clause = f"WHERE {' AND '.join(where)}" if where else ""
    args.append(limit)
    return await _runs(conn, f"SELECT view FROM runs {clause} ORDER BY num DESC LIMIT ?", args)


async def active_runs(conn: aiosqlite.Connection, worker_id: str | None = None) -> list[RunView]:
    """Runs a worker holds a lease on (claimed, running, cancelling)."""
    if worker_id is None:
        return await _runs(conn, f"SELECT view FROM runs WHERE status IN {ACTIVE_SQL}")
    return await _runs(conn, f"SELECT view FROM runs WHERE status IN {ACTIVE_SQL} AND worker_id = ?", (worker_id,))


async def expired_runs(conn: aiosqlite.Connection, now: float) -> list[RunView]:
    """Active runs whose lease has passed: the active ones (runs_worker holds exactly those), filtered."""
    return await _runs(
        conn,
        f"SELECT view FROM runs INDEXED BY runs_worker WHERE status IN {ACTIVE_SQL} AND lease_expires < ?",
        (now,),
    )


async def find_by_idempotency_key(conn: aiosqlite.Connection, key: str) -> RunView | None:
    found = await _runs(conn, "SELECT view FROM runs WHERE idempotency_key = ?", (key,))
    return found[0] if found else None


async def count_ahead(conn: aiosqlite.Connection, view: RunView) -> int:
    """Queued runs that a claim would take before this one."""
    async with conn.execute(
        "SELECT count(*) FROM runs WHERE status = 'queued' AND (priority > ? OR (priority = ? AND num < ?))",
        (view.priority, view.priority, view.num),
    ) as cur:
        row = await cur.fetchone()
    return int(row[0]) if row else 0


async def active_of_task(conn: aiosqlite.Connection, task_id: str) -> list[str]:
    async with conn.execute(
        f"SELECT run_id FROM runs WHERE task_id = ? AND status IN {ACTIVE_SQL} ORDER BY num", (task_id,)
    ) as cur:
        return [r[0] for r in await cur.fetchall()]


async def list_workers(conn: aiosqlite.Connection) -> list[WorkerView]:
    async with conn.execute("SELECT view FROM workers ORDER BY worker_id") as cur:
        rows = await cur.fetchall()
    return [WORKER_DECODER.decode(r[0]) for r in rows]


async def get_worker(conn: aiosqlite.Connection, worker_id: str) -> WorkerView | None:
    async with conn.execute("SELECT view FROM workers WHERE worker_id = ?", (worker_id,)) as cur:
        row = await cur.fetchone()
    return WORKER_DECODER.decode(row[0]) if row else None


async def status_counts(conn: aiosqlite.Connection) -> dict[str, dict[str, int]]:
    """{task_id: {status: count}}: uses the (task_id, status) index only."""
    out: dict[str, dict[str, int]] = {}
    async with conn.execute("SELECT task_id, status, count(*) FROM runs GROUP BY task_id, status") as cur:
        for task_id, status, n in await cur.fetchall():
            out.setdefault(task_id, {})[status] = n
    return out


async def last_seq(conn: aiosqlite.Connection) -> int:
    async with conn.execute("SELECT max(seq) FROM events") as cur:
        row = await cur.fetchone()
    return int(row[0] or 0) if row else 0
