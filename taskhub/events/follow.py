"""Following the log: wake when a commit rings the write gate's lock file, read what is new, in order.

One ChangeSignal per process fans a wake-up out to every follower; it fires when another process's
commit rings (inotify, or watchfiles where inotify is missing), on commits of this process's own
writer, and on a slow poll as a fallback (a missed event, a writer that does not ring). No follower
ever spins.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path

import aiosqlite

from taskhub.events.inotify import FileWatch
from taskhub.events.store import events_query, row_to_envelope
from taskhub.events.types import Envelope
from taskhub.events.write_gate import WriteGate

log = logging.getLogger(__name__)
# watchfiles logs every change at INFO; the WAL changes on every commit.
logging.getLogger("watchfiles.main").setLevel(logging.WARNING)

POLL_S = 1.0  # fallback when no change notification arrives
WATCH_STEP_MS = 2  # how often watchfiles looks for file events (it holds the GIL only briefly)
READ_BATCH = 1000


class ChangeSignal:
    """A generation counter with a wake-up: waiters pass the generation they saw."""

    def __init__(self, db_path: Path | str, poll_s: float = POLL_S) -> None:
        self._db_path = Path(db_path)
        self.poll_s = poll_s
        self._generation = 0
        self._waiters: set[asyncio.Future[None]] = set()
        self._thread: threading.Thread | None = None
        self._inotify: FileWatch | None = None
        self._stop = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def generation(self) -> int:
        return self._generation

    def notify(self) -> None:
        self._generation += 1
        waiters, self._waiters = self._waiters, set()
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def notify_threadsafe(self, *_: object) -> None:
        """For the writer thread's commit listener."""
        self._call_soon(self.notify)

    async def wait(self, seen: int, timeout: float | None = None) -> None:
        """Return once the generation moved past `seen`, or after `timeout` (default: the poll period)."""
        if self._generation != seen:
            return
        # A future and a timer, not asyncio.wait_for(event.wait()): that makes a task per wait, and
        # an idle worker waits once per commit it hears (~0.2 ms of CPU a wake-up, 5 turns of the loop).
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        self._waiters.add(waiter)
        timer = loop.call_later(self.poll_s if timeout is None else timeout, _wake, waiter)
        try:
            await waiter
        finally:
            timer.cancel()
            self._waiters.discard(waiter)

    def bind(self) -> None:
        """Attach to the running loop so commits of this process's writer wake followers."""
        self._loop = asyncio.get_running_loop()

    def start(self) -> None:
        """Also wake on commits of other processes: inotify on the loop where the OS has it, else
        watchfiles in a thread; the poll period bounds both.

        What is watched is the write gate's lock file, which every TaskHub writer rings once a
        commit is visible (WriteGate.ring), not the database's folder: the WAL is written ~20 times
        a commit, before the commit can be read, so a wake-up on it came early, came again, and
        needed trailing wake-ups to catch the commit itself (4 idle workers fed runs one at a
        time woke 3.4 times per run each; on the ring, 1.25)."""
        self.bind()
        self._db_path.parent.mkdir(parents=True, exist_ok=True)
        rung = WriteGate.lock_path(self._db_path)
        try:
            os.close(os.open(rung, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o644))  # the watch needs it
        except OSError as exc:
            log.warning("follow.cannot_create path=%s error=%s; polling", rung, exc)
            return
        watch = FileWatch(rung, self.notify)
        try:
            watch.start()
            self._inotify = watch
            return
        except OSError as exc:
            log.info("follow.inotify_unavailable error=%s; using watchfiles", exc)
        self._thread = threading.Thread(target=self._watch, name="taskhub-log-watch", daemon=True)
        self._thread.start()

    def listen(self, on: bool) -> None:
        """Pause (False) or resume (True) waking on other processes' changes. A process with
        nothing to do about them for a while saves a wake-up per commit of every process; what
        came meanwhile wakes followers once on resume. The watchfiles fallback always listens."""
        if self._inotify is not None:
            if on:
                self._inotify.resume()
            else:
                self._inotify.pause()

    async def stop(self) -> None:
        self._stop.set()
        if self._inotify is not None:
            self._inotify.stop()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, 2.0)

    def _call_soon(self, callback: Callable[[], None]) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed in between
                loop.call_soon_threadsafe(callback)

    def _watch(self) -> None:
        """watchfiles' own blocking loop in a thread: one hop to the event loop per change."""
        from watchfiles import watch  # imported lazily: the CLI's one-shot reads never need it

        name = WriteGate.lock_path(self._db_path).name
        directory = self._db_path.parent
        directory.mkdir(parents=True, exist_ok=True)

        def only_db(_change: object, path: str) -> bool:
            return Path(path).name == name

        while not self._stop.is_set():
            try:
                for _changes in watch(
                    directory,
                    watch_filter=only_db,
                    debounce=50,
                    step=WATCH_STEP_MS,
                    stop_event=self._stop,
                    recursive=False,
                    raise_interrupt=False,
                ):
                    self._call_soon(self.notify)
            except Exception:
                log.exception("follow.watch_failed; polling every %.1fs, retrying in 5s", self.poll_s)
                self._stop.wait(5)


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


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
