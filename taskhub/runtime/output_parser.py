"""Structured output from a task's stdout (SPEC section 3): pure parsing, line splitting, coalescing.

The worker tails the run's stdout.log; it feeds chunks to a LineSplitter, parses candidate lines
with parse_line, and passes progress through a ProgressCoalescer so a tight loop cannot flood the log.
Nothing here does I/O or reads a clock.
"""

from __future__ import annotations

import math
from typing import Any, TypeGuard

import msgspec

PREFIX = b"::taskhub::"
MAX_LINE = 64 * 1024  # a structured line longer than this is not parsed
MAX_ARTIFACT_NAME = 255  # a file name, as most file systems allow
PROGRESS_INTERVAL_S = 0.25


class ProgressOut(msgspec.Struct, frozen=True):
    pct: float | None
    message: str | None
    extra: dict[str, Any] = {}


class ArtifactOut(msgspec.Struct, frozen=True):
    name: str
    description: str | None = None


class ResultOut(msgspec.Struct, frozen=True):
    value: Any


StructuredOutput = ProgressOut | ArtifactOut | ResultOut

_decoder = msgspec.json.Decoder()


def parse_line(line: bytes) -> StructuredOutput | None:
    """The structured output a `::taskhub:: {json object}` line carries, or None for any other line."""
    if not line.startswith(PREFIX) or len(line) > MAX_LINE:
        return None
    try:
        obj = _decoder.decode(line[len(PREFIX) :].strip())
    except msgspec.DecodeError:
        return None
    if not isinstance(obj, dict):
        return None
    kind = obj.get("type")
    if kind == "progress":
        return _progress(obj)
    if kind == "artifact":
        return _artifact(obj)
    if kind == "result" and "value" in obj:
        return ResultOut(value=obj["value"])
    return None


def _progress(obj: dict[str, Any]) -> ProgressOut | None:
    pct = obj.get("pct")
    if pct is not None:
        if isinstance(pct, bool) or not isinstance(pct, (int, float)) or not math.isfinite(pct):
            return None
        pct = min(100.0, max(0.0, float(pct)))  # 100.0000001 from float arithmetic is still "done"
    message = obj.get("message")
    if message is not None and not isinstance(message, str):
        return None
    extra = {k: v for k, v in obj.items() if k not in ("type", "pct", "message")}
    return ProgressOut(pct=pct, message=message, extra=extra)


def _artifact(obj: dict[str, Any]) -> ArtifactOut | None:
    name = obj.get("name")
    description = obj.get("description")
    if not is_safe_artifact_name(name) or (description is not None and not isinstance(description, str)):
        return None
    return ArtifactOut(name=name, description=description)


def is_safe_artifact_name(name: object) -> TypeGuard[str]:
    """A plain file name that cannot leave the artifacts folder (the API uses this check too)."""
    return (
        isinstance(name, str)
        and 0 < len(name) <= MAX_ARTIFACT_NAME
        and name not in (".", "..")
        and not any(c in name for c in "/\\\0")
    )


class LineSplitter:
    """Turns byte chunks, cut anywhere, into complete lines (without their b"\\n").

    A line longer than `max_line` is dropped whatever the chunking; the log file keeps its bytes,
    and no structured line is that long. With `prefix`, only lines starting with it are returned
    and other lines are skipped with C-speed searches, so a chatty task costs little.
    """

    def __init__(self, max_line: int = MAX_LINE, prefix: bytes | None = None) -> None:
        self.max_line = max_line
        self.prefix = prefix
        self._buf = bytearray()  # the current partial line
        self._skip = False  # the current line is already known to be dropped

    def feed(self, chunk: bytes) -> list[bytes]:
        out: list[bytes] = []
        pos, end = 0, len(chunk)
        while pos < end:
            if self.prefix and not self._buf and not self._skip:
                pos = self._next_candidate(chunk, pos)
                if pos >= end:
                    break
            nl = chunk.find(b"\n", pos)
            stop = end if nl < 0 else nl
            if not self._skip:
                self._buf += chunk[pos:stop]
                self._check_partial()
            if nl < 0:
                break
            if not self._skip and (not self.prefix or self._buf.startswith(self.prefix)):
                out.append(bytes(self._buf))
            self._buf.clear()
            self._skip = False
            pos = nl + 1
        return out

    def flush(self) -> list[bytes]:
        """The last line if the stream ended without a newline (call once, at the end)."""
        line = bytes(self._buf) if self._buf and not self._skip else None
        if line is not None and self.prefix and not line.startswith(self.prefix):
            line = None  # a tail like b"::task" only looked like it might become the prefix
        self._buf.clear()
        self._skip = False
        return [] if line is None else [line]

    def _check_partial(self) -> None:
        if len(self._buf) > self.max_line:
            self._skip = True
        elif self.prefix:
            n = min(len(self._buf), len(self.prefix))
            self._skip = self._buf[:n] != self.prefix[:n]
        if self._skip:
            self._buf.clear()

    def _next_candidate(self, chunk: bytes, pos: int) -> int:
        """Index of the next line start at or after `pos` that may match the prefix; len(chunk) if none.

        A tail that could still become the prefix is buffered; a line that cannot is skipped.
        """
        assert self.prefix is not None
        rest = len(chunk) - pos
        if chunk.startswith(self.prefix[:rest], pos):
            return pos  # a match, or a tail too short to tell yet
        found = chunk.find(b"\n" + self.prefix, pos)
        if found >= 0:
            return found + 1
        last_nl = chunk.rfind(b"\n", pos)
        if last_nl < 0:
            self._skip = True  # this line started without the prefix; drop up to its newline
            return len(chunk)
        tail = last_nl + 1
        if tail < len(chunk) and not self.prefix.startswith(chunk[tail:]):
            self._skip = True
        else:
            self._buf += chunk[tail:]
        return len(chunk)


class ProgressCoalescer:
    """At most one progress event per `interval` for one run, and the latest value is never lost.

    offer() returns the progress to record now, or keeps it pending; flush(now) returns the pending
    one once the interval has passed (the worker calls it from a timer, see due_in), and
    flush(now, force=True) at the run's end.
    """

    def __init__(self, interval: float = PROGRESS_INTERVAL_S) -> None:
        self.interval = interval
        self._last_emit: float | None = None
        self._pending: ProgressOut | None = None

    def offer(self, progress: ProgressOut, now: float) -> ProgressOut | None:
        if self._last_emit is None or now - self._last_emit >= self.interval:
            self._pending = None
            self._last_emit = now
            return progress
        self._pending = progress
        return None

    def flush(self, now: float, force: bool = False) -> ProgressOut | None:
        pending = self._pending
        if pending is None:
            return None
        if not force and self._last_emit is not None and now - self._last_emit < self.interval:
            return None
        self._pending = None
        self._last_emit = now
        return pending

    def due_in(self, now: float) -> float | None:
        """Seconds until flush(now) would emit the pending progress; None when nothing is pending."""
        if self._pending is None:
            return None
        return 0.0 if self._last_emit is None else max(0.0, self._last_emit + self.interval - now)
