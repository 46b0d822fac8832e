"""Real workers on a real SQLite file, driven the way a user would: a TaskHub home in a tmp dir.

A `Hub` is one home (a copy of the repo's `tasks/` plus the test tasks of `worker_tasks/`) and a
sync `EventStore` on its database: tests submit through the log API and read results only from
events and projections. A `WorkerProcess` is `taskhub worker` as a child process (the CLI when it
works, else `run_worker` through `python -c`), stopped and cleaned up by the fixtures that start it.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import psutil

from taskhub.events.store import EventStore
from taskhub.events.types import Envelope
from taskhub.projections import ops
from taskhub.projections.decisions import decide_cancel, decide_reap, decide_submit
from taskhub.projections.runs import RunView
from taskhub.projections.tables import load_run
from taskhub.projections.transitions import TERMINAL
from taskhub.runtime.registry_loader import load_tasks
from tests.helpers.waiting import wait_until

REPO = Path(__file__).resolve().parents[2]
WORKER_TASKS = Path(__file__).resolve().parent / "worker_tasks"
TREE_SCRIPT = REPO / "tests" / "helpers" / "tree.py"

# Heartbeats every second (a refused one shows a stale fence within a test's patience), a lease
# roomy enough for a loaded machine, and a 1 s kill grace.
FAST_ENV = {
    "TASKHUB_LEASE_S": "10",
    "TASKHUB_HEARTBEAT_S": "1",
    "TASKHUB_KILL_GRACE_S": "1",
}
STOP_TIMEOUT_S = 15.0

T = TypeVar("T")

_RUN_PY = (
    "import sys; from taskhub.runtime.worker import run_worker; from taskhub.settings import load_settings; "
    "sys.exit(run_worker(load_settings(), int(sys.argv[1]), sys.argv[2]))"
)


@functools.cache
def cli_works() -> bool:
    """True once `python -m taskhub worker --help` answers (the CLI is being written alongside)."""
    try:
        done = subprocess.run(
            [sys.executable, "-m", "taskhub", "worker", "--help"],
            capture_output=True,
            timeout=30,
            cwd=REPO,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0 and b"--concurrency" in done.stdout


def worker_argv(concurrency: int, worker_id: str) -> list[str]:
    if cli_works():
        return [sys.executable, "-m", "taskhub", "worker", "--concurrency", str(concurrency), "--id", worker_id]
    return [sys.executable, "-c", _RUN_PY, str(concurrency), worker_id]


def make_home(home: Path) -> Path:
    """A TaskHub home: the repo's tasks, the test tasks, and tests/helpers/tree.py as a task script."""
    shutil.copytree(REPO / "tasks", home / "tasks", ignore=shutil.ignore_patterns("__pycache__"))
    for path in WORKER_TASKS.glob("*.py"):
        shutil.copy(path, home / "tasks" / path.name)
    for path in (WORKER_TASKS / "scripts").glob("*.py"):
        shutil.copy(path, home / "tasks" / "scripts" / path.name)
    shutil.copy(TREE_SCRIPT, home / "tasks" / "scripts" / "tree.py")
    (home / "data").mkdir()
    (home / "logs").mkdir()
    return home


