"""Supervise one claimed run: spawn it, tail its output, enforce timeout and cancel, report its end.

Every step is an event appended with the claim's fence. A refused append means the run was reaped
(or reclaimed) behind our back: we kill what is left of it and record nothing more for it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import signal
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from taskhub.errors import FenceRefused, IllegalTransition, StoreError, TaskHubError, UnknownRun
from taskhub.events.clock import iso
from taskhub.events.log import Log
from taskhub.events.store import Txn
from taskhub.events.types import Event, Heartbeat, Started
from taskhub.projections import ops
from taskhub.projections.decisions import decide_exit
from taskhub.projections.runs import RunView
from taskhub.registry import build_argv
from taskhub.runtime.cgroups import RunCgroup
from taskhub.runtime.identity import ProcessIdentity
from taskhub.runtime.killing import kill_run_tree
from taskhub.runtime.output_tail import OutputTail
from taskhub.runtime.process import Spawned, SpawnError, child_env, spawn
from taskhub.runtime.reaper_decide import lease_deadline as lease_expiry
from taskhub.runtime.registry_loader import LoadedTask
from taskhub.runtime.run_files import LogCap, ensure_logs, prepare_run_dir
from taskhub.settings import Settings

log = logging.getLogger(__name__)

TAIL_INTERVAL_S = 0.2  # how often a running task's stdout is read for structured lines
# The first look at a run's output, and the next while a stream keeps going past its cap, come
# this soon: a task writing 100 MB/s then overshoots by ~5 MB between cuts, not ~20.
LOOK_SOON_S = 0.05
REPORT_RETRY_S = 0.5
# A run over this soon after its spawn is recorded in one commit. `started` waits for it: short
# enough to be unseen, long enough for most runs of `true` on a busy machine.
SHORT_RUN_S = 0.005
CONTAIN_AFTER_S = 0.05  # a run still alive this long after its spawn is moved into its own cgroup


@dataclass
class WorkerContext:
    """What every supervisor of one worker shares."""

    settings: Settings
    log: Log
    worker_id: str
    host: str
    base_env: Mapping[str, str]
    python_bin_dir: str
    find_task: Callable[[str, str | None], Any]  # async (task_id, version) -> LoadedTask | None
    release_slot: Callable[[str], None]  # the run's process is gone: its slot may take another run
    # async (run_id, op) -> op's result: free the run's slot and claim its next run in op's commit
    hand_over: Callable[[str, Callable[[Txn], RunView]], Awaitable[RunView]]
    spawn_in_thread: bool | None  # False: inline (one slot: nothing else waits); None: as spawn() sees fit


@dataclass
class _Watch:
    """A spawned run and what follows it: its stdout tail, its log caps, when it started."""

    spawned: Spawned
    tail: OutputTail
    stdout_cap: LogCap
    stderr_cap: LogCap
    started_mono: float
    look_soon: bool = True  # the first look, or the last one cut a log

    def poll_then_cut(self, final: bool = False) -> list[Event]:
        """New output events, then the logs cut to their caps: read first (and nothing awaited
        between), so structured lines past the cap still count; stdout's size is the tail's."""
        output = self.tail.poll(final=final)

        def catch_up() -> int:  # the child went on writing: read that too before it is cut
            output.extend(self.tail.poll(final=final))
            return self.tail.size

        cut_stdout = self.stdout_cap.enforce(self.tail.size, catch_up)
        if cut_stdout:
            self.tail.cut_at(self.stdout_cap.cap)
        self.look_soon = self.stderr_cap.enforce() or cut_stdout
        return output


RENEW_BEFORE_START_S = 1.0  # a run whose lease is this close to its end renews it before it starts


def lease_deadline(view: RunView, lease_s: float, now: float, now_monotonic: float) -> float:
    """When (monotonic) the lease of a claim ends, read from the claim itself (as the reaper reads
    it), not from when this worker got the claim's view: a worker stopped between its claim's
    commit and the moment it saw the result got a fresh lease in memory for a run already reaped,
    and started it (test_faults 9 failed so in CI). Never more than `lease_s`."""
    expires = lease_expiry(view)
    return now_monotonic + (lease_s if expires is None else min(lease_s, expires - now))


class RunSupervisor:
    def __init__(self, ctx: WorkerContext, view: RunView) -> None:
        assert view.fence is not None
        self.ctx = ctx
        self.view = view
        self.run_id = view.run_id
        self.fence: int = view.fence
        self.lease_deadline = lease_deadline(view, ctx.settings.lease_s, time.time(), time.monotonic())
        self.spawned: Spawned | None = None
        self.stop_reason: str | None = None  # cancelled | timed_out | shutdown | fenced | self_fenced
        self.long = False  # its process outlived the short window: the loop tails and watches it
        self._wake = asyncio.Event()
        self._started: asyncio.Future[None] | None = None

    # -- signals from the worker -----------------------------------------------------------

    def request_stop(self, reason: str) -> None:
        if self.stop_reason is None:
            self.stop_reason = reason
        self._wake.set()

    async def heartbeat(self) -> None:
        """Renew the lease; a refusal means we were fenced out."""
        sent = time.monotonic()
        lease_s = self.ctx.settings.lease_s

        def op(txn: Txn) -> RunView:
            return ops.append_run_events(
                txn,
                self.run_id,
                [Heartbeat(fence=self.fence, lease_expires_at=iso(txn.now + lease_s))],
                self.ctx.worker_id,
            )

        try:
            self.view = await self.ctx.log.run(op)
            self.lease_deadline = sent + lease_s
        except (FenceRefused, IllegalTransition):
            await self._refused("heartbeat")
        except StoreError as exc:
            log.warning("worker.heartbeat_failed run_id=%s error=%s", self.run_id, exc)

    # -- the run ---------------------------------------------------------------------------

    async def run(self) -> None:
        try:
            await self._run()
        except Exception:
            log.exception("worker.supervise_failed run_id=%s", self.run_id)
            await self._kill()

    async def _run(self) -> None:
        if time.monotonic() > self.lease_deadline - RENEW_BEFORE_START_S:
            await self.heartbeat()  # it waited ready past its lease (the worker was stopped?): still ours?
        if self.stop_reason in ("fenced", "self_fenced"):  # the claim was lost (reaped) before it started
            log.warning("worker.not_started run_id=%s reason=%s", self.run_id, self.stop_reason)
            return
        settings = self.ctx.settings
        run_dir = settings.run_dir(self.run_id)
        # Made here, on the loop: a thread making folders ahead of the claims cost more CPU per run,
        # in GIL hand-overs at each of its system calls, than the two mkdirs it saved the loop.
        artifacts = prepare_run_dir(run_dir, self.view.attempt)
        stdout_path, stderr_path = run_dir / "stdout.log", run_dir / "stderr.log"
        loaded: LoadedTask | None = await self.ctx.find_task(self.view.task_id, self.view.task_version)
        if loaded is None:
            await self._spawn_failed(f"unknown task {self.view.task_id!r}: no such task is loaded", run_dir)
            return
        try:
            argv = build_argv(loaded.spec, self.view.params)
        except TaskHubError as exc:
            await self._spawn_failed(f"cannot build the command: {exc}", run_dir)
            return
        env = child_env(
            self.ctx.base_env,
            run_id=self.run_id,
            attempt=self.view.attempt,
            run_dir=run_dir,
            artifacts_dir=artifacts,
            python_bin_dir=self.ctx.python_bin_dir,
        )
        # A first attempt's log is new: no need to look where it ends.
        tail = OutputTail(stdout_path, self.fence, time.time, start=0 if self.view.attempt == 1 else None)
        try:
            spawned = await spawn(
                argv,
                cwd=settings.home,
                env=env,
                stdout_path=stdout_path,
                stderr_path=stderr_path,
                in_thread=self.ctx.spawn_in_thread,
                wait_s=self._short_window(),
            )
        except SpawnError as exc:
            await self._spawn_failed(str(exc), run_dir)
            return
        self.spawned = spawned
        cap = settings.log_cap_bytes
        watch = _Watch(spawned, tail, LogCap(stdout_path, cap), LogCap(stderr_path, cap), time.monotonic())
        # The spawn waited up to the short window for the exit.
        short = spawned.process.exited.done() and self.stop_reason is None
        # Built only now: reading the create time while the child still execs waits for it.
        started = Started(
            fence=self.fence,
            pid=spawned.pid,
            pgid=spawned.pgid,
            create_time=spawned.create_time,
            host=self.ctx.host,
            argv=argv,
        )
        if short:
            await self._record_short_run(watch, started)
        else:
            await self._supervise_long_run(watch, started)

    async def _record_short_run(self, watch: _Watch, started: Started) -> None:
        """Most runs of a busy queue are short: one over within SHORT_RUN_S is recorded in one
        commit (started, its output, exited) that also claims the slot's next run."""
        _kill_group_leftovers(watch.spawned.pgid)
        output = watch.poll_then_cut(final=True)
        returncode = watch.spawned.process.returncode
        outcome = "succeeded" if returncode == 0 else "failed"
        end = self._exit_events(outcome, returncode, time.monotonic() - watch.started_mono, output)
        await self._report(self._after(end, [started]), retry=True, hand_over=True)

    async def _supervise_long_run(self, watch: _Watch, started: Started) -> None:
        self.long = True
        spawned = watch.spawned
        # Moving a pid into a cgroup now and then takes 10-30 ms (the kernel synchronises every
        # migration), which would dominate a short run: only runs still alive after CONTAIN_AFTER_S
        # get one. Until then the process group and the environment scan contain them.
        contain: asyncio.Future[RunCgroup | None] | None = None

        def start_containment() -> None:
            nonlocal contain
            if spawned.process.returncode is None:
                settings = self.ctx.settings
                contain = asyncio.ensure_future(
                    asyncio.to_thread(_contain, self.run_id, settings.runs_dir, spawned.pid)
                )

        contain_later = asyncio.get_running_loop().call_later(CONTAIN_AFTER_S - SHORT_RUN_S, start_containment)
        # The process runs while `started` is being committed.
        self._started = asyncio.ensure_future(self._report_started(started))
        outcome = await self._watch(watch)
        contain_later.cancel()
        returncode = spawned.process.returncode
        await self._started
        cgroup = await contain if contain is not None else None
        if cgroup is not None:
            if cgroup.populated():
                await asyncio.to_thread(_release, cgroup)
            else:
                cgroup.remove()
        if self.stop_reason in ("fenced", "self_fenced"):
            return
        final_output = watch.poll_then_cut(final=True)
        # The slot is free once the process is gone: the next claim can share the exit's commit.
        self.ctx.release_slot(self.run_id)
        await self._report_output(final_output)
        if self.stop_reason in ("fenced", "self_fenced"):
            return
        await self._report_exit(outcome, returncode, time.monotonic() - watch.started_mono)

    def _short_window(self) -> float:
        """A run over within this (SHORT_RUN_S, or its shorter timeout) is recorded in one commit."""
        if self.view.timeout_s:
            return min(SHORT_RUN_S, self.view.timeout_s)
        return SHORT_RUN_S

    async def _report_started(self, started: Started) -> None:
        if await self._report(lambda _v: [started]) and self.view.status == "cancelling":
            self.request_stop("cancelled")

    async def _watch(self, watch: _Watch) -> str:
        """Until the process ends: tail output, enforce caps, the timeout, cancel and fencing."""
        spawned, tail = watch.spawned, watch.tail
        wait = spawned.process.exited
        timeout_s = self.view.timeout_s
        deadline = time.monotonic() + timeout_s if timeout_s else None
        killer: asyncio.Task[list[int]] | None = None
        while not wait.done():
            waker: asyncio.Future[Any] = asyncio.ensure_future(self._wake.wait())
            timeout = LOOK_SOON_S if watch.look_soon else TAIL_INTERVAL_S
            due = tail.due_in()
            if due is not None:
                timeout = min(timeout, due)
            if deadline is not None:
                timeout = max(0.0, min(timeout, deadline - time.monotonic()))
            await asyncio.wait((wait, waker), timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            waker.cancel()
            self._wake.clear()
            # What the task writes while a report commits would be cut unread if we cut after it.
            output = watch.poll_then_cut()
            if output:
                if self._started is not None:
                    await self._started  # nothing about the run is logged before it is `started`
                await self._report_output(output)
            if deadline is not None and time.monotonic() >= deadline and self.stop_reason is None:
                self.stop_reason = "timed_out"
            if self.stop_reason is not None and killer is None:
                killer = asyncio.ensure_future(self._kill())
        await wait
        if killer is not None:
            await killer
        else:
            _kill_group_leftovers(spawned.pgid)
        if self.stop_reason == "timed_out":
            return "timed_out"
        if self.stop_reason == "cancelled":
            return "cancelled"
        if self.stop_reason == "shutdown":
            return "failed"
        return "succeeded" if spawned.process.returncode == 0 else "failed"

    async def _kill(self) -> list[int]:
        spawned = self.spawned
        identity = ProcessIdentity(spawned.pid, spawned.create_time) if spawned else None
        return await kill_run_tree(
            self.run_id,
            spawned.pgid if spawned else None,
            identity,
            self.ctx.settings.kill_grace_s,
            runs_dir=self.ctx.settings.runs_dir,
        )

    # -- reporting -------------------------------------------------------------------------

    async def _report(
        self, make: Callable[[RunView], Sequence[Event]], retry: bool = False, hand_over: bool = False
    ) -> bool:
        """Append events decided from the run's current view, in one transaction, with our fence.
        With `hand_over`, the same commit frees the run's slot and claims the slot's next run."""
        run = partial(self.ctx.hand_over, self.run_id) if hand_over else self.ctx.log.run

        def op(txn: Txn) -> RunView:
            return ops.append_decided(txn, self.run_id, make, self.ctx.worker_id)

        while True:
            try:
                self.view = await run(op)
                return True
            except (FenceRefused, IllegalTransition, UnknownRun) as exc:
                log.warning("worker.fenced_out run_id=%s fence=%s reason=%s", self.run_id, self.fence, exc)
                await self._refused("report")
                return False
            except StoreError as exc:
                if not retry or time.monotonic() > self.lease_deadline:
                    log.error("worker.report_failed run_id=%s error=%s", self.run_id, exc)
                    return False
                await asyncio.sleep(REPORT_RETRY_S)

    async def _report_output(self, events: list[Event]) -> None:
        if events:
            await self._report(lambda _v: events)

    async def _report_exit(self, outcome: str, returncode: int | None, duration_s: float) -> None:
        await self._report(self._exit_events(outcome, returncode, duration_s), retry=True)

    def _exit_events(
        self, outcome: str, returncode: int | None, duration_s: float, output: Sequence[Event] = ()
    ) -> Callable[[RunView], list[Event]]:
        """The run's last output events and its end, decided on the run's view when appended."""
        exit_code = returncode if returncode is not None and returncode >= 0 else None
        sig = -returncode if returncode is not None and returncode < 0 else None
        reason = "worker_gone" if self.stop_reason == "shutdown" else None
        error = "the worker shut down before the run finished" if reason else None
        jitter = random.random()

        def make(current: RunView) -> list[Event]:
            return [
                *output,
                *decide_exit(
                    current,
                    fence=self.fence,
                    exit_code=exit_code,
                    signal=sig,
                    outcome=outcome,
                    duration_s=round(duration_s, 6),
                    now=time.time(),
                    jitter=jitter,
                    reason=reason,
                    error=error,
                ),
            ]

        return make

    @staticmethod
    def _after(make: Callable[[RunView], list[Event]], first: Sequence[Event]) -> Callable[[RunView], list[Event]]:
        return lambda current: [*first, *make(current)]

    async def _spawn_failed(self, message: str, run_dir: Path) -> None:
        log.warning("worker.spawn_error run_id=%s error=%s", self.run_id, message)
        await asyncio.to_thread(_note_spawn_error, run_dir, f"taskhub: {message}\n")
        await self._end_unstarted("spawn_error", message)

    async def end_unstarted(self, shutdown: str | None = None) -> None:
        """This claimed run will not start here. Cancelled first: it ends cancelled. `shutdown`
        (why): it ends as a running run would at a shutdown (failed, worker_gone), or is retried."""
        log.info("worker.ends_unstarted run_id=%s shutdown=%s", self.run_id, shutdown is not None)
        await self._end_unstarted(None if shutdown is None else "worker_gone", shutdown)

    async def _end_unstarted(self, reason: str | None, message: str | None) -> None:
        """End the run without a process: failed with `reason`, or cancelled if it is cancelling."""
        jitter = random.random()

        def make(current: RunView) -> list[Event]:
            return decide_exit(
                current,
                fence=self.fence,
                exit_code=None,
                signal=None,
                outcome="failed",
                duration_s=0.0,
                now=time.time(),
                jitter=jitter,
                reason=reason,
                error=message,
            )

        await self._report(make, retry=True)

    async def _refused(self, what: str) -> None:
        """We were fenced out: kill whatever of the run is still ours, note the refusal, stop."""
        first = self.stop_reason not in ("fenced", "self_fenced")
        self.stop_reason = "fenced"
        self._wake.set()
        if not first:
            return
        try:
            await self.ctx.log.run(
                lambda txn: ops.record_refusal(txn, self.run_id, self.ctx.worker_id, self.fence, what)
            )
        except TaskHubError as exc:
            log.warning("worker.refusal_not_recorded run_id=%s error=%s", self.run_id, exc)


def _kill_group_leftovers(pgid: int) -> None:
    """The leader exited; anything still in its group would outlive the run unsupervised."""
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _contain(run_id: str, runs_dir: Path, pid: int) -> RunCgroup | None:
    """Put the run in its own cgroup when the machine allows: then nothing it forks can escape."""
    cgroup = RunCgroup.create(run_id, runs_dir)
    if cgroup is not None and not cgroup.add(pid):
        cgroup.remove()
        return None
    return cgroup


def _release(cgroup: RunCgroup) -> None:
    """The run ended: kill whatever it left in its cgroup, then remove the cgroup."""
    if cgroup.populated():
        cgroup.kill()
        deadline = time.monotonic() + 2.0
        while cgroup.populated() and time.monotonic() < deadline:
            time.sleep(0.01)
    cgroup.remove()


def _note_spawn_error(run_dir: Path, text: str) -> None:
    ensure_logs(run_dir)
    with open(run_dir / "stderr.log", "a", encoding="utf-8") as f:
        f.write(text)
