"""Real processes in tests: unique run ids, an independent psutil oracle, and cleanup of everything.

Every test that starts a process registers it with a `Janitor`, whose cleanup (run from a
fixture) SIGKILLs whatever is left, so a failing test never leaks processes into the next.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import uuid

import psutil

from taskhub.runtime.process import Child

RUN_ID_ENV = "TASKHUB_RUN_ID"


def new_run_id() -> str:
    return f"r-test{uuid.uuid4().hex[:16]}"


def processes_with_run_id(run_id: str) -> list[psutil.Process]:
    """Live processes whose environment carries `TASKHUB_RUN_ID=run_id`, found the plain psutil way.

    Deliberately independent of `taskhub.runtime.killing.find_run_processes`, which it checks.
    """
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.pid != os.getpid() and proc.environ().get(RUN_ID_ENV) == run_id:
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied):  # includes zombies
            continue
    return found


def is_alive(pid: int) -> bool:
    """True if `pid` exists and is not a zombie."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


class Janitor:
    """Remembers what a test started and kills all of it at teardown."""

    def __init__(self) -> None:
        self.run_ids: list[str] = []
        self.pids: list[tuple[int, float]] = []
        self.processes: list[Child] = []

    def run_id(self) -> str:
        run_id = new_run_id()
        self.run_ids.append(run_id)
        return run_id

    def track(self, process: Child) -> Child:
        self.processes.append(process)
        self.track_pid(process.pid)
        return process

    def track_pid(self, pid: int) -> None:
        with contextlib.suppress(psutil.NoSuchProcess):
            self.pids.append((pid, psutil.Process(pid).create_time()))

    async def cleanup(self) -> None:
        for run_id in self.run_ids:
            for proc in processes_with_run_id(run_id):
                with contextlib.suppress(psutil.NoSuchProcess):
                    proc.kill()  # psutil checks the pid was not reused
        for pid, create_time in self.pids:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc = psutil.Process(pid)
                if abs(proc.create_time() - create_time) < 0.01:
                    os.kill(pid, signal.SIGKILL)
        for process in self.processes:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await asyncio.wait_for(process.wait(), timeout=10)
