"""The database file's schema: the append-only log and the projection tables kept beside it.

Versioned with `PRAGMA user_version`; each migration moves one version forward and runs once.
"""

from __future__ import annotations

import sqlite3

from taskhub.errors import StoreError

ACTIVE_SQL = "('claimed','running','cancelling')"

_V1 = f"""
CREATE TABLE events (
    seq       INTEGER PRIMARY KEY AUTOINCREMENT,
    ts        TEXT    NOT NULL,
    type      TEXT    NOT NULL,
    stream    TEXT    NOT NULL,
    version   INTEGER NOT NULL,
    run_id    TEXT,
    worker_id TEXT,
    data      BLOB    NOT NULL,
    hash      TEXT    NOT NULL,
    UNIQUE (stream, version)
);
CREATE INDEX events_type ON events (type, seq);
CREATE TRIGGER events_no_update BEFORE UPDATE ON events
BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;
CREATE TRIGGER events_no_delete BEFORE DELETE ON events
BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;

CREATE TABLE runs (
    run_id          TEXT    PRIMARY KEY,
    num             INTEGER NOT NULL UNIQUE,
    task_id         TEXT    NOT NULL,
    status          TEXT    NOT NULL,
    priority        INTEGER NOT NULL,
    not_before      REAL,
    lease_expires   REAL,
    worker_id       TEXT,
    fence           INTEGER,
    idempotency_key TEXT,
    last_seq        INTEGER NOT NULL,
    view            BLOB    NOT NULL
);
CREATE INDEX runs_queue ON runs (priority DESC, num) WHERE status = 'queued';
CREATE INDEX runs_status ON runs (status, num);
CREATE INDEX runs_task ON runs (task_id, num);
CREATE INDEX runs_task_status ON runs (task_id, status, num);
CREATE INDEX runs_active ON runs (lease_expires) WHERE status IN {ACTIVE_SQL};
CREATE INDEX runs_worker ON runs (worker_id) WHERE status IN {ACTIVE_SQL};
CREATE UNIQUE INDEX runs_idempotency ON runs (idempotency_key) WHERE idempotency_key IS NOT NULL;

CREATE TABLE workers (
    worker_id TEXT    PRIMARY KEY,
    last_seq  INTEGER NOT NULL,
    view      BLOB    NOT NULL
);
"""

# v2: the worker asks "when is the next delayed run due?" whenever it idles; without this index
# that is a scan of every queued run.
_V2 = """
CREATE INDEX runs_not_before ON runs (not_before) WHERE status = 'queued';
"""

# v3: the same index without the queued runs that have no not_before (most of them), which it held
# as NULL entries no query reads: each submit inserted one and each claim deleted one, a page more
# for the commit to write. The worker's query (not_before > ?) implies NOT NULL, so it still applies.
_V3 = """
DROP INDEX runs_not_before;
CREATE INDEX runs_not_before ON runs (not_before) WHERE status = 'queued' AND not_before IS NOT NULL;
"""

# v4: no index on the lease. Nothing reads runs in lease order (the reaper reads every active run
# and decides; queries.expired_runs filters the few active runs, which runs_worker holds), yet each
# claim inserted an entry and each heartbeat moved one: a b-tree less to write under the write gate.
_V4 = """
DROP INDEX runs_active;
"""

# v5: the type index leaves out the two kinds of event that come by the thousand (a run's progress
# and every running run's heartbeat): appending one of those writes a b-tree less (-1.3 us of the
# ~10 us an append costs inside the transaction). A query for only other types uses the index (see
# store.events_query, which must repeat this condition word for word); one that asks for these
# reads the log in seq order from `after`, where they are dense.
FREQUENT_TYPES = frozenset({"progress", "heartbeat"})
FREQUENT_TYPES_SQL = "type NOT IN ('heartbeat','progress')"
_V5 = f"""
DROP INDEX events_type;
CREATE INDEX events_type ON events (type, seq) WHERE {FREQUENT_TYPES_SQL};
"""

# v6: no change to the tables. Events are hashed in a new form that also covers worker_id (see
# taskhub.events.chain); the version number keeps a TaskHub from before it from opening the file and
# appending events in the old form after ones in the new, which audit would report as tampering.
_V6 = ""

MIGRATIONS: tuple[str, ...] = (_V1, _V2, _V3, _V4, _V5, _V6)
SCHEMA_VERSION = len(MIGRATIONS)
PROJECTION_TABLES = ("runs", "workers")


def migrate(conn: sqlite3.Connection) -> None:
    """Bring the file up to SCHEMA_VERSION, one forward migration at a time, each atomically."""
    current = conn.execute("PRAGMA user_version").fetchone()[0]
    if current > SCHEMA_VERSION:
        raise StoreError(
            f"database schema version {current} is newer than this TaskHub ({SCHEMA_VERSION}); upgrade TaskHub"
        )
    for version in range(current, SCHEMA_VERSION):
        conn.execute("BEGIN IMMEDIATE")
        try:
            # Another process may have migrated while we waited for the write lock.
            if conn.execute("PRAGMA user_version").fetchone()[0] > version:
                conn.execute("ROLLBACK")
                continue
            for statement in _statements(MIGRATIONS[version]):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {version + 1}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise


def _statements(script: str) -> list[str]:
    """Split a DDL script into statements, keeping trigger bodies whole."""
    out: list[str] = []
    buf = ""
    for line in script.strip().splitlines():
        buf += line + "\n"
        if sqlite3.complete_statement(buf):
            out.append(buf.strip())
            buf = ""
    return out
