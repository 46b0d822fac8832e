"""Write operations, each run inside one store transaction: append events and update the views.

Fencing lives here: an event that speaks for a claim is refused (FenceRefused, nothing written)
unless its fence is the run's current one and the claim is still live.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from taskhub.errors import FenceRefused, IllegalTransition, UnknownRun
from taskhub.events.store import Txn
from taskhub.events.types import FENCED_TYPES, Event, Refused, Submitted, type_name
from taskhub.projections import transitions as t
from taskhub.projections.decisions import decide_claim, decide_submit
from taskhub.projections.runs import RunView, apply_run
from taskhub.projections.tables import (
    RUN_DECODER,
    find_by_idempotency_key,
    load_run,
    load_worker,
    save_run,
    save_workers,
    update_run,
)
from taskhub.projections.workers import apply_worker

CLAIM_SCAN = 256  # most queued rows examined per query of a claim


def append_run_events(txn: Txn, run_id: str, events: Sequence[Event], worker_id: str | None = None) -> RunView:
    """Append events about one run, atomically; returns the run's new view."""
    return _append(txn, run_id, load_run(txn.conn, run_id), events, worker_id)


def append_decided(
    txn: Txn, run_id: str, decide: Callable[[RunView], Sequence[Event]], worker_id: str | None = None
) -> RunView:
    """Append the events `decide` picks from the run's current view, loaded once in this transaction."""
    view = load_run(txn.conn, run_id)
    if view is None:
        raise UnknownRun(f"no run {run_id}")
    return _append(txn, run_id, view, decide(view), worker_id)


def _append(
    txn: Txn,
    run_id: str,
    view: RunView | None,
    events: Sequence[Event],
    worker_id: str | None = None,
    new_stream: bool = False,
    rowid: int | None = None,
) -> RunView:
    """append_run_events with the run's current view already loaded (in this transaction), and
    perhaps its row's rowid."""
    before = view
    for event in events:
        name = type_name(event)
        if view is None:
            if not isinstance(event, Submitted):
                raise UnknownRun(f"no run {run_id}")
        elif name in FENCED_TYPES:
            fence = getattr(event, "fence", None)
            if fence != view.fence or not t.allowed(view.status, name):
                raise FenceRefused(
                    f"{name} for {run_id} refused: fence {fence} is not live"
                    f" (run is {view.status} with fence {view.fence})"
                )
        elif not t.allowed(view.status, name):
            raise IllegalTransition(f"run {run_id} is {view.status}: cannot apply {name}")
        env = txn.append(event, run_id=run_id, worker_id=worker_id, expected_version=0 if new_stream else None)
        new_stream = False
        view = apply_run(view, env)
    assert view is not None
    if before is None:
        save_run(txn.conn, view)
    else:
        update_run(txn.conn, before, view, rowid)
    return view


def submit(txn: Txn, event: Submitted) -> tuple[RunView, bool]:
    """Append `submitted` for a new run; a repeated idempotency key returns the first run (created=False)."""
    if event.idempotency_key is not None:
        existing = find_by_idempotency_key(txn.conn, event.idempotency_key)
        if existing is not None:
            return existing, False
    run_id = f"r-{txn.next_seq}"
    # The stream is new: its id is the seq this event is about to take, so there is no row to load.
    # (Were it not new, the UNIQUE (stream, version) index would refuse the append: ConcurrencyConflict.)
    return _append(txn, run_id, None, [event], new_stream=True), True


def submit_many(txn: Txn, events: Sequence[Submitted]) -> list[RunView]:
    return [submit(txn, e)[0] for e in events]


def claim(
    txn: Txn,
    worker_id: str,
    slots: int,
    lease_s: float,
    limits: Mapping[str, int | None] | None = None,
) -> list[RunView]:
    """Claim up to `slots` queued runs: highest priority first, then oldest, skipping runs whose
    `not_before` is in the future and tasks at their `max_concurrency`. Exactly one winner per run:
    we hold the write lock from the read to the append."""
    limits = limits or {}
    now = txn.now
    active: dict[str, int] = {}
    limited = [task for task, n in limits.items() if n is not None]
    if limited:
        marks = ",".join("?" * len(limited))
        active = dict(
            txn.conn.execute(
                f"SELECT task_id, count(*) FROM runs WHERE status IN ('claimed','running','cancelling')"
                f" AND task_id IN ({marks}) GROUP BY task_id",
                limited,
            ).fetchall()
        )
    claimed: list[RunView] = []
    skipped = 0  # examined rows left queued: they stay ahead of the unexamined ones
    # Just the rows wanted at first (each comes with its view blob): the claim holds the write gate,
    # and most queued rows are claimable; after a miss, four times as many each round.
    scan = slots
    while len(claimed) < slots:
        # INDEXED BY: without statistics the planner prefers runs_status and sorts every queued row.
        # The view comes along (decoded only for the runs taken): no second query per claimed run,
        # and the rowid, so the update goes straight to the row (not through the run_id index).
        rows = txn.conn.execute(
            "SELECT rowid, task_id, not_before, view FROM runs INDEXED BY runs_queue WHERE status = 'queued'"
            " ORDER BY priority DESC, num LIMIT ? OFFSET ?",
            (scan, skipped),
        ).fetchall()
        if not rows:
            break
        for rowid, task_id, not_before, blob in rows:
            limit = limits.get(task_id)
            if (not_before is not None and not_before > now) or (limit is not None and active.get(task_id, 0) >= limit):
                skipped += 1
                continue
            view = RUN_DECODER.decode(blob)
            event = decide_claim(view, fence=txn.next_seq, now=now, lease_s=lease_s)
            claimed.append(_append(txn, view.run_id, view, [event], worker_id=worker_id, rowid=rowid))
            active[task_id] = active.get(task_id, 0) + 1
            if len(claimed) >= slots:
                break
        scan = min(scan * 4, CLAIM_SCAN)
    return claimed


def append_worker_event(txn: Txn, worker_id: str, event: Event) -> None:
    env = txn.append(event, worker_id=worker_id)
    view = apply_worker(load_worker(txn.conn, worker_id), env)
    if view is not None:
        save_workers(txn.conn, [view])


def record_refusal(txn: Txn, run_id: str, worker_id: str | None, fence: int, event_type: str) -> None:
    """Note a refused late report on the run's stream, without touching its status."""
    view = load_run(txn.conn, run_id)
    if view is None:
        raise UnknownRun(f"no run {run_id}")
    _append(txn, run_id, view, [Refused(fence=fence, event_type=event_type)], worker_id=worker_id)


__all__ = [
    "append_decided",
    "append_run_events",
    "append_worker_event",
    "claim",
    "decide_submit",
    "record_refusal",
    "submit",
]
