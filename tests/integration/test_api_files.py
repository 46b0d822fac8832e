"""Logs, artifacts and the SPA over a real API process, with path traversal attempts."""

from __future__ import annotations

import http.client
import os
from pathlib import Path

import httpx
import pytest

from tests.integration.conftest_api import ApiServer, api, client, submit

__all__ = ["api", "client"]


def raw_get(api: ApiServer, path: str) -> tuple[int, bytes]:
    """GET with the path sent exactly as written (no client-side normalisation of `..`)."""
    conn = http.client.HTTPConnection("127.0.0.1", api.port, timeout=10)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


@pytest.fixture(scope="module")
def outside(tmp_path_factory: pytest.TempPathFactory) -> Path:
    secret = tmp_path_factory.mktemp("outside") / "secret.txt"
    secret.write_text("TOP SECRET")
    return secret


@pytest.fixture(scope="module")
def run_with_files(api: ApiServer, client: httpx.Client, outside: Path) -> str:
    run = submit(client, "long_task")
    rid = str(run["run_id"])
    run_dir = api.home / "data" / "runs" / rid
    (run_dir / "artifacts" / "sub").mkdir(parents=True)
    (run_dir / "stdout.log").write_bytes(b"line one\nline two\nh\xc3\xa9llo\n")
    (run_dir / "artifacts" / "report.txt").write_text("the report")
    (run_dir / "artifacts" / "sub" / "data.csv").write_text("a,b\n1,2\n")
    (run_dir / "artifacts" / "escape.txt").symlink_to(outside)
    (run_dir / "artifacts" / "linkdir").symlink_to(outside.parent, target_is_directory=True)
    return rid


def test_log_of_a_run_without_output_is_empty(client: httpx.Client) -> None:
    run = submit(client, "noop")
    response = client.get(f"/api/runs/{run['run_id']}/logs/stdout")
    assert response.status_code == 200 and response.content == b""
    assert response.headers["X-Log-Size"] == "0"
    assert response.headers["content-type"] == "text/plain; charset=utf-8"  # one charset, not two


def test_log_ranges(client: httpx.Client, run_with_files: str) -> None:
    url = f"/api/runs/{run_with_files}/logs/stdout"
    whole = client.get(url)
    assert whole.content == b"line one\nline two\nh\xc3\xa9llo\n"
    size = len(whole.content)
    assert whole.headers["X-Log-Size"] == str(size)
    part = client.get(url, params={"offset": 5, "limit": 3})
    assert part.content == b"one" and part.headers["X-Log-Offset"] == "5" and part.headers["X-Log-Next-Offset"] == "8"
    tail = client.get(url, params={"offset": -7})
    assert tail.content == b"h\xc3\xa9llo\n" and tail.headers["X-Log-Offset"] == str(size - 7)
    beyond = client.get(url, params={"offset": size + 100})
    assert beyond.content == b"" and beyond.headers["X-Log-Size"] == str(size)
    assert client.get(f"/api/runs/{run_with_files}/logs/stderr").headers["X-Log-Size"] == "0"


def test_log_errors(client: httpx.Client, api: ApiServer, run_with_files: str) -> None:
    assert client.get(f"/api/runs/{run_with_files}/logs/stdin").status_code == 404
    assert client.get("/api/runs/r-999999/logs/stdout").status_code == 404
    assert client.get(f"/api/runs/{run_with_files}/logs/stdout", params={"limit": -1}).status_code == 422
    status, _ = raw_get(api, f"/api/runs/{run_with_files}/logs/..%2f..%2ftaskhub.db")
    assert status == 404


def test_log_symlinked_outside_is_404(client: httpx.Client, api: ApiServer, outside: Path) -> None:
    run = submit(client, "noop")
    run_dir = api.home / "data" / "runs" / run["run_id"]
    run_dir.mkdir(parents=True)
    (run_dir / "stderr.log").symlink_to(outside)
    response = client.get(f"/api/runs/{run['run_id']}/logs/stderr")
    assert response.status_code == 404 and b"SECRET" not in response.content


