"""`taskhub runs`, `show`, `logs` and `cancel`: reads come from the projections on this machine;
cancel goes through the API when one answers, else straight onto the log."""

from __future__ import annotations

import argparse
import re
import sys
import time
from typing import Any

from taskhub.cli import blocked, common, output, watch
from taskhub.settings import Settings

RUN_ID = re.compile(r"r-[A-Za-z0-9]+")  # SPEC section 5
STATUSES = ("queued", "claimed", "running", "cancelling", "succeeded", "failed", "cancelled")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("runs", help="list runs, newest first", description="List runs, newest first.")
    p.add_argument("--status", action="append", choices=STATUSES, help="only runs in this status (repeatable)")
    p.add_argument("--task", metavar="TASK_ID", help="only runs of this task")
    p.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")
    p.add_argument("--json", action="store_true", help="print {items: [run view, ...]}")
    p.set_defaults(func=cmd_runs)

    p = sub.add_parser("show", help="show one run", description="Show one run's view.")
    p.add_argument("run_id", metavar="RUN_ID")
    p.add_argument("--json", action="store_true", help="print the run view as JSON")
    p.set_defaults(func=cmd_show)

    p = sub.add_parser("logs", help="print a run's output", description="Print a run's stdout (or stderr).")
    p.add_argument("run_id", metavar="RUN_ID")
    p.add_argument("--stream", choices=("stdout", "stderr"), default="stdout")
    p.add_argument("-f", "--follow", action="store_true", help="keep printing until the run finishes")
    p.set_defaults(func=cmd_logs)

    p = sub.add_parser("cancel", help="cancel a run", description="Cancel a queued or running run.")
    p.add_argument("run_id", metavar="RUN_ID")
    p.add_argument("--reason", default="cancelled from the command line")
    p.add_argument("--json", action="store_true", help="print the run view as JSON")
    p.set_defaults(func=cmd_cancel)


def unknown_run(run_id: str) -> common.CliError:
    return common.CliError(f"unknown run {run_id!r}; `taskhub runs` lists the runs")


def load_view(s: Settings, run_id: str) -> dict[str, Any]:
    from taskhub.projections.tables import load_run

    store = common.open_store(s)
    try:
        view = load_run(store.conn, run_id)
    finally:
        store.close()
    if view is None:
        raise unknown_run(run_id)
    return watch.common_record(view)


async def _show(s: Settings, run_id: str) -> dict[str, Any]:
    """The run view with `blocked_by` (SPEC section 5: while queued), as the API shows it."""
    from taskhub.events.follow import open_reader
    from taskhub.projections.queries import get_run

    reader = await open_reader(s.db_path)
    try:
        view = await get_run(reader, run_id)
    finally:
        await reader.close()
    if view is None:
        raise unknown_run(run_id)
    return blocked.with_blockers([watch.common_record(view)], await blocked.blockers_of(s, [view]))[0]


async def _list(s: Settings, status: list[str] | None, task: str | None, limit: int) -> list[dict[str, Any]]:
    from taskhub.events.follow import open_reader
    from taskhub.projections.queries import list_runs

    reader = await open_reader(s.db_path)
    try:
        views = await list_runs(reader, status=status, task_id=task, limit=limit)
    finally:
        await reader.close()
    return blocked.with_blockers([watch.common_record(v) for v in views], await blocked.blockers_of(s, views))


def cmd_runs(args: argparse.Namespace) -> int:
    s = common.settings()
    common.check_db(s)
    common.check_range("--limit", args.limit, 1)
    import asyncio

    items = asyncio.run(_list(s, args.status, args.task, args.limit))
    if args.json:
        output.print_json({"items": items})
        return common.EXIT_OK
    rows = [
        (r["run_id"], r["task_id"], r["status"], r["attempt"], r["worker_id"], output.short_ts(r["submitted_at"]),
         _outcome(r))
        for r in items
    ]
    colours = [output.STATUS_COLOURS.get(r["status"]) for r in items]
    print(output.table(rows, ["run", "task", "status", "attempt", "worker", "submitted", "outcome"], colours))
    return common.EXIT_OK


