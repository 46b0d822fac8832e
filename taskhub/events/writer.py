"""Group commit: one thread owns the write connection; concurrent operations share one transaction.

Each operation runs in its own SAVEPOINT, so one that raises (a refused fence, say) undoes only
itself while the rest of the batch commits. A caller's future resolves only after COMMIT returned,
so an acknowledged append is as durable as the `synchronous` setting makes it.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
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


@dataclass
class _Job(Generic[T]):
    op: Callable[[Txn], T]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[T]
    ok: bool = False
    value: Any = None
    error: BaseException | None = None
    appended: list[Envelope] = field(default_factory=list)


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
        self._ready = threading.Event()
        self._open_error: BaseException | None = None

    def add_listener(self, listener: Listener) -> None:
        """Called on the writer thread after each commit with the events it made durable."""
        self._listeners.append(listener)

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
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.put(_Job(op, loop, future))
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
                self._commit(store, batch)
                if stop:
                    return
        finally:
            store.close()

    def _commit(self, store: EventStore, batch: list[_Job[Any]]) -> None:
        committed: list[Envelope] = []
        try:
            with store.transaction(self._clock()) as txn:
                for job in batch:
                    start = len(txn.appended)
                    try:
                        with txn.savepoint():
                            job.value = job.op(txn)
                        job.ok = True
                        job.appended = txn.appended[start:]
                    except Exception as exc:
                        job.error = exc
                committed = list(txn.appended)
        except Exception as exc:  # the COMMIT itself failed: nothing of this batch landed
            log.exception("writer.commit_failed batch=%d", len(batch))
            for job in batch:
                job.ok, job.error = False, exc if isinstance(exc, StoreError) else StoreError(str(exc))
        for listener in self._listeners:
            try:
                if committed:
                    listener(committed)
            except Exception:
                log.exception("writer.listener_failed")
        for job in batch:
            job.loop.call_soon_threadsafe(_settle, job)


def _settle(job: _Job[Any]) -> None:
    if job.future.done():
        return
    if job.ok:
        job.future.set_result(job.value)
    else:
        job.future.set_exception(job.error or StoreError("append failed"))
