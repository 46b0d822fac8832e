"""The command line given odd input: numbers too big for SQLite, text that is not UTF-8, a database
that is not TaskHub's. Each is a clear message on stderr and SPEC's exit code, never a traceback."""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest

from taskhub.cli import main as cli_main
from taskhub.cli import runs as cli_runs
from taskhub.events.chain import GENESIS_HASH, chain_hash
from taskhub.events.store import EventStore
from tests.integration.test_cli_support import Home, home_at

HUGE = "99999999999999999999"  # past SQLite's 64-bit integers


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Home]:
    with home_at(tmp_path) as h:
        EventStore(h.db).close()  # an empty TaskHub database
        yield h


def assert_clean_failure(result: subprocess.CompletedProcess[str], code: int, *needles: str) -> None:
    stderr = result.stderr
    assert result.returncode == code, stderr
    assert "Traceback" not in stderr, stderr
    assert stderr.startswith("taskhub: error: "), stderr
    for needle in needles:
        assert needle in stderr, stderr


def test_integer_options_past_sqlite_range_are_usage_errors(home: Home) -> None:
    for args in (
        ("runs", "--limit", HUGE),
        ("events", "tail", "--after", HUGE),
        ("events", "replay", "--until", HUGE),
        ("events", "export", "--after", HUGE),
        ("worker", "--concurrency", HUGE),
    ):
        assert_clean_failure(home.run(*args), 2, f"{args[-2]} must be from", HUGE)


def run_bytes(h: Home, *args: bytes) -> subprocess.CompletedProcess[str]:
    """`taskhub ARGS` with arguments as raw bytes, as a shell passes them whatever the locale."""
    argv = [os.fsencode(sys.executable), b"-m", b"taskhub", *args]
    return subprocess.run(argv, cwd=h.path, env=h.env, capture_output=True, text=True, errors="replace", timeout=60)


def test_arguments_that_are_not_utf8_are_usage_errors(home: Home) -> None:
    for args in (
        (b"show", b"r-\xff"),
        (b"runs", b"--task", b"\xff\xfe"),
        (b"cancel", b"r-\xff"),
        (b"events", b"tail", b"--run", b"r-\xff"),
        (b"submit", b"hello_world", b"--param", b"target=\xff"),
    ):
        assert_clean_failure(run_bytes(home, *args), 2, "is not valid UTF-8", "\\xff")


def submitted_line(seq: int) -> bytes:
    """An exported `submitted` event at `seq` that starts the chain, its hash computed as TaskHub does."""
    data = {"task_id": "noop", "params": {}, "priority": 0, "max_attempts": 1, "timeout_s": None}
    data |= {"not_before": None, "idempotency_key": None}
    ts, stream = "2026-11-28T06:30:00.000000Z", "run:r-1"
    digest = chain_hash(
        GENESIS_HASH, seq, ts, "submitted", stream, None, msgspec.json.encode({"type": "submitted", **data})
    )
    envelope = {"seq": seq, "ts": ts, "type": "submitted", "run_id": "r-1", "worker_id": None, "data": data}
    return msgspec.json.encode({**envelope, "hash": digest}) + b"\n"


def test_import_refuses_odd_lines_without_a_traceback(tmp_path: Path) -> None:
    with home_at(tmp_path) as h:  # no database yet: import makes it
        export = h.path / "export.jsonl"
        export.write_bytes(submitted_line(1))
        assert h.ok("events", "import", str(export))  # the line is well made: it imports
        cases = {
            "seq past SQLite's integers": submitted_line(2**64),
            "not UTF-8": submitted_line(1).replace(b"noop", b"no\xffop"),
            "nested too deeply": submitted_line(1).replace(
                b'"params":{}', b'"params":{"a":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
            ),
        }
        for name, line in cases.items():
            shutil.rmtree(h.path / "data")  # import only into an empty database
            export.write_bytes(line)
            result = h.run("events", "import", str(export))
            assert "Traceback" not in result.stderr, name
            assert_clean_failure(result, 1, "import refused, nothing was written")


