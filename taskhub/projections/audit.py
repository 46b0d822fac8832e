"""Audit: verify the hash chain, fold the whole log checking every invariant, compare with the tables."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import msgspec

from taskhub.events.chain import ChainVerifier
from taskhub.events.store import EventStore
from taskhub.events.types import FENCED_TYPES, Claimed, Envelope, Exited, Reaped, Submitted, decode_event
from taskhub.projections import transitions as t
from taskhub.projections.runs import RunView, apply_run
from taskhub.projections.state import State, gc_paused
from taskhub.projections.tables import load_all_runs, load_all_workers
from taskhub.projections.workers import apply_worker

Progress = Callable[[int, int], None]


class Violation(msgspec.Struct, frozen=True):
    kind: str
    message: str
    seq: int | None = None
    run_id: str | None = None

    def __str__(self) -> str:
        where = " ".join(x for x in (f"seq {self.seq}" if self.seq else "", self.run_id or "") if x)
        return f"[{self.kind}] {where}: {self.message}" if where else f"[{self.kind}] {self.message}"


# Rows per read: batches that stay in the CPU cache while they are checked (see taskhub.events.rows).
ROWS = 500


class _Chain:
    """Each row's hash must follow the one before (taskhub.events.chain), seqs have no gaps, and the
    columns the hash does not cover must be what the covered ones make them: run_id and worker_id
    as the stream names them, version the event's place in its stream."""

    def __init__(self) -> None:
        self.verifier = ChainVerifier()
        self.prev_seq = 0
        self.versions: dict[str, int] = {}
        self.violations: list[Violation] = []

    def check(
        self,
        seq: int,
        ts: str,
        type_: str,
        stream: str,
        version: int,
        run_id: str | None,
        worker_id: str | None,
        data: bytes | str,
        stored: str,
    ) -> None:
        found = self.violations
        if seq != self.prev_seq + 1:
            found.append(Violation("chain", f"seq jumps from {self.prev_seq} to {seq}: events are missing", seq))
        self.prev_seq = seq
        raw = data.encode() if isinstance(data, str) else bytes(data)  # a rewritten row may hold TEXT
        if not self.verifier.check(seq, ts, type_, stream, worker_id, raw, stored):
            found.append(Violation("chain", "hash does not match the event's content: the row was altered", seq))
        if run_id is not None:
            named = stream == f"run:{run_id}"
        else:
            named = worker_id is not None and stream == f"worker:{worker_id}"
        if not named:
            found.append(Violation("chain", f"stream {stream!r} does not name the row's run or worker", seq))
        expected = self.versions.get(stream, 0) + 1
        if version != expected:
            found.append(Violation("chain", f"{stream} has version {version} where {expected} belongs", seq))
        self.versions[stream] = expected  # the place, not the stored number: one bad row, one finding


def check_chain(store: EventStore) -> list[Violation]:
    """Verify the hash chain alone."""
    chain = _Chain()
    for row in store.iter_raw(batch=ROWS):
        chain.check(*row)
    return chain.violations


