"""Fixtures for the API integration tests: a real server process on a free loopback port.

Import explicitly from the test modules (`from tests.integration.conftest_api import *`). Runs
progress without a worker: tests append claim/started/exited straight into the database with
EventStore and the projection ops, as a worker would.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from taskhub.events.clock import iso
from taskhub.events.store import EventStore
from taskhub.events.types import Claimed, Event, Exited, Started
from taskhub.projections import ops
from taskhub.projections.runs import RunView
from taskhub.projections.tables import load_run
from tests.helpers.waiting import wait_until

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 60.0  # the machine is shared: imports alone can take seconds

LIMITED_TASK = """
import msgspec
from taskhub import TaskSpec

class Params(msgspec.Struct):
    n: int = 0

task = TaskSpec(
    task_id="limited",
    name="Limited",
    params_model=Params,
    build_command=lambda p: ["true", str(p.n)],
    max_concurrency=1,
)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_home(root: Path) -> Path:
    home = root / "home"
    shutil.copytree(REPO / "tasks", home / "tasks", ignore=shutil.ignore_patterns("__pycache__"))
    (home / "tasks" / "limited.py").write_text(LIMITED_TASK)
    return home


@dataclass
class ApiServer:
    home: Path
    port: int
    env: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log_path = self.home / "api-test.log"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def db(self) -> Path:
        return self.home / "data" / "taskhub.db"

    def start(self) -> None:
        env = {**os.environ, "TASKHUB_HOME": str(self.home), "TASKHUB_PORT": str(self.port), **self.env}
        if "TASKHUB_TOKEN" not in self.env:
            env.pop("TASKHUB_TOKEN", None)
        out = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.integration.api_server"], cwd=REPO, env=env, stdout=out, stderr=out
        )
        headers = {"Authorization": f"Bearer {self.env['TASKHUB_TOKEN']}"} if "TASKHUB_TOKEN" in self.env else {}

        def up() -> bool:
            assert self.proc is not None and self.proc.poll() is None, self.log_text()
            try:
                return httpx.get(f"{self.base_url}/api/health", headers=headers, timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(up, START_TIMEOUT_S, interval=0.05, message="the API to answer /api/health")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def start_server(root: Path, **env: str) -> ApiServer:
    home = make_home(root)
    env.setdefault("TASKHUB_WEB_DIST", str(home / "web" / "dist"))  # not the repo's own build
    server = ApiServer(home, free_port(), env)
    server.start()
    return server


TEST_KNOBS = {
    "TASKHUB_TEST_SSE_KEEPALIVE_S": "0.3",
    "TASKHUB_TEST_SSE_QUEUE_SIZE": "256",
    "TASKHUB_TEST_LOG_POLL_S": "0.05",
    "TASKHUB_MAX_STREAMS": "6",
    "TASKHUB_MAX_BODY_BYTES": "65536",
}


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    server = start_server(tmp_path_factory.mktemp("api"), **TEST_KNOBS)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def client(api: ApiServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=api.base_url, timeout=10) as c:
        yield c


# --- acting as a worker ---------------------------------------------------------------------------


def append(db: Path, run_id: str, events: list[Event], worker_id: str | None = "w-test") -> RunView:
    store = EventStore(db)
    try:
        with store.transaction(time.time()) as txn:
            return ops.append_run_events(txn, run_id, events, worker_id=worker_id)
    finally:
        store.close()


def claim(db: Path, run_id: str, worker_id: str = "w-test") -> RunView:
    store = EventStore(db)
    try:
        with store.transaction(time.time()) as txn:
            view = load_run(txn.conn, run_id)
            assert view is not None
            event = Claimed(attempt=view.attempt + 1, fence=txn.next_seq, lease_expires_at=iso(txn.now + 30))
            return ops.append_run_events(txn, run_id, [event], worker_id=worker_id)
    finally:
        store.close()


def start(db: Path, run_id: str) -> RunView:
    view = claim(db, run_id)
    assert view.fence is not None
    started = Started(fence=view.fence, pid=os.getpid(), pgid=os.getpgid(0), create_time=0.0, host="h", argv=["x"])
    return append(db, run_id, [started])


def finish(db: Path, run_id: str, outcome: str = "succeeded", exit_code: int = 0) -> RunView:
    fence = load_fence(db, run_id)
    exited = Exited(fence=fence, exit_code=exit_code, signal=None, outcome=outcome, duration_s=0.1)
    return append(db, run_id, [exited])


def load_fence(db: Path, run_id: str) -> int:
    store = EventStore(db)
    try:
        view = load_run(store.conn, run_id)
        assert view is not None and view.fence is not None
        return view.fence
    finally:
        store.close()


def submit(client: httpx.Client, task_id: str = "noop", **body: Any) -> dict[str, Any]:
    response = client.post("/api/runs", json={"task_id": task_id, **body})
    assert response.status_code == 201, response.text
    out: dict[str, Any] = response.json()
    return out


def last_seq(client: httpx.Client) -> int:
    return int(client.get("/api/health").json()["last_seq"])
