"""OutputTail over real files: what a child appends to stdout.log becomes events, progress coalesced.

The clock is injected, so coalescing is tested without sleeping.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from taskhub.events.types import Artifact, Progress, Result
from taskhub.runtime.output_parser import PROGRESS_INTERVAL_S
from taskhub.runtime.output_tail import READ_CHUNK, OutputTail
from taskhub.runtime.run_files import CAP_MARKER, LogCap


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def line(payload: dict[str, object]) -> bytes:
    return b"::taskhub:: " + json.dumps(payload).encode() + b"\n"


def progress(pct: float, message: str | None = None) -> bytes:
    return line({"type": "progress", "pct": pct, "message": message})


def append(path: Path, data: bytes) -> None:
    """Appended the way the child writes: O_APPEND on its own descriptor."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


@pytest.fixture
def log(tmp_path: Path) -> Path:
    path = tmp_path / "stdout.log"
    path.write_bytes(b"")
    return path


def test_structured_lines_become_events_with_the_fence(log: Path) -> None:
    tail = OutputTail(log, fence=7, clock=FakeClock())
    append(log, b"plain\n" + line({"type": "artifact", "name": "a.txt", "description": "d"}) + b"more plain\n")
    append(log, line({"type": "result", "value": {"n": 1}}) + progress(50, "half"))

    assert tail.poll() == [
        Artifact(fence=7, name="a.txt", description="d"),
        Result(fence=7, value={"n": 1}),
        Progress(fence=7, pct=50.0, message="half"),
    ]
    assert tail.poll() == []  # nothing new


def test_other_lines_make_no_event(log: Path) -> None:
    tail = OutputTail(log, fence=1, clock=FakeClock())
    append(
        log,
        b"::taskhub:: {not json\n"
        b'::taskhub:: {"type": "nope"}\n'
        b'::taskhub:: ["a list"]\n'
        b'  ::taskhub:: {"type": "result", "value": 1}\n'  # not at the start of the line
        b'::taskhub:: {"type": "artifact", "name": "../escape"}\n',
    )
    assert tail.poll(final=True) == []


def test_existing_output_is_skipped_unless_asked(log: Path) -> None:
    """A retried run's log already holds the earlier attempt's lines: they are not reported again."""
    append(log, line({"type": "result", "value": "old"}) + b"=== taskhub: attempt 2 ===\n")
    assert OutputTail(log, fence=2, clock=FakeClock()).poll(final=True) == []
    assert OutputTail(log, fence=2, clock=FakeClock(), start=0).poll() == [Result(fence=2, value="old")]


def test_a_line_written_in_pieces_is_read_once_whole(log: Path) -> None:
    tail = OutputTail(log, fence=1, clock=FakeClock())
    whole = line({"type": "result", "value": "x" * 100})
    append(log, whole[:5])
    assert tail.poll() == []
    append(log, whole[5:60])
    assert tail.poll() == []
    append(log, whole[60:])
    assert tail.poll() == [Result(fence=1, value="x" * 100)]


def test_final_takes_an_unterminated_last_line(log: Path) -> None:
    tail = OutputTail(log, fence=1, clock=FakeClock())
    append(log, line({"type": "result", "value": 1}).rstrip(b"\n"))
    assert tail.poll() == []
    assert tail.poll(final=True) == [Result(fence=1, value=1)]


def test_crlf_lines_parse(log: Path) -> None:
    tail = OutputTail(log, fence=1, clock=FakeClock())
    append(log, line({"type": "result", "value": 2}).replace(b"\n", b"\r\n"))
    assert tail.poll() == [Result(fence=1, value=2)]


def test_progress_is_coalesced_and_the_latest_value_kept(log: Path) -> None:
    clock = FakeClock()
    tail = OutputTail(log, fence=3, clock=clock)
    append(log, b"".join(progress(p) for p in range(1, 1001)))

    events = tail.poll()
    assert events == [Progress(fence=3, pct=1.0)]  # the first at once, the rest held back
    assert tail.due_in() == pytest.approx(PROGRESS_INTERVAL_S)

    clock.now += PROGRESS_INTERVAL_S / 2
    assert tail.poll() == []  # still inside the interval
    clock.now += PROGRESS_INTERVAL_S
    assert tail.due_in() == 0.0
    assert tail.poll() == [Progress(fence=3, pct=100.0)]  # the latest, not the second
    assert tail.due_in() is None
    assert tail.poll() == []


def test_final_flushes_pending_progress_at_once(log: Path) -> None:
    tail = OutputTail(log, fence=3, clock=FakeClock())
    append(log, progress(10) + progress(20) + progress(99.5, "almost"))
    assert tail.poll() == [Progress(fence=3, pct=10.0)]
    assert tail.poll(final=True) == [Progress(fence=3, pct=99.5, message="almost")]


def test_other_events_are_not_held_back_by_coalescing(log: Path) -> None:
    tail = OutputTail(log, fence=1, clock=FakeClock())
    append(log, progress(1) + progress(2) + line({"type": "artifact", "name": "f"}) + progress(3))
    assert tail.poll() == [Progress(fence=1, pct=1.0), Artifact(fence=1, name="f")]
    assert tail.poll(final=True) == [Progress(fence=1, pct=3.0)]


