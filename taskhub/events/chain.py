"""The hash chain: each event's hash commits to the one before it and to every column of its row.

A column is covered either by the hash itself (seq, ts, type, stream, worker_id, data) or by being
derived from covered ones, which audit checks: `run_id` is named by a run's stream, `worker_id` by a
worker's, and `version` is the event's place in its stream (1, 2, 3 ...).

Logs written before schema v6 hash each event without its worker_id (the legacy form). A chain may
start in that form and go on in this one, never the other way round: once one event carries the new
hash, every later one must, so an edit cannot pass off a row as legacy to hide a changed worker_id.
"""

from __future__ import annotations

import hashlib

import msgspec

GENESIS_HASH = "0" * 64
_sha256 = hashlib.sha256
_encode = msgspec.json.Encoder().encode


def chain_hash(prev: str, seq: int, ts: str, type_: str, stream: str, worker_id: str | None, data: bytes) -> str:
    """H(previous hash, the row's columns, its data). The columns as one JSON array: unambiguous
    whatever an id holds (a worker may be named "a|b"), and unlike any legacy input (hex first)."""
    return _sha256(_encode((prev, seq, ts, type_, stream, worker_id)) + data).hexdigest()


def legacy_chain_hash(prev: str, seq: int, ts: str, type_: str, stream: str, data: bytes) -> str:
    """The hash of events appended before schema v6: worker_id not covered."""
    return _sha256(f"{prev}|{seq}|{ts}|{type_}|{stream}|".encode() + data).hexdigest()


class ChainVerifier:
    """Checks a log's rows in seq order; `check` is False for a row whose hash does not follow."""

    def __init__(self) -> None:
        self.prev = GENESIS_HASH
        self.legacy = True  # no row in the current form seen yet: the legacy form is still accepted

    def check(
        self, seq: int, ts: str, type_: str, stream: str, worker_id: str | None, data: bytes, stored: str
    ) -> bool:
        prev, self.prev = self.prev, stored
        if chain_hash(prev, seq, ts, type_, stream, worker_id, data) == stored:
            self.legacy = False
            return True
        return self.legacy and legacy_chain_hash(prev, seq, ts, type_, stream, data) == stored
