"""WAL checkpoints on a thread and connection of their own, finished under the write gate when the
WAL has grown, so that it can start over."""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

from taskhub.errors import StoreError
from taskhub.events.write_gate import WriteGate

log = logging.getLogger(__name__)

RESTART_FRAMES = 8_192  # WAL frames (32 MiB of 4 KiB pages) past which a checkpoint also rewinds the WAL


class Checkpointer:
    """Copies the WAL back into the database on a thread and connection of its own, when asked.

    A PASSIVE checkpoint runs beside writers and never waits for them; but it copies only the frames
    committed before it began, and SQLite starts the WAL over from its beginning only when a writer
    finds every frame copied. With writers that never pause (4 processes claiming), that never
    happened: the WAL grew by 470 MB in 3 s, each commit appending to the file's end. So when the WAL
    has grown past RESTART_FRAMES, the copy is finished with a second, short checkpoint under the
    write gate (only the frames of the last moments are left), after which the next commit rewinds
    the WAL. Readers keep their snapshots short, so they rarely hold it up.

    Every checkpoint takes its turn through WriteGate.checkpointing(): one at a time across every
    process, and none at the moment SQLite's WAL-reset bug needs (before 3.51.3).
    """

    def __init__(self, path: Path, open_connection: Callable[[], sqlite3.Connection]) -> None:
        """`open_connection`: the store's own kind of connection to `path` (the store opens it)."""
        self._path = path
        self._open_connection = open_connection
        self._due = threading.Event()
        self._stopping = False
        self.passes = 0  # requests handled (a checkpoint made or skipped), for tests
        self._thread = threading.Thread(target=self._run, name="taskhub-checkpoint", daemon=True)
        self._thread.start()

    def request(self) -> None:
        self._due.set()

    def close(self) -> None:
        self._stopping = True
        self._due.set()
        self._thread.join()

    def _run(self) -> None:
        try:
            conn = self._open_connection()
        except StoreError as exc:
            log.warning("store.checkpointer_failed error=%s", exc)
            return
        gate: WriteGate | None = None
        try:
            gate = WriteGate(self._path)
            while True:
                self._due.wait()
                self._due.clear()
                if self._stopping:
                    return
                try:
                    self._checkpoint(conn, gate)
                except (sqlite3.Error, StoreError) as exc:  # busy: another checkpoint is running, fine
                    log.debug("store.checkpoint_skipped error=%s", exc)
                self.passes += 1
        except StoreError as exc:
            log.warning("store.checkpointer_failed error=%s", exc)
        finally:
            conn.close()
            if gate is not None:
                gate.close()

    def _checkpoint(self, conn: sqlite3.Connection, gate: WriteGate) -> None:
        with gate.checkpointing() as safe:  # see WriteGate.checkpointing: SQLite's WAL-reset bug
            if not safe:
                return
            _, frames, copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            if frames >= RESTART_FRAMES:
                # Even when this copied every frame: a writer already in a transaction appends to
                # the WAL's end, and only a writer that begins with it all copied starts it over.
                # What the checkpoint under the gate fsyncs is written ahead of it, outside: the
                # WAL so far (NORMAL leaves it unsynced). The gate is then held 3-5 ms, not 6-30.
                _presync(f"{self._path}-wal")
                gate.acquire()
                try:
                    _, frames, copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                finally:
                    gate.release()
            if copied == frames:
                gate.copied_back()


def _presync(path: str) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return
    try:
        os.fdatasync(fd)
    except OSError as exc:  # the checkpoint's own fsync will say what is wrong
        log.debug("store.presync_failed error=%s", exc)
    finally:
        os.close(fd)
