"""Replay's own read path on a real SQLite file: raw rows in batches fold to what the envelopes fold to."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from taskhub.events.rows import iter_row_batches
from taskhub.events.store import EventStore
from taskhub.projections.rebuild import as_of, rebuild, replay
from taskhub.projections.state import fold, fold_rows
from taskhub.projections.tables import load_all_runs, load_all_workers
from tests.integration.test_store import build_history


@pytest.fixture
def store(tmp_path: Path) -> Iterator[EventStore]:
    s = EventStore(tmp_path / "taskhub.db", synchronous="NORMAL")
    try:
        build_history(s)
        yield s
    finally:
        s.close()


def test_rows_come_in_seq_order_in_batches_up_to_until(store: EventStore) -> None:
    last = store.last_seq()
    batches = list(iter_row_batches(store.conn, batch=4))
    assert [len(b) for b in batches[:-1]] == [4] * (len(batches) - 1) and 1 <= len(batches[-1]) <= 4
    rows = [r for b in batches for r in b]
    envelopes = list(store.iter_all())
    assert [r[0] for r in rows] == list(range(1, last + 1))
    assert rows == [(e.seq, e.ts, e.run_id, e.worker_id, r[4]) for e, r in zip(envelopes, rows, strict=True)]
    assert [r[0] for b in iter_row_batches(store.conn, until=5, batch=2) for r in b] == [1, 2, 3, 4, 5]
    assert list(iter_row_batches(store.conn, until=0)) == []  # before the first event, not "everything"


@pytest.mark.parametrize("batch", [1, 3, 1000])
def test_fold_rows_equals_fold_of_envelopes_at_every_seq(store: EventStore, batch: int) -> None:
    for until in range(store.last_seq() + 1):
        assert fold_rows(iter_row_batches(store.conn, until, batch)) == fold(store.iter_all(until=until)), until


def test_replay_and_rebuild_give_the_stored_tables(store: EventStore) -> None:
    runs, workers = load_all_runs(store.conn), load_all_workers(store.conn)
    state = replay(store)
    assert state.runs == runs and state.workers == workers and state.last_seq == store.last_seq()
    assert as_of(store).runs == runs
    store.conn.execute("DELETE FROM runs")
    assert rebuild(store).runs == runs == load_all_runs(store.conn)


def test_replay_reports_progress_up_to_the_total(store: EventStore) -> None:
    seen: list[tuple[int, int]] = []
    replay(store, progress=lambda done, total: seen.append((done, total)))
    total = store.last_seq()
    assert seen[-1] == (total, total)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen) and {t for _, t in seen} == {total}


def test_a_row_stored_back_as_text_still_replays(store: EventStore) -> None:
    """A row rewritten by hand may hold its JSON as TEXT, not BLOB: the fold reads it all the same."""
    before = replay(store)
    store.conn.execute("DROP TRIGGER events_no_update")
    store.conn.execute("UPDATE events SET data = CAST(data AS TEXT)")
    assert store.conn.execute("SELECT count(*) FROM events WHERE typeof(data) = 'text'").fetchone()[0] > 0
    assert replay(store) == before
