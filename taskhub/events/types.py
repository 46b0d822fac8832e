"""Every event type of the log: frozen, explicitly tagged msgspec Structs, one union, one codec.

Stored events never change shape: tags and fields are never renamed or removed, and new fields get
defaults, so every row ever written still decodes (tests/golden_events.jsonl checks this).
"""

from __future__ import annotations

from typing import Any, TypeAlias

import msgspec


class _Event(msgspec.Struct, frozen=True, tag_field="type", omit_defaults=False):
    pass


class Submitted(_Event, frozen=True, tag="submitted"):
    task_id: str
    params: dict[str, Any]
    priority: int = 0
    max_attempts: int = 1
    timeout_s: float | None = None
    not_before: str | None = None
    idempotency_key: str | None = None
    task_version: str | None = None
    retry_of: str | None = None


class Claimed(_Event, frozen=True, tag="claimed"):
    attempt: int
    fence: int
    lease_expires_at: str


class Started(_Event, frozen=True, tag="started"):
    fence: int
    pid: int
    pgid: int
    create_time: float
    host: str
    argv: list[str]


class Heartbeat(_Event, frozen=True, tag="heartbeat"):
    fence: int
    lease_expires_at: str


class Progress(_Event, frozen=True, tag="progress"):
    fence: int
    pct: float | None = None
    message: str | None = None
    extra: dict[str, Any] = {}


class Artifact(_Event, frozen=True, tag="artifact"):
    fence: int
    name: str
    description: str | None = None


class Result(_Event, frozen=True, tag="result"):
    fence: int
    value: Any = None


class CancelRequested(_Event, frozen=True, tag="cancel_requested"):
    reason: str = ""


class Exited(_Event, frozen=True, tag="exited"):
    fence: int
    exit_code: int | None
    signal: int | None
    outcome: str  # succeeded | failed | cancelled | timed_out
    duration_s: float
    reason: str | None = None  # failure_reason override, e.g. "spawn_error"
    error: str | None = None  # human message, e.g. why the spawn failed


class Reaped(_Event, frozen=True, tag="reaped"):
    fence: int
    reason: str  # lease_expired | worker_gone
    killed_pids: list[int] = []


class RetryScheduled(_Event, frozen=True, tag="retry_scheduled"):
    fence: int
    next_attempt: int
    not_before: str


class Cancelled(_Event, frozen=True, tag="cancelled"):
    reason: str = ""


class Refused(_Event, frozen=True, tag="refused"):
    """A late report from a fenced-out worker, recorded on the worker's behalf after the refusal."""

    fence: int
    event_type: str


class WorkerStarted(_Event, frozen=True, tag="worker_started"):
    pid: int
    host: str
    concurrency: int
    create_time: float = 0.0


class WorkerStopped(_Event, frozen=True, tag="worker_stopped"):
    reason: str = ""


Event: TypeAlias = (
    Submitted
    | Claimed
    | Started
    | Heartbeat
    | Progress
    | Artifact
    | Result
    | CancelRequested
    | Exited
    | Reaped
    | RetryScheduled
    | Cancelled
    | Refused
    | WorkerStarted
    | WorkerStopped
)

EVENT_TYPES: tuple[type[_Event], ...] = Event.__args__  # type: ignore[attr-defined]
TYPE_NAMES: frozenset[str] = frozenset(t.__struct_config__.tag for t in EVENT_TYPES)  # type: ignore[misc]
# Events that speak for a claim: appended only while their fence is the run's current one.
FENCED_TYPES: frozenset[str] = frozenset(
    t.__struct_config__.tag  # type: ignore[misc]
    for t in EVENT_TYPES
    if "fence" in t.__struct_fields__ and t is not Claimed and t is not Refused
)


def type_name(event: Event) -> str:
    return event.__struct_config__.tag  # type: ignore[return-value]


class Envelope(msgspec.Struct, frozen=True):
    """An event as stored: its place in the log, its stream, and its hash in the chain."""

    seq: int
    ts: str
    type: str
    run_id: str | None
    worker_id: str | None
    data: Event
    hash: str


ENCODER = msgspec.json.Encoder()
EVENT_DECODER = msgspec.json.Decoder(Event)


def encode_event(event: Event) -> bytes:
    return ENCODER.encode(event)


def decode_event(raw: bytes | str) -> Event:
    event: Event = EVENT_DECODER.decode(raw)
    return event


def envelope_dict(env: Envelope) -> dict[str, Any]:
    """The envelope as every interface shows it: `data` without the redundant type tag."""
    data = msgspec.to_builtins(env.data)
    data.pop("type", None)
    return {
        "seq": env.seq,
        "ts": env.ts,
        "type": env.type,
        "run_id": env.run_id,
        "worker_id": env.worker_id,
        "data": data,
        "hash": env.hash,
    }


def encode_envelope(env: Envelope) -> bytes:
    return ENCODER.encode(envelope_dict(env))
