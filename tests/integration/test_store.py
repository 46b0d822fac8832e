"""The store on a real SQLite file: schema versions, claims, fencing, rebuild and time travel."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import msgspec
import pytest

from taskhub.errors import FenceRefused, StoreError, UnknownRun
from taskhub.events.clock import iso
from taskhub.events.schema import SCHEMA_VERSION
from taskhub.events.store import EventStore
from taskhub.events.types import Exited, Heartbeat, Progress, Started, Submitted, WorkerStarted
from taskhub.projections import ops
from taskhub.projections import transitions as t
from taskhub.projections.audit import audit
from taskhub.projections.decisions import decide_cancel, decide_exit, decide_reap, decide_submit
from taskhub.projections.rebuild import as_of, rebuild
from taskhub.projections.runs import RunView
from taskhub.projections.tables import load_all_runs, load_all_workers, load_run
from tests.helpers.waiting import wait_until

T0 = 1_800_000_000.0
LEASE_S = 30.0


@pytest.fixture
def store(tmp_path: Path) -> Iterator[EventStore]:
    s = EventStore(tmp_path / "taskhub.db", synchronous="NORMAL")
    try:
        yield s
    finally:
        s.close()


def submit(store: EventStore, now: float = T0, **kw: object) -> RunView:
    with store.transaction(now) as txn:
        view, _ = ops.submit(txn, Submitted(task_id=str(kw.pop("task_id", "t")), params={}, **kw))  # type: ignore[arg-type]
    return view


def claim(store: EventStore, now: float = T0, slots: int = 1, worker: str = "w-1", **kw: object) -> list[RunView]:
    with store.transaction(now) as txn:
        return ops.claim(txn, worker, slots, LEASE_S, **kw)  # type: ignore[arg-type]


def append(
    store: EventStore, run_id: str, events: list[object], now: float = T0, worker: str | None = "w-1"
) -> RunView:
    with store.transaction(now) as txn:
        return ops.append_run_events(txn, run_id, events, worker_id=worker)  # type: ignore[arg-type]


def view(store: EventStore, run_id: str) -> RunView:
    found = load_run(store.conn, run_id)
    assert found is not None
    return found


def database_at_version(tmp_path: Path, version: int) -> Path:
    """A database file as TaskHub left it at schema `version`: the first migrations only."""
    from taskhub.events.schema import MIGRATIONS, _statements

    path = tmp_path / f"v{version}.db"
    old = sqlite3.connect(path, isolation_level=None)
    for script in MIGRATIONS[:version]:
        for statement in _statements(script):
            old.execute(statement)
    old.execute(f"PRAGMA user_version = {version}")
    old.close()
    return path


def started(v: RunView) -> Started:
    return Started(fence=v.fence or 0, pid=4321, pgid=4321, create_time=T0, host="h", argv=["x"])


# -- schema ---------------------------------------------------------------------------------------


def test_fresh_database_gets_the_schema_version_and_wal(tmp_path: Path) -> None:
    EventStore(tmp_path / "new.db").close()
    conn = sqlite3.connect(tmp_path / "new.db")
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION >= 1
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"events", "runs", "workers"} <= tables
    conn.close()
    EventStore(tmp_path / "new.db").close()  # reopening migrates nothing and keeps the version


def test_concurrent_first_opens_migrate_once(tmp_path: Path) -> None:
    """Regression: switching a new file to WAL failed at once with "database is locked" for one of several
    processes starting together (SQLite skips the busy handler there); about 1 run in 6 failed."""
    for round_ in range(10):
        db = tmp_path / f"race{round_}.db"
        errors: list[BaseException] = []
        barrier = threading.Barrier(6)

        def open_it(db: Path = db, errors: list[BaseException] = errors, barrier: threading.Barrier = barrier) -> None:
            try:
                barrier.wait(5)
                EventStore(db).close()
            except BaseException as exc:  # reported below
                errors.append(exc)

        threads = [threading.Thread(target=open_it) for _ in range(6)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(30)
        assert errors == []
        conn = sqlite3.connect(db)
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        conn.close()


def test_database_from_a_newer_taskhub_is_refused_clearly(tmp_path: Path) -> None:
    db = tmp_path / "future.db"
    EventStore(db).close()
    conn = sqlite3.connect(db)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(StoreError, match=rf"version {SCHEMA_VERSION + 1} is newer .*\({SCHEMA_VERSION}\)"):
        EventStore(db)
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION + 1  # untouched
    conn.close()


def test_events_are_append_only(store: EventStore) -> None:
    submit(store)
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        store.conn.execute("UPDATE events SET type = 'x'")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        store.conn.execute("DELETE FROM events")


# -- claims ---------------------------------------------------------------------------------------


def test_claim_order_priority_then_age_skipping_not_before_and_limits(store: EventStore) -> None:
    low = submit(store, priority=0)
    high_later = submit(store, priority=5, not_before=iso(T0 + 60))
    high = submit(store, priority=5)
    limited = [submit(store, priority=3, task_id="lim") for _ in range(3)]
    got = claim(store, slots=10, limits={"lim": 2})
    assert [v.run_id for v in got] == [high.run_id, limited[0].run_id, limited[1].run_id, low.run_id]
    assert [v.fence for v in got] == sorted({v.fence or 0 for v in got})  # each claim a new, larger fence
    assert claim(store, slots=10, limits={"lim": 2}) == []
    # Time passes: the delayed run becomes claimable; the limit still holds the third "lim" run.
    assert [v.run_id for v in claim(store, now=T0 + 61, slots=10, limits={"lim": 2})] == [high_later.run_id]
    assert [v.run_id for v in claim(store, slots=10)] == [limited[2].run_id]


@pytest.mark.parametrize("blocked_count", [7, 39, 255, 300])
def test_claim_does_not_skip_runs_behind_a_long_blocked_prefix(store: EventStore, blocked_count: int) -> None:
    """Regression: after claiming from one scan page, the next page's OFFSET skipped queued runs."""
    with store.transaction(T0) as txn:
        blocked = [ops.submit(txn, Submitted(task_id="lim", params={}, priority=2))[0] for _ in range(blocked_count)]
        first = ops.submit(txn, Submitted(task_id="t", params={}, priority=1))[0]
        second, third = (ops.submit(txn, Submitted(task_id="t", params={}))[0] for _ in range(2))
    got = claim(store, slots=3, limits={"lim": 0})
    assert [v.run_id for v in got] == [first.run_id, second.run_id, third.run_id]
    assert all(view(store, b.run_id).status == t.QUEUED for b in blocked)


