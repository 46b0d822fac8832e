"""`taskhub doctor`: check the home, database, SQLite, containment, the UI build and the services,
and say what to do about each problem. Exit 1 when any check is an error."""

from __future__ import annotations

import argparse
import os
import sqlite3
from collections.abc import Callable
from dataclasses import asdict, dataclass

from taskhub.cli import common, output
from taskhub.settings import Settings

SAFE_SQLITE = (3, 51, 3)  # fixes the WAL-reset race when several processes write one database
COMPONENTS = ("api", "worker", "reaper")


@dataclass
class Check:
    name: str
    status: str  # ok | warn | error
    detail: str
    fix: str = ""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("doctor", help="check the installation and say how to fix problems",
                       description="Check home, database, SQLite version, containment, web/dist and services.")
    p.add_argument("--json", action="store_true", help="print {ok, checks: [...]}")
    p.set_defaults(func=cmd_doctor)


def check_home(s: Settings) -> list[Check]:
    out: list[Check] = []
    if not s.tasks_dir.is_dir():
        out.append(Check("home", "error", f"no tasks/ folder in {s.home}",
                         "run from your TaskHub folder, or set TASKHUB_HOME to it"))
    else:
        from taskhub.runtime.registry_loader import load_tasks

        registry = load_tasks(s.tasks_dir)
        out.append(Check("tasks", "ok", f"{len(registry.tasks)} task(s) in {s.tasks_dir}"))
        for e in registry.errors:
            out.append(Check("tasks", "warn", f"{e.file} failed to load: {e.error}", f"fix {e.file}"))
    data = s.db_path.parent
    probe = data if data.exists() else s.home
    if os.access(probe, os.W_OK):
        out.append(Check("data", "ok", f"{data} is writable"))
    else:
        out.append(Check("data", "error", f"{probe} is not writable", f"make {probe} writable by this user"))
    return out


def check_database(s: Settings) -> list[Check]:
    from taskhub.events.schema import SCHEMA_VERSION

    if not s.db_path.is_file():
        return [Check("database", "warn", f"no database at {s.db_path} yet",
                      "start TaskHub with bin/start.sh or run `taskhub worker` once")]
    try:
        conn = sqlite3.connect(f"file:{s.db_path}?mode=ro", uri=True)
        try:
            quick = conn.execute("PRAGMA quick_check").fetchone()[0]
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            journal = conn.execute("PRAGMA journal_mode").fetchone()[0]
            events = conn.execute("SELECT count(*) FROM events").fetchone()[0] if version else 0
        finally:
            conn.close()
    except sqlite3.Error as exc:
        return [Check("database", "error", f"cannot read {s.db_path}: {exc}",
                      "check the file's permissions; if it is corrupt, restore it from a `taskhub events export`")]
    out: list[Check] = []
    if quick != "ok":
        out.append(Check("database", "error", f"integrity check failed: {quick}",
                         "stop TaskHub, then restore from a `taskhub events export` into a new database"))
    else:
        out.append(Check("database", "ok", f"{s.db_path}: {events:,} events, integrity ok, journal {journal}"))
    if version > SCHEMA_VERSION:
        out.append(Check("schema", "error", f"schema version {version} is newer than this TaskHub ({SCHEMA_VERSION})",
                         "upgrade TaskHub"))
    elif version < SCHEMA_VERSION:
        out.append(Check("schema", "warn", f"schema version {version} < {SCHEMA_VERSION}",
                         "it is migrated when a service starts (bin/start.sh)"))
    else:
        out.append(Check("schema", "ok", f"schema version {version}"))
    return out


def check_sqlite() -> list[Check]:
    version = sqlite3.sqlite_version
    parts = tuple(int(p) for p in version.split(".")[:3])
    if parts >= SAFE_SQLITE:
        return [Check("sqlite", "ok", f"SQLite {version}")]
    return [Check(
        "sqlite", "warn",
        f"SQLite {version} is older than 3.51.3, whose WAL-reset race can corrupt a database that several"
        " processes write; TaskHub's own checkpoints take turns and never start at the moment the race"
        " needs, but another program checkpointing this file (the sqlite3 shell, a backup tool) could",
        "use a Python linked against SQLite >= 3.51.3 when you can; keep `taskhub events export` backups",
    )]


def check_containment() -> list[Check]:
    from taskhub.runtime.killing import containment_level

    level = containment_level()
    if level == "cgroup":
        return [Check("containment", "ok", "cgroup v2: every process of a run can be killed, even escaped ones")]
    if level == "env-scan":
        return [Check("containment", "ok", "process groups + environment scan: escaped processes are found by"
                      " their TASKHUB_RUN_ID (a delegated cgroup v2 would make it airtight)")]
    return [Check("containment", "warn", "process groups only: a task's process that leaves its group survives"
                  " a cancel or a reap", "run TaskHub as a user that can read /proc/<pid>/environ, or with cgroup v2")]


def check_web(s: Settings) -> list[Check]:
    index = s.ui_dir / "index.html"
    if index.is_file():
        return [Check("web", "ok", f"UI built ({index.parent})")]
    return [Check("web", "warn", f"the UI is not built ({index} is missing)",
                  "install Node.js and run `cd web && npm ci && npm run build` (bin/start.sh does it when npm exists)")]


def check_services(s: Settings) -> list[Check]:
    from taskhub.cli.client import api_available, base_url
    from taskhub.cli.pidfiles import read_pidfiles

    out: list[Check] = []
    entries = read_pidfiles(common.pids_dir(s))
    for entry in entries:
        if entry.alive:
            out.append(Check(f"service {entry.name}", "ok", f"running, pid {entry.pid}"))
        else:
            out.append(Check(f"service {entry.name}", "warn", f"pid file {entry.path} names no live TaskHub process",
                             "run bin/stop.sh to clean up, then bin/start.sh"))
    if not entries:
        out.append(Check("services", "warn", "no services started by bin/start.sh", "start them with bin/start.sh"))
    if api_available(s):
        out.append(Check("api", "ok", f"answering at {base_url(s)}"))
    elif any(e.alive and e.name == "api" for e in entries):
        out.append(Check("api", "error", f"the api process runs but {base_url(s)}/api/health does not answer",
                         f"see {s.logs_dir / 'api.log'}; check TASKHUB_HOST/TASKHUB_PORT match the running API"))
    else:
        out.append(Check("api", "warn", f"no API answering at {base_url(s)}", "start it with bin/start.sh"))
    return out


CHECKS: tuple[Callable[[Settings], list[Check]], ...] = (
    check_home,
    check_database,
    lambda _s: check_sqlite(),
    lambda _s: check_containment(),
    check_web,
    check_services,
)


def cmd_doctor(args: argparse.Namespace) -> int:
    s = common.settings()
    checks: list[Check] = []
    for run_check in CHECKS:
        checks.extend(run_check(s))
    failed = any(c.status == "error" for c in checks)
    if args.json:
        output.print_json({"ok": not failed, "checks": [asdict(c) for c in checks]})
        return common.EXIT_FAILED if failed else common.EXIT_OK
    style = output.Style()
    marks = {"ok": ("ok", "green"), "warn": ("warn", "yellow"), "error": ("ERROR", "red")}
    for c in checks:
        mark, colour = marks[c.status]
        print(f"{style(f'[{mark:>5}]', colour)} {c.name}: {c.detail}")
        if c.fix and c.status != "ok":
            print(f"         -> {c.fix}")
    print("problems found" if failed else "no errors")
    return common.EXIT_FAILED if failed else common.EXIT_OK
