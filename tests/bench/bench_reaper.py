"""How fast a dead worker's run is failed and its whole process tree is gone.

Real `taskhub worker` and `taskhub reaper` processes in a throwaway home (lease 3 s, heartbeat 1 s),
a task whose grandchild calls setsid() (only the env scan finds it). Three ways a worker vanishes:

- `kill -9`, dead-worker fast path: the reaper sees the worker's pid gone (target: under 2 s);
- `kill -9` of a worker on "another host": its pid cannot be checked from here, so only its lease
  tells (a simulated worker that records a foreign host name; target: lease + 1 s);
- `SIGSTOP` of a real worker: alive but silent, lease path again (target: lease + 1 s).

The lease-path cases strike right after a heartbeat landed: the worst case, a whole lease to wait.

    uv run python tests/bench/bench_reaper.py [--repeat N]
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # a standalone script: make `tests` importable

from taskhub.events.store import EventStore
from taskhub.projections.runs import RunView
from taskhub.projections.tables import load_run
from tests.e2e.conftest import Hub, make_home
from tests.helpers.waiting import wait_until

LEASE_S = 3.0
HEARTBEAT_S = 1.0
POLL_S = 0.005

# A worker that claims one run and heartbeats it, but says it lives on another host.
REMOTE_WORKER = r"""
import asyncio, os, socket, sys
from pathlib import Path
import psutil
from taskhub.events.clock import iso
from taskhub.events.log import Log
from taskhub.events.types import Heartbeat, Started, WorkerStarted
from taskhub.projections import ops
from taskhub.runtime.process import child_env, spawn

async def main(db: str, home: str, lease_s: float, heartbeat_s: float) -> None:
    log = await Log.open(db)
    me = psutil.Process()
    hello = WorkerStarted(pid=me.pid, host="another-host", concurrency=1, create_time=me.create_time())
    await log.run(lambda txn: ops.append_worker_event(txn, "w-remote", hello))
    [view] = await log.run(lambda txn: ops.claim(txn, "w-remote", 1, lease_s))
    run_dir = Path(home) / "data" / "runs" / view.run_id
    (run_dir / "artifacts").mkdir(parents=True, exist_ok=True)
    env = child_env(os.environ, run_id=view.run_id, attempt=view.attempt, run_dir=run_dir,
                    artifacts_dir=run_dir / "artifacts", python_bin_dir=os.path.dirname(sys.executable))
    argv = ["python3", "tasks/scripts/orphan_tree.py", "600"]
    sp = await spawn(argv, cwd=home, env=env, stdout_path=run_dir / "stdout.log", stderr_path=run_dir / "stderr.log")
    started = Started(view.fence, sp.pid, sp.pgid, sp.create_time, socket.gethostname(), argv)
    await log.run(lambda txn: ops.append_run_events(txn, view.run_id, [started], "w-remote"))
    while True:
        await asyncio.sleep(heartbeat_s)
        beat = lambda txn: ops.append_run_events(
            txn, view.run_id, [Heartbeat(fence=view.fence, lease_expires_at=iso(txn.now + lease_s))], "w-remote")
        await log.run(beat)

