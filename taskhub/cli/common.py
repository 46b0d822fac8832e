"""What every command shares: exit codes, the CLI's own errors, settings and opening the database."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from taskhub.settings import Settings, load_settings

if TYPE_CHECKING:
    from taskhub.events.store import EventStore

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_CANCELLED = 130  # like a shell's Ctrl-C: the run (or the command) was interrupted
EXIT_TIMEOUT = 124  # like coreutils `timeout`
MAX_SQL_INT = 2**63 - 1  # SQLite's largest integer: a seq or a count past it cannot reach a query


class CliError(Exception):
    """A failure to report on stderr, with what to do about it, and the exit code to leave with."""

    def __init__(self, message: str, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.code = code


class UsageError(CliError):
    """The command line itself is wrong (exit 2, like argparse)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, EXIT_USAGE)


def check_range(option: str, value: int, low: int, high: int = MAX_SQL_INT) -> int:
    """A usage error (exit 2) for an integer option outside [low, high], not an OverflowError later."""
    if not low <= value <= high:
        raise UsageError(f"{option} must be from {low} to {high}, got {value}")
    return value


def settings() -> Settings:
    # ConfigError is mapped to exit 2 by main(): a bad TASKHUB_* value is a usage problem.
    return load_settings()


def missing_db_message(path: Path) -> str:
    return f"no database at {path}; start TaskHub with bin/start.sh or run `taskhub worker` once"


def require_db(s: Settings) -> Path:
    if not s.db_path.is_file():
        raise CliError(missing_db_message(s.db_path))
    return s.db_path


TABLES = ("events", "runs", "workers")  # what a TaskHub database holds, whatever its schema version


def open_store(s: Settings, readonly: bool = True) -> EventStore:
    """The sync store over an existing TaskHub database; read-only unless the command writes."""
    from taskhub.events.store import EventStore

    require_db(s)
    store = EventStore(s.db_path, s.synchronous, readonly=readonly)
    try:
        found = {row[0] for row in store.conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except BaseException:
        store.close()
        raise
    missing = [t for t in TABLES if t not in found]
    if missing:
        store.close()
        raise CliError(
            f"{s.db_path} is not a TaskHub database (it has no {missing[0]} table); point TASKHUB_DB (or"
            " TASKHUB_HOME) at TaskHub's own database"
        )
    return store


def check_db(s: Settings) -> None:
    """For commands that read through their own connection: the database exists and is TaskHub's,
    or a clear CliError (a file that is not a database at all is a StoreError from the store)."""
    open_store(s).close()


def pids_dir(s: Settings) -> Path:
    """Where bin/start.sh keeps one pid file per service."""
    return s.home / "data" / "pids"
