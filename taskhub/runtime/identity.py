"""A process's identity: a pid is only the same process if its create time agrees (pids are reused)."""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass

import psutil

logger = logging.getLogger(__name__)

# psutil derives create_time from boot time + start time in clock ticks (1/100 s on Linux), so
# two reads of the same process agree far closer than this; a different process never does in
# practice (its pid would have to be reused within the same tick).
CREATE_TIME_TOLERANCE_S = 0.01
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
BOOT_TIME_TTL_S = 5.0


@dataclass(frozen=True)
class ProcessIdentity:
    """A process as the log records it: a pid is only the same process if its create time agrees."""

    pid: int
    create_time: float

    @classmethod
    def of(cls, pid: int) -> ProcessIdentity | None:
        """The identity of the live process `pid` now, or None if there is none."""
        try:
            return cls(pid, psutil.Process(pid).create_time())
        except (psutil.NoSuchProcess, psutil.AccessDenied, ValueError):
            return None

    def matches(self) -> bool:
        """True only if `pid` is alive (not a zombie) and is the process that was recorded."""
        try:
            proc = psutil.Process(self.pid)
            if not self._same_time(proc.create_time()):
                return False
            return proc.status() != psutil.STATUS_ZOMBIE
        except (psutil.NoSuchProcess, psutil.AccessDenied, ValueError):
            return False

    def reused(self) -> bool:
        """True if `pid` now belongs to a different process (a zombie counts): never signal it."""
        try:
            return not self._same_time(psutil.Process(self.pid).create_time())
        except (psutil.NoSuchProcess, ValueError):
            return False
        except psutil.AccessDenied:
            return True  # cannot prove it is ours, so treat it as someone else's

    def _same_time(self, create_time: float) -> bool:
        return abs(create_time - self.create_time) <= CREATE_TIME_TOLERANCE_S


def create_time_of(pid: int, *, fallback: float) -> float:
    """psutil's create time of our own unreaped child, read from /proc/<pid>/stat directly (a
    quarter of the cost of a psutil.Process): start ticks / clock rate + boot time, as psutil does."""
    try:
        fd = os.open(f"/proc/{pid}/stat", os.O_RDONLY | os.O_CLOEXEC)
        try:
            stat = os.read(fd, 4096)
        finally:
            os.close(fd)
        start_ticks = int(stat[stat.rfind(b")") + 2 :].split()[19])
    except (OSError, ValueError, IndexError):
        # Not readable (a hardened /proc): the spawn time is within a few ms of the real create
        # time; a process that later reuses the pid starts long after, so it can never match.
        logger.debug("spawn.create_time_unavailable pid=%s", pid)
        return fallback
    return start_ticks / _CLOCK_TICKS + _boot_time()


_boot: tuple[float, float] = (-1e9, 0.0)  # (monotonic time read, boot time)


def _boot_time() -> float:
    """psutil.boot_time(), re-read at most every BOOT_TIME_TTL_S: it reads all of /proc/stat
    (~40 µs), and it only moves when the wall clock is set."""
    global _boot
    now = time.monotonic()
    if now - _boot[0] > BOOT_TIME_TTL_S:
        _boot = (now, psutil.boot_time())
    return _boot[1]
