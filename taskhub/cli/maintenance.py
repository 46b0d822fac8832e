"""`taskhub events audit | rebuild | import`: the long operations over the whole log, with a
progress bar on a terminal."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from taskhub.cli import common, output

if TYPE_CHECKING:
    from taskhub.events.types import Envelope
    from taskhub.projections.state import State


def register(evsub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = evsub.add_parser(
        "audit", help="verify the log and the projections", description="Verify the hash chain, every invariant"
        " of the history, and that the stored projections equal a fold of the log. Exit 0 clean, 1 otherwise.",
    )
    p.add_argument("--json", action="store_true", help="print {ok, events, violations: [...]}")
    p.set_defaults(func=cmd_audit)

    p = evsub.add_parser("rebuild", help="rebuild the stored projections from the log",
                         description="Replace the runs and workers tables with a fold of the log, atomically.")
    p.add_argument("--json", action="store_true", help="print {runs, workers, last_seq}")
    p.set_defaults(func=cmd_rebuild)

    p = evsub.add_parser(
        "import", help="load an export into an empty database", description="Load `taskhub events export` output"
        " into an empty database (TASKHUB_DB), verifying every hash, then rebuild the projections.",
    )
    p.add_argument("file", metavar="FILE", help="the export (JSON lines); - for stdin")
    p.add_argument("--json", action="store_true", help="print {events, runs, workers, db}")
    p.set_defaults(func=cmd_import)


def cmd_audit(args: argparse.Namespace) -> int:
    from taskhub.projections.audit import audit

    s = common.settings()
    store = common.open_store(s)
    bar = output.ProgressBar("audit")
    total = 0  # stays 0 when the log cannot be read at all
    try:
        total = store.last_seq()
        violations = [str(v) for v in audit(store, progress=bar)]
    except Exception as exc:  # an altered row can be malformed beyond what the checks expect
        violations = [f"[unreadable] the audit could not read the log: {type(exc).__name__}: {exc}"]
    finally:
        bar.close()
        store.close()
    if args.json:
        output.print_json({"ok": not violations, "events": total, "violations": violations})
    else:
        style = output.Style()
        for v in violations:
            print(style(v, "red"))
        if violations:
            print(f"audit failed: {len(violations)} violation(s) in {total:,} events", file=sys.stderr)
        else:
            print(f"audit clean: {total:,} events, hash chain intact, invariants hold, projections match the log")
    return common.EXIT_FAILED if violations else common.EXIT_OK


def cmd_rebuild(args: argparse.Namespace) -> int:
    from taskhub.projections.rebuild import rebuild

    s = common.settings()
    store = common.open_store(s, readonly=False)
    bar = output.ProgressBar("rebuild")
    try:
        state = rebuild(store, progress=bar)
    finally:
        bar.close()
        store.close()
    runs, workers = len(state.runs), len(state.workers)
    if args.json:
        output.print_json({"runs": runs, "workers": workers, "last_seq": state.last_seq})
    else:
        print(f"rebuilt {runs:,} runs and {workers:,} workers from the log (last seq {state.last_seq:,})")
    return common.EXIT_OK


def _lines(stream: BinaryIO, total: int, bar: output.ProgressBar) -> Iterator[bytes]:
    done = 0
    for line in stream:
        done += len(line)
        bar(done, total)
        yield line


def _fold_one(env: Envelope, state: State) -> None:
    from taskhub.projections.state import fold

    fold((env,), state)


def cmd_import(args: argparse.Namespace) -> int:
    from taskhub.cli.importer import ImportRefused, import_lines, is_empty
    from taskhub.events.store import EventStore
    from taskhub.projections.state import State
    from taskhub.projections.tables import replace_all

    s = common.settings()
    source = Path(args.file)
    if args.file != "-" and not source.is_file():
        raise common.CliError(f"no such file: {args.file}")
    store = EventStore(s.db_path, s.synchronous)
    bar = output.ProgressBar("import")
    try:
        if not is_empty(store):
            raise common.CliError(
                f"the database at {s.db_path} is not empty ({store.last_seq():,} events); import only into an"
                " empty database: point TASKHUB_DB (or TASKHUB_HOME) at a new location"
            )
        state = State()
        with (sys.stdin.buffer if args.file == "-" else source.open("rb")) as stream:
            total = source.stat().st_size if args.file != "-" else 0
            # One transaction: either the whole export lands, projections included, or nothing does.
            with store.transaction(time.time()) as txn:
                count = import_lines(txn.conn, _lines(stream, total, bar), lambda env: _fold_one(env, state))
                replace_all(txn.conn, state.runs.values(), state.workers.values())
    except ImportRefused as exc:
        raise common.CliError(f"import refused, nothing was written: {exc}") from None
    finally:
        bar.close()
        store.close()
    if args.json:
        summary = {"events": count, "runs": len(state.runs), "workers": len(state.workers), "db": str(s.db_path)}
        output.print_json(summary)
    else:
        print(f"imported {count:,} events ({len(state.runs):,} runs, {len(state.workers):,} workers) into {s.db_path}")
    return common.EXIT_OK
