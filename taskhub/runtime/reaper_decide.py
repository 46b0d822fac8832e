"""What the reaper should reap, decided from projections and facts about the host; no I/O here.

A run is reaped for one of two reasons (SPEC sections 4, 5):

- `worker_gone`: the worker that claimed it is known dead. A fact, not a guess from time: its
  recorded process is gone from this host (pid + create time), or a newer `worker_started` for the
  same worker id came after the run's claim (the worker restarted and the claiming incarnation is
  gone; one worker id is one process at a time). Acted on at once, whatever the lease says.
- `lease_expired`: its lease deadline, stored in the log, has passed. Suspended while the reaper
  itself has just woken from a pause (see PauseDetector), because then nobody had a chance to renew.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from taskhub.events.clock import parse_iso
from taskhub.events.types import Envelope
from taskhub.projections import transitions as t
from taskhub.projections.runs import RunView
from taskhub.projections.workers import WorkerView

LEASE_EXPIRED = "lease_expired"
WORKER_GONE = "worker_gone"

# Is this worker's recorded process still alive on this host? (psutil in production, a fake in tests)
WorkerProbe = Callable[[WorkerView], bool]


@dataclass(frozen=True)
class Candidate:
    """A run to reap, the reason, and the view it was decided from (its fence is the one we act on)."""

    run: RunView
    reason: str

    @property
    def run_id(self) -> str:
        return self.run.run_id


def lease_deadline(run: RunView) -> float | None:
    """The run's lease expiry as epoch seconds, or None when it holds no lease."""
    if run.lease_expires_at is None:
        return None
    try:
        return parse_iso(run.lease_expires_at)
    except ValueError:
        return None


def dead_workers(workers: Iterable[WorkerView], host: str, alive: WorkerProbe) -> frozenset[str]:
    """Ids of workers whose recorded process is provably gone from this host.

    A worker on another host cannot be checked from here: only its lease can tell.
    """
    return frozenset(w.worker_id for w in workers if w.host == host and not alive(w))


def latest_starts(envelopes: Iterable[Envelope]) -> dict[str, int]:
    """worker id -> seq of its latest `worker_started`, from the log's `worker_started` events."""
    starts: dict[str, int] = {}
    for env in envelopes:
        if env.type == "worker_started" and env.worker_id is not None:
            starts[env.worker_id] = max(env.seq, starts.get(env.worker_id, 0))
    return starts


def claimed_before_restart(run: RunView, latest_start: int | None) -> bool:
    """True if the run's worker started again (a later `worker_started` under the same id) after
    claiming it: the incarnation that held the run is gone.

    A claim's fence is the seq its `claimed` event gets, so both numbers are positions in one total
    order and the comparison is exact: no clocks. (The worker view's `last_seq` is not used: it moves
    on `worker_stopped` too, and would on any worker event added later.)
    """
    return run.fence is not None and latest_start is not None and run.fence < latest_start


def gone_reason(run: RunView, starts: Mapping[str, int], dead: frozenset[str]) -> str | None:
    """WORKER_GONE if the run's worker is known dead, else None."""
    if run.worker_id is None:
        return None
    if run.worker_id in dead or claimed_before_restart(run, starts.get(run.worker_id)):
        return WORKER_GONE
    return None


def select_reaps(
    runs: Sequence[RunView],
    starts: Mapping[str, int],
    dead: frozenset[str],
    now: float,
    *,
    hold: LeaseHold | None = None,
) -> list[Candidate]:
    """The active runs to reap now, oldest claim first; each run at most once, `worker_gone` first.

    `starts` is `latest_starts` of the log; `dead` is `dead_workers` of the host; `hold` (right
    after a pause of the reaper) spares the leases that ran out during the pause, not dead workers.
    """
    out: list[Candidate] = []
    for run in sorted(runs, key=lambda r: r.fence or 0):
        if run.status not in t.ACTIVE or run.fence is None:
            continue
        reason = gone_reason(run, starts, dead)
        if reason is None:
            deadline = lease_deadline(run)
            if deadline is not None and deadline < now and not (hold is not None and hold.covers(deadline, now)):
                reason = LEASE_EXPIRED
        if reason is not None:
            out.append(Candidate(run, reason))
    return out


def still_due(fresh: RunView | None, candidate: Candidate, now: float) -> bool:
    """Re-check just before killing: same claim, still active, and (for a lease) still expired.

    Narrows the window in which a worker renews a lease while the reaper is deciding.
    """
    if fresh is None or fresh.status not in t.ACTIVE or fresh.fence != candidate.run.fence:
        return False
    if candidate.reason == LEASE_EXPIRED:
        deadline = lease_deadline(fresh)
        return deadline is not None and deadline < now
    return True


def next_expiry(runs: Iterable[RunView], now: float) -> float | None:
    """The earliest lease deadline still in the future, to sleep until exactly then."""
    future = [d for d in (lease_deadline(r) for r in runs if r.status in t.ACTIVE) if d is not None and d >= now]
    return min(future, default=None)


@dataclass(frozen=True)
class LeaseHold:
    """After a pause of the reaper from `since` to its end: leases that ran out during it (deadline
    at or after `since`) are not reaped before `until`. Leases that had run out before the pause
    are not covered, so a stall repeated tick after tick delays a lease reap by one gap, never for
    ever."""

    since: float
    until: float

    def covers(self, deadline: float, now: float) -> bool:
        return deadline >= self.since and now < self.until


class PauseDetector:
    """Notices that the reaper itself was not running (a suspended machine, a SIGSTOP, a stall).

    A gap between two ticks above `2 x interval + 1 s` is a pause. The workers were probably paused
    with it and had no chance to renew: leases that ran out during the pause get `grace_s` (one
    heartbeat period) from its end before they are reaped, so a resumed machine does not fail
    healthy runs. The time compared is the wall clock of the ticks, which keeps running while a
    machine is suspended (the monotonic clock does not).
    """

    def __init__(self, interval_s: float, grace_s: float) -> None:
        self.threshold_s = 2 * interval_s + 1.0
        self.grace_s = grace_s
        self._last: float | None = None
        self.hold: LeaseHold | None = None

    def observe(self, now: float) -> float | None:
        """Record a tick at `now`; returns the gap if this tick ends a pause, else None."""
        last, self._last = self._last, now
        if last is None:
            return None
        gap = now - last
        if gap > self.threshold_s:
            self.hold = LeaseHold(since=last, until=now + self.grace_s)
            return gap
        return None

    def active_hold(self, now: float) -> LeaseHold | None:
        return self.hold if self.hold is not None and now < self.hold.until else None
