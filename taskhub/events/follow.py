"""Following the log: wake on change of the database files (watchfiles), read what is new, in order.

One ChangeSignal per process fans a wake-up out to every follower; it fires on inotify events for
the WAL written by any process, on commits of this process's own writer, and on a slow poll as a
fallback (a filesystem without inotify, a missed event). No follower ever spins.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path

import aiosqlite

from taskhub.events.inotify import DirectoryWatch
from taskhub.events.store import events_query, row_to_envelope
from taskhub.events.types import Envelope

log = logging.getLogger(__name__)
# watchfiles logs every change at INFO; the WAL changes on every commit.
logging.getLogger("watchfiles.main").setLevel(logging.WARNING)

POLL_S = 1.0  # fallback when no change notification arrives
WATCH_STEP_MS = 2  # how often watchfiles looks for file events (it holds the GIL only briefly)
TRAILING_WAKE_S = (0.005, 0.03, 0.2)
READ_BATCH = 1000


class ChangeSignal:
    """A generation counter with a wake-up: waiters pass the generation they saw."""

    def __init__(self, db_path: Path | str, poll_s: float = POLL_S) -> None:
        self._db_path = Path(db_path)
        self.poll_s = poll_s
        self._generation = 0
        self._event = asyncio.Event()
        self._thread: threading.Thread | None = None
        self._inotify: DirectoryWatch | None = None
        self._stop = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._last_change = 0.0  # loop time of the latest file change
        self._trail_step = 0  # which of TRAILING_WAKE_S after it comes next
        self._trail_timer: asyncio.TimerHandle | None = None

    @property
    def generation(self) -> int:
        return self._generation

    def notify(self) -> None:
        self._generation += 1
        event, self._event = self._event, asyncio.Event()
        event.set()

    def notify_threadsafe(self, *_: object) -> None:
        """For the writer thread's commit listener."""
        self._call_soon(self.notify)

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
        """Also watch the database files, to wake on commits of other processes: inotify on the
        loop where the OS has it, else watchfiles in a thread; the poll period bounds both."""
        self.bind()
        self._db_path.parent.mkdir(parents=True, exist_ok=True)
        watch = DirectoryWatch(self._db_path.parent, self._db_path.name, self._file_changed)
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
        if self._trail_timer is not None:
            self._trail_timer.cancel()
            self._trail_timer = None
        if self._inotify is not None:
            self._inotify.stop()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, 2.0)

    def _call_soon(self, callback: Callable[[], None]) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed in between
                loop.call_soon_threadsafe(callback)

    def _file_changed(self) -> None:
        """Wake now, and again shortly: the WAL is written before its commit becomes visible to
        readers, so a follower woken by the write may read too early and must look once more.

        The trailing wake-ups follow the latest change (TRAILING_WAKE_S after it). One chain of
        timers serves every change: a burst of commits re-arms it rather than adding three timers
        per write (the API and every worker see a change on each commit of every process)."""
        self.notify()
        assert self._loop is not None
        self._last_change = self._loop.time()
        self._trail_step = 0
        if self._trail_timer is None:
            self._trail_timer = self._loop.call_at(self._last_change + TRAILING_WAKE_S[0], self._trailing)

    def _trailing(self) -> None:
        assert self._loop is not None
        due = self._last_change + TRAILING_WAKE_S[self._trail_step]
        if self._loop.time() >= due:
            self.notify()
            self._trail_step += 1
            if self._trail_step == len(TRAILING_WAKE_S):
                self._trail_timer = None
                return
            due = self._last_change + TRAILING_WAKE_S[self._trail_step]
        self._trail_timer = self._loop.call_at(due, self._trailing)

    def _watch(self) -> None:
        """watchfiles' own blocking loop in a thread: one hop to the event loop per change."""
        from watchfiles import watch  # imported lazily: the CLI's one-shot reads never need it

        name = self._db_path.name
        directory = self._db_path.parent
        directory.mkdir(parents=True, exist_ok=True)

        def only_db(_change: object, path: str) -> bool:
            return Path(path).name.startswith(name)

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
                    self._call_soon(self._file_changed)
            except Exception:
                log.exception("follow.watch_failed; polling every %.1fs, retrying in 5s", self.poll_s)
                self._stop.wait(5)


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
