"""Group commit: one thread owns the write connection; concurrent operations share one transaction.

An operation that raises (a refused fence, say) undoes only itself while the rest of the batch
commits. Most refusals are raised before the op writes anything, so ops run without a SAVEPOINT each
(two statements per op, half the writer's cost): an op that raises having written nothing needs no
undo. Only when a failing op had already written does the batch roll back and run again with one
SAVEPOINT per op, so an op may run twice: ops must only read and write through `txn`. A caller's
future resolves only after COMMIT returned, so an acknowledged append is as durable as the
`synchronous` setting makes it; at FULL, only after a syncer thread's fdatasync() of the WAL, while
the writer commits the next batch (see _Syncer).
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Generic, TypeVar

from taskhub.errors import StoreError
from taskhub.events.clock import Clock, system_clock
from taskhub.events.store import EventStore, Txn
from taskhub.events.types import Envelope

log = logging.getLogger(__name__)
T = TypeVar("T")
MAX_BATCH = 512
Listener = Callable[[list[Envelope]], None]
Callback = Callable[[], None]


class _Job(Generic[T]):
    """One queued operation and, once its batch committed, its outcome (a plain slotted class: one
    is made per append, and a dataclass with a default factory costs twice as much)."""

    __slots__ = ("error", "future", "loop", "ok", "op", "value")

    def __init__(self, op: Callable[[Txn], T], loop: asyncio.AbstractEventLoop, future: asyncio.Future[T]) -> None:
        self.op = op
        self.loop = loop
        self.future = future
        self.ok = False
        self.value: Any = None
        self.error: Exception | None = None


_STOP = object()


class LogWriter:
    """Async front of the store for writes; start() it inside a running loop, close() when done."""

    def __init__(self, path: Path | str, synchronous: str = "FULL", clock: Clock = system_clock) -> None:
        self._path = Path(path)
        self._synchronous = synchronous
        self._clock = clock
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._listeners: list[Listener] = []
        self._loop_listeners: list[tuple[asyncio.AbstractEventLoop, Callable[[], None]]] = []
        self._ready = threading.Event()
        self._open_error: BaseException | None = None
        self._stopped: StoreError | None = None  # set if the writer thread died: every run() fails fast
        self._unsettled: list[_Job[Any]] = []  # the writer's batch until handed to _acknowledge or the syncer

    def add_listener(self, listener: Listener) -> None:
        """Called on one of the writer's threads after each commit with the events it made durable."""
        self._listeners.append(listener)

    def add_loop_listener(self, loop: asyncio.AbstractEventLoop, callback: Callable[[], None]) -> None:
        """Called on `loop` after each commit that appended events, before the batch's futures resolve
        and in the same hop between threads: each hop (a self-pipe write) hands the GIL to the loop and
        the writer waits to get it back."""
        self._loop_listeners.append((loop, callback))

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="taskhub-log-writer", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._open_error is not None:
            raise self._open_error

    async def run(self, op: Callable[[Txn], T]) -> T:
        """Run `op` inside a write transaction shared with whatever else is pending; return its value."""
        if self._thread is None:
            raise StoreError("the log writer is not started")
        if self._stopped is not None:
            raise self._stopped
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.put(_Job(op, loop, future))
        if self._stopped is not None:  # it died as we queued: nobody else will drain the queue
            self._fail_queued(self._stopped)
        return await future

    async def close(self) -> None:
        if self._thread is not None:
            self._queue.put(_STOP)
            await asyncio.to_thread(self._thread.join)
            self._thread = None

    def _run(self) -> None:
        try:
            store = EventStore(self._path, self._synchronous)
        except BaseException as exc:
            self._open_error = exc
            self._ready.set()
            return
        self._ready.set()
        syncer = _Syncer(store, self._acknowledge) if store.syncs_commits else None
        try:
            while True:
                first = self._queue.get()
                if first is _STOP:
                    return
                batch: list[_Job[Any]] = [first]
                stop = False
                while len(batch) < MAX_BATCH:
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if item is _STOP:
                        stop = True
                        break
                    batch.append(item)
                self._unsettled = batch
                self._commit(store, batch, syncer)
                if stop:
                    return
        except BaseException as exc:
            # Ops' own errors never get here (they fail their caller): this is the writer itself
            # breaking. Its callers, now and later, get an error instead of waiting forever.
            log.exception("writer.stopped")
            self._stopped = StoreError(f"the log writer stopped: {exc!r}")
            _settle_everywhere(self._unsettled, self._stopped)
            self._fail_queued(self._stopped)
        finally:
            if syncer is not None:
                syncer.close()
            store.close()

    def _fail_queued(self, error: StoreError) -> None:
        jobs: list[_Job[Any]] = []
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is not _STOP:
                jobs.append(item)
        _settle_everywhere(jobs, error)

    def _commit(self, store: EventStore, batch: list[_Job[Any]], syncer: _Syncer | None) -> None:
        committed: list[Envelope] = []
        try:
            try:
                committed = self._apply(store, batch, careful=False)
            except _Replay:
                committed = self._apply(store, batch, careful=True)
        except Exception as exc:  # the COMMIT itself failed: nothing of this batch landed
            log.exception("writer.commit_failed batch=%d", len(batch))
            for job in batch:
                job.ok, job.error = False, exc if isinstance(exc, StoreError) else StoreError(str(exc))
        if store.unsynced >= 0:
            commit, store.unsynced = store.unsynced, -1
            self._unsettled = []
            if syncer is None or self._sync_here(syncer):
                _sync_then_acknowledge(store, self._acknowledge, [(batch, committed, commit)])
            else:
                syncer.put(batch, committed, commit)  # acknowledged once the WAL is on disk
        else:
            self._unsettled = []
            self._acknowledge(batch, committed)
        # Now and then the store's checkpointer copies the WAL back (on its own thread).
        store.maybe_checkpoint()

    def _sync_here(self, syncer: _Syncer) -> bool:
        """Nothing to commit meanwhile (every appender waits on this batch): sync on this thread,
        saving the hand-over to the syncer thread and back."""
        return self._queue.empty() and syncer.idle()

    def _acknowledge(self, batch: list[_Job[Any]], committed: list[Envelope]) -> None:
        for listener in self._listeners:
            try:
                if committed:
                    listener(committed)
            except BaseException:  # a broken listener must not keep the batch's callers waiting
                log.exception("writer.listener_failed")
        # One wake-up per event loop for the whole batch, not one per job (each is a self-pipe write).
        loop = batch[0].loop
        if all(job.loop is loop for job in batch):
            by_loop: dict[asyncio.AbstractEventLoop, tuple[list[Callable[[], None]], list[_Job[Any]]]] = {
                loop: ([], batch)
            }
        else:
            by_loop = {}
            for job in batch:
                by_loop.setdefault(job.loop, ([], []))[1].append(job)
        if committed:
            for loop, callback in self._loop_listeners:
                by_loop.setdefault(loop, ([], []))[0].append(callback)
        for loop, (callbacks, jobs) in by_loop.items():
            self._post(loop, callbacks, jobs)

    def _post(self, loop: asyncio.AbstractEventLoop, callbacks: list[Callback], jobs: list[_Job[Any]]) -> None:
        """Hand a batch's outcome to the loop its callers wait on (from this writer's thread)."""
        try:
            loop.call_soon_threadsafe(_deliver, callbacks, jobs)
        except RuntimeError:  # that loop is closed: nobody is waiting any more
            log.warning("writer.loop_closed jobs=%d", len(jobs))

    def _apply(self, store: EventStore, batch: list[_Job[Any]], careful: bool) -> list[Envelope]:
        """Run the batch in one transaction; return what it appended. Without `careful`, raise _Replay
        (rolling back) if an op failed after writing, since only a savepoint could undo just that op."""
        with store.transaction(self._clock(), checkpoint=False, sync=False) as txn:
            if careful:
                _run_careful(txn, batch)
            else:
                _run_fast(txn, batch)
            return txn.appended  # this transaction's own list: nothing else holds it


