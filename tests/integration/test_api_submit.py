"""POST /api/runs is answered by a raw ASGI fast path (taskhub/api/submit.py) in front of Litestar,
which keeps the route for everything unusual. These check that both ways in give the same answer,
and that the unusual cases still reach Litestar: bodies in pieces, over the limit, not decodable."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from uvicorn.protocols.http.flow_control import FlowControl
from uvicorn.protocols.http.httptools_impl import RequestResponseCycle

from taskhub.api.whole import send_whole
from tests.integration.conftest_api import ApiServer, api, client, last_seq

__all__ = ["api", "client"]

VOLATILE = ("run_id", "submitted_at", "last_seq", "idempotency_key")


def _stable(run: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in run.items() if k not in VOLATILE}


def _raw(api: ApiServer, request: bytes) -> bytes:
    """Send one raw HTTP/1.1 request; the first bytes of the answer."""
    with socket.create_connection(("127.0.0.1", api.port), timeout=10) as sock:
        sock.sendall(request)
        return sock.recv(4096)


def test_fast_path_and_litestar_answer_alike(client: httpx.Client) -> None:
    body = {"task_id": "hello_world", "params": {"target": "x"}, "priority": 2}
    fast = client.post("/api/runs", json=body)
    routed = client.post("/api/runs/", json=body)  # the trailing slash is Litestar's own handler
    assert fast.status_code == routed.status_code == 201
    assert fast.headers["content-type"] == routed.headers["content-type"] == "application/json"
    assert int(fast.headers["content-length"]) == len(fast.content)
    assert list(fast.json()) == list(routed.json()), "same fields, same order"
    assert _stable(fast.json()) == _stable(routed.json())


def test_idempotent_repeat_is_200_on_both_paths(client: httpx.Client) -> None:
    body = {"task_id": "noop", "idempotency_key": "submit-paths"}
    first = client.post("/api/runs", json=body)
    assert first.status_code == 201
    for path in ("/api/runs", "/api/runs/"):
        again = client.post(path, json=body)
        assert again.status_code == 200 and again.json()["run_id"] == first.json()["run_id"]


def test_lax_values_convert_as_litestar_does(client: httpx.Client) -> None:
    run = client.post("/api/runs", content=b'{"task_id": "noop", "priority": "3"}', headers=_json())
    assert run.status_code == 201 and run.json()["priority"] == 3


def test_undecodable_bodies_get_litestars_answer(client: httpx.Client) -> None:
    before = last_seq(client)
    unknown = client.post("/api/runs", content=b'{"task_id": "noop", "bogus": 1}', headers=_json())
    assert unknown.status_code == 400 and "bogus" in unknown.json()["detail"]
    empty = client.post("/api/runs", content=b"", headers=_json())
    assert empty.status_code == 400
    wrong_type = client.post("/api/runs", content=b'{"task_id": 7}', headers=_json())
    assert wrong_type.status_code == 422 and wrong_type.json()["field"] == "task_id"
    assert last_seq(client) == before


def test_errors_raised_by_the_submission(client: httpx.Client) -> None:
    unknown = client.post("/api/runs", json={"task_id": "nope"})
    assert unknown.status_code == 404 and unknown.json() == {"status_code": 404, "detail": "No such task: 'nope'"}
    bad = client.post("/api/runs", json={"task_id": "hello_world", "params": {"target": "x", "times": "x"}})
    assert bad.status_code == 422 and bad.json()["field"] == "times"


def test_body_in_pieces(client: httpx.Client) -> None:
    def pieces() -> Iterator[bytes]:
        yield b'{"task_id": "hello_world", '
        yield b'"params": {"target": "chunked"}}'

    response = client.post("/api/runs", content=pieces(), headers=_json())  # chunked transfer encoding
    assert response.status_code == 201, response.text
    assert response.json()["params"] == {"target": "chunked", "times": 1}


def test_chunked_body_over_the_limit_is_413(client: httpx.Client) -> None:
    before = last_seq(client)

    def pieces() -> Iterator[bytes]:
        yield b'{"task_id": "hello_world", "params": {"target": "'
        for _ in range(20):
            yield b"x" * 10_000  # 200 kB against the test server's 64 KiB limit, no Content-Length
        yield b'"}}'

    response = client.post("/api/runs", content=pieces(), headers=_json())
    assert response.status_code == 413 and response.json()["status_code"] == 413
    assert last_seq(client) == before


def test_announced_length_over_the_limit_is_refused_before_the_body(api: ApiServer) -> None:
    head = (
        f"POST /api/runs HTTP/1.1\r\nHost: 127.0.0.1:{api.port}\r\nContent-Type: application/json\r\n"
        "Content-Length: 10000000\r\nExpect: 100-continue\r\n\r\n"
    )
    answer = _raw(api, head.encode())
    assert answer.startswith(b"HTTP/1.1 413"), answer[:80]


def test_host_is_checked_before_routing(api: ApiServer) -> None:
    response = httpx.get(f"{api.base_url}/api/no-such-route", headers={"Host": "evil.example"})
    assert response.status_code == 400 and "not allowed" in response.json()["detail"]
    fast = httpx.post(f"{api.base_url}/api/runs", json={"task_id": "noop"}, headers={"Host": "evil.example"})
    assert fast.status_code == 400


def _json() -> dict[str, str]:
    return {"Content-Type": "application/json"}


class _Transport:
    """What uvicorn's cycle writes to, recorded."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed


