"""Event types: msgspec round trips, the envelope as SPEC section 4 shows it, and the golden file
of stored rows that every later version of the decoder must still read."""

from __future__ import annotations

import re
from pathlib import Path

import msgspec
import pytest

from taskhub.events.chain import GENESIS_HASH, ChainVerifier, chain_hash, legacy_chain_hash
from taskhub.events.clock import iso, parse_iso
from taskhub.events.store import EventStore, stream_of
from taskhub.events.types import (
    EVENT_TYPES,
    FENCED_TYPES,
    TYPE_NAMES,
    Artifact,
    Cancelled,
    CancelRequested,
    Claimed,
    Envelope,
    Event,
    Exited,
    Heartbeat,
    Progress,
    Reaped,
    Refused,
    Result,
    RetryScheduled,
    Started,
    Submitted,
    WorkerStarted,
    WorkerStopped,
    decode_event,
    encode_envelope,
    encode_event,
    envelope_dict,
    type_name,
)
from taskhub.projections import transitions as t
from taskhub.projections.audit import audit
from taskhub.projections.rebuild import rebuild

GOLDEN = Path(__file__).resolve().parents[1] / "golden_events.jsonl"
ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
LEASE = "2026-11-28T06:30:30.000000Z"

# One instance of every event type, every field set away from its default.
SAMPLES: list[Event] = [
    Submitted(
        task_id="hello",
        params={"name": "Ada", "n": [1, 2.5, None, {"deep": True}]},
        priority=-3,
        max_attempts=4,
        timeout_s=12.5,
        not_before=LEASE,
        idempotency_key="key-1",
        task_version="v9",
        retry_of="r-1",
    ),
    Claimed(attempt=2, fence=77, lease_expires_at=LEASE),
    Started(fence=77, pid=1234, pgid=1234, create_time=1_700_000_000.25, host="box", argv=["python", "-c", "ünï"]),
    Heartbeat(fence=77, lease_expires_at=LEASE),
    Progress(fence=77, pct=12.5, message="half way", extra={"rows": 10}),
    Artifact(fence=77, name="out.csv", description="the output"),
    Result(fence=77, value={"ok": [1, "two", None]}),
    CancelRequested(reason="user"),
    Exited(fence=77, exit_code=None, signal=9, outcome="timed_out", duration_s=3.25, reason="spawn_error", error="e"),
    Reaped(fence=77, reason="worker_gone", killed_pids=[5, 6]),
    RetryScheduled(fence=77, next_attempt=3, not_before=LEASE),
    Cancelled(reason="not needed"),
    Refused(fence=76, event_type="heartbeat"),
    WorkerStarted(pid=99, host="box", concurrency=4, create_time=1_700_000_000.5),
    WorkerStopped(reason="SIGTERM"),
]

# The data fields SPEC section 4 promises for each type (at least these).
SPEC_FIELDS = {
    "submitted": {"task_id", "params", "priority", "max_attempts", "timeout_s", "not_before", "idempotency_key"},
    "claimed": {"attempt", "fence", "lease_expires_at"},
    "started": {"fence", "pid", "pgid", "create_time", "host", "argv"},
    "heartbeat": {"fence", "lease_expires_at"},
    "progress": {"fence", "pct", "message"},
    "artifact": {"fence", "name", "description"},
    "result": {"fence", "value"},
    "cancel_requested": {"reason"},
    "exited": {"fence", "exit_code", "signal", "outcome", "duration_s"},
    "reaped": {"fence", "reason", "killed_pids"},
    "retry_scheduled": {"next_attempt", "not_before"},
    "cancelled": {"reason"},
    "worker_started": {"pid", "host", "concurrency"},
    "worker_stopped": {"reason"},
}


def test_samples_cover_every_type() -> None:
    assert sorted(type_name(e) for e in SAMPLES) == sorted(TYPE_NAMES)
    assert {type(e) for e in SAMPLES} == set(EVENT_TYPES)
    assert set(SPEC_FIELDS) <= TYPE_NAMES


def test_tags_are_explicit_past_tense_snake_case() -> None:
    for cls in EVENT_TYPES:
        tag = cls.__struct_config__.tag
        assert isinstance(tag, str) and re.fullmatch(r"[a-z]+(_[a-z]+)*", tag), cls
        assert cls.__struct_config__.frozen, cls


