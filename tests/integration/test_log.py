"""The async Log: group commit from many tasks, and following appends made by another process."""

from __future__ import annotations

import asyncio
import itertools
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from taskhub.errors import FenceRefused, StoreError
from taskhub.events.log import Log
from taskhub.events.store import EventStore, Txn
from taskhub.events.types import Envelope, Heartbeat, Submitted
from taskhub.events.writer import LoopLogWriter
from taskhub.projections import ops
from taskhub.projections.audit import audit
from taskhub.projections.queries import list_runs
from taskhub.projections.tables import load_all_runs
from tests.helpers.waiting import wait_until_async

CHILD = Path(__file__).with_name("log_children.py")
ROOT = Path(__file__).resolve().parents[2]
T0 = 1_800_000_000.0


class TickingClock:
    """A fake clock that moves one second per call, so each transaction gets its own timestamp."""

    def __init__(self) -> None:
        self._ticks = itertools.count()

    def __call__(self) -> float:
        return T0 + next(self._ticks)


@pytest.fixture
async def log(tmp_path: Path) -> AsyncIterator[Log]:
    """A log whose writes go through the group-commit thread (the tests that hold it need one)."""
    opened = await Log.open(tmp_path / "log.db", synchronous="NORMAL", clock=TickingClock(), watch=False)
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture(params=["thread", "loop"])
async def any_log(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Log]:
    """Each kind of writer: the group-commit thread, and the event loop's own (a worker's)."""
    opened = await Log.open(
        tmp_path / "log.db", "NORMAL", clock=TickingClock(), watch=False, writes_on_loop=request.param == "loop"
    )
    try:
        yield opened
    finally:
        await opened.close()


# -- group commit ---------------------------------------------------------------------------------


async def test_one_failing_op_in_a_batch_fails_alone(log: Log, tmp_path: Path) -> None:
    entered, gate = threading.Event(), threading.Event()

    def hold(txn: Txn) -> str:
        entered.set()  # the writer thread is inside the first batch: the rest queue up behind it
        assert gate.wait(10)
        return "first"

    first = asyncio.create_task(log.run(hold))
    await wait_until_async(entered.is_set, timeout=10)

    def op(i: int) -> object:
        def run(txn: Txn) -> tuple[int, str]:
            view, _ = ops.submit(txn, Submitted(task_id="t", params={"i": i}))
            if i == 31:
                raise ValueError(f"boom {i}")  # after appending: its event must be undone too
            return i, view.run_id

        return run

    tasks = [asyncio.create_task(log.run(op(i))) for i in range(64)]  # type: ignore[arg-type]
    await asyncio.sleep(0)  # one loop turn: every task has queued its op behind the held batch
    gate.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert await first == "first"

    failed = results[31]
    assert isinstance(failed, ValueError) and str(failed) == "boom 31"
    store = EventStore(tmp_path / "log.db")
    try:
        runs = load_all_runs(store.conn)
        for i, result in enumerate(results):
            if i == 31:
                continue
            assert isinstance(result, tuple), result
            assert result[0] == i  # each caller got its own op's value
            assert runs[result[1]].params == {"i": i}
        assert sorted(v.params["i"] for v in runs.values()) == [i for i in range(64) if i != 31]
        rows = store.conn.execute("SELECT seq, ts FROM events ORDER BY seq").fetchall()
        assert [seq for seq, _ in rows] == list(range(1, 64))  # the failed op left no hole
        assert len({ts for _, ts in rows}) == 1, "the 63 ops were not committed as one group"
        assert audit(store) == []
    finally:
        store.close()


