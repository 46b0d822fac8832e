"""Wait for a condition with a deadline: tests never sleep for a fixed time to synchronise.

    value = wait_until(lambda: path.exists() and path.read_text(), timeout=5)
    run = await wait_until_async(lambda: store.run(run_id) if done else None, timeout=5)

Both return the predicate's first truthy value, so a test can wait for a thing and use it. On
timeout they raise AssertionError naming what was awaited and the last value seen.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")

POLL_S = 0.01


def wait_until(predicate: Callable[[], T | None], timeout: float, *, interval: float = POLL_S, message: str = "") -> T:
    """Call `predicate` every `interval` seconds until it returns something truthy; return that."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(_timeout_text(predicate, timeout, value, message))
        time.sleep(interval)  # poll interval, bounded by the deadline above


async def wait_until_async(
    predicate: Callable[[], T | Awaitable[T | None] | None],
    timeout: float,
    *,
    interval: float = POLL_S,
    message: str = "",
) -> T:
    """Like `wait_until`, without blocking the event loop; `predicate` may be sync or async."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        value: T | None = await result if inspect.isawaitable(result) else result
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(_timeout_text(predicate, timeout, value, message))
        await asyncio.sleep(interval)  # poll interval, bounded by the deadline above


def _timeout_text(predicate: object, timeout: float, last: object, message: str) -> str:
    what = message or getattr(predicate, "__qualname__", repr(predicate))
    return f"timed out after {timeout:g}s waiting for {what} (last value: {last!r})"