def test_a_missing_file_is_nothing_yet(tmp_path: Path) -> None:
    path = tmp_path / "later.log"
    tail = OutputTail(path, fence=1, clock=FakeClock())
    assert tail.poll() == [] and tail.poll(final=True) == []
    append(path, line({"type": "result", "value": "late"}))  # created after the tail
    assert tail.poll() == [Result(fence=1, value="late")]


def test_many_megabytes_of_plain_output_with_a_line_across_the_read_chunk(log: Path) -> None:
    tail = OutputTail(log, fence=1, clock=FakeClock())
    target = line({"type": "result", "value": "across"})
    filler = b"y" * 99 + b"\n"
    before = filler * (READ_CHUNK // len(filler)) + b"z" * (READ_CHUNK % len(filler) - 10) + b"\n"
    assert len(before) == READ_CHUNK - 9  # so the structured line straddles the chunk boundary
    append(log, before + target + filler * 30_000)
    assert tail.poll() == [Result(fence=1, value="across")]


def test_after_the_log_cap_cuts_the_file_new_lines_are_still_read(log: Path) -> None:
    tail = OutputTail(log, fence=1, clock=FakeClock())
    append(log, b"x" * 5000 + b"\n")
    assert tail.poll() == []
    assert LogCap(log, 1000).enforce() is True  # the file shrank under the tail
    append(log, line({"type": "result", "value": "after the cut"}))
    assert tail.poll() == [Result(fence=1, value="after the cut")]


def test_after_a_cut_more_output_than_the_tail_reads_at_once_is_still_read(log: Path) -> None:
    """A chatty task can write many MiB between two polls: the resume point must not depend on it."""
    tail = OutputTail(log, fence=1, clock=FakeClock())
    append(log, b"x" * 9_999_999 + b"\n")
    assert tail.poll() == []
    assert LogCap(log, 1000).enforce() is True
    append(log, line({"type": "result", "value": "first"}) + b"z" * (6 << 20) + b"\n")
    append(log, line({"type": "result", "value": "last"}))
    assert tail.poll() == [Result(fence=1, value="first"), Result(fence=1, value="last")]


def test_after_a_cut_the_file_may_grow_past_where_the_tail_was(log: Path) -> None:
    """Cut, then the task writes more than was cut before the next poll: the file never looked smaller."""
    tail = OutputTail(log, fence=1, clock=FakeClock())
    append(log, b"x" * 99_999 + b"\n")
    assert tail.poll() == []
    assert LogCap(log, 1000).enforce() is True
    append(log, line({"type": "result", "value": "right after the cut"}) + b"w" * 200_000 + b"\n")
    assert tail.poll() == [Result(fence=1, value="right after the cut")]


def test_the_tail_knows_the_size_it_read_up_to(tmp_path: Path) -> None:
    """The log cap takes the size from the tail rather than a stat of its own."""
    path = tmp_path / "stdout.log"
    tail = OutputTail(path, fence=1, clock=FakeClock(), start=0)
    assert tail.poll() == [] and tail.size == 0  # not there yet
    path.write_bytes(b"")
    assert tail.poll() == [] and tail.size == 0  # empty: nothing opened
    append(path, b"x" * 150)
    tail.poll()
    assert tail.size == 150
    cap = LogCap(path, 100)
    assert cap.enforce(tail.size)  # cut on the size given
    assert path.read_bytes() == b"x" * 100 + CAP_MARKER % 100


def test_a_write_that_lands_during_the_cut_is_still_read(log: Path) -> None:
    """The child's write that waited on the truncate lands at the cap, before the marker (which is
    appended, not written at the cap over it): told where the cut was, the tail reads it."""
    tail = OutputTail(log, fence=1, clock=FakeClock())
    append(log, b"x" * 5000 + b"\n")
    assert tail.poll() == []
    os.truncate(log, 1000)  # what LogCap.enforce does, with the child's last line in between
    append(log, line({"type": "result", "value": "during the cut"}))
    append(log, CAP_MARKER % 1000)
    tail.cut_at(1000)
    assert tail.poll(final=True) == [Result(fence=1, value="during the cut")]


def test_the_cap_appends_its_marker_and_the_catch_up_reads_what_came_meanwhile(log: Path) -> None:
    tail = OutputTail(log, fence=1, clock=FakeClock())
    append(log, b"x" * 5000 + b"\n")
    assert tail.poll() == []
    append(log, line({"type": "result", "value": "after the read"}))  # before the cut, unread
    caught: list[Result] = []

    def catch_up() -> int:
        caught.extend(e for e in tail.poll() if isinstance(e, Result))
        return tail.size

    assert LogCap(log, 1000).enforce(tail.size, catch_up) is True
    assert caught == [Result(fence=1, value="after the read")]
    assert log.read_bytes() == b"x" * 1000 + CAP_MARKER % 1000
