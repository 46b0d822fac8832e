"""Task routes: the loaded registry (hot-reloaded) and the argv preview."""

from __future__ import annotations

from litestar import get, post
from litestar.datastructures import State

from taskhub.api.error_docs import WRITE_ERRORS, errors
from taskhub.api.hub import Hub, hub_of
from taskhub.api.models import Argv, PreviewBody, TaskErrorOut, TaskList, TaskOut
from taskhub.api.params import checked_params
from taskhub.registry import params_schema
from taskhub.runtime.registry_loader import LoadedTask
from taskhub.text import printable


def task_out(hub: Hub, loaded: LoadedTask) -> TaskOut:
    spec = loaded.spec
    key = (spec.task_id, loaded.version)
    schema = hub.schemas.get(key)
    if schema is None:
        schema = hub.schemas[key] = params_schema(spec)
    return TaskOut(
        task_id=spec.task_id,
        name=printable(spec.name),
        description=printable(spec.description),
        params_schema=schema,
        max_concurrency=spec.max_concurrency,
        timeout_s=spec.timeout_s,
        max_attempts=spec.max_attempts,
        file=printable(loaded.file),
        version=loaded.version,
    )


@get("/api/tasks", operation_id="listTasks", summary="The loaded tasks and the files that failed to load")
async def list_tasks(state: State) -> TaskList:
    hub = hub_of(state)
    registry = hub.registry
    items = [task_out(hub, registry.tasks[k]) for k in sorted(registry.tasks)]
    errors = [TaskErrorOut(file=printable(e.file), error=printable(e.error)) for e in registry.errors]
    return TaskList(items=items, errors=errors)


@get("/api/tasks/{task_id:str}", operation_id="getTask", responses=errors(404), summary="One task")
async def get_task(state: State, task_id: str) -> TaskOut:
    hub = hub_of(state)
    return task_out(hub, hub.registry.get(task_id))


@post(
    "/api/tasks/{task_id:str}/preview",
    operation_id="previewTask",
    responses=errors(*WRITE_ERRORS, 404),
    status_code=200,
    summary="The exact argv a run with these params would execute (422 naming the field when invalid)",
)
async def preview_task(state: State, task_id: str, data: PreviewBody) -> Argv:
    loaded = hub_of(state).registry.get(task_id)
    _, argv = checked_params(loaded.spec, data.params)
    return Argv(argv=argv)


ROUTES = [list_tasks, get_task, preview_task]