class Hub:
    """One home and its database, seen from the test: submit, cancel, reap, and read back."""

    def __init__(self, home: Path, first_seq: int | None = None) -> None:
        """`first_seq`: where the log's numbering starts; random unless given.

        Run ids are `r-<seq>`, so homes that all start at 1 share run ids, and TaskHub finds a
        run's processes by run id (environment scan, cgroup name) machine-wide: a fresh home's
        `r-2` would meet every other fresh home's `r-2`, including those of test suites running
        beside this one. A random start keeps this home's runs apart; the test about homes sharing
        run ids passes 1.
        """
        self.home = home
        self.db_path = home / "data" / "taskhub.db"
        self.store = EventStore(self.db_path)
        self.workers: list[WorkerProcess] = []
        start = random.randrange(10**6, 10**9) if first_seq is None else first_seq
        if start > 1:
            with self.store.transaction(time.time()):
                self.store.conn.execute("INSERT INTO sqlite_sequence (name, seq) VALUES ('events', ?)", (start - 1,))

    # -- writing, through the log API --------------------------------------------------------

    def submit(self, task_id: str, params: Mapping[str, Any] | None = None, **kw: Any) -> str:
        return self.submit_many(task_id, [params or {}], **kw)[0]

    def submit_many(self, task_id: str, params_list: Iterable[Mapping[str, Any]], **kw: Any) -> list[str]:
        """Submit runs as the API does: the task's limits and version come from its current file."""
        loaded = load_tasks(self.home / "tasks").get(task_id)
        spec = loaded.spec
        events = [
            decide_submit(
                task_id,
                dict(params),
                max_attempts=spec.max_attempts,
                timeout_s=spec.timeout_s,
                task_version=loaded.version,
                **kw,
            )
            for params in params_list
        ]
        with self.store.transaction(time.time()) as txn:
            return [ops.submit(txn, event)[0].run_id for event in events]

    def cancel(self, run_id: str, reason: str = "test") -> None:
        with self.store.transaction(time.time()) as txn:
            ops.append_run_events(txn, run_id, decide_cancel(self.run(run_id), reason))

    def reap(self, run_id: str) -> RunView:
        """What a reaper would record, with the run's current fence, but killing nothing."""
        with self.store.transaction(time.time()) as txn:
            view = load_run(txn.conn, run_id)
            assert view is not None
            events = decide_reap(view, reason="lease_expired", killed_pids=[], now=txn.now)
            return ops.append_run_events(txn, run_id, events)

    # -- reading, from projections and events ------------------------------------------------

    def run(self, run_id: str) -> RunView:
        view = load_run(self.store.conn, run_id)
        assert view is not None, f"no run {run_id}"
        return view

    def events(self, run_id: str | None = None, types: list[str] | None = None) -> list[Envelope]:
        return self.store.read(after=0, limit=1_000_000, run_id=run_id, types=types)

    def types(self, run_id: str) -> list[str]:
        return [e.type for e in self.events(run_id) if e.type != "heartbeat"]

    def wait_status(self, run_id: str, statuses: Iterable[str], timeout: float) -> RunView:
        wanted = set(statuses)

        def reached() -> RunView | None:
            view = self.run(run_id)
            return view if view.status in wanted else None

        return self._wait(reached, timeout, f"{run_id} to be {sorted(wanted)}", run_id)

    def wait_done(self, run_id: str, timeout: float = 10.0) -> RunView:
        return self.wait_status(run_id, TERMINAL, timeout)

    def wait_event(self, run_id: str, type_: str, timeout: float = 10.0) -> Envelope:
        found = lambda: next(iter(self.events(run_id, [type_])), None)  # noqa: E731
        return self._wait(found, timeout, f"{type_} on {run_id}", run_id)

    def _wait(self, predicate: Callable[[], T | None], timeout: float, what: str, run_id: str) -> T:
        try:
            return wait_until(predicate, timeout, interval=0.02, message=what)
        except AssertionError as exc:  # say where the run got to, and what the workers said
            logs = "".join(f"\n--- {w.worker_id}:\n{w.output()}" for w in self.workers)
            raise AssertionError(f"{exc}\n{self.describe(run_id)}{logs}") from None

    def describe(self, run_id: str) -> str:
        """For failure messages: the run's status and event types so far."""
        view = load_run(self.store.conn, run_id)
        if view is None:
            return f"no run {run_id}"
        ending = f" exit_code={view.exit_code} signal={view.signal} error={view.error}" if view.finished_at else ""
        return f"status={view.status}{ending} events={self.types(run_id)}"

    def log(self, run_id: str, stream: str = "stdout") -> bytes:
        return (self.home / "data" / "runs" / run_id / f"{stream}.log").read_bytes()

    def run_dir(self, run_id: str) -> Path:
        return self.home / "data" / "runs" / run_id

    # -- processes ---------------------------------------------------------------------------

    def start_worker(self, concurrency: int = 1, worker_id: str = "w-1", **env: str) -> WorkerProcess:
        worker = WorkerProcess(self, concurrency, worker_id, {**FAST_ENV, **env})
        self.workers.append(worker)
        return worker

    def run_processes(self, run_id: str | None = None) -> list[psutil.Process]:
        """Live processes of one run of this home, or of any: by TASKHUB_RUN_ID and TASKHUB_RUN_DIR.

        Run ids (`r-<seq>`) repeat across homes, so the run's folder, which holds the home's path,
        tells this home's processes from another's with the same run id.
        """
        runs = str(self.home / "data" / "runs") + os.sep
        found = []
        for proc in psutil.process_iter():
            try:
                env = proc.environ()
            except (psutil.NoSuchProcess, psutil.AccessDenied):  # zombies included
                continue
            if proc.pid == os.getpid() or not env.get("TASKHUB_RUN_DIR", "").startswith(runs):
                continue
            if run_id is None or (env.get("TASKHUB_RUN_ID") == run_id and env["TASKHUB_RUN_DIR"] == runs + run_id):
                found.append(proc)
        return found

    def close(self) -> None:
        """Stop every worker, kill whatever any run left behind, close the database."""
        for worker in self.workers:
            worker.stop(check=False)
        for proc in self.run_processes():
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.kill()
        self.store.close()