def test_claim_reads_the_queue_through_its_index(store: EventStore) -> None:
    """Regression: without INDEXED BY the planner sorted every queued row on each claim."""
    with store.transaction(T0) as txn:
        ops.submit_many(txn, [Submitted(task_id="t", params={}, priority=i % 3) for i in range(50)])
    statements: list[str] = []
    store.conn.set_trace_callback(statements.append)
    try:
        claim(store, slots=2)
    finally:
        store.conn.set_trace_callback(None)
    queue_reads = [s for s in statements if "status = 'queued'" in s]
    assert queue_reads
    for sql in queue_reads:
        plan = " ".join(str(r[3]) for r in store.conn.execute(f"EXPLAIN QUERY PLAN {sql}"))
        assert "TEMP B-TREE" not in plan and "runs_queue" in plan, plan


# -- fencing --------------------------------------------------------------------------------------


def test_stale_fence_after_reclaim_is_refused_and_writes_nothing(store: EventStore) -> None:
    run = submit(store, max_attempts=2)
    (first,) = claim(store)
    append(store, run.run_id, [started(first)])
    # The lease expires; the reaper reaps and schedules a retry; another worker claims.
    reaped = decide_reap(view(store, run.run_id), reason="lease_expired", killed_pids=[], now=T0 + 40)
    append(store, run.run_id, reaped, now=T0 + 40, worker=None)
    (second,) = claim(store, now=T0 + 100, worker="w-2")
    assert second.run_id == run.run_id and (second.fence or 0) > (first.fence or 0) and second.attempt == 2

    last = store.last_seq()
    stale_reports = [
        Exited(fence=first.fence or 0, exit_code=0, signal=None, outcome="succeeded", duration_s=1.0),
        Heartbeat(fence=first.fence or 0, lease_expires_at=iso(T0 + 200)),
        Progress(fence=first.fence or 0, pct=99.0),
        started(first),
    ]
    for event in stale_reports:
        with pytest.raises(FenceRefused):
            append(store, run.run_id, [event], now=T0 + 101)
        assert store.last_seq() == last
        assert view(store, run.run_id) == second
    # The current holder still reports fine; the refusal may be noted without touching the status.
    with store.transaction(T0 + 102) as txn:
        ops.record_refusal(txn, run.run_id, "w-1", first.fence or 0, "exited")
    assert view(store, run.run_id).status == t.CLAIMED
    assert append(store, run.run_id, [started(second)], worker="w-2").status == t.RUNNING
    assert audit(store) == []


