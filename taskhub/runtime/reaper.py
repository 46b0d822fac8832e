"""The reaper: finds runs whose worker is gone or whose lease expired, kills their trees, records it.

Each tick reads the projections (active runs, workers), asks the host which workers are dead, and
reaps what `reaper_decide.select_reaps` returns. It ticks every `interval_s`, and sooner at the next
lease deadline, so a dead worker is noticed within about a second and an expired lease within a
tick of its deadline. It does not tick on changes of the log: what it reaps comes due with time, and
under load the log changes every few ms (a sweep at each, even 50 ms apart, cost the reaper ~0.5 ms
of CPU per run when 4 workers ran 2,000 runs submitted one by one).

Nothing is remembered between ticks that the log does not hold, except which reaps are in flight in
this process (so one run is not killed twice concurrently) and when the last tick ran (to notice
our own pauses): a restarted reaper finds everything again.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
import signal
import socket
from collections.abc import Callable

from taskhub.errors import StoreError
from taskhub.events.clock import Clock, system_clock
from taskhub.events.log import Log
from taskhub.events.types import Envelope
from taskhub.projections import queries
from taskhub.runtime import killing
from taskhub.runtime.reaper_act import KillTree, ReapResult, reap, worker_alive
from taskhub.runtime.reaper_decide import (
    Candidate,
    PauseDetector,
    WorkerProbe,
    dead_workers,
    latest_starts,
    next_expiry,
    select_reaps,
    still_due,
)
from taskhub.settings import Settings

logger = logging.getLogger(__name__)

TICK_S = 0.5  # the longest sleep between ticks: bounds how late a dead worker is noticed
MIN_TICK_GAP_S = 0.05  # the shortest sleep, even when a deadline has just passed
EXPIRY_SLACK_S = 0.01  # wake just after a deadline, since "expired" means strictly past it
MAX_PARALLEL_REAPS = 16  # each reap scans /proc; bound the work a mass expiry starts at once
READ_BATCH = 1000
STOP_SETTLE_S = 10.0  # on shutdown, let reaps in flight finish (a kill's grace) before cancelling


class Reaper:
    """Reaps from projections; `tick(now)` for tests, `run(stop)` for the service loop."""

    def __init__(
        self,
        log: Log,
        settings: Settings,
        *,
        interval_s: float = TICK_S,
        clock: Clock = system_clock,
        host: str | None = None,
        probe: WorkerProbe = worker_alive,
        kill: KillTree | None = None,
        rng: Callable[[], float] = random.random,
        pause_grace_s: float | None = None,
    ) -> None:
        self.log = log
        self.settings = settings
        self.interval_s = interval_s
        self.clock = clock
        self.host = host or socket.gethostname()
        self.probe = probe
        # Scoped to this home: another home's run with the same id is never touched.
        self.kill = kill or functools.partial(killing.kill_run_tree, runs_dir=settings.runs_dir)
        self.rng = rng
        # One heartbeat period for workers to renew after a pause, plus a tick for the renewal to land.
        grace = settings.heartbeat_s + interval_s if pause_grace_s is None else pause_grace_s
        self.pause = PauseDetector(interval_s, grace)
        self._inflight: dict[str, asyncio.Task[ReapResult | None]] = {}
        self._limit = asyncio.Semaphore(MAX_PARALLEL_REAPS)
        self._wake_at: float | None = None
        self.ticks = 0  # sweeps done: lets tests and logs see the loop is alive

    async def tick(self, now: float | None = None) -> list[ReapResult]:
        """One sweep, waiting for every reap it started; returns the reaps that ran."""
        tasks = await self.sweep(self.clock() if now is None else now)
        results = await asyncio.gather(*tasks)
        return [r for r in results if r is not None]

    async def sweep(self, now: float) -> list[asyncio.Task[ReapResult | None]]:
        """Decide what to reap at `now` and start those reaps without waiting for their kills."""
        self.ticks += 1
        gap = self.pause.observe(now)
        if gap is not None:
            logger.warning(
                "reaper.paused gap_s=%.1f: leases that ran out meanwhile get %.1fs for their workers to renew",
                gap,
                self.pause.grace_s,
            )
        reader = self.log.reader
        runs = await queries.active_runs(reader)
        workers = {w.worker_id: w for w in await queries.list_workers(reader)}
        # Only the workers holding runs matter; probing each is a psutil call.
        holders = [workers[w] for w in {r.worker_id for r in runs} if w is not None and w in workers]
        dead = dead_workers(holders, self.host, self.probe)
        starts = await self._starts_since(min((r.fence for r in runs if r.fence is not None), default=None))
        hold = self.pause.active_hold(now)
        candidates = select_reaps(runs, starts, dead, now, hold=hold)
        started = []
        for candidate in candidates:
            if candidate.run_id in self._inflight:
                continue
            task = asyncio.create_task(self._reap(candidate, now), name=f"reap-{candidate.run_id}")
            self._inflight[candidate.run_id] = task
            task.add_done_callback(self._forget)
            started.append(task)
        wake = next_expiry(runs, now)
        if hold is not None:  # the spared leases come due when the hold ends
            wake = hold.until if wake is None else min(wake, hold.until)
        self._wake_at = wake
        return started

    async def _starts_since(self, oldest_claim: int | None) -> dict[str, int]:
        """Workers started after the oldest active claim (restarts that orphaned runs): an indexed read
        of the log's `worker_started` events from there on, usually none or a few."""
        if oldest_claim is None:
            return {}
        found: list[Envelope] = []
        after = oldest_claim
        while batch := await self.log.read(after=after, limit=READ_BATCH, types=["worker_started"]):
            found += batch
            after = batch[-1].seq
            if len(batch) < READ_BATCH:
                break
        return latest_starts(found)

    def _forget(self, task: asyncio.Task[ReapResult | None]) -> None:
        run_id = task.get_name().removeprefix("reap-")
        if self._inflight.get(run_id) is task:
            del self._inflight[run_id]

    async def _reap(self, candidate: Candidate, now: float) -> ReapResult | None:
        async with self._limit:
            try:
                # The view may have moved since the sweep (a worker's exit, a late `started`).
                fresh = await queries.get_run(self.log.reader, candidate.run_id)
                if not still_due(fresh, candidate, now):
                    return None
                assert fresh is not None
                return await reap(
                    self.log,
                    Candidate(fresh, candidate.reason),
                    kill=self.kill,
                    grace_s=self.settings.kill_grace_s,
                    jitter=self.rng(),
                    host=self.host,
                )
            except Exception:
                # A locked database, /proc trouble: nothing was appended, so the next tick decides again.
                logger.exception("reaper.reap_failed run_id=%s", candidate.run_id)
                return None

    def sleep_for(self, now: float) -> float:
        """How long to sleep after a tick at `now`: a tick interval, or less to meet a deadline."""
        delay = self.interval_s
        if self._wake_at is not None:
            delay = min(delay, self._wake_at - now + EXPIRY_SLACK_S)
        return max(delay, MIN_TICK_GAP_S)

    async def run(self, stop: asyncio.Event) -> None:
        """Tick until `stop` is set: every interval, and at lease deadlines."""
        logger.info(
            "reaper.started host=%s containment=%s interval_s=%s lease_s=%s kill_grace_s=%s",
            self.host,
            killing.containment_level(),
            self.interval_s,
            self.settings.lease_s,
            self.settings.kill_grace_s,
        )
        try:
            while not stop.is_set():
                now = self.clock()
                try:
                    await self.sweep(now)
                except Exception:
                    # Reads failed (the database busy or briefly unreadable): a service outlives that.
                    logger.exception("reaper.tick_failed")
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.sleep_for(now))
        finally:
            await self._settle()
            logger.info("reaper.stopped")

    async def _settle(self) -> None:
        pending = list(self._inflight.values())
        if not pending:
            return
        _done, late = await asyncio.wait(pending, timeout=STOP_SETTLE_S)
        for task in late:
            task.cancel()
        for task in late:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


async def serve(settings: Settings, stop: asyncio.Event | None = None) -> int:
    """Open the log and run the reaper until SIGTERM/SIGINT (or `stop`); returns the exit code."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    signals = (signal.SIGTERM, signal.SIGINT)
    for sig in signals:
        loop.add_signal_handler(sig, stop.set)  # the handler only sets a flag; the loop does the work
    try:
        try:
            # No file watch: the reaper ticks on a timer, never on the log's changes.
            log = await Log.open(settings.db_path, synchronous=settings.synchronous, watch=False)
        except StoreError as exc:
            logger.error("reaper.cannot_open db=%s: %s", settings.db_path, exc)
            return 1
        try:
            await Reaper(log, settings).run(stop)
        finally:
            await log.close()
        return 0
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)


def run_reaper(settings: Settings) -> int:
    """Entry point of `taskhub reaper`: blocks until stopped; returns the exit code."""
    return asyncio.run(serve(settings))
