"""ChangeSignal's trailing wake-ups: they follow the latest file change, with one chain of timers."""

from __future__ import annotations

import asyncio
from pathlib import Path

from taskhub.events.follow import TRAILING_WAKE_S, ChangeSignal
from tests.helpers.waiting import wait_until_async


async def test_a_burst_of_changes_gets_one_chain_of_trailing_wake_ups(tmp_path: Path) -> None:
    signal = ChangeSignal(tmp_path / "db")
    signal.bind()
    loop = asyncio.get_running_loop()

    def pending_trailing_timers() -> int:  # asyncio keeps its timers in `_scheduled`
        return sum(1 for h in loop._scheduled if h._callback == signal._trailing and not h.cancelled())  # type: ignore[attr-defined]

    for _ in range(10):  # a burst of commits
        signal._file_changed()
        assert pending_trailing_timers() == 1  # one chain, re-armed: not three timers per change
    assert signal.generation == 10  # each change woke followers at once
    last = signal._last_change
    await wait_until_async(
        lambda: signal.generation == 10 + len(TRAILING_WAKE_S), timeout=10, message="the trailing wake-ups"
    )
    assert loop.time() - last >= TRAILING_WAKE_S[-1]  # the last one came TRAILING_WAKE_S[-1] after the burst
    await wait_until_async(lambda: signal._trail_timer is None, timeout=10, message="the chain to end")
    await signal.stop()


async def test_paused_it_hears_nothing_and_on_resume_it_wakes_for_what_came(tmp_path: Path) -> None:
    signal = ChangeSignal(tmp_path / "db")
    signal.start()
    try:
        (tmp_path / "db-wal").write_bytes(b"a commit")  # the kernel queues the event at once
        await wait_until_async(lambda: signal.generation >= 1, timeout=10, message="the first change")
        before = signal.generation
        signal.listen(False)
        (tmp_path / "db-wal").write_bytes(b"another commit, while paused")
        for _ in range(3):
            await asyncio.sleep(0)  # loop turns in which a listening watch would have read it
        assert signal.generation == before
        signal.listen(True)  # reads what came meanwhile, and wakes followers for it
        assert signal.generation == before + 1
        signal.listen(True)  # resuming twice is harmless
    finally:
        await signal.stop()


async def test_events_dropped_during_a_long_pause_still_wake_on_resume(tmp_path: Path) -> None:
    signal = ChangeSignal(tmp_path / "db")
    signal.start()
    try:
        signal.listen(False)
        limit = int(Path("/proc/sys/fs/inotify/max_queued_events").read_text())
        with open(tmp_path / "other-a", "wb") as a, open(tmp_path / "other-b", "wb") as b:
            for _ in range(limit // 2 + 10):  # alternating, so the kernel cannot merge them
                a.write(b"x")
                a.flush()
                b.write(b"x")
                b.flush()
        # Only unrelated files changed, but the queue overflowed: what was dropped may have been ours.
        before = signal.generation
        signal.listen(True)
        assert signal.generation == before + 1
    finally:
        await signal.stop()