def test_append_decided_decides_on_the_view_inside_the_transaction(store: EventStore) -> None:
    run = submit(store)
    (claimed,) = claim(store)
    seen: list[RunView] = []

    def end(current: RunView) -> list[object]:
        seen.append(current)
        return [
            started(current),
            *decide_exit(
                current, fence=current.fence or 0, exit_code=0, signal=None, outcome="succeeded", duration_s=0.1, now=T0
            ),
        ]

    with store.transaction(T0) as txn:
        after = ops.append_decided(txn, run.run_id, end, worker_id="w-1")  # type: ignore[arg-type]
    assert seen == [claimed] and after.status == t.SUCCEEDED and after == view(store, run.run_id)
    with pytest.raises(UnknownRun), store.transaction(T0) as txn:
        ops.append_decided(txn, "r-999", end)  # type: ignore[arg-type]
    last = store.last_seq()
    with pytest.raises(FenceRefused), store.transaction(T0) as txn:  # the run is over: its fence is not live
        ops.append_decided(txn, run.run_id, lambda current: [started(claimed)])
    assert store.last_seq() == last and audit(store) == []


def _race_once(db: Path, run_id: str, stale: RunView, first: str | None) -> dict[str, str]:
    """The worker reports `exited` and the reaper `reaped`, both deciding from the same view, each on its
    own connection; `first` lands first, or with None both race for the write lock at once."""
    outcome: dict[str, str] = {}
    barrier = threading.Barrier(2)

    def report(who: str) -> None:
        s = EventStore(db, synchronous="NORMAL")
        try:
            if who == "worker":
                events = decide_exit(
                    stale, fence=stale.fence or 0, exit_code=0, signal=None, outcome="succeeded", duration_s=1, now=T0
                )
            else:
                events = decide_reap(stale, reason="worker_gone", killed_pids=[], now=T0)
            barrier.wait(5)
            if first is not None and who != first:
                assert done.wait(10), "the first reporter never finished"
            try:
                with s.transaction(T0) as txn:
                    ops.append_run_events(txn, run_id, events, worker_id=who)
                outcome[who] = "won"
            except FenceRefused:
                outcome[who] = "refused"
            finally:
                if who == first:
                    done.set()
        finally:
            s.close()

    done = threading.Event()
    threads = [threading.Thread(target=report, args=(who,)) for who in ("worker", "reaper")]
    for th in threads:
        th.start()
    for th in threads:
        th.join(30)
    return outcome


@pytest.mark.parametrize("first", ["worker", "reaper"])
def test_reaped_and_exited_race_whoever_lands_first_wins(store: EventStore, first: str) -> None:
    for _ in range(10):
        run = submit(store)
        (claimed,) = claim(store)
        running = append(store, run.run_id, [started(claimed)])
        outcome = _race_once(store.path, run.run_id, running, first)
        loser = "reaper" if first == "worker" else "worker"
        assert outcome == {first: "won", loser: "refused"}
        final = view(store, run.run_id)
        assert final.status == (t.SUCCEEDED if first == "worker" else t.FAILED)
        types = [r[0] for r in store.conn.execute("SELECT type FROM events WHERE run_id = ?", (run.run_id,))]
        assert types.count("exited") + types.count("reaped") == 1
    assert audit(store) == []


def test_reaped_and_exited_truly_concurrent_exactly_one_lands(store: EventStore) -> None:
    for _ in range(20):
        run = submit(store)
        (claimed,) = claim(store)
        running = append(store, run.run_id, [started(claimed)])
        outcome = _race_once(store.path, run.run_id, running, first=None)
        assert sorted(outcome.values()) == ["refused", "won"], outcome
        types = [r[0] for r in store.conn.execute("SELECT type FROM events WHERE run_id = ?", (run.run_id,))]
        assert types.count("exited") + types.count("reaped") == 1
    assert audit(store) == []


# -- rebuild and time travel ----------------------------------------------------------------------


