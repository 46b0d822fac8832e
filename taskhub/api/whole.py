"""A response in one write: status line, headers and body through a single `transport.write`.

uvicorn writes the status line and headers on `http.response.start` and the body on
`http.response.body`: two write(2) calls, two TCP segments, two wake-ups of the client. Where a
syscall is dear (a VM, as here) the second one costs ~10 us of the event loop's CPU per submit.

uvicorn's per-request cycle (the object `send` is a method of) writes through its `transport`
attribute. `send_whole` lends it a collector for the two messages and passes what they wrote on
to the real transport at once: the same bytes, in the same order, with uvicorn's own checks and
bookkeeping (Content-Length, keep-alive, the next pipelined request) done as usual. A `send` that
is not such a method (another server, a wrapped send) gets the two messages plainly.
"""

from __future__ import annotations

from typing import Any

from litestar.types import HTTPResponseBodyEvent, HTTPResponseStartEvent, Send


class _Collector:
    """Stands in for the transport while uvicorn writes one response; the rest goes to the real one."""

    __slots__ = ("chunks", "closed", "transport")

    def __init__(self, transport: Any) -> None:
        self.transport = transport
        self.chunks: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.chunks.append(data)

    def close(self) -> None:  # after the response, as uvicorn does when the connection is not kept
        self.closed = True

    def __getattr__(self, name: str) -> Any:
        return getattr(self.transport, name)


async def send_whole(send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    start: HTTPResponseStartEvent = {"type": "http.response.start", "status": status, "headers": headers}
    end: HTTPResponseBodyEvent = {"type": "http.response.body", "body": body, "more_body": False}
    cycle = getattr(send, "__self__", None)
    transport = getattr(cycle, "transport", None)
    if transport is None:
        await send(start)
        await send(end)
        return
    collector = _Collector(transport)
    cycle.transport = collector  # type: ignore[union-attr]
    try:
        await send(start)
        await send(end)
    finally:
        cycle.transport = transport  # type: ignore[union-attr]
        if collector.chunks:
            transport.write(b"".join(collector.chunks))
        if collector.closed:
            transport.close()
