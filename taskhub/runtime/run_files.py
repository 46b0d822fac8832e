"""A run's folder: its log files, the attempt marker, and the per-stream size cap."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

STREAMS = ("stdout", "stderr")
CUT_MARKER_HEAD = b"=== taskhub: log cut here"
CATCH_UP_READS = 3  # reads of what the child appended meanwhile, at most, before a cut
CAP_MARKER = b"\n" + CUT_MARKER_HEAD + b": the run wrote more than the cap of %d bytes ===\n"


def attempt_marker(attempt: int) -> bytes:
    return f"=== taskhub: attempt {attempt} ===\n".encode()


def prepare_run_dir(run_dir: Path, attempt: int) -> Path:
    """Create the run's folders; a later attempt's output follows one marker line.

    The log files themselves are created by the spawn, which opens them anyway: two creates fewer
    per run (each ~0.1 ms of system time here). A run that never spawns gets them from ensure_logs.
    """
    artifacts = run_dir / "artifacts"
    try:
        os.mkdir(run_dir)
    except FileExistsError:
        pass
    except FileNotFoundError:  # the runs folder itself is missing
        run_dir.mkdir(parents=True, exist_ok=True)
    try:
        os.mkdir(artifacts)
    except FileExistsError:
        pass
    if attempt > 1:
        marker = attempt_marker(attempt)
        for stream in STREAMS:
            with open(run_dir / f"{stream}.log", "a+b") as f:
                # The marker gets a line of its own even after an unterminated last line.
                f.seek(0, os.SEEK_END)
                if f.tell() > 0:
                    f.seek(-1, os.SEEK_END)
                    if f.read(1) != b"\n":
                        marker = b"\n" + attempt_marker(attempt)
                f.write(marker)
                marker = attempt_marker(attempt)
    return artifacts


def ensure_logs(run_dir: Path) -> None:
    """Both log files exist, even for a run whose command never started."""
    for stream in STREAMS:
        os.close(os.open(run_dir / f"{stream}.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644))


class LogCap:
    """Keeps one log file at most `cap` bytes: past it, cut the file and say so once.

    The child appends (O_APPEND) to the file itself, so we cannot stop its writes; we truncate back
    to the cap plus our marker each time we look, and what came after is dropped. The marker is
    appended too: a write of the child's that waited on the truncate lands just before it, where
    the tail still reads it (a marker written at the cap would overwrite it: the last line of a
    task that ended right then, its result say, was lost that way).
    """

    def __init__(self, path: Path, cap: int) -> None:
        self.path = path
        self.cap = cap
        self.cut = False

    def over(self, size: int) -> bool:
        """Would a file of this size be cut?"""
        return size > self.cap + (len(CAP_MARKER % self.cap) if self.cut else 0)

    def enforce(self, size: int | None = None, catch_up: Callable[[], int] | None = None) -> bool:
        """True if the file was cut now. `size`: the file's size if just read (no stat then).

        What the child appends after the caller's last read would be cut unread (a result line,
        say): `catch_up()` reads the file to its end again and returns the size it read to. It is
        called, up to CATCH_UP_READS times, while the file is longer than that, right before the
        truncate, so what is at risk is only what lands between a stat and the truncate.
        """
        if not self.over(file_size(self.path) if size is None else size):
            return False
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
        try:
            if catch_up is not None and size is not None:
                for _ in range(CATCH_UP_READS):
                    if os.fstat(fd).st_size <= size:
                        break
                    size = catch_up()
            os.ftruncate(fd, self.cap)
            os.write(fd, CAP_MARKER % self.cap)
        finally:
            os.close(fd)
        self.cut = True
        return True


def file_size(path: Path) -> int:
    """0 for a file that is not there (yet)."""
    try:
        return os.stat(path).st_size
    except FileNotFoundError:
        return 0