@pytest.mark.parametrize("fails_after_writing", [False, True])
async def test_a_failing_op_reruns_the_batch_only_if_it_had_written(log: Log, fails_after_writing: bool) -> None:
    """Ops run without a savepoint each: one that raises before writing needs no undo; one that raises
    after writing makes the batch roll back and run again, one savepoint per op (so ops may run twice)."""
    entered, gate = threading.Event(), threading.Event()
    runs: Counter[int] = Counter()

    def hold(txn: Txn) -> None:
        entered.set()
        assert gate.wait(10)

    def op(i: int) -> object:
        def run(txn: Txn) -> str:
            runs[i] += 1
            if i == 5 and not fails_after_writing:
                raise FenceRefused("refused before writing")
            view, _ = ops.submit(txn, Submitted(task_id="t", params={"i": i}))
            if i == 5:
                raise FenceRefused("refused after writing")
            return view.run_id

        return run

    first = asyncio.create_task(log.run(hold))
    await wait_until_async(entered.is_set, timeout=10)
    tasks = [asyncio.create_task(log.run(op(i))) for i in range(10)]  # type: ignore[arg-type]
    await asyncio.sleep(0)  # one loop turn: every op is queued behind the held batch
    gate.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    await first
    assert isinstance(results[5], FenceRefused)
    assert all(isinstance(r, str) for i, r in enumerate(results) if i != 5)
    # The replay starts when op 5 fails: ops 0-5 ran twice, the rest once.
    assert runs == {i: 2 if fails_after_writing and i <= 5 else 1 for i in range(10)}
    assert [e.seq for e in await log.read(after=0)] == list(range(1, 10))


async def test_concurrent_appends_from_many_tasks_each_get_their_own_result(any_log: Log) -> None:
    """No holding: whatever batches the writer forms, every result goes back to its caller."""
    log = any_log

    async def submit_and_heartbeat(i: int) -> tuple[int, str]:
        view, _ = await log.run(lambda txn: ops.submit(txn, Submitted(task_id="t", params={"i": i})))
        if i % 10 == 0:
            stale = Heartbeat(fence=999_999, lease_expires_at="x")
            with pytest.raises(FenceRefused):
                await log.run(lambda txn: ops.append_run_events(txn, view.run_id, [stale]))
        return i, view.run_id

    results = await asyncio.gather(*(submit_and_heartbeat(i) for i in range(300)))
    runs = {v.run_id: v for v in await list_runs(log.reader, limit=10_000)}
    assert len(runs) == 300
    for i, run_id in results:
        assert runs[run_id].params == {"i": i}
    assert [e.seq for e in await log.read(after=0, limit=1000)] == list(range(1, 301))


async def test_own_commits_wake_followers_without_watching_files(any_log: Log) -> None:
    log = any_log
    log.signal.poll_s = 60.0  # only the writer's commit listener can wake the follower in time
    seen: list[Envelope] = []

    async def follow() -> None:
        async for env in log.follow(after=0):
            seen.append(env)

    task = asyncio.create_task(follow())
    try:
        for i in range(5):
            await log.run(lambda txn, i=i: ops.submit(txn, Submitted(task_id="t", params={"i": i})))
            await wait_until_async(lambda i=i: len(seen) == i + 1, timeout=5)
        assert [e.seq for e in seen] == [1, 2, 3, 4, 5]
    finally:
        task.cancel()


# -- follow across processes ----------------------------------------------------------------------

APPENDS = 150


async def _collect(log: Log, want: int, **filters: object) -> list[Envelope]:
    got: list[Envelope] = []

    async def run() -> None:
        async for env in log.follow(**{"after": 0, **filters}):  # type: ignore[arg-type]
            got.append(env)
            if len(got) == want:
                return

    await asyncio.wait_for(run(), timeout=60)
    return got


