"""Following the log: wake on change of the database files (watchfiles), read what is new, in order.

One ChangeSignal per process fans a wake-up out to every follower; it fires on inotify events for
the WAL written by any process, on commits of this process's own writer, and on a slow poll as a
fallback (a filesystem without inotify, a missed event). No follower ever spins.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import aiosqlite

from taskhub.events.store import events_query, row_to_envelope
from taskhub.events.types import Envelope

log = logging.getLogger(__name__)
# watchfiles logs every change at INFO; the WAL changes on every commit.
logging.getLogger("watchfiles.main").setLevel(logging.WARNING)

POLL_S = 1.0  # fallback when no change notification arrives
READ_BATCH = 1000


class ChangeSignal:
    """A generation counter with a wake-up: waiters pass the generation they saw."""

    def __init__(self, db_path: Path | str, poll_s: float = POLL_S) -> None:
        self._db_path = Path(db_path)
        self.poll_s = poll_s
        self._generation = 0
        self._event = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def generation(self) -> int:
        return self._generation

    def notify(self) -> None:
        self._generation += 1
        event, self._event = self._event, asyncio.Event()
        event.set()

    def notify_threadsafe(self, *_: object) -> None:
        """For the writer thread's commit listener."""
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self.notify)

    async def wait(self, seen: int, timeout: float | None = None) -> None:
        """Return once the generation moved past `seen`, or after `timeout` (default: the poll period)."""
        if self._generation != seen:
            return
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._event.wait(), self.poll_s if timeout is None else timeout)

    def bind(self) -> None:
        """Attach to the running loop so commits of this process's writer wake followers."""
        self._loop = asyncio.get_running_loop()

    def start(self) -> None:
        """Also watch the database files, to wake on commits of other processes."""
        self.bind()
        self._task = asyncio.create_task(self._watch(), name="taskhub-log-watch")

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    async def _watch(self) -> None:
        from watchfiles import awatch  # imported lazily: the CLI's one-shot reads never need it

        name = self._db_path.name
        directory = self._db_path.parent
        directory.mkdir(parents=True, exist_ok=True)

        def only_db(_change: object, path: str) -> bool:
            return Path(path).name.startswith(name)

        while not self._stop.is_set():
            try:
                async for _changes in awatch(
                    directory,
                    watch_filter=only_db,
                    debounce=50,
                    step=1,
                    stop_event=self._stop,
                    recursive=False,
                ):
                    self.notify()
            except Exception:
                log.exception("follow.watch_failed; falling back to polling for 5s")
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), 5)


async def open_reader(db_path: Path | str) -> aiosqlite.Connection:
    """A read connection; each statement is its own short read transaction (no WAL pinning)."""
    conn = await aiosqlite.connect(str(db_path), isolation_level=None)
    await conn.execute("PRAGMA busy_timeout = 5000")
    await conn.execute("PRAGMA query_only = 1")
    return conn


async def read_events(
    conn: aiosqlite.Connection,
    after: int = 0,
    limit: int = READ_BATCH,
    run_id: str | None = None,
    types: Sequence[str] | None = None,
) -> list[Envelope]:
    sql, args = events_query(after, limit, run_id, types)
    async with conn.execute(sql, args) as cur:
        rows = await cur.fetchall()
    return [row_to_envelope(r) for r in rows]


async def follow(
    conn: aiosqlite.Connection,
    signal: ChangeSignal,
    after: int = 0,
    run_id: str | None = None,
    types: Sequence[str] | None = None,
) -> AsyncIterator[Envelope]:
    """Yield every event after `after`, in seq order with no gap, then each new one as it commits."""
    position = after
    while True:
        seen = signal.generation
        batch = await read_events(conn, position, READ_BATCH, run_id, types)
        if batch:
            for env in batch:
                yield env
            position = batch[-1].seq
            if len(batch) == READ_BATCH:
                continue
            # A filter may hide events: advance past everything read so far without re-reading.
        await signal.wait(seen)
