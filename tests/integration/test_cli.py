"""The `taskhub` command line as a user runs it: real processes, a real SQLite file, no API running
(so every command works straight on the log), and a real worker where runs must finish."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.waiting import wait_until
from tests.integration.test_cli_support import Home, home_at


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Home]:
    with home_at(tmp_path) as h:
        yield h


def submit(h: Home, *args: str) -> dict[str, object]:
    run: dict[str, object] = json.loads(h.ok("submit", *args, "-o", "json"))
    return run


def test_help_and_usage_errors(home: Home) -> None:
    result = home.run("--help")
    assert result.returncode == 0
    for command in ("api", "worker", "reaper", "tasks", "submit", "runs", "show", "logs", "cancel", "events", "doctor"):
        assert command in result.stdout
    assert home.run("no-such-command").returncode == 2
    assert home.run("events", "tail", "--after", "x").returncode == 2


def test_missing_database_says_how_to_start(home: Home) -> None:
    for args in (
        ("runs",),
        ("show", "r-1"),
        ("logs", "r-1"),
        ("cancel", "r-1"),
        ("events", "tail"),
        ("events", "audit"),
        ("events", "replay"),
        ("events", "export"),
    ):
        result = home.run(*args)
        assert result.returncode == 1, args
        assert f"no database at {home.db}" in result.stderr
        assert "bin/start.sh" in result.stderr


def test_bad_configuration_names_the_variable(home: Home) -> None:
    result = home.run("runs", env={"TASKHUB_LEASE_S": "soon"})
    assert result.returncode == 2
    assert "TASKHUB_LEASE_S" in result.stderr


def test_tasks_lists_tasks_and_load_errors(home: Home) -> None:
    (home.path / "tasks" / "broken.py").write_text("import nowhere_to_be_found\n")
    data = json.loads(home.ok("tasks", "--json"))
    ids = {t["task_id"] for t in data["items"]}
    assert {"hello_world", "fail_task"} <= ids
    hello = next(t for t in data["items"] if t["task_id"] == "hello_world")
    assert hello["params_schema"]["required"] == ["target"]
    assert [e["file"] for e in data["errors"]] == ["tasks/broken.py"]
    text = home.ok("tasks")
    assert "hello_world" in text and "tasks/broken.py" in text and "nowhere_to_be_found" in text


def test_submit_bad_input(home: Home) -> None:
    result = home.run("submit", "no_such_task")
    assert result.returncode == 1
    assert "unknown task 'no_such_task'" in result.stderr and "hello_world" in result.stderr

    result = home.run("submit", "hello_world", "--param", "target=x", "--param", "times=many")
    assert result.returncode == 1
    assert "`times`" in result.stderr

    result = home.run("submit", "hello_world")
    assert result.returncode == 1
    assert "`target`" in result.stderr

    result = home.run("submit", "hello_world", "--json", "{not json")
    assert result.returncode == 2
    assert "--json is not valid JSON" in result.stderr

    result = home.run("submit", "hello_world", "--json", '{"target": "a\\u0000b"}')  # no argv carries NUL
    assert result.returncode == 1 and "(field `target`)" in result.stderr

    for pair in ("target", "=x"):  # not key=value: a usage error, as a malformed --json is
        result = home.run("submit", "hello_world", "--param", pair)
        assert result.returncode == 2 and f"--param expects key=value, got {pair!r}" in result.stderr

    result = home.run("submit", "hello_world", "--json", "[1, 2]")
    assert result.returncode == 2

    result = home.run("submit", "hello_world", "-p", "target=x", "--not-before", "tomorrow-ish")
    assert result.returncode == 2
    assert "ISO 8601" in result.stderr
    assert not home.db.exists() or home.ok("events", "export") == ""  # nothing was written


def test_submit_show_runs_cancel(home: Home) -> None:
    run = submit(home, "hello_world", "--json", '{"target": "json"}', "-p", "times=2", "--priority", "5")
    run_id = str(run["run_id"])
    assert run["status"] == "queued" and run["params"] == {"target": "json", "times": 2} and run["priority"] == 5

    again = submit(home, "sleep", "--idempotency-key", "k-1")
    assert submit(home, "sleep", "--idempotency-key", "k-1")["run_id"] == again["run_id"]

    shown = json.loads(home.ok("show", run_id, "--json"))
    assert shown["run_id"] == run_id and shown["task_id"] == "hello_world"
    assert run_id in home.ok("show", run_id) and "queued" in home.ok("show", run_id)

    listed = json.loads(home.ok("runs", "--json"))["items"]
    assert [r["run_id"] for r in listed] == [again["run_id"], run_id]  # newest first
    assert [r["run_id"] for r in json.loads(home.ok("runs", "--task", "sleep", "--json"))["items"]] == [again["run_id"]]
    assert run_id in home.ok("runs", "--status", "queued")

    cancelled = json.loads(home.ok("cancel", run_id, "--json"))
    assert cancelled["status"] == "cancelled"
    result = home.run("cancel", run_id)
    assert result.returncode == 1 and "already finished" in result.stderr
    assert json.loads(home.ok("runs", "--status", "cancelled", "--json"))["items"][0]["run_id"] == run_id

    for args in (("show", "r-999"), ("logs", "r-999"), ("cancel", "r-999")):
        result = home.run(*args)
        assert result.returncode == 1 and "unknown run 'r-999'" in result.stderr, args

    assert submit(home, "hello_world", "-p", "target=d")["params"] == {"target": "d", "times": 1}  # as the API


def test_json_run_views_say_why_a_queued_run_waits(home: Home) -> None:
    """SPEC section 5: the run view (REST and CLI --json) has `blocked_by` while queued, API or not."""
    first = submit(home, "sleep")
    later = submit(home, "noop", "--not-before", "2999-01-01T00:00:00Z")
    expected = ["not_before", "no_live_worker", "runs_ahead"]
    assert [b["reason"] for b in later["blocked_by"]] == expected  # type: ignore[attr-defined]
    shown = json.loads(home.ok("show", str(later["run_id"]), "--json"))
    assert [b["reason"] for b in shown["blocked_by"]] == expected
    assert shown["blocked_by"][2]["count"] == 1 and shown["blocked_by"][0]["until"].startswith("2999-01-01")
    listed = {r["run_id"]: r for r in json.loads(home.ok("runs", "--json"))["items"]}
    assert [b["reason"] for b in listed[first["run_id"]]["blocked_by"]] == ["no_live_worker"]
    assert [b["reason"] for b in listed[later["run_id"]]["blocked_by"]] == expected
    assert "no live worker" in home.ok("show", str(first["run_id"]))
    home.ok("cancel", str(first["run_id"]))
    assert json.loads(home.ok("show", str(first["run_id"]), "--json"))["blocked_by"] is None  # not queued


def test_follow_and_wait_exit_with_the_runs_code(home: Home) -> None:
    home.worker()
    result = home.run("submit", "hello_world", "-p", "target=follow", "-p", "times=2", "--follow")
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("Hello, follow!") == 2

    result = home.run("submit", "fail_task", "-p", "code=3", "-p", "message=it broke", "--follow")
    assert result.returncode == 3
    assert "about to fail" in result.stdout and "it broke" in result.stderr

    result = home.run("submit", "fail_task", "-p", "code=5", "--wait", "-o", "json")
    assert result.returncode == 5
    final = json.loads(result.stdout)
    assert final["status"] == "failed" and final["exit_code"] == 5
    run_id = final["run_id"]
    assert home.ok("logs", run_id) == "about to fail\n"
    assert home.run("logs", run_id, "--stream", "stderr").stderr.endswith("boom\n")
    assert home.run("logs", run_id, "-f").returncode == 0  # finished: prints and returns

    result = home.run("submit", "sleep", "-p", "seconds=0", "--wait")
    assert result.returncode == 0 and result.stdout == ""


def unique_run_ids(h: Home) -> None:
    """Start this log's seq (hence its run ids) at a random point. Run processes are found machine-wide
    by TASKHUB_RUN_ID, so another TaskHub on this machine (a parallel test session) reaping its own
    `r-1` would kill ours too. (A log that does not start at seq 1 does not audit clean: not for audits.)"""
    import random

    from taskhub.events.store import EventStore

    store = EventStore(h.db)
    store.conn.execute("INSERT INTO sqlite_sequence (name, seq) VALUES ('events', ?)", (random.randrange(10**9),))
    store.close()


def test_cancel_while_running_ends_follow_with_130(home: Home) -> None:
    import re

    unique_run_ids(home)
    home.worker()
    out = home.path / "submit.out"
    submitter = home.start("submit", "sleep", "-p", "seconds=60", "--follow", stdout=out)
    found = wait_until(lambda: re.search(r"submitted (r-\d+)", out.read_text()), 30, message="the run id")
    run_id = found.group(1)
    home.wait_status(run_id, ("running",))
    logs = home.start("logs", run_id, "-f", stdout=home.path / "logs.out")
    assert json.loads(home.ok("cancel", run_id, "--json"))["status"] in ("cancelling", "cancelled")
    assert submitter.wait(timeout=30) == 130
    assert logs.wait(timeout=30) == 0
    assert json.loads(home.ok("show", run_id, "--json"))["status"] == "cancelled"
    assert home.run("submit", "sleep", "-p", "seconds=0", "--wait").returncode == 0  # the worker carries on


def test_doctor(home: Home) -> None:
    result = home.run("doctor", "--json")
    assert result.returncode == 0, result.stdout  # warnings (no database yet, nothing running) only
    report = json.loads(result.stdout)
    names = {c["name"] for c in report["checks"]}
    assert {"tasks", "database", "sqlite", "containment", "web", "api"} <= names
    database = next(c for c in report["checks"] if c["name"] == "database")
    assert database["status"] == "warn" and "bin/start.sh" in database["fix"]
    submit(home, "sleep")
    checks = json.loads(home.ok("doctor", "--json"))["checks"]
    assert next(c for c in checks if c["name"] == "database")["status"] == "ok"
    assert "sqlite" in home.ok("doctor")

    shutil.rmtree(home.path / "tasks")
    result = home.run("doctor")
    assert result.returncode == 1
    assert "TASKHUB_HOME" in result.stdout


def test_console_script(home: Home) -> None:
    script = Path(sys.executable).parent / "taskhub"
    result = subprocess.run([str(script), "tasks", "--json"], env=home.env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "hello_world" in result.stdout