async def test_follow_sees_another_processes_appends_in_order_without_gaps(tmp_path: Path) -> None:
    db = tmp_path / "follow.db"
    log = await Log.open(db, synchronous="NORMAL")  # watching the files: the only way to hear the child
    log.signal.poll_s = 30.0  # so the slow polling fallback cannot be what delivers the events
    try:
        proc = subprocess.Popen(
            [sys.executable, str(CHILD), "follow_append", str(db), str(APPENDS), "seed"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        claims = APPENDS // 3
        everything, claimed = await asyncio.gather(
            _collect(log, APPENDS + claims), _collect(log, claims, types=["claimed"])
        )
        out, err = await asyncio.to_thread(proc.communicate, timeout=60)
        assert proc.returncode == 0, err
        reported = [int(s) for line in out.splitlines() for s in line.split()]

        assert [e.seq for e in everything] == list(range(1, APPENDS + claims + 1))
        assert [e.seq for e in everything] == reported
        assert [e.seq for e in claimed] == [e.seq for e in everything if e.type == "claimed"]
        # One run's stream only, from the middle of the log.
        run_id = everything[10].run_id
        assert run_id is not None
        expected = [e.seq for e in everything if e.run_id == run_id and e.seq > 5]
        mine = await _collect(log, len(expected), run_id=run_id, after=5)
        assert [e.seq for e in mine] == expected
    finally:
        await log.close()


# -- what a failure cannot do: leave a caller waiting ---------------------------------------------


def _submit_unless_second(raised: BaseException) -> Callable[[int], Callable[[Txn], str]]:
    """Ops that submit run i, except op 2, which raises `raised`."""

    def submit(i: int) -> Callable[[Txn], str]:
        def run(txn: Txn) -> str:
            if i == 2:
                raise raised
            return ops.submit(txn, Submitted(task_id="t", params={"i": i}))[0].run_id

        return run

    return submit


@pytest.mark.parametrize("raised", [SystemExit(3), KeyboardInterrupt(), asyncio.CancelledError()])
async def test_an_op_raising_a_base_exception_fails_only_its_caller(log: Log, raised: BaseException) -> None:
    entered, gate = threading.Event(), threading.Event()

    def hold(txn: Txn) -> None:
        entered.set()
        assert gate.wait(10)

    submit = _submit_unless_second(raised)
    first = asyncio.create_task(log.run(hold))
    await wait_until_async(entered.is_set, timeout=10)
    tasks = [asyncio.create_task(log.run(submit(i))) for i in range(5)]  # type: ignore[arg-type]
    await asyncio.sleep(0)  # all five queue behind the held batch: they commit as one
    gate.set()
    results = await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), timeout=10)
    await first
    # A StoreError, not the exception itself: set on the caller's future, SystemExit would stop its
    # event loop and a CancelledError would pass for a cancellation of its task.
    assert isinstance(results[2], StoreError) and type(raised).__name__ in str(results[2])
    assert [isinstance(r, str) for r in results] == [True, True, False, True, True]
    # The writer is still there.
    after = await asyncio.wait_for(log.run(lambda txn: ops.submit(txn, Submitted(task_id="t", params={}))), 10)
    assert after[1] is True


