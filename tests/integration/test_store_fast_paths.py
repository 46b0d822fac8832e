"""The store's shortcuts must not change what lands: remembered stream versions, targeted row updates.

Stream versions are remembered between transactions of one connection while nobody else appends;
`runs` rows of existing runs are rewritten column by column. Each test checks the result against what
the plain path (a fresh lookup, a full upsert) would have stored.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest

from taskhub.errors import ConcurrencyConflict
from taskhub.events.clock import iso
from taskhub.events.log import Log
from taskhub.events.store import CHECKPOINT_COMMITS, EventStore, Txn
from taskhub.events.types import Heartbeat, Progress, Started, Submitted, WorkerStarted
from taskhub.projections import ops
from taskhub.projections.audit import audit
from taskhub.projections.decisions import decide_exit, decide_reap
from taskhub.projections.rebuild import rebuild
from taskhub.projections.tables import load_run
from tests.helpers.waiting import wait_until_async

T0 = 1_800_000_000.0
EVENT = Progress(fence=1, pct=1.0)


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "taskhub.db"


@pytest.fixture
def store(path: Path) -> Iterator[EventStore]:
    s = EventStore(path, synchronous="NORMAL")
    try:
        yield s
    finally:
        s.close()


def versions(store: EventStore, stream: str) -> list[int]:
    return [v for (v,) in store.conn.execute("SELECT version FROM events WHERE stream = ? ORDER BY seq", (stream,))]


def append(store: EventStore, run_id: str, n: int = 1) -> None:
    with store.transaction(T0) as txn:
        for _ in range(n):
            txn.append(EVENT, run_id=run_id)


# -- remembered stream versions ------------------------------------------------------------------


def test_versions_continue_across_transactions(store: EventStore) -> None:
    append(store, "a", 2)
    append(store, "a")
    append(store, "b")
    append(store, "a", 2)
    assert versions(store, "run:a") == [1, 2, 3, 4, 5]
    assert versions(store, "run:b") == [1]


def test_another_connection_appending_invalidates_what_is_remembered(store: EventStore, path: Path) -> None:
    other = EventStore(path, synchronous="NORMAL")
    try:
        append(store, "a")
        append(other, "a", 2)  # behind the first store's back
        append(store, "a")  # must look the version up again, not reuse 1
        append(other, "a")
    finally:
        other.close()
    assert versions(store, "run:a") == [1, 2, 3, 4, 5]


def test_a_rolled_back_transaction_is_forgotten(store: EventStore) -> None:
    append(store, "a")
    with pytest.raises(RuntimeError), store.transaction(T0) as txn:
        txn.append(EVENT, run_id="a")
        txn.append(EVENT, run_id="fresh")
        raise RuntimeError("undo")
    append(store, "a")
    append(store, "fresh")
    assert versions(store, "run:a") == [1, 2]
    assert versions(store, "run:fresh") == [1]


def test_a_rolled_back_savepoint_restores_the_versions(store: EventStore) -> None:
    append(store, "a")
    with store.transaction(T0) as txn:
        txn.append(EVENT, run_id="a")  # version 2
        with pytest.raises(RuntimeError), txn.savepoint():
            txn.append(EVENT, run_id="a")  # 3, undone
            txn.append(EVENT, run_id="new")  # 1, undone
            raise RuntimeError("undo")
        txn.append(EVENT, run_id="a")
        txn.append(EVENT, run_id="new")
    append(store, "a")
    assert versions(store, "run:a") == [1, 2, 3, 4]
    assert versions(store, "run:new") == [1]


@pytest.mark.parametrize("remembered", [True, False])
def test_expected_version_zero_refuses_an_existing_stream(store: EventStore, path: Path, remembered: bool) -> None:
    append(store, "a", 2)
    target = store if remembered else EventStore(path, synchronous="NORMAL")
    try:
        with target.transaction(T0) as txn:
            with pytest.raises(ConcurrencyConflict):
                txn.append(EVENT, run_id="a", expected_version=0)
            assert txn.appended == []
            txn.append(EVENT, run_id="a", expected_version=2)
    finally:
        if target is not store:
            target.close()
    assert versions(store, "run:a") == [1, 2, 3]


def test_the_chain_and_versions_survive_many_mixed_transactions(store: EventStore) -> None:
    for i in range(30):
        with store.transaction(T0 + i) as txn:
            ops.submit(txn, Submitted(task_id="t", params={"i": i}))
            ops.append_worker_event(txn, f"w-{i % 4}", WorkerStarted(pid=i, host="h", concurrency=1))
    assert audit(store) == []
    rows = store.conn.execute("SELECT stream, group_concat(version) FROM events GROUP BY stream").fetchall()
    for _stream, joined in rows:
        got = [int(v) for v in joined.split(",")]
        assert sorted(got) == list(range(1, len(got) + 1))


# -- targeted runs rows -----------------------------------------------------------------------------


def _rows(store: EventStore) -> list[tuple[object, ...]]:
    return store.conn.execute("SELECT * FROM runs ORDER BY run_id").fetchall()


def test_updated_rows_equal_rebuilt_rows(store: EventStore) -> None:
    """Every lifecycle step rewrites only changed columns; a rebuild (full inserts) must agree."""
    with store.transaction(T0) as txn:
        a, _ = ops.submit(txn, Submitted(task_id="t", params={}, max_attempts=2))
        b, _ = ops.submit(txn, Submitted(task_id="u", params={}, idempotency_key="k"))
    with store.transaction(T0 + 1) as txn:
        claimed = ops.claim(txn, "w-1", 2, 30.0)
    assert {r.run_id for r in claimed} == {a.run_id, b.run_id}

    def step(run_id: str, now: float, op: object) -> None:
        with store.transaction(now) as txn:
            view = load_run(txn.conn, run_id)
            assert view is not None
            assert callable(op)
            ops.append_run_events(txn, run_id, op(view, txn), worker_id="w-1")

    step(a.run_id, T0 + 2, lambda v, _t: [Started(fence=v.fence, pid=1, pgid=1, create_time=1.0, host="h", argv=["x"])])
    step(a.run_id, T0 + 3, lambda v, _t: [Heartbeat(fence=v.fence, lease_expires_at=iso(T0 + 60))])
    step(a.run_id, T0 + 4, lambda v, _t: [Progress(fence=v.fence, pct=50.0, message="half")])
    step(
        a.run_id,
        T0 + 5,
        lambda v, t: decide_exit(
            v, fence=v.fence, exit_code=1, signal=None, outcome="failed", duration_s=1.0, now=t.now
        ),
    )
    step(b.run_id, T0 + 6, lambda v, t: decide_reap(v, reason="lease_expired", killed_pids=[], now=t.now, jitter=0))
    with store.transaction(T0 + 10) as txn:  # the retry of `a` is due by now
        again = ops.claim(txn, "w-2", 1, 30.0)
    assert [r.run_id for r in again] == [a.run_id]

    kept = _rows(store)
    rebuild(store)
    assert _rows(store) == kept
    assert audit(store) == []


def test_a_refused_event_leaves_the_row_alone(store: EventStore) -> None:
    with store.transaction(T0) as txn:
        ops.submit(txn, Submitted(task_id="t", params={}))
    with store.transaction(T0) as txn:
        (run,) = ops.claim(txn, "w-1", 1, 30.0)
    before = _rows(store)

    def late(txn: Txn) -> None:
        ops.record_refusal(txn, run.run_id, "w-0", 1, "heartbeat")

    with store.transaction(T0 + 1) as txn:
        late(txn)
    after = _rows(store)
    assert [r[:-2] for r in after] == [r[:-2] for r in before]  # only last_seq and view moved
    kept = _rows(store)
    rebuild(store)
    assert _rows(store) == kept


def test_a_remembered_version_costs_no_lookup(store: EventStore) -> None:
    append(store, "a")
    statements: list[str] = []
    store.conn.set_trace_callback(statements.append)
    try:
        append(store, "a", 3)
    finally:
        store.conn.set_trace_callback(None)
    assert not [s for s in statements if "SELECT version" in s]
    assert versions(store, "run:a") == [1, 2, 3, 4]


async def test_the_group_commit_writer_still_checkpoints(tmp_path: Path) -> None:
    """The writer asks for a checkpoint after acknowledging a batch, not inside the transaction, and
    the store's checkpointer thread copies the WAL's pages to the database file."""
    db = tmp_path / "ckpt.db"
    log = await Log.open(db, synchronous="NORMAL", watch=False)
    try:
        size = db.stat().st_size
        for i in range(CHECKPOINT_COMMITS + 2):
            await log.run(partial(ops.submit, event=Submitted(task_id="t", params={"i": i})))
        await wait_until_async(lambda: db.stat().st_size > size, timeout=30, message="the WAL copied back")
    finally:
        await log.close()
