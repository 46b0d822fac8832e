"""The write gate: writers of one database file take turns, across processes, first come first served."""

from __future__ import annotations

import errno
import fcntl
import logging
import mmap
import os
import struct
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from taskhub.errors import StoreError

log = logging.getLogger(__name__)

_local = threading.local()


def _gates_held() -> set[tuple[int, int]]:
    held: set[tuple[int, int]] | None = getattr(_local, "gates", None)
    if held is None:
        held = _local.gates = set()
    return held


class WriteGate:
    """Writers of one database file take turns here, across processes, first come first served.

    SQLite's busy handler sleeps 1, 2, 5 ... 100 ms between retries, so a writer that has waited a while
    naps while fresh ones take the lock again and again: with 8 processes claiming, one waited over 5 s
    (BEGIN IMMEDIATE hit the busy timeout) and shares were 47 vs 670 claims. A blocking flock() alone
    was no fair queue either: an unlock wakes every waiter, and the process that just unlocked, still
    running, usually took the lock back before a woken one was scheduled. With 4 processes claiming on
    2 cores, a claim's wait spanned 20-36 turns of the others (p99 14-25 ms).

    So each writer draws a ticket (a counter in the lock file, mapped in memory, drawn under a short
    lock) and holds a lock on its ticket's own byte until it leaves; it waits on its predecessor's byte,
    which the kernel hands over when the predecessor unlocks it, or dies (even kill -9). Only the next
    in line is woken. The flock() on the whole file stays the mutual exclusion proper, so a waiter that
    died, or a process without OFD locks, costs fairness, never safety.

    (Waking the next in line when its predecessor enters, to poll for its turn with sched_yield(),
    was tried: claims from 2-4 processes rose 15-30%, the woken waiter's core no longer idling, but
    4 one-slot workers spent ~0.2 ms more CPU per run, taken from their runs. Not kept.)
    """

    @staticmethod
    def lock_path(db_path: Path) -> Path:
        return db_path.with_name(db_path.name + "-lock")

    def __init__(self, db_path: Path) -> None:
        self.path = self.lock_path(db_path)
        try:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise StoreError(f"cannot open the write lock {self.path}: {exc}") from exc
        info = os.fstat(self._fd)
        self._key = (info.st_dev, info.st_ino)
        self._tickets: mmap.mmap | None = None
        self._slot = -1
        try:
            self._tickets = _map_tickets(self._fd, info.st_size)
        except OSError as exc:  # no OFD locks or no mmap here: flock alone (safe, not first come first served)
            log.warning("store.gate_unfair path=%s error=%s", self.path, exc)

    def acquire(self) -> None:
        held = _gates_held()
        if self._key in held:  # flock would wait for ourselves forever
            raise StoreError(f"a write transaction on {self.path.name[:-5]} is already open in this thread")
        if self._tickets is not None:
            self._queue()
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX)
        except BaseException:
            self._leave()
            raise
        held.add(self._key)

    def release(self) -> None:
        _gates_held().discard(self._key)
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        self._leave()  # after the flock: the next in line finds it free

    def _queue(self) -> None:
        """Draw a ticket, lock its byte, and wait until the one before it has left."""
        assert self._tickets is not None
        fd = self._fd
        _range_lock(fd, fcntl.F_WRLCK, _DRAW_BYTE, wait=True)
        try:
            ticket = _TICKET.unpack_from(self._tickets, _TICKET_AT)[0]
            _TICKET.pack_into(self._tickets, _TICKET_AT, ticket + 1)
            mine = _SLOT_BASE + ticket % _SLOTS
            # Free unless _SLOTS writers queue at once; then wait for that one rather than fail.
            _range_lock(fd, fcntl.F_WRLCK, mine, wait=True)
        finally:
            _range_lock(fd, fcntl.F_UNLCK, _DRAW_BYTE, wait=False)
        self._slot = mine
        if mine > _SLOT_BASE:  # wait for the ticket before ours (held on to, and let go with ours)
            try:
                _range_lock(fd, fcntl.F_WRLCK, mine - 1, wait=True)  # handed over when it unlocks or dies
            except BaseException:
                self._leave()
                raise
        # (Ticket 0 of each round of _SLOTS does not wait on the last of the round before: fairness
        # lapses once per 65,536 turns; the flock still excludes.)

    def _leave(self) -> None:
        if self._slot >= 0:
            slot, self._slot = self._slot, -1
            # Ours and the one before it, in one call: a lock on a byte nobody holds unlocks nothing.
            _range_lock(self._fd, fcntl.F_UNLCK, slot - 1, wait=False, length=2)

    def committed(self) -> int:
        """Count a commit that wrote to the WAL, while holding the gate; returns its number (0 when
        this gate keeps no counters, which makes sync() always fsync). The count serves sync() and
        the checkpoints (see checkpointing())."""
        if self._tickets is None:
            return 0
        count = _TICKET.unpack_from(self._tickets, _COMMITS_AT)[0] + 1
        _TICKET.pack_into(self._tickets, _COMMITS_AT, count)
        return int(count)

    @contextmanager
    def checkpointing(self) -> Iterator[bool]:
        """The turn to checkpoint the WAL, if now is a safe moment: yields False when it is not.

        SQLite before 3.51.3 has a race (the "WAL-reset bug", sqlite.org/wal.html#walresetbug) that
        can corrupt the database: a checkpoint starts just after another one copied the whole WAL
        back, while a writer, finding it all copied, starts the WAL over; the late checkpoint then
        misrecords what it copied. So one checkpoint at a time across every process (a lock on a
        byte of this file, let go even by kill -9), and none while the WAL is wholly copied back
        with nothing committed since: a checkpoint has nothing to do then, and it is the one moment
        a writer may start the WAL over. Once a commit has been counted since (committed()), the
        WAL no longer lies wholly copied back (that commit started it over, or appended to it), and
        only a checkpoint, which needs this turn, can copy it all back again. The caller says when
        it did with copied_back().
        """
        if self._tickets is None:  # no OFD locks: no counters either; checkpoint as SQLite would
            yield True
            return
        try:
            _range_lock(self._fd, fcntl.F_WRLCK, _CHECKPOINT_BYTE, wait=False)
        except OSError:  # another checkpoint is running: it will do
            yield False
            return
        try:
            commits = _TICKET.unpack_from(self._tickets, _COMMITS_AT)[0]
            yield commits != _TICKET.unpack_from(self._tickets, _COPIED_AT)[0]
        finally:
            _range_lock(self._fd, fcntl.F_UNLCK, _CHECKPOINT_BYTE, wait=False)

    def copied_back(self) -> None:
        """Within checkpointing(): the checkpoint just made left every frame of the WAL copied back."""
        if self._tickets is not None:
            _TICKET.pack_into(self._tickets, _COPIED_AT, _TICKET.unpack_from(self._tickets, _COMMITS_AT)[0])

    def sync(self, fd: int, commit: int) -> None:
        """fdatasync() `fd` (the WAL) unless another writer's fsync, begun after commit number `commit`,
        has already covered it: one fsync then serves every commit made before it began, in every
        process (leader and followers, as in a database's group commit)."""
        if self._tickets is None or commit <= 0 or not self._sync_turn():
            os.fdatasync(fd)
            return
        try:
            if _TICKET.unpack_from(self._tickets, _SYNCED_AT)[0] >= commit:
                return  # a sync that began after our commit has finished
            upto = _TICKET.unpack_from(self._tickets, _COMMITS_AT)[0]  # every commit so far is in the file
            os.fdatasync(fd)
            if upto > _TICKET.unpack_from(self._tickets, _SYNCED_AT)[0]:
                _TICKET.pack_into(self._tickets, _SYNCED_AT, upto)
        finally:
            _range_lock(self._fd, fcntl.F_UNLCK, _SYNC_BYTE, wait=False)

    def _sync_turn(self) -> bool:
        """The sync lock, waited for while another writer fsyncs (its fsync may cover our commit),
        but not for ever: a writer stopped mid-fsync (SIGSTOP, a debugger) holds it, and every
        commit's acknowledgement in every process waited with it (test_faults 5 hung so, 1 run in
        16). Past SYNC_WAIT_S, False: fsync on our own, without it; fsyncs may always overlap."""
        deadline = time.monotonic() + SYNC_WAIT_S
        pause = 20e-6
        while True:
            try:
                if _try_lock(self._fd, _SYNC_BYTE):
                    return True
            except OSError:
                return False
            if time.monotonic() > deadline:
                return False
            time.sleep(pause)
            pause = min(pause * 2, 2e-4)

    def ring(self) -> None:
        """Touch the lock file after a commit: what wakes followers in other processes (ChangeSignal
        watches this file), once the commit is visible.

        The WAL's own change notifications fire on each write(), before the wal-index update that
        makes the commit visible; a follower woken then would read nothing.
        (Drawing a ticket writes to the file's memory map, which notifies nobody.)
        """
        try:
            os.pwrite(self._fd, b"\0", 0)
        except OSError as exc:  # the commit stands; followers still have their poll
            log.warning("store.ring_failed error=%s", exc)

    def close(self) -> None:
        if self._tickets is not None:
            self._tickets.close()
            self._tickets = None
        os.close(self._fd)


