"""`taskhub`: parse the command line and dispatch to the command's module.

Exit codes: 0 success, 1 failure (an unexpected error too: one line on stderr, the traceback with
-v), 2 usage or configuration error, 130 interrupted; `submit --wait` and `--follow` leave with the
run's own code (see taskhub/cli/watch.py).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import traceback
from collections.abc import Sequence

from taskhub.cli import common, doctor, events, runs, services, submit, tasks
from taskhub.errors import ConfigError, InvalidParams, NotFound, TaskHubError

EPILOG = """examples:
  taskhub submit hello_world --param target=world --follow
  taskhub runs --status failed
  taskhub events tail -f
  taskhub events audit
  taskhub doctor

configuration comes from TASKHUB_* variables (TASKHUB_HOME, TASKHUB_PORT, ...); see README.md."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="taskhub",
        description="TaskHub: an event-sourced, crash-safe task runner on one SQLite log.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages to stderr")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    services.register(sub)
    tasks.register(sub)
    submit.register(sub)
    runs.register(sub)
    events.register(sub)
    doctor.register(sub)
    return parser


# Arguments that name files: any bytes the file system allows. Every other value reaches SQLite,
# JSON or an HTTP request as text, so it must be UTF-8.
PATH_ARGS = frozenset({"file"})


def not_utf8(args: argparse.Namespace) -> str | None:
    """The first argument value that is not UTF-8 (Python keeps such bytes as lone surrogates)."""
    for name, value in vars(args).items():
        if name in PATH_ARGS:
            continue
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, str):
                try:
                    item.encode("utf-8")
                except UnicodeEncodeError:
                    return item
    return None


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if (bad := not_utf8(args)) is not None:
        return _fail(f"argument '{_shown(bad)}' is not valid UTF-8 text", common.EXIT_USAGE)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )
    if args.command not in ("api", "worker", "reaper") and not args.verbose:
        logging.getLogger().setLevel(logging.WARNING)  # one-shot commands print results, not logs
    try:
        code: int = args.func(args)
        return code
    except common.CliError as exc:
        return _fail(str(exc), exc.code)
    except ConfigError as exc:
        return _fail(f"configuration error: {exc}", common.EXIT_USAGE)
    except InvalidParams as exc:
        where = f" (field `{exc.field}`)" if exc.field else ""
        return _fail(f"invalid{where}: {exc}", common.EXIT_FAILED)
    except NotFound as exc:
        return _fail(str(exc), common.EXIT_FAILED)
    except TaskHubError as exc:
        return _fail(str(exc), common.EXIT_FAILED)
    except KeyboardInterrupt:
        return common.EXIT_CANCELLED
    except BrokenPipeError:
        # `taskhub events export | head`: the reader left; that is not an error of ours. Point stdout
        # at /dev/null so the interpreter's final flush does not complain about the pipe again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return common.EXIT_OK
    except Exception as exc:  # what no branch above foresaw: one line, the traceback only with -v
        if args.verbose:
            traceback.print_exc()
        hint = "" if args.verbose else " (run with -v for the traceback)"
        return _fail(f"unexpected {type(exc).__name__}: {exc}{hint}", common.EXIT_FAILED)


def _shown(text: str) -> str:
    """The bytes as given, those that are not UTF-8 as \\xNN."""
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a surrogate that did not come from a byte (main() called with any str)
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _fail(message: str, code: int) -> int:
    sys.stderr.write(f"taskhub: error: {message}\n")
    return code


if __name__ == "__main__":
    raise SystemExit(main())