def test_artifacts_list_and_download(client: httpx.Client, run_with_files: str) -> None:
    items = client.get(f"/api/runs/{run_with_files}/artifacts").json()["items"]
    names = [i["name"] for i in items]
    assert names == ["report.txt", "sub/data.csv"], "symlinks leading outside are not listed"
    assert items[0]["size"] == len("the report") and items[0]["modified"].endswith("Z")
    response = client.get(f"/api/runs/{run_with_files}/artifacts/report.txt")
    assert response.status_code == 200 and response.content == b"the report"
    assert "attachment" in response.headers["content-disposition"]
    nested = client.get(f"/api/runs/{run_with_files}/artifacts/sub/data.csv")
    assert nested.content == b"a,b\n1,2\n"
    assert client.get(f"/api/runs/{run_with_files}/artifacts/missing.txt").status_code == 404
    assert client.get("/api/runs/r-999999/artifacts").status_code == 404


@pytest.mark.parametrize(
    "name",
    [
        "../stdout.log",
        "..%2fstdout.log",
        "%2e%2e/%2e%2e/taskhub.db",
        "%2e%2e%2f%2e%2e%2f%2e%2e%2fapi-test.log",
        "sub/../../stdout.log",
        "/etc/passwd",
        "%2fetc%2fpasswd",
        "escape.txt",
        "linkdir/secret.txt",
        "sub",
        "report.txt%00.png",
    ],
)
def test_artifact_traversal_is_404(api: ApiServer, run_with_files: str, name: str) -> None:
    status, body = raw_get(api, f"/api/runs/{run_with_files}/artifacts/{name}")
    assert status in (404, 400), (status, body[:200])
    assert b"SECRET" not in body and b"line one" not in body and b"root:" not in body


def test_spa_fallback_and_cache_headers(client: httpx.Client, api: ApiServer) -> None:
    missing = client.get("/")
    assert missing.status_code == 200 and b"npm ci" in missing.content and b"npm run build" in missing.content
    assert missing.headers["content-type"] == "text/html; charset=utf-8"
    dist = api.home / "web" / "dist"
    (dist / "assets").mkdir(parents=True)
    (dist / "index.html").write_text("<html>app</html>")
    (dist / "assets" / "index-abc123.js").write_text("console.log(1)")
    (dist / "favicon.svg").write_text("<svg/>")
    try:
        index = client.get("/")
        assert index.text == "<html>app</html>" and index.headers["cache-control"] == "no-cache"
        route = client.get("/runs/r-1")
        assert route.text == "<html>app</html>" and route.headers["content-type"] == "text/html; charset=utf-8"
        asset = client.get("/assets/index-abc123.js")
        assert asset.text == "console.log(1)" and "immutable" in asset.headers["cache-control"]
        assert client.get("/favicon.svg").headers["cache-control"] == "no-cache"
        assert client.get("/assets/gone.js").status_code == 404
        api_miss = client.get("/api/not-a-route")
        assert api_miss.status_code == 404 and api_miss.json()["status_code"] == 404
        status, body = raw_get(api, "/%2e%2e/%2e%2e/data/taskhub.db")
        assert b"SQLite" not in body and status in (200, 404)
    finally:
        for path in sorted(dist.rglob("*"), reverse=True):
            path.rmdir() if path.is_dir() else path.unlink()
        os.rmdir(dist)


def test_head_answers_like_get_without_the_body(api: ApiServer, client: httpx.Client, run_with_files: str) -> None:
    """HEAD on any GET route: GET's status and headers, no body; the connection stays usable after it."""
    run_id = run_with_files
    paths = [
        "/api/health",
        f"/api/runs/{run_id}",
        f"/api/runs/{run_id}/logs/stdout",
        f"/api/runs/{run_id}/artifacts/report.txt",
        "/api/runs/r-404404",  # a 404 stays a 404
        "/",
    ]
    conn = http.client.HTTPConnection("127.0.0.1", api.port, timeout=10)  # one keep-alive connection
    try:
        for path in paths:
            get = client.get(path)
            conn.request("HEAD", path)
            head = conn.getresponse()
            assert head.read() == b"", path  # http.client reads no body for HEAD: the next request proves none came
            assert head.status == get.status_code, path
            for name in ("content-type", "content-length", "x-log-size"):
                assert head.getheader(name) == get.headers.get(name), (path, name)
        conn.request("GET", f"/api/runs/{run_id}/logs/stdout")  # framing intact after the HEADs
        after = conn.getresponse()
        assert after.status == 200 and after.read() == b"line one\nline two\nh\xc3\xa9llo\n"
    finally:
        conn.close()
    stream = client.head(f"/api/runs/{run_id}/logs/stdout/stream")  # never-ending GETs have no HEAD
    assert stream.status_code == 405 and "GET" in stream.headers["allow"]
