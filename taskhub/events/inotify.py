"""A minimal Linux inotify watch on one file, read by the event loop itself (no thread, no polling).

watchfiles (the portable fallback) polls its event queue every `step` ms: at the 1-2 ms step a
follower's wake-up latency needs, that alone costs ~2% of a core in every idle process. inotify
costs nothing while nothing changes and wakes the loop at once when something does.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import logging
import os
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

IN_MODIFY = 0x002
IN_NONBLOCK = os.O_NONBLOCK
IN_CLOEXEC = os.O_CLOEXEC


class FileWatch:
    """Calls `on_change()` on the loop whenever `path` is written.

    A watch on the file itself, not on its folder: a folder's watch hears every file in it, and
    the database's folder holds the WAL, written ~20 times by every commit of every process, each
    write waking every follower for nothing. The file must exist, and stay: the write gate's lock
    file is never removed."""

    def __init__(self, path: Path, on_change: Callable[[], None]) -> None:
        self.path = path
        self.on_change = on_change
        self._fd = -1
        self._loop: asyncio.AbstractEventLoop | None = None
        self._paused = False

    def start(self) -> None:
        """Raises OSError when inotify is not available (then use the fallback)."""
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        fd = libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        if fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1 failed")
        if libc.inotify_add_watch(fd, os.fsencode(self.path), IN_MODIFY) < 0:
            err = ctypes.get_errno()
            os.close(fd)
            raise OSError(err, f"inotify_add_watch {self.path} failed")
        self._fd = fd
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(fd, self._readable)

    def pause(self) -> None:
        """Stop reading events; the kernel queues them meanwhile (or notes an overflow)."""
        if self._fd >= 0 and self._loop is not None and not self._paused:
            self._loop.remove_reader(self._fd)
            self._paused = True

    def resume(self) -> None:
        """Read again, starting with whatever came while paused."""
        if self._fd >= 0 and self._loop is not None and self._paused:
            self._paused = False
            self._loop.add_reader(self._fd, self._readable)
            self._readable()

    def stop(self) -> None:
        if self._fd >= 0:
            if self._loop is not None and not self._loop.is_closed() and not self._paused:
                self._loop.remove_reader(self._fd)
            os.close(self._fd)
            self._fd = -1

    def _readable(self) -> None:
        changed = False
        while True:
            try:
                buf = os.read(self._fd, 65536)
            except BlockingIOError:
                break
            except OSError as exc:
                log.warning("inotify.read_failed error=%s", exc)
                break
            if not buf:
                break
            changed = True  # every event is about our file (or an overflow, which may have been)
        if changed:
            self.on_change()
