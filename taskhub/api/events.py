"""The log over HTTP: pages of events, and the live stream (SSE) that resumes from Last-Event-ID."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, get
from litestar.datastructures import State
from litestar.params import Parameter

from taskhub.api.broadcast import stream_frames
from taskhub.api.error_docs import errors
from taskhub.api.errors import is_seq_number
from taskhub.api.hub import hub_of
from taskhub.api.models import MAX_SQL_INT, EventOut, EventPage
from taskhub.api.sse import EventStream
from taskhub.errors import InvalidParams
from taskhub.events.types import TYPE_NAMES, envelope_dict
from taskhub.projections import queries

MAX_PAGE = 10_000


def all_values(request: Request[Any, Any, Any], name: str, declared: str | None) -> str | None:
    """A comma-separated filter given once (`?type=a,b`) or repeated (`?type=a&type=b`): every value
    counts, instead of the last one silently replacing the others."""
    values = request.query_params.getall(name, [])
    return ",".join(str(v) for v in values) if len(values) > 1 else declared


def parse_types(raw: str | None) -> list[str] | None:
    types = [x.strip() for x in (raw or "").split(",") if x.strip()]
    for name in types:
        if name not in TYPE_NAMES:
            raise InvalidParams(f"unknown event type {name!r}; one of {', '.join(sorted(TYPE_NAMES))}", field="type")
    return types or None


@get(
    "/api/events",
    operation_id="listEvents",
    responses=errors(422),
    summary="A page of the log, in seq order, optionally filtered",
)
async def list_events(
    state: State,
    request: Request[Any, Any, Any],
    after: Annotated[int, Parameter(ge=0, le=MAX_SQL_INT)] = 0,
    limit: Annotated[int, Parameter(ge=1, le=MAX_PAGE)] = 1000,
    run_id: str | None = None,
    type_: Annotated[str | None, Parameter(query="type", description="comma-separated event types")] = None,
) -> EventPage:
    hub = hub_of(state)
    types = parse_types(all_values(request, "type", type_))
    head = await queries.last_seq(hub.log.reader)  # read first: everything up to it is in this answer or filtered
    envs = await hub.log.read(after=after, limit=limit, run_id=run_id, types=types)
    items = [EventOut(**envelope_dict(e)) for e in envs]
    # A full page may stop short of the head; a short one covered everything up to it.
    last = envs[-1].seq if len(envs) == limit else max(head, envs[-1].seq if envs else after)
    return EventPage(items=items, last_seq=last)


def _resume_point(request: Request[Any, Any, Any], after: int | None) -> int:
    header = request.headers.get("last-event-id")
    if header:
        value = header.strip()
        if not is_seq_number(value):
            raise InvalidParams(f"Last-Event-ID must be an event seq, got {value!r}", field="Last-Event-ID")
        return int(value)
    return after or 0


@get(
    "/api/events/stream",
    operation_id="streamEvents",
    responses=errors(422, 503),
    summary="Server-Sent Events: `id: <seq>`, `event: <type>`, `data: <envelope>`; "
    "resumes from Last-Event-ID or ?after=",
    media_type="text/event-stream",
)
async def stream_events(
    state: State,
    request: Request[Any, Any, Any],
    after: Annotated[int | None, Parameter(ge=0, le=MAX_SQL_INT)] = None,
    run_id: str | None = None,
    type_: Annotated[str | None, Parameter(query="type", description="comma-separated event types")] = None,
) -> EventStream:
    hub = hub_of(state)
    types = parse_types(all_values(request, "type", type_))
    start = _resume_point(request, after)
    killer = hub.slots.acquire()
    frames = stream_frames(hub.broadcaster, start, run_id, types, killer, hub.keepalive_s)
    return EventStream(frames, killer)


ROUTES = [list_events, stream_events]