def test_fenced_types_are_exactly_the_claim_reports() -> None:
    expected = {"started", "heartbeat", "progress", "artifact", "result", "exited", "reaped", "retry_scheduled"}
    assert expected == FENCED_TYPES


@pytest.mark.parametrize("event", SAMPLES, ids=type_name)
def test_round_trip(event: Event) -> None:
    raw = encode_event(event)
    back = decode_event(raw)
    assert back == event
    assert type(back) is type(event)
    assert encode_event(back) == raw
    assert msgspec.json.decode(raw)["type"] == type_name(event)


@pytest.mark.parametrize("event", SAMPLES, ids=type_name)
def test_defaults_fill_fields_missing_from_old_rows(event: Event) -> None:
    """A row stored before a field with a default existed still decodes."""
    required = {f for f, d in zip(event.__struct_fields__, _defaults(type(event)), strict=True) if d is _NODEFAULT}
    minimal = {k: v for k, v in msgspec.to_builtins(event).items() if k == "type" or k in required}
    decoded = decode_event(msgspec.json.encode(minimal))
    assert type(decoded) is type(event)


_NODEFAULT = object()


def _defaults(cls: type) -> list[object]:
    fields = cls.__struct_fields__  # type: ignore[attr-defined]
    defaults = cls.__struct_defaults__  # type: ignore[attr-defined]
    return [_NODEFAULT] * (len(fields) - len(defaults)) + list(defaults)


def test_decode_rejects_unknown_tags_and_bad_fields() -> None:
    with pytest.raises(msgspec.ValidationError):
        decode_event(b'{"type": "exploded"}')
    with pytest.raises(msgspec.ValidationError):
        decode_event(b'{"type": "claimed", "attempt": "one", "fence": 1, "lease_expires_at": "x"}')


@pytest.mark.parametrize("event", SAMPLES, ids=type_name)
def test_envelope_dict_is_spec_shaped(event: Event) -> None:
    run_id = None if type_name(event).startswith("worker_") else "r-7"
    env = Envelope(42, iso(1_795_000_000.123456), type_name(event), run_id, "w-1", event, "9f" * 32)
    shown = envelope_dict(env)
    assert list(shown) == ["seq", "ts", "type", "run_id", "worker_id", "data", "hash"]
    assert shown["seq"] == 42 and shown["type"] == type_name(event) and shown["hash"] == "9f" * 32
    assert ISO_UTC.match(shown["ts"]) and parse_iso(shown["ts"]) == pytest.approx(1_795_000_000.123456)
    data = shown["data"]
    assert "type" not in data
    assert SPEC_FIELDS.get(env.type, set()) <= set(data)
    assert data == {k: v for k, v in msgspec.to_builtins(event).items() if k != "type"}
    # encode_envelope is the same dict as JSON, and the data still decodes as the event.
    assert msgspec.json.decode(encode_envelope(env)) == shown
    assert decode_event(msgspec.json.encode({"type": env.type, **data})) == event


# -- the golden file --------------------------------------------------------------------------------


class GoldenRow(msgspec.Struct, forbid_unknown_fields=True):
    seq: int
    ts: str
    type: str
    run_id: str | None
    worker_id: str | None
    data: msgspec.Raw  # the stored bytes, exactly
    hash: str


def golden_rows() -> list[GoldenRow]:
    decoder = msgspec.json.Decoder(GoldenRow)
    return [decoder.decode(line) for line in GOLDEN.read_bytes().splitlines() if line.strip()]


def test_golden_file_has_every_type() -> None:
    assert {row.type for row in golden_rows()} == TYPE_NAMES


def test_golden_rows_decode_with_todays_decoder() -> None:
    for row in golden_rows():
        event = decode_event(bytes(row.data))
        assert type_name(event) == row.type, row.seq
        stored = msgspec.json.decode(bytes(row.data))
        # Nothing stored was dropped by the decoder: every stored field is still a field.
        assert set(stored) - {"type"} <= set(event.__struct_fields__), row.seq
        assert ISO_UTC.match(row.ts), row.seq