def build_history(store: EventStore) -> dict[str, float]:
    """A small history with a run in every status, a retry and a worker; returns the times used."""
    times: dict[str, float] = {}

    def at(name: str, when: float) -> float:
        times[name] = when
        return when

    with store.transaction(at("workers", T0)) as txn:
        ops.append_worker_event(txn, "w-1", WorkerStarted(pid=1, host="h", concurrency=4))
    runs = [submit(store, at(f"submit{i}", T0 + 10 + i), max_attempts=2, priority=i) for i in range(7)]
    claimed = claim(store, at("claim", T0 + 30), slots=6)  # all but the lowest priority
    by_id = {v.run_id: v for v in claimed}
    order = [v.run_id for v in claimed]
    for rid in order[:5]:
        append(store, rid, [started(by_id[rid])], now=at(f"start-{rid}", T0 + 40))
    now = T0 + 50
    v = view(store, order[0])
    append(store, order[0], decide_exit(v, fence=v.fence or 0, exit_code=0, signal=None, outcome="succeeded",
                                        duration_s=1, now=now), now=now)  # fmt: skip
    v = view(store, order[1])
    append(store, order[1], decide_exit(v, fence=v.fence or 0, exit_code=1, signal=None, outcome="failed",
                                        duration_s=1, now=now), now=now)  # fmt: skip
    append(store, order[2], decide_cancel(view(store, order[2]), "user"), now=now, worker=None)
    append(store, order[3], decide_reap(view(store, order[3]), reason="worker_gone", killed_pids=[9], now=now), now=now)
    append(store, runs[0].run_id, decide_cancel(view(store, runs[0].run_id), "user"), now=now, worker=None)
    return times


def test_rebuild_restores_identical_tables(store: EventStore) -> None:
    build_history(store)
    assert audit(store) == []
    statuses = {v.status for v in load_all_runs(store.conn).values()}
    assert statuses == {t.QUEUED, t.CLAIMED, t.RUNNING, t.CANCELLING, t.SUCCEEDED, t.CANCELLED}
    runs_before = store.conn.execute("SELECT * FROM runs ORDER BY run_id").fetchall()
    workers_before = store.conn.execute("SELECT * FROM workers ORDER BY worker_id").fetchall()

    store.conn.execute("DELETE FROM runs")
    found = audit(store)
    assert found and {v.kind for v in found} == {"projection"}

    state = rebuild(store)
    assert store.conn.execute("SELECT * FROM runs ORDER BY run_id").fetchall() == runs_before
    assert store.conn.execute("SELECT * FROM workers ORDER BY worker_id").fetchall() == workers_before
    assert state.runs == load_all_runs(store.conn) and state.workers == load_all_workers(store.conn)
    assert audit(store) == []


def test_as_of_a_seq_shows_a_run_queued_before_its_claim(store: EventStore) -> None:
    build_history(store)
    (claim_seq, run_id) = store.conn.execute(
        "SELECT seq, run_id FROM events WHERE type = 'claimed' ORDER BY seq LIMIT 1"
    ).fetchone()
    before = as_of(store, until=claim_seq - 1)
    assert before.runs[run_id].status == t.QUEUED and before.last_seq == claim_seq - 1
    at_claim = as_of(store, until=claim_seq)
    assert at_claim.runs[run_id].status == t.CLAIMED and at_claim.runs[run_id].fence == claim_seq
    assert as_of(store).runs == load_all_runs(store.conn)


def test_as_of_a_time(store: EventStore) -> None:
    times = build_history(store)
    assert as_of(store, at=iso(times["submit2"] + 0.5)).runs.keys() == {
        v.run_id for v in load_all_runs(store.conn).values() if v.num <= 4
    }
    mid = as_of(store, at=iso(times["claim"] + 1))
    assert {v.status for v in mid.runs.values()} == {t.QUEUED, t.CLAIMED}
    assert as_of(store, at=iso(times["claim"])).runs == mid.runs  # a time is inclusive
    assert as_of(store, at=iso(T0 + 10_000)).runs == load_all_runs(store.conn)
    # Before the first event there is nothing yet.
    empty = as_of(store, at=iso(T0 - 1))
    assert empty.runs == {} and empty.workers == {} and empty.last_seq == 0
    assert as_of(store, until=0).runs == {}


