"""The SQLite event store: one file, WAL, appends in BEGIN IMMEDIATE with a hash chain.

`sqlite3` errors are translated here (StoreError, ConcurrencyConflict); nothing above imports sqlite3
for writing. Projections update their tables through `Txn.conn` inside the same transaction.
"""

from __future__ import annotations

import logging
import os
import random
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from taskhub.errors import ConcurrencyConflict, StoreError
from taskhub.events.chain import GENESIS_HASH, chain_hash
from taskhub.events.checkpointer import Checkpointer
from taskhub.events.clock import iso
from taskhub.events.schema import FREQUENT_TYPES, FREQUENT_TYPES_SQL, migrate
from taskhub.events.types import ENCODER, Envelope, Event, decode_event
from taskhub.events.write_gate import WriteGate

log = logging.getLogger(__name__)
_encode_event = ENCODER.encode

BUSY_TIMEOUT_MS = 5_000
# Writers checkpoint the WAL themselves, outside the write gate (see EventStore.maybe_checkpoint),
# after this many commits or rows changed, whichever comes first (SQLite's own default is ~1000 pages).
# Checkpoints are what stalls a claim now and then (the DB file's fsync): every 5 commits, 4
# processes claiming had p99 2.2 ms instead of 3.5, but 4 one-slot workers at FULL spent 0.15-0.4 ms
# more CPU per run.
CHECKPOINT_COMMITS = 250
CHECKPOINT_CHANGES = 4_000
BEGIN_ATTEMPTS = 20  # x busy timeout before a writer gives up with StoreError
DURABLE_LEVELS = frozenset({"FULL", "EXTRA", "2", "3"})  # synchronous settings whose commits are fsynced
VERSION_CACHE_MAX = 65_536  # streams whose version EventStore remembers between transactions
EVENT_COLUMNS = "seq, ts, type, run_id, worker_id, data, hash"


def connect(path: Path | str, synchronous: str = "FULL", readonly: bool = False) -> sqlite3.Connection:
    """Open the database in autocommit mode (we issue BEGIN ourselves), WAL, migrated."""
    if not readonly:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    try:
        if readonly:
            conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None, check_same_thread=False)
        else:
            conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open database {path}: {exc}") from exc
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            _set_up(conn, synchronous, readonly)
            break
        except sqlite3.OperationalError as exc:
            # Switching a new file to WAL can fail at once with "locked" while another process does
            # the same (SQLite skips the busy handler where waiting could deadlock): try again.
            if _is_busy(exc) and time.monotonic() < deadline:
                log.debug("store.open_busy path=%s", path)
                time.sleep(0.005 + 0.02 * random.random())
                continue
            conn.close()
            raise StoreError(f"cannot open database {path}: {exc}") from exc
        except BaseException as exc:
            conn.close()
            if isinstance(exc, sqlite3.Error):
                raise StoreError(f"cannot open database {path}: {exc}") from exc
            raise
    return conn


def _set_up(conn: sqlite3.Connection, synchronous: str, readonly: bool) -> None:
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    if not readonly:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA journal_size_limit = 67108864")
        conn.execute("PRAGMA wal_autocheckpoint = 0")  # EventStore checkpoints outside the write gate
        migrate(conn)
    conn.execute(f"PRAGMA synchronous = {synchronous}")


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    text = str(exc)
    return "locked" in text or "busy" in text


def stream_of(run_id: str | None, worker_id: str | None) -> str:
    if run_id is not None:
        return f"run:{run_id}"
    if worker_id is not None:
        return f"worker:{worker_id}"
    raise ValueError("an event belongs to a run or a worker")


def row_to_envelope(row: Sequence[object]) -> Envelope:
    seq, ts, type_, run_id, worker_id, data, hash_ = row
    return Envelope(seq, ts, type_, run_id, worker_id, decode_event(data), hash_)  # type: ignore[arg-type]


_SEQUENCE_SQL = "SELECT seq FROM sqlite_sequence WHERE name = 'events'"
# The chain head and the AUTOINCREMENT high-water mark, in one statement.
_HEAD_SQL = f"SELECT ({_SEQUENCE_SQL}), seq, hash FROM events ORDER BY seq DESC LIMIT 1"


