"""Helpers for the CLI tests: a throwaway TaskHub home, `taskhub` run as a real process, services.

(Named test_cli_*.py to live beside the tests it serves; it defines no tests itself.)
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tests.helpers.waiting import wait_until

REPO = Path(__file__).resolve().parents[2]
CLI_TIMEOUT_S = 60


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Home:
    """A TaskHub home in a temporary folder, with the repository's example tasks."""

    path: Path
    env: dict[str, str]
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def db(self) -> Path:
        return self.path / "data" / "taskhub.db"

    def run(
        self, *args: str, env: dict[str, str] | None = None, input: bytes | None = None, timeout: float = CLI_TIMEOUT_S
    ) -> subprocess.CompletedProcess[str]:
        """`taskhub ARGS` as a real process; text stdout/stderr, never raises on a non-zero exit."""
        return subprocess.run(
            [sys.executable, "-m", "taskhub", *args],
            cwd=self.path,
            env={**self.env, **(env or {})},
            input=input.decode() if input is not None else None,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def ok(self, *args: str, env: dict[str, str] | None = None) -> str:
        result = self.run(*args, env=env)
        assert result.returncode == 0, f"taskhub {' '.join(args)} -> {result.returncode}\n{result.stderr}"
        return result.stdout

    def start(self, *args: str, stdout: Path | None = None) -> subprocess.Popen[bytes]:
        """A long-running `taskhub ARGS` (worker, api, tail -f), stopped at teardown."""
        log = (stdout or self.path / f"{args[0]}-{len(self.procs)}.log").open("wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "taskhub", *args],
            cwd=self.path,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.procs.append(proc)
        return proc

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)

    def worker(self) -> subprocess.Popen[bytes]:
        proc = self.start("worker", "--id", f"w-t{len(self.procs)}", "--concurrency", "2")
        return proc

    def wait_status(self, run_id: str, statuses: tuple[str, ...], timeout: float = 30) -> dict[str, object]:
        import json

        def status() -> dict[str, object] | None:
            result = self.run("show", run_id, "--json")
            view: dict[str, object] = json.loads(result.stdout) if result.returncode == 0 else {}
            return view if view.get("status") in statuses else None

        return wait_until(status, timeout, interval=0.1, message=f"{run_id} to be {statuses}")


def make_home(tmp: Path) -> Home:
    shutil.copytree(REPO / "tasks", tmp / "tasks", ignore=shutil.ignore_patterns("__pycache__"))
    env = {
        **os.environ,
        "TASKHUB_HOME": str(tmp),
        "TASKHUB_PORT": str(free_port()),  # no API there: the CLI works on the log directly
        "NO_COLOR": "1",
        "TASKHUB_LEASE_S": "10",
        "TASKHUB_HEARTBEAT_S": "2",
        "TASKHUB_DRAIN_S": "5",
    }
    for name in ("TASKHUB_DB", "TASKHUB_TOKEN", "TASKHUB_HOST"):
        env.pop(name, None)
    return Home(tmp, env)


@contextlib.contextmanager
def home_at(tmp_path: Path) -> Iterator[Home]:
    """Use as `with home_at(tmp_path) as h: yield h` in each test module's own `home` fixture."""
    h = make_home(tmp_path)
    try:
        yield h
    finally:
        h.stop_all()
