"""`taskhub events tail | replay | export`: reading the log itself (audit, rebuild and import are in
maintenance.py)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from taskhub.cli import common, output

if TYPE_CHECKING:
    from taskhub.events.types import Envelope
    from taskhub.settings import Settings

TYPE_COLOURS = {
    "submitted": "blue",
    "claimed": "cyan",
    "started": "cyan",
    "progress": "dim",
    "heartbeat": "dim",
    "cancel_requested": "yellow",
    "cancelled": "yellow",
    "exited": "green",
    "reaped": "red",
    "refused": "red",
    "retry_scheduled": "magenta",
    "worker_started": "magenta",
    "worker_stopped": "magenta",
}
PAGE = 5000
SUMMARY_MAX = 120


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from taskhub.cli import maintenance

    ev = sub.add_parser("events", help="the event log: tail, replay, audit, rebuild, export, import")
    evsub = ev.add_subparsers(dest="events_command", metavar="COMMAND", required=True)

    p = evsub.add_parser("tail", help="print (and follow) the log", description="Print the log, optionally live.")
    p.add_argument("-f", "--follow", action="store_true", help="keep printing new events as they commit")
    p.add_argument("--run", metavar="RUN_ID", help="only this run's events")
    p.add_argument(
        "--type", metavar="T[,T...]", action="append", help="only these event types (comma-separated, or repeated)"
    )
    p.add_argument("--after", type=int, default=0, metavar="SEQ", help="start after this seq")
    p.add_argument("--json", action="store_true", help="one envelope per line, as JSON")
    p.set_defaults(func=cmd_tail)

    p = evsub.add_parser(
        "replay", help="the projected state at a point of the log", description="Time travel: fold the log up to"
        " a seq or a time and print the runs (or one run) as they were then, from the log alone.",
    )
    p.add_argument("--until", type=int, metavar="SEQ", help="fold events up to and including this seq")
    p.add_argument("--at", metavar="TIME", help="fold events committed at or before this ISO 8601 time")
    p.add_argument("--run", metavar="RUN_ID", help="print only this run's view")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_replay)

    p = evsub.add_parser("export", help="the log as JSON lines", description="Write the log as JSON lines"
                         " (one envelope each, hash included), in seq order, to stdout.")
    p.add_argument("--after", type=int, default=0, metavar="SEQ", help="only events after this seq")
    # SPEC 8: every command that prints records has --json; these records are JSON lines already.
    p.add_argument("--json", action="store_true", help="the same JSON lines (accepted like every command's --json)")
    p.set_defaults(func=cmd_export)

    maintenance.register(evsub)


def parse_types(given: list[str] | None) -> list[str] | None:
    """`--type a,b` or `--type a --type b`: every value counts (a repeat used to replace the first)."""
    from taskhub.events.types import TYPE_NAMES

    text = ",".join(given or ())
    if not text:
        return None
    types = [t.strip() for t in text.split(",") if t.strip()]
    unknown = [t for t in types if t not in TYPE_NAMES]
    if unknown:
        raise common.UsageError(f"unknown event type {unknown[0]!r}; known types: {', '.join(sorted(TYPE_NAMES))}")
    return types


def format_event(env: Envelope, style: output.Style) -> str:
    from taskhub.events.types import envelope_dict

    record = envelope_dict(env)
    subject = env.run_id or env.worker_id or "-"
    data = record["data"]
    compact = (f"{k}={json.dumps(v, separators=(',', ':'))}" for k, v in data.items() if v not in (None, [], {}))
    summary = " ".join(compact)
    if len(summary) > SUMMARY_MAX:
        summary = summary[: SUMMARY_MAX - 3] + "..."
    worker = f" by {env.worker_id}" if env.run_id and env.worker_id else ""
    head = f"{env.seq:>7}  {env.ts[:23].replace('T', ' ')}  {env.type:<16}  {subject:<10}"
    return style(head, TYPE_COLOURS.get(env.type)) + f"{worker}  {summary}".rstrip()


def _printer(as_json: bool) -> Any:
    from taskhub.events.types import encode_envelope

    style = output.Style()
    out = sys.stdout

    def emit(env: Envelope) -> None:
        out.write(encode_envelope(env).decode() if as_json else format_event(env, style))
        out.write("\n")

    return emit


async def _follow(s: Settings, after: int, run_id: str | None, types: list[str] | None, emit: Any) -> None:
    from taskhub.events.follow import ChangeSignal, follow, open_reader

    signal = ChangeSignal(s.db_path)
    signal.start()
    reader = await open_reader(s.db_path)
    try:
        async for env in follow(reader, signal, after, run_id, types):
            emit(env)
            sys.stdout.flush()
    finally:
        await reader.close()
        await signal.stop()


def cmd_tail(args: argparse.Namespace) -> int:
    s = common.settings()
    types = parse_types(args.type)
    common.check_range("--after", args.after, 0)
    store = common.open_store(s)
    emit = _printer(args.json)
    try:
        if args.run is not None and not args.follow:
            from taskhub.projections.tables import load_run

            if load_run(store.conn, args.run) is None:
                raise common.CliError(f"unknown run {args.run!r}; `taskhub runs` lists the runs")
        position = args.after
        while batch := store.read(position, PAGE, args.run, types):
            for env in batch:
                emit(env)
            position = batch[-1].seq
        sys.stdout.flush()
    finally:
        store.close()
    if args.follow:
        import asyncio

        asyncio.run(_follow(s, position, args.run, types, emit))
    return common.EXIT_OK


def cmd_replay(args: argparse.Namespace) -> int:
    from taskhub.events.clock import parse_iso
    from taskhub.projections.rebuild import as_of

    s = common.settings()
    if args.at is not None:
        try:
            parse_iso(args.at)
        except ValueError:
            raise common.UsageError(f"--at {args.at!r} is not an ISO 8601 time, e.g. 2026-01-01T12:00:00Z") from None
    if args.until is not None:
        common.check_range("--until", args.until, 0)
    store = common.open_store(s)
    try:
        state = as_of(store, until=args.until, at=args.at)
    finally:
        store.close()
    if args.run is not None:
        view = state.runs.get(args.run)
        if view is None:
            raise common.CliError(f"run {args.run!r} did not exist as of seq {state.last_seq}")
        if args.json:
            output.print_json(view)
        else:
            from taskhub.cli.runs import print_run

            print(f"as of seq {state.last_seq}:")
            print_run(output.to_builtins(view))
        return common.EXIT_OK
    runs = sorted(state.runs.values(), key=lambda r: r.num)
    if args.json:
        output.print_json({"last_seq": state.last_seq, "runs": runs, "workers": list(state.workers.values())})
        return common.EXIT_OK
    print(f"as of seq {state.last_seq}: {len(runs)} runs, {len(state.workers)} workers")
    rows = [(r.run_id, r.task_id, r.status, r.attempt, r.worker_id, r.last_seq) for r in runs]
    colours = [output.STATUS_COLOURS.get(r.status) for r in runs]
    print(output.table(rows, ["run", "task", "status", "attempt", "worker", "last_seq"], colours))
    return common.EXIT_OK


def cmd_export(args: argparse.Namespace) -> int:
    from taskhub.cli.importer import export_lines

    s = common.settings()
    common.check_range("--after", args.after, 0)
    store = common.open_store(s)
    out = sys.stdout.buffer
    try:
        for line in export_lines(store, args.after):
            out.write(line + b"\n")
    finally:
        store.close()
    out.flush()
    return common.EXIT_OK
