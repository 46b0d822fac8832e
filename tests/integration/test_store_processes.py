"""The store under real processes: many claimers racing for one queue, and appenders killed with SIGKILL."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from taskhub.events.store import EventStore
from taskhub.events.types import Submitted
from taskhub.projections import ops
from taskhub.projections import transitions as t
from taskhub.projections.audit import audit
from taskhub.projections.tables import load_all_runs
from tests.helpers.waiting import wait_until

CHILD = Path(__file__).with_name("log_children.py")
ROOT = Path(__file__).resolve().parents[2]


def child(*args: object, stdout: int = subprocess.PIPE) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(CHILD), *map(str, args)],
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )


def integrity(db: Path) -> str:
    conn = sqlite3.connect(db)
    try:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])
    finally:
        conn.close()


# -- eight processes, one queue --------------------------------------------------------------------

QUEUED = 5_000
CLAIMERS = 8


def test_each_queued_run_is_claimed_exactly_once_by_eight_processes(tmp_path: Path) -> None:
    db, go = tmp_path / "claims.db", tmp_path / "go"
    store = EventStore(db)
    with store.transaction(time.time()) as txn:
        ops.submit_many(txn, [Submitted(task_id=f"t{i % 7}", params={"i": i}, priority=i % 3) for i in range(QUEUED)])

    procs = [child("claim", db, f"w-{n}", go, n) for n in range(CLAIMERS)]
    go.touch()  # every child is started; they begin together
    outputs = [p.communicate(timeout=120) for p in procs]
    for p, (_, err) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, err
        assert err == "", err  # not even a "store.busy" warning escaped

    reports = [json.loads(out) for out, _ in outputs]
    by_child = Counter(run for r in reports for run in r["claimed"])
    claimed_events = dict(
        store.conn.execute("SELECT run_id, count(*) FROM events WHERE type = 'claimed' GROUP BY run_id").fetchall()
    )
    runs = load_all_runs(store.conn)
    assert len(runs) == QUEUED
    assert set(claimed_events) == set(runs) == set(by_child)
    assert set(claimed_events.values()) == {1}, "a run was claimed twice"
    assert set(by_child.values()) == {1}
    # Each run's claim came from the worker that reported it, and every child got a share.
    owner = {run: r["worker"] for r in reports for run in r["claimed"]}
    assert all(v.status == t.CLAIMED and v.worker_id == owner[v.run_id] for v in runs.values())
    assert all(r["claimed"] for r in reports), [len(r["claimed"]) for r in reports]
    assert audit(store) == []
    store.close()


# -- kill -9 while appending -----------------------------------------------------------------------

ROUNDS = 20


class Lines:
    """Collects a child's stdout lines on a thread, so the test can wait for them with a deadline."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        assert proc.stdout is not None
        self._stdout = proc.stdout
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        for line in self._stdout:
            self.lines.append(line)

    def finish(self, timeout: float) -> list[str]:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the child's stdout did not close"
        return self.lines


@pytest.mark.parametrize("mode", ["append", "append_log"])
def test_appends_that_returned_survive_sigkill(tmp_path: Path, mode: str) -> None:
    db = tmp_path / "crash.db"
    EventStore(db).close()  # created and migrated before the first child starts
    rng = random.Random(f"crash-{mode}")
    reported: set[int] = set()
    rounds = ROUNDS if mode == "append" else ROUNDS // 2
    for n in range(rounds):
        proc = child(mode, db, f"{n}")
        lines = Lines(proc)
        # A random moment: after the child reported between 1 and 100 commits.
        target = rng.randint(1, 100)
        wait_until(
            lambda lines=lines, proc=proc, target=target: len(lines.lines) >= target or proc.poll() is not None,
            timeout=60,
            message=f"round {n}: {target} commits",
        )
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        assert proc.returncode == -signal.SIGKILL
        got = [int(s) for line in lines.finish(30) if line.endswith("\n") for s in line.split()]
        assert got, f"round {n}: nothing reported"
        reported.update(got)
        if proc.stderr is not None:
            proc.stderr.close()

        store = EventStore(db)
        present = {s for (s,) in store.conn.execute("SELECT seq FROM events")}
        store.close()
        missing = sorted(reported - present)
        assert not missing, f"round {n}: acknowledged seqs lost after SIGKILL: {missing[:10]}"

    assert integrity(db) == "ok"
    store = EventStore(db)
    try:
        assert audit(store) == []
        assert store.last_seq() == len(present)  # no holes in seq either
    finally:
        store.close()
