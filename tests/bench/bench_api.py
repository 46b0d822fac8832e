"""API benchmark: durable submits vs a minimal Litestar endpoint, idle RSS, SSE fan-out latency.

    uv run python tests/bench/bench_api.py [--seconds 5] [--rounds 2]

Both servers run the same stack (uvicorn + uvloop + httptools, one process each) on loopback, and
are measured in the same run, alternating, so the shared machine's noise hits both. The load
generator is one asyncio process speaking raw HTTP/1.1 keep-alive (64 connections); on a 2-core
machine it competes with the server for CPU, so absolute req/s are a floor; trust the ratio. Server
CPU per request (event loop thread vs the others, read from /proc through psutil) is steadier still.

SSE: 100 clients on /api/events/stream; another process appends 1,000 events one commit at a time
and records each commit's wall time; latency = time a client parsed the frame - commit time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

import httpx
import psutil

REPO = Path(__file__).resolve().parents[2]
CONNECTIONS = 64
SSE_CLIENTS = 100
SSE_EVENTS = 1000

MINIMAL_APP = """
import msgspec, uvicorn
from litestar import Litestar, post

class Body(msgspec.Struct):
    task_id: str
    params: dict = {}

class Out(msgspec.Struct):
    run_id: str
    task_id: str
    status: str

@post("/api/runs", sync_to_thread=False)
def submit(data: Body) -> Out:
    return Out(run_id="r-1", task_id=data.task_id, status="queued")

uvicorn.run(Litestar([submit]), host="127.0.0.1", port=int(__import__("sys").argv[1]), loop="uvloop",
            http="httptools", access_log=False, log_level="warning")
"""

API_LAUNCHER = """
import sys
from taskhub.api.server import run_api
from taskhub.settings import load_settings
sys.exit(run_api(load_settings()))  # as `taskhub api` runs it: the default settings, logging included
"""

APPENDER = """
import json, sys, time
from taskhub.events.store import EventStore
from taskhub.events.types import Submitted
from taskhub.projections import ops
db, n, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
store = EventStore(db)
commits = {}
for i in range(n):
    with store.transaction(time.time()) as txn:
        view, _ = ops.submit(txn, Submitted(task_id="noop", params={}))
    commits[view.num] = time.time()
    time.sleep(0.002)  # load shape: one submit every ~2 ms, not a wait
