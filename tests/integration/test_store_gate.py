"""The write gate and what happens around a commit: turns taken in order, across processes and
deaths; FULL commits synced outside the gate; the WAL copied back and rewound by the checkpointer."""

from __future__ import annotations

import ctypes
import fcntl
import os
import signal
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from taskhub.events import checkpointer as checkpointer_module
from taskhub.events import store as store_module
from taskhub.events import write_gate
from taskhub.events.store import EventStore
from taskhub.events.types import Submitted
from taskhub.events.write_gate import ClaimTurn, WriteGate
from taskhub.projections import ops
from tests.helpers.waiting import wait_until

CHILD = Path(__file__).with_name("log_children.py")
ROOT = Path(__file__).resolve().parents[2]


def tickets_drawn(db: Path) -> int:
    """The gate's ticket counter, as stored in the lock file."""
    data = db.with_name(db.name + "-lock").read_bytes()
    return int(struct.unpack_from("Q", data, 8)[0]) if len(data) >= 16 else 0


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "gate.db"
    EventStore(path).close()
    yield path


def child(*args: object) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(CHILD), *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )


def test_a_writer_that_lets_go_and_comes_straight_back_queues_behind_the_one_waiting(db: Path) -> None:
    """With a bare flock() the unlocking writer, still running, usually took the lock back before the
    woken waiter was scheduled (a waiter's turn came after 20-36 turns of the others). Now turns go
    in the order the writers came."""
    first, second = WriteGate(db), WriteGate(db)
    order: list[str] = []
    first.acquire()
    start = tickets_drawn(db)

    def wait_in_line() -> None:
        second.acquire()
        order.append("second")
        second.release()

    thread = threading.Thread(target=wait_in_line)
    thread.start()
    wait_until(lambda: tickets_drawn(db) == start + 1, timeout=10, message="the second writer in line")
    first.release()
    first.acquire()  # at once: under a bare flock this one would usually win
    order.append("first")
    first.release()
    thread.join(10)
    assert order == ["second", "first"]
    first.close()
    second.close()


def test_a_writer_killed_holding_the_gate_or_waiting_in_line_holds_nobody_up(db: Path) -> None:
    """SIGKILL of the holder hands the gate to the next in line, and a dead waiter's place passes on."""
    holder = child("gate", db)
    assert holder.stdout is not None
    assert holder.stdout.readline() == "held\n"
    waiter = child("gate", db)  # queues behind the holder; killed while waiting
    wait_until(lambda: tickets_drawn(db) >= 2, timeout=30, message="the second child in line")
    mine = WriteGate(db)
    got = threading.Event()

    def take() -> None:
        mine.acquire()
        got.set()

    thread = threading.Thread(target=take, daemon=True)
    thread.start()
    wait_until(lambda: tickets_drawn(db) >= 3, timeout=10, message="this process in line")
    assert not got.is_set()
    os.kill(waiter.pid, signal.SIGKILL)
    waiter.wait(30)
    assert not got.is_set(), "past the holder, which is alive"
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait(30)
    assert got.wait(10), "the gate was not handed on after its holder died"
    mine.release()
    mine.close()
    for proc in (holder, waiter):
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


class _CacheStat(ctypes.Structure):
    _fields_ = [(name, ctypes.c_uint64) for name in ("cache", "dirty", "writeback", "evicted", "recently_evicted")]


def dirty_pages(path: Path) -> int | None:
    """Pages of the file written but not yet on disk (cachestat(2), Linux 6.5+), or None."""
    libc = ctypes.CDLL(None, use_errno=True)
    stat, whole = _CacheStat(), (ctypes.c_uint64 * 2)(0, 0)
    fd = os.open(path, os.O_RDONLY)
    try:
        if libc.syscall(451, fd, ctypes.byref(whole), ctypes.byref(stat), 0) != 0:
            return None
    finally:
        os.close(fd)
    return int(stat.dirty + stat.writeback)


@pytest.mark.parametrize("level", ["FULL", "NORMAL"])
def test_a_full_commit_is_on_disk_when_it_returns_and_a_normal_one_need_not_be(db: Path, level: str) -> None:
    """FULL: SQLite runs at NORMAL and the store fdatasync()s the WAL itself after the gate; the
    commit has reached the disk when transaction() returns."""
    store = EventStore(db, synchronous=level)
    wal = db.with_name(db.name + "-wal")
    try:
        assert store.conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL either way
        assert store.syncs_commits == (level == "FULL")
        if dirty_pages(wal) is None:
            pytest.skip("cachestat(2) is not available")
        found = []
        for i in range(20):
            with store.transaction(time.time()) as txn:
                ops.submit(txn, Submitted(task_id="t", params={"i": i}))
            found.append(dirty_pages(wal))
        if level == "FULL":
            assert set(found) == {0}
        else:
            assert any(found), "NORMAL left nothing unwritten: this check cannot tell the two apart"
    finally:
        store.close()


