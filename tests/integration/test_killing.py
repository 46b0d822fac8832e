"""Stopping real process trees: groups, setsid grandchildren, SIGTERM-proof processes, identity checks."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from taskhub.runtime.killing import (
    RunCgroup,
    containment_level,
    find_run_processes,
    kill_run_tree,
    terminate_group,
)
from taskhub.runtime.process import ProcessIdentity, Spawned, child_env, default_python_bin_dir, spawn
from tests.helpers.processes import Janitor, is_alive, processes_with_run_id
from tests.helpers.waiting import wait_until, wait_until_async

TREE = str(Path(__file__).parents[1] / "helpers" / "tree.py")
PY = sys.executable


@pytest.fixture
async def janitor() -> AsyncIterator[Janitor]:
    j = Janitor()
    yield j
    await j.cleanup()


@dataclass(frozen=True)
class Tree:
    run_id: str
    spawned: Spawned
    pids: dict[str, int]  # role -> pid
    sids: dict[str, int]


async def start(janitor: Janitor, tmp_path: Path, argv: list[str], run_id: str | None = None) -> Spawned:
    env = child_env(
        dict(os.environ),
        run_id=run_id or janitor.run_id(),
        attempt=1,
        run_dir=tmp_path,
        artifacts_dir=tmp_path,
        python_bin_dir=default_python_bin_dir(),
    )
    spawned = await spawn(
        argv, cwd=tmp_path, env=env, stdout_path=tmp_path / "stdout.log", stderr_path=tmp_path / "stderr.log"
    )
    janitor.track(spawned.process)
    return spawned


async def start_tree(janitor: Janitor, tmp_path: Path, *flags: str) -> Tree:
    run_id = janitor.run_id()
    pids_file = tmp_path / f"{run_id}.pids"
    spawned = await start(janitor, tmp_path, [PY, TREE, str(pids_file), *flags], run_id=run_id)

    def recorded() -> list[list[str]] | None:
        lines = pids_file.read_text().split("\n")[:-1] if pids_file.exists() else []
        return [line.split() for line in lines] if len(lines) == 3 else None

    rows = await wait_until_async(recorded, timeout=15, message="the tree to record its three pids")
    for _, pid, _, _ in rows:
        janitor.track_pid(int(pid))
    pids = {role: int(pid) for role, pid, _, _ in rows}
    sids = {role: int(sid) for role, _, _, sid in rows}
    assert pids["parent"] == spawned.pid
    assert sids["grandchild"] == pids["grandchild"] != spawned.pgid  # it really left the group
    return Tree(run_id, spawned, pids, sids)


async def exit_code(spawned: Spawned) -> int:
    return await asyncio.wait_for(spawned.process.wait(), timeout=15)


async def stays_alive(spawned: Spawned, for_s: float) -> bool:
    """True if the process does not exit within `for_s` (a bounded wait on its exit, not a sleep)."""
    try:
        await asyncio.wait_for(asyncio.shield(spawned.process.wait()), timeout=for_s)
    except asyncio.TimeoutError:
        return True
    return False


# --- process groups -------------------------------------------------------------------------------


async def test_terminate_group_stops_the_group_but_not_a_setsid_grandchild(janitor: Janitor, tmp_path: Path) -> None:
    tree = await start_tree(janitor, tmp_path)
    signalled = await terminate_group(tree.spawned.pgid, tree.spawned.identity, grace_s=5.0)
    assert sorted(signalled) == sorted([tree.pids["parent"], tree.pids["child"]])
    assert await exit_code(tree.spawned) == -signal.SIGTERM
    await wait_until_async(lambda: not is_alive(tree.pids["child"]), timeout=5)
    assert is_alive(tree.pids["grandchild"])  # why the environment scan exists


async def test_sigterm_is_enough_when_the_process_obeys(janitor: Janitor, tmp_path: Path) -> None:
    spawned = await start(janitor, tmp_path, ["sleep", "60"])
    began = time.monotonic()
    assert await terminate_group(spawned.pgid, spawned.identity, grace_s=30.0) == [spawned.pid]
    assert time.monotonic() - began < 5.0  # did not sit out the grace
    assert await exit_code(spawned) == -signal.SIGTERM


async def test_a_process_ignoring_sigterm_is_killed_after_the_grace(janitor: Janitor, tmp_path: Path) -> None:
    tree = await start_tree(janitor, tmp_path, "--ignore-term")
    began = time.monotonic()
    signalled = await terminate_group(tree.spawned.pgid, tree.spawned.identity, grace_s=0.5)
    assert time.monotonic() - began >= 0.5
    assert sorted(signalled) == sorted([tree.pids["parent"], tree.pids["child"]])
    assert await exit_code(tree.spawned) == -signal.SIGKILL
    await wait_until_async(lambda: not is_alive(tree.pids["child"]), timeout=5)


async def test_the_grace_period_follows_the_injected_clock(janitor: Janitor, tmp_path: Path) -> None:
    spawned = await start(janitor, tmp_path, [PY, "-c", "import signal; signal.signal(15, 1); signal.pause()"])
    ticks = iter(range(0, 10**6, 1000))  # every look at the clock is 1000 s later
    began = time.monotonic()

    def fake_clock() -> float:
        return float(next(ticks))

    # A SIGTERM sent before Python installs its handler would end it early; wait for the handler.
    await wait_until_async(lambda: _ignores_sigterm(spawned.pid), timeout=10)
    assert await terminate_group(spawned.pgid, spawned.identity, grace_s=3600.0, clock=fake_clock)
    assert await exit_code(spawned) == -signal.SIGKILL
    assert time.monotonic() - began < 10.0


def _ignores_sigterm(pid: int) -> bool:
    with open(f"/proc/{pid}/status") as f:
        fields = dict(line.split(":", 1) for line in f)
    return bool(int(fields["SigIgn"], 16) & (1 << (signal.SIGTERM - 1)))


async def test_a_group_already_gone_is_not_an_error(janitor: Janitor, tmp_path: Path) -> None:
    spawned = await start(janitor, tmp_path, ["true"])
    assert await exit_code(spawned) == 0
    assert await terminate_group(spawned.pgid, spawned.identity, grace_s=1.0) == []


async def test_a_reused_pid_is_never_signalled(
    janitor: Janitor, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # An unrelated process now holds the recorded pid: its create time is not the recorded one.
    bystander = await spawn(
        ["sleep", "60"],
        cwd=tmp_path,
        env=dict(os.environ),
        stdout_path=tmp_path / "bystander.out",
        stderr_path=tmp_path / "bystander.err",
    )
    janitor.track(bystander.process)
    recorded = ProcessIdentity(bystander.pid, bystander.create_time - 100.0)
    assert await terminate_group(bystander.pgid, recorded, grace_s=0.2) == []
    run_id = janitor.run_id()
    assert await kill_run_tree(run_id, bystander.pgid, recorded, grace_s=0.2) == []
    assert await stays_alive(bystander, for_s=0.5)
    assert is_alive(bystander.pid)
    assert "kill.identity_mismatch" in caplog.text  # and it says so


async def test_our_own_group_is_refused(janitor: Janitor) -> None:
    assert await terminate_group(os.getpgrp(), None, grace_s=0.1) == []


# --- the environment scan and whole trees ---------------------------------------------------------


async def test_find_run_processes_finds_the_whole_tree_and_only_it(janitor: Janitor, tmp_path: Path) -> None:
    tree = await start_tree(janitor, tmp_path)
    other = await start(janitor, tmp_path, ["sleep", "60"], run_id=tree.run_id + "x")  # a longer id
    found = {p.pid for p in find_run_processes(tree.run_id)}
    assert found == set(tree.pids.values())
    assert other.pid not in found
    assert find_run_processes(janitor.run_id()) == []


async def test_kill_run_tree_leaves_nothing_with_the_run_id(janitor: Janitor, tmp_path: Path) -> None:
    tree = await start_tree(janitor, tmp_path)
    killed = await kill_run_tree(tree.run_id, tree.spawned.pgid, tree.spawned.identity, grace_s=2.0)
    assert set(tree.pids.values()) <= set(killed)
    assert killed == sorted(set(killed))
    assert processes_with_run_id(tree.run_id) == []
    assert not any(is_alive(pid) for pid in tree.pids.values())
    assert await exit_code(tree.spawned) == -signal.SIGTERM


async def test_kill_run_tree_kills_sigterm_proof_orphans(janitor: Janitor, tmp_path: Path) -> None:
    tree = await start_tree(janitor, tmp_path, "--ignore-term", "--orphan")
    await wait_until_async(lambda: not is_alive(tree.pids["child"]), timeout=5)  # the double fork is done
    began = time.monotonic()
    killed = await kill_run_tree(tree.run_id, tree.spawned.pgid, tree.spawned.identity, grace_s=0.5)
    assert time.monotonic() - began >= 0.5
    assert {tree.pids["parent"], tree.pids["grandchild"]} <= set(killed)
    assert processes_with_run_id(tree.run_id) == []
    assert not is_alive(tree.pids["grandchild"])
    assert await exit_code(tree.spawned) == -signal.SIGKILL


async def test_kill_run_tree_without_a_group_still_scans(janitor: Janitor, tmp_path: Path) -> None:
    # The reaper may know only the run id (the worker died before recording `started`).
    tree = await start_tree(janitor, tmp_path)
    killed = await kill_run_tree(tree.run_id, None, None, grace_s=2.0)
    assert set(killed) == set(tree.pids.values())
    assert processes_with_run_id(tree.run_id) == []


async def test_kill_run_tree_of_nothing_returns_at_once(janitor: Janitor) -> None:
    began = time.monotonic()
    assert await kill_run_tree(janitor.run_id(), None, None, grace_s=30.0) == []
    assert time.monotonic() - began < 5.0


# --- containment level and cgroups ----------------------------------------------------------------


def test_containment_level_is_known() -> None:
    assert containment_level() in ("cgroup", "env-scan", "process-group")


@pytest.fixture
def cgroups() -> Iterator[list[RunCgroup]]:
    made: list[RunCgroup] = []
    yield made
    for cgroup in made:
        cgroup.kill()
        wait_until(_emptied(cgroup), timeout=5)
        cgroup.remove()


def _emptied(cgroup: RunCgroup) -> Callable[[], bool]:
    return lambda: not cgroup.populated()


async def test_run_cgroup_kills_everything_in_it(janitor: Janitor, tmp_path: Path, cgroups: list[RunCgroup]) -> None:
    run_id = janitor.run_id()
    cgroup = RunCgroup.create(run_id)
    if containment_level() != "cgroup":
        assert cgroup is None  # best effort: no cgroup, no error
        return
    assert cgroup is not None
    cgroups.append(cgroup)
    assert RunCgroup.open(run_id) == cgroup
    spawned = await start(janitor, tmp_path, ["sleep", "60"], run_id=run_id)
    assert cgroup.add(spawned.pid)
    assert cgroup.pids() == [spawned.pid]
    assert cgroup.populated()
    assert not cgroup.remove()  # not while it has processes
    assert cgroup.kill()
    assert await exit_code(spawned) == -signal.SIGKILL
    await wait_until_async(lambda: not cgroup.populated(), timeout=5)
    assert cgroup.remove()
    assert RunCgroup.open(run_id) is None


def test_run_cgroup_refuses_names_that_climb_out() -> None:
    assert RunCgroup.create("../escape") is None
    assert RunCgroup.open("..") is None


async def test_kill_run_tree_uses_the_cgroup_for_processes_that_hid(
    janitor: Janitor, tmp_path: Path, cgroups: list[RunCgroup]
) -> None:
    """A grandchild that left the group and exec'd with an empty environment: only a cgroup sees it."""
    run_id = janitor.run_id()
    cgroup = RunCgroup.create(run_id)
    if cgroup is None:
        assert containment_level() != "cgroup"
        return
    cgroups.append(cgroup)
    pid_file = tmp_path / "hidden.pid"
    ready = tmp_path / "ready"
    code = (
        "import os, signal, sys\n"
        "signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})\n"
        f"open({str(ready)!r}, 'w').close()\n"
        "signal.sigwait({signal.SIGUSR1})\n"  # until the test has put us in the cgroup
        "if os.fork() == 0:\n"
        "    os.setsid()\n"
        f"    open({str(pid_file)!r}, 'w').write(str(os.getpid()))\n"
        "    os.execve('/bin/sleep', ['sleep', '60'], {})\n"
        "signal.pause()\n"
    )
    spawned = await start(janitor, tmp_path, [PY, "-c", code], run_id=run_id)
    await wait_until_async(ready.exists, timeout=10)
    assert cgroup.add(spawned.pid)
    os.kill(spawned.pid, signal.SIGUSR1)
    hidden = int(await wait_until_async(lambda: pid_file.exists() and pid_file.read_text(), timeout=10))
    janitor.track_pid(hidden)
    await wait_until_async(lambda: _exe(hidden) == "/bin/sleep" or _exe(hidden) == "/usr/bin/sleep", timeout=10)
    assert hidden not in {p.pid for p in find_run_processes(run_id)}  # invisible to the scan
    killed = await kill_run_tree(run_id, spawned.pgid, spawned.identity, grace_s=1.0)
    assert {spawned.pid, hidden} <= set(killed)
    await wait_until_async(lambda: not is_alive(hidden), timeout=5)
    assert RunCgroup.open(run_id) is None  # removed once empty
    cgroups.clear()


