"""The reaper's pure selection: which runs to reap, why, and when to wake; views are folded from events."""

from __future__ import annotations

from dataclasses import dataclass, field

from taskhub.events.clock import iso
from taskhub.events.types import (
    Claimed,
    Envelope,
    Event,
    Exited,
    Heartbeat,
    Started,
    Submitted,
    WorkerStarted,
    WorkerStopped,
)
from taskhub.projections.state import State, fold
from taskhub.runtime.reaper_decide import (
    LEASE_EXPIRED,
    WORKER_GONE,
    LeaseHold,
    PauseDetector,
    claimed_before_restart,
    dead_workers,
    latest_starts,
    next_expiry,
    select_reaps,
    still_due,
)

T0 = 1_800_000_000.0
LEASE_S = 3.0
HOST = "here"


@dataclass
class History:
    """A log in memory: append events at given times, fold them into a State."""

    envelopes: list[Envelope] = field(default_factory=list)

    def add(self, event: Event, at: float, run_id: str | None = None, worker_id: str | None = None) -> int:
        seq = len(self.envelopes) + 1
        name = event.__struct_config__.tag
        self.envelopes.append(Envelope(seq, iso(at), str(name), run_id, worker_id, event, "x"))
        return seq

    @property
    def next_seq(self) -> int:
        return len(self.envelopes) + 1

    def worker(self, worker_id: str, at: float, pid: int = 100, host: str = HOST) -> int:
        return self.add(WorkerStarted(pid=pid, host=host, concurrency=1, create_time=1.0), at, worker_id=worker_id)

    def run(self, run_id: str, worker_id: str, at: float, *, started: bool = True) -> int:
        """Submit and claim (and start) a run; returns its fence."""
        self.add(Submitted(task_id="t", params={}), at, run_id=run_id)
        fence = self.next_seq
        self.add(Claimed(attempt=1, fence=fence, lease_expires_at=iso(at + LEASE_S)), at, run_id, worker_id)
        if started:
            self.add(Started(fence, 500, 500, 2.0, HOST, ["sleep"]), at, run_id, worker_id)
        return fence

    def state(self) -> State:
        return fold(self.envelopes)

    def starts(self) -> dict[str, int]:
        return latest_starts(self.envelopes)


def test_expired_lease_is_reaped_and_live_lease_is_not() -> None:
    h = History()
    h.worker("w1", T0)
    h.run("r-a", "w1", T0)
    h.run("r-b", "w1", T0 + 2)
    s = h.state()
    picked = select_reaps(list(s.runs.values()), h.starts(), frozenset(), T0 + LEASE_S + 0.5)
    assert [(c.run_id, c.reason) for c in picked] == [("r-a", LEASE_EXPIRED)]


def test_heartbeat_extends_the_lease() -> None:
    h = History()
    fence = h.run("r-a", "w1", T0)
    h.add(Heartbeat(fence=fence, lease_expires_at=iso(T0 + 2 + LEASE_S)), T0 + 2, "r-a", "w1")
    s = h.state()
    assert select_reaps(list(s.runs.values()), h.starts(), frozenset(), T0 + LEASE_S + 1) == []
    assert [c.run_id for c in select_reaps(list(s.runs.values()), h.starts(), frozenset(), T0 + 6)] == ["r-a"]


def test_dead_worker_is_reaped_before_the_lease_runs_out() -> None:
    h = History()
    h.worker("w1", T0)
    h.worker("w2", T0, pid=200)
    h.run("r-a", "w1", T0)
    h.run("r-b", "w2", T0)
    s = h.state()
    dead = dead_workers(s.workers.values(), HOST, alive=lambda w: w.pid != 100)
    assert dead == {"w1"}
    picked = select_reaps(list(s.runs.values()), h.starts(), dead, T0 + 0.5)
    assert [(c.run_id, c.reason) for c in picked] == [("r-a", WORKER_GONE)]


def test_worker_on_another_host_is_never_judged_dead_here() -> None:
    h = History()
    h.worker("w1", T0, host="elsewhere")
    s = h.state()
    assert dead_workers(s.workers.values(), HOST, alive=lambda w: False) == frozenset()


def test_restart_under_same_id_orphans_the_runs_claimed_before_it() -> None:
    h = History()
    h.worker("w1", T0)
    h.run("r-old", "w1", T0)
    restart = h.worker("w1", T0 + 1, pid=101)  # restarted: a newer incarnation, alive
    h.run("r-new", "w1", T0 + 1.5)
    h.worker("w2", T0 + 2)  # another worker starting says nothing about w1's runs
    s = h.state()
    assert h.starts() == {"w1": restart, "w2": restart + 4}
    assert claimed_before_restart(s.runs["r-old"], restart)
    assert not claimed_before_restart(s.runs["r-new"], restart)
    assert not claimed_before_restart(s.runs["r-old"], None)
    picked = select_reaps(list(s.runs.values()), h.starts(), frozenset(), T0 + 1.6)
    assert [(c.run_id, c.reason) for c in picked] == [("r-old", WORKER_GONE)]


def test_restart_is_seen_even_after_the_new_incarnation_stopped() -> None:
    h = History()
    h.worker("w1", T0)
    h.run("r-old", "w1", T0)
    h.worker("w1", T0 + 1, pid=101)
    h.add(WorkerStopped(reason="shutdown"), T0 + 2, worker_id="w1")
    s = h.state()
    picked = select_reaps(list(s.runs.values()), h.starts(), frozenset(), T0 + 2)
    assert [(c.run_id, c.reason) for c in picked] == [("r-old", WORKER_GONE)]