class StreamVersions:
    """Each stream's last version as of `head`, remembered by one connection between its transactions.

    Valid only while nobody else appended: a transaction that finds the log's head still at `head`
    (seqs only grow, events are never deleted) may trust it; otherwise it is dropped. The UNIQUE
    (stream, version) index stays the backstop either way.
    """

    def __init__(self) -> None:
        self.head = -1
        self.versions: dict[str, int] = {}

    def validate(self, head: int) -> dict[str, int]:
        if head != self.head:
            self.versions.clear()
            self.head = head
        return self.versions

    def committed(self, txn: Txn) -> None:
        if len(self.versions) + len(txn.versions) > VERSION_CACHE_MAX:
            self.versions.clear()
        self.versions.update(txn.versions)
        self.head = txn.last_seq


_INSERT_SQL = (
    "INSERT INTO events (seq, ts, type, stream, version, run_id, worker_id, data, hash)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_VERSION_SQL = "SELECT version FROM events WHERE stream = ? ORDER BY version DESC LIMIT 1"


class Txn:
    """One open write transaction. Appends go straight to SQL; the chain head is kept in memory.

    Stream versions are looked up once per transaction (the write lock is held throughout), or not at
    all when `known` (versions as of the log's head, from StreamVersions) already has them.
    """

    def __init__(
        self, conn: sqlite3.Connection, now: float, known: StreamVersions | None = None, ts: str | None = None
    ) -> None:
        self.conn = conn
        self.now = now
        self.ts = iso(now) if ts is None else ts
        row = conn.execute(_HEAD_SQL).fetchone()
        if row is None:  # no events (yet): the sequence is all there is
            base = conn.execute(_SEQUENCE_SQL).fetchone()
            row = (base[0] if base else 0, 0, GENESIS_HASH)
        self.last_seq: int = max(row[0] or 0, row[1])
        self.last_hash: str = row[2]
        self.appended: list[Envelope] = []
        self.versions: dict[str, int] = {}  # streams appended to in this transaction
        self._known: dict[str, int] = known.validate(self.last_seq) if known is not None else {}
        # One cursor for every append: conn.execute() would make (and free) a new one each time.
        self._cursor = conn.cursor()

    @property
    def next_seq(self) -> int:
        return self.last_seq + 1

    def append(
        self,
        event: Event,
        *,
        run_id: str | None = None,
        worker_id: str | None = None,
        expected_version: int | None = None,
    ) -> Envelope:
        # The writer's hot path (once per event): stream_of() and the version lookup are inlined.
        if run_id is not None:
            stream = f"run:{run_id}"
        elif worker_id is not None:
            stream = f"worker:{worker_id}"
        else:
            raise ValueError("an event belongs to a run or a worker")
        version = self.versions.get(stream)
        if version is None:
            version = self._known.get(stream)
            if version is None:
                if expected_version == 0:  # must be a new stream: the UNIQUE index refuses it otherwise
                    version = 0
                else:
                    row = self._cursor.execute(_VERSION_SQL, (stream,)).fetchone()
                    version = row[0] if row else 0
        if expected_version is not None and version != expected_version:
            raise ConcurrencyConflict(f"{stream} is at version {version}, expected {expected_version}")
        version += 1
        seq = self.last_seq + 1
        name: str = event.__struct_config__.tag  # type: ignore[assignment]
        data = _encode_event(event)
        ts = self.ts
        digest = chain_hash(self.last_hash, seq, ts, name, stream, worker_id, data)
        try:
            self._cursor.execute(_INSERT_SQL, (seq, ts, name, stream, version, run_id, worker_id, data, digest))
        except sqlite3.IntegrityError as exc:
            raise ConcurrencyConflict(f"{stream} version {version} already exists") from exc
        self.last_seq, self.last_hash = seq, digest
        self.versions[stream] = version
        envelope = Envelope(seq, ts, name, run_id, worker_id, event, digest)
        self.appended.append(envelope)
        return envelope

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        """Run part of a transaction so that a failure undoes only that part, memory included."""
        state = (self.last_seq, self.last_hash, len(self.appended), dict(self.versions))
        self.conn.execute("SAVEPOINT op")
        try:
            yield
        except BaseException:
            self.conn.execute("ROLLBACK TO op")
            self.conn.execute("RELEASE op")
            self.last_seq, self.last_hash, n, self.versions = state
            del self.appended[n:]
            raise
        self.conn.execute("RELEASE op")


class EventStore:
    """Synchronous access to one database file: transactions and reads."""

    def __init__(self, path: Path | str, synchronous: str = "FULL", readonly: bool = False) -> None:
        self.path = Path(path)
        # FULL (or EXTRA): each commit is made durable by our own fdatasync() of the WAL after the
        # gate is released (see sync_wal); SQLite itself runs at NORMAL, which in WAL mode differs
        # from FULL only in skipping that fsync inside COMMIT, under the write lock.
        self.syncs_commits = not readonly and synchronous.upper() in DURABLE_LEVELS
        self.conn = connect(path, "NORMAL" if self.syncs_commits else synchronous, readonly)
        try:
            self._gate = None if readonly else WriteGate(self.path)
        except BaseException:
            self.conn.close()
            raise
        self._wal_fd = -1
        self.unsynced = -1  # the number of a commit made with sync=False, awaiting sync_wal(); else -1
        self.last_commit = -1  # the number of this store's latest commit that needed syncing
        self._level = synchronous.upper()
        self._checkpointer: Checkpointer | None = None
        self._commits = 0
        self._changes = self.conn.total_changes
        self._versions = StreamVersions()

    def close(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.close()
            self._checkpointer = None
        self.conn.close()
        if self._gate is not None:
            self._gate.close()
            self._gate = None
        if self._wal_fd >= 0:
            os.close(self._wal_fd)
            self._wal_fd = -1

    @contextmanager
    def transaction(self, now: float, *, checkpoint: bool = True, sync: bool = True) -> Iterator[Txn]:
        """BEGIN IMMEDIATE (read-then-write must not be deferred), COMMIT on success.

        `checkpoint=False` leaves the occasional WAL checkpoint to the caller (maybe_checkpoint()),
        to run once it has told its waiters: the group-commit writer acknowledges first.
        `sync=False` leaves making a FULL commit durable to the caller: `unsynced` is then set to the
        commit's number (the caller resets it to -1), and sync_wal(that number) must return before the
        commit is acknowledged to anyone.
        """
        if self._gate is None:
            raise StoreError("this store is read-only or closed")
        ts = iso(now)  # before the gate: every moment under it holds up the other writers
        self._gate.acquire()
        try:
            self._begin()
            changes = self.conn.total_changes
            try:
                txn = Txn(self.conn, now, self._versions, ts)
                yield txn
                self.conn.execute("COMMIT")
                self._versions.committed(txn)
            except BaseException:
                if self.conn.in_transaction:
                    self.conn.execute("ROLLBACK")
                raise
            # Counted at every level (the checkpoints go by it), synced at FULL.
            commit = self._gate.committed() if self.conn.total_changes != changes else -1
        finally:
            self._gate.release()
        if commit >= 0 and self.syncs_commits:
            self.last_commit = commit
            if sync:
                self.sync_wal(commit)
            else:
                self.unsynced = commit
        if txn.appended:
            self._gate.ring()
        if checkpoint:
            self.maybe_checkpoint()

    def sync_wal(self, commit: int = 0) -> None:
        """Make the commit just made durable: fdatasync() the WAL, outside the write gate.

        In WAL mode a commit is a run of frames appended to the WAL; FULL differs from NORMAL only in
        fsyncing them inside COMMIT, that is under the write lock, so each writer waited for the one
        before it to reach the disk (claims at FULL: one fsync at a time). Here the next writer
        commits while this one syncs, and one fsync covers every frame written before it, ours and
        other processes' alike: what a commit depends on (frames earlier in the same file) is always
        durable with it. A commit is visible to readers a moment before it is durable (as at NORMAL),
        but it is acknowledged (this returns) only after. Checkpoints still fsync the WAL before
        copying it and the database after, at NORMAL as at FULL. Any one thread may call this.
        """
        fd = self._wal_fd
        try:
            if fd < 0 or os.fstat(fd).st_nlink == 0:  # first commit, or the WAL was removed and made anew
                fd = self._open_wal()
            if self._gate is None:
                raise StoreError("this store is read-only or closed")
            self._gate.sync(fd, commit)
        except OSError as exc:
            raise StoreError(f"committed, but the log could not be made durable: {exc}") from exc

    def _open_wal(self) -> int:
        if self._wal_fd >= 0:
            os.close(self._wal_fd)
            self._wal_fd = -1
        self._wal_fd = os.open(f"{self.path}-wal", os.O_RDONLY | os.O_CLOEXEC)
        # SQLite at NORMAL never fsyncs the directory that the new WAL's name lives in: do it once.
        folder = os.open(self.path.parent, os.O_RDONLY | os.O_CLOEXEC)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)
        return self._wal_fd

    def maybe_checkpoint(self) -> None:
        """Now and then, have the WAL copied back into the database, by a thread of this store's own.

        SQLite's autocheckpoint runs inside COMMIT, so under the gate it would stall every other
        writer for its fsyncs (claims: p99 5.8 ms with it, 0.44 ms without); run on the writer's
        own thread after the gate, it still stalled that writer (group commit at NORMAL: 21 ms
        every ~60 batches, a fifth of the time). See Checkpointer.
        """
        self._commits += 1
        if self._commits < CHECKPOINT_COMMITS and self.conn.total_changes - self._changes < CHECKPOINT_CHANGES:
            return
        self._commits, self._changes = 0, self.conn.total_changes
        if self._checkpointer is None:
            level = "OFF" if self._level == "OFF" else "NORMAL"
            self._checkpointer = Checkpointer(self.path, lambda: connect(self.path, level))
        self._checkpointer.request()

    def _begin(self) -> None:
        for attempt in range(BEGIN_ATTEMPTS):
            try:
                self.conn.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if not _is_busy(exc):
                    raise StoreError(f"cannot begin a write: {exc}") from exc
                log.warning("store.busy attempt=%d", attempt + 1)
                time.sleep(0.01 * (attempt + 1))
        raise StoreError(f"the database stayed locked for {BEGIN_ATTEMPTS * BUSY_TIMEOUT_MS / 1000:.0f}s")

    # -- reads -------------------------------------------------------------------------------

    def last_seq(self) -> int:
        row = self.conn.execute("SELECT max(seq) FROM events").fetchone()
        return int(row[0] or 0)

    def read(
        self,
        after: int = 0,
        limit: int = 1000,
        run_id: str | None = None,
        types: Sequence[str] | None = None,
        until: int | None = None,
    ) -> list[Envelope]:
        sql, args = events_query(after, limit, run_id, types, until)
        return [row_to_envelope(r) for r in self.conn.execute(sql, args)]

    def iter_all(self, until: int | None = None, batch: int = 20_000, *, hashes: bool = True) -> Iterator[Envelope]:
        """Every event in seq order, read in batches (no per-row round trip). `hashes=False` leaves each
        `hash` empty, for a fold that never reads it (audit checks the chain from iter_raw)."""
        limit = 2**62 if until is None else until  # until=0 is "before the first event", not "everything"
        columns = EVENT_COLUMNS if hashes else EVENT_COLUMNS.replace("hash", "''")
        cur = self.conn.execute(f"SELECT {columns} FROM events WHERE seq <= ? ORDER BY seq", (limit,))
        decode, make = decode_event, Envelope
        while rows := cur.fetchmany(batch):
            for seq, ts, type_, run_id, worker_id, data, hash_ in rows:
                yield make(seq, ts, type_, run_id, worker_id, decode(data), hash_)

    def iter_raw(
        self, batch: int = 20_000
    ) -> Iterator[tuple[int, str, str, str, int, str | None, str | None, bytes, str]]:
        """Rows as stored (seq, ts, type, stream, version, run_id, worker_id, data, hash), for audit."""
        cur = self.conn.execute(
            "SELECT seq, ts, type, stream, version, run_id, worker_id, data, hash FROM events ORDER BY seq"
        )
        while rows := cur.fetchmany(batch):
            yield from rows


def events_query(
    after: int,
    limit: int,
    run_id: str | None = None,
    types: Sequence[str] | None = None,
    until: int | None = None,
) -> tuple[str, list[object]]:
    """The SQL for a filtered page of events; shared by the sync and async readers."""
    where = ["seq > ?"]
    args: list[object] = [after]
    if run_id is not None:
        where.append("stream = ?")
        args.append(f"run:{run_id}")
    if types:
        where.append(f"type IN ({','.join('?' * len(types))})")
        args.extend(types)
        if not FREQUENT_TYPES & set(types):
            where.append(FREQUENT_TYPES_SQL)  # implied, but the planner needs the partial index's own words
    if until is not None:
        where.append("seq <= ?")
        args.append(until)
    args.append(limit)
    return f"SELECT {EVENT_COLUMNS} FROM events WHERE {' AND '.join(where)} ORDER BY seq LIMIT ?", args
