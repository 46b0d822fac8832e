"""Random valid histories, written through ops in real SQLite transactions: the incrementally kept
tables equal a fold of the log from scratch, audit finds nothing, and a tampered row is found."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from taskhub.errors import FenceRefused
from taskhub.events.rows import iter_row_batches
from taskhub.events.store import EventStore, Txn
from taskhub.events.types import Heartbeat, Progress, Started, WorkerStarted, WorkerStopped
from taskhub.projections import ops
from taskhub.projections import transitions as t
from taskhub.projections.audit import audit
from taskhub.projections.decisions import decide_cancel, decide_exit, decide_heartbeat, decide_reap, decide_submit
from taskhub.projections.rebuild import replay
from taskhub.projections.runs import RunView
from taskhub.projections.state import fold, fold_rows, queue_of
from taskhub.projections.tables import load_all_runs, load_all_workers

T0 = 1_800_000_000.0
LEASE_S = 30.0
# Weighted by repetition: the life of a run (submit, claim, start, exit) dominates.
KINDS = ("submit",) * 3 + ("claim",) * 3 + ("start",) * 3 + ("exit",) * 3 + ("tick",) * 2 + (
    "heartbeat", "progress", "cancel", "reap", "worker", "stale"
)  # fmt: skip

command = st.tuples(st.sampled_from(KINDS), st.integers(0, 999), st.integers(0, 999))
# Commands grouped into transactions of one to three, as the group-commit writer would batch them.
history = st.lists(st.lists(command, min_size=1, max_size=3), min_size=1, max_size=25)


class Driver:
    """Applies commands that are valid for the current tables; anything unexpected fails the test."""

    def __init__(self, store: EventStore) -> None:
        self.store = store
        self.now = T0
        self.refusals = 0

    def pick(self, txn: Txn, statuses: frozenset[str] | set[str], a: int) -> RunView | None:
        runs = sorted((v for v in load_all_runs(txn.conn).values() if v.status in statuses), key=lambda v: v.num)
        return runs[a % len(runs)] if runs else None

    def apply(self, txn: Txn, kind: str, a: int, b: int) -> None:
        run_events = ops.append_run_events
        match kind:
            case "submit":
                key = f"k{b % 5}" if a % 4 == 0 else None
                event = decide_submit(
                    f"t{a % 2}", {"a": a}, priority=a % 3, max_attempts=1 + b % 3, idempotency_key=key
                )
                view, created = ops.submit(txn, event)
                assert created or view.idempotency_key == key
            case "claim":
                limits = {"t0": 1 + a % 2} if b % 2 else None
                claimed = ops.claim(txn, f"w{a % 3}", 1 + b % 4, LEASE_S, limits)
                assert all(v.status == t.CLAIMED and v.fence == v.last_seq for v in claimed)
            case "tick":
                self.now += a % 20  # lets retries' not_before pass; claims see it from the next transaction
            case "worker":
                worker = f"w{a % 3}"
                if b % 3:
                    ops.append_worker_event(txn, worker, WorkerStarted(pid=100 + a, host="h", concurrency=1 + b % 4))
                else:
                    ops.append_worker_event(txn, worker, WorkerStopped(reason="done"))
            case _:
                self.apply_to_run(txn, kind, a, b, run_events)

    def apply_to_run(self, txn: Txn, kind: str, a: int, b: int, run_events: Callable[..., RunView]) -> None:
        statuses = {
            "start": {t.CLAIMED, t.CANCELLING},
            "cancel": {t.QUEUED, t.CLAIMED, t.RUNNING, t.CANCELLING},
            "stale": set(t.STATUSES),
        }.get(kind, t.ACTIVE)
        view = self.pick(txn, statuses, a)
        if view is None:
            return
        fence, worker = view.fence or 0, view.worker_id
        match kind:
            case "start":
                started = Started(fence=fence, pid=1000 + a, pgid=1000 + a, create_time=self.now, host="h", argv=["x"])
                run_events(txn, view.run_id, [started], worker)
            case "heartbeat":
                run_events(txn, view.run_id, [decide_heartbeat(view, self.now, LEASE_S)], worker)
            case "progress":
                run_events(txn, view.run_id, [Progress(fence=fence, pct=float(b % 101), message=f"m{b}")], worker)
            case "cancel":
                run_events(txn, view.run_id, decide_cancel(view, "user"))
            case "exit":
                outcome = t.OUTCOMES[b % len(t.OUTCOMES)]
                events = decide_exit(
                    view, fence=fence, exit_code=b % 3, signal=None, outcome=outcome, duration_s=1.0, now=self.now,
                    jitter=(b % 10) / 10,
                )  # fmt: skip
                run_events(txn, view.run_id, events, worker)
            case "reap":
                events = decide_reap(view, reason=t.REAP_REASONS[b % 2], killed_pids=[a], now=self.now)
                run_events(txn, view.run_id, events, "reaper")
            case "stale":
                # A report from a fenced-out (or never-claimed) worker: refused, nothing written, then noted.
                before = self.store.conn.execute("SELECT count(*) FROM events").fetchone()[0]
                try:
                    with txn.savepoint():
                        run_events(txn, view.run_id, [Heartbeat(fence=fence - 1 - b % 3, lease_expires_at="x")], worker)
                except FenceRefused:
                    self.refusals += 1
                else:
                    raise AssertionError(f"a stale fence was accepted for {view}")
                assert self.store.conn.execute("SELECT count(*) FROM events").fetchone()[0] == before
                ops.record_refusal(txn, view.run_id, worker, fence - 1, "heartbeat")

    def run(self, transactions: list[list[tuple[str, int, int]]]) -> None:
        for commands in transactions:
            self.now += 0.5
            with self.store.transaction(self.now) as txn:
                for kind, a, b in commands:
                    with txn.savepoint():
                        self.apply(txn, kind, a, b)


@settings(max_examples=50, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(transactions=history, tamper_at=st.integers(0, 10_000))
def test_random_histories_fold_to_the_stored_tables(
    transactions: list[list[tuple[str, int, int]]], tamper_at: int
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        store = EventStore(Path(tmp) / "p.db", synchronous="OFF")
        try:
            Driver(store).run(transactions)

            folded = fold(store.iter_all())
            assert folded.runs == load_all_runs(store.conn)
            assert folded.workers == load_all_workers(store.conn)
            assert folded.last_seq == store.last_seq()
            # Replay's own path (raw rows in batches, no Envelope) folds to the same state, at the end
            # and at any point of the log, whatever the batch size.
            assert replay(store) == folded
            until = tamper_at % (store.last_seq() + 1)
            prefix = fold(store.iter_all(until=until))
            assert fold_rows(iter_row_batches(store.conn, until, batch=1 + tamper_at % 7)) == prefix
            queue_sql = "SELECT run_id FROM runs WHERE status = 'queued' ORDER BY priority DESC, num"
            assert [v.run_id for v in queue_of(folded.runs.values())] == [r for (r,) in store.conn.execute(queue_sql)]
            assert audit(store) == []

            last = store.last_seq()
            if last == 0:
                return
            seq = 1 + tamper_at % last
            _tamper(store, seq)
            found = audit(store)
            assert any(v.kind == "chain" and v.seq == seq for v in found), found
        finally:
            store.close()


def _tamper(store: EventStore, seq: int) -> None:
    """Change one stored row's data so that it still decodes to the same event: only the chain can tell."""
    (data,) = store.conn.execute("SELECT data FROM events WHERE seq = ?", (seq,)).fetchone()
    altered = msgspec.json.encode({**msgspec.json.decode(data), "note": "edited"})
    store.conn.execute("DROP TRIGGER events_no_update")
    store.conn.execute("UPDATE events SET data = ? WHERE seq = ?", (altered, seq))
