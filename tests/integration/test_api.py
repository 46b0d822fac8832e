"""REST routes against a real API process: every route, and a bad-input case for every error status."""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest

from taskhub.api.views import LiveWorkers
from taskhub.events.follow import open_reader
from taskhub.events.store import connect
from taskhub.events.types import Artifact, Progress, Result
from tests.helpers.waiting import wait_until
from tests.integration.conftest_api import (
    ApiServer,
    api,
    append,
    claim,
    client,
    finish,
    free_port,
    last_seq,
    load_fence,
    make_home,
    start,
    submit,
)

__all__ = ["api", "client"]  # fixtures, imported for pytest


def test_health(client: httpx.Client) -> None:
    body = client.get("/api/health").json()
    assert body["status"] == "ok"
    assert isinstance(body["last_seq"], int)
    assert body["sqlite_version"].count(".") == 2
    assert isinstance(body["sqlite_wal_reset_bug"], bool)
    assert body["containment"] in ("cgroup", "env-scan", "process-group", "unknown")
    assert body["tasks"] >= 5 and body["task_errors"] == 0


def test_tasks_list_get_and_preview(client: httpx.Client) -> None:
    body = client.get("/api/tasks").json()
    ids = {t["task_id"] for t in body["items"]}
    assert {"hello_world", "long_task", "fail_task", "sleep", "noop", "limited"} <= ids
    assert body["errors"] == []
    hello = client.get("/api/tasks/hello_world").json()
    assert hello["params_schema"]["properties"]["target"]["type"] == "string"
    assert hello["max_attempts"] == 1 and hello["version"]
    assert client.get("/api/tasks/nope").status_code == 404

    preview = client.post("/api/tasks/hello_world/preview", json={"params": {"target": "Ada", "times": 2}})
    assert preview.status_code == 200
    assert preview.json() == {"argv": ["python3", "tasks/scripts/hello.py", "--target", "Ada", "--times", "2"]}
    bad = client.post("/api/tasks/hello_world/preview", json={"params": {"times": 2}})
    assert bad.status_code == 422 and bad.json()["field"] == "target"
    assert client.post("/api/tasks/nope/preview", json={"params": {}}).status_code == 404


def test_submit_returns_the_queued_run(client: httpx.Client) -> None:
    run = submit(client, "hello_world", params={"target": "x"}, priority=3)
    assert run["run_id"].startswith("r-") and run["status"] == "queued"
    assert run["params"] == {"target": "x", "times": 1}  # defaults filled in
    assert run["priority"] == 3 and run["attempt"] == 0 and run["submitted_at"]
    assert any(b["reason"] == "no_live_worker" for b in run["blocked_by"])
    assert "num" not in run and "reaped" not in run
    assert client.get(f"/api/runs/{run['run_id']}").json()["status"] == "queued"


