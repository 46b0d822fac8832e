"""Run routes: submit, list (cursor pages), show, cancel, retry, and a run's events."""

from __future__ import annotations

import re
from typing import Annotated, Any

from litestar import Request, Response, get, post
from litestar.datastructures import State
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import Parameter

from taskhub.api.error_docs import WRITE_ERRORS, errors
from taskhub.api.errors import is_seq_number
from taskhub.api.events import all_values
from taskhub.api.hub import Hub, hub_of
from taskhub.api.models import MAX_SQL_INT, CancelBody, EventOut, EventPage, RunOut, RunPage, SubmitBody
from taskhub.api.submit import submit, submitted
from taskhub.api.views import blockers, cheap_blockers, run_out
from taskhub.errors import IllegalTransition, InvalidParams, UnknownRun
from taskhub.events.store import Txn
from taskhub.events.types import envelope_dict
from taskhub.projections import ops, queries
from taskhub.projections import transitions as t
from taskhub.projections.decisions import decide_cancel
from taskhub.projections.runs import RunView
from taskhub.projections.tables import load_run

RUN_ID_RE = re.compile(r"r-[A-Za-z0-9]+")
MAX_PAGE = 500


def check_run_id(run_id: str) -> str:
    if not RUN_ID_RE.fullmatch(run_id):
        raise UnknownRun(f"No such run: {run_id!r}")
    return run_id


async def find_run(hub: Hub, run_id: str) -> RunView:
    view = await queries.get_run(hub.log.reader, check_run_id(run_id))
    if view is None:
        raise UnknownRun(f"No such run: {run_id!r}")
    return view


async def full_view(hub: Hub, view: RunView) -> RunOut:
    return run_out(view, await blockers(view, hub.log.reader, hub.registry, hub.live, hub.clock()))


@post(
    "/api/runs",
    operation_id="submitRun",
    status_code=201,
    summary="Submit a run: 201 with the queued run; 200 with the first run on a repeated idempotency_key",
    responses={
        **errors(*WRITE_ERRORS, 404),
        200: ResponseSpec(data_container=RunOut, description="The run first created with this idempotency_key"),
    },
)
async def submit_run(state: State, data: SubmitBody) -> Response[RunOut]:
    """Litestar's way in; a well-formed request is answered by SubmitFastPath (submit.py) before it."""
    out, status = await submitted(hub_of(state), data)
    return Response(out, status_code=status)


@get(
    "/api/runs",
    operation_id="listRuns",
    responses=errors(422),
    summary="Runs, newest first, in pages stable under concurrent inserts",
)
async def list_runs(
    state: State,
    request: Request[Any, Any, Any],
    status: Annotated[str | None, Parameter(description="comma-separated statuses")] = None,
    task_id: str | None = None,
    limit: Annotated[int, Parameter(ge=1, le=MAX_PAGE)] = 50,
    cursor: Annotated[str | None, Parameter(description="next_cursor of the previous page")] = None,
) -> RunPage:
    hub = hub_of(state)
    statuses = [s.strip() for s in (all_values(request, "status", status) or "").split(",") if s.strip()]
    for s in statuses:
        if s not in t.STATUSES:
            raise InvalidParams(f"unknown status {s!r}; one of {', '.join(t.STATUSES)}", field="status")
    before: int | None = None
    if cursor:
        if not is_seq_number(cursor):
            raise InvalidParams(f"bad cursor {cursor!r}: pass next_cursor from the previous page", field="cursor")
        before = int(cursor)
    views = await queries.list_runs(hub.log.reader, statuses or None, task_id, limit, before)
    items = [await full_view(hub, v) if v.status == t.QUEUED else run_out(v) for v in views]
    next_cursor = str(views[-1].num) if len(views) == limit else None
    return RunPage(items=items, next_cursor=next_cursor)


@get(
    "/api/runs/{run_id:str}",
    operation_id="getRun",
    responses=errors(404),
    summary="One run, with blocked_by while queued",
)
async def get_run(state: State, run_id: str) -> RunOut:
    hub = hub_of(state)
    return await full_view(hub, await find_run(hub, run_id))


def _cancel(txn: Txn, run_id: str, reason: str) -> RunView:
    view = load_run(txn.conn, run_id)  # decided on the view inside the write transaction
    if view is None:
        raise UnknownRun(f"No such run: {run_id!r}")
    events = decide_cancel(view, reason)
    return ops.append_run_events(txn, run_id, events) if events else view


@post(
    "/api/runs/{run_id:str}/cancel",
    operation_id="cancelRun",
    responses=errors(*WRITE_ERRORS, 404, 409),
    status_code=202,
    summary="Cancel: a queued run at once, a running one through its worker; 409 once finished",
)
async def cancel_run(state: State, run_id: str, data: CancelBody | None = None) -> RunOut:
    hub = hub_of(state)
    check_run_id(run_id)
    reason = data.reason if data is not None else ""
    view = await hub.log.run(lambda txn: _cancel(txn, run_id, reason or "cancelled through the API"))
    return run_out(view)


@post(
    "/api/runs/{run_id:str}/retry",
    operation_id="retryRun",
    responses=errors(404, 409, 415, 422),
    status_code=201,
    summary="A new run of the same task and params (retry_of set); 409 while the run has not finished",
)
async def retry_run(state: State, run_id: str) -> RunOut:
    hub = hub_of(state)
    old = await find_run(hub, run_id)
    if old.status not in t.TERMINAL:
        raise IllegalTransition(f"run {run_id} is {old.status}: only a finished run can be retried")
    body = SubmitBody(task_id=old.task_id, params=old.params, priority=old.priority)
    view, _ = await submit(hub, body, retry_of=old.run_id)
    return run_out(view, await cheap_blockers(view, hub.log.reader, hub.live, hub.clock()))


@get(
    "/api/runs/{run_id:str}/events",
    operation_id="listRunEvents",
    responses=errors(404, 422),
    summary="A run's events, in order",
)
async def run_events(
    state: State,
    run_id: str,
    after: Annotated[int, Parameter(ge=0, le=MAX_SQL_INT)] = 0,
    limit: Annotated[int, Parameter(ge=1, le=10_000)] = 1000,
) -> EventPage:
    hub = hub_of(state)
    await find_run(hub, run_id)
    envs = await hub.log.read(after=after, limit=limit, run_id=run_id)
    items = [EventOut(**envelope_dict(e)) for e in envs]
    return EventPage(items=items, last_seq=envs[-1].seq if envs else after)


ROUTES = [submit_run, list_runs, get_run, cancel_run, retry_run, run_events]
