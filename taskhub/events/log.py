"""The log as one async object: group-commit writes, short reads, and live following."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from taskhub.events.clock import Clock, system_clock
from taskhub.events.follow import ChangeSignal, follow, open_reader, read_events
from taskhub.events.store import Txn, connect
from taskhub.events.types import Envelope
from taskhub.events.writer import LogWriter, LoopLogWriter

T = TypeVar("T")


class Log:
    """Open with `await Log.open(path)`; `run(op)` writes, `reader` reads, `follow()` tails."""

    def __init__(self, writer: LogWriter, reader: aiosqlite.Connection, signal: ChangeSignal, clock: Clock) -> None:
        self.writer = writer
        self.reader = reader
        self.signal = signal
        self.clock = clock

    @classmethod
    async def open(
        cls,
        db_path: Path | str,
        synchronous: str = "FULL",
        clock: Clock = system_clock,
        watch: bool = True,
        writes_on_loop: bool = False,
    ) -> Log:
        """`writes_on_loop`: commit on the loop's own thread (LoopLogWriter), not a writer thread."""
        connect(db_path, synchronous).close()  # create and migrate before any reader opens the file
        writer = (LoopLogWriter if writes_on_loop else LogWriter)(db_path, synchronous, clock)
        writer.start()
        signal = ChangeSignal(db_path)
        writer.add_loop_listener(asyncio.get_running_loop(), signal.notify)
        if watch:
            signal.start()
        else:
            signal.bind()
        reader = await open_reader(db_path)
        return cls(writer, reader, signal, clock)

    async def close(self) -> None:
        await self.signal.stop()
        await self.writer.close()
        await self.reader.close()

    def run(self, op: Callable[[Txn], T]) -> Coroutine[Any, Any, T]:
        """`await log.run(op)`: the writer's own coroutine, not one wrapped in another."""
        return self.writer.run(op)

    async def read(
        self, after: int = 0, limit: int = 1000, run_id: str | None = None, types: Sequence[str] | None = None
    ) -> list[Envelope]:
        return await read_events(self.reader, after, limit, run_id, types)

    def follow(
        self, after: int = 0, run_id: str | None = None, types: Sequence[str] | None = None
    ) -> AsyncIterator[Envelope]:
        return follow(self.reader, self.signal, after, run_id, types)
