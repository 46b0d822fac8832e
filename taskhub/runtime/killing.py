"""Stopping a run's whole process tree: its process group, strays found by environment, its cgroup.

Three layers, each catching what the one before misses (STYLE point 5, SPEC section 11):

- the process group (`killpg`): everything the command forked, unless it left the group;
- the environment scan: every process still carrying `TASKHUB_RUN_ID=<run_id>`, which finds
  grandchildren that called `setsid()` or double-forked out of the group (not one that exec'd with
  a scrubbed environment);
- a cgroup v2 per run (`cgroup.kill`), when the machine offers a writable one: nothing escapes it.

Nothing is signalled without an identity check (pid + create time), so a reused pid is never hit.
Escalation is always SIGTERM, a grace period, then SIGKILL. Linux only.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import psutil

from taskhub.runtime.cgroups import ContainmentLevel, RunCgroup, containment_level
from taskhub.runtime.identity import ProcessIdentity

logger = logging.getLogger(__name__)

Clock = Callable[[], float]  # monotonic seconds; injected so tests can drive deadlines

POLL_S = 0.02  # how often to look whether signalled processes are gone
KILL_SETTLE_S = 2.0  # after SIGKILL, how long to wait for the processes to vanish
TREE_SETTLE_S = 5.0  # after the grace period, how long to keep rescanning for stragglers

RUN_ID_ENV = "TASKHUB_RUN_ID"
RUN_DIR_ENV = "TASKHUB_RUN_DIR"


# --- process groups -------------------------------------------------------------------------------


async def terminate_group(
    pgid: int, identity: ProcessIdentity | None, grace_s: float, *, clock: Clock = time.monotonic
) -> list[int]:
    """SIGTERM the process group, wait up to `grace_s` for it to empty, then SIGKILL what is left.

    `identity` is the recorded group leader: if its pid now belongs to another process, nothing is
    signalled (a reused pgid could be anyone's). A leader that is simply gone is fine: its group may
    still have members. Returns the pids that were signalled; an empty group is not an error.
    """
    if not _safe_pgid(pgid):
        logger.warning("kill.group.refused pgid=%s reason=own_or_init_group", pgid)
        return []
    if identity is not None and identity.reused():
        logger.warning(
            "kill.identity_mismatch pgid=%s pid=%s recorded_create_time=%s: pid reused, group not signalled",
            pgid,
            identity.pid,
            identity.create_time,
        )
        return []
    members = _group_members(pgid)
    if not _killpg(pgid, signal.SIGTERM):
        return []
    signalled = set(members)
    logger.debug("kill.group.term pgid=%s members=%s", pgid, members)
    if await _wait(lambda: not _group_alive(pgid), grace_s, clock):
        return sorted(signalled)
    # The leader may have died during the grace and its pid been reused: check again.
    if identity is not None and identity.reused():
        logger.warning("kill.identity_mismatch pgid=%s pid=%s: pid reused during grace", pgid, identity.pid)
        return sorted(signalled)
    members = _group_members(pgid)
    if members and _killpg(pgid, signal.SIGKILL):
        signalled.update(members)
        logger.info("kill.group.kill pgid=%s survivors=%s grace_s=%s", pgid, members, grace_s)
        if not await _wait(lambda: not _group_alive(pgid), KILL_SETTLE_S, clock):
            logger.warning("kill.group.stuck pgid=%s members=%s", pgid, _group_members(pgid))
    return sorted(signalled)


def _safe_pgid(pgid: int) -> bool:
    # killpg(0) or our own group would kill the caller; pgid 1 is init's.
    return pgid > 1 and pgid != os.getpgrp()


def _killpg(pgid: int, sig: signal.Signals) -> bool:
    """Signal the group; False when it no longer exists."""
    try:
        os.killpg(pgid, sig)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        logger.warning("kill.denied pgid=%s signal=%s", pgid, sig.name)
        return False


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # The group exists, but zombies count as members for killpg: look closer.
    return bool(_group_members(pgid))


def _group_members(pgid: int) -> list[int]:
    """Live (non-zombie) pids whose process group is `pgid`."""
    members = []
    for pid in psutil.pids():
        try:
            if os.getpgid(pid) == pgid and not _is_zombie(pid):
                members.append(pid)
        except (ProcessLookupError, psutil.NoSuchProcess):
            continue
    return members


def _is_zombie(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.AccessDenied:
        return False


# --- the environment scan -------------------------------------------------------------------------


def find_run_processes(run_id: str, runs_dir: Path | None = None) -> list[psutil.Process]:
    """Every live process whose environment has `TASKHUB_RUN_ID=<run_id>`, except us and our ancestors.

    Run ids are unique only within one database: with `runs_dir` (the home's `data/runs`), a process
    must also carry `TASKHUB_RUN_DIR=<runs_dir>/<run_id>`, so another TaskHub home's run `r-5` on
    the same machine is never touched.

    One pass over /proc. Reading each `/proc/<pid>/environ` is the cost, so the raw bytes are
    searched first (~4x faster than psutil parsing every environment) and only candidates are
    confirmed with psutil's `environ()`. Kernel threads and zombies have an empty or unreadable
    environment and fall out at the first read. Processes we may not read (another user's, when
    not root) are skipped.
    """
    needle = f"{RUN_ID_ENV}={run_id}\0".encode()
    want_dir = None if runs_dir is None else str(runs_dir / run_id)
    protected = _protected_pids()
    found = []
    for pid in psutil.pids():
        if pid in protected:
            continue
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                raw = f.read()
        except OSError:  # gone, a zombie (ESRCH), or not ours to read
            continue
        if not (raw.startswith(needle) or b"\0" + needle in raw):
            continue
        try:
            proc = psutil.Process(pid)  # captures the create time: the identity we check later
            env = proc.environ()
            if env.get(RUN_ID_ENV) == run_id and (want_dir is None or env.get(RUN_DIR_ENV) == want_dir):
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied):  # ZombieProcess is a NoSuchProcess
            continue
    return found


def _protected_pids() -> set[int]:
    """Never signal ourselves, whoever supervises us (TaskHub may itself run as a task), or init."""
    protected = {1, os.getpid()}
    pid = os.getppid()
    while pid > 1 and pid not in protected:  # psutil's parents() reads every /proc/<pid>/stat
        protected.add(pid)
        pid = _ppid(pid)
    return protected


def _ppid(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
        return int(stat.rsplit(b")", 1)[1].split()[1])  # after "(comm)": state, then ppid
    except (OSError, ValueError, IndexError):
        return 0


# --- a run's whole tree ---------------------------------------------------------------------------


async def kill_run_tree(
    run_id: str,
    pgid: int | None,
    leader: ProcessIdentity | None,
    grace_s: float,
    *,
    runs_dir: Path | None = None,
    clock: Clock = time.monotonic,
) -> list[int]:
    """Stop everything that belongs to a run; returns every pid signalled, sorted.

    `runs_dir` scopes the environment scan and the cgroup to one TaskHub home (see
    find_run_processes); without it, any process carrying the run id counts.

    SIGTERM goes at once to the process group (identity-checked against `leader`), to every
    process found by the environment scan and to the run's cgroup members (each identity-checked
    against the create time seen when found). After `grace_s`, survivors and anything forked since
    get SIGKILL (and the cgroup `cgroup.kill`); the scan repeats until nothing is left or
    TREE_SETTLE_S passes. The scans read all of /proc, so they run in a thread.
    """
    cgroup = RunCgroup.open(run_id, runs_dir)
    group = None
    if pgid is not None:
        group = asyncio.ensure_future(terminate_group(pgid, leader, grace_s, clock=clock))
    killed: set[int] = set()
    try:
        targets = await _find_targets(run_id, runs_dir, cgroup)
        killed.update(_signal_each(targets, signal.SIGTERM))
        await _wait(lambda: not any(t.matches() for t in targets), grace_s, clock)
        if group is not None:
            killed.update(await group)
    finally:
        if group is not None and not group.done():
            group.cancel()
    # Escalate: whatever still carries the run (survivors, late forks) gets SIGKILL, until none.
    deadline = clock() + TREE_SETTLE_S
    while True:
        if cgroup is not None:
            cgroup.kill()
        targets = await _find_targets(run_id, runs_dir, cgroup)
        if not targets:
            break
        killed.update(_signal_each(targets, signal.SIGKILL))
        if clock() >= deadline:
            logger.warning("kill.tree.survivors run_id=%s pids=%s", run_id, sorted(t.pid for t in targets))
            break
        await asyncio.sleep(POLL_S)
    if cgroup is not None:
        await _wait(lambda: not cgroup.populated(), KILL_SETTLE_S, clock)
        cgroup.remove()
    if killed:
        logger.info("kill.tree run_id=%s pgid=%s killed=%s", run_id, pgid, sorted(killed))
    return sorted(killed)


async def _find_targets(run_id: str, runs_dir: Path | None, cgroup: RunCgroup | None) -> list[ProcessIdentity]:
    procs = await asyncio.to_thread(find_run_processes, run_id, runs_dir)
    targets = {p.pid: ProcessIdentity(p.pid, p.create_time()) for p in procs}
    if cgroup is not None:
        protected = _protected_pids()
        for pid in cgroup.pids():
            if pid not in targets and pid not in protected:
                identity = ProcessIdentity.of(pid)
                if identity is not None:
                    targets[pid] = identity
    return list(targets.values())


def _signal_each(targets: Iterable[ProcessIdentity], sig: signal.Signals) -> list[int]:
    return [t.pid for t in targets if _signal_identity(t, sig)]


def _signal_identity(target: ProcessIdentity, sig: signal.Signals) -> bool:
    """Signal `target` only if its pid still is that process; True if the signal was delivered.

    A pidfd pins the process, so the check and the signal cannot straddle a pid reuse.
    """
    try:
        pidfd = os.pidfd_open(target.pid)
    except ProcessLookupError:
        return False
    except OSError:
        pidfd = -1  # no pidfd support: fall back to a plain kill right after the check
    try:
        if target.reused():
            logger.warning(
                "kill.identity_mismatch pid=%s recorded_create_time=%s: pid reused, not signalled",
                target.pid,
                target.create_time,
            )
            return False
        if pidfd >= 0:
            signal.pidfd_send_signal(pidfd, sig)
        else:
            os.kill(target.pid, sig)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        logger.warning("kill.denied pid=%s signal=%s", target.pid, sig.name)
        return False
    finally:
        if pidfd >= 0:
            os.close(pidfd)


async def _wait(done: Callable[[], bool], timeout_s: float, clock: Clock) -> bool:
    """Poll `done` until it is true (True) or `timeout_s` passes (False)."""
    deadline = clock() + timeout_s
    while not done():
        if clock() >= deadline:
            return False
        await asyncio.sleep(POLL_S)
    return True


__all__ = [
    "ContainmentLevel",
    "RunCgroup",
    "containment_level",
    "find_run_processes",
    "kill_run_tree",
    "terminate_group",
]
