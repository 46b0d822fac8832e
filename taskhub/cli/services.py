"""`taskhub api`, `taskhub worker`, `taskhub reaper`: the long-running services.

The entry points are imported only when the command runs, so `taskhub --help` and the one-shot
commands never pay for Litestar, uvicorn or the worker's imports.
"""

from __future__ import annotations

import argparse

from taskhub.cli import common

# Runs at once in one worker: far more than one machine runs, and small enough for every query (a
# claim's LIMIT is concurrency x TASKHUB_READY_PER_SLOT) and every list sized by it.
MAX_CONCURRENCY = 10_000


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("api", help="serve the API and the UI", description="Serve the REST API, SSE and the UI.")
    p.add_argument("--host", help="bind address (default TASKHUB_HOST or 127.0.0.1)")
    p.add_argument("--port", type=int, help="port (default TASKHUB_PORT or 8000)")
    p.set_defaults(func=cmd_api)

    p = sub.add_parser("worker", help="run a worker", description="Claim and run queued runs until SIGTERM"
                       " (which drains: running tasks get TASKHUB_DRAIN_S to finish; a second SIGTERM skips it).")
    p.add_argument("--concurrency", "-c", type=int, default=1, help="runs at once (default 1)")
    p.add_argument("--id", dest="worker_id", metavar="NAME", help="worker id (default: host-pid)")
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser("reaper", help="run the reaper", description="Fail or retry runs whose worker died or"
                       " whose lease expired, after killing what is left of their processes.")
    p.set_defaults(func=cmd_reaper)


def cmd_api(args: argparse.Namespace) -> int:
    from taskhub.api.server import run_api

    if args.port is not None:
        common.check_range("--port", args.port, 1, 65535)
    code: int = run_api(common.settings(), host=args.host, port=args.port)
    return code


def cmd_worker(args: argparse.Namespace) -> int:
    from taskhub.runtime.worker import run_worker

    common.check_range("--concurrency", args.concurrency, 1, MAX_CONCURRENCY)
    return run_worker(common.settings(), concurrency=args.concurrency, worker_id=args.worker_id)


def cmd_reaper(args: argparse.Namespace) -> int:
    from taskhub.runtime.reaper import run_reaper

    return run_reaper(common.settings())
