"""The worker: claim runs from the queue, supervise each as its own process group, keep their leases.

It decides only from projections (the claim is one transaction over the runs table) and wakes on
new events in the log rather than on a fixed sleep. Signal handlers only set flags; the loop acts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
import time
from collections import deque
from collections.abc import Callable, Coroutine
from functools import partial
from typing import Any

import psutil

from taskhub.events.log import Log
from taskhub.events.store import Txn, connect
from taskhub.events.types import WorkerStarted, WorkerStopped
from taskhub.events.write_gate import ClaimTurn
from taskhub.events.writer import LoopLogWriter
from taskhub.projections import ops
from taskhub.projections.runs import RunView
from taskhub.runtime.process import default_python_bin_dir, make_descriptors_private, put_on_path_first
from taskhub.runtime.registry_loader import LoadedTask
from taskhub.runtime.registry_watch import RegistryWatcher
from taskhub.runtime.supervisor import RunSupervisor, WorkerContext
from taskhub.settings import Settings

logger = logging.getLogger(__name__)

SHUTDOWN_BEFORE_START = "the worker shut down before the run started"

CANCEL_CHECK_S = 0.05  # while every slot is busy, cancels are looked for this often (~0.4 ms of the loop each)
IDLE_RECHECK_S = 1.0  # a claim check even without any wake-up (clock-driven not_before, lost events)
LEASE_SAFETY_S = 1.0  # self-fence this long before the lease would lapse
SWITCH_INTERVAL_S = 0.0005  # GIL hand-off between the loop and a spawn thread


class Worker:
    def __init__(self, settings: Settings, concurrency: int = 1, worker_id: str | None = None) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.settings = settings
        self.concurrency = concurrency
        self.host = socket.gethostname()
        self.worker_id = worker_id or f"{self.host}-{os.getpid()}"
        self.running: dict[str, RunSupervisor] = {}
        self.handing_over = 0  # slots freed by an exit whose commit also claims their next run
        # Claimed, not yet started: a slot freed by a quick run takes one at once instead of
        # waiting for a commit. Only the queue's head, only if its task's last run here was quick
        # and it has no max_concurrency: a run waits here about as long as a quick run takes.
        self.ready: deque[RunSupervisor] = deque()
        self.refilling = 0  # runs being claimed for `ready` by commits in flight
        self.quick_tasks: set[str] = set()
        self.tasks: set[asyncio.Task[None]] = set()
        self.stopping = False
        self.skip_drain = False
        self._stopped = asyncio.Event()
        self._woken = asyncio.Event()  # set by _wake: this process freed a slot or is stopping
        self.log: Log | None = None

    # -- signals ---------------------------------------------------------------------------

    def request_shutdown(self) -> None:
        """First call: stop claiming and drain. Second call: skip the drain."""
        if self.stopping:
            self.skip_drain = True
        self.stopping = True
        self._wake()
        self._stopped.set()

    # -- main ------------------------------------------------------------------------------

    async def run(self) -> int:
        settings = self.settings
        # One thread does it all (see LoopLogWriter): each hand-over of the GIL between threads cost
        # more CPU per run than the work handed over.
        self.log = log = await Log.open(settings.db_path, settings.synchronous, writes_on_loop=True)
        if isinstance(log.writer, LoopLogWriter):
            log.writer.sync_on_loop = self._only_quick_runs
        # The claim loop's checks are tiny indexed reads: on the loop thread they cost ~20 us, a
        # thread hop (aiosqlite) costs several times that, and they run on every change of the log.
        self.peek = connect(settings.db_path, readonly=True)
        self.turn = ClaimTurn(settings.db_path)
        self.registry = RegistryWatcher(settings.tasks_dir)
        ctx = WorkerContext(
            settings=settings,
            log=log,
            worker_id=self.worker_id,
            host=self.host,
            base_env=dict(os.environ),
            python_bin_dir=default_python_bin_dir(),
            find_task=self._find_task,
            release_slot=self._release_slot,
            hand_over=self._hand_over,
            spawn_in_thread=None if self.concurrency > 1 else False,
        )
        self.ctx = ctx
        me = psutil.Process()
        started = WorkerStarted(pid=me.pid, host=self.host, concurrency=self.concurrency, create_time=me.create_time())

        await log.run(lambda txn: ops.append_worker_event(txn, self.worker_id, started))
        logger.info("worker.started id=%s concurrency=%d pid=%d", self.worker_id, self.concurrency, me.pid)
        helpers = [
            asyncio.create_task(self.registry.run(), name="registry"),
            asyncio.create_task(self._heartbeats(), name="heartbeats"),
        ]
        try:
            await self._claim_loop()
            await self._drain()
        finally:
            self.registry.stop()
            for helper in helpers:
                helper.cancel()
            for helper in helpers:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await helper
            with contextlib.suppress(Exception):
                await log.run(
                    lambda txn: ops.append_worker_event(txn, self.worker_id, WorkerStopped(reason="shutdown"))
                )
            await log.close()
            self.peek.close()
            self.turn.close()
        logger.info("worker.stopped id=%s", self.worker_id)
        return 0

    def _wake(self) -> None:
        """Something changed in this process (a slot freed, a stop): run the claim loop now."""
        self._woken.set()
        if self.log is not None:
            self.log.signal.notify()

    async def _claim_loop(self) -> None:
        assert self.log is not None
        lease_s = self.settings.lease_s
        signal = self.log.signal
        polled = True  # the first look claims what is due, as a poll does
        while not self.stopping:
            seen = signal.generation
            self._woken.clear()
            self._check_cancels()
            self._start_ready()
            free = self._free_slots() - self.refilling  # slots a claim in flight will fill are taken
            # A commit is answered by the worker holding the claim turn (see ClaimTurn); every
            # worker claims when its own poll comes due, so a stopped turn holder delays, not blocks.
            leading = free > 0 and self.turn.take()
            if free <= 0:
                self.turn.release()
            if (leading or polled) and free > 0 and self._claimable():
                views = await self.log.run(
                    partial(ops.claim, worker_id=self.worker_id, slots=free, lease_s=lease_s, limits=self._limits())
                )
                self._supervise_claimed(views)
                if views:
                    continue
            if free > 0:
                # Woken by any commit to the log (ours, or another process's via the file watch).
                signal.listen(True)
                await signal.wait(seen, timeout=self._idle_timeout() if leading else IDLE_RECHECK_S)
                polled = signal.generation == seen  # nothing woke us: the timeout did
            else:
                # Every slot is busy (a finishing run claims its slot's next one itself), so only a
                # cancel can matter: look every CANCEL_CHECK_S rather than waking on each commit of
                # every worker, with the file watch paused; at once when this process frees a slot.
                signal.listen(False)
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._woken.wait(), CANCEL_CHECK_S)
        self.turn.release()  # stopping: another idle worker answers the next commit

    def _limits(self) -> dict[str, int | None]:
        return {t: lt.spec.max_concurrency for t, lt in self.registry.current.tasks.items()}

    async def _hand_over(self, run_id: str, op: Callable[[Txn], RunView]) -> RunView:
        """A quick run ended: its slot starts a ready run at once, and one commit records the end,
        claims the slot's next run if none was ready, and claims one more to keep ready."""
        ended = self.running.pop(run_id, None)
        if ended is not None:
            self.quick_tasks.add(ended.view.task_id)
        self._start_ready()
        assert self.log is not None
        if self.stopping:
            return await self.log.run(op)
        limits, lease_s = self._limits(), self.settings.lease_s
        # A run being claimed as ready by an earlier commit takes the slot: claiming another now
        # would start a later run before it.
        now_slots = 1 if self._free_slots() > self.refilling else 0
        quick = {t for t in self.quick_tasks if limits.get(t, 0) is None}
        refill = 1 if quick and len(self.ready) + self.refilling < self._ready_target() else 0

        def exit_then_claim(txn: Txn) -> tuple[RunView, list[RunView], list[RunView]]:
            view = op(txn)  # if this raises, nothing is claimed: the claim loop takes the slot
            if self.stopping:
                return view, [], []
            claim = partial(ops.claim, txn, worker_id=self.worker_id, lease_s=lease_s, limits=limits)
            now = claim(slots=now_slots) if now_slots else []
            later = claim(slots=1) if refill and _head_task(txn) in quick else []
            return view, now, later

        self.handing_over += now_slots
        self.refilling += refill
        try:
            view, claimed, later = await self.log.run(exit_then_claim)
        except BaseException:
            self._wake()  # a slot may be free and unclaimed: the claim loop takes it
            raise
        finally:
            self.handing_over -= now_slots
            self.refilling -= refill
        self.ready.extend(RunSupervisor(self.ctx, v) for v in later)
        self._supervise_claimed(claimed)
        self._start_ready()
        if now_slots and not claimed:
            self._wake()  # nothing due now: the claim loop waits for the queue on the slot's behalf
        return view

    def _only_quick_runs(self) -> bool:
        """No run here needs the loop while a commit syncs: none is tailed, capped or timed."""
        return not any(sup.long for sup in self.running.values())

    def _free_slots(self) -> int:
        return self.concurrency - len(self.running) - self.handing_over

    def _ready_target(self) -> int:
        return self.concurrency * self.settings.ready_per_slot

    def _start_ready(self) -> None:
        """Free slots take ready runs first."""
        while self.ready and self._free_slots() > 0:
            self._supervise(self.ready.popleft())

    def _supervise_claimed(self, views: list[RunView]) -> None:
        for view in views:
            self._supervise(RunSupervisor(self.ctx, view))

    def _claimable(self) -> bool:
        """A cheap read before taking the write lock: is any queued run due?"""
        row = self.peek.execute(
            "SELECT 1 FROM runs WHERE status = 'queued' AND (not_before IS NULL OR not_before <= ?) LIMIT 1",
            (time.time(),),
        ).fetchone()
        return row is not None

    def _idle_timeout(self) -> float:
        """Sleep until the next wake-up, or until the earliest future not_before comes due."""
        if len(self.running) >= self.concurrency:
            return IDLE_RECHECK_S  # no free slot: a finishing run wakes us
        row = self.peek.execute(
            "SELECT min(not_before) FROM runs INDEXED BY runs_not_before WHERE status = 'queued' AND not_before > ?",
            (time.time(),),
        ).fetchone()
        if row and row[0] is not None:
            due: float = row[0] - time.time()
            return max(0.0, min(IDLE_RECHECK_S, due))
        return IDLE_RECHECK_S

    def _check_cancels(self) -> None:
        """A cancel is a `cancel_requested` event: the projection says which of our runs have one."""
        if not self.running and not self.ready:
            return
        rows = self.peek.execute(
            "SELECT run_id FROM runs WHERE worker_id = ? AND status = 'cancelling'", (self.worker_id,)
        ).fetchall()
        for (run_id,) in rows:
            sup = self.running.get(run_id)
            if sup is not None and sup.stop_reason is None:
                sup.request_stop("cancelled")
            elif sup is None:
                self._cancel_ready(run_id)

    def _cancel_ready(self, run_id: str) -> None:
        """A ready run cancelled before it started: it ends cancelled without ever running."""
        for sup in self.ready:
            if sup.run_id == run_id:
                self.ready.remove(sup)
                self._track(sup.end_unstarted(), name=f"run-{run_id}")
                return

    def _supervise(self, sup: RunSupervisor) -> None:
        self.running[sup.run_id] = sup

        async def supervise() -> None:
            try:
                await sup.run()
            finally:
                self._release_slot(sup.run_id)

        self._track(supervise(), name=f"run-{sup.run_id}")

    def _track(self, work: Coroutine[Any, Any, None], name: str | None = None) -> None:
        task = asyncio.create_task(work, name=name)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def _release_slot(self, run_id: str) -> None:
        ended = self.running.pop(run_id, None)
        if ended is not None:
            self.quick_tasks.discard(ended.view.task_id)  # it ran long (or never ran): keep none ready
            self._start_ready()
            self._wake()

    async def _find_task(self, task_id: str, version: str | None) -> LoadedTask | None:
        found = self.registry.current.tasks.get(task_id)
        if found is None or (version is not None and found.version != version):
            # Submitted against a file we have not reloaded yet: catch up before running it.
            found = (await self.registry.areload()).tasks.get(task_id)
        return found

    async def _heartbeats(self) -> None:
        interval = self.settings.heartbeat_s
        while True:
            await asyncio.sleep(min(interval, 1.0) if self.running else interval)
            now = time.monotonic()
            held = [*self.running.values(), *self.ready]
            due = [s for s in held if s.lease_deadline - now <= self.settings.lease_s - interval]
            await asyncio.gather(*(s.heartbeat() for s in due))
            now = time.monotonic()
            for sup in list(self.running.values()):
                if now > sup.lease_deadline - LEASE_SAFETY_S and sup.stop_reason is None:
                    # We could not renew in time: the reaper may take the run. Kill it ourselves
                    # rather than let it run unsupervised (self-fencing).
                    logger.error("worker.self_fence run_id=%s", sup.run_id)
                    sup.request_stop("self_fenced")

    async def _drain(self) -> None:
        """Let running tasks finish for the drain period, then stop the rest and record it."""
        if self.tasks:
            logger.info("worker.draining runs=%d drain_s=%s", len(self.tasks), self.settings.drain_s)
            deadline = time.monotonic() + self.settings.drain_s
            while self.tasks and not self.skip_drain and time.monotonic() < deadline:
                self._stopped.clear()
                second_signal = asyncio.ensure_future(self._stopped.wait())
                await asyncio.wait(
                    set(self.tasks) | {second_signal},
                    timeout=max(0.0, deadline - time.monotonic()),
                    return_when=asyncio.FIRST_COMPLETED,
                )
                second_signal.cancel()
        for sup in list(self.running.values()):
            sup.request_stop("shutdown")
        while self.ready:  # claimed but never started: they end as a shutdown ends a running run
            self._track(self.ready.popleft().end_unstarted(SHUTDOWN_BEFORE_START))
        if self.tasks:
            await asyncio.gather(*self.tasks, return_exceptions=True)


def _head_task(txn: Txn) -> str | None:
    """The task of the run a claim would take next, if it is due (an unlimited task's run is never
    skipped, so for one of those this is exactly what `ops.claim` takes)."""
    row = txn.conn.execute(
        "SELECT task_id FROM runs INDEXED BY runs_queue WHERE status = 'queued'"
        " AND (not_before IS NULL OR not_before <= ?) ORDER BY priority DESC, num LIMIT 1",
        (txn.now,),
    ).fetchone()
    return None if row is None else str(row[0])


def run_worker(settings: Settings, concurrency: int = 1, worker_id: str | None = None) -> int:
    """Blocking entry point of `taskhub worker`."""
    # posix_spawn does not close descriptors as Popen does: ours must all be close-on-exec, so a
    # run inherits only its three standard streams.
    make_descriptors_private()
    put_on_path_first(default_python_bin_dir())  # then posix_spawnp's PATH search is the run's
    # A spawn thread whose child has exec'd needs the GIL to hand the run back to this loop: with the
    # default 5 ms switch interval a busy loop delays that by up to 5 ms, most of a short run's life.
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    worker = Worker(settings, concurrency, worker_id)

    async def main() -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, worker.request_shutdown)
        return await worker.run()

    return asyncio.run(main())