class _Syncer:
    """Makes FULL commits durable on a thread of its own, then acknowledges them.

    The writer commits at NORMAL and hands each batch over; one fdatasync() of the WAL covers every
    batch committed before it began (and, through the gate's counters, other processes' commits),
    and only then are their futures resolved. Meanwhile the writer commits whatever arrived since.
    When nothing is waiting to be committed and nothing is syncing, the writer syncs itself instead
    (one hand-over between threads less per batch: every appender waits on that batch anyway).
    (Splitting a waiting crowd into two groups, so that one syncs while the other commits, was
    tried: 64 appenders at FULL gained nothing measurable and spent 6-10 us more CPU per append.
    Tried again with the acknowledgements held until the writer paused, so that the loop never ran
    beside it: 25k appends/s instead of 35k, 45 us of CPU each instead of 24. Every hand-over of
    the GIL between the loop and the writer, at each SQLite call, costs more than the fsync saved.)
    """

    def __init__(self, store: EventStore, acknowledge: Callable[[list[_Job[Any]], list[Envelope]], None]) -> None:
        self._store = store
        self._acknowledge = acknowledge
        self._pending: list[tuple[list[_Job[Any]], list[Envelope], int]] = []
        self._stopping = False
        self._busy = False  # a sync is under way on this thread
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="taskhub-log-syncer", daemon=True)
        self._thread.start()

    def idle(self) -> bool:
        return not self._busy and not self._pending

    def put(self, batch: list[_Job[Any]], committed: list[Envelope], commit: int) -> None:
        with self._cond:
            self._pending.append((batch, committed, commit))
            self._cond.notify()

    def close(self) -> None:
        """After syncing and acknowledging everything handed over."""
        with self._cond:
            self._stopping = True
            self._cond.notify()
        self._thread.join()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._stopping:
                    self._cond.wait()
                if not self._pending:
                    return
                groups, self._pending = self._pending, []
                self._busy = True
            try:
                _sync_then_acknowledge(self._store, self._acknowledge, groups)
            finally:
                self._busy = False