def test_stopped_worker_without_restart_falls_back_to_pid_check_and_lease() -> None:
    h = History()
    h.worker("w1", T0)
    h.run("r-a", "w1", T0)
    h.add(WorkerStopped(reason="drained"), T0 + 1, worker_id="w1")
    s = h.state()
    assert select_reaps(list(s.runs.values()), h.starts(), frozenset(), T0 + 1) == []
    picked = select_reaps(list(s.runs.values()), h.starts(), frozenset({"w1"}), T0 + 1)
    assert [c.reason for c in picked] == [WORKER_GONE]
    assert [c.reason for c in select_reaps(list(s.runs.values()), h.starts(), frozenset(), T0 + 4)] == [LEASE_EXPIRED]


def test_claimed_but_not_started_run_is_a_candidate() -> None:
    h = History()
    h.run("r-a", "w1", T0, started=False)
    s = h.state()
    picked = select_reaps(list(s.runs.values()), h.starts(), frozenset({"w1"}), T0)
    assert [(c.run_id, c.run.status, c.run.pid) for c in picked] == [("r-a", "claimed", None)]


def test_finished_runs_are_never_selected() -> None:
    h = History()
    h.worker("w1", T0)
    fence = h.run("r-a", "w1", T0)
    h.add(Exited(fence, 0, None, "succeeded", 1.0), T0 + 1, "r-a", "w1")
    s = h.state()
    assert select_reaps(list(s.runs.values()), h.starts(), frozenset({"w1"}), T0 + 100) == []


def test_hold_spares_leases_that_ran_out_in_the_pause_but_not_dead_workers() -> None:
    h = History()
    h.worker("w1", T0)
    h.worker("w2", T0, pid=200)
    h.run("r-old", "w1", T0 - 10)  # its lease ran out before the pause: no excuse
    h.run("r-a", "w1", T0)
    h.run("r-b", "w2", T0)
    s = h.state()
    hold = LeaseHold(since=T0 + 1, until=T0 + 11)
    picked = select_reaps(list(s.runs.values()), h.starts(), frozenset({"w2"}), T0 + 10, hold=hold)
    assert [(c.run_id, c.reason) for c in picked] == [("r-old", LEASE_EXPIRED), ("r-b", WORKER_GONE)]
    picked = select_reaps(list(s.runs.values()), h.starts(), frozenset(), T0 + 11, hold=hold)
    assert [c.run_id for c in picked] == ["r-old", "r-a", "r-b"]


def test_still_due_rejects_a_moved_run() -> None:
    h = History()
    fence = h.run("r-a", "w1", T0)
    s = h.state()
    [candidate] = select_reaps(list(s.runs.values()), h.starts(), frozenset(), T0 + 5)
    assert still_due(s.runs["r-a"], candidate, T0 + 5)
    h.add(Heartbeat(fence=fence, lease_expires_at=iso(T0 + 10)), T0 + 5, "r-a", "w1")
    assert not still_due(h.state().runs["r-a"], candidate, T0 + 5)  # renewed meanwhile
    h.add(Exited(fence, 0, None, "succeeded", 1.0), T0 + 5, "r-a", "w1")
    assert not still_due(h.state().runs["r-a"], candidate, T0 + 11)
    assert not still_due(None, candidate, T0 + 11)


def test_next_expiry_is_the_earliest_future_deadline() -> None:
    h = History()
    h.run("r-a", "w1", T0)
    h.run("r-b", "w1", T0 + 1)
    runs = list(h.state().runs.values())
    assert next_expiry(runs, T0) == T0 + LEASE_S
    assert next_expiry(runs, T0 + LEASE_S + 0.1) == T0 + 1 + LEASE_S
    assert next_expiry(runs, T0 + 10) is None


def test_pause_detector_holds_leases_for_the_grace_period() -> None:
    pause = PauseDetector(interval_s=0.5, grace_s=1.0)
    assert pause.observe(T0) is None
    assert pause.observe(T0 + 0.5) is None
    assert pause.observe(T0 + 2.0) is None  # 1.5 s: under 2 x 0.5 + 1
    assert pause.active_hold(T0 + 2.0) is None
    assert pause.observe(T0 + 30) == 28.0
    assert pause.active_hold(T0 + 30.5) == LeaseHold(since=T0 + 2.0, until=T0 + 31.0)
    assert pause.active_hold(T0 + 31.0) is None
    assert pause.observe(T0 + 29) is None  # the wall clock stepped back: not a pause


def test_stalls_tick_after_tick_delay_a_lease_reap_by_one_gap_only() -> None:
    h = History()
    h.run("r-a", "w1", T0 - LEASE_S + 1)  # the lease runs out at T0 + 1
    runs = list(h.state().runs.values())
    pause = PauseDetector(interval_s=0.5, grace_s=1.5)
    reaped_at = None
    for tick in (T0, T0 + 2.5, T0 + 5.0, T0 + 7.5):  # every gap is a "pause"
        pause.observe(tick)
        if select_reaps(runs, {}, frozenset(), tick, hold=pause.active_hold(tick)):
            reaped_at = tick
            break
    assert reaped_at == T0 + 5.0
