"""Reaping one run: stop its whole process tree, then append `reaped` under the fence acted on.

The kill comes first so that `killed_pids` in the event is true. Several reapers may do this for
the same run at once: killing twice is harmless (the second finds nothing), and the fence lets only
one `reaped` land, whoever is first; a worker's `exited` races it the same way.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from taskhub.errors import FenceRefused, IllegalTransition, UnknownRun
from taskhub.events.log import Log
from taskhub.events.store import Txn
from taskhub.projections import ops
from taskhub.projections import transitions as t
from taskhub.projections.decisions import decide_reap
from taskhub.projections.runs import RunView
from taskhub.projections.tables import load_run
from taskhub.projections.workers import WorkerView
from taskhub.runtime.identity import ProcessIdentity
from taskhub.runtime.reaper_decide import Candidate

logger = logging.getLogger(__name__)

# kill_run_tree's signature, injectable so tests can observe what would be signalled.
KillTree = Callable[[str, "int | None", "ProcessIdentity | None", float], Awaitable[list[int]]]


@dataclass(frozen=True)
class ReapResult:
    """What one reap did: the pids signalled and whether our `reaped` event is the one that landed."""

    run_id: str
    reason: str
    killed_pids: list[int]
    appended: bool
    status: str | None = None  # the run's status after our append (failed, cancelled, queued)


def leader_of(run: RunView, host: str) -> tuple[int | None, ProcessIdentity | None]:
    """The process group to signal and its leader's recorded identity, or (None, None).

    Nothing is signalled by pid when the recorded process is not ours to see (another host) or when
    its pid now belongs to a different process: the group died with it, and the kernel never reuses
    a number still in use as a group id, so signalling would only hit a stranger.
    """
    if run.pid is None or run.create_time is None:
        return None, None  # claimed, not yet started: the env scan alone
    if run.host is not None and run.host != host:
        logger.warning(
            "reaper.remote_run run_id=%s host=%s: its processes are on another host; not signalling",
            run.run_id,
            run.host,
        )
        return None, None
    leader = ProcessIdentity(run.pid, run.create_time)
    if leader.reused():
        logger.warning(
            "pid %s is no longer run %s's process (create time differs); not signalling", run.pid, run.run_id
        )
        return None, None
    return run.pgid if run.pgid is not None else run.pid, leader


def reap_op(candidate: Candidate, killed_pids: list[int], jitter: float) -> Callable[[Txn], RunView]:
    """The write: re-load the run inside the transaction and append only if our claim is still live."""
    fence = candidate.run.fence
    run_id = candidate.run_id

    def op(txn: Txn) -> RunView:
        view = load_run(txn.conn, run_id)
        if view is None:
            raise UnknownRun(f"no run {run_id}")
        if view.fence != fence or view.status not in t.ACTIVE:
            raise FenceRefused(f"run {run_id} moved on (status {view.status}, fence {view.fence}; we acted on {fence})")
        events = decide_reap(view, reason=candidate.reason, killed_pids=killed_pids, now=txn.now, jitter=jitter)
        return ops.append_run_events(txn, run_id, events)

    return op


async def reap(
    log: Log, candidate: Candidate, *, kill: KillTree, grace_s: float, jitter: float, host: str | None = None
) -> ReapResult:
    """Kill the run's tree (group + env scan), then append `reaped`; a lost race is logged, not raised."""
    run = candidate.run
    host = host or socket.gethostname()
    pgid, leader = leader_of(run, host)
    killed = await kill(run.run_id, pgid, leader, grace_s)
    try:
        view = await log.run(reap_op(candidate, killed, jitter))
    except (FenceRefused, IllegalTransition, UnknownRun) as exc:
        # The worker's `exited`, or another reaper, got there first: that is the fence working.
        logger.info("reaper.lost run_id=%s reason=%s: %s", run.run_id, candidate.reason, exc)
        return ReapResult(run.run_id, candidate.reason, killed, appended=False)
    logger.info(
        "reaper.reaped run_id=%s attempt=%s reason=%s status=%s killed=%s",
        run.run_id,
        run.attempt,
        candidate.reason,
        view.status,
        killed,
    )
    return ReapResult(run.run_id, candidate.reason, killed, appended=True, status=view.status)


def worker_alive(worker: WorkerView) -> bool:
    """Is the worker's recorded process still running here? A zombie (killed, not yet waited for) is dead."""
    if worker.create_time <= 0:
        # Recorded without a create time: the pid alone is all we can check.
        identity = ProcessIdentity.of(worker.pid)
        return identity is not None and ProcessIdentity(worker.pid, identity.create_time).matches()
    return ProcessIdentity(worker.pid, worker.create_time).matches()