def _sync_then_acknowledge(
    store: EventStore,
    acknowledge: Callable[[list[_Job[Any]], list[Envelope]], None],
    groups: list[tuple[list[_Job[Any]], list[Envelope], int]],
) -> None:
    """One fdatasync() of the WAL for these committed batches, then their callers are told."""
    try:
        store.sync_wal(max(commit for _, _, commit in groups))
    except StoreError as exc:  # committed and visible, but not durable: say so to every caller
        log.error("writer.sync_failed error=%s", exc)
        for batch, _, _ in groups:
            for job in batch:
                job.ok, job.error = False, exc
        groups = [(batch, [], commit) for batch, _, commit in groups]
    for batch, committed, _ in groups:
        acknowledge(batch, committed)


class LoopLogWriter(LogWriter):
    """The same group commit, made by the event loop's own thread: for a process whose appends are
    few and come one or two at a time, as a worker's (about one commit per run).

    The ops queued during one turn of the loop share a transaction, which the loop commits on its
    next turn. With no writer thread there is no GIL to hand back and forth at every SQLite call and
    every acknowledgement: a 4 x 1 worker spent ~0.3 ms less CPU per run, and ran 15-25% more runs
    of `true` a second. The price: while another process holds the write gate, this loop waits. A
    worker has nothing else to record meanwhile; its children keep running, and a timeout's kill
    comes that much later.

    At FULL the fdatasync() is left to a syncer thread, which acknowledges the batch through the
    loop once the WAL is on disk. A disk busy writing back other files (a task writing its log at
    full speed, say) makes a sync take 100s of ms, and the loop must not freeze that long: the
    log cap would stop cutting, for one (syncing on the loop let a 40 MiB log grow uncut). Only
    while `sync_on_loop()` says nothing else needs the loop (a worker whose runs are all quick
    ones, each waiting on this very commit) does the loop sync itself, saving the hop there and
    back: ~0.2 ms of CPU per run for one-slot workers.
    """

    def __init__(self, path: Path | str, synchronous: str = "FULL", clock: Clock = system_clock) -> None:
        super().__init__(path, synchronous, clock)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = -1
        self._store: EventStore | None = None
        self._syncer: _Syncer | None = None
        self.sync_on_loop: Callable[[], bool] = lambda: False
        self._pending: list[_Job[Any]] = []

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._store = EventStore(self._path, self._synchronous)
        if self._store.syncs_commits:
            self._syncer = _Syncer(self._store, self._acknowledge)

    async def run(self, op: Callable[[Txn], T]) -> T:
        if self._store is None or self._loop is None:
            raise StoreError("the log writer is not open")
        if self._stopped is not None:
            raise self._stopped
        future: asyncio.Future[T] = self._loop.create_future()
        self._pending.append(_Job(op, self._loop, future))
        if len(self._pending) == 1:
            self._loop.call_soon(self._flush)  # after whatever else this turn of the loop queues
        return await future

    async def close(self) -> None:
        if self._store is not None:
            self._flush()
            if self._syncer is not None:
                syncer, self._syncer = self._syncer, None
                await asyncio.to_thread(syncer.close)  # its last acknowledgements come through this loop
            self._store.close()
            self._store = None

    def _flush(self) -> None:
        batch, self._pending = self._pending, []
        if not batch or self._store is None:
            return
        self._unsettled = batch
        try:
            self._commit(self._store, batch, self._syncer)
        except BaseException as exc:  # the store itself broke: fail everyone now and later
            log.exception("writer.stopped")
            self._stopped = StoreError(f"the log writer stopped: {exc!r}")
            _settle_everywhere(self._unsettled, self._stopped)
            if not isinstance(exc, Exception):
                raise  # SystemExit, KeyboardInterrupt: they stop the loop, as they would anywhere else

    def _sync_here(self, syncer: _Syncer) -> bool:
        return syncer.idle() and self.sync_on_loop()  # see the class's docstring

    def _post(self, loop: asyncio.AbstractEventLoop, callbacks: list[Callback], jobs: list[_Job[Any]]) -> None:
        if threading.get_ident() == self._loop_thread:
            _deliver(callbacks, jobs)  # on the loop already: the futures resolve without a self-pipe write
        else:
            super()._post(loop, callbacks, jobs)  # from the syncer thread


