"""`taskhub events ...`: tail, time travel, audit, rebuild, export/import, on a real log that a real
worker wrote to."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.waiting import wait_until
from tests.integration.test_cli_support import Home, home_at

ENVELOPE_KEYS = ["seq", "ts", "type", "run_id", "worker_id", "data", "hash"]


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Home]:
    with home_at(tmp_path / "home") as h:
        yield h


def submit(h: Home, *args: str) -> str:
    run_id: str = json.loads(h.ok("submit", *args, "-o", "json"))["run_id"]
    return run_id


def copy_db(h: Home, dest: Path) -> Path:
    """A consistent copy of the live database (the WAL included), for tampering with."""
    src = sqlite3.connect(h.db)
    dst = sqlite3.connect(dest)
    with dst:
        src.backup(dst)
    src.close()
    dst.close()
    return dest


@pytest.fixture
def history(home: Home) -> dict[str, str]:
    """A log with a run queued before any worker, then runs that succeed, fail and get cancelled."""
    runs = {"early": submit(home, "hello_world", "-p", "target=early")}
    runs["cancelled"] = submit(home, "sleep", "-p", "seconds=30")
    home.ok("cancel", runs["cancelled"])
    home.worker()
    runs["failed"] = submit(home, "fail_task", "-p", "code=2")
    home.wait_status(runs["early"], ("succeeded",))
    home.wait_status(runs["failed"], ("failed",))
    home.stop_all()  # the worker drains and records worker_stopped: the log is quiet from here on
    return runs


def test_tail_json_one_envelope_per_line(home: Home, history: dict[str, str]) -> None:
    lines = home.ok("events", "tail", "--json").splitlines()
    events = [json.loads(line) for line in lines]
    assert [list(e) for e in events] == [ENVELOPE_KEYS] * len(events)
    assert [e["seq"] for e in events] == sorted({e["seq"] for e in events})
    types = {e["type"] for e in events}
    assert {"submitted", "claimed", "started", "exited", "cancelled", "worker_started", "worker_stopped"} <= types

    only = [json.loads(x) for x in home.ok("events", "tail", "--json", "--run", history["failed"]).splitlines()]
    assert {e["run_id"] for e in only} == {history["failed"]}
    typed = home.ok("events", "tail", "--json", "--type", "submitted,cancelled").splitlines()
    assert {json.loads(x)["type"] for x in typed} == {"submitted", "cancelled"}
    assert home.ok("events", "tail", "--json", "--type", "submitted", "--type", "cancelled").splitlines() == typed
    after = home.ok("events", "tail", "--json", "--after", str(events[-2]["seq"])).splitlines()
    assert [json.loads(x)["seq"] for x in after] == [events[-1]["seq"]]

    text = home.ok("events", "tail")
    assert len(text.splitlines()) == len(events) and "\x1b[" not in text  # not a terminal: no colour
    bad = home.run("events", "tail", "--type", "exploded")
    assert bad.returncode == 2 and "unknown event type 'exploded'" in bad.stderr
    assert home.run("events", "tail", "--run", "r-404").returncode == 1


def test_tail_follow_prints_new_events_live(home: Home) -> None:
    submit(home, "sleep")
    out = home.path / "tail.out"
    home.start("events", "tail", "-f", "--json", stdout=out)
    wait_until(lambda: out.read_text().count("\n") >= 1, 20, interval=0.05, message="the existing event")
    run_id = submit(home, "noop")
    line = wait_until(
        lambda: next((x for x in out.read_text().splitlines() if run_id in x), None), 20, interval=0.05,
        message="the new submitted event",
    )
    assert json.loads(line)["type"] == "submitted"


def test_replay_time_travel(home: Home, history: dict[str, str]) -> None:
    early = history["early"]
    events = [json.loads(x) for x in home.ok("events", "tail", "--json", "--run", early).splitlines()]
    submitted, claimed = events[0], next(e for e in events if e["type"] == "claimed")

    before_claim = json.loads(home.ok("events", "replay", "--until", str(claimed["seq"] - 1), "--run", early, "--json"))
    assert before_claim["status"] == "queued" and before_claim["worker_id"] is None
    now = json.loads(home.ok("events", "replay", "--run", early, "--json"))
    assert now["status"] == "succeeded"

    at = json.loads(home.ok("events", "replay", "--at", submitted["ts"], "--json"))
    assert at["last_seq"] == submitted["seq"]
    assert [r["status"] for r in at["runs"]] == ["queued"]
    table = home.ok("events", "replay", "--until", str(submitted["seq"]))
    assert early in table and "queued" in table

    gone = home.run("events", "replay", "--at", "2001-01-01T00:00:00Z", "--run", early)
    assert gone.returncode == 1 and "did not exist" in gone.stderr
    bad = home.run("events", "replay", "--at", "last tuesday")
    assert bad.returncode == 2 and "ISO 8601" in bad.stderr


def test_export_import_round_trip_is_identical_and_audits_clean(home: Home, history: dict[str, str]) -> None:
    exported = home.ok("events", "export")
    assert exported.count("\n") == int(json.loads(exported.splitlines()[-1])["seq"])
    dump = home.path / "export.jsonl"
    dump.write_text(exported)
    other = {"TASKHUB_DB": str(home.path / "copy" / "taskhub.db")}

    result = home.run("events", "import", str(dump), "--json", env=other)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)  # SPEC 8: every command that prints records has --json
    assert summary["events"] == exported.count("\n") and summary["db"] == other["TASKHUB_DB"]
    assert home.ok("events", "export", env=other) == exported
    assert home.ok("events", "export", "--json", env=other) == exported  # JSON lines either way
    assert "audit clean" in home.ok("events", "audit", env=other)
    original = json.loads(home.ok("runs", "--json"))
    assert json.loads(home.ok("runs", "--json", env=other)) == original

    again = home.run("events", "import", str(dump), env=other)
    assert again.returncode == 1 and "not empty" in again.stderr

    partial = home.path / "partial.jsonl"
    partial.write_text(home.ok("events", "export", "--after", "2"))
    refused = home.run("events", "import", str(partial), env={"TASKHUB_DB": str(home.path / "p" / "t.db")})
    assert refused.returncode == 1 and "--after" in refused.stderr


def test_import_refuses_an_altered_export(home: Home, history: dict[str, str]) -> None:
    lines = home.ok("events", "export").splitlines()
    row = json.loads(lines[0])
    row["data"]["params"]["target"] = "mallory"
    lines[0] = json.dumps(row, separators=(",", ":"))
    dump = home.path / "altered.jsonl"
    dump.write_text("\n".join(lines) + "\n")
    target = {"TASKHUB_DB": str(home.path / "altered" / "taskhub.db")}
    result = home.run("events", "import", str(dump), env=target)
    assert result.returncode == 1
    assert "hash mismatch" in result.stderr and "nothing was written" in result.stderr
    assert home.ok("events", "export", env=target) == ""

    garbage = home.path / "garbage.jsonl"
    garbage.write_text("this is not json\n")
    result = home.run("events", "import", str(garbage), env={"TASKHUB_DB": str(home.path / "g" / "taskhub.db")})
    assert result.returncode == 1 and "line 1" in result.stderr


def test_audit_detects_a_tampered_row(home: Home, history: dict[str, str]) -> None:
    assert "audit clean" in home.ok("events", "audit")
    tampered = copy_db(home, home.path / "tampered.db")
    conn = sqlite3.connect(tampered)
    with conn:
        conn.execute("DROP TRIGGER events_no_update")
        conn.execute("UPDATE events SET data = CAST(replace(data, 'early', 'later') AS BLOB) WHERE seq = 1")
    conn.close()
    result = home.run("events", "audit", env={"TASKHUB_DB": str(tampered)})
    assert result.returncode == 1
    assert "[chain] seq 1" in result.stdout and "altered" in result.stdout
    assert "audit failed" in result.stderr
    report = json.loads(home.run("events", "audit", "--json", env={"TASKHUB_DB": str(tampered)}).stdout)
    assert report["ok"] is False and report["violations"]

    conn = sqlite3.connect(tampered)
    with conn:  # a row rewritten as TEXT, not BLOB: still reported, never a traceback
        conn.execute("UPDATE events SET data = replace(data, 'sleep', 'sleeq') WHERE seq = 2")
    conn.close()
    result = home.run("events", "audit", env={"TASKHUB_DB": str(tampered)})
    assert result.returncode == 1 and result.stdout and "Traceback" not in result.stderr


def test_rebuild_repairs_the_projections(home: Home, history: dict[str, str]) -> None:
    broken = copy_db(home, home.path / "broken.db")
    conn = sqlite3.connect(broken)
    with conn:
        conn.execute("DELETE FROM runs WHERE run_id = ?", (history["failed"],))
    conn.close()
    env = {"TASKHUB_DB": str(broken)}
    result = home.run("events", "audit", env=env)
    assert result.returncode == 1 and "[projection]" in result.stdout
    assert "rebuilt 3 runs" in home.ok("events", "rebuild", env=env)
    assert json.loads(home.ok("events", "rebuild", "--json", env=env))["runs"] == 3
    assert "audit clean" in home.ok("events", "audit", env=env)