def _uvicorn_cycle(transport: _Transport, keep_alive: bool) -> RequestResponseCycle:
    """uvicorn's own per-request object, as its httptools protocol makes one for each request."""
    logger = logging.getLogger("test")
    return RequestResponseCycle(
        scope={"type": "http", "method": "POST", "path": "/api/runs", "http_version": "1.1"},
        transport=transport,
        flow=FlowControl(transport),
        logger=logger,
        access_logger=logger,
        access_log=False,
        default_headers=[],
        message_event=asyncio.Event(),
        expect_100_continue=False,
        keep_alive=keep_alive,
        on_response=lambda: None,
    )


@pytest.mark.parametrize("keep_alive", [True, False])
def test_a_fast_path_answer_is_one_write(keep_alive: bool) -> None:
    transport = _Transport()
    cycle = _uvicorn_cycle(transport, keep_alive)
    body = b'{"run_id": "r-1"}'
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    asyncio.run(send_whole(cycle.send, 201, headers, body))
    assert len(transport.writes) == 1, "status line, headers and body in a single write"
    head, _, sent = transport.writes[0].partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 201 ") and b"content-length: 17" in head and sent == body
    assert cycle.response_complete and cycle.transport is transport
    assert transport.closed is not keep_alive, "closed after the write when the connection is not kept"


def test_a_send_that_is_not_uvicorns_gets_two_messages() -> None:
    messages: list[dict[str, Any]] = []

    async def send(message: Any) -> None:
        messages.append(message)

    asyncio.run(send_whole(send, 200, [], b"{}"))
    assert [m["type"] for m in messages] == ["http.response.start", "http.response.body"]
    assert messages[1]["body"] == b"{}" and messages[1]["more_body"] is False


def test_the_served_answer_arrives_whole(api: ApiServer) -> None:
    body = b'{"task_id": "noop"}'
    head = (
        f"POST /api/runs HTTP/1.1\r\nHost: 127.0.0.1:{api.port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    answer = _raw(api, head.encode() + body)  # one recv: a single segment on loopback
    headers, _, sent = answer.partition(b"\r\n\r\n")
    assert headers.startswith(b"HTTP/1.1 201")
    length = next(int(line[15:]) for line in headers.split(b"\r\n") if line.lower().startswith(b"content-length:"))
    assert len(sent) == length and json.loads(sent)["status"] == "queued"