def _run_fast(txn: Txn, batch: list[_Job[Any]]) -> None:
    """Each op without a savepoint: one that raises having written nothing needs no undo (every
    append inserts a row, so an unchanged count of changed rows means nothing was appended either)."""
    conn = txn.conn
    for job in batch:
        changes = conn.total_changes
        try:
            job.value = job.op(txn)
        except BaseException as exc:
            if conn.total_changes != changes:
                raise _Replay from exc
            job.error = _op_error(exc)
        else:
            job.ok = True


def _run_careful(txn: Txn, batch: list[_Job[Any]]) -> None:
    """Each op in its own savepoint (after a fast pass in which one failed having written)."""
    for job in batch:
        job.ok, job.error, job.value = False, None, None
        try:
            with txn.savepoint():
                job.value = job.op(txn)
        except BaseException as exc:
            job.error = _op_error(exc)
        else:
            job.ok = True


class _Replay(Exception):
    """An op failed after writing: roll the batch back and run it again, one savepoint per op."""


def _op_error(exc: BaseException) -> Exception:
    """What an op's caller gets: its own exception, or, for one that is not an Exception
    (SystemExit, a CancelledError raised by hand), a StoreError: set on a future, those would stop
    the caller's event loop or pass for a cancellation of its task."""
    if isinstance(exc, Exception):
        return exc
    error = StoreError(f"the operation raised {exc!r}")
    error.__cause__ = exc
    return error


def _settle_everywhere(jobs: list[_Job[Any]], error: StoreError) -> None:
    """Fail `jobs` (from any thread), each on its own loop; those already settled stay as they are."""
    for job in jobs:
        job.ok, job.error = False, error
        try:
            job.loop.call_soon_threadsafe(_settle, [job])
        except RuntimeError:  # that loop is closed: nobody is waiting any more
            pass


def _deliver(callbacks: list[Callable[[], None]], jobs: list[_Job[Any]]) -> None:
    for callback in callbacks:
        try:
            callback()
        except Exception:
            log.exception("writer.listener_failed")
    _settle(jobs)


def _settle(jobs: list[_Job[Any]]) -> None:
    for job in jobs:
        if job.future.done():
            continue
        if job.ok:
            job.future.set_result(job.value)
        else:
            job.future.set_exception(job.error or StoreError("append failed"))