def sqlite_file(path: Path, *statements: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path)
    for statement in statements:
        conn.execute(statement)
    conn.commit()
    conn.close()


def test_a_database_that_is_not_taskhubs_is_named_not_a_traceback(tmp_path: Path) -> None:
    with home_at(tmp_path) as h:
        sqlite_file(h.db, "CREATE TABLE notes (text TEXT)")  # some other program's database
        for args in (("runs",), ("show", "r-1"), ("events", "tail"), ("events", "audit")):
            assert_clean_failure(h.run(*args), 1, f"{h.db} is not a TaskHub database", "TASKHUB_DB")

        h.db.write_bytes(b"not a database at all " * 300)
        for args in (("runs",), ("show", "r-1")):
            assert_clean_failure(h.run(*args), 1, f"cannot open database {h.db}")


def test_audit_of_a_log_it_cannot_read_lists_the_violation(tmp_path: Path) -> None:
    with home_at(tmp_path) as h:
        sqlite_file(h.db, "CREATE TABLE events (x)", "CREATE TABLE runs (x)", "CREATE TABLE workers (x)")
        result = h.run("events", "audit")
        assert result.returncode == 1, result.stderr
        assert "Traceback" not in result.stderr, result.stderr
        assert "[unreadable] the audit could not read the log" in result.stdout
        assert "audit failed: 1 violation(s) in 0 events" in result.stderr


def test_logs_that_cannot_be_read_are_named(home: Home) -> None:
    run = json.loads(home.ok("submit", "noop", "-o", "json"))
    stdout = home.path / "data" / "runs" / run["run_id"] / "stdout.log"
    stdout.parent.mkdir(parents=True, exist_ok=True)
    stdout.mkdir()  # not a file
    assert_clean_failure(home.run("logs", run["run_id"]), 1, f"cannot read {stdout}")


def test_an_unexpected_error_is_one_line_and_the_traceback_only_with_verbose(
    home: Home, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken(args: object) -> int:
        raise ZeroDivisionError("a bug no handler foresaw")

    monkeypatch.setenv("TASKHUB_HOME", str(home.path))
    monkeypatch.setattr(logging.getLogger(), "level", logging.getLogger().level)  # main() sets it
    monkeypatch.setattr(cli_runs, "cmd_runs", broken)  # registered when main() builds its parser
    assert cli_main.main(["runs"]) == 1
    err = capsys.readouterr().err
    assert (
        err
        == "taskhub: error: unexpected ZeroDivisionError: a bug no handler foresaw (run with -v for the traceback)\n"
    )
    assert cli_main.main(["-v", "runs"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and err.endswith(
        "taskhub: error: unexpected ZeroDivisionError: a bug no handler foresaw\n"
    )


def test_tasks_json_with_a_file_named_in_bytes_that_are_not_utf8(home: Home) -> None:
    (home.path / "tasks" / os.fsdecode(b"odd\xff.py")).write_text("x = 1\n")
    result = home.run("tasks", "--json")
    assert result.returncode == 0, result.stderr
    errors = json.loads(result.stdout)["errors"]
    assert [e["file"] for e in errors] == ["tasks/odd\\xff.py"]


def test_api_on_a_busy_port_says_so_and_exits_2(home: Home) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = str(busy.getsockname()[1])
        result = home.run("api", "--port", port, timeout=60)
    assert result.returncode == 2, result.stderr
    assert f"taskhub: error: cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "TASKHUB_PORT" in result.stderr


def test_submit_refuses_inf_and_nan_that_json_would_store_as_null(home: Home) -> None:
    for args in (("--param", "seconds=inf"), ("--json", '{"seconds": Infinity}')):
        result = home.run("submit", "sleep", *args)
        assert_clean_failure(result, 1, "(field `seconds`)", "finite number")
    assert json.loads(home.ok("runs", "--json"))["items"] == []  # nothing was recorded
