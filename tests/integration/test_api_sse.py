"""Server-Sent Events against a real API process: order, resume, filters, keepalive, slow clients, caps, logs."""

from __future__ import annotations

import itertools
import json
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from taskhub.api.hub import StreamSlots, TooManyStreams
from taskhub.events.store import EventStore
from taskhub.events.types import Submitted
from taskhub.projections import ops
from tests.helpers.waiting import wait_until
from tests.integration.conftest_api import ApiServer, api, client, finish, last_seq, start, start_server, submit

__all__ = ["api", "client"]


@dataclass
class Frame:
    id: str | None = None
    event: str | None = None
    data: str = ""
    comments: list[str] = field(default_factory=list)

    def json(self) -> Any:
        return json.loads(self.data)


class SSEClient:
    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self.lines = response.iter_lines()

    def frame(self) -> Frame:
        out = Frame()
        for line in self.lines:
            if line == "":
                if out.id is None and out.event is None and not out.data and not out.comments:
                    continue
                return out
            key, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if key == "":
                out.comments.append(value)
            elif key == "id":
                out.id = value
            elif key == "event":
                out.event = value
            elif key == "data":
                out.data = f"{out.data}\n{value}" if out.data else value
        raise EOFError("stream ended")

    def events(self, n: int) -> list[Frame]:
        got: list[Frame] = []
        while len(got) < n:
            f = self.frame()
            if f.event is not None:
                got.append(f)
        return got


@contextmanager
def sse(client: httpx.Client, url: str, **kwargs: Any) -> Iterator[SSEClient]:
    timeout = httpx.Timeout(10.0, read=10.0)
    with client.stream("GET", url, timeout=timeout, **kwargs) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        yield SSEClient(response)


def streams_open(client: httpx.Client) -> int:
    return int(client.get("/api/health").json()["streams"])


def submit_direct(api: ApiServer, n: int, task_id: str = "noop") -> None:
    """Append n submissions in one transaction from this process, as another writer would."""
    store = EventStore(api.db)
    try:
        with store.transaction(time.time()) as txn:
            for _ in range(n):
                ops.submit(txn, Submitted(task_id=task_id, params={}))
    finally:
        store.close()


def test_stream_delivers_in_order_without_gaps(client: httpx.Client) -> None:
    head = last_seq(client)
    with sse(client, "/api/events/stream", params={"after": head}) as stream:
        runs = [submit(client, "noop")["run_id"] for _ in range(30)]
        frames = stream.events(30)
    assert [int(f.id or 0) for f in frames] == list(range(head + 1, head + 31))
    assert all(f.event == "submitted" for f in frames)
    envelopes = [f.json() for f in frames]
    assert [e["run_id"] for e in envelopes] == runs
    assert all(e["seq"] == int(f.id or 0) for e, f in zip(envelopes, frames, strict=True))


def test_catch_up_across_pages_then_live(client: httpx.Client, api: ApiServer) -> None:
    head = last_seq(client)
    submit_direct(api, 1200)  # more than one catch-up page
    with sse(client, "/api/events/stream", params={"after": head}) as stream:
        caught_up = stream.events(1200)
        submit_direct(api, 5)  # another process's commits: woken by the log's follow, not a poll
        live = stream.events(5)
    ids = [int(f.id or 0) for f in caught_up + live]
    assert ids == list(range(head + 1, head + 1206))


def test_resume_with_last_event_id_after_disconnect(client: httpx.Client) -> None:
    head = last_seq(client)
    with sse(client, "/api/events/stream", params={"after": head}) as stream:
        for _ in range(10):
            submit(client, "noop")
        first = stream.events(5)
    # forced disconnect: the connection is closed with events unread; more happen meanwhile
    for _ in range(10):
        submit(client, "noop")
    resume_from = first[-1].id
    assert resume_from is not None
    with sse(client, "/api/events/stream", headers={"Last-Event-ID": resume_from}) as stream:
        rest = stream.events(15)
    ids = [int(f.id or 0) for f in first + rest]
    assert ids == list(range(head + 1, head + 21)), "a gap or a duplicate across the reconnect"


