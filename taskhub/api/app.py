"""The Litestar application factory: `create_app(settings)`; resources live in the lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from functools import partial

from litestar import Litestar
from litestar.config.app import AppConfig
from litestar.exceptions import MethodNotAllowedException
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.plugins import PluginProtocol
from litestar.plugins.core import MsgspecDIPlugin
from litestar.utils import normalize_path

from taskhub.api import artifacts, events, logs, runs, spa, system, tasks
from taskhub.api.broadcast import Broadcaster
from taskhub.api.errors import EXCEPTION_HANDLERS
from taskhub.api.head import HeadAsGet
from taskhub.api.hub import CLIENT_QUEUE, KEEPALIVE_S, LOG_POLL_S, Hub, StreamSlots, extra_float
from taskhub.api.query import DropEmptyParams
from taskhub.api.security import SecurityMiddleware
from taskhub.api.submit import SubmitFastPath
from taskhub.api.system import containment
from taskhub.events.clock import Clock, system_clock
from taskhub.events.log import Log
from taskhub.runtime.registry_watch import RegistryWatcher
from taskhub.settings import Settings

log = logging.getLogger(__name__)

API_VERSION = "1"
STOP_TIMEOUT_S = 5.0


async def _sqlite_version(log_: Log) -> str:
    async with log_.reader.execute("SELECT sqlite_version()") as cur:
        row = await cur.fetchone()
    return str(row[0]) if row else "unknown"


class _Litestar(Litestar):
    """Litestar without the pydantic and attrs plugins it adds whenever those packages are installed.
    No handler here takes or returns their models (task params travel as plain JSON; their schemas
    come from taskhub.registry), and the pydantic plugin alone is ~11 MiB of idle RSS."""

    @staticmethod
    def _get_default_plugins(plugins: list[PluginProtocol]) -> list[PluginProtocol]:
        return [*plugins, MsgspecDIPlugin()]


def _routes(app: Litestar, path: str, method: str) -> bool:
    """Whether a route serves `method` at `path` (asked only for a write the guard would refuse)."""
    try:
        app.asgi_router.handle_routing(path=normalize_path(path), method=method)  # type: ignore[arg-type]
    except MethodNotAllowedException:
        return False
    except Exception:  # no such path, or one the router cannot parse: the guard answers as before
        return True
    return True


def create_app(settings: Settings, *, clock: Clock = system_clock) -> Litestar:
    """The API and UI for one TaskHub home. Knobs for tests live in `settings.extra`:
    `sse_keepalive_s`, `sse_queue_size`, `log_poll_s`."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        # The database files are watched (to wake followers on other processes' commits) only from
        # the first SSE stream on: until someone follows, each wake-up is wasted, and this process's
        # own commits alone cause one per WAL write (~11 per group commit), each with three trailing
        # timers: 10-20 us of loop CPU per submit.
        log_ = await Log.open(settings.db_path, settings.synchronous, clock=clock, watch=False)
        watcher: RegistryWatcher | None = None
        watch_task: asyncio.Task[None] | None = None
        broadcaster = Broadcaster(log_, int(extra_float(settings, "sse_queue_size", CLIENT_QUEUE)))
        try:
            watcher = await asyncio.to_thread(RegistryWatcher, settings.tasks_dir)
            watch_task = asyncio.create_task(watcher.run(), name="taskhub-api-registry")
            await broadcaster.start()
            hub = Hub(
                settings=settings,
                clock=clock,
                log=log_,
                watcher=watcher,
                broadcaster=broadcaster,
                slots=StreamSlots(settings.max_streams, on_first_stream=log_.signal.start),
                sqlite_version=await _sqlite_version(log_),
                containment=await asyncio.to_thread(containment),
                keepalive_s=extra_float(settings, "sse_keepalive_s", KEEPALIVE_S),
                log_poll_s=extra_float(settings, "log_poll_s", LOG_POLL_S),
            )
            app.state["hub"] = hub
            log.info(
                "api.started db=%s tasks=%d task_errors=%d sqlite=%s",
                settings.db_path,
                len(watcher.current.tasks),
                len(watcher.current.errors),
                hub.sqlite_version,
            )
            yield
        finally:
            await broadcaster.stop()
            if watcher is not None:
                watcher.stop()
            if watch_task is not None:
                with contextlib.suppress(asyncio.CancelledError, asyncio.TimeoutError, Exception):
                    await asyncio.wait_for(watch_task, STOP_TIMEOUT_S)
            await log_.close()
            log.info("api.stopped")

    openapi = OpenAPIConfig(
        title="TaskHub",
        version=API_VERSION,
        description="Runs, tasks and the event log of one TaskHub home. Errors are "
        '`{"status_code", "detail", "field"?}`.',
        path="/schema",
        render_plugins=[SwaggerRenderPlugin()],
    )
    config = AppConfig(
        route_handlers=[
            *runs.ROUTES,
            *tasks.ROUTES,
            *events.ROUTES,
            *logs.ROUTES,
            *artifacts.ROUTES,
            *system.ROUTES,
            *spa.ROUTES,
        ],
        lifespan=[lifespan],
        exception_handlers=dict(EXCEPTION_HANDLERS),
        openapi_config=openapi,
        request_max_body_size=settings.max_body_bytes,
        logging_config=None,
    )
    app = _Litestar.from_config(config)
    # In front of Litestar's request handler (its exception handling around the router), not inside
    # it: the guard then sees every request before routing, and the hot POST /api/runs skips
    # Litestar's per-request machinery. Litestar.__call__ only handles the lifespan itself.
    fast = SubmitFastPath(HeadAsGet(DropEmptyParams(app.asgi_handler)), app, settings.max_body_bytes)
    app.asgi_handler = SecurityMiddleware(fast, settings, partial(_routes, app))
    return app