def test_golden_rows_form_a_valid_hash_chain() -> None:
    """Written before schema v6: every row in the legacy form (worker_id not hashed), still verified."""
    prev = GENESIS_HASH
    verifier = ChainVerifier()
    for expected_seq, row in enumerate(golden_rows(), 1):
        assert row.seq == expected_seq
        stream = stream_of(row.run_id, row.worker_id)
        assert legacy_chain_hash(prev, row.seq, row.ts, row.type, stream, bytes(row.data)) == row.hash, row.seq
        assert verifier.check(row.seq, row.ts, row.type, stream, row.worker_id, bytes(row.data), row.hash)
        prev = row.hash


def test_the_chain_may_go_on_from_the_legacy_form_but_never_back() -> None:
    data = b'{"type":"heartbeat","fence":1,"lease_expires_at":"2026-01-01T00:00:00.000000Z"}'
    ts, stream = "2026-01-01T00:00:00.000000Z", "run:r-1"
    first = legacy_chain_hash(GENESIS_HASH, 1, ts, "heartbeat", stream, data)
    second = chain_hash(first, 2, ts, "heartbeat", stream, "w-1", data)
    third_legacy = legacy_chain_hash(second, 3, ts, "heartbeat", stream, data)
    verifier = ChainVerifier()
    assert verifier.check(1, ts, "heartbeat", stream, "w-1", data, first)
    assert verifier.check(2, ts, "heartbeat", stream, "w-1", data, second)
    assert not verifier.check(3, ts, "heartbeat", stream, "w-1", data, third_legacy)
    # The new form covers worker_id: the same row said to come from another worker does not verify.
    assert not ChainVerifier().check(
        1, ts, "heartbeat", stream, "w-2", data, chain_hash(GENESIS_HASH, 1, ts, "heartbeat", stream, "w-1", data)
    )


def test_golden_history_rebuilds_and_audits_clean(tmp_path: Path) -> None:
    """The stored rows, loaded raw into a fresh database, fold into the expected state and pass audit."""
    store = EventStore(tmp_path / "golden.db", synchronous="OFF")
    try:
        versions: dict[str, int] = {}
        with store.transaction(0.0):
            for row in golden_rows():
                stream = stream_of(row.run_id, row.worker_id)
                versions[stream] = versions.get(stream, 0) + 1
                store.conn.execute(
                    "INSERT INTO events (seq, ts, type, stream, version, run_id, worker_id, data, hash)"
                    " VALUES (?,?,?,?,?,?,?,?,?)",
                    (row.seq, row.ts, row.type, stream, versions[stream], row.run_id, row.worker_id,
                     bytes(row.data), row.hash),
                )  # fmt: skip
        state = rebuild(store)
        assert audit(store) == []
        retried = state.runs["r-2"]
        assert (retried.status, retried.attempt, retried.failure_reason) == (t.CANCELLED, 2, None)
        assert state.runs["r-15"].status == t.CANCELLED
        assert state.workers["w-1"].stopped_at is not None
    finally:
        store.close()


def test_the_hash_form_is_pinned() -> None:
    """A known answer: the stored hashes of every log written since schema v6 depend on this exact
    form, sha256 of the JSON array [prev, seq, ts, type, stream, worker_id] followed by the data."""
    data = b'{"type":"claimed","attempt":1,"fence":1,"lease_expires_at":"2026-11-28T06:31:00.123456Z"}'
    digest = chain_hash(GENESIS_HASH, 1, "2026-11-28T06:30:00.123456Z", "claimed", "run:r-7", "w-1", data)
    assert digest == "e72d9afddc0ffebf585f966158183c9d355865c7c5f93c0962bd2bb32cb89f2d"


def test_an_export_of_a_log_in_the_legacy_hash_form_still_imports(tmp_path: Path) -> None:
    """The golden rows (hashed before schema v6) read as an export: import verifies their chain,
    and new events appended after them, in the current form, audit clean."""
    from taskhub.cli.importer import import_lines

    store = EventStore(tmp_path / "imported.db", synchronous="OFF")
    try:
        with store.transaction(0.0) as txn:
            count = import_lines(txn.conn, GOLDEN.read_bytes().splitlines())
        assert count == len(golden_rows())
        rebuild(store)
        with store.transaction(1.0) as txn:
            txn.append(WorkerStarted(pid=1, host="h", concurrency=1), worker_id="w-new")
        rebuild(store)
        assert audit(store) == []
    finally:
        store.close()
