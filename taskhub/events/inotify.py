"""A minimal Linux inotify watch on one directory, read by the event loop itself (no thread, no polling).

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
import struct
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

IN_MODIFY = 0x002
IN_CLOSE_WRITE = 0x008
IN_MOVED_TO = 0x080
IN_CREATE = 0x100
IN_Q_OVERFLOW = 0x4000  # the kernel's queue filled up (a long pause): events were dropped
IN_NONBLOCK = os.O_NONBLOCK
IN_CLOEXEC = os.O_CLOEXEC
_HEADER = struct.Struct("iIII")  # wd, mask, cookie, len; then `len` bytes of NUL-padded name


class DirectoryWatch:
    """Calls `on_change()` on the loop whenever a file in `directory` whose name starts with
    `prefix` is written, created or renamed into place."""

    def __init__(self, directory: Path, prefix: str, on_change: Callable[[], None]) -> None:
        self.directory = directory
        self.prefix = prefix.encode()
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
        mask = IN_MODIFY | IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE
        if libc.inotify_add_watch(fd, os.fsencode(self.directory), mask) < 0:
            err = ctypes.get_errno()
            os.close(fd)
            raise OSError(err, f"inotify_add_watch {self.directory} failed")
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
            offset = 0
            while offset + _HEADER.size <= len(buf):
                _wd, mask, _cookie, length = _HEADER.unpack_from(buf, offset)
                name = buf[offset + _HEADER.size : offset + _HEADER.size + length]
                offset += _HEADER.size + length
                if name.startswith(self.prefix) or mask & IN_Q_OVERFLOW:
                    changed = True
        if changed:
            self.on_change()