def test_txn_appended_envelopes_match_what_is_read(store: EventStore) -> None:
    with store.transaction(T0) as txn:
        ops.submit(txn, Submitted(task_id="t", params={"x": 1}))
        appended = list(txn.appended)
    assert store.read(after=0) == appended
    assert list(store.iter_all()) == appended
    # A fold that never reads hashes can skip them; everything else is the same.
    assert list(store.iter_all(hashes=False)) == [msgspec.structs.replace(e, hash="") for e in appended]


def test_write_gate_refuses_a_nested_write_in_one_thread(store: EventStore) -> None:
    """Two stores on one file in one thread: the inner write would wait on the outer forever."""
    other = EventStore(store.path)
    readonly = EventStore(store.path, readonly=True)
    try:
        nested = pytest.raises(StoreError, match="already open in this thread")
        with store.transaction(T0), nested, other.transaction(T0):
            pass
        submit(other)  # both released the gate
        assert store.last_seq() == 1
        with pytest.raises(StoreError, match="read-only or closed"), readonly.transaction(T0):
            pass
    finally:
        other.close()
        readonly.close()


def test_writers_checkpoint_the_wal_themselves(tmp_path: Path) -> None:
    """Autocheckpoint is off (it would run inside COMMIT, under the write gate); the store has its
    checkpointer thread copy the WAL after CHECKPOINT_COMMITS commits, so its pages reach the file."""
    from taskhub.events.store import CHECKPOINT_COMMITS

    db = tmp_path / "ckpt.db"
    store = EventStore(db, synchronous="NORMAL")
    try:
        assert store.conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
        size = db.stat().st_size
        for _ in range(CHECKPOINT_COMMITS - 2):
            submit(store)
        assert db.stat().st_size == size, "checkpointed before CHECKPOINT_COMMITS commits"
        for _ in range(3):
            submit(store)
        wait_until(lambda: db.stat().st_size > size, timeout=30, message="the checkpointer copied the WAL")

        def all_copied() -> bool:  # busy (1) while the checkpointer's own pass is still running
            busy, wal_frames, checkpointed = store.conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            return bool(busy == 0 and wal_frames == checkpointed)

        wait_until(all_copied, timeout=30, message="every WAL frame copied")
    finally:
        store.close()


def lock_file_writes(store: EventStore, action: Callable[[], object]) -> int:
    """How many write notifications (inotify IN_MODIFY) the store's lock file got during `action`:
    the kernel queues them as the writes happen, so they are all there once it has returned."""
    import ctypes
    import ctypes.util
    import os
    import struct

    libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
    fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
    assert fd >= 0
    try:
        assert libc.inotify_add_watch(fd, os.fsencode(store.path.parent), 0x002) >= 0  # IN_MODIFY
        action()
        try:
            buf = os.read(fd, 65536)
        except BlockingIOError:
            return 0
        count, offset, name = 0, 0, (store.path.name + "-lock").encode()
        while offset < len(buf):
            _, _, _, length = struct.unpack_from("iIII", buf, offset)
            count += buf[offset + 16 : offset + 16 + length].rstrip(b"\0") == name
            offset += 16 + length
        return count
    finally:
        os.close(fd)


def test_a_commit_that_appended_rings_the_lock_file(store: EventStore) -> None:
    """Followers in other processes wake on this touch, which comes after the commit is visible. An
    empty transaction rings nothing, and neither does drawing a ticket at the gate (a write to the
    file's memory map, which notifies nobody)."""
    assert lock_file_writes(store, lambda: claim(store)) == 0  # nothing queued: nothing appended
    assert lock_file_writes(store, lambda: submit(store)) == 1


def test_a_version_1_database_is_migrated_forward_keeping_its_events(tmp_path: Path) -> None:
    """Forward migration: a file written by schema v1 opens at today's version, its log intact."""
    path = database_at_version(tmp_path, 1)
    store = EventStore(path)
    try:
        with store.transaction(1_000.0) as txn:
            ops.submit(txn, decide_submit("hello_world", {"target": "x"}))
        conn = store.conn
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION >= 2
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
        assert "runs_not_before" in names
        assert store.last_seq() == 1
    finally:
        store.close()