def test_idempotency_key_returns_the_first_run(client: httpx.Client) -> None:
    first = client.post("/api/runs", json={"task_id": "noop", "idempotency_key": "idem-1"})
    again = client.post("/api/runs", json={"task_id": "noop", "idempotency_key": "idem-1"})
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["run_id"] == first.json()["run_id"]
    events = client.get("/api/events", params={"type": "submitted", "limit": 10_000}).json()["items"]
    assert sum(1 for e in events if e["data"]["idempotency_key"] == "idem-1") == 1


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        (b'{"task_id": "noop", ', 400, None),
        (b"[1, 2]", 400, None),
        (b'{"task_id": "noop", "params": {"a": "\xff"}}', 400, None),  # not UTF-8
        (b'{"task_id": "no\xc3"}', 400, None),
        (b'{"task_id": "noop", "params": {"a": ' + b"[" * 5000 + b"]" * 5000 + b"}}", 400, None),  # too deep
        (b'{"task_id": "nope"}', 404, None),
        (b'{"task_id": "hello_world", "params": {"target": 5}}', 422, "target"),
        (b'{"task_id": "hello_world", "params": {"target": "x", "extra": 1}}', 422, "extra"),
        (b'{"task_id": "hello_world", "params": {"target": "a\\u0000b"}}', 422, "target"),  # no argv carries NUL
        (b'{"task_id": "noop", "priority": "high"}', 422, "priority"),
        (b'{"task_id": "noop", "priority": 10000000}', 422, "priority"),
        (b'{"task_id": "noop", "not_before": "yesterday"}', 422, "not_before"),
        (b'{"task_id": "noop", "idempotency_key": ""}', 422, "idempotency_key"),
    ],
)
def test_submit_rejections_append_nothing(client: httpx.Client, body: bytes, status: int, field: str | None) -> None:
    before = last_seq(client)
    response = client.post("/api/runs", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == status, response.text
    error = response.json()
    assert error["status_code"] == status and error["detail"]
    assert error.get("field") == field
    assert last_seq(client) == before


def test_a_body_not_utf8_or_too_deep_is_400_on_every_route(client: httpx.Client) -> None:
    run = submit(client, "noop")
    headers = {"Content-Type": "application/json"}
    for url, body in (
        ("/api/tasks/hello_world/preview", b'{"params": {"target": "\xff"}}'),
        (f"/api/runs/{run['run_id']}/cancel", b'{"reason": "\xfe"}'),
    ):
        response = client.post(url, content=body, headers=headers)
        assert response.status_code == 400, (url, response.text)
        assert response.json()["detail"] == "malformed body: not valid UTF-8 (invalid start byte)"
    deep = b'{"params": {"a": ' + b"[" * 5000 + b"]" * 5000 + b"}}"
    response = client.post("/api/tasks/noop/preview", content=deep, headers=headers)
    assert response.status_code == 400 and "nested too deeply" in response.json()["detail"], response.text
    assert client.get(f"/api/runs/{run['run_id']}").json()["status"] == "queued"


def test_a_body_that_is_not_json_says_so_on_every_route(client: httpx.Client) -> None:
    run = submit(client, "noop")
    headers = {"Content-Type": "application/json"}
    cases = {
        b"": "malformed body: empty",
        b"  ": "malformed body: empty or cut short",
        b'{"params": {': "malformed body: empty or cut short",
        b'{"params": {"a": 1e400}}': "malformed body: Number out of range",
        b'{"params": {"a": ' + b"9" * 5000 + b"}}": "malformed body: Integer value out of range",
        b"{,}": "malformed body: JSON is malformed",
    }
    for url in ("/api/runs", "/api/tasks/noop/preview", f"/api/runs/{run['run_id']}/cancel"):
        for body, expected in cases.items():
            if url.endswith("/cancel") and not body.strip():
                continue  # cancel takes no body at all
            response = client.post(url, content=body, headers=headers)
            assert response.status_code == 400, (url, body[:20], response.text)
            detail = response.json()["detail"]
            assert detail.startswith(expected), (url, body[:20], detail)
            assert "'data'" not in detail and "$[" not in detail, detail
    assert client.get(f"/api/runs/{run['run_id']}").json()["status"] == "queued"


def test_query_parameters_given_empty_count_as_not_given(client: httpx.Client) -> None:
    run = submit(client, "noop")
    everything = client.get("/api/runs").json()
    assert everything["items"], "something to list"
    assert client.get("/api/runs?status=&task_id=&limit=&cursor=").json() == everything  # SPEC's own form
    noop = client.get("/api/runs", params={"task_id": "noop"}).json()
    assert client.get("/api/runs?task_id=noop&limit=").json() == noop
    page = client.get("/api/events").json()
    assert client.get("/api/events?after=&limit=&run_id=&type=").json()["items"][: len(page["items"])] == page["items"]
    log = client.get(f"/api/runs/{run['run_id']}/logs/stdout?offset=&limit=")
    assert log.status_code == 200 and log.headers["X-Log-Size"] == "0"
    assert client.get("/api/runs?limit=x&task_id=").status_code == 422  # a value given is still checked


def test_body_too_large_is_413(client: httpx.Client) -> None:
    before = last_seq(client)
    big = {"task_id": "hello_world", "params": {"target": "x" * 70_000}}
    response = client.post("/api/runs", json=big)
    assert response.status_code == 413 and response.json()["status_code"] == 413
    assert last_seq(client) == before


def test_wrong_content_type_is_415(client: httpx.Client) -> None:
    response = client.post("/api/runs", content=b'{"task_id": "noop"}', headers={"Content-Type": "text/plain"})
    assert response.status_code == 415
    form = client.post("/api/runs", data={"task_id": "noop"})
    assert form.status_code == 415


def test_get_run_unknown_and_malformed_ids(client: httpx.Client) -> None:
    assert client.get("/api/runs/r-999999").status_code == 404
    assert client.get("/api/runs/not-a-run").status_code == 404
    assert client.get("/api/runs/r-1%2F..").status_code == 404


def test_list_runs_filters(client: httpx.Client, api: ApiServer) -> None:
    a = submit(client, "sleep", params={"seconds": 1})
    b = submit(client, "sleep", params={"seconds": 2})
    claim(api.db, a["run_id"])
    queued = client.get("/api/runs", params={"task_id": "sleep", "status": "queued"}).json()["items"]
    assert [r["run_id"] for r in queued][:1] == [b["run_id"]]
    assert all(r["status"] == "queued" and r["task_id"] == "sleep" for r in queued)
    both = client.get("/api/runs", params={"task_id": "sleep", "status": "queued,claimed"}).json()["items"]
    assert {a["run_id"], b["run_id"]} <= {r["run_id"] for r in both}
    repeated = client.get("/api/runs", params=[("task_id", "sleep"), ("status", "queued"), ("status", "claimed")])
    assert repeated.json()["items"] == both  # ?status=a&status=b: both count, not only the last
    bad = client.get("/api/runs", params={"status": "sleeping"})
    assert bad.status_code == 422 and bad.json()["field"] == "status"
    assert client.get("/api/runs", params={"limit": 0}).json()["field"] == "limit"
    assert client.get("/api/runs", params={"cursor": "abc"}).json()["field"] == "cursor"
    superscript = client.get("/api/runs", params={"cursor": "²"})  # a digit to str.isdigit(), not to int()
    assert superscript.status_code == 422 and superscript.json()["field"] == "cursor"


def test_pagination_is_stable_under_concurrent_inserts(client: httpx.Client, api: ApiServer) -> None:
    mine = [submit(client, "noop", params={})["run_id"] for _ in range(40)]
    stop = threading.Event()
    inserted: list[str] = []

    def insert() -> None:
        with httpx.Client(base_url=api.base_url, timeout=10) as other:
            while not stop.is_set() and len(inserted) < 200:
                inserted.append(submit(other, "noop")["run_id"])

    thread = threading.Thread(target=insert)
    thread.start()
    seen: list[str] = []
    try:
        cursor: str | None = None
        while True:
            params: dict[str, Any] = {"limit": 7, "task_id": "noop"}
            if cursor:
                params["cursor"] = cursor
            # let the other client insert between every two pages
            pages = len(seen) // 7
            wait_until(lambda: len(inserted) > pages, 10, message="a concurrent insert")  # noqa: B023 (called now)
            page = client.get("/api/runs", params=params).json()
            seen += [r["run_id"] for r in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
    finally:
        stop.set()
        thread.join()
    assert len(seen) == len(set(seen)), "a run appeared on two pages"
    assert set(mine) <= set(seen), "a run went missing between pages"
    nums = [int(r.removeprefix("r-")) for r in seen]
    assert nums == sorted(nums, reverse=True), "not newest first"
    assert inserted, "the concurrent inserter never ran"


def test_cancel_queued_then_finished_is_409(client: httpx.Client) -> None:
    run = submit(client, "noop")
    cancelled = client.post(f"/api/runs/{run['run_id']}/cancel", json={"reason": "test"})
    assert cancelled.status_code == 202
    assert cancelled.json()["status"] == "cancelled" and cancelled.json()["cancel_reason"] == "test"
    again = client.post(f"/api/runs/{run['run_id']}/cancel", json={})
    assert again.status_code == 409 and "finished" in again.json()["detail"]
    assert client.post("/api/runs/r-999999/cancel", json={}).status_code == 404


def test_cancel_running_asks_the_worker(client: httpx.Client, api: ApiServer) -> None:
    run = submit(client, "sleep")
    start(api.db, run["run_id"])
    response = client.post(f"/api/runs/{run['run_id']}/cancel", headers={"Content-Type": "application/json"})
    assert response.status_code == 202 and response.json()["status"] == "cancelling"
    assert client.post(f"/api/runs/{run['run_id']}/cancel", json={}).status_code == 202  # idempotent


def test_retry_finished_run(client: httpx.Client, api: ApiServer) -> None:
    run = submit(client, "fail_task", params={"code": 3})
    assert client.post(f"/api/runs/{run['run_id']}/retry", json={}).status_code == 409  # not finished yet
    start(api.db, run["run_id"])
    finish(api.db, run["run_id"], outcome="failed", exit_code=3)
    failed = client.get(f"/api/runs/{run['run_id']}").json()
    assert failed["status"] == "failed" and failed["failure_reason"] == "exit_code" and failed["blocked_by"] is None
    retried = client.post(f"/api/runs/{run['run_id']}/retry", json={})
    assert retried.status_code == 201
    new = retried.json()
    assert new["retry_of"] == run["run_id"] and new["run_id"] != run["run_id"]
    assert new["params"] == run["params"] and new["status"] == "queued"
    assert client.post("/api/runs/r-999999/retry", json={}).status_code == 404


def test_run_view_and_events(client: httpx.Client, api: ApiServer) -> None:
    run = submit(client, "long_task")
    rid = run["run_id"]
    start(api.db, rid)
    fence = load_fence(api.db, rid)
    append(api.db, rid, [Progress(fence=fence, pct=50, message="half"), Artifact(fence=fence, name="report.txt")])
    append(api.db, rid, [Result(fence=fence, value={"ok": True})])
    finish(api.db, rid)
    view = client.get(f"/api/runs/{rid}").json()
    assert view["status"] == "succeeded" and view["exit_code"] == 0 and view["pid"] == os.getpid()
    assert view["progress"]["pct"] == 50 and view["progress"]["message"] == "half"
    assert view["artifacts"] == [{"name": "report.txt", "description": None}]
    assert view["result"] == {"ok": True} and view["worker_id"] == "w-test"
    events = client.get(f"/api/runs/{rid}/events").json()["items"]
    types = [e["type"] for e in events]
    assert types == ["submitted", "claimed", "started", "progress", "artifact", "result", "exited"]
    seqs = [e["seq"] for e in events]
    assert seqs == sorted(seqs) and all(e["run_id"] == rid for e in events)
    assert client.get("/api/runs/r-999999/events").status_code == 404


def test_events_page_filters_and_last_seq(client: httpx.Client) -> None:
    run = submit(client, "noop")
    client.post(f"/api/runs/{run['run_id']}/cancel", json={})
    head = last_seq(client)
    page = client.get("/api/events", params={"run_id": run["run_id"]}).json()
    assert [e["type"] for e in page["items"]] == ["submitted", "cancelled"]
    assert page["last_seq"] >= head
    only = client.get("/api/events", params={"type": "cancelled", "after": head - 1}).json()
    assert [e["seq"] for e in only["items"]] == [head]
    pairs = [("run_id", run["run_id"]), ("type", "submitted"), ("type", "cancelled")]
    repeated = client.get("/api/events", params=pairs)
    assert [e["type"] for e in repeated.json()["items"]] == ["submitted", "cancelled"]  # not only the last type
    assert client.get("/api/events", params=[("type", "submitted"), ("type", "exploded")]).status_code == 422
    first = client.get("/api/events", params={"limit": 2}).json()
    assert [e["seq"] for e in first["items"]] == [1, 2] and first["last_seq"] == 2
    envelope = first["items"][0]
    assert set(envelope) == {"seq", "ts", "type", "run_id", "worker_id", "data", "hash"}
    assert "type" not in envelope["data"]
    bad = client.get("/api/events", params={"type": "exploded"})
    assert bad.status_code == 422 and bad.json()["field"] == "type"
    assert client.get("/api/events", params={"after": -1}).status_code == 422


def test_blocked_by_explains_the_wait(client: httpx.Client, api: ApiServer) -> None:
    holder = submit(client, "limited", params={"n": 1}, priority=900_000)
    assert "max_concurrency" not in {b["reason"] for b in holder["blocked_by"]}
    claim(api.db, holder["run_id"])
    waiting = submit(client, "limited", params={"n": 2}, priority=900_000)
    # The submission's own answer says so too (all but the runs ahead, a count too dear per submit).
    assert [b["runs"] for b in waiting["blocked_by"] if b["reason"] == "max_concurrency"] == [[holder["run_id"]]]
    later = submit(client, "noop", not_before="2999-01-01T00:00:00Z", priority=-5)
    view = client.get(f"/api/runs/{waiting['run_id']}").json()
    reasons = {b["reason"]: b for b in view["blocked_by"]}
    assert reasons["max_concurrency"]["runs"] == [holder["run_id"]]
    assert holder["run_id"] in reasons["max_concurrency"]["message"]
    assert "no_live_worker" in reasons
    assert "runs_ahead" not in reasons or reasons["runs_ahead"]["count"] >= 1
    later_view = client.get(f"/api/runs/{later['run_id']}").json()
    later_reasons = {b["reason"]: b for b in later_view["blocked_by"]}
    assert later_reasons["not_before"]["until"].startswith("2999-01-01T00:00:00")
    assert later_reasons["runs_ahead"]["count"] >= 1
    listed = client.get("/api/runs", params={"task_id": "limited", "status": "queued"}).json()["items"]
    assert any(b["reason"] == "max_concurrency" for b in listed[0]["blocked_by"])


def test_workers_liveness_and_running(client: httpx.Client, api: ApiServer) -> None:
    import socket
    import time

    import psutil

    from taskhub.events.store import EventStore
    from taskhub.events.types import WorkerStarted
    from taskhub.projections import ops

    me = psutil.Process()
    store = EventStore(api.db)
    try:
        with store.transaction(time.time()) as txn:
            started = WorkerStarted(pid=me.pid, host=socket.gethostname(), concurrency=2, create_time=me.create_time())
            ops.append_worker_event(txn, "w-test", started)
            ghost = WorkerStarted(pid=me.pid, host=socket.gethostname(), concurrency=1, create_time=1.0)
            ops.append_worker_event(txn, "w-ghost", ghost)
    finally:
        store.close()
    run = submit(client, "sleep")
    claim(api.db, run["run_id"], worker_id="w-test")
    items = {w["worker_id"]: w for w in client.get("/api/workers").json()["items"]}
    assert items["w-test"]["alive"] is True and items["w-test"]["concurrency"] == 2
    assert run["run_id"] in items["w-test"]["running"]
    assert items["w-ghost"]["alive"] is False, "a pid with another create time is not that worker"
    assert set(items["w-test"]) == {
        "worker_id",
        "pid",
        "host",
        "concurrency",
        "started_at",
        "stopped_at",
        "alive",
        "running",
    }


def test_stats(client: httpx.Client) -> None:
    submit(client, "hello_world", params={"target": "s"})
    stats = client.get("/api/stats").json()
    assert stats["by_status"]["queued"] >= 1
    assert stats["by_task"]["hello_world"]["queued"] >= 1
    assert sum(stats["by_status"].values()) == sum(sum(v.values()) for v in stats["by_task"].values())


def test_unknown_api_route_is_json_404(client: httpx.Client) -> None:
    response = client.get("/api/nothing/here")
    assert response.status_code == 404 and response.json()["status_code"] == 404


def test_openapi_document_names_every_operation(client: httpx.Client) -> None:
    doc = client.get("/schema/openapi.json").json()
    ops_ = {op["operationId"] for path in doc["paths"].values() for op in path.values() if isinstance(op, dict)}
    expected = {
        "getHealth",
        "listTasks",
        "getTask",
        "previewTask",
        "submitRun",
        "listRuns",
        "getRun",
        "cancelRun",
        "retryRun",
        "listRunEvents",
        "getRunLog",
        "streamRunLog",
        "listRunArtifacts",
        "getRunArtifact",
        "listEvents",
        "streamEvents",
        "listWorkers",
        "getStats",
    }
    assert expected <= ops_
    assert all(p.startswith("/api/") for p in doc["paths"])


def test_openapi_document_lists_the_errors_each_operation_answers(client: httpx.Client) -> None:
    """A client generated from the document (or a schema-driven test) knows every error answer."""
    doc = client.get("/schema/openapi.json").json()
    by_id = {op["operationId"]: op for path in doc["paths"].values() for op in path.values() if isinstance(op, dict)}
    run = submit(client, "noop")["run_id"]
    client.post(f"/api/runs/{run}/cancel", json={})
    answers = {
        "submitRun": client.post("/api/runs", json={"task_id": "no_such_task"}),
        "listRuns": client.get("/api/runs", params={"cursor": "x"}),
        "getRun": client.get("/api/runs/r-999999"),
        "cancelRun": client.post(f"/api/runs/{run}/cancel", json={}),
        "retryRun": client.post("/api/runs/r-999999/retry", json={}),
        "listRunEvents": client.get(f"/api/runs/{run}/events", params={"limit": 0}),
        "getTask": client.get("/api/tasks/no_such_task"),
        "previewTask": client.post("/api/tasks/hello_world/preview", json={"params": {}}),
        "listEvents": client.get("/api/events", params={"type": "nope"}),
        "streamEvents": client.get("/api/events/stream", params={"type": "nope"}),
        "getRunLog": client.get(f"/api/runs/{run}/logs/nope"),
        "streamRunLog": client.get(f"/api/runs/{run}/logs/stdout/stream", params={"offset": "x"}),
        "listRunArtifacts": client.get("/api/runs/r-999999/artifacts"),
        "getRunArtifact": client.get(f"/api/runs/{run}/artifacts/nope.txt"),
    }
    for op_id, response in answers.items():
        status = str(response.status_code)
        assert response.status_code >= 400, (op_id, response.text)
        documented = by_id[op_id]["responses"]
        assert status in documented, f"{op_id} answers {status}, documents {sorted(documented)}"
        schema = documented[status]["content"]["application/json"]["schema"]
        assert schema == {"$ref": "#/components/schemas/ErrorBody"}, (op_id, schema)
    for op_id in ("submitRun", "cancelRun", "previewTask"):
        assert {"400", "413", "415", "422"} <= set(by_id[op_id]["responses"]), op_id


def test_integers_past_64_bits_are_a_422_not_a_500(client: httpx.Client) -> None:
    """Found by schemathesis: an `after` beyond SQLite's 64-bit integers used to reach the database."""
    huge = str(2**80)
    for path in ("/api/events", "/api/events/stream", "/api/runs/r-1/events"):
        response = client.get(path, params={"after": huge})
        assert response.status_code in (404, 422), (path, response.status_code, response.text)
        assert response.status_code != 500
    response = client.get("/api/events", params={"after": huge})
    assert response.status_code == 422 and "after" in response.text


def test_stale_liveness_is_refreshed_once_for_all_waiting_requests(tmp_path: Path) -> None:
    db = tmp_path / "taskhub.db"
    connect(db).close()  # the schema
    queries: list[str] = []

    async def many_at_once() -> list[list[str]]:
        conn = await open_reader(db)
        try:
            await conn.set_trace_callback(queries.append)
            live = LiveWorkers()
            return await asyncio.gather(*(live.alive(conn) for _ in range(20)))
        finally:
            await conn.close()

    assert asyncio.run(many_at_once()) == [[]] * 20
    assert sum("FROM workers" in q for q in queries) == 1


def test_a_task_file_named_in_bytes_that_are_not_utf8_is_listed_not_a_500(tmp_path: Path) -> None:
    home = make_home(tmp_path)
    (home / "tasks" / os.fsdecode(b"odd\xff.py")).write_text("x = 1\n")  # no `task`: a load error
    server = ApiServer(home, free_port(), {"TASKHUB_WEB_DIST": str(home / "web" / "dist")})
    server.start()
    try:
        response = httpx.get(f"{server.base_url}/api/tasks", timeout=10)
        assert response.status_code == 200, response.text
        errors = response.json()["errors"]
        assert [e["file"] for e in errors] == ["tasks/odd\\xff.py"]
        assert "no `task`" in errors[0]["error"]
    finally:
        server.stop()
