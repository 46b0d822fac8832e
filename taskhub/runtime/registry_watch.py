"""Hot reload of the task registry: watch `tasks/` and swap in a new Registry when it changes.

Readers take `watcher.current` once per decision and keep using that snapshot; a reload replaces the
reference whole, so nobody sees half a directory. Imports run in a thread so a slow task module
cannot stall the event loop (and with it the worker's heartbeats).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path

from watchfiles import awatch

from taskhub.runtime.registry_loader import Registry, load_tasks

log = logging.getLogger(__name__)

RESCAN_S = 5.0  # a full (cheap, hash-cached) rescan this often catches any event the OS missed
DEBOUNCE_MS = 100  # editors write a file in several steps; wait for them to settle


class RegistryWatcher:
    """Holds the current Registry and keeps it in step with the tasks directory.

    `on_change(registry)` is called after each swap that changed something, in the thread that
    reloaded: the event loop's thread when the change came through run().
    """

    def __init__(
        self,
        tasks_dir: Path | str,
        on_change: Callable[[Registry], None] | None = None,
        *,
        rescan_s: float = RESCAN_S,
        debounce_ms: int = DEBOUNCE_MS,
    ) -> None:
        self.tasks_dir = Path(tasks_dir).resolve()
        self.on_change = on_change
        self.rescan_s = rescan_s
        self.debounce_ms = debounce_ms
        self._lock = threading.Lock()
        self._loads_started = 0
        self._swapped_load = 0
        self._registry = load_tasks(self.tasks_dir)
        self._stop: asyncio.Event | None = None  # made by run(), so each run may use its own loop
        self._stopping = False  # stop() may come before run() has started

    @property
    def current(self) -> Registry:
        return self._registry

    def reload(self, *, fresh: bool = False) -> Registry:
        """Reload now, in this thread; `fresh` re-imports unchanged files too. Returns the current registry."""
        ticket = self._ticket()
        self._swap(ticket, load_tasks(self.tasks_dir, fresh=fresh))
        return self._registry

    async def areload(self, *, fresh: bool = False) -> Registry:
        """reload() with the imports in a worker thread; the swap and on_change happen in this one."""
        ticket = self._ticket()
        registry = await asyncio.to_thread(load_tasks, self.tasks_dir, fresh=fresh)
        self._swap(ticket, registry)
        return self._registry

    def stop(self) -> None:
        """Make run() return soon, or at once if it has not started yet; call from the loop's thread."""
        self._stopping = True
        if self._stop is not None:
            self._stop.set()

    async def run(self) -> None:
        """Reload on every add, edit or removal of a `*.py` file until stop() is called."""
        stop = self._stop = asyncio.Event()
        if self._stopping:
            stop.set()
        try:
            while not stop.is_set():
                await self.areload()  # catch up with whatever changed while nothing watched
                if not self.tasks_dir.is_dir():
                    await self._sleep(self.rescan_s)  # wait for the directory to appear
                    continue
                try:
                    await self._watch(stop)
                except Exception as exc:  # whatever broke the watch, hot reload goes on
                    # e.g. the directory vanished while being armed (OSError), or a file name that is
                    # not UTF-8, which watchfiles cannot report and stops on (in an ExceptionGroup)
                    log.warning("registry.watch_failed dir=%s error=%r", self.tasks_dir, exc)
                    await self._sleep(min(1.0, self.rescan_s))
        finally:
            self._stop, self._stopping = None, False

    async def _watch(self, stop: asyncio.Event) -> None:
        """Watch until stopped or until the directory is removed or replaced (then run() re-arms)."""
        inode = os.stat(self.tasks_dir).st_ino
        async for _changes in awatch(
            self.tasks_dir,
            watch_filter=lambda _change, path: path.endswith(".py") or path == str(self.tasks_dir),
            stop_event=stop,
            debounce=self.debounce_ms,
            step=20,
            rust_timeout=max(1, int(self.rescan_s * 1000)),
            yield_on_timeout=True,
            recursive=False,
        ):
            await self.areload()
            try:
                if os.stat(self.tasks_dir).st_ino != inode:
                    return
            except OSError:
                return

    async def _sleep(self, seconds: float) -> None:
        if self._stop is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._stop.wait(), seconds)

    def _ticket(self) -> int:
        with self._lock:
            self._loads_started += 1
            return self._loads_started

    def _swap(self, ticket: int, registry: Registry) -> None:
        # Loads may overlap (a direct reload() during run()); a load that started earlier than the
        # one already swapped in is older news and is dropped.
        with self._lock:
            if ticket < self._swapped_load:
                return
            self._swapped_load = ticket
            old, self._registry = self._registry, registry
        if old.fingerprint() == registry.fingerprint():
            return
        log.info(
            "registry.reloaded dir=%s tasks=%d errors=%d", self.tasks_dir, len(registry.tasks), len(registry.errors)
        )
        if self.on_change is not None:
            try:
                self.on_change(registry)
            except Exception:  # a failing listener must not stop hot reload
                log.exception("registry.on_change_failed dir=%s", self.tasks_dir)
