"""Audit: verify the hash chain, fold the whole log checking every invariant, compare with the tables."""

from __future__ import annotations

from collections.abc import Callable

import msgspec

from taskhub.events.store import GENESIS_HASH, EventStore, chain_hash
from taskhub.events.types import FENCED_TYPES, Claimed, Envelope, Exited, Reaped, Submitted
from taskhub.projections import transitions as t
from taskhub.projections.runs import apply_run
from taskhub.projections.state import State, fold, gc_paused
from taskhub.projections.tables import load_all_runs, load_all_workers

Progress = Callable[[int, int], None]


class Violation(msgspec.Struct, frozen=True):
    kind: str
    message: str
    seq: int | None = None
    run_id: str | None = None

    def __str__(self) -> str:
        where = " ".join(x for x in (f"seq {self.seq}" if self.seq else "", self.run_id or "") if x)
        return f"[{self.kind}] {where}: {self.message}" if where else f"[{self.kind}] {self.message}"


def check_chain(store: EventStore) -> list[Violation]:
    """Each row's hash must equal H(previous row's stored hash, its own fields); seqs have no gaps."""
    out: list[Violation] = []
    prev_hash, prev_seq = GENESIS_HASH, 0
    for seq, ts, type_, stream, _run, _worker, data, stored in store.iter_raw():
        if seq != prev_seq + 1:
            out.append(Violation("chain", f"seq jumps from {prev_seq} to {seq}: events are missing", seq))
        raw = data.encode() if isinstance(data, str) else bytes(data)  # a rewritten row may hold TEXT
        if chain_hash(prev_hash, seq, ts, type_, stream, raw) != stored:
            out.append(Violation("chain", "hash does not match the event's content: the row was altered", seq))
        prev_hash, prev_seq = stored, seq
    return out


class _Invariants:
    """Checks, event by event, what the fold alone would silently tolerate."""

    def __init__(self) -> None:
        self.state = State()
        self.max_fence = 0
        self.ended_attempts: set[tuple[str, int]] = set()
        self.violations: list[Violation] = []

    def bad(self, env: Envelope, message: str) -> None:
        self.violations.append(Violation("invariant", message, env.seq, env.run_id))

    def check(self, env: Envelope) -> None:
        event, run_id = env.data, env.run_id
        if run_id is None:
            return
        view = self.state.runs.get(run_id)
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
            key = (run_id, view.attempt)
            if key in self.ended_attempts:
                self.bad(env, f"a second terminal outcome for attempt {view.attempt}")
            self.ended_attempts.add(key)
        after = apply_run(view, env)
        if after is not None and after.status not in t.TRANSITIONS.get((view.status, env.type), {after.status}):
            self.bad(env, f"{view.status} -> {after.status} on {env.type} is not in the transition table")


def audit(store: EventStore, progress: Progress | None = None) -> list[Violation]:
    """Every violation found: hash chain, invariants of the history, stored tables against the fold."""
    violations = check_chain(store)
    checker = _Invariants()
    total = store.last_seq()
    with gc_paused():
        for n, env in enumerate(store.iter_all(), 1):
            checker.check(env)
            fold((env,), checker.state)
            if progress is not None and n % 50_000 == 0:
                progress(n, total)
    violations += checker.violations
    violations += compare_tables(store, checker.state)
    return violations


def compare_tables(store: EventStore, state: State) -> list[Violation]:
    out: list[Violation] = []
    stored_runs = load_all_runs(store.conn)
    for run_id, view in state.runs.items():
        stored = stored_runs.pop(run_id, None)
        if stored is None:
            out.append(Violation("projection", "run is missing from the runs table", run_id=run_id))
        elif stored != view:
            out.append(
                Violation(
                    "projection",
                    f"stored run differs from the log (stored {stored.status}, log says {view.status})",
                    run_id=run_id,
                )
            )
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
