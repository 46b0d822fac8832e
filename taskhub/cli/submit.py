"""`taskhub submit`: through the API when one answers, else straight onto the log.

`--json '{...}'` is the params object (SPEC section 8), so the run record is printed as JSON with
`-o json` / `--output json`. `--wait` and `--follow` leave with the run's exit code (see watch.py).
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from taskhub.cli import blocked, common, output, tasks, watch
from taskhub.settings import Settings


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "submit",
        help="submit a run of a task",
        description="Submit a run. Exit codes with --wait/--follow: the task's exit code; 0 succeeded;"
        " 124 timed out; 128+N killed by signal N; 130 cancelled; 1 any other failure.",
    )
    p.add_argument("task_id", metavar="TASK_ID")
    p.add_argument("--param", "-p", action="append", default=[], metavar="K=V", help="a param (repeatable)")
    p.add_argument("--json", dest="params_json", metavar="'{...}'", help="the params as a JSON object")
    p.add_argument("--priority", type=int, default=0, help="higher runs first (default 0)")
    p.add_argument("--idempotency-key", metavar="KEY", help="a repeat with the same key returns the first run")
    p.add_argument("--not-before", metavar="ISO_TIME", help="do not start before this time (ISO 8601)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--wait", action="store_true", help="wait for the run to finish; exit with its code")
    mode.add_argument("--follow", "-f", action="store_true", help="print the run's output live; exit with its code")
    p.add_argument("--output", "-o", choices=("text", "json"), default="text", help="how to print the run record")
    p.set_defaults(func=cmd_submit)


def parse_params_json(text: str | None) -> dict[str, Any]:
    if text is None:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise common.UsageError(f"--json is not valid JSON ({exc.msg} at column {exc.colno}): {text!r}") from None
    if not isinstance(value, dict):
        raise common.UsageError(f"--json must be a JSON object like '{{\"target\": \"world\"}}', got {text!r}")
    return value


def check_param_pairs(pairs: list[str]) -> None:
    """`--param` takes key=value: anything else is a usage error (exit 2), like a malformed --json."""
    for pair in pairs:
        key, sep, _ = pair.partition("=")
        if not sep or not key.strip():
            raise common.UsageError(f"--param expects key=value, got {pair!r}")


def _not_before(text: str | None) -> str | None:
    if text is None:
        return None
    from taskhub.events.clock import iso, parse_iso

    try:
        return iso(parse_iso(text))
    except ValueError:
        raise common.UsageError(f"--not-before {text!r} is not an ISO 8601 time, e.g. 2026-01-01T12:00:00Z") from None


def _invalid(task_id: str, exc: Exception) -> common.CliError:
    field = getattr(exc, "field", None)
    where = f" (field `{field}`)" if field else ""
    return common.CliError(f"invalid params for {task_id}{where}: {exc}; `taskhub tasks --json` shows the schema")


def build_params(s: Settings, args: argparse.Namespace, need_local: bool) -> tuple[dict[str, Any], Any]:
    """The params object, with `--param` values typed by the task's schema when the task is here."""
    from taskhub.errors import InvalidParams

    params = parse_params_json(args.params_json)
    loaded = None
    if need_local or args.param:
        registry = tasks.load_registry(s)
        if need_local or args.task_id in registry.tasks:
            loaded = tasks.get_task(s, registry, args.task_id)
    if args.param:
        from taskhub.registry import coerce_cli_params

        try:
            if loaded is not None:
                params.update(coerce_cli_params(loaded.spec, args.param))
            else:
                params.update(dict(p.partition("=")[::2] for p in args.param))
        except InvalidParams as exc:
            raise _invalid(args.task_id, exc) from None
    return params, loaded


