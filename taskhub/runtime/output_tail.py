"""Tail a run's stdout.log and turn its `::taskhub::` lines into events, coalescing progress."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from taskhub.events.types import Artifact, Event, Progress, Result
from taskhub.runtime.output_parser import (
    PREFIX,
    ArtifactOut,
    LineSplitter,
    ProgressCoalescer,
    ProgressOut,
    ResultOut,
    parse_line,
)
from taskhub.runtime.run_files import CUT_MARKER_HEAD, file_size

READ_CHUNK = 1 << 20
SEARCH_CHUNK = 4 << 20
FINGERPRINT = 32  # bytes just before the read position, remembered to notice a cut under us


class OutputTail:
    """Reads what the child appended since the last call; returns the events it carries.

    The log cap may cut the file under us (truncate, then a marker line); the child's later
    writes land after the marker. We notice a cut because the bytes before our position changed
    (or the file got shorter), and go on just after the marker.
    """

    def __init__(self, path: Path, fence: int, clock: Callable[[], float], start: int | None = None) -> None:
        self.path = path
        self.fence = fence
        self.clock = clock
        self.offset = start if start is not None else file_size(path)
        self._seen = b""  # the last FINGERPRINT bytes before `offset`
        self.splitter = LineSplitter(prefix=PREFIX)
        self.coalescer = ProgressCoalescer()
        self.size = 0  # the file's size at the last poll

    def poll(self, final: bool = False) -> list[Event]:
        """New events from the file; `final` also takes an unterminated last line and pending progress."""
        lines: list[bytes] = []
        fd = -1
        # Most short runs write nothing: one stat then, rather than an open, a stat and a close.
        if self.offset > 0 or (size := file_size(self.path)) > 0:
            try:
                fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                size = 0
        if fd >= 0:
            try:
                size = os.fstat(fd).st_size
                if self._was_cut(fd, size):
                    self.offset = _after_cut(fd, min(self.offset, size))
                    self.splitter = LineSplitter(prefix=PREFIX)
                while self.offset < size:
                    chunk = os.pread(fd, min(READ_CHUNK, size - self.offset), self.offset)
                    if not chunk:
                        break
                    self.offset += len(chunk)
                    self._seen = (self._seen + chunk[-FINGERPRINT:])[-FINGERPRINT:]
                    lines += self.splitter.feed(chunk)
            finally:
                os.close(fd)
        self.size = size
        if final:
            lines += self.splitter.flush()
        return self._events(lines, final)

    def cut_at(self, offset: int) -> None:
        """The log cap cut the file at `offset` (the cap) just now: read on from there. What follows
        is all new: a write of the child's that came in during the cut, then the cut marker."""
        self.offset = offset
        self._seen = b""
        self.splitter = LineSplitter(prefix=PREFIX)

    def _was_cut(self, fd: int, size: int) -> bool:
        if size < self.offset:
            return True
        n = len(self._seen)
        return n > 0 and os.pread(fd, n, self.offset - n) != self._seen

    def _events(self, lines: list[bytes], final: bool) -> list[Event]:
        events: list[Event] = []
        now = self.clock()
        for line in lines:
            parsed = parse_line(line)
            if isinstance(parsed, ProgressOut):
                keep = self.coalescer.offer(parsed, now)
                if keep is not None:
                    events.append(self._progress(keep))
            elif isinstance(parsed, ArtifactOut):
                events.append(Artifact(fence=self.fence, name=parsed.name, description=parsed.description))
            elif isinstance(parsed, ResultOut):
                events.append(Result(fence=self.fence, value=parsed.value))
        pending = self.coalescer.flush(now, force=final)
        if pending is not None:
            events.append(self._progress(pending))
        return events

    def due_in(self) -> float | None:
        return self.coalescer.due_in(self.clock())

    def _progress(self, p: ProgressOut) -> Progress:
        return Progress(fence=self.fence, pct=p.pct, message=p.message, extra=p.extra)


def _after_cut(fd: int, before: int) -> int:
    """Just after the newest cut marker at or before `before` (searched backwards); 0 if none."""
    end = before
    while end > 0:
        start = max(0, end - SEARCH_CHUNK)
        window = os.pread(fd, end - start + len(CUT_MARKER_HEAD), start)
        found = window.rfind(CUT_MARKER_HEAD)
        if found >= 0:
            newline = window.find(b"\n", found)
            if newline >= 0:
                return start + newline + 1
            return start + len(window)
        end = start
    return 0