asyncio.run(main(sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])))
"""


def tree_pids(hub: Hub, run_id: str) -> list[int]:
    path = hub.home / "data" / "runs" / run_id / "pids"

    def read() -> list[int] | None:
        lines = path.read_text().splitlines() if path.exists() else []
        return [int(line.split()[1]) for line in lines] if len(lines) >= 3 else None

    return wait_until(read, timeout=30, message=f"{run_id}'s tree")


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def view(hub: Hub, run_id: str) -> RunView:
    """Read the run read-only: a writable open touches the WAL, which would wake the reaper early."""
    store = EventStore(hub.db_path, readonly=True)
    try:
        found = load_run(store.conn, run_id)
    finally:
        store.close()
    assert found is not None
    return found


def after_heartbeat(hub: Hub, run_id: str) -> None:
    """Return just after a new heartbeat of the run landed: the lease is as fresh as it gets."""
    seen = view(hub, run_id).lease_expires_at
    wait_until(lambda: view(hub, run_id).lease_expires_at != seen, timeout=10, interval=POLL_S)


def measure(hub: Hub, run_id: str, pids: list[int], strike: Callable[[], None]) -> tuple[float, float]:
    """Strike, then time until the run is failed and until none of its pids is alive."""
    struck = time.monotonic()
    strike()
    failed_at = gone_at = None
    deadline = struck + LEASE_S + 15
    while failed_at is None or gone_at is None:
        now = time.monotonic()
        if failed_at is None and view(hub, run_id).status == "failed":
            failed_at = now
        if gone_at is None and not any(alive(p) for p in pids):
            gone_at = now
        if now > deadline:
            raise RuntimeError(f"{run_id}: not failed and gone within {deadline - struck:.0f}s")
        time.sleep(POLL_S)  # poll interval, bounded by the deadline above
    return failed_at - struck, gone_at - struck


def fast_path(hub: Hub, i: int) -> tuple[float, float]:
    worker = hub.worker(f"w-fast-{i}")
    [run_id] = hub.submit("orphan_tree")
    pids = tree_pids(hub, run_id)
    return measure(hub, run_id, pids, worker.kill9)


def remote_lease(hub: Hub, i: int) -> tuple[float, float]:
    [run_id] = hub.submit("orphan_tree")
    args = [sys.executable, "-c", REMOTE_WORKER, str(hub.db_path), str(hub.home), str(LEASE_S), str(HEARTBEAT_S)]
    proc = subprocess.Popen(args, cwd=hub.home, env=hub.env, start_new_session=True)
    try:
        pids = tree_pids(hub, run_id)
        after_heartbeat(hub, run_id)

        def kill() -> None:
            proc.kill()
            proc.wait()

        return measure(hub, run_id, pids, kill)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def stopped_lease(hub: Hub, i: int) -> tuple[float, float]:
    worker = hub.worker(f"w-stop-{i}")
    [run_id] = hub.submit("orphan_tree")
    pids = tree_pids(hub, run_id)
    after_heartbeat(hub, run_id)
    try:
        return measure(hub, run_id, pids, lambda: worker.signal(signal.SIGSTOP))
    finally:
        worker.signal(signal.SIGCONT)
        worker.kill9()


CASES: list[tuple[str, Callable[[Hub, int], tuple[float, float]], float]] = [
    ("kill -9, dead-worker fast path", fast_path, 2.0),
    ("kill -9, worker on another host (lease only)", remote_lease, LEASE_S + 1),
    ("SIGSTOP, worker alive but silent (lease only)", stopped_lease, LEASE_S + 1),
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5, help="runs per case (default 5)")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-reaper-") as tmp:
        env = {"TASKHUB_LEASE_S": str(LEASE_S), "TASKHUB_HEARTBEAT_S": str(HEARTBEAT_S), "TASKHUB_KILL_GRACE_S": "1"}
        hub = Hub(make_home(Path(tmp)), env)
        try:
            hub.reaper()
            for name, case, target in CASES:
                samples = [case(hub, i) for i in range(args.repeat)]
                failed = [s[0] for s in samples]
                gone = [s[1] for s in samples]
                worst = max(max(failed), max(gone))
                rows.append(
                    (name, statistics.median(failed), max(failed), statistics.median(gone), max(gone), target, worst)
                )
            problems = hub.audit()
        finally:
            hub.cleanup()
    print(f"lease {LEASE_S:g} s, heartbeat {HEARTBEAT_S:g} s, {args.repeat} runs per case, {os.cpu_count()} CPUs")
    print()
    print("| case | failed (median) | failed (max) | tree gone (median) | tree gone (max) | target | met |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | --- |")
    for name, f_med, f_max, g_med, g_max, target, worst in rows:
        met = "yes" if worst < target else "NO"
        print(f"| {name} | {f_med:.2f} s | {f_max:.2f} s | {g_med:.2f} s | {g_max:.2f} s | < {target:g} s | {met} |")
    if problems:
        print("\naudit found problems:\n" + "\n".join(problems))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
