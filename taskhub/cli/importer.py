"""Export and import of the log as JSON lines, byte-faithful so a round trip keeps every hash.

Export reads the stored rows themselves (not re-encoded events), so the `data` of an event written
by an older event shape comes out exactly as stored. Import writes rows with the same columns as
`taskhub.events.store.Txn.append`, but with the exported seq and ts (Txn.append stamps its own):
the store has no public "append as recorded" operation, so this is the one place that does it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Iterator
from typing import Annotated, Any

import msgspec

from taskhub.events.chain import ChainVerifier
from taskhub.events.store import EventStore, stream_of
from taskhub.events.types import Envelope, decode_event

ENVELOPE_KEYS = ("seq", "ts", "type", "run_id", "worker_id", "data", "hash")
MAX_SEQ = 2**63 - 1  # SQLite's largest integer
BATCH = 5000
_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode


class ImportRefused(Exception):
    """The export cannot be imported as it is; the message says where and why."""


def export_lines(store: EventStore, after: int = 0) -> Iterator[bytes]:
    """One JSON envelope per event after `after`, in seq order, `data` exactly as stored."""
    cur = store.conn.execute(
        "SELECT seq, ts, type, run_id, worker_id, data, hash FROM events WHERE seq > ? ORDER BY seq", (after,)
    )
    while rows := cur.fetchmany(BATCH):
        for seq, ts, type_, run_id, worker_id, data, hash_ in rows:
            fields = _decode(data)
            fields.pop("type", None)
            yield _encode(
                {"seq": seq, "ts": ts, "type": type_, "run_id": run_id, "worker_id": worker_id,
                 "data": fields, "hash": hash_}
            )


def is_empty(store: EventStore) -> bool:
    conn = store.conn
    return all(
        conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == 0 for table in ("events", "runs", "workers")
    )


class _Row(msgspec.Struct):
    seq: Annotated[int, msgspec.Meta(ge=1, le=MAX_SEQ)]
    ts: str
    type: str
    run_id: str | None
    worker_id: str | None
    data: dict[str, Any]
    hash: str


_ROW_DECODER = msgspec.json.Decoder(_Row)


def parse_line(line: bytes, lineno: int) -> tuple[_Row, bytes, str, Envelope]:
    """One exported line: the row, its stored `data` bytes, its stream, and the decoded envelope."""
    try:
        row = _ROW_DECODER.decode(line)
    except msgspec.DecodeError as exc:
        raise ImportRefused(f"line {lineno}: not an exported envelope ({exc})") from None
    except UnicodeDecodeError as exc:  # msgspec's, for bytes inside a string that are not UTF-8
        raise ImportRefused(f"line {lineno}: not an exported envelope (not UTF-8: {exc.reason})") from None
    except RecursionError:  # msgspec's "maximum recursion depth exceeded while deserializing"
        raise ImportRefused(f"line {lineno}: not an exported envelope (nested too deeply)") from None
    raw = _encode({"type": row.type, **row.data})  # the stored bytes: the tag first, then the fields
    try:
        event = decode_event(raw)
        stream = stream_of(row.run_id, row.worker_id)
    except (msgspec.DecodeError, ValueError) as exc:
        raise ImportRefused(f"line {lineno} (seq {row.seq}): not a valid {row.type!r} event ({exc})") from None
    return row, raw, stream, Envelope(row.seq, row.ts, row.type, row.run_id, row.worker_id, event, row.hash)


def import_lines(
    conn: sqlite3.Connection, lines: Iterable[bytes], on_event: Callable[[Envelope], None] | None = None
) -> int:
    """Insert every exported event inside the caller's transaction, verifying the hash chain as it goes.

    Refuses (ImportRefused; the caller rolls back) a chain that does not start at the genesis (an
    export made with --after), a seq out of order, or a hash that does not match the event's content.
    """
    chain, prev_seq = ChainVerifier(), 0
    versions: dict[str, int] = {}
    pending: list[tuple[object, ...]] = []
    count = 0
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        row, raw, stream, env = parse_line(line, lineno)
        if row.seq <= prev_seq:
            raise ImportRefused(f"line {lineno}: seq {row.seq} does not follow {prev_seq}")
        if not chain.check(row.seq, row.ts, row.type, stream, row.worker_id, raw, row.hash):
            where = (
                "the first event does not start the chain (an export made with --after cannot be imported)"
                if prev_seq == 0
                else "the event or one before it was altered"
            )
            raise ImportRefused(f"line {lineno} (seq {row.seq}): hash mismatch: {where}")
        versions[stream] = version = versions.get(stream, 0) + 1
        pending.append((row.seq, row.ts, row.type, stream, version, row.run_id, row.worker_id, raw, row.hash))
        if len(pending) >= BATCH:
            _insert(conn, pending)
        prev_seq = row.seq
        count += 1
        if on_event is not None:
            on_event(env)
    _insert(conn, pending)
    return count


def _insert(conn: sqlite3.Connection, rows: list[tuple[object, ...]]) -> None:
    conn.executemany(
        "INSERT INTO events (seq, ts, type, stream, version, run_id, worker_id, data, hash)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        rows,
    )
    rows.clear()