def _exe(pid: int) -> str:
    try:
        return os.path.realpath(f"/proc/{pid}/exe")
    except OSError:
        return ""


async def test_kill_run_tree_scoped_to_one_home_spares_the_same_run_id_elsewhere(tmp_path: Path) -> None:
    """Run ids repeat across TaskHub homes: a home's kill must never reach another home's `r-1`."""
    import subprocess
    import uuid

    run_id = f"r-{uuid.uuid4().hex[:8]}"
    mine, theirs = tmp_path / "mine" / "runs", tmp_path / "theirs" / "runs"
    procs = []
    for runs_dir in (mine, theirs):
        env = {**os.environ, "TASKHUB_RUN_ID": run_id, "TASKHUB_RUN_DIR": str(runs_dir / run_id)}
        procs.append(subprocess.Popen(["sleep", "60"], env=env, start_new_session=True))
    try:
        wait_until(lambda: len(find_run_processes(run_id)) == 2, timeout=10)
        killed = await kill_run_tree(run_id, None, None, grace_s=1.0, runs_dir=mine)
        assert killed == [procs[0].pid]
        assert procs[0].wait(timeout=5) is not None
        assert procs[1].poll() is None, "the other home's process must survive"
        assert [p.pid for p in find_run_processes(run_id, theirs)] == [procs[1].pid]
    finally:
        for p in procs:
            p.kill()
            p.wait(timeout=5)
