"""A run's stdout/stderr: byte ranges (tail-first with a negative offset) and a live SSE follow.

Offsets are bytes. The live stream never splits a UTF-8 character across messages; text is decoded
with replacement characters for bytes that are not UTF-8. Each `log` message carries `offset` (where
its text starts), `next_offset` (where the next one starts) and is sent with `id: <next_offset>`, so
an EventSource reconnect resumes exactly (Last-Event-ID).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any

import msgspec
from litestar import Request, Response, get
from litestar.datastructures import State
from litestar.params import Parameter

from taskhub.api.error_docs import errors
from taskhub.api.errors import is_seq_number
from taskhub.api.hub import Hub, hub_of
from taskhub.api.models import MAX_SQL_INT
from taskhub.api.runs import find_run
from taskhub.api.sse import PING, EventStream, Killer, frame
from taskhub.errors import InvalidParams, NotFound
from taskhub.projections import queries
from taskhub.projections import transitions as t

STREAMS = ("stdout", "stderr")
DEFAULT_LIMIT = 1 << 20
MAX_LIMIT = 8 << 20
CHUNK = 64 << 10  # bytes per live `log` message at most
MIN_INTERVAL_S = 0.05  # a busy log never makes a follower spin
_ENCODER = msgspec.json.Encoder()


def contained(base: Path, path: Path) -> bool:
    """`path` resolves (symlinks followed) to somewhere inside `base`."""
    root = os.path.realpath(base)
    return os.path.realpath(path).startswith(root + os.sep)


def log_path(hub: Hub, run_id: str, stream: str) -> Path:
    if stream not in STREAMS:
        raise NotFound(f"no log stream {stream!r}: use stdout or stderr")
    base = hub.settings.run_dir(run_id)
    path = base / f"{stream}.log"
    if (path.exists() or path.is_symlink()) and not contained(base, path):
        raise NotFound(f"no log {stream} for run {run_id}")
    return path


def read_range(path: Path, offset: int, limit: int) -> tuple[int, int, bytes]:
    """(file size, start, bytes) for `limit` bytes from `offset` (negative: from the end)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return 0, 0, b""
    except OSError as exc:  # a symlink swapped in, a directory: never follow it
        raise NotFound(f"log not readable: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        start = max(0, size + offset) if offset < 0 else min(offset, size)
        f.seek(start)
        return size, start, f.read(limit)


def complete_utf8(data: bytes) -> int:
    """Length of the longest prefix of `data` that does not end inside a UTF-8 character."""
    n = len(data)
    for back in range(1, min(4, n) + 1):
        byte = data[n - back]
        if byte & 0xC0 != 0x80:  # ASCII or a lead byte
            if byte >= 0xF0:
                need = 4
            elif byte >= 0xE0:
                need = 3
            elif byte >= 0xC0:
                need = 2
            else:
                need = 1
            return n if back >= need else n - back
    return n  # only continuation bytes: not UTF-8 anyway, send them replaced


@get(
    "/api/runs/{run_id:str}/logs/{stream:str}",
    operation_id="getRunLog",
    responses=errors(404, 422),
    summary="Bytes of stdout or stderr from offset (negative: from the end); X-Log-Size is the file's size",
    media_type="text/plain; charset=utf-8",
)
async def get_log(
    state: State,
    run_id: str,
    stream: str,
    offset: Annotated[int, Parameter(ge=-MAX_SQL_INT, le=MAX_SQL_INT)] = 0,
    limit: Annotated[int, Parameter(ge=0, le=MAX_LIMIT)] = DEFAULT_LIMIT,
) -> Response[bytes]:
    hub = hub_of(state)
    await find_run(hub, run_id)
    path = log_path(hub, run_id, stream)
    size, start, data = await asyncio.to_thread(read_range, path, offset, limit)
    headers = {"X-Log-Size": str(size), "X-Log-Offset": str(start), "X-Log-Next-Offset": str(start + len(data))}
    # Litestar adds "; charset=utf-8" to every text/* type itself: naming it here sent it twice.
    return Response(data, media_type="text/plain", headers=headers)


async def log_frames(hub: Hub, run_id: str, path: Path, offset: int, killer: Killer) -> AsyncIterator[bytes]:
    signal = hub.log.signal
    pos: int | None = offset if offset >= 0 else None
    seen = -1
    finished = False
    last_sent = time.monotonic()
    try:
        yield b"retry: 1000\n\n"
        while True:
            began = time.monotonic()
            generation = signal.generation
            if generation != seen:  # something was committed: has this run finished?
                seen = generation
                view = await queries.get_run(hub.log.reader, run_id)
                finished = view is None or view.status in t.TERMINAL
            while True:
                read_at = offset if pos is None else pos
                size, start, data = await asyncio.to_thread(read_range, path, read_at, CHUNK)
                pos = start if pos is None else pos
                if start < pos:  # the file shrank (replaced): start again from its end
                    pos = size
                    break
                used = len(data) if finished and len(data) < CHUNK else complete_utf8(data)
                if used == 0:
                    break
                text = data[:used].decode("utf-8", errors="replace")
                body = _ENCODER.encode({"offset": pos, "next_offset": pos + used, "text": text})
                yield frame("log", body, pos + used)
                pos += used
                last_sent = time.monotonic()
                if len(data) < CHUNK and used == len(data):
                    break
            if finished:  # the status was read before the file: all the run wrote has been sent
                yield frame("end", _ENCODER.encode({"offset": pos, "status": view.status if view else None}))
                return
            await signal.wait(generation, hub.log_poll_s)
            if killer.stopping:
                return
            if (spare := MIN_INTERVAL_S - (time.monotonic() - began)) > 0:
                await asyncio.sleep(spare)
            if time.monotonic() - last_sent >= hub.keepalive_s:
                yield PING
                last_sent = time.monotonic()
    finally:
        killer.close()


@get(
    "/api/runs/{run_id:str}/logs/{stream:str}/stream",
    operation_id="streamRunLog",
    responses=errors(404, 422, 503),
    summary="SSE of new log text from ?offset= (or Last-Event-ID): `event: log` {offset, next_offset, text}, "
    "then `event: end` once the run has finished and everything was sent",
    media_type="text/event-stream",
)
async def stream_log(
    state: State,
    request: Request[Any, Any, Any],
    run_id: str,
    stream: str,
    offset: Annotated[int, Parameter(ge=-MAX_SQL_INT, le=MAX_SQL_INT)] = 0,
) -> EventStream:
    hub = hub_of(state)
    await find_run(hub, run_id)
    path = log_path(hub, run_id, stream)
    resume = request.headers.get("last-event-id")
    if resume:
        if not is_seq_number(resume.strip()):
            raise InvalidParams(f"Last-Event-ID must be a byte offset, got {resume!r}", field="Last-Event-ID")
        offset = int(resume.strip())
    killer = hub.slots.acquire()
    return EventStream(log_frames(hub, run_id, path, offset, killer), killer)


ROUTES = [get_log, stream_log]