def test_filters_by_run_and_type(client: httpx.Client) -> None:
    head = last_seq(client)
    a = submit(client, "noop")["run_id"]
    b = submit(client, "noop")["run_id"]
    client.post(f"/api/runs/{a}/cancel", json={})
    client.post(f"/api/runs/{b}/cancel", json={})
    with sse(client, "/api/events/stream", params={"after": head, "run_id": b}) as stream:
        frames = stream.events(2)
    assert [(f.event, f.json()["run_id"]) for f in frames] == [("submitted", b), ("cancelled", b)]
    with sse(client, "/api/events/stream", params={"after": head, "type": "cancelled,retry_scheduled"}) as stream:
        frames = stream.events(2)
    assert [f.json()["run_id"] for f in frames] == [a, b] and {f.event for f in frames} == {"cancelled"}
    repeated = [("after", head), ("run_id", b), ("type", "cancelled"), ("type", "submitted")]
    with sse(client, "/api/events/stream", params=repeated) as stream:  # ?type=a&type=b: both count
        frames = stream.events(2)
    assert [f.event for f in frames] == ["submitted", "cancelled"]
    bad = client.get("/api/events/stream", params={"type": "nope"})
    assert bad.status_code == 422 and bad.json()["field"] == "type"
    for bad in (b"abc", "²".encode("latin-1")):
        bad_id = client.get("/api/events/stream", headers={"Last-Event-ID": bad})
        assert bad_id.status_code == 422 and bad_id.json()["field"] == "Last-Event-ID"


def test_keepalive_comment_on_a_quiet_stream(client: httpx.Client) -> None:
    started = time.monotonic()
    with sse(client, "/api/events/stream", params={"type": "worker_stopped", "after": last_seq(client)}) as stream:
        frame = stream.frame()
        while not frame.comments:
            frame = stream.frame()
    assert frame.comments == ["ping"]
    assert time.monotonic() - started < 5  # the test server pings every 0.3 s


def test_slow_client_is_dropped_and_resumes_without_gap(client: httpx.Client, api: ApiServer) -> None:
    wait_until(lambda: streams_open(client) == 0, 10, message="earlier streams to close")
    head = last_seq(client)
    slow = socket.socket()
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # and never read: the server's buffers fill
    slow.connect(("127.0.0.1", api.port))
    request = f"GET /api/events/stream?after={head} HTTP/1.1\r\nHost: 127.0.0.1:{api.port}\r\n\r\n"
    slow.sendall(request.encode())
    wait_until(lambda: streams_open(client) == 1, 10, message="the slow stream to open")
    appended = 0

    def keep_appending_until_dropped() -> bool:
        # A client is dropped when its buffer overflows while it is blocked on its socket, so events
        # must keep coming after the kernel's and the server's socket buffers have filled up.
        nonlocal appended
        submit_direct(api, 1000)
        appended += 1000
        return streams_open(client) == 0

    wait_until(keep_appending_until_dropped, 60, interval=0.05, message="the server to drop the slow client")
    total = appended
    assert "sse.client_dropped" in api.log_text()
    # what it had received is intact: every complete frame in order; then the server closed the connection
    slow.settimeout(10)
    received = b""
    while chunk := slow.recv(1 << 20):
        received += chunk
    slow.close()
    ids = [int(line[4:]) for line in received.split(b"\n") if line.startswith(b"id: ")]
    complete = [i for i in ids if b"\n\n" in received.split(b"id: %d\n" % i, 1)[1]]
    assert complete == list(range(head + 1, head + 1 + len(complete)))
    assert len(complete) < total
    last = complete[-1] if complete else head
    with sse(client, "/api/events/stream", headers={"Last-Event-ID": str(last)}) as stream:
        rest = stream.events(head + total - last)
    assert [int(f.id or 0) for f in rest] == list(range(last + 1, head + total + 1))


def test_stream_cap_answers_503(client: httpx.Client, api: ApiServer) -> None:
    wait_until(lambda: streams_open(client) == 0, 10, message="earlier streams to close")
    clients = [httpx.Client(base_url=api.base_url, timeout=10) for _ in range(6)]
    opened = []
    try:
        for c in clients:
            cm = c.stream("GET", "/api/events/stream", params={"type": "worker_stopped"})
            response = cm.__enter__()
            assert response.status_code == 200
            opened.append(cm)
        refused = client.get("/api/events/stream")
        assert refused.status_code == 503
        assert "too many live streams" in refused.json()["detail"]
        log_refused = client.get("/api/runs/r-1/logs/stdout/stream")
        assert log_refused.status_code == 503
    finally:
        for cm in opened:
            cm.__exit__(None, None, None)
        for c in clients:
            c.close()
    wait_until(lambda: streams_open(client) == 0, 10, message="closed streams to be released")
    with sse(client, "/api/events/stream", params={"after": last_seq(client) - 1}) as stream:
        assert stream.events(1)


