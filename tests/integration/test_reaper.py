"""The reaper against a real SQLite log and real processes; the worker is simulated by appending its events.

Time is a fake clock shared by the log and the reaper, so leases expire when a test says so. The
processes are real: a run's "task" is a process we spawn in its own session with TASKHUB_RUN_ID set.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import psutil
import pytest

from taskhub.events.log import Log
from taskhub.events.store import EventStore, Txn
from taskhub.events.types import Exited, Started, WorkerStarted
from taskhub.projections import ops
from taskhub.projections.audit import audit
from taskhub.projections.decisions import decide_submit
from taskhub.projections.runs import RunView
from taskhub.runtime.killing import find_run_processes
from taskhub.runtime.reaper import Reaper, serve
from taskhub.runtime.reaper_act import reap
from taskhub.runtime.reaper_decide import LEASE_EXPIRED, WORKER_GONE, Candidate
from taskhub.settings import Settings, load_settings
from tests.helpers.waiting import wait_until, wait_until_async

HOST = socket.gethostname()
LEASE_S = 3.0
T0 = 1_900_000_000.0

# A task whose child leaves the process group (setsid) and sleeps: only the env scan finds it.
TREE_SCRIPT = """
import os, time
if os.fork() == 0:
    os.setsid()
    time.sleep(600)
    os._exit(0)
