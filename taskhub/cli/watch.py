"""Waiting for a run to finish, optionally printing its stdout/stderr live (`--follow`, `logs -f`).

Directly on the files when the database is on this machine: the task's own log files are tailed and
the run's row is re-read whenever the log changes (the log's ChangeSignal: inotify on the database,
plus a short timeout so log-file growth shows promptly). Through the API otherwise, by polling.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any, BinaryIO

from taskhub.cli import common
from taskhub.settings import Settings

TERMINAL = ("succeeded", "failed", "cancelled")
NO_WORKER_HINT_S = 3.0  # a run still queued this long with no live worker gets a note on stderr
TAIL_POLL_S = 0.1  # log files grow without touching the database: look this often when printing them
API_POLL_S = 0.25
CHUNK = 1 << 16


def exit_code_of(run: dict[str, Any]) -> int:
    """The exit code `--wait`/`--follow` leave with: the task's own, or a conventional one."""
    status = run.get("status")
    if status == "succeeded":
        return common.EXIT_OK
    if status == "cancelled":
        return common.EXIT_CANCELLED
    if run.get("failure_reason") == "timeout":
        return common.EXIT_TIMEOUT
    code = run.get("exit_code")
    if isinstance(code, int) and 0 < code < 256:
        return code
    sig = run.get("signal")
    if isinstance(sig, int) and sig > 0:
        return 128 + sig  # how a shell reports a child killed by a signal
    return common.EXIT_FAILED


class FileTail:
    """Copies what is appended to a file to an output, from a byte offset."""

    def __init__(self, path: Path, out: BinaryIO, offset: int = 0) -> None:
        self.path = path
        self.out = out
        self.offset = offset

    def pump(self) -> None:
        try:
            with self.path.open("rb") as f:
                f.seek(self.offset)
                while chunk := f.read(CHUNK):
                    self.out.write(chunk)
                    self.offset += len(chunk)
        except FileNotFoundError:
            return  # not spawned yet
        except OSError as exc:  # a folder, a file we may not read: say which, not a traceback
            raise common.CliError(f"cannot read {self.path}: {exc.strerror or exc}") from None
        self.out.flush()


def log_path(s: Settings, run_id: str, stream: str) -> Path:
    return s.run_dir(run_id) / f"{stream}.log"


async def _watch_direct(s: Settings, run_id: str, tails: list[FileTail]) -> dict[str, Any]:
    from taskhub.events.follow import ChangeSignal, open_reader
    from taskhub.projections.queries import get_run

    signal = ChangeSignal(s.db_path)
    signal.start()
    reader = await open_reader(s.db_path)
    hint_at: float | None = time.monotonic() + NO_WORKER_HINT_S
    try:
        while True:
            seen = signal.generation
            view = await get_run(reader, run_id)
            if view is None:
                raise common.CliError(f"unknown run {run_id!r}; `taskhub runs` lists the runs")
            for tail in tails:
                tail.pump()
            if view.status in TERMINAL:
                for tail in tails:  # the task has exited: its files are complete now
                    tail.pump()
                record: dict[str, Any] = common_record(view)
                return record
            if hint_at is not None and time.monotonic() >= hint_at:
                hint_at = None
                if view.status == "queued" and not await _any_live_worker(reader):
                    sys.stderr.write(
                        f"note: no worker is running, so {run_id} waits in the queue; start one with bin/start.sh"
                        " or `taskhub worker` (Ctrl-C stops waiting; the run stays queued)\n"
                    )
            await signal.wait(seen, timeout=TAIL_POLL_S if tails or hint_at else None)
    finally:
        await reader.close()
        await signal.stop()


async def _any_live_worker(reader: Any) -> bool:
    """A worker not recorded as stopped whose process is still alive on this host."""
    import psutil

    from taskhub.projections.queries import list_workers

    for worker in await list_workers(reader):
        if worker.stopped_at is not None:
            continue
        try:
            if abs(psutil.Process(worker.pid).create_time() - worker.create_time) < 1.0:
                return True
        except psutil.Error:
            continue
    return False


def common_record(view: Any) -> dict[str, Any]:
    import msgspec

    out: dict[str, Any] = msgspec.to_builtins(view)
    return out


def _watch_api(s: Settings, run_id: str, streams: list[tuple[str, BinaryIO]]) -> dict[str, Any]:
    from taskhub.cli.client import ApiClient

    offsets = dict.fromkeys((name for name, _ in streams), 0)
    with ApiClient(s) as api:
        while True:
            run: dict[str, Any] = api.call("GET", f"/api/runs/{run_id}")
            done = run.get("status") in TERMINAL
            for name, out in streams:
                _pump_api(api, run_id, name, out, offsets)
            if done:
                return run
            time.sleep(API_POLL_S)


def _pump_api(api: Any, run_id: str, stream: str, out: BinaryIO, offsets: dict[str, int]) -> None:
    while True:
        resp = api.http.get(f"/api/runs/{run_id}/logs/{stream}", params={"offset": offsets[stream], "limit": CHUNK})
        if resp.status_code != 200 or not resp.content:
            return
        out.write(resp.content)
        out.flush()
        offsets[stream] += len(resp.content)


def watch(s: Settings, run_id: str, streams: list[str], *, via_api: bool = False) -> dict[str, Any]:
    """Block until the run is finished, printing the named streams (stdout to stdout, stderr to stderr)."""
    outs = {"stdout": sys.stdout.buffer, "stderr": sys.stderr.buffer}
    if via_api and not s.db_path.is_file():
        sys.stdout.flush()
        return _watch_api(s, run_id, [(name, outs[name]) for name in streams])
    common.require_db(s)
    tails = [FileTail(log_path(s, run_id, name), outs[name]) for name in streams]
    import asyncio

    sys.stdout.flush()
    sys.stderr.flush()
    return asyncio.run(_watch_direct(s, run_id, tails))