class WorkerProcess:
    def __init__(self, hub: Hub, concurrency: int, worker_id: str, env: Mapping[str, str]) -> None:
        self.hub = hub
        self.worker_id = worker_id
        self.log_path = hub.home / "logs" / f"{worker_id}.log"
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("TASKHUB_")}
        full_env.update(env, TASKHUB_HOME=str(hub.home))
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            worker_argv(concurrency, worker_id),
            cwd=hub.home,
            env=full_env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait_ready(self, timeout: float = 15.0) -> Envelope:
        """Until the worker has announced itself in the log."""
        return wait_until(
            lambda: (
                next((e for e in self.hub.events(types=["worker_started"]) if e.worker_id == self.worker_id), None)
                or self._check_alive()
            ),
            timeout,
            interval=0.02,
            message=f"worker {self.worker_id} to start",
        )

    def _check_alive(self) -> None:
        if self.proc.poll() is not None:
            raise AssertionError(f"worker {self.worker_id} exited with {self.proc.returncode}:\n{self.output()}")

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")[-5000:]

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def wait(self, timeout: float) -> int:
        return self.proc.wait(timeout)

    def stop(self, check: bool = True) -> int:
        """SIGTERM, and again (the second skips the drain), then SIGKILL if it does not go.

        The repeats are spaced: two SIGTERMs sent back to back may reach the process as one (the
        kernel does not queue a standard signal that is already pending).
        """
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while self.proc.poll() is None and time.monotonic() < deadline:
            self.proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(0.5)
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
            if check:
                raise AssertionError(f"worker {self.worker_id} ignored SIGTERM:\n{self.output()}")
        self._log.close()
        return self.proc.returncode


def overlap_max(events: Iterable[Envelope]) -> int:
    """The most runs held at once, walking the log in commit order: +1 on a claim, -1 on its end."""
    held: set[str] = set()
    most = 0
    for env in events:
        if env.run_id is None:
            continue
        if env.type == "claimed":
            held.add(env.run_id)
            most = max(most, len(held))
        elif env.type in ("exited", "reaped"):
            held.discard(env.run_id)
    return most


def load_script(name: str) -> Any:
    """A test task's script as a module (its constants and helpers; its main() is not run)."""
    spec = importlib.util.spec_from_file_location(f"worker_script_{name}", WORKER_TASKS / "scripts" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def pids_from(path: Path) -> dict[str, int]:
    """role -> pid, as tests/helpers/tree.py records them."""
    if not path.exists():
        return {}
    return {role: int(pid) for role, pid, *_ in (line.split() for line in path.read_text().splitlines())}
