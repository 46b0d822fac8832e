"""Shared end-to-end fixtures: a throwaway TaskHub home and the real services running in it.

    def test_something(hub: Hub) -> None:
        worker = hub.worker("w1", concurrency=2)
        hub.reaper()
        [run_id] = hub.submit("sleep", {"seconds": 1})
        hub.wait_status(run_id, "succeeded", timeout=10)
        hub.assert_clean()

Every service is `python -m taskhub ...` in its own session (so the fixture can kill its whole
group), with its output in `<home>/logs/<name>.log`. The home gets a copy of the repo's `tasks/`
plus the e2e task definitions under `tests/e2e/tasks/` (helper scripts in its `scripts/`); other
suites may pass their own folders to `make_home`. Leases are short (TASKHUB_LEASE_S=3,
TASKHUB_HEARTBEAT_S=1), overridable per test. At teardown everything the test started is killed:
services, and any process still carrying one of the test's run ids.

Note: run ids (`r-<seq>`) are unique per database, not per machine; the env scan of two homes
running at once could confuse their runs. Tests here run one home at a time.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import msgspec
import psutil
import pytest

from taskhub.events.store import EventStore
from taskhub.events.types import Envelope
from taskhub.projections import ops
from taskhub.projections import transitions as t
from taskhub.projections.audit import audit
from taskhub.projections.decisions import decide_submit
from taskhub.projections.runs import RunView
from taskhub.projections.tables import load_all_runs, load_run
from tests.helpers.waiting import wait_until

REPO = Path(__file__).resolve().parents[2]
E2E_TASKS = Path(__file__).resolve().parent / "tasks"
DEFAULT_ENV = {
    "TASKHUB_LEASE_S": "3",
    "TASKHUB_HEARTBEAT_S": "1",
    "TASKHUB_KILL_GRACE_S": "1",
    "TASKHUB_DRAIN_S": "2",
}
STOP_TIMEOUT_S = 15.0


def make_home(root: Path, task_dirs: Sequence[Path] = (E2E_TASKS,)) -> Path:
    """A fresh TaskHub home: the repo's tasks plus each folder's `*.py` and `scripts/*`."""
    home = root / "home"
    shutil.copytree(REPO / "tasks", home / "tasks", ignore=shutil.ignore_patterns("__pycache__"))
    scripts = home / "tasks" / "scripts"
    scripts.mkdir(exist_ok=True)
    for folder in task_dirs:
        for path in folder.glob("*.py"):
            if path.name != "__init__.py":
                shutil.copy(path, home / "tasks" / path.name)
        if (folder / "scripts").is_dir():
            for path in (folder / "scripts").iterdir():
                if path.is_file():
                    shutil.copy(path, scripts / path.name)
    (home / "logs").mkdir()
    return home


class Service:
    """One `python -m taskhub ...` process, leader of its own process group."""

    def __init__(self, name: str, popen: subprocess.Popen[bytes], log_path: Path) -> None:
        self.name = name
        self.popen = popen
        self.log_path = log_path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def signal(self, sig: signal.Signals) -> None:
        if self.alive():
            os.kill(self.pid, sig)

    def kill9(self) -> None:
        """SIGKILL the service process only (not its group): its tasks are in their own sessions anyway."""
        self.signal(signal.SIGKILL)
        self.popen.wait(timeout=STOP_TIMEOUT_S)

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> int:
        """SIGTERM and wait; returns the exit code."""
        self.signal(signal.SIGTERM)
        return self.popen.wait(timeout=timeout)

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def destroy(self) -> None:
        if self.alive():
            for sig in (signal.SIGCONT, signal.SIGKILL):
                try:
                    os.killpg(self.pid, sig)
                except (ProcessLookupError, PermissionError):
                    pass
        try:
            self.popen.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            pass


class Hub:
    """A home, the services started in it, and direct access to its log for checks."""

    def __init__(self, home: Path, env: Mapping[str, str] | None = None) -> None:
        self.home = home
        base = {k: v for k, v in os.environ.items() if not k.startswith("TASKHUB_")}
        self.env: dict[str, str] = {**base, **DEFAULT_ENV, "TASKHUB_HOME": str(home), **(env or {})}
        self.db_path = home / "data" / "taskhub.db"
        self.services: list[Service] = []
        self._names: dict[str, int] = {}

    # -- services -----------------------------------------------------------------------------

    def start(self, *args: str, name: str | None = None, env: Mapping[str, str] | None = None) -> Service:
        name = name or args[0]
        n = self._names[name] = self._names.get(name, 0) + 1
        log_path = self.home / "logs" / (f"{name}.log" if n == 1 else f"{name}.{n}.log")
        with open(log_path, "ab") as out:
            popen = subprocess.Popen(
                [sys.executable, "-m", "taskhub", *args],
                cwd=self.home,
                env={**self.env, **(env or {})},
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        service = Service(name, popen, log_path)
        self.services.append(service)
        return service

    def worker(self, worker_id: str, concurrency: int = 1, env: Mapping[str, str] | None = None) -> Service:
        """Start a worker and wait until its `worker_started` is in the log."""
        service = self.start("worker", "--id", worker_id, "--concurrency", str(concurrency), name=worker_id, env=env)
        wait_until(
            lambda: self._worker_pid(worker_id) == service.pid or not service.alive(),
            timeout=30,
            message=f"worker {worker_id} to start",
        )
        assert service.alive(), service.output()
        return service

    def reaper(self, name: str = "reaper", env: Mapping[str, str] | None = None) -> Service:
        """Start a reaper and wait until it logs that it is running."""
        service = self.start("reaper", name=name, env=env)
        wait_until(
            lambda: "reaper.started" in service.output() or not service.alive(),
            timeout=30,
            message=f"{name} to start",
        )
        assert service.alive(), service.output()
        return service

    def cli(self, *args: str, timeout: float = 60, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [sys.executable, "-m", "taskhub", *args],
            cwd=self.home,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and done.returncode != 0:
            raise AssertionError(f"taskhub {' '.join(args)} exited {done.returncode}: {done.stderr}")
        return done

    # -- the log --------------------------------------------------------------------------------

    def store(self) -> EventStore:
        return EventStore(self.db_path)

    def submit(
        self, task_id: str, params: dict[str, Any] | None = None, n: int = 1, max_attempts: int = 1
    ) -> list[str]:
        """Submit `n` runs in one transaction (as the API would, minus HTTP); returns their ids."""
        store = self.store()
        try:
            with store.transaction(time.time()) as txn:
                event = decide_submit(task_id, params or {}, max_attempts=max_attempts)
                return [ops.submit(txn, event)[0].run_id for _ in range(n)]
        finally:
            store.close()

    def run(self, run_id: str) -> RunView:
        store = self.store()
        try:
            view = load_run(store.conn, run_id)
        finally:
            store.close()
        assert view is not None, f"no run {run_id}"
        return view

    def runs(self) -> dict[str, RunView]:
        if not self.db_path.exists():
            return {}
        store = self.store()
        try:
            return load_all_runs(store.conn)
        finally:
            store.close()

    def events(self, run_id: str | None = None, types: Sequence[str] | None = None) -> list[Envelope]:
        store = self.store()
        try:
            return store.read(limit=10**7, run_id=run_id, types=types)
        finally:
            store.close()

    def wait_status(self, run_id: str, *statuses: str, timeout: float) -> RunView:
        def reached() -> RunView | None:
            view = self.run(run_id)
            return view if view.status in statuses else None

        return wait_until(
            reached,
            timeout=timeout,
            interval=0.05,
            message=f"{run_id} to be {'/'.join(statuses)}",
        )

    def unfinished(self, run_ids: Sequence[str] | None = None) -> int:
        """How many of the runs (all by default) are not finished: one indexed count, no decoding."""
        store = self.store()
        try:
            if run_ids is None:
                row = store.conn.execute(
                    "SELECT count(*) FROM runs WHERE status NOT IN ('succeeded', 'failed', 'cancelled')"
                ).fetchone()
                return int(row[0])
            runs = load_all_runs(store.conn)
        finally:
            store.close()
        return sum(runs[r].status not in t.TERMINAL for r in run_ids)

    def wait_terminal(self, run_ids: Sequence[str], timeout: float) -> dict[str, RunView]:
        def done() -> dict[str, RunView] | None:
            runs = self.runs()
            return runs if all(runs[r].status in t.TERMINAL for r in run_ids) else None

        return wait_until(done, timeout=timeout, interval=0.1, message="every run to finish")

    def _worker_pid(self, worker_id: str) -> int | None:
        if not self.db_path.exists():
            return None
        store = self.store()
        try:
            row = store.conn.execute("SELECT view FROM workers WHERE worker_id = ?", (worker_id,)).fetchone()
        finally:
            store.close()
        if row is None:
            return None
        pid: int = msgspec.json.decode(row[0])["pid"]
        return pid

    # -- checks ---------------------------------------------------------------------------------

    def run_processes(self, run_ids: Sequence[str] | None = None) -> list[psutil.Process]:
        """Live processes of this home's runs (all of them by default): TASKHUB_RUN_ID is one of
        the runs' and TASKHUB_HOME is this home. One pass over /proc, however many runs."""
        ids = set(self.runs()) if run_ids is None else set(run_ids)
        home = str(self.home)
        found = []
        for proc in psutil.process_iter():
            try:
                env = proc.environ()
                ours = env.get("TASKHUB_RUN_ID") in ids and env.get("TASKHUB_HOME") == home
                if ours and proc.status() != psutil.STATUS_ZOMBIE:
                    found.append(proc)
            except psutil.Error:  # gone, a zombie, or not ours to read
                continue
        return found

    def audit(self) -> list[str]:
        store = self.store()
        try:
            return [str(v) for v in audit(store)]
        finally:
            store.close()

    def assert_clean(self, timeout: float = 10) -> None:
        """No process of any of this home's runs is left, and the log audits clean."""
        wait_until(lambda: not self.run_processes(), timeout=timeout, interval=0.1, message="run processes to end")
        assert self.audit() == []

    def cleanup(self) -> None:
        for service in self.services:
            service.destroy()
        for proc in self.run_processes():
            try:
                proc.kill()
            except psutil.Error:
                pass


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    h = Hub(make_home(tmp_path))
    try:
        yield h
    finally:
        h.cleanup()
