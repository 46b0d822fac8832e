"""Ready runs: a worker whose runs end quickly keeps the queue's head claimed, ready for the next
free slot, so a slot does not wait for a commit between two quick runs.

What must hold: at most `ready_per_slot` ready runs per slot, and none with 0; the queue's order
is kept (a ready run is always the head, never a quick run picked from behind a slow one); a
task with max_concurrency is never held ready; and a shutdown leaves no run claimed.
"""

from __future__ import annotations

import signal
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

from taskhub.events.types import Envelope
from taskhub.projections.audit import audit
from tests.e2e.worker_fixtures import Hub, make_home
from tests.helpers.waiting import wait_until


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    hub = Hub(make_home(tmp_path / "home"))
    yield hub
    hub.close()


def most_held(events: Iterable[Envelope], worker_id: str) -> int:
    """The most runs `worker_id` held at once (claimed, not yet ended), in commit order."""
    held: set[str] = set()
    most = 0
    for env in events:
        if env.type == "claimed" and env.worker_id == worker_id and env.run_id is not None:
            held.add(env.run_id)
            most = max(most, len(held))
        elif env.type in ("exited", "reaped") and env.run_id is not None:
            held.discard(env.run_id)
    return most


@pytest.mark.parametrize(("ready_per_slot", "most"), [("1", 4), ("0", 2)])
def test_quick_runs_keep_at_most_one_ready_run_per_slot(hub: Hub, ready_per_slot: str, most: int) -> None:
    run_ids = hub.submit_many("noop", [{}] * 150)
    worker = hub.start_worker(concurrency=2, TASKHUB_READY_PER_SLOT=ready_per_slot)

    views = [hub.wait_done(run_id, timeout=60) for run_id in run_ids]

    assert {v.status for v in views} == {"succeeded"}
    held = most_held(hub.events(), worker.worker_id)
    # 2 slots: with one ready run per slot up to 4 held (the refill claims while both run), never
    # more; with none ready, never more than the slots.
    if most == 2:
        assert held == 2
    else:
        assert 2 < held <= most
    # The fold of the log agrees with the tables (this home's log starts at a random seq).
    assert [v for v in audit(hub.store) if v.kind != "chain"] == []


def test_ready_runs_keep_the_queue_order(hub: Hub) -> None:
    """A slow run in the middle of quick ones is claimed in its turn: the refill never skips it."""
    first = hub.submit_many("noop", [{}] * 40)
    slow = hub.submit("sleep", {"seconds": 0.3})
    last = hub.submit_many("noop", [{}] * 40)
    worker = hub.start_worker(concurrency=1)

    for run_id in [*first, slow, *last]:
        hub.wait_done(run_id, timeout=60)

    claims = [e.run_id for e in hub.events(types=["claimed"]) if e.worker_id == worker.worker_id]
    assert claims == [*first, slow, *last]
    starts = [e.run_id for e in hub.events(types=["started"])]  # one slot: in the order they ran
    assert starts == [*first, slow, *last]
    assert hub.run(slow).status == "succeeded"
    # The slow run was claimed for a slot (or the one ready run), never with more held.
    assert most_held(hub.events(), worker.worker_id) <= 2


def test_a_task_with_max_concurrency_is_never_held_ready(hub: Hub) -> None:
    """`limited` (max 2) runs are claimed only into a free slot: a ready one would hold one of the
    task's two places while not running."""
    run_ids = hub.submit_many("limited", [{"seconds": 0}] * 30)
    worker = hub.start_worker(concurrency=1)

    for run_id in run_ids:
        hub.wait_done(run_id, timeout=60)

    assert most_held(hub.events(), worker.worker_id) == 1


def test_shutdown_leaves_no_run_claimed(hub: Hub) -> None:
    """Quick runs, then one that turns slow: the run made ready behind it never starts. A second
    SIGTERM skips the drain; the slow run is stopped and the ready one ends as worker_gone (or is
    retried), never left claimed."""
    quick = hub.submit_many("sleep", [{"seconds": 0}] * 30)
    slow = hub.submit("sleep", {"seconds": 600})
    after = hub.submit_many("sleep", [{"seconds": 0}] * 5)
    worker = hub.start_worker(concurrency=1, TASKHUB_DRAIN_S="60")
    hub.wait_status(slow, ["running"], timeout=60)

    worker.signal(signal.SIGTERM)
    wait_until(lambda: "worker.draining" in worker.output(), timeout=15, message="the drain to begin")
    worker.signal(signal.SIGTERM)  # skip the drain

    assert worker.wait(timeout=30) == 0, worker.output()
    assert [hub.describe(r) for r in quick if hub.run(r).status != "succeeded"] == []
    assert (hub.run(slow).status, hub.run(slow).failure_reason) == ("failed", "worker_gone")
    for run_id in after:
        view = hub.run(run_id)
        if hub.types(run_id) == ["submitted"]:
            continue  # never claimed
        assert (view.status, view.failure_reason) == ("failed", "worker_gone"), hub.describe(run_id)
        assert view.error == "the worker shut down before the run started"
        assert "started" not in hub.types(run_id)
    assert not [r for r in [*quick, slow, *after] if hub.run(r).status in ("claimed", "running", "cancelling")]


def test_a_ready_run_cancelled_before_it_starts_never_runs(hub: Hub) -> None:
    """Quick runs, then a slow one: the runs claimed ready behind it wait. Cancelled there, they
    end cancelled at once, with no process ever started."""
    hub.submit_many("sleep", [{"seconds": 0}] * 30)
    slow = hub.submit("sleep", {"seconds": 600})
    after = hub.submit_many("sleep", [{"seconds": 0}] * 3)
    worker = hub.start_worker(concurrency=1, TASKHUB_READY_PER_SLOT="3")
    hub.wait_status(slow, ["running"], timeout=60)
    # The hand-overs of the last quick runs claimed the runs after it as ready (three chances for
    # one to be quick): with the slot busy, they stay claimed.
    waiting = [r for r in after if hub.run(r).status == "claimed"]
    assert waiting, [hub.describe(r) for r in after]

    for run_id in waiting:
        hub.cancel(run_id)
        view = hub.wait_done(run_id, timeout=10)
        assert view.status == "cancelled", hub.describe(run_id)
        assert hub.types(run_id) == ["submitted", "claimed", "cancel_requested", "exited"]
    assert hub.run(slow).status == "running"
    assert worker.stop() == 0