def test_a_version_2_database_drops_runs_without_not_before_from_that_index(tmp_path: Path) -> None:
    """v3: runs_not_before holds only queued runs that have a not_before; the worker's query still uses it."""
    path = database_at_version(tmp_path, 2)
    store = EventStore(path, synchronous="NORMAL")
    try:
        now = submit(store)
        submit(store, not_before=iso(T0 + 60))
        conn = store.conn
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION >= 3
        (sql,) = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'runs_not_before'").fetchone()
        assert "not_before IS NOT NULL" in sql
        worker_query = (
            "SELECT min(not_before) FROM runs INDEXED BY runs_not_before WHERE status = 'queued' AND not_before > ?"
        )
        assert conn.execute(worker_query, (T0,)).fetchone()[0] == T0 + 60
        plan = " ".join(str(r[-1]) for r in conn.execute(f"EXPLAIN QUERY PLAN {worker_query}", (T0,)))
        assert "runs_not_before" in plan
        # Claimable runs are still found without it, and the delayed one is left for later.
        assert [v.run_id for v in claim(store, slots=2)] == [now.run_id]
        assert audit(store) == []
    finally:
        store.close()


def test_a_version_3_database_loses_the_lease_index_and_still_finds_expired_leases(tmp_path: Path) -> None:
    """v4: no index on lease_expires (a b-tree less for every claim and heartbeat to write); expired
    leases are found among the active runs, which runs_worker holds."""
    import asyncio

    import aiosqlite

    from taskhub.projections import queries

    path = database_at_version(tmp_path, 3)
    store = EventStore(path, synchronous="NORMAL")
    try:
        for _ in range(3):
            submit(store)
        early = claim(store, now=T0)[0]
        late = claim(store, now=T0 + 100)[0]
        conn = store.conn
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION >= 4
        assert conn.execute("SELECT count(*) FROM sqlite_master WHERE name = 'runs_active'").fetchone()[0] == 0
        assert audit(store) == []
    finally:
        store.close()

    async def expired(now: float) -> list[str]:
        async with aiosqlite.connect(path) as reader:
            plan = await (
                await reader.execute(
                    "EXPLAIN QUERY PLAN SELECT view FROM runs INDEXED BY runs_worker"
                    " WHERE status IN ('claimed','running','cancelling')"
                )
            ).fetchall()
            assert "runs_worker" in " ".join(str(r[-1]) for r in plan)
            return [v.run_id for v in await queries.expired_runs(reader, now)]

    assert asyncio.run(expired(T0 + LEASE_S + 1)) == [early.run_id]
    assert sorted(asyncio.run(expired(T0 + 100 + LEASE_S + 1))) == sorted([early.run_id, late.run_id])
    assert late.lease_expires_at is not None


def test_a_version_4_database_keeps_progress_and_heartbeats_out_of_the_type_index(tmp_path: Path) -> None:
    """v5: the type index leaves out the frequent types (a b-tree less per progress report and
    heartbeat); reads by type still find every event, through the index for the other types."""
    path = database_at_version(tmp_path, 4)
    store = EventStore(path, synchronous="NORMAL")
    try:
        runs = [submit(store) for _ in range(3)]
        (first,) = claim(store)
        append(store, first.run_id, [Heartbeat(fence=first.fence or 0, lease_expires_at=iso(T0 + 60))])
        append(store, first.run_id, [Progress(fence=first.fence or 0, pct=50.0), started(first)])
        conn = store.conn
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION >= 5
        indexed = {
            row[0]
            for row in conn.execute(
                "SELECT type FROM events INDEXED BY events_type WHERE type NOT IN ('heartbeat','progress')"
            )
        }
        assert indexed == {"submitted", "claimed", "started"}

        def read(types: list[str]) -> list[str]:
            return [e.type for e in store.read(after=0, types=types)]

        assert read(["submitted"]) == ["submitted"] * len(runs)
        assert read(["progress", "heartbeat"]) == ["heartbeat", "progress"]
        assert read(["claimed", "progress"]) == ["claimed", "progress"]
        assert [e.type for e in store.read(after=0, run_id=first.run_id, types=["started", "heartbeat"])] == [
            "heartbeat",
            "started",
        ]
        from taskhub.events.store import events_query

        sql, args = events_query(0, 10, types=["submitted", "claimed"])
        plan = " ".join(str(r[-1]) for r in conn.execute(f"EXPLAIN QUERY PLAN {sql}", args))
        assert "events_type" in plan
        assert audit(store) == []
    finally:
        store.close()
