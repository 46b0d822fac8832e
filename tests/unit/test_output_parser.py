"""Structured output: parsing `::taskhub::` lines, splitting byte chunks, coalescing progress."""

from __future__ import annotations

import io
import json
from contextlib import redirect_stdout
from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st

from taskhub import sdk
from taskhub.runtime.output_parser import (
    PREFIX,
    ArtifactOut,
    LineSplitter,
    ProgressCoalescer,
    ProgressOut,
    ResultOut,
    is_safe_artifact_name,
    parse_line,
)


def line(obj: object) -> bytes:
    return b"::taskhub:: " + json.dumps(obj).encode()


def test_progress_keeps_pct_message_and_other_fields() -> None:
    got = parse_line(line({"type": "progress", "pct": 42, "message": "half", "eta_s": 3}))
    assert got == ProgressOut(pct=42.0, message="half", extra={"eta_s": 3})
    assert parse_line(line({"type": "progress"})) == ProgressOut(pct=None, message=None, extra={})


@pytest.mark.parametrize(("pct", "expected"), [(-5, 0.0), (100.5, 100.0), (0, 0.0), (99.9, 99.9)])
def test_progress_pct_is_clamped_to_0_100(pct: float, expected: float) -> None:
    got = parse_line(line({"type": "progress", "pct": pct}))
    assert isinstance(got, ProgressOut) and got.pct == expected


@pytest.mark.parametrize("pct", ["50", True, [1], {"v": 1}])
def test_progress_pct_that_is_not_a_number_makes_the_line_plain(pct: object) -> None:
    assert parse_line(line({"type": "progress", "pct": pct})) is None


def test_artifact_and_result() -> None:
    assert parse_line(line({"type": "artifact", "name": "r.txt"})) == ArtifactOut("r.txt", None)
    got = parse_line(line({"type": "artifact", "name": "r.txt", "description": "the report"}))
    assert got == ArtifactOut("r.txt", "the report")
    assert parse_line(line({"type": "result", "value": None})) == ResultOut(None)
    assert parse_line(line({"type": "result", "value": {"n": [1, 2]}})) == ResultOut({"n": [1, 2]})


@pytest.mark.parametrize("name", ["", ".", "..", "../x", "a/b", "a\\b", "x\0y", "n" * 256, 5, None])
def test_artifact_names_that_could_leave_the_folder_are_refused(name: object) -> None:
    assert parse_line(line({"type": "artifact", "name": name})) is None
    assert not is_safe_artifact_name(name)


@pytest.mark.parametrize(
    "raw",
    [
        b"hello",
        b"::taskhub::",
        b"::taskhub:: not json",
        b"::taskhub:: [1, 2]",
        b'::taskhub:: {"type": "nope"}',
        b'::taskhub:: {"pct": 5}',
        b'::taskhub:: {"type": "result"}',
        b'::taskhub:: {"type": "progress", "message": 5}',
        b' ::taskhub:: {"type": "result", "value": 1}',
        b'::taskhub:: {"type": "result", "value": 1} trailing',
        b'::taskhub:: {"type": "result", "value": "' + b"x" * 70_000 + b'"}',
    ],
)
def test_malformed_lines_and_unknown_types_stay_plain(raw: bytes) -> None:
    assert parse_line(raw) is None


def test_crlf_and_no_space_after_the_prefix_are_accepted() -> None:
    assert parse_line(b'::taskhub::{"type":"result","value":1}\r') == ResultOut(1)


def test_sdk_lines_parse_back() -> None:
    out = io.StringIO()
    with redirect_stdout(out):
        sdk.progress(10, "ten", stage="a")
        sdk.progress()
        sdk.artifact("a.txt", "first")
        sdk.result({"ok": True, "text": "multi\nline"})
    lines = out.getvalue().encode().splitlines()
    assert [parse_line(x) for x in lines] == [
        ProgressOut(10.0, "ten", {"stage": "a"}),
        ProgressOut(None, None, {}),
        ArtifactOut("a.txt", "first"),
        ResultOut({"ok": True, "text": "multi\nline"}),
    ]
    with pytest.raises(ValueError):
        sdk.progress(type="x")


