"""Child processes for the log's integration tests: run as `python log_children.py MODE ARGS...`.

Each mode prints machine-readable lines on stdout (flushed as they happen) and lets any exception
escape, so the parent sees a non-zero exit code and the traceback on stderr.

    claim DB WORKER GO_FILE SEED     wait for GO_FILE, claim (1-4 slots) until the queue is empty;
                                     print one JSON line {"worker", "claimed": [run ids], "txns"}
    append DB SEED                   submit (and sometimes claim) in a tight loop of EventStore
                                     transactions; after each COMMIT returns print its seqs
    append_log DB SEED               the same through Log.run (group commit) from 16 asyncio tasks
    follow_append DB COUNT SEED      append COUNT events one transaction at a time, at random
                                     intervals of 0-3 ms; print each committed seq
    gate DB                          take the write gate, print "held" and keep it until killed
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import threading
import time
from pathlib import Path

from taskhub.events.log import Log
from taskhub.events.store import EventStore, Txn
from taskhub.events.types import Submitted
from taskhub.events.write_gate import WriteGate
from taskhub.projections import ops

LEASE_S = 300.0
GO_TIMEOUT_S = 60.0


def emit(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def wait_for_file(path: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} did not appear within {timeout}s")
        time.sleep(0.001)  # poll interval, bounded by the deadline above


def claim(db: str, worker: str, go_file: str, seed: str) -> None:
    rng = random.Random(seed)
    store = EventStore(db)
    wait_for_file(Path(go_file), GO_TIMEOUT_S)
    claimed: list[str] = []
    txns = 0
    while True:
        slots = rng.randint(1, 4)
        with store.transaction(time.time()) as txn:
            got = ops.claim(txn, worker, slots, LEASE_S)
        txns += 1
        if not got:
            break
        claimed.extend(v.run_id for v in got)
    store.close()
    emit(json.dumps({"worker": worker, "claimed": claimed, "txns": txns}))


def _append_some(txn: Txn, rng: random.Random, worker: str) -> list[int]:
    for _ in range(rng.randint(1, 3)):
        ops.submit(txn, Submitted(task_id="crash", params={"n": rng.random()}))
    if rng.random() < 0.3:
        ops.claim(txn, worker, rng.randint(1, 2), LEASE_S)
    return [env.seq for env in txn.appended]


def append(db: str, seed: str) -> None:
    rng = random.Random(seed)
    store = EventStore(db)
    while True:
        with store.transaction(time.time()) as txn:
            seqs = _append_some(txn, rng, f"w-{seed}")
        emit(" ".join(map(str, seqs)))  # only after COMMIT returned


async def _append_log(db: str, seed: str) -> None:
    log = await Log.open(db, watch=False)

    async def loop(i: int) -> None:
        rng = random.Random(f"{seed}-{i}")
        while True:
            seqs = await log.run(lambda txn: _append_some(txn, rng, f"w-{seed}-{i}"))
            emit(" ".join(map(str, seqs)))  # only after the group's COMMIT returned

    await asyncio.gather(*(loop(i) for i in range(16)))


def follow_append(db: str, count: str, seed: str) -> None:
    rng = random.Random(seed)
    store = EventStore(db)
    for i in range(int(count)):
        with store.transaction(time.time()) as txn:
            ops.submit(txn, Submitted(task_id="follow", params={"i": i}))
            if i % 3 == 2:
                ops.claim(txn, "w-follow", 1, LEASE_S)
        emit(" ".join(str(env.seq) for env in txn.appended))
        time.sleep(rng.random() * 0.003)  # load shape: random gaps between appends, not a wait
    store.close()


def gate(db: str) -> None:
    held = WriteGate(Path(db))
    held.acquire()
    emit("held")
    threading.Event().wait()  # until killed: the test kills it with SIGKILL


def main(argv: list[str]) -> None:
    mode, args = argv[0], argv[1:]
    if mode == "claim":
        claim(*args)
    elif mode == "append":
        append(*args)
    elif mode == "append_log":
        asyncio.run(_append_log(*args))
    elif mode == "follow_append":
        follow_append(*args)
    elif mode == "gate":
        gate(*args)
    else:
        raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