json.dump(commits, open(out, "w"))
"""


class Round(NamedTuple):
    rps: float
    p50: float
    p99: float
    statuses: dict[int, int]
    main_us: float  # server CPU per request on its event loop thread
    other_us: float  # ... on its other threads


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_up(url: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.1)  # polling a server that is starting, bounded by the deadline
    raise RuntimeError(f"{url} did not come up")


def request_bytes(port: int, body: bytes) -> bytes:
    head = (
        f"POST /api/runs HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def one_connection(port: int, until: float, latencies: list[float], statuses: dict[int, int]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    raw = request_bytes(port, b'{"task_id": "noop", "params": {}}')
    try:
        while time.perf_counter() < until:
            began = time.perf_counter()
            writer.write(raw)
            status_line = await reader.readline()
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - began)
            status = int(status_line.split()[1])
            statuses[status] = statuses.get(status, 0) + 1
    finally:
        writer.close()


async def load(port: int, seconds: float) -> tuple[float, float, float, dict[int, int]]:
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    began = time.perf_counter()
    until = began + seconds
    await asyncio.gather(*(one_connection(port, until, latencies, statuses) for _ in range(CONNECTIONS)))
    elapsed = time.perf_counter() - began
    latencies.sort()
    p50 = latencies[len(latencies) // 2]
    p99 = latencies[int(len(latencies) * 0.99)]
    return len(latencies) / elapsed, p50, p99, statuses


async def sse_client(port: int, after: int, received: dict[int, float], ready: asyncio.Event, n: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET /api/events/stream?after={after} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    while (await reader.readline()) not in (b"\r\n", b""):
        pass
    ready.set()
    try:
        while len(received) < n:
            line = await reader.readline()
            if not line:
                return
            if line.startswith(b"id: "):
                received.setdefault(int(line[4:]), time.time())
    finally:
        writer.close()


async def sse_bench(port: int, db: Path, tmp: Path) -> dict[str, float]:
    after = int(httpx.get(f"http://127.0.0.1:{port}/api/health").json()["last_seq"])
    clients: list[dict[int, float]] = [{} for _ in range(SSE_CLIENTS)]
    readies = [asyncio.Event() for _ in range(SSE_CLIENTS)]
    tasks = [
        asyncio.create_task(sse_client(port, after, clients[i], readies[i], SSE_EVENTS)) for i in range(SSE_CLIENTS)
    ]
    await asyncio.wait_for(asyncio.gather(*(r.wait() for r in readies)), 30)
    out = tmp / "commits.json"
    appender = await asyncio.create_subprocess_exec(
        sys.executable, "-c", APPENDER, str(db), str(SSE_EVENTS), str(out), cwd=REPO
    )
    await appender.wait()
    try:
        await asyncio.wait_for(asyncio.gather(*tasks), 60)
    except asyncio.TimeoutError:
        for t in tasks:
            t.cancel()
    commits = {int(k): v for k, v in json.loads(out.read_text()).items()}
    lat = sorted(c[seq] - t for c in clients for seq, t in commits.items() if seq in c)
    missing = sum(1 for c in clients for seq in commits if seq not in c)
    return {
        "p50_ms": statistics.median(lat) * 1000,
        "p99_ms": lat[int(len(lat) * 0.99)] * 1000,
        "missing": float(missing),
    }


def thread_cpu(pid: int) -> dict[int, float]:
    return {t.id: t.user_time + t.system_time for t in psutil.Process(pid).threads()}


def measured_load(pid: int, port: int, seconds: float) -> Round:
    """One load round, with the server's CPU per request: its event loop thread, and all other threads
    (the log writer, aiosqlite). CPU per request is steadier than req/s on a shared machine."""
    before = thread_cpu(pid)
    rps, p50, p99, statuses = asyncio.run(load(port, seconds))
    after = thread_cpu(pid)
    n = max(sum(statuses.values()), 1)
    main_s = after.get(pid, 0.0) - before.get(pid, 0.0)
    other_s = sum(v - before.get(k, 0.0) for k, v in after.items() if k != pid)
    return Round(rps, p50, p99, statuses, main_s / n * 1e6, other_s / n * 1e6)


def start(args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", *args], cwd=REPO, env=env)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=5.0, help="per load round")
    parser.add_argument("--rounds", type=int, default=2)
    opts = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="taskhub-bench-api-"))
    home = tmp / "home"
    shutil.copytree(REPO / "tasks", home / "tasks")
    api_port, min_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKHUB_")}
    env.update(TASKHUB_HOME=str(home), TASKHUB_PORT=str(api_port))
    procs = [start([API_LAUNCHER], env), start([MINIMAL_APP, str(min_port)], env)]
    try:
        wait_up(f"http://127.0.0.1:{api_port}/api/health")
        wait_up(f"http://127.0.0.1:{min_port}/")
        time.sleep(1.0)  # let the freshly started servers settle before reading idle memory
        rss = psutil.Process(procs[0].pid).memory_info().rss / (1 << 20)
        results: dict[str, list[Round]] = {"minimal": [], "api": []}
        for _ in range(opts.rounds):
            for name, proc, port in (("minimal", procs[1], min_port), ("api", procs[0], api_port)):
                results[name].append(measured_load(proc.pid, port, opts.seconds))
        acked = sum(r.statuses.get(201, 0) for r in results["api"])
        stats = httpx.get(f"http://127.0.0.1:{api_port}/api/stats").json()
        stored = sum(stats["by_status"].values())
        sse = asyncio.run(sse_bench(api_port, home / "data" / "taskhub.db", tmp))
    finally:
        for p in procs:
            p.terminate()
            p.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)

    def best(name: str) -> Round:
        return max(results[name], key=lambda r: r.rps)

    def median_rps(name: str) -> float:
        return statistics.median(r.rps for r in results[name])

    def cpu(name: str) -> str:
        rounds = results[name]
        main_us = statistics.median(r.main_us for r in rounds)
        other_us = statistics.median(r.other_us for r in rounds)
        return f"{main_us + other_us:.0f} us ({main_us:.0f} loop + {other_us:.0f} other threads)"

    m, a = best("minimal"), best("api")
    rows = [
        ("minimal POST (req/s, best round)", f"{m[0]:,.0f}", f"p50 {m[1] * 1000:.1f} ms, p99 {m[2] * 1000:.1f} ms"),
        ("POST /api/runs durable (req/s)", f"{a[0]:,.0f}", f"p50 {a[1] * 1000:.1f} ms, p99 {a[2] * 1000:.1f} ms"),
        ("ratio api/minimal", f"{a[0] / m[0]:.2f}x", "target >= 0.75x (stretch 0.85x), p99 <= 50 ms"),
        ("ratio of the median rounds", f"{median_rps('api') / median_rps('minimal'):.2f}x", "less luck than the best"),
        ("all rounds api req/s", ", ".join(f"{r[0]:,.0f}" for r in results["api"]), f"statuses {a[3]}"),
        ("all rounds minimal req/s", ", ".join(f"{r[0]:,.0f}" for r in results["minimal"]), ""),
        ("server CPU per request, minimal", cpu("minimal"), "median of the rounds"),
        ("server CPU per request, api", cpu("api"), ""),
        ("2xx acknowledged vs runs stored", f"{acked:,} / {stored:,}", "equal: every 2xx is in the database"),
        ("idle API RSS", f"{rss:.1f} MiB", "target <= 60 MiB"),
        (f"SSE {SSE_CLIENTS} clients x {SSE_EVENTS} events p50", f"{sse['p50_ms']:.1f} ms", "target <= 20 ms"),
        ("SSE commit-to-client p99", f"{sse['p99_ms']:.1f} ms", "target <= 100 ms"),
        ("SSE events missed (all clients)", f"{sse['missing']:.0f}", "target 0"),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"{'API benchmark':<{width}}  value")
    for label, value, note in rows:
        print(f"{label:<{width}}  {value:<22} {note}")
    return 0 if sse["missing"] == 0 and acked == stored else 1


if __name__ == "__main__":
    sys.exit(main())
