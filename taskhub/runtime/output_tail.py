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
from taskhub.runtime.run_files import CUT_MARKER_HEAD

READ_CHUNK = 1 << 20
CUT_WINDOW = 4 << 20  # how far back from the end to look for the cut marker after a cut


class OutputTail:
    """Reads what the child appended since the last call; returns the events it carries."""

    def __init__(self, path: Path, fence: int, clock: Callable[[], float], start: int | None = None) -> None:
        self.path = path
        self.fence = fence
        self.clock = clock
        self.offset = start if start is not None else _size(path)
        self.splitter = LineSplitter(prefix=PREFIX)
        self.coalescer = ProgressCoalescer()

    def poll(self, final: bool = False) -> list[Event]:
        """New events from the file; `final` also takes an unterminated last line and pending progress."""
        events: list[Event] = []
        lines: list[bytes] = []
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            fd = -1
        if fd >= 0:
            try:
                size = os.fstat(fd).st_size
                if size < self.offset:  # the log cap cut the file under us: go on after its marker
                    self.offset = _after_cut(fd, size)
                    self.splitter = LineSplitter(prefix=PREFIX)
                while self.offset < size:
                    chunk = os.pread(fd, min(READ_CHUNK, size - self.offset), self.offset)
                    if not chunk:
                        break
                    self.offset += len(chunk)
                    lines += self.splitter.feed(chunk)
            finally:
                os.close(fd)
        if final:
            lines += self.splitter.flush()
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


def _after_cut(fd: int, size: int) -> int:
    """Where the output written since the last cut begins: just after the newest cut marker."""
    start = max(0, size - CUT_WINDOW)
    window = os.pread(fd, size - start, start)
    found = window.rfind(CUT_MARKER_HEAD)
    if found < 0:
        return size
    end = window.find(b"\n", found)
    return start + (end + 1 if end >= 0 else len(window))


def _size(path: Path) -> int:
    try:
        return os.stat(path).st_size
    except FileNotFoundError:
        return 0
