"""Request and response bodies of the REST API, as msgspec Structs (the OpenAPI document is built from them)."""

from __future__ import annotations

from typing import Any

import msgspec

from taskhub.projections.runs import ArtifactView, ProgressView

# Query integers reach SQLite (64-bit) and os.pread: bigger ones would be a 500, not a 422.
MAX_SQL_INT = 2**63 - 1


class ErrorBody(msgspec.Struct, omit_defaults=True):
    """Every error answer: the HTTP status, a human message and, for a validation error, the field."""

    status_code: int
    detail: str
    field: str | None = None


# --- requests -------------------------------------------------------------------------------------


class SubmitBody(msgspec.Struct, forbid_unknown_fields=True):
    task_id: str
    params: dict[str, Any] = {}
    priority: int = 0
    idempotency_key: str | None = None
    not_before: str | None = None  # ISO 8601; a naive time is UTC


class PreviewBody(msgspec.Struct, forbid_unknown_fields=True):
    params: dict[str, Any] = {}


class CancelBody(msgspec.Struct, forbid_unknown_fields=True):
    reason: str = ""


# --- runs -----------------------------------------------------------------------------------------


class Blocker(msgspec.Struct, omit_defaults=True):
    """One reason a queued run has not started.

    reason: `max_concurrency` (runs: the runs holding the task's slots), `not_before` (until),
    `no_live_worker`, `runs_ahead` (count: queued runs a claim takes first).
    """

    reason: str
    message: str
    runs: list[str] | None = None
    count: int | None = None
    until: str | None = None


class RunOut(msgspec.Struct):
    """The run view as the API shows it; `blocked_by` is a list while queued, else null."""

    run_id: str
    task_id: str
    params: dict[str, Any]
    status: str
    priority: int
    attempt: int
    max_attempts: int
    timeout_s: float | None
    not_before: str | None
    idempotency_key: str | None
    task_version: str | None
    retry_of: str | None
    submitted_at: str | None
    claimed_at: str | None
    started_at: str | None
    finished_at: str | None
    worker_id: str | None
    fence: int | None
    lease_expires_at: str | None
    pid: int | None
    pgid: int | None
    create_time: float | None
    host: str | None
    argv: list[str] | None
    exit_code: int | None
    signal: int | None
    outcome: str | None
    failure_reason: str | None
    error: str | None
    cancel_reason: str | None
    progress: ProgressView | None
    artifacts: list[ArtifactView]
    result: Any
    last_seq: int
    blocked_by: list[Blocker] | None = None


class RunPage(msgspec.Struct):
    items: list[RunOut]
    next_cursor: str | None


# --- events ---------------------------------------------------------------------------------------


class EventOut(msgspec.Struct):
    seq: int
    ts: str
    type: str
    run_id: str | None
    worker_id: str | None
    data: dict[str, Any]
    hash: str


class EventPage(msgspec.Struct):
    items: list[EventOut]
    last_seq: int  # resume with ?after=last_seq: every event up to it was either returned or filtered out


# --- tasks ----------------------------------------------------------------------------------------


class TaskOut(msgspec.Struct):
    task_id: str
    name: str
    description: str
    params_schema: dict[str, Any]
    max_concurrency: int | None
    timeout_s: float | None
    max_attempts: int
    file: str
    version: str


class TaskErrorOut(msgspec.Struct):
    file: str
    error: str


class TaskList(msgspec.Struct):
    items: list[TaskOut]
    errors: list[TaskErrorOut]


class Argv(msgspec.Struct):
    argv: list[str]


# --- artifacts ------------------------------------------------------------------------------------


class ArtifactOut(msgspec.Struct):
    name: str  # relative to the run's artifacts folder, "/"-separated
    size: int
    modified: str
    description: str | None = None


class ArtifactList(msgspec.Struct):
    items: list[ArtifactOut]


# --- system ---------------------------------------------------------------------------------------


class WorkerOut(msgspec.Struct):
    worker_id: str
    pid: int
    host: str
    concurrency: int
    started_at: str
    stopped_at: str | None
    alive: bool
    running: list[str]


class WorkerList(msgspec.Struct):
    items: list[WorkerOut]


class Stats(msgspec.Struct):
    by_status: dict[str, int]
    by_task: dict[str, dict[str, int]]


class Health(msgspec.Struct):
    status: str
    last_seq: int
    sqlite_version: str
    sqlite_wal_reset_bug: bool
    containment: str
    tasks: int
    task_errors: int
    streams: int
