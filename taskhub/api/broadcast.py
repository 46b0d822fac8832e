"""One follower of the log per API process, fanned out to every SSE client.

The pump reads each new event once (woken by the log's `follow`: its own commits and the database
file's changes, never a per-client poll), encodes its SSE frame once, and offers it to each matching
subscriber's bounded buffer. A subscriber whose buffer overflows is dropped (its response is cut
off); it resumes from its last event id on reconnect, reading the gap from the database.

`stream_frames` is one client's whole life: catch up from the database in pages, subscribe, read
the database once more to cover the moment of subscribing, then serve the live buffer, skipping
any event at or below the last seq it sent. No gap, no duplicate.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterator, Sequence

from taskhub.api.sse import PING, Killer, envelope_frame
from taskhub.events.log import Log
from taskhub.events.types import Envelope
from taskhub.projections import queries

log = logging.getLogger(__name__)

PAGE = 500  # events per catch-up read
RESTART_S = 1.0  # pause before re-following after a read error


class Subscriber:
    def __init__(self, run_id: str | None, types: frozenset[str] | None, maxlen: int, killer: Killer) -> None:
        self.run_id = run_id
        self.types = types
        self.maxlen = maxlen
        self.killer = killer
        self.frames: deque[tuple[int, bytes]] = deque()
        self.wake = asyncio.Event()
        self.dropped = False

    def matches(self, env: Envelope) -> bool:
        if self.run_id is not None and env.run_id != self.run_id:
            return False
        return self.types is None or env.type in self.types

    def offer(self, seq: int, frame: bytes) -> None:
        if self.dropped:
            return
        if len(self.frames) >= self.maxlen:
            self.dropped = True
            self.frames.clear()
            self.wake.set()
            self.killer.kill()
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

    def subscribe(self, run_id: str | None, types: frozenset[str] | None, killer: Killer) -> Subscriber:
        sub = Subscriber(run_id, types, self.queue_size, killer)
        self._subs.add(sub)
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        self._subs.discard(sub)

    async def _pump(self) -> None:
        while True:
            try:
                async for env in self.log.follow(after=self.position):
                    self.position = env.seq
                    subs = [s for s in self._subs if s.matches(env)]
                    if not subs:
                        continue
                    frame = envelope_frame(env)
                    for sub in subs:
                        sub.offer(env.seq, frame)
                        if sub.dropped:
                            self._drop(sub)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("broadcast.follow_failed position=%d; restarting", self.position)
                await asyncio.sleep(RESTART_S)

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
    try:
        yield b"retry: 1000\n\n"
        for phase in ("catch_up", "subscribed"):
            if phase == "subscribed":
                sub = broadcaster.subscribe(run_id, type_set, killer)
            while True:
                page = await reader.read(after=last, limit=PAGE, run_id=run_id, types=types)
                for env in page:
                    yield envelope_frame(env)
                    last = env.seq
                if len(page) < PAGE:
                    break
        assert sub is not None
        while not sub.dropped:
            if not sub.frames:
                sub.wake.clear()
                try:
                    await asyncio.wait_for(sub.wake.wait(), keepalive_s)
                except asyncio.TimeoutError:
                    yield PING
                    continue
            while sub.frames and not sub.dropped:
                seq, data = sub.frames.popleft()
                if seq > last:
                    last = seq
                    yield data
    finally:
        if sub is not None:
            broadcaster.unsubscribe(sub)
        killer.close()