def test_live_log_stream_until_end(client: httpx.Client, api: ApiServer) -> None:
    run = submit(client, "long_task")
    rid = run["run_id"]
    start(api.db, rid)
    log_file = api.home / "data" / "runs" / rid / "stdout.log"
    log_file.parent.mkdir(parents=True, exist_ok=True)
    word = "héllo wörld ✓\n".encode()
    check = "✓".encode()
    pieces = [b"h\xc3", b"\xa9llo w\xc3\xb6rld " + check[:1], check[1:2], check[2:] + b"\n"]
    assert b"".join(pieces) == word
    expected = ["h", "éllo wörld ", "✓\n"]  # a character split across writes is never split across messages
    texts: list[dict[str, Any]] = []
    with sse(client, f"/api/runs/{rid}/logs/stdout/stream") as stream, log_file.open("ab", buffering=0) as out:
        for piece in pieces:
            out.write(piece)
            if piece != check[1:2]:
                frame = stream.frame()
                while frame.event != "log":
                    frame = stream.frame()
                texts.append(frame.json())
        finish(api.db, rid)
        frame = stream.frame()
        while frame.event != "end":
            frame = stream.frame()
        end = frame.json()
    assert [t["text"] for t in texts] == expected
    assert "".join(t["text"] for t in texts) == word.decode()
    assert all(a["next_offset"] == b["offset"] for a, b in itertools.pairwise(texts))
    assert texts[0]["offset"] == 0 and end["offset"] == len(word) and end["status"] == "succeeded"
    # resuming from an offset (what Last-Event-ID carries) sends only what follows
    middle = texts[len(texts) // 2]["offset"]
    with sse(client, f"/api/runs/{rid}/logs/stdout/stream", headers={"Last-Event-ID": str(middle)}) as stream:
        rest = ""
        while (frame := stream.frame()).event != "end":
            if frame.event == "log":
                rest += frame.json()["text"]
    assert rest.encode() == word[middle:]
    for bad in (b"abc", "²".encode("latin-1"), b"9" * 5000):
        refused = client.get(f"/api/runs/{rid}/logs/stdout/stream", headers={"Last-Event-ID": bad})
        assert refused.status_code == 422 and refused.json()["field"] == "Last-Event-ID"
    tail = client.get(f"/api/runs/{rid}/logs/stdout/stream", params={"offset": -3})
    assert "event: end" in tail.text
    assert client.get("/api/runs/r-999999/logs/stdout/stream").status_code == 404
    assert client.get(f"/api/runs/{rid}/logs/stdin/stream").status_code == 404


def test_first_stream_starts_the_file_watch_once() -> None:
    calls: list[int] = []
    slots = StreamSlots(1, on_first_stream=lambda: calls.append(1))
    first = slots.acquire()
    assert calls == [1]
    with pytest.raises(TooManyStreams):
        slots.acquire()
    first.close()
    slots.acquire()
    assert calls == [1]


def test_first_stream_of_a_fresh_server_wakes_on_other_processes_commits(tmp_path: Path) -> None:
    """The API watches the database files only once a stream opens (submits cost less until then);
    from then on another process's commit reaches the client at once, not at the 1 s fallback poll."""
    server = start_server(tmp_path)
    try:
        with httpx.Client(base_url=server.base_url, timeout=10) as c:
            latencies = []
            with sse(c, "/api/events/stream", params={"after": last_seq(c)}) as stream:
                for _ in range(5):
                    began = time.monotonic()
                    submit_direct(server, 1)
                    stream.events(1)
                    latencies.append(time.monotonic() - began)
    finally:
        server.stop()
    assert sorted(latencies)[2] < 0.3, latencies  # polling alone would take ~1 s for each


def test_default_keepalive_leaves_no_quiet_gap_of_15_s(tmp_path: Path) -> None:
    """SPEC: a comment line at least every 15 s, on the events stream and on a log stream, with the
    server's own default interval (the other tests shorten it). A ping due exactly at 15 s arrives
    a little after it, so the interval must leave a margin."""
    server = start_server(tmp_path)
    try:
        with httpx.Client(base_url=server.base_url, timeout=httpx.Timeout(10.0, read=30.0)) as c:
            rid = submit(c, "sleep")["run_id"]  # no worker here: it stays queued, its log stays empty
            began = time.monotonic()
            with (
                c.stream("GET", "/api/events/stream", params={"type": "worker_stopped", "after": last_seq(c)}) as ev,
                c.stream("GET", f"/api/runs/{rid}/logs/stdout/stream") as lg,
            ):
                assert ev.status_code == 200 and lg.status_code == 200
                for stream in (SSEClient(ev), SSEClient(lg)):
                    while not stream.frame().comments:
                        pass
                    assert time.monotonic() - began < 13.5, stream.response.url
    finally:
        server.stop()