time.sleep(600)
"""


class FakeClock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Procs:
    """Every process a test starts, and every run id it used: all killed at teardown."""

    def __init__(self, runs_dir: Path) -> None:
        self.runs_dir = runs_dir
        self.popens: list[subprocess.Popen[bytes]] = []
        self.run_ids: set[str] = set()

    def task(self, run_id: str, tree: bool = False) -> subprocess.Popen[bytes]:
        argv = [sys.executable, "-c", TREE_SCRIPT] if tree else ["sleep", "600"]
        # What the worker sets (SPEC section 2): the reaper scopes its scan to this home's run dirs.
        env = {**os.environ, "TASKHUB_RUN_ID": run_id, "TASKHUB_RUN_DIR": str(self.runs_dir / run_id)}
        return self.start(argv, env, run_id)

    def start(
        self, argv: list[str], env: dict[str, str] | None = None, run_id: str | None = None
    ) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(argv, env=env, start_new_session=True)
        self.popens.append(proc)
        if run_id is not None:
            self.run_ids.add(run_id)
        return proc

    def cleanup(self) -> None:
        for run_id in self.run_ids:
            for p in find_run_processes(run_id):
                p.kill()
        for proc in self.popens:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            proc.wait(timeout=5)


@pytest.fixture
def procs(settings: Settings) -> Iterator[Procs]:
    p = Procs(settings.runs_dir)
    yield p
    p.cleanup()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    env = {"TASKHUB_HOME": str(tmp_path), "TASKHUB_LEASE_S": str(LEASE_S), "TASKHUB_HEARTBEAT_S": "1"}
    return load_settings(env, kill_grace_s=1.0, synchronous="NORMAL")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def log(settings: Settings, clock: FakeClock) -> AsyncIterator[Log]:
    opened = await Log.open(settings.db_path, synchronous="NORMAL", clock=clock, watch=False)
    yield opened
    await opened.close()
    store = EventStore(settings.db_path)
    try:
        assert [str(v) for v in audit(store)] == []
    finally:
        store.close()


# -- simulating a worker ------------------------------------------------------------------------


async def announce_worker(log: Log, worker_id: str, pid: int, host: str = HOST) -> None:
    proc = psutil.Process(pid)
    event = WorkerStarted(pid=pid, host=host, concurrency=4, create_time=proc.create_time())
    await log.run(lambda txn: ops.append_worker_event(txn, worker_id, event))


async def claim_runs(log: Log, worker_id: str, n: int, max_attempts: int = 1) -> list[RunView]:
    def op(txn: Txn) -> list[RunView]:
        for _ in range(n):
            ops.submit(txn, decide_submit("t", {}, max_attempts=max_attempts))
        return ops.claim(txn, worker_id, n, LEASE_S)

    return await log.run(op)


async def start_run(log: Log, run: RunView, pid: int, create_time: float | None = None) -> RunView:
    assert run.fence is not None
    ctime = psutil.Process(pid).create_time() if create_time is None else create_time
    event = Started(fence=run.fence, pid=pid, pgid=pid, create_time=ctime, host=HOST, argv=["task"])
    return await log.run(lambda txn: ops.append_run_events(txn, run.run_id, [event], run.worker_id))


def reaped_events(settings: Settings) -> list[tuple[str | None, str]]:
    store = EventStore(settings.db_path)
    try:
        return [(e.run_id, getattr(e.data, "reason", "")) for e in store.read(limit=100_000, types=["reaped"])]
    finally:
        store.close()


def gone(proc: subprocess.Popen[bytes]) -> bool:
    proc.poll()
    return proc.returncode is not None


def make_reaper(log: Log, settings: Settings, clock: FakeClock, **kw: object) -> Reaper:
    return Reaper(log, settings, clock=clock, host=HOST, **kw)  # type: ignore[arg-type]


# -- tests ---------------------------------------------------------------------------------------


async def test_expired_lease_kills_tree_including_setsid_grandchild(
    log: Log, settings: Settings, clock: FakeClock, procs: Procs
) -> None:
    [run] = await claim_runs(log, "w-sim", 1)
    task = procs.task(run.run_id, tree=True)
    wait_until(lambda: len(find_run_processes(run.run_id)) == 2, timeout=10)
    tree = {p.pid for p in find_run_processes(run.run_id)}
    await start_run(log, run, task.pid)
    reaper = make_reaper(log, settings, clock)

    assert await reaper.tick(T0 + LEASE_S - 0.1) == []
    [result] = await reaper.tick(T0 + LEASE_S + 0.1)

    assert result.appended and result.reason == LEASE_EXPIRED and result.status == "failed"
    assert tree <= set(result.killed_pids)
    assert find_run_processes(run.run_id) == []
    assert reaped_events(settings) == [(run.run_id, LEASE_EXPIRED)]
    assert await reaper.tick(T0 + 100) == []  # already failed: nothing more


async def test_two_reapers_over_50_expired_runs_reap_each_once(
    log: Log, settings: Settings, clock: FakeClock, procs: Procs
) -> None:
    runs = await claim_runs(log, "w-sim", 50)
    tasks = {run.run_id: procs.task(run.run_id) for run in runs}
    for run in runs:
        await start_run(log, run, tasks[run.run_id].pid)
    other_log = await Log.open(settings.db_path, synchronous="NORMAL", clock=clock, watch=False)
    try:
        first, second = make_reaper(log, settings, clock), make_reaper(other_log, settings, clock)
        a, b = await asyncio.gather(first.tick(T0 + 10), second.tick(T0 + 10))
    finally:
        await other_log.close()

    landed = [r.run_id for r in a + b if r.appended]
    assert sorted(landed) == sorted(r.run_id for r in runs)
    events = reaped_events(settings)
    assert len(events) == 50 and len({run_id for run_id, _ in events}) == 50
    wait_until(lambda: all(gone(p) for p in tasks.values()), timeout=10)


async def test_pid_reuse_is_not_signalled_and_says_so(
    log: Log, settings: Settings, clock: FakeClock, procs: Procs, caplog: pytest.LogCaptureFixture
) -> None:
    [run] = await claim_runs(log, "w-sim", 1)
    stranger = procs.start(["sleep", "600"])  # unrelated: no TASKHUB_RUN_ID
    real_ctime = psutil.Process(stranger.pid).create_time()
    await start_run(log, run, stranger.pid, create_time=real_ctime - 100.0)
    reaper = make_reaper(log, settings, clock)

    with caplog.at_level(logging.WARNING):
        [result] = await reaper.tick(T0 + 10)

    assert result.appended and result.killed_pids == []
    assert psutil.Process(stranger.pid).is_running() and not gone(stranger)
    expected = f"pid {stranger.pid} is no longer run {run.run_id}'s process (create time differs); not signalling"
    assert expected in caplog.text


async def test_dead_worker_is_reaped_within_seconds_by_the_loop(log: Log, settings: Settings, procs: Procs) -> None:
    worker = procs.start(["sleep", "600"])  # stands in for the worker process
    await announce_worker(log, "w-dead", worker.pid)
    [run] = await claim_runs(log, "w-dead", 1)
    task = procs.task(run.run_id, tree=True)
    wait_until(lambda: len(find_run_processes(run.run_id)) == 2, timeout=10)
    await start_run(log, run, task.pid)
    # The loop runs on the real clock: the fake one froze the lease at T0 + 3 (long past), so give
    # the run a real, long lease that only the dead-worker path can beat.
    real = Reaper(log, settings, host=HOST, clock=time.time)
    await _renew(log, run, time.time() + 600)
    stop = asyncio.Event()
    loop = asyncio.create_task(real.run(stop))
    try:
        await wait_until_async(lambda: real.ticks >= 3, timeout=5)  # ticks with a live worker: nothing to reap
        assert reaped_events(settings) == []
        os.kill(worker.pid, signal.SIGKILL)
        killed_at = time.monotonic()
        await wait_until_async(lambda: reaped_events(settings), timeout=5)
        await wait_until_async(lambda: find_run_processes(run.run_id) == [], timeout=5)
        elapsed = time.monotonic() - killed_at
    finally:
        stop.set()
        await loop
    assert reaped_events(settings) == [(run.run_id, WORKER_GONE)]
    assert elapsed < 3.0


async def _renew(log: Log, run: RunView, until: float) -> None:
    from taskhub.events.clock import iso
    from taskhub.events.types import Heartbeat

    assert run.fence is not None
    event = Heartbeat(fence=run.fence, lease_expires_at=iso(until))
    await log.run(lambda txn: ops.append_run_events(txn, run.run_id, [event], run.worker_id))


async def test_worker_restarted_under_same_id_orphans_old_runs_at_once(
    log: Log, settings: Settings, clock: FakeClock, procs: Procs
) -> None:
    await announce_worker(log, "w-1", os.getpid())
    [old] = await claim_runs(log, "w-1", 1)
    task = procs.task(old.run_id)
    await start_run(log, old, task.pid)
    await announce_worker(log, "w-1", os.getpid())  # the same id starts again
    [new] = await claim_runs(log, "w-1", 1)
    reaper = make_reaper(log, settings, clock)

    results = await reaper.tick(T0 + 0.5)  # leases are nowhere near expiry

    assert [(r.run_id, r.reason) for r in results] == [(old.run_id, WORKER_GONE)]
    assert task.pid in results[0].killed_pids
    wait_until(lambda: gone(task), timeout=5)
    assert new.run_id not in {r for r, _ in reaped_events(settings)}


async def test_pause_holds_lease_reaping_but_not_dead_workers(
    log: Log, settings: Settings, clock: FakeClock, procs: Procs, caplog: pytest.LogCaptureFixture
) -> None:
    await announce_worker(log, "w-live", os.getpid())
    [healthy] = await claim_runs(log, "w-live", 1)
    dead_worker = procs.start(["sleep", "600"])
    await announce_worker(log, "w-dead", dead_worker.pid)
    [orphan] = await claim_runs(log, "w-dead", 1)
    reaper = make_reaper(log, settings, clock, interval_s=0.5, pause_grace_s=1.0)
    assert await reaper.tick(T0 + 0.1) == []  # both workers alive, leases live

    os.kill(dead_worker.pid, signal.SIGKILL)  # dies while the reaper is "suspended"
    wait_until(lambda: gone(dead_worker), timeout=5)
    with caplog.at_level(logging.WARNING):
        results = await reaper.tick(T0 + 60)  # a 60 s gap: the machine was suspended

    assert [(r.run_id, r.reason) for r in results] == [(orphan.run_id, WORKER_GONE)]
    assert "reaper.paused" in caplog.text
    assert await reaper.tick(T0 + 60.5) == []  # still within the grace
    [late] = await reaper.tick(T0 + 61.1)
    assert (late.run_id, late.reason) == (healthy.run_id, LEASE_EXPIRED)


async def test_claimed_but_not_started_run_is_env_scanned(
    log: Log, settings: Settings, clock: FakeClock, procs: Procs
) -> None:
    [run] = await claim_runs(log, "w-sim", 1)
    stray = procs.task(run.run_id, tree=True)  # spawned, but `started` never made it to the log
    wait_until(lambda: len(find_run_processes(run.run_id)) == 2, timeout=10)
    reaper = make_reaper(log, settings, clock)

    [result] = await reaper.tick(T0 + 10)

    assert result.appended and stray.pid in result.killed_pids and len(result.killed_pids) == 2
    assert find_run_processes(run.run_id) == []


async def test_worker_exit_first_wins_and_reaper_records_nothing(
    log: Log, settings: Settings, clock: FakeClock
) -> None:
    [run] = await claim_runs(log, "w-sim", 1)
    assert run.fence is not None
    exited = Exited(fence=run.fence, exit_code=0, signal=None, outcome="succeeded", duration_s=1.0)
    await log.run(lambda txn: ops.append_run_events(txn, run.run_id, [exited], "w-sim"))

    async def no_kill(run_id: str, pgid: int | None, leader: object, grace_s: float) -> list[int]:
        return []

    result = await reap(log, Candidate(run, LEASE_EXPIRED), kill=no_kill, grace_s=1.0, jitter=0.0, host=HOST)

    assert not result.appended
    assert reaped_events(settings) == []


async def test_reap_with_attempts_left_schedules_a_retry(log: Log, settings: Settings, clock: FakeClock) -> None:
    [run] = await claim_runs(log, "w-sim", 1, max_attempts=2)
    [result] = await make_reaper(log, settings, clock).tick(T0 + 10)
    assert result.appended and result.status == "queued"
    store = EventStore(settings.db_path)
    try:
        types = [e.type for e in store.read(run_id=run.run_id)]
    finally:
        store.close()
    assert types == ["submitted", "claimed", "reaped", "retry_scheduled"]


async def test_restarted_reaper_finds_everything_from_the_log(
    log: Log, settings: Settings, clock: FakeClock, procs: Procs
) -> None:
    runs = await claim_runs(log, "w-sim", 3)
    for run in runs:
        await start_run(log, run, procs.task(run.run_id).pid)
    first = make_reaper(log, settings, clock)
    assert await first.tick(T0 + 1) == []
    del first  # "crashed": nothing of it survives
    results = await make_reaper(log, settings, clock).tick(T0 + 10)
    assert sorted(r.run_id for r in results if r.appended) == sorted(r.run_id for r in runs)


async def test_serve_runs_until_stopped_and_logs_containment(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    stop = asyncio.Event()
    with caplog.at_level(logging.INFO, logger="taskhub.runtime.reaper"):
        served = asyncio.create_task(serve(settings, stop))
        await wait_until_async(lambda: "reaper.started" in caplog.text, timeout=10)
        stop.set()
        assert await asyncio.wait_for(served, timeout=10) == 0
    assert "containment=" in caplog.text and "reaper.stopped" in caplog.text