async def test_a_broken_writer_fails_its_callers_instead_of_leaving_them_waiting(
    any_log: Log, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fault in the writer itself (not in an op) stops it: what it had committed is acknowledged,
    what was queued and whatever comes later fails at once with a StoreError that says so."""
    log = any_log
    calls = 0
    real = EventStore.maybe_checkpoint

    def breaks_on_the_second_batch(store: EventStore) -> None:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise RuntimeError("injected fault after the commit")
        real(store)

    monkeypatch.setattr(EventStore, "maybe_checkpoint", breaks_on_the_second_batch)

    def submit(txn: Txn) -> str:
        return ops.submit(txn, Submitted(task_id="t", params={}))[0].run_id

    assert await asyncio.wait_for(log.run(submit), 10)  # batch 1
    assert await asyncio.wait_for(log.run(submit), 10)  # batch 2: committed, then the writer breaks
    with pytest.raises(StoreError, match="the log writer stopped: RuntimeError"):
        await asyncio.wait_for(log.run(submit), 10)
    assert len(await log.read(after=0)) == 2


# -- the loop's own writer (a worker's) -----------------------------------------------------------


@pytest.fixture
async def loop_log(tmp_path: Path) -> AsyncIterator[Log]:
    opened = await Log.open(tmp_path / "log.db", "FULL", clock=TickingClock(), watch=False, writes_on_loop=True)
    try:
        yield opened
    finally:
        await opened.close()


async def test_the_loop_writer_commits_one_turns_ops_together_and_a_failing_op_fails_alone(
    loop_log: Log, tmp_path: Path
) -> None:
    threads: set[int] = set()

    def op(i: int) -> object:
        def run(txn: Txn) -> tuple[int, str]:
            threads.add(threading.get_ident())
            view, _ = ops.submit(txn, Submitted(task_id="t", params={"i": i}))
            if i == 31:
                raise ValueError(f"boom {i}")  # after appending: its event must be undone too
            return i, view.run_id

        return run

    # Queued in one turn of the loop: one transaction (the fake clock ticks once per transaction).
    results = await asyncio.gather(*(loop_log.run(op(i)) for i in range(64)), return_exceptions=True)  # type: ignore[arg-type]
    assert threads == {threading.get_ident()}, "the ops ran on another thread than the loop's"
    failed = results[31]
    assert isinstance(failed, ValueError) and str(failed) == "boom 31"
    assert all(isinstance(r, tuple) and r[0] == i for i, r in enumerate(results) if i != 31)
    events = await loop_log.read(after=0)
    assert [e.seq for e in events] == list(range(1, 64))  # the failed op left no hole
    assert len({e.ts for e in events}) == 1, "the 63 ops were not committed as one group"
    store = EventStore(tmp_path / "log.db")
    try:
        assert audit(store) == []
    finally:
        store.close()


async def test_the_loop_writer_syncs_a_full_commit_off_the_loop_and_only_then_acknowledges_it(
    loop_log: Log, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A slow disk must not freeze the loop: the fsync runs on another thread."""
    synced: list[int] = []
    real = EventStore.sync_wal

    def sync_wal(store: EventStore, commit: int = 0) -> None:
        real(store, commit)
        synced.append(threading.get_ident())

    monkeypatch.setattr(EventStore, "sync_wal", sync_wal)
    for expected in (1, 2):
        await loop_log.run(lambda txn: ops.submit(txn, Submitted(task_id="t", params={})))
        assert len(synced) == expected  # synced before the caller heard back
    assert threading.get_ident() not in synced
    # Unless its owner says nothing else needs the loop meanwhile (a worker with only quick runs).
    assert isinstance(loop_log.writer, LoopLogWriter)
    loop_log.writer.sync_on_loop = lambda: True
    await loop_log.run(lambda txn: ops.submit(txn, Submitted(task_id="t", params={})))
    assert synced[-1] == threading.get_ident()


@pytest.mark.parametrize("raised", [SystemExit(3), KeyboardInterrupt(), asyncio.CancelledError()])
async def test_the_loop_writer_fails_only_the_caller_of_an_op_raising_a_base_exception(
    loop_log: Log, raised: BaseException
) -> None:
    submit = _submit_unless_second(raised)
    results = await asyncio.gather(*(loop_log.run(submit(i)) for i in range(5)), return_exceptions=True)  # type: ignore[arg-type]
    assert isinstance(results[2], StoreError) and type(raised).__name__ in str(results[2])
    assert [isinstance(r, str) for r in results] == [True, True, False, True, True]
    assert len(await loop_log.read(after=0)) == 4


async def test_closing_the_loop_writer_commits_what_is_queued(tmp_path: Path) -> None:
    log = await Log.open(tmp_path / "log.db", "NORMAL", watch=False, writes_on_loop=True)
    queued = asyncio.ensure_future(log.run(lambda txn: ops.submit(txn, Submitted(task_id="t", params={}))))
    await asyncio.sleep(0)  # the op is queued; its commit would come on the next turn
    await log.close()
    view, created = await asyncio.wait_for(queued, 5)
    assert created and view.status == "queued"
    store = EventStore(tmp_path / "log.db")
    try:
        assert store.last_seq() == 1
    finally:
        store.close()
