"""The CLI when an API is running: submit and cancel go through HTTP, and `--follow` works even
from a machine without the database (through the API's log endpoints)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from taskhub.errors import ConfigError
from taskhub.settings import load_settings
from tests.helpers.waiting import wait_until
from tests.integration.test_cli_support import Home, home_at


def _healthy(url: str, token: str | None = None) -> bool:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        return httpx.get(f"{url}/api/health", headers=headers, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Home]:
    with home_at(tmp_path) as h:
        h.env["TASKHUB_TOKEN"] = "s3cret-token"
        h.env["TASKHUB_ACCESS_LOG"] = "1"  # off by default; the access log proves the CLI used HTTP
        h.start("api", stdout=h.path / "api.log")
        url = f"http://127.0.0.1:{h.env['TASKHUB_PORT']}"
        wait_until(lambda: _healthy(url, "s3cret-token"), 60, interval=0.1, message="the API to answer")
        yield h


def api_requests(h: Home, needle: str) -> int:
    return (h.path / "api.log").read_text().count(needle)


def test_submit_and_cancel_go_through_the_api(home: Home) -> None:
    run = json.loads(home.ok("submit", "hello_world", "-p", "target=http", "-p", "times=2", "-o", "json"))
    assert run["status"] == "queued" and run["params"] == {"target": "http", "times": 2}
    wait_until(lambda: api_requests(home, "POST /api/runs") >= 1, 10, message="the API's access log")

    first = json.loads(home.ok("submit", "sleep", "--idempotency-key", "same", "-o", "json"))
    assert (
        json.loads(home.ok("submit", "sleep", "--idempotency-key", "same", "-o", "json"))["run_id"] == first["run_id"]
    )

    result = home.run("submit", "no_such_task")
    assert result.returncode == 1 and "unknown task 'no_such_task'" in result.stderr and "hello_world" in result.stderr
    result = home.run("submit", "hello_world", "-p", "target=x", "-p", "times=lots")
    assert result.returncode == 1 and "`times`" in result.stderr
    result = home.run("submit", "hello_world")
    assert result.returncode == 1 and "`target`" in result.stderr

    shown = json.loads(home.ok("show", run["run_id"], "--json"))  # no worker: the API says why it waits
    assert shown["status"] == "queued" and shown["blocked_by"]
    assert any(b["reason"] == "no_live_worker" for b in shown["blocked_by"])
    assert "waiting" in home.ok("show", run["run_id"])

    cancelled = json.loads(home.ok("cancel", run["run_id"], "--json"))
    assert cancelled["status"] == "cancelled"
    wait_until(lambda: api_requests(home, "/cancel") >= 1, 10, message="the cancel in the API's access log")
    result = home.run("cancel", run["run_id"])
    assert result.returncode == 1 and "already finished" in result.stderr
    result = home.run("cancel", "r-404")
    assert result.returncode == 1 and "unknown run 'r-404'" in result.stderr


def test_wrong_token_says_what_to_do(home: Home) -> None:
    result = home.run("submit", "sleep", env={"TASKHUB_TOKEN": "wrong"})
    assert result.returncode == 1 and "TASKHUB_TOKEN" in result.stderr


def test_follow_through_the_api_without_the_database(home: Home, tmp_path: Path) -> None:
    home.worker()
    remote = {"TASKHUB_DB": str(tmp_path / "not-here" / "taskhub.db")}  # as if on another machine
    result = home.run("submit", "hello_world", "-p", "target=remote", "--follow", env=remote)
    assert result.returncode == 0, result.stderr
    assert "Hello, remote!" in result.stdout
    result = home.run("submit", "fail_task", "-p", "code=3", "--follow", env=remote)
    assert result.returncode == 3
    assert "about to fail" in result.stdout and "boom" in result.stderr
    assert not (tmp_path / "not-here").exists()


def test_access_log_is_off_unless_asked(tmp_path: Path) -> None:
    with home_at(tmp_path) as h:
        h.env.pop("TASKHUB_ACCESS_LOG", None)
        h.start("api", stdout=h.path / "api.log")
        url = f"http://127.0.0.1:{h.env['TASKHUB_PORT']}"
        wait_until(lambda: _healthy(url), 60, interval=0.1, message="the API to answer")
        submitted = httpx.post(f"{url}/api/runs", json={"task_id": "sleep"})
        assert submitted.status_code == 201
        h.stop_all()  # the log is complete once the API has stopped
        text = (h.path / "api.log").read_text()
        assert "api.started" in text and "api.stopped" in text
        assert "POST /api/runs" not in text and "GET /api/health" not in text


def test_access_log_setting(tmp_path: Path) -> None:
    home = str(tmp_path)
    assert not load_settings({"TASKHUB_HOME": home}).access_log
    assert load_settings({"TASKHUB_HOME": home, "TASKHUB_ACCESS_LOG": "1"}).access_log
    assert not load_settings({"TASKHUB_HOME": home, "TASKHUB_ACCESS_LOG": "off"}).access_log
    with pytest.raises(ConfigError, match="TASKHUB_ACCESS_LOG"):
        load_settings({"TASKHUB_HOME": home, "TASKHUB_ACCESS_LOG": "loud"})


def test_cancel_of_a_malformed_run_id_touches_nothing_through_the_api(home: Home) -> None:
    run = json.loads(home.ok("submit", "sleep", "-o", "json"))
    home.ok("cancel", run["run_id"])
    before = json.loads(home.ok("runs", "--json"))["items"]
    for bad in (f"{run['run_id']}/retry?", f"{run['run_id']}/retry#", f"../runs/{run['run_id']}/retry?"):
        result = home.run("cancel", bad)  # was sent as POST /api/runs/r-N/retry?/cancel: a retry
        assert result.returncode == 1, result.stdout
        assert f"unknown run {bad!r}" in result.stderr
    assert json.loads(home.ok("runs", "--json"))["items"] == before
