"""SpawnThreads: blocking calls run on real threads and resolve on the caller's loop."""

from __future__ import annotations

import asyncio
import threading

import pytest

from taskhub.runtime.spawn_threads import SpawnThreads


async def test_results_and_errors_come_back_on_the_loop() -> None:
    threads = SpawnThreads(2, "test-spawn")
    try:
        names = await asyncio.gather(*(threads.submit(lambda: threading.current_thread().name) for _ in range(20)))
        assert set(names) <= {"test-spawn_0", "test-spawn_1"}  # never the loop's own thread
        assert await threads.submit(pow, 2, 10) == 1024
        with pytest.raises(ZeroDivisionError):
            await threads.submit(divmod, 1, 0)
    finally:
        await asyncio.to_thread(threads.shutdown)


async def test_a_cancelled_caller_does_not_stop_the_call() -> None:
    threads = SpawnThreads(1, "test-spawn")
    release, ran = threading.Event(), threading.Event()

    def blocking() -> str:
        release.wait(10)
        ran.set()
        return "done"

    try:
        call = threads.submit(blocking)
        call.cancel()
        release.set()
        # The thread carries on; what it returns is dropped, not set on the cancelled future.
        assert await threads.submit(lambda: "next") == "next"
        assert ran.is_set() and call.cancelled()
    finally:
        await asyncio.to_thread(threads.shutdown)


async def test_shutdown_finishes_what_was_submitted() -> None:
    threads = SpawnThreads(1, "test-spawn")
    done: list[int] = []
    calls = [threads.submit(done.append, i) for i in range(5)]
    await asyncio.to_thread(threads.shutdown)
    assert done == [0, 1, 2, 3, 4]
    await asyncio.gather(*calls)  # their results reach the loop after the threads are gone