class ClaimTurn:
    """Which idle worker answers a commit by claiming: the one holding this turn (a lock on a byte of
    the write gate's lock file, let go even by kill -9). The others, woken by the same commit, only
    try to take the turn; they claim when they get it, or when their own poll comes due.

    Without it every idle worker claimed on every commit that might have queued a run: 4 one-slot
    workers fed runs one at a time made ~1 claim transaction per run each, 3 of them empty.
    Where OFD locks are missing, every worker holds the turn (as before)."""

    def __init__(self, db_path: Path) -> None:
        self._fd = os.open(WriteGate.lock_path(db_path), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        self.held = _OFD_SETLK is None

    def take(self) -> bool:
        """The turn, if free (or ours already); never waits."""
        if not self.held:
            try:
                self.held = _try_lock(self._fd, _CLAIM_TURN_BYTE)
            except OSError as exc:  # locks do not work here: every worker claims, as before
                log.warning("store.claim_turn_unavailable error=%s", exc)
                self.held = True
        return self.held

    def release(self) -> None:
        if self.held and _OFD_SETLK is not None:
            _range_lock(self._fd, fcntl.F_UNLCK, _CLAIM_TURN_BYTE, wait=False)
            self.held = False

    def close(self) -> None:
        os.close(self._fd)  # lets go of the turn, if held
        self.held = _OFD_SETLK is None


# The lock file's layout: byte 0 is rung after commits; the ticket counter lives at _TICKET_AT, the
# commit, synced and copied-back counters after it; the byte-range locks (advisory, so they may lie
# past the end of the file) are the draw lock, the sync lock, the checkpoint lock, the claim turn
# and one byte per ticket modulo _SLOTS.
# Native size and alignment: packed with one memcpy of 8 aligned bytes, a single load or store on
# the 64-bit machines we run on, so a reader outside the writer's lock never sees half a count.
_TICKET = struct.Struct("Q")
_TICKET_AT = 8
_COMMITS_AT = 16  # commits that wrote to the WAL, counted by committed(), under the gate
_SYNCED_AT = 24  # commits known to be on disk, under the sync lock
_COPIED_AT = 32  # the commits counted when a checkpoint last copied the whole WAL back
_MAP_SIZE = 64
SYNC_WAIT_S = 0.05  # the longest wait for another writer's fsync before syncing without it
_DRAW_BYTE = 1 << 20
_SYNC_BYTE = (1 << 20) + 1
_CHECKPOINT_BYTE = (1 << 20) + 2
_CLAIM_TURN_BYTE = (1 << 20) + 3
_SLOT_BASE = 2 << 20
_SLOTS = 1 << 16
_FLOCK = struct.Struct("hhqqi4x")  # struct flock: l_type, l_whence, l_start, l_len, l_pid (0 for OFD locks)
_OFD_SETLK: int | None = getattr(fcntl, "F_OFD_SETLK", None)
_OFD_SETLKW: int | None = getattr(fcntl, "F_OFD_SETLKW", None)


def _map_tickets(fd: int, size: int) -> mmap.mmap:
    if _OFD_SETLKW is None:
        raise OSError("this system has no open file description locks")
    _range_lock(fd, fcntl.F_UNLCK, _DRAW_BYTE, wait=False)  # raises where OFD locks are unsupported
    if size < _MAP_SIZE:
        os.ftruncate(fd, _MAP_SIZE)  # only ever grows it, so racing openers agree; the counter starts at 0
    return mmap.mmap(fd, _MAP_SIZE)


def _try_lock(fd: int, start: int) -> bool:
    """Lock one byte if nobody else holds it; False if someone does. Other errors raise."""
    try:
        _range_lock(fd, fcntl.F_WRLCK, start, wait=False)
    except OSError as exc:
        if exc.errno in (errno.EAGAIN, errno.EACCES):
            return False
        raise
    return True


def _range_lock(fd: int, kind: int, start: int, *, wait: bool, length: int = 1) -> None:
    """An open-file-description lock on bytes of the file: held per open file, not per process, and
    dropped by the kernel when the holder's file is closed or the holder dies."""
    command = _OFD_SETLKW if wait else _OFD_SETLK
    assert command is not None
    fcntl.fcntl(fd, command, _FLOCK.pack(kind, os.SEEK_SET, start, length, 0))
