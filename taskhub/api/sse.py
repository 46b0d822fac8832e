"""Server-Sent Events plumbing: frame encoding and a streaming response the server can cut off.

Litestar's `Stream` stops only when the client disconnects. A slow client blocks in `send()` while
the kernel buffers fill, so the broadcaster needs a way to end that response from outside: `Killer`
cancels the response's task group, which closes the connection (the client resumes from its last
event id).
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import AsyncIterator, Callable, Iterable
from functools import partial
from typing import Any

from anyio import CancelScope, create_task_group
from litestar import Litestar, Request
from litestar.background_tasks import BackgroundTask, BackgroundTasks
from litestar.datastructures import Cookie
from litestar.enums import MediaType
from litestar.response import Stream
from litestar.response.base import ASGIResponse
from litestar.response.streaming import ASGIStreamingResponse
from litestar.types import Receive, Scope, Send, TypeEncodersMap

from taskhub.events.types import Envelope, encode_envelope

log = logging.getLogger(__name__)

PING = b": ping\n\n"
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def envelope_frame(env: Envelope) -> bytes:
    return b"id: %d\nevent: %s\ndata: %s\n\n" % (env.seq, env.type.encode(), encode_envelope(env))


def frame(event: str, data: bytes, event_id: str | int | None = None) -> bytes:
    head = b"" if event_id is None else b"id: %s\n" % str(event_id).encode()
    return head + b"event: %s\ndata: %s\n\n" % (event.encode(), data)


class Killer:
    """Ends one streaming response from outside its task (a slow SSE client); `close()` runs
    `on_close` once, however the response ended (even if it never started)."""

    def __init__(self, on_close: Callable[[], None] | None = None) -> None:
        self.scope: CancelScope | None = None
        self.killed = False
        self.stopping = False  # the server is shutting down: end the stream cleanly
        self.on_stop: Callable[[], None] | None = None  # wakes the stream's generator
        self._on_close = on_close

    def stop(self) -> None:
        self.stopping = True
        if self.on_stop is not None:
            self.on_stop()

    def set_on_close(self, on_close: Callable[[], None]) -> None:
        self._on_close = on_close

    def close(self) -> None:
        on_close, self._on_close = self._on_close, None
        if on_close is not None:
            on_close()

    def kill(self) -> None:
        self.killed = True
        if self.scope is not None:
            self.scope.cancel()


class _KillableStreamingResponse(ASGIStreamingResponse):
    def __init__(self, *, killer: Killer, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.killer = killer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.killer.close()

    async def send_body(self, send: Send, receive: Receive) -> None:
        try:
            async with create_task_group() as task_group:
                self.killer.scope = task_group.cancel_scope
                if self.killer.killed:
                    task_group.cancel_scope.cancel()
                task_group.start_soon(partial(self._stream, send))
                await self._listen_for_disconnect(cancel_scope=task_group.cancel_scope, receive=receive)
        finally:
            aclose = getattr(self.iterator, "aclose", None)
            if aclose is not None:
                await aclose()  # run the generator's cleanup now, not at garbage collection


class EventStream(Stream):
    """`text/event-stream` response over an async iterator of ready-made frames."""

    def __init__(self, frames: AsyncIterator[bytes], killer: Killer) -> None:
        super().__init__(frames, media_type="text/event-stream", headers=dict(SSE_HEADERS))
        self.killer = killer

    def to_asgi_response(
        self,
        app: Litestar | None,
        request: Request[Any, Any, Any],
        *,
        background: BackgroundTask | BackgroundTasks | None = None,
        cookies: Iterable[Cookie] | None = None,
        encoded_headers: Iterable[tuple[bytes, bytes]] | None = None,
        headers: dict[str, str] | None = None,
        is_head_response: bool = False,
        media_type: MediaType | str | None = None,
        status_code: int | None = None,
        type_encoders: TypeEncodersMap | None = None,
    ) -> ASGIResponse:
        merged = {**headers, **self.headers} if headers is not None else self.headers
        all_cookies = self.cookies if cookies is None else itertools.chain(self.cookies, cookies)
        return _KillableStreamingResponse(
            killer=self.killer,
            background=self.background or background,
            content_length=0,
            cookies=all_cookies,
            encoded_headers=encoded_headers,
            encoding=self.encoding,
            headers=merged,
            is_head_response=is_head_response,
            iterator=self.iterator,
            media_type="text/event-stream",
            status_code=self.status_code or status_code,
        )