def submit_direct(s: Settings, args: argparse.Namespace) -> dict[str, Any]:
    from taskhub.api.params import checked_params
    from taskhub.errors import InvalidParams
    from taskhub.events.store import EventStore
    from taskhub.projections import ops
    from taskhub.projections.decisions import decide_submit

    if not s.tasks_dir.is_dir():
        raise common.CliError(f"no tasks folder at {s.tasks_dir}; run from your TaskHub folder or set TASKHUB_HOME")
    params, loaded = build_params(s, args, need_local=True)
    spec = loaded.spec
    try:
        # As the API does: defaults filled in, and the argv built once (a run that could never start
        # is refused now, not failed later with spawn_error).
        params, _ = checked_params(spec, params)
        event = decide_submit(
            spec.task_id,
            params,
            priority=args.priority,
            max_attempts=spec.max_attempts,
            timeout_s=spec.timeout_s,
            not_before=_not_before(args.not_before),
            idempotency_key=args.idempotency_key,
            task_version=loaded.version,
        )
    except InvalidParams as exc:
        raise _invalid(spec.task_id, exc) from None
    store = EventStore(s.db_path, s.synchronous)  # creates the database on first use, like the services
    try:
        with store.transaction(time.time()) as txn:
            view, _created = ops.submit(txn, event)
    finally:
        store.close()
    import asyncio

    from taskhub.runtime.registry_loader import Registry

    found = asyncio.run(blocked.blockers_of(s, [view], Registry(tasks={spec.task_id: loaded})))
    return blocked.with_blockers([watch.common_record(view)], found)[0]


def submit_api(s: Settings, args: argparse.Namespace) -> dict[str, Any]:
    from taskhub.cli.client import ApiClient
    from taskhub.errors import InvalidParams, NotFound

    params, _ = build_params(s, args, need_local=False)
    body: dict[str, Any] = {"task_id": args.task_id, "params": params, "priority": args.priority}
    if args.idempotency_key is not None:
        body["idempotency_key"] = args.idempotency_key
    if args.not_before is not None:
        body["not_before"] = _not_before(args.not_before)
    with ApiClient(s) as api:
        try:
            run: dict[str, Any] = api.call("POST", "/api/runs", json=body)
        except NotFound:  # POST /api/runs answers 404 for an unknown task
            api_tasks = api.call("GET", "/api/tasks")
            known = ", ".join(sorted(t["task_id"] for t in api_tasks.get("items", []))) or "none"
            raise common.CliError(f"unknown task {args.task_id!r}; known tasks: {known}") from None
        except InvalidParams as exc:
            raise _invalid(args.task_id, exc) from None
    return run


def cmd_submit(args: argparse.Namespace) -> int:
    from taskhub.cli.client import api_available

    s = common.settings()
    parse_params_json(args.params_json)  # a malformed --json or --param is a usage error before anything else
    check_param_pairs(args.param)
    via_api = api_available(s)
    run = submit_api(s, args) if via_api else submit_direct(s, args)
    run_id = run["run_id"]
    if args.output == "json" and not (args.wait or args.follow):
        output.print_json(run)
        return common.EXIT_OK
    if not (args.wait or args.follow):
        print(f"submitted {run_id} ({run['task_id']}): {run['status']}")
        return common.EXIT_OK
    output.err(f"submitted {run_id} ({run['task_id']}); {'following' if args.follow else 'waiting'}...")
    streams = ["stdout", "stderr"] if args.follow else []
    try:
        final = watch.watch(s, run_id, streams, via_api=via_api)
    except KeyboardInterrupt:
        output.err(f"\nstopped {'following' if args.follow else 'waiting'}; {run_id} carries on"
                   f" (`taskhub logs {run_id} -f`, `taskhub cancel {run_id}`)")
        return common.EXIT_CANCELLED
    code = watch.exit_code_of(final)
    if args.output == "json":
        output.print_json(final)
    else:
        output.err(_summary(final, code))
    return code


def _summary(run: dict[str, Any], code: int) -> str:
    status = run.get("status")
    reason = run.get("failure_reason")
    detail = f" ({reason})" if reason and reason != "exit_code" else ""
    error = f": {run['error']}" if run.get("error") else ""
    return f"{run['run_id']} {status}{detail}{error}; exit {code}"