def test_splitter_handles_partial_lines_and_flush() -> None:
    s = LineSplitter()
    assert s.feed(b"ab") == []
    assert s.feed(b"c\nde\n\nf") == [b"abc", b"de", b""]
    assert s.flush() == [b"f"]
    assert s.flush() == []


def test_splitter_drops_overlong_lines_only() -> None:
    s = LineSplitter(max_line=4)
    assert s.feed(b"1234\n12345") == [b"1234"]
    assert s.feed(b"6789\nok\n") == [b"ok"]
    assert s.feed(b"toolong") == []
    assert s.flush() == []


def test_prefix_mode_returns_only_candidate_lines() -> None:
    s = LineSplitter(prefix=PREFIX)
    assert s.feed(b"plain\n::task") == []
    assert s.feed(b"hub:: {}\n::tasX\n::taskhub::z") == [b"::taskhub:: {}"]
    assert s.flush() == [b"::taskhub::z"]


def reference_lines(stream: bytes, max_line: int, prefix: bytes | None) -> list[bytes]:
    """What a splitter must return for the whole stream at once: complete lines, then a non-empty tail."""
    *lines, tail = stream.split(b"\n")
    if tail:
        lines.append(tail)
    return [x for x in lines if len(x) <= max_line and (prefix is None or x.startswith(prefix))]


# Streams built from pieces that make prefixes, near-prefixes and newlines likely.
pieces = st.sampled_from([b"\n", b"::taskhub::", b"::task", b"hub::", b":", b"x", b"yz", b" {}", b"\r\n"])
streams = st.lists(pieces, max_size=60).map(b"".join)


@given(stream=streams, cuts=st.lists(st.integers(0, 400), max_size=12), prefixed=st.booleans())
def test_any_chunking_yields_the_same_lines(stream: bytes, cuts: list[int], prefixed: bool) -> None:
    prefix = PREFIX if prefixed else None
    max_line = 24
    splitter = LineSplitter(max_line=max_line, prefix=prefix)
    got: list[bytes] = []
    bounds = sorted({0, len(stream), *(c for c in cuts if c < len(stream))})
    for start, end in pairwise(bounds):
        got += splitter.feed(stream[start:end])
    got += splitter.flush()
    assert got == reference_lines(stream, max_line, prefix)


def test_coalescer_emits_first_then_at_most_one_per_interval() -> None:
    c = ProgressCoalescer(interval=0.25)
    p = [ProgressOut(float(i), None, {}) for i in range(5)]
    assert c.offer(p[0], now=0.0) == p[0]
    assert c.offer(p[1], now=0.1) is None
    assert c.offer(p[2], now=0.2) is None
    assert c.due_in(0.2) == pytest.approx(0.05)
    assert c.flush(now=0.2) is None
    assert c.flush(now=0.25) == p[2]
    assert c.flush(now=1.0) is None and c.due_in(1.0) is None
    assert c.offer(p[3], now=0.3) is None
    assert c.flush(now=0.31, force=True) == p[3]


@given(
    gaps=st.lists(st.floats(0, 0.5), min_size=1, max_size=50),
    flush_gap=st.floats(0, 2),
)
def test_coalescer_rate_limit_and_latest_value_always_delivered(gaps: list[float], flush_gap: float) -> None:
    interval = 0.25
    c = ProgressCoalescer(interval=interval)
    emitted: list[tuple[float, ProgressOut]] = []
    now = 0.0
    for i, gap in enumerate(gaps):
        now += gap
        if (due := c.flush(now)) is not None:  # the worker's timer
            emitted.append((now, due))
        if (out := c.offer(ProgressOut(float(i), None, {}), now)) is not None:
            emitted.append((now, out))
    times = [t for t, _ in emitted]
    assert all(b - a >= interval - 1e-9 for a, b in pairwise(times))
    last = ProgressOut(float(len(gaps) - 1), None, {})
    final = c.flush(now + max(flush_gap, interval) + 1e-9)  # the timer delivers it within an interval
    assert (final or emitted[-1][1]) == last
