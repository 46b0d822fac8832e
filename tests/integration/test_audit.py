"""audit() on a real SQLite file: each invariant of the history is reported where it breaks, after the
hash chain's findings and before the stored tables'."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from taskhub.events.store import EventStore
from taskhub.events.types import (
    Claimed,
    Event,
    Exited,
    Heartbeat,
    RetryScheduled,
    Started,
    Submitted,
    WorkerStarted,
)
from taskhub.projections import audit as audit_module
from taskhub.projections import ops
from taskhub.projections.audit import Violation, audit, check_chain
from taskhub.projections.rebuild import rebuild
from taskhub.projections.state import State

T0 = 1_800_000_000.0
LEASE = "2027-01-15T08:00:30.000000Z"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[EventStore]:
    s = EventStore(tmp_path / "taskhub.db", synchronous="NORMAL")
    try:
        yield s
    finally:
        s.close()


def write(store: EventStore, run_id: str | None, *events: Event, worker: str | None = "w-1") -> list[int]:
    """Append events as they are, with no decision and no fencing in the way (a corrupted history)."""
    with store.transaction(T0) as txn:
        return [txn.append(e, run_id=run_id, worker_id=worker).seq for e in events]


def started(fence: int) -> Started:
    return Started(fence=fence, pid=10, pgid=10, create_time=T0, host="h", argv=["x"])


def exited(fence: int, outcome: str = "failed") -> Exited:
    return Exited(fence=fence, exit_code=1, signal=None, outcome=outcome, duration_s=1.0)


def invariants(found: list[Violation]) -> list[tuple[int | None, str | None, str]]:
    return [(v.seq, v.run_id, v.message) for v in found if v.kind == "invariant"]


def test_a_clean_history_audits_clean(store: EventStore) -> None:
    write(store, None, WorkerStarted(pid=1, host="h", concurrency=2))
    write(store, "r-1", Submitted(task_id="t", params={}), worker=None)
    write(store, "r-1", Claimed(attempt=1, fence=3, lease_expires_at=LEASE), started(3), exited(3, "succeeded"))
    rebuild(store)
    assert audit(store) == [] and check_chain(store) == []


def test_each_broken_invariant_is_reported_at_its_event(store: EventStore) -> None:
    (orphan,) = write(store, "r-0", Heartbeat(fence=1, lease_expires_at=LEASE))
    write(store, "r-1", Submitted(task_id="t", params={}), worker=None)
    (again,) = write(store, "r-1", Submitted(task_id="t", params={}), worker=None)
    (early,) = write(store, "r-1", started(1))  # still queued
    (claim,) = write(store, "r-1", Claimed(attempt=1, fence=50, lease_expires_at=LEASE))
    (stale,) = write(store, "r-1", Heartbeat(fence=49, lease_expires_at=LEASE))
    write(store, "r-1", started(50), exited(50), RetryScheduled(fence=50, next_attempt=2, not_before=LEASE))
    write(store, "r-2", Submitted(task_id="t", params={}), worker=None)
    (low,) = write(store, "r-2", Claimed(attempt=1, fence=40, lease_expires_at=LEASE))
    # r-1 claimed again under the same attempt number: its second exit is a second outcome for attempt 1.
    write(store, "r-1", Claimed(attempt=1, fence=60, lease_expires_at=LEASE), started(60))
    (twice,) = write(store, "r-1", exited(60))
    rebuild(store)  # the stored tables agree with the fold: only the history is wrong

    assert invariants(audit(store)) == [
        (orphan, "r-0", "heartbeat before the run's submitted event"),
        (again, "r-1", "a second submitted event for the run"),
        (early, "r-1", "started is not allowed while queued"),
        (stale, "r-1", "heartbeat carries fence 49, current is 50"),
        (low, "r-2", "fence 40 is not above every earlier fence (50)"),
        (twice, "r-1", "a second terminal outcome for attempt 1"),
    ]
    assert claim < stale


def test_findings_come_chain_first_then_history_then_tables(store: EventStore) -> None:
    write(store, "r-1", Submitted(task_id="t", params={}), worker=None)
    (early,) = write(store, "r-1", started(1))
    rebuild(store)
    store.conn.execute("DROP TRIGGER events_no_update")
    store.conn.execute("UPDATE events SET ts = '2030-01-01T00:00:00.000000Z' WHERE seq = 1")
    store.conn.execute("DELETE FROM runs")
    found = audit(store)
    assert [v.kind for v in found] == ["chain", "invariant", "projection"]
    assert (found[0].seq, found[1].seq, found[2].run_id) == (1, early, "r-1")
    assert check_chain(store) == found[:1]


def test_a_commit_while_auditing_is_not_a_difference(store: EventStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """A live system keeps writing: a commit that lands after the log was read and before the tables
    are must not show as a stored run that "differs from the log" (one read snapshot for both)."""
    write(store, "r-1", Submitted(task_id="t", params={}), worker=None)
    write(store, "r-1", Claimed(attempt=1, fence=2, lease_expires_at=LEASE))
    rebuild(store)
    other = EventStore(store.path, synchronous="NORMAL")
    real_compare = audit_module.compare_tables

    def compare_after_a_commit(s: EventStore, state: State) -> list[Violation]:
        # Another process's heartbeat commits (event and runs row) between the two reads.
        with other.transaction(T0) as txn:
            ops.append_run_events(txn, "r-1", [Heartbeat(fence=2, lease_expires_at=LEASE)], "w-1")
        return real_compare(s, state)

    monkeypatch.setattr(audit_module, "compare_tables", compare_after_a_commit)
    try:
        assert audit(store) == []
    finally:
        other.close()
    monkeypatch.undo()
    assert audit(store) == []  # and the next audit sees the heartbeat in both


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("worker_id", "'w-9'", "hash does not match"),  # hashed since schema v6
        ("run_id", "'r-2'", "does not name the row's run or worker"),  # named by the (hashed) stream
        ("version", "7", "run:r-1 has version 7 where 2 belongs"),  # the event's place in its stream
    ],
)
def test_every_column_of_a_row_is_covered(store: EventStore, column: str, value: str, message: str) -> None:
    """Who reported an event (worker_id) is hashed; run_id and version are checked against what the
    hashed columns make them. Each edit is reported at its row, and nothing else is."""
    write(store, "r-1", Submitted(task_id="t", params={}), worker=None)
    (claim,) = write(store, "r-1", Claimed(attempt=1, fence=2, lease_expires_at=LEASE))
    write(store, "r-1", started(2))
    rebuild(store)
    assert audit(store) == []
    store.conn.execute("DROP TRIGGER events_no_update")
    store.conn.execute(f"UPDATE events SET {column} = {value} WHERE seq = ?", (claim,))
    found = check_chain(store)
    assert [(v.seq, message in v.message) for v in found] == [(claim, True)], found


def test_a_log_begun_in_the_legacy_chain_form_audits_clean(store: EventStore) -> None:
    """Events appended before schema v6 keep their legacy hashes; those after them are in the new form."""
    from taskhub.events.chain import GENESIS_HASH, legacy_chain_hash

    store.conn.execute("DROP TRIGGER events_no_update")
    write(store, "r-1", Submitted(task_id="t", params={}), worker=None)
    write(store, "r-1", Claimed(attempt=1, fence=2, lease_expires_at=LEASE))
    prev = GENESIS_HASH
    for seq, ts, type_, stream, data in store.conn.execute("SELECT seq, ts, type, stream, data FROM events").fetchall():
        prev = legacy_chain_hash(prev, seq, ts, type_, stream, data)
        store.conn.execute("UPDATE events SET hash = ? WHERE seq = ?", (prev, seq))
    write(store, "r-1", started(2))  # chained to the legacy head, in the new form
    rebuild(store)
    assert audit(store) == []
