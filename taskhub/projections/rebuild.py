"""Rebuild the stored projections from the log, and time travel (`as_of`)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from taskhub.events.clock import iso, parse_iso
from taskhub.events.rows import Row, iter_row_batches
from taskhub.events.store import EventStore
from taskhub.projections.state import State, fold_rows, gc_paused
from taskhub.projections.tables import replace_all

Progress = Callable[[int, int], None]  # (done, total)


def _counted(batches: Iterator[list[Row]], total: int, progress: Progress | None) -> Iterator[list[Row]]:
    return batches if progress is None else _reporting(batches, total, progress)


def _reporting(batches: Iterator[list[Row]], total: int, progress: Progress) -> Iterator[list[Row]]:
    done = 0
    for rows in batches:
        yield rows
        done += len(rows)
        progress(done, total)
    progress(total, total)


def replay(store: EventStore, until: int | None = None, progress: Progress | None = None) -> State:
    total = until if until is not None else store.last_seq()
    return fold_rows(_counted(iter_row_batches(store.conn, until), total, progress))


def rebuild(store: EventStore, progress: Progress | None = None) -> State:
    """Fold the whole log and replace the stored tables with the result, in one transaction.

    The cyclic GC stays off throughout, not only in the fold: writing the rows allocates a tuple per
    run while the whole state is alive, and each full collection would walk all of it again."""
    with gc_paused(), store.transaction(time.time()):
        state = replay(store, progress=progress)
        replace_all(store.conn, state.runs.values(), state.workers.values())
    return state


def seq_at(store: EventStore, at: str) -> int:
    """The last seq whose time is at or before `at` (ISO 8601)."""
    moment = parse_iso(at)
    # ts is ISO UTC with fixed width, so text order is time order.
    row = store.conn.execute("SELECT max(seq) FROM events WHERE ts <= ?", (iso(moment),)).fetchone()
    return int(row[0] or 0)


def as_of(store: EventStore, until: int | None = None, at: str | None = None) -> State:
    """The projected state as of a seq or a time, from the log alone."""
    if at is not None:
        limit = seq_at(store, at)
        until = limit if until is None else min(until, limit)
    return replay(store, until=until)
