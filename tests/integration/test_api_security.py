"""SPEC section 7 against real API processes: token, Host allowlist, JSON-only and same-origin writes,
and the refusal to listen on a public address without a token."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest

from tests.integration.conftest_api import REPO, ApiServer, api, client, free_port, make_home, start_server, submit

__all__ = ["api", "client"]

TOKEN = "s3cret-token-value-0123456789"


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    server = start_server(
        tmp_path_factory.mktemp("guarded"),
        TASKHUB_TOKEN=TOKEN,
        TASKHUB_ALLOWED_HOSTS="taskhub.example",
        TASKHUB_TEST_ACCESS_LOG="1",
    )
    try:
        yield server
    finally:
        server.stop()


def test_token_is_required_on_api_routes(guarded: ApiServer) -> None:
    url = guarded.base_url
    assert httpx.get(f"{url}/api/health").status_code == 401
    wrong = httpx.get(f"{url}/api/health", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and wrong.json()["status_code"] == 401
    assert wrong.headers["www-authenticate"].startswith("Bearer")
    assert httpx.get(f"{url}/api/health", headers={"Authorization": f"Basic {TOKEN}"}).status_code == 401
    ok = httpx.get(f"{url}/api/health", headers={"Authorization": f"Bearer {TOKEN}"})
    assert ok.status_code == 200
    assert httpx.get(f"{url}/").status_code == 200, "the UI shell loads without a token; it asks for one"


def test_token_is_required_to_submit(guarded: ApiServer) -> None:
    url, body = f"{guarded.base_url}/api/runs", {"task_id": "noop"}
    assert httpx.post(url, json=body).status_code == 401
    assert httpx.post(url, json=body, headers={"Authorization": "Bearer nope"}).status_code == 401
    assert httpx.post(url, json=body, params={"token": TOKEN}).status_code == 401
    ok = httpx.post(url, json=body, headers={"Authorization": f"Bearer {TOKEN}"})
    assert ok.status_code == 201 and ok.json()["status"] == "queued"


def test_query_token_only_for_event_streams(guarded: ApiServer) -> None:
    url = guarded.base_url
    assert httpx.get(f"{url}/api/runs", params={"token": TOKEN}).status_code == 401
    with httpx.stream("GET", f"{url}/api/events/stream", params={"token": TOKEN}, timeout=10) as response:
        assert response.status_code == 200
        assert next(response.iter_lines()).startswith("retry:")
    assert httpx.get(f"{url}/api/events/stream", params={"token": "wrong"}).status_code == 401
    log_text = guarded.log_text()
    assert "GET /api/events/stream" in log_text, "the access log is on in this server"
    assert TOKEN not in log_text, "a token was written to the log"


def test_allowed_hosts_extend_the_loopback_names(guarded: ApiServer) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}", "Host": "taskhub.example:8000"}
    assert httpx.get(f"{guarded.base_url}/api/health", headers=headers).status_code == 200


@pytest.mark.parametrize("host", ["evil.example", "evil.example:80", "127.0.0.1.evil.example", "localhost.evil"])
def test_bad_host_is_refused(api: ApiServer, host: str) -> None:
    response = httpx.get(f"{api.base_url}/api/health", headers={"Host": host})
    assert response.status_code == 400 and "not allowed" in response.json()["detail"]
    assert httpx.get(f"{api.base_url}/", headers={"Host": host}).status_code == 400


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "[::1]:8000", "LOCALHOST:1234"])
def test_loopback_hosts_are_allowed(api: ApiServer, host: str) -> None:
    assert httpx.get(f"{api.base_url}/api/health", headers={"Host": host}).status_code == 200


def test_cross_origin_writes_are_refused(client: httpx.Client, api: ApiServer) -> None:
    body = {"task_id": "noop"}
    evil = client.post("/api/runs", json=body, headers={"Origin": "http://evil.example"})
    assert evil.status_code == 403
    null = client.post("/api/runs", json=body, headers={"Origin": "null"})
    assert null.status_code == 403
    same = client.post("/api/runs", json=body, headers={"Origin": f"http://127.0.0.1:{api.port}"})
    assert same.status_code == 201
    run = submit(client, "noop")
    assert client.post(f"/api/runs/{run['run_id']}/cancel", content=b"").status_code == 415


def test_public_bind_without_token_is_refused(tmp_path_factory: pytest.TempPathFactory) -> None:
    home = make_home(tmp_path_factory.mktemp("public"))
    env = {**os.environ, "TASKHUB_HOME": str(home), "TASKHUB_HOST": "0.0.0.0", "TASKHUB_PORT": str(free_port())}
    env.pop("TASKHUB_TOKEN", None)
    done = subprocess.run(
        [sys.executable, "-m", "tests.integration.api_server"], cwd=REPO, env=env, capture_output=True, timeout=60
    )
    assert done.returncode == 2
    assert b"refusing to listen on 0.0.0.0" in done.stderr and b"TASKHUB_TOKEN" in done.stderr
    assert not (home / "data" / "taskhub.db").exists(), "nothing was started"


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE"])
def test_a_method_no_route_accepts_is_405_whatever_its_headers(client: httpx.Client, method: str) -> None:
    run = submit(client, "noop")
    for path in (f"/api/runs/{run['run_id']}", "/api/health", "/api/runs"):
        response = client.request(method, path)  # no Content-Type: not a 415 for a request nothing serves
        assert response.status_code == 405, (path, response.text)
        assert response.json()["status_code"] == 405
        assert method not in response.headers["allow"]
    cross = client.request(method, "/api/runs", headers={"Origin": "http://evil.example"})
    assert cross.status_code == 405
    assert client.get(f"/api/runs/{run['run_id']}").json()["status"] == "queued"


def test_a_write_to_a_read_only_route_is_405_and_a_real_one_still_guarded(client: httpx.Client) -> None:
    run = submit(client, "noop")
    for path in ("/api/health", f"/api/runs/{run['run_id']}", "/api/stats", "/api/tasks"):
        response = client.post(path, content=b"x")  # no JSON Content-Type
        assert response.status_code == 405, (path, response.text)
        assert "POST" not in response.headers["allow"]
        assert client.post(path, json={}, headers={"Origin": "http://evil.example"}).status_code == 405
    assert client.post("/api/runs", content=b"x").status_code == 415
    assert client.post(f"/api/runs/{run['run_id']}/cancel", content=b"x").status_code == 415
    evil = client.post(f"/api/runs/{run['run_id']}/cancel", json={}, headers={"Origin": "http://evil.example"})
    assert evil.status_code == 403
