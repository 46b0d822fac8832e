"""`taskhub tasks`: the loaded tasks and the files that failed to load."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from taskhub.cli import common, output
from taskhub.text import printable

if TYPE_CHECKING:
    from taskhub.runtime.registry_loader import LoadedTask, Registry
    from taskhub.settings import Settings


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("tasks", help="list the tasks and any load errors", description="List the tasks in tasks/.")
    p.add_argument("--json", action="store_true", help="print {items, errors} as JSON")
    p.set_defaults(func=cmd_tasks)


def load_registry(s: Settings) -> Registry:
    from taskhub.runtime.registry_loader import load_tasks

    return load_tasks(s.tasks_dir)


def get_task(s: Settings, registry: Registry, task_id: str) -> LoadedTask:
    """The task, or an error that lists the known tasks and any file that failed to load."""
    found = registry.tasks.get(task_id)
    if found is not None:
        return found
    known = ", ".join(sorted(registry.tasks)) or f"none (is {s.tasks_dir} the right folder? set TASKHUB_HOME)"
    lines = [f"unknown task {task_id!r}; known tasks: {known}"]
    lines += [f"  {e.file} failed to load: {e.error}" for e in registry.errors]
    raise common.CliError("\n".join(lines))


def task_record(task: LoadedTask) -> dict[str, Any]:
    from taskhub.registry import params_schema

    spec = task.spec
    return {
        "task_id": spec.task_id,
        "name": printable(spec.name),
        "description": printable(spec.description),
        "params_schema": params_schema(spec),
        "max_concurrency": spec.max_concurrency,
        "timeout_s": spec.timeout_s,
        "max_attempts": spec.max_attempts,
        "file": printable(task.file),
        "version": task.version,
    }


def cmd_tasks(args: argparse.Namespace) -> int:
    s = common.settings()
    if not s.tasks_dir.is_dir():
        raise common.CliError(f"no tasks folder at {s.tasks_dir}; run from your TaskHub folder or set TASKHUB_HOME")
    registry = load_registry(s)
    items = [task_record(t) for _, t in sorted(registry.tasks.items())]
    errors = [{"file": printable(e.file), "error": printable(e.error)} for e in registry.errors]
    if args.json:
        output.print_json({"items": items, "errors": errors})
        return common.EXIT_OK
    rows = [
        (i["task_id"], i["name"], i["max_concurrency"], i["timeout_s"], i["max_attempts"], i["description"])
        for i in items
    ]
    print(output.table(rows, ["task", "name", "limit", "timeout_s", "attempts", "description"]))
    style = output.Style()
    for e in errors:
        print(style(f"error: {e['file']}: {e['error']}", "red"))
    return common.EXIT_OK