def test_the_wal_is_rewound_while_another_process_keeps_writing(db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A PASSIVE checkpoint copies only what was committed before it began, and SQLite rewinds the WAL
    only when a writer finds all of it copied: with another writer that never pauses, the WAL used to
    grow without end (470 MB in a 3 s benchmark). The checkpointer finishes under the gate."""
    monkeypatch.setattr(store_module, "CHECKPOINT_COMMITS", 5)
    monkeypatch.setattr(checkpointer_module, "RESTART_FRAMES", 50)
    wal = db.with_name(db.name + "-wal")

    def salt() -> bytes:  # WAL header bytes 16-23: new salts each time the WAL starts over
        with wal.open("rb") as f:
            return f.read(24)[16:24]

    other = child("append", db, "rewind")
    assert other.stdout is not None
    assert other.stdout.readline()  # it commits, again and again, until killed
    drain = threading.Thread(target=other.stdout.read, daemon=True)
    drain.start()  # its lines, read and dropped: a full pipe would stop it
    store = EventStore(db, synchronous="NORMAL")
    seen = {salt()}
    try:
        # Rewound twice within 1,000 of our commits (20-130 here; 430-4,400 before the checkpointer
        # finished under the gate, when a rewind needed both writers to pause at the same moment).
        for _ in range(1_000):
            with store.transaction(time.time()) as txn:
                ops.submit(txn, Submitted(task_id="t", params={}))
            seen.add(salt())
            if len(seen) >= 3:
                break
            assert other.poll() is None, other.stderr.read() if other.stderr else ""
        assert len(seen) >= 3, "the WAL was not rewound"
    finally:
        store.close()
        other.kill()
        other.wait(30)
        drain.join(30)
        for stream in (other.stdout, other.stderr):
            if stream is not None:
                stream.close()


def counters(db: Path) -> tuple[int, int]:
    """(commits that wrote, commits counted when a checkpoint last copied the whole WAL back)."""
    data = db.with_name(db.name + "-lock").read_bytes()
    commits, _, copied = struct.unpack_from("QQQ", data, 16)
    return int(commits), int(copied)


def submit_one(store: EventStore) -> None:
    with store.transaction(time.time()) as txn:
        ops.submit(txn, Submitted(task_id="t", params={}))


@pytest.mark.parametrize("level", ["NORMAL", "FULL"])
def test_every_commit_that_writes_is_counted_at_every_level(db: Path, level: str) -> None:
    store = EventStore(db, synchronous=level)
    try:
        before, _ = counters(db)
        submit_one(store)
        submit_one(store)
        with store.transaction(time.time()):
            pass  # wrote nothing: the WAL did not change
        assert counters(db)[0] == before + 2
    finally:
        store.close()


def test_no_checkpoint_starts_while_the_wal_is_all_copied_back_and_nothing_was_written_since(
    db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite's WAL-reset bug (before 3.51.3) needs a checkpoint that starts just after another copied
    the whole WAL back, while a writer starts the WAL over: that moment is never a checkpoint's turn."""
    monkeypatch.setattr(store_module, "CHECKPOINT_COMMITS", 1)  # every commit asks for a checkpoint
    store = EventStore(db, synchronous="NORMAL")
    probe = WriteGate(db)
    try:
        submit_one(store)
        wait_until(lambda: counters(db)[1] == counters(db)[0], 30, message="the checkpointer copied the WAL back")
        with probe.checkpointing() as safe:
            assert not safe, "all copied back and nothing written since: not a moment to checkpoint"
        submit_one(store)  # a commit: the WAL was started over (or grown) before it returned
        store.close()  # its checkpointer is done: nothing else moves the counters now
        commits, copied = counters(db)
        assert commits == copied + 1 or commits == copied, (commits, copied)
        with probe.checkpointing() as safe:
            assert safe == (commits != copied)
    finally:
        store.close()
        probe.close()


def test_one_checkpoint_at_a_time_across_every_process(db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A checkpoint asked for while another holds the turn (here a second open of the lock file, as
    another process would have) is skipped; once the turn is free, the next one copies the WAL back."""
    monkeypatch.setattr(store_module, "CHECKPOINT_COMMITS", 1)
    other = WriteGate(db)
    store = EventStore(db, synchronous="NORMAL")
    try:
        with other.checkpointing():
            submit_one(store)
            checkpointer = store._checkpointer
            assert checkpointer is not None
            wait_until(lambda: checkpointer.passes >= 1, 30, message="the checkpointer took the request")
            commits, copied = counters(db)
            assert copied < commits, "a checkpoint ran while another held the turn"
            third = WriteGate(db)
            try:
                with third.checkpointing() as turn:
                    assert not turn  # one turn per lock file, for every open of it
            finally:
                third.close()
        submit_one(store)
        wait_until(lambda: counters(db)[1] == counters(db)[0], 30, message="the WAL copied back once the turn was free")
    finally:
        store.close()
        other.close()


def test_group_commit_at_full_acknowledges_only_what_is_on_disk(db: Path) -> None:
    """The writer commits at NORMAL and hands each batch to its syncer thread, which fdatasync()s the
    WAL and only then resolves the batch's futures; with many appenders waiting, every append still
    lands once, in order, acknowledged after the commits that preceded it."""
    import asyncio
    from functools import partial

    from taskhub.events.log import Log
    from taskhub.projections.audit import audit

    wal = db.with_name(db.name + "-wal")

    async def main() -> tuple[list[int | None], list[int]]:
        log = await Log.open(db, synchronous="FULL", watch=False)
        try:
            dirty = []
            for i in range(10):  # one at a time: nothing else can dirty the WAL after ours
                await log.run(partial(ops.submit, event=Submitted(task_id="t", params={"i": i})))
                dirty.append(dirty_pages(wal))
            views = await asyncio.gather(
                *(log.run(partial(ops.submit, event=Submitted(task_id="t", params={"j": j}))) for j in range(64))
            )
            return dirty, [v.num for v, _ in views]
        finally:
            await log.close()

    dirty, nums = asyncio.run(main())
    if dirty[0] is not None:
        assert set(dirty) == {0}
    assert nums == sorted(nums) and len(set(nums)) == 64  # submission order is commit order
    store = EventStore(db)
    try:
        assert store.last_seq() == 74
        assert audit(store) == []
    finally:
        store.close()


def test_writers_at_full_share_fsyncs_and_each_returns_only_once_its_commit_is_covered(db: Path) -> None:
    """Each commit that needs syncing is numbered under the gate; a writer that finds, once the sync
    lock is its, that a sync begun after its commit has finished, returns without an fsync of its
    own. Whichever way, when transaction() returns, the synced count has reached its commit."""

    def counts() -> tuple[int, int]:
        data = db.with_name(db.name + "-lock").read_bytes()
        committed, synced = struct.unpack_from("QQ", data, 16)
        return int(committed), int(synced)

    errors: list[BaseException] = []
    mine: list[int] = []

    def write(n: int) -> None:
        store = EventStore(db, synchronous="FULL")
        try:
            for i in range(40):
                with store.transaction(time.time()) as txn:
                    ops.submit(txn, Submitted(task_id="t", params={"n": n, "i": i}))
                _, synced = counts()
                assert synced >= store.last_commit > 0, (synced, store.last_commit)
                mine.append(store.last_commit)
        except BaseException as exc:
            errors.append(exc)
        finally:
            store.close()

    threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    committed, synced = counts()
    assert sorted(mine) == list(range(committed - 159, committed + 1)) and synced == committed


def test_the_claim_turn_is_one_workers_at_a_time_and_freed_by_release_or_death(db: Path) -> None:
    first, second = ClaimTurn(db), ClaimTurn(db)  # two opens of the lock file, as two workers have
    try:
        assert first.take() and first.take()  # taking it again is keeping it
        assert not second.take()
        first.release()
        assert second.take() and not first.take()
        second.close()  # a worker gone (kill -9 closes its files too) lets go of the turn
        assert first.take()
    finally:
        first.close()


def test_a_writer_stopped_in_its_fsync_does_not_hold_up_the_others(db: Path) -> None:
    """The sync lock is held through an fsync; a writer stopped there (SIGSTOP) kept every other
    FULL commit waiting for it. Now they wait SYNC_WAIT_S at most, then fsync on their own."""
    stopped = os.open(db.with_name(db.name + "-lock"), os.O_RDWR)  # as the stopped writer's open file
    write_gate._range_lock(stopped, fcntl.F_WRLCK, write_gate._SYNC_BYTE, wait=False)
    store = EventStore(db, synchronous="FULL")
    try:
        done = threading.Event()

        def commit() -> None:
            submit_one(store)
            done.set()

        worker = threading.Thread(target=commit, daemon=True)
        worker.start()
        assert done.wait(10), "a FULL commit waited on a stopped writer's fsync"
        worker.join(10)
    finally:
        store.close()
        os.close(stopped)
