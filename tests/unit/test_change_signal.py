"""ChangeSignal: woken by the write gate's ring (never by the WAL's writes), paused and resumed."""

from __future__ import annotations

import asyncio
from pathlib import Path

from taskhub.events.follow import ChangeSignal
from tests.helpers.waiting import wait_until_async


async def test_the_gates_ring_wakes_followers_and_the_wals_writes_do_not(tmp_path: Path) -> None:
    """A commit writes the WAL ~20 times before it is visible, then rings the lock file once."""
    signal = ChangeSignal(tmp_path / "db")
    signal.start()
    try:
        for _ in range(3):
            with open(tmp_path / "db-wal", "ab") as wal:
                wal.write(b"frames of a commit not yet visible")
        (tmp_path / "db-lock").write_bytes(b"\0")  # the ring, after the commit
        await wait_until_async(lambda: signal.generation >= 1, timeout=10, message="the ring's wake-up")
        # The kernel queues events in order: the WAL's were read with the ring's, or before it.
        assert signal.generation == 1
    finally:
        await signal.stop()


async def test_paused_it_hears_nothing_and_on_resume_it_wakes_for_what_came(tmp_path: Path) -> None:
    signal = ChangeSignal(tmp_path / "db")
    signal.start()
    try:
        (tmp_path / "db-lock").write_bytes(b"a ring")  # the kernel queues the event at once
        await wait_until_async(lambda: signal.generation >= 1, timeout=10, message="the first change")
        before = signal.generation
        signal.listen(False)
        (tmp_path / "db-lock").write_bytes(b"another ring, while paused")
        for _ in range(3):
            await asyncio.sleep(0)  # loop turns in which a listening watch would have read it
        assert signal.generation == before
        signal.listen(True)  # reads what came meanwhile, and wakes followers for it
        assert signal.generation == before + 1
        signal.listen(True)  # resuming twice is harmless
    finally:
        await signal.stop()


async def test_many_rings_while_paused_wake_once_on_resume(tmp_path: Path) -> None:
    signal = ChangeSignal(tmp_path / "db")
    signal.start()
    try:
        signal.listen(False)
        with open(tmp_path / "db-lock", "r+b") as lock:
            for _ in range(10_000):  # more than the kernel's queue holds, were they not merged
                lock.write(b"\0")
                lock.flush()
                with open(tmp_path / "db-wal", "ab") as wal:  # other files: not even queued
                    wal.write(b"x")
        before = signal.generation
        signal.listen(True)
        assert signal.generation == before + 1
    finally:
        await signal.stop()
