"""One follower of the log per API process, fanned out to every SSE client.

The pump reads each new event once (woken by the log's `follow`: its own commits and the database
file's changes, never a per-client poll), encodes its SSE frame once, and offers it to each matching
subscriber's bounded buffer. A subscriber whose buffer overflows is dropped (its response is cut
off); it resumes from its last event id on reconnect, reading the gap from the database.

`stream_frames` is one client's whole life: catch up from the database in pages, subscribe, read
the database once more to cover the moment of subscribing, then serve the live buffer, skipping
any event at or below the last seq it sent. No gap, no duplicate. A burst larger than the buffer,
offered while the client keeps up, sends that client back to the database instead of dropping it;
only a client blocked on its socket with a full buffer is cut off.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from typing import cast

from taskhub.api.sse import PING, Killer, envelope_frame
from taskhub.events.log import Log
from taskhub.events.types import Envelope
from taskhub.projections import queries

log = logging.getLogger(__name__)

PAGE = 500  # events per catch-up read
RESTART_S = 1.0  # pause before re-following after a read error


class Subscriber:
    """One client's buffer. `position` is the last seq the client was sent; `in_send` is true while the
    client's generator waits for the socket to take a frame (only a slow reader waits there)."""

    def __init__(self, run_id: str | None, types: frozenset[str] | None, maxlen: int, killer: Killer) -> None:
        self.run_id = run_id
        self.types = types
        self.maxlen = maxlen
        self.killer = killer
        self.frames: deque[tuple[int, bytes]] = deque()
        self.wake = asyncio.Event()
        self.position = 0
        self.in_send = False
        self.lagging = False  # the buffer overflowed while the client kept up: re-read from the database
        self.dropped = False

    def matches(self, env: Envelope) -> bool:
        if self.run_id is not None and env.run_id != self.run_id:
            return False
        return self.types is None or env.type in self.types

    def offer(self, seq: int, frame: bytes) -> None:
        if self.dropped or self.lagging or seq <= self.position:
            return
        if len(self.frames) >= self.maxlen:
            self.frames.clear()
            if self.in_send:  # blocked on its socket with a full buffer: a slow client
                self.dropped = True
                self.killer.kill()
            else:  # a burst larger than the buffer: the client catches up from the database
                self.lagging = True
            self.wake.set()
            return
        self.frames.append((seq, frame))
        self.wake.set()


class Broadcaster:
    def __init__(self, log_: Log, queue_size: int) -> None:
        self.log = log_
        self.queue_size = queue_size
        self.position = 0  # the last seq dispatched
        self.dropped = 0  # slow clients cut off so far
        self._subs: set[Subscriber] = set()
        self._has_subs = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.position = await queries.last_seq(self.log.reader)
        self._task = asyncio.create_task(self._pump(), name="taskhub-api-broadcast")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for sub in list(self._subs):
            sub.killer.kill()

    def subscribe(self, run_id: str | None, types: frozenset[str] | None, killer: Killer, position: int) -> Subscriber:
        """A live buffer for a client that has every matching event up to `position` already."""
        sub = Subscriber(run_id, types, self.queue_size, killer)
        sub.position = position
        self._subs.add(sub)
        self._has_subs.set()
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        self._subs.discard(sub)

    async def _pump(self) -> None:
        """Follow the log while anyone listens. Idle, it reads nothing: a client that subscribes has
        read the database up to its `position`, so following resumes from the lowest of those."""
        while True:
            await self._has_subs.wait()
            if self._subs:
                self.position = min(s.position for s in self._subs)
            try:
                following = cast(AsyncGenerator[Envelope, None], self.log.follow(after=self.position))
                async with contextlib.aclosing(following) as events:
                    async for env in events:
                        self.position = env.seq
                        if not self._subs:
                            self._has_subs.clear()
                            break
                        self._dispatch(env)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("broadcast.follow_failed position=%d; restarting", self.position)
                await asyncio.sleep(RESTART_S)

    def _dispatch(self, env: Envelope) -> None:
        subs = [s for s in self._subs if s.matches(env)]
        if not subs:
            return
        frame = envelope_frame(env)
        for sub in subs:
            sub.offer(env.seq, frame)
            if sub.dropped:
                self._drop(sub)

    def _drop(self, sub: Subscriber) -> None:
        self._subs.discard(sub)
        self.dropped += 1
        log.warning("sse.client_dropped reason=slow_client buffered=%d", sub.maxlen)


async def stream_frames(
    broadcaster: Broadcaster,
    after: int,
    run_id: str | None,
    types: Sequence[str] | None,
    killer: Killer,
    keepalive_s: float,
) -> AsyncIterator[bytes]:
    """The frames of one SSE client from `after` on, with keepalive comments."""
    reader = broadcaster.log
    type_set = frozenset(types) if types else None
    last = after
    sub: Subscriber | None = None

    async def from_database() -> AsyncIterator[bytes]:
        nonlocal last
        while True:
            page = await reader.read(after=last, limit=PAGE, run_id=run_id, types=types)
            for env in page:
                last = env.seq
                if sub is not None:
                    sub.position = last
                    sub.in_send = True
                yield envelope_frame(env)
                if sub is not None:
                    sub.in_send = False
            if len(page) < PAGE:
                return

    try:
        yield b"retry: 1000\n\n"
        async for data in from_database():  # most of a long catch-up, before buffering anything live
            yield data
        sub = broadcaster.subscribe(run_id, type_set, killer, last)
        killer.on_stop = sub.wake.set
        async for data in from_database():  # what committed while subscribing; the buffer has the rest
            yield data
        while not sub.dropped and not killer.stopping:
            if sub.lagging:
                sub.lagging = False  # buffer again first, then read the gap: no event is missed
                async for data in from_database():
                    yield data
                continue
            if not sub.frames:
                sub.wake.clear()
                try:
                    await asyncio.wait_for(sub.wake.wait(), keepalive_s)
                except asyncio.TimeoutError:
                    yield PING
                continue
            seq, data = sub.frames.popleft()
            if seq > last:
                last = sub.position = seq
                sub.in_send = True
                yield data
                sub.in_send = False
    finally:
        if sub is not None:
            broadcaster.unsubscribe(sub)
        killer.close()