class _Invariants:
    """Folds the log event by event, checking what the fold alone would silently tolerate."""

    def __init__(self) -> None:
        self.state = State()
        self.max_fence = 0
        self.ended_attempts: set[tuple[str, int]] = set()
        self.violations: list[Violation] = []

    def bad(self, env: Envelope, message: str) -> None:
        self.violations.append(Violation("invariant", message, env.seq, env.run_id))

    def fold(self, env: Envelope) -> None:
        """Check one event against the state before it, then fold it in (the same step as fold())."""
        state, run_id = self.state, env.run_id
        if run_id is not None:
            view = state.runs.get(run_id)
            after = apply_run(view, env)
            if after is not None:
                state.runs[run_id] = after
            self.check(env, view, after)
        elif env.worker_id is not None:
            wview = apply_worker(state.workers.get(env.worker_id), env)
            if wview is not None:
                state.workers[env.worker_id] = wview
        state.last_seq = env.seq

    def check(self, env: Envelope, view: RunView | None, after: RunView | None) -> None:
        event = env.data
        if view is None:
            if not isinstance(event, Submitted):
                self.bad(env, f"{env.type} before the run's submitted event")
            return
        if isinstance(event, Submitted):
            self.bad(env, "a second submitted event for the run")
            return
        if not t.allowed(view.status, env.type):
            self.bad(env, f"{env.type} is not allowed while {view.status}")
            return
        if isinstance(event, Claimed):
            if event.fence <= self.max_fence:
                self.bad(env, f"fence {event.fence} is not above every earlier fence ({self.max_fence})")
            self.max_fence = max(self.max_fence, event.fence)
        elif env.type in FENCED_TYPES and getattr(event, "fence", None) != view.fence:
            self.bad(env, f"{env.type} carries fence {getattr(event, 'fence', None)}, current is {view.fence}")
        if isinstance(event, Exited | Reaped):
            key = (env.run_id or "", view.attempt)
            if key in self.ended_attempts:
                self.bad(env, f"a second terminal outcome for attempt {view.attempt}")
            self.ended_attempts.add(key)
        if after is not None and after.status not in t.TRANSITIONS.get((view.status, env.type), {after.status}):
            self.bad(env, f"{view.status} -> {after.status} on {env.type} is not in the transition table")


def audit(store: EventStore, progress: Progress | None = None) -> list[Violation]:
    """Every violation found: hash chain, invariants of the history, stored tables against the fold.

    One pass over the rows as stored: each is hashed into the chain, decoded once, checked against the
    state before it and folded (the chain and the fold used to read the log twice, and fold it twice)."""
    chain = _Chain()
    checker = _Invariants()
    decode = decode_event
    with read_snapshot(store.conn), gc_paused():
        total = store.last_seq()
        for n, (seq, ts, type_, stream, version, run_id, worker_id, data, stored) in enumerate(
            store.iter_raw(batch=ROWS), 1
        ):
            chain.check(seq, ts, type_, stream, version, run_id, worker_id, data, stored)
            checker.fold(Envelope(seq, ts, type_, run_id, worker_id, decode(data), stored))
            if progress is not None and n % 50_000 == 0:
                progress(n, total)
        # Still without the cyclic GC: loading every stored view beside the folded state, it would walk
        # all of both again and again (15% of an audit of 1M events).
        tables = compare_tables(store, checker.state)
    return chain.violations + checker.violations + tables


@contextmanager
def read_snapshot(conn: sqlite3.Connection) -> Iterator[None]:
    """Every read inside sees one and the same commit: a live writer's commit between reading the log
    and reading the tables would otherwise show as a table that "differs from the log"."""
    if conn.in_transaction:  # the caller's own transaction is already one snapshot
        yield
        return
    conn.execute("BEGIN")  # deferred: the snapshot is taken by the first read
    try:
        yield
    finally:
        conn.execute("COMMIT")  # nothing was written


def compare_tables(store: EventStore, state: State) -> list[Violation]:
    out: list[Violation] = []
    stored_runs = load_all_runs(store.conn)
    for run_id, view in state.runs.items():
        stored = stored_runs.pop(run_id, None)
        if stored is None:
            out.append(Violation("projection", "run is missing from the runs table", run_id=run_id))
        elif stored != view:
            fields = ", ".join(
                f"{f}: stored {getattr(stored, f)!r}, log says {getattr(view, f)!r}"
                for f in view.__struct_fields__
                if getattr(stored, f) != getattr(view, f)
            )
            out.append(Violation("projection", f"stored run differs from the log ({fields})", run_id=run_id))
    for run_id in stored_runs:
        out.append(Violation("projection", "runs table has a run the log does not", run_id=run_id))
    stored_workers = load_all_workers(store.conn)
    for worker_id, wview in state.workers.items():
        if stored_workers.pop(worker_id, None) != wview:
            out.append(Violation("projection", f"worker {worker_id} differs from the log"))
    for worker_id in stored_workers:
        out.append(Violation("projection", f"workers table has worker {worker_id} the log does not"))
    return out


__all__ = ["Violation", "audit", "check_chain", "compare_tables"]
