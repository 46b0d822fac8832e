"""The run state machine: the transition table is the single source of truth for code and tests.

Every pair in `TRANSITIONS` is exercised through the pure fold (`apply_run`) and through the
store (`ops.append_run_events` on a real SQLite file); every pair *not* in the table is refused by
the store, with nothing written, and by the `decide_*` functions.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from taskhub.errors import FenceRefused, IllegalTransition, UnknownRun
from taskhub.events.clock import iso
from taskhub.events.store import EventStore, Txn
from taskhub.events.types import (
    Artifact,
    Cancelled,
    CancelRequested,
    Claimed,
    Envelope,
    Event,
    Exited,
    Heartbeat,
    Progress,
    Reaped,
    Result,
    RetryScheduled,
    Started,
    Submitted,
)
from taskhub.projections import ops
from taskhub.projections import transitions as t
from taskhub.projections.decisions import decide_cancel, decide_claim, decide_exit, decide_heartbeat, decide_reap
from taskhub.projections.runs import RunView, apply_run
from taskhub.projections.tables import load_run

NOW = 1_800_000_000.0
LEASE_S = 30.0

# Every event type that speaks about a run and can move its status ("refused" is an annotation).
RUN_EVENT_TYPES = (
    "submitted",
    "claimed",
    "started",
    "heartbeat",
    "progress",
    "artifact",
    "result",
    "cancel_requested",
    "exited",
    "reaped",
    "retry_scheduled",
    "cancelled",
)


def make_events(event_type: str, view: RunView | None, next_seq: int = 10_000) -> list[Event]:
    """Events of one type for a run in `view`'s state, carrying its current fence (so fencing is never
    the reason for a refusal when the pair is in the table). `exited` yields one per outcome."""
    fence = (view.fence if view is not None else None) or 0
    attempt = view.attempt if view is not None else 0
    lease = iso(NOW + LEASE_S)
    match event_type:
        case "submitted":
            return [Submitted(task_id="t", params={})]
        case "claimed":
            return [Claimed(attempt=attempt + 1, fence=next_seq, lease_expires_at=lease)]
        case "started":
            return [Started(fence=fence, pid=123, pgid=123, create_time=NOW, host="h", argv=["true"])]
        case "heartbeat":
            return [Heartbeat(fence=fence, lease_expires_at=lease)]
        case "progress":
            return [Progress(fence=fence, pct=50.0, message="half")]
        case "artifact":
            return [Artifact(fence=fence, name="out.txt")]
        case "result":
            return [Result(fence=fence, value={"answer": 42})]
        case "cancel_requested":
            return [CancelRequested(reason="user")]
        case "exited":
            return [
                Exited(fence=fence, exit_code=code, signal=None, outcome=outcome, duration_s=1.0)
                for outcome, code in (("succeeded", 0), ("failed", 1), ("cancelled", None), ("timed_out", None))
            ]
        case "reaped":
            return [Reaped(fence=fence, reason=reason, killed_pids=[7]) for reason in t.REAP_REASONS]
        case "retry_scheduled":
            return [RetryScheduled(fence=fence, next_attempt=attempt + 1, not_before=iso(NOW + 1))]
        case "cancelled":
            return [Cancelled(reason="user")]
    raise AssertionError(event_type)


def test_event_types_cover_the_table() -> None:
    assert {e for _, e in t.TRANSITIONS} <= set(RUN_EVENT_TYPES)
    assert {s for s, _ in t.TRANSITIONS} <= {None, *t.STATUSES}
    for targets in t.TRANSITIONS.values():
        assert targets and targets <= set(t.STATUSES)


# -- the pure fold ---------------------------------------------------------------------------------


def view_in(status: str, *, fence: int = 5, attempt: int = 1, max_attempts: int = 3) -> RunView:
    return RunView(
        run_id="r-1",
        task_id="t",
        params={},
        status=status,
        num=1,
        attempt=attempt if status != t.QUEUED else 0,
        max_attempts=max_attempts,
        fence=fence if status != t.QUEUED else None,
        worker_id="w-1",
        last_seq=5,
    )


def env_of(event: Event, seq: int = 100, run_id: str = "r-1") -> Envelope:
    return Envelope(seq, iso(NOW), event.__struct_config__.tag, run_id, "w-1", event, "h")  # type: ignore[arg-type]


@pytest.mark.parametrize(("before", "event_type"), sorted(t.TRANSITIONS, key=str))
def test_apply_run_lands_in_the_table(before: str | None, event_type: str) -> None:
    view = None if before is None else view_in(before)
    for event in make_events(event_type, view):
        after = apply_run(view, env_of(event))
        assert after is not None
        assert after.status in t.TRANSITIONS[(before, event_type)], (before, event, after.status)
        assert after.last_seq == 100


@pytest.mark.parametrize("before", t.STATUSES)
@pytest.mark.parametrize("event_type", RUN_EVENT_TYPES)
def test_apply_run_is_total_outside_the_table(before: str, event_type: str) -> None:
    """History is never refused by the fold: an illegal pair leaves the view alone but its position."""
    if (before, event_type) in t.TRANSITIONS:
        return
    view = view_in(before)
    for event in make_events(event_type, view):
        after = apply_run(view, env_of(event))
        assert after is not None
        assert after.status == before
        assert after == view.__class__(**{**_fields(view), "last_seq": 100})


def test_apply_run_ignores_events_before_submitted() -> None:
    for event_type in RUN_EVENT_TYPES[1:]:
        for event in make_events(event_type, None):
            assert apply_run(None, env_of(event)) is None


def test_refused_annotation_never_changes_status() -> None:
    from taskhub.events.types import Refused

    for status in t.STATUSES:
        view = view_in(status)
        after = apply_run(view, env_of(Refused(fence=1, event_type="exited")))
        assert after is not None and after.status == status and after.last_seq == 100


def _fields(view: RunView) -> dict[str, object]:
    return {name: getattr(view, name) for name in view.__struct_fields__}


# -- the store: ops.append_run_events on a real SQLite file ---------------------------------------


class Runs:
    """Builds runs in a given status through ops, each step in its own real transaction."""

    def __init__(self, store: EventStore) -> None:
        self.store = store
        self.now = NOW
        self.priority = 0

    def do(self, fn: Callable[[Txn], object]) -> object:
        with self.store.transaction(self.now) as txn:
            return fn(txn)

    def view(self, run_id: str) -> RunView:
        found = load_run(self.store.conn, run_id)
        assert found is not None
        return found

    def submit(self, max_attempts: int = 1) -> str:
        # Each run outranks every earlier one, so ops.claim picks the newest whatever else is queued.
        self.priority += 1
        event = Submitted(task_id="t", params={}, max_attempts=max_attempts, priority=self.priority)
        view, created = self.do(lambda txn: ops.submit(txn, event))  # type: ignore[misc]
        assert created
        return view.run_id  # type: ignore[no-any-return]

    def append(self, run_id: str, events: list[Event], worker_id: str | None = "w-1") -> RunView:
        return self.do(lambda txn: ops.append_run_events(txn, run_id, events, worker_id=worker_id))  # type: ignore[return-value]

    def claim_one(self, run_id: str) -> RunView:
        claimed = self.do(lambda txn: ops.claim(txn, "w-1", 1, LEASE_S))
        assert [v.run_id for v in claimed] == [run_id]  # type: ignore[attr-defined]
        return self.view(run_id)

    def in_status(self, status: str) -> str:
        run_id = self.submit()
        if status == t.QUEUED:
            return run_id
        if status == t.CANCELLED:
            self.append(run_id, decide_cancel(self.view(run_id), "user"), worker_id=None)
            return run_id
        view = self.claim_one(run_id)
        if status == t.CLAIMED:
            return run_id
        view = self.append(run_id, make_events("started", view))
        if status == t.RUNNING:
            return run_id
        if status == t.CANCELLING:
            self.append(run_id, decide_cancel(view, "user"), worker_id=None)
            return run_id
        outcome = {t.SUCCEEDED: "succeeded", t.FAILED: "failed"}[status]
        self.append(
            run_id,
            decide_exit(
                view, fence=view.fence or 0, exit_code=0, signal=None, outcome=outcome, duration_s=1.0, now=self.now
            ),
        )
        return run_id


@pytest.fixture
def runs(tmp_path: Path) -> Iterator[Runs]:
    store = EventStore(tmp_path / "t.db", synchronous="NORMAL")
    try:
        yield Runs(store)
    finally:
        store.close()


def test_runs_fixture_reaches_every_status(runs: Runs) -> None:
    for status in t.STATUSES:
        assert runs.view(runs.in_status(status)).status == status


@pytest.mark.parametrize("before", t.STATUSES)
def test_store_applies_every_pair_in_the_table_and_refuses_every_other(runs: Runs, before: str) -> None:
    for event_type in RUN_EVENT_TYPES:
        for i in range(len(make_events(event_type, None))):
            run_id = runs.in_status(before)
            view = runs.view(run_id)
            assert view.status == before
            event = make_events(event_type, view, next_seq=runs.store.last_seq() + 1)[i]
            seq_before = runs.store.last_seq()
            if (before, event_type) in t.TRANSITIONS:
                after = runs.append(run_id, [event])
                assert after.status in t.TRANSITIONS[(before, event_type)], (before, event)
                assert runs.view(run_id) == after
                assert runs.store.last_seq() == seq_before + 1
            else:
                with pytest.raises((IllegalTransition, FenceRefused)):
                    runs.append(run_id, [event])
                assert runs.store.last_seq() == seq_before, f"{before} + {event_type} wrote something"
                assert runs.view(run_id) == view


def test_store_refuses_events_for_unknown_runs(runs: Runs) -> None:
    for event_type in RUN_EVENT_TYPES[1:]:
        for event in make_events(event_type, None):
            with pytest.raises(UnknownRun):
                runs.append("r-404", [event])
    assert runs.store.last_seq() == 0


def test_store_refuses_a_batch_atomically(runs: Runs) -> None:
    """A refused event in the middle of a batch leaves nothing of the batch behind."""
    run_id = runs.in_status(t.RUNNING)
    view = runs.view(run_id)
    seq_before = runs.store.last_seq()
    good = make_events("progress", view)[0]
    stale = Heartbeat(fence=(view.fence or 0) - 1, lease_expires_at=iso(NOW))
    with pytest.raises(FenceRefused):
        runs.append(run_id, [good, stale])
    assert runs.store.last_seq() == seq_before
    assert runs.view(run_id) == view


# -- the decisions --------------------------------------------------------------------------------


def decide(kind: str, view: RunView) -> list[Event]:
    match kind:
        case "claimed":
            return [decide_claim(view, fence=10_000, now=NOW, lease_s=LEASE_S)]
        case "heartbeat":
            return [decide_heartbeat(view, NOW, LEASE_S)]
        case "cancel":
            return decide_cancel(view, "user")
        case "exited":
            return decide_exit(
                view, fence=view.fence or 0, exit_code=1, signal=None, outcome="failed", duration_s=1.0, now=NOW
            )
        case "reaped":
            return decide_reap(view, reason="lease_expired", killed_pids=[3, 1], now=NOW)
    raise AssertionError(kind)


# Which statuses each decision accepts, read from the table.
DECIDES = {
    "claimed": {s for s in t.STATUSES if (s, "claimed") in t.TRANSITIONS},
    "heartbeat": {s for s in t.STATUSES if (s, "heartbeat") in t.TRANSITIONS},
    "exited": {s for s in t.STATUSES if (s, "exited") in t.TRANSITIONS},
    "reaped": {s for s in t.STATUSES if (s, "reaped") in t.TRANSITIONS},
    # queued -> cancelled; claimed/running -> cancel_requested; cancelling -> nothing to do
    "cancel": {s for s in t.STATUSES if (s, "cancelled") in t.TRANSITIONS or (s, "cancel_requested") in t.TRANSITIONS}
    | {t.CANCELLING},
}


@pytest.mark.parametrize("kind", sorted(DECIDES))
@pytest.mark.parametrize("status", t.STATUSES)
def test_decisions_follow_the_table(kind: str, status: str) -> None:
    view = view_in(status, attempt=1, max_attempts=2)
    if status not in DECIDES[kind]:
        with pytest.raises(IllegalTransition):
            decide(kind, view)
        return
    events = decide(kind, view)
    # What a decision returns is itself a legal path through the table.
    current: RunView | None = view
    for seq, event in enumerate(events, 100):
        assert current is not None
        env = env_of(event, seq)
        assert (current.status, env.type) in t.TRANSITIONS, (status, kind, env.type)
        nxt = apply_run(current, env)
        assert nxt is not None and nxt.status in t.TRANSITIONS[(current.status, env.type)]
        current = nxt


def test_decide_exit_and_reap_schedule_retries_only_while_attempts_remain() -> None:
    last = view_in(t.RUNNING, attempt=2, max_attempts=2)
    more = view_in(t.RUNNING, attempt=1, max_attempts=2)
    assert [type(e) for e in decide("exited", last)] == [Exited]
    assert [type(e) for e in decide("exited", more)] == [Exited, RetryScheduled]
    assert [type(e) for e in decide("reaped", last)] == [Reaped]
    assert [type(e) for e in decide("reaped", more)] == [Reaped, RetryScheduled]
    # A cancelling run is never retried, whatever happens to it.
    cancelling = view_in(t.CANCELLING, attempt=1, max_attempts=2)
    assert [type(e) for e in decide("reaped", cancelling)] == [Reaped]
    assert [type(e) for e in decide("exited", cancelling)] == [Exited]
    exited = decide("exited", cancelling)[0]
    assert isinstance(exited, Exited) and exited.outcome == "cancelled"
    succeeded = decide_exit(more, fence=5, exit_code=0, signal=None, outcome="succeeded", duration_s=1, now=NOW)
    assert [type(e) for e in succeeded] == [Exited]
    reaped = decide("reaped", more)[0]
    assert isinstance(reaped, Reaped) and reaped.killed_pids == [1, 3]


def test_decide_cancel_is_idempotent_while_cancelling() -> None:
    assert decide_cancel(view_in(t.CANCELLING)) == []
    assert [type(e) for e in decide_cancel(view_in(t.QUEUED))] == [Cancelled]
    assert [type(e) for e in decide_cancel(view_in(t.RUNNING))] == [CancelRequested]


def test_a_new_claim_forgets_the_previous_attempt() -> None:
    ended = RunView(
        run_id="r-1", task_id="t", params={}, status=t.QUEUED, num=1, attempt=1, max_attempts=2, fence=5,
        started_at="s", finished_at="f", pid=1, pgid=1, create_time=1.0, argv=["x"], exit_code=1, signal=9,
        outcome="failed", failure_reason="exit_code", error="e", progress=None, cancel_reason=None, last_seq=9,
    )  # fmt: skip
    claimed = apply_run(ended, env_of(Claimed(attempt=2, fence=10, lease_expires_at=iso(NOW)), seq=10))
    assert claimed is not None
    assert (claimed.status, claimed.attempt, claimed.fence, claimed.last_seq) == (t.CLAIMED, 2, 10, 10)
    for name in ("started_at", "finished_at", "pid", "pgid", "create_time", "argv", "exit_code", "signal",
                 "outcome", "failure_reason", "error", "progress"):  # fmt: skip
        assert getattr(claimed, name) is None, name
    first = apply_run(view_in(t.QUEUED), env_of(Claimed(attempt=1, fence=10, lease_expires_at=iso(NOW))))
    assert first is not None and first.attempt == 1 and first.started_at is None


@pytest.mark.parametrize("status", sorted(t.TERMINAL))
def test_decide_cancel_of_a_finished_run_says_so(status: str) -> None:
    with pytest.raises(IllegalTransition, match=rf"has already finished \({status}\): nothing to cancel"):
        decide_cancel(view_in(status))