def _outcome(run: dict[str, Any]) -> str:
    if run.get("failure_reason"):
        code = run.get("exit_code")
        return f"{run['failure_reason']}" + (f" {code}" if run["failure_reason"] == "exit_code" else "")
    if run.get("status") == "succeeded":
        return "exit 0"
    progress = run.get("progress")
    if progress and progress.get("pct") is not None:
        return f"{progress['pct']:g}%"
    return ""


SHOWN = (
    "task_id", "status", "attempt", "max_attempts", "priority", "params", "submitted_at", "not_before", "claimed_at",
    "started_at", "finished_at", "worker_id", "pid", "pgid", "lease_expires_at", "argv", "exit_code", "signal",
    "failure_reason", "error", "cancel_reason", "progress", "artifacts", "result", "retry_of", "task_version",
    "last_seq",
)


def print_run(run: dict[str, Any]) -> None:
    import json

    style = output.Style()
    print(style(run["run_id"], "cyan"))
    for key in SHOWN:
        value = run.get(key)
        if value is None or value == [] or value == {}:
            continue
        text = value if isinstance(value, str) else json.dumps(value)
        if key == "status":
            text = style(text, output.STATUS_COLOURS.get(text))
        print(f"  {key:<17}{text}")
    for blocker in run.get("blocked_by") or ():
        print(f"  {'waiting':<17}{blocker.get('message') or blocker.get('reason')}")


def cmd_show(args: argparse.Namespace) -> int:
    import asyncio

    s = common.settings()
    common.check_db(s)
    run = asyncio.run(_show(s, args.run_id))
    if args.json:
        output.print_json(run)
    else:
        print_run(run)
    return common.EXIT_OK


def cmd_logs(args: argparse.Namespace) -> int:
    s = common.settings()
    load_view(s, args.run_id)  # unknown run -> a clear error, not an empty output
    if args.follow:
        watch.watch(s, args.run_id, [args.stream])
        return common.EXIT_OK
    out = sys.stdout.buffer if args.stream == "stdout" else sys.stderr.buffer
    watch.FileTail(watch.log_path(s, args.run_id, args.stream), out).pump()
    return common.EXIT_OK


def cancel_direct(s: Settings, run_id: str, reason: str) -> dict[str, Any]:
    from taskhub.projections import ops
    from taskhub.projections.decisions import decide_cancel
    from taskhub.projections.tables import load_run

    store = common.open_store(s, readonly=False)
    try:
        # Decide from the view read inside the write transaction: no other writer can slip in between.
        with store.transaction(time.time()) as txn:
            view = load_run(txn.conn, run_id)
            if view is None:
                raise unknown_run(run_id)
            events = decide_cancel(view, reason)
            if events:
                view = ops.append_run_events(txn, run_id, events)
    finally:
        store.close()
    return watch.common_record(view)


def cmd_cancel(args: argparse.Namespace) -> int:
    from taskhub.cli.client import ApiClient, api_available
    from taskhub.errors import IllegalTransition, UnknownRun

    s = common.settings()
    if not RUN_ID.fullmatch(args.run_id):  # never part of a URL: `r-1/retry?` would retry r-1
        raise unknown_run(args.run_id)
    try:
        if api_available(s):
            with ApiClient(s) as api:
                run: dict[str, Any] = api.call("POST", f"/api/runs/{args.run_id}/cancel", json={"reason": args.reason})
        else:
            run = cancel_direct(s, args.run_id, args.reason)
    except UnknownRun:
        raise unknown_run(args.run_id) from None
    except IllegalTransition as exc:
        raise common.CliError(str(exc)) from None  # the run has finished, and how
    if args.json:
        output.print_json(run)
    else:
        print(f"{run['run_id']}: {run['status']}")
    return common.EXIT_OK
