"""bin/start.sh and bin/stop.sh from a fresh clone, as a newcomer runs them: the API, two workers and
the reaper as real background processes, the CLI against them, and nothing left behind at the end.

The clone is of the committed HEAD. Its own `.venv` is created by start.sh (uv sync: quick with uv's
cache). web/dist is stubbed in the clone so the test does not depend on npm's registry.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

from tests.helpers.waiting import wait_until

REPO = Path(__file__).resolve().parents[2]
SCRIPT_TIMEOUT_S = 300  # start.sh syncs a whole environment on first use


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Clone:
    path: Path
    env: dict[str, str]

    def script(self, name: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.path / "bin" / name), *args], cwd=self.path, env={**self.env, **(env or {})},
            capture_output=True, text=True, timeout=SCRIPT_TIMEOUT_S,
        )

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.path / ".venv" / "bin" / "taskhub"), *args], cwd=self.path, env=self.env,
            capture_output=True, text=True, timeout=120,
        )

    def pidfiles(self) -> dict[str, int]:
        return {p.stem: int(p.read_text()) for p in sorted((self.path / "data" / "pids").glob("*.pid"))}

    def processes(self) -> list[psutil.Process]:
        """Every live process of this clone's TaskHub: by command line or by TASKHUB_HOME."""
        found = []
        marker = str(self.path)
        for proc in psutil.process_iter():
            try:
                if proc.status() == psutil.STATUS_ZOMBIE:
                    continue
                if marker in " ".join(proc.cmdline()) or proc.environ().get("TASKHUB_HOME") == marker:
                    found.append(proc)
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
        return found


def _kill_leftovers(clone: Clone) -> None:
    for proc in clone.processes():
        try:
            proc.send_signal(signal.SIGKILL)
        except psutil.NoSuchProcess:
            pass


@pytest.fixture(scope="module")
def clone(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Clone]:
    path = tmp_path_factory.mktemp("clone") / "taskhub"
    subprocess.run(["git", "clone", "--quiet", str(REPO), str(path)], check=True, timeout=120)
    (path / "web" / "dist").mkdir(parents=True, exist_ok=True)
    (path / "web" / "dist" / "index.html").write_text("<!doctype html><title>TaskHub</title>")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TASKHUB_", "VIRTUAL_ENV", "UV_PROJECT"))}
    env.update(TASKHUB_PORT=str(free_port()), TASKHUB_STOP_TIMEOUT="30", TASKHUB_DRAIN_S="5", NO_COLOR="1")
    c = Clone(path, env)
    try:
        yield c
    finally:
        c.script("stop.sh")
        _kill_leftovers(c)


def test_start_submit_follow_twice_and_stop(clone: Clone) -> None:
    started = clone.script("start.sh", "2")
    assert started.returncode == 0, started.stdout + started.stderr
    assert f"http://127.0.0.1:{clone.env['TASKHUB_PORT']}/" in started.stdout
    pids = clone.pidfiles()
    assert set(pids) == {"api", "worker-w-1", "worker-w-2", "reaper"}
    assert all(psutil.pid_exists(pid) for pid in pids.values())

    again = clone.script("start.sh", "2")
    assert again.returncode == 0 and "already running" in again.stdout
    assert clone.pidfiles() == pids

    hello = clone.cli("submit", "hello_world", "--param", "target=clone", "--follow")
    assert hello.returncode == 0, hello.stderr
    assert "Hello, clone!" in hello.stdout
    failing = clone.cli("submit", "fail_task", "--param", "code=3", "--follow")
    assert failing.returncode == 3, failing.stderr
    assert "boom" in failing.stderr

    lines = clone.cli("events", "tail", "--json").stdout.splitlines()
    events = [json.loads(line) for line in lines]
    assert {"worker_started", "submitted", "claimed", "started", "exited"} <= {e["type"] for e in events}
    assert {e["worker_id"] for e in events if e["type"] == "worker_started"} >= {"w-1", "w-2"}
    audit = clone.cli("events", "audit")
    assert audit.returncode == 0, audit.stdout + audit.stderr
    doctor = json.loads(clone.cli("doctor", "--json").stdout)
    services = {c["name"]: c["status"] for c in doctor["checks"] if c["name"].startswith("service")}
    assert services == dict.fromkeys(("service api", "service reaper", "service worker-w-1", "service worker-w-2"),
                                     "ok")

    stopped = clone.script("stop.sh")
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    assert not clone.pidfiles()
    assert wait_until(lambda: not clone.processes(), 10, interval=0.1, message="no TaskHub process left") is True
    again = clone.script("stop.sh")
    assert again.returncode == 0 and "not running" in again.stdout


def test_stop_never_signals_a_process_that_is_not_taskhubs(clone: Clone) -> None:
    bystander = subprocess.Popen(["sleep", "60"])
    try:
        pids = clone.path / "data" / "pids"
        pids.mkdir(parents=True, exist_ok=True)
        (pids / "worker-w-9.pid").write_text(f"{bystander.pid}\n")  # a pid file naming a reused pid
        result = clone.script("stop.sh")
        assert result.returncode == 0
        assert "stale" in result.stdout
        assert bystander.poll() is None
        assert not (pids / "worker-w-9.pid").exists()
    finally:
        bystander.kill()
        bystander.wait()


def test_a_component_that_cannot_start_is_named_and_the_rest_stopped(clone: Clone) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = str(busy.getsockname()[1])
        result = clone.script("start.sh", "1", env={"TASKHUB_PORT": port})
    assert result.returncode == 1
    assert "api failed to start" in result.stderr
    assert not clone.pidfiles()
    assert wait_until(lambda: not clone.processes(), 10, interval=0.1, message="nothing left running") is True


def test_stop_timeout_kills_everything_and_the_next_start_reaps(clone: Clone) -> None:
    slow = {"TASKHUB_STOP_TIMEOUT": "2", "TASKHUB_DRAIN_S": "60"}  # the drain outlasts stop.sh's patience
    started = clone.script("start.sh", "1", env=slow)
    assert started.returncode == 0, started.stdout + started.stderr
    run = json.loads(clone.cli("submit", "sleep", "--param", "seconds=120", "-o", "json").stdout)
    wait_until(
        lambda: json.loads(clone.cli("show", run["run_id"], "--json").stdout)["status"] == "running", 60,
        interval=0.2, message="the run to start",
    )
    stopped = clone.script("stop.sh", env=slow)
    assert stopped.returncode == 0
    assert "killing it" in stopped.stderr and "unfinished runs" in stopped.stderr
    assert wait_until(lambda: not clone.processes(), 10, interval=0.1, message="no TaskHub process left") is True

    assert clone.script("start.sh", "1").returncode == 0  # its reaper finds the run's worker gone
    view = wait_until(
        lambda: (v := json.loads(clone.cli("show", run["run_id"], "--json").stdout))["status"] == "failed" and v,
        60, interval=0.2, message="the run to be reaped",
    )
    assert view["failure_reason"] == "worker_gone"
    assert clone.cli("events", "audit").returncode == 0
    assert clone.script("stop.sh").returncode == 0
    assert wait_until(lambda: not clone.processes(), 10, interval=0.1, message="no TaskHub process left") is True
