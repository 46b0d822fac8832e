"""A run's folder on a real file system: the attempt marker and the per-stream log cap."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from taskhub.runtime.run_files import CAP_MARKER, LogCap, attempt_marker, ensure_logs, prepare_run_dir


def test_attempt_marker_is_one_line_of_taskhubs_own() -> None:
    assert attempt_marker(2) == b"=== taskhub: attempt 2 ===\n"
    assert attempt_marker(17) == b"=== taskhub: attempt 17 ===\n"
    assert attempt_marker(3).count(b"\n") == 1


def test_first_attempt_creates_the_folders_and_no_marker(tmp_path: Path) -> None:
    run_dir = tmp_path / "runs" / "r-1"
    artifacts = prepare_run_dir(run_dir, 1)
    assert artifacts == run_dir / "artifacts" and artifacts.is_dir()
    assert sorted(p.name for p in run_dir.iterdir()) == ["artifacts"]  # the spawn creates the logs
    assert prepare_run_dir(run_dir, 1) == artifacts  # again: nothing to do, no error


def test_ensure_logs_creates_empty_logs_and_keeps_existing_ones(tmp_path: Path) -> None:
    prepare_run_dir(tmp_path, 1)
    (tmp_path / "stderr.log").write_bytes(b"kept\n")
    ensure_logs(tmp_path)
    assert (tmp_path / "stdout.log").read_bytes() == b""
    assert (tmp_path / "stderr.log").read_bytes() == b"kept\n"


def test_later_attempts_append_their_marker_after_earlier_output(tmp_path: Path) -> None:
    run_dir = tmp_path / "r-1"
    prepare_run_dir(run_dir, 1)
    (run_dir / "stdout.log").write_bytes(b"first try\n")
    (run_dir / "stderr.log").write_bytes(b"oops\n")
    prepare_run_dir(run_dir, 2)
    (run_dir / "stdout.log").open("ab").write(b"second try\n")
    prepare_run_dir(run_dir, 3)

    assert (run_dir / "stdout.log").read_bytes() == (
        b"first try\n" + attempt_marker(2) + b"second try\n" + attempt_marker(3)
    )
    assert (run_dir / "stderr.log").read_bytes() == b"oops\n" + attempt_marker(2) + attempt_marker(3)


def test_a_later_attempt_whose_logs_are_missing_gets_just_the_marker(tmp_path: Path) -> None:
    prepare_run_dir(tmp_path / "r-2", 2)
    for stream in ("stdout", "stderr"):
        assert (tmp_path / "r-2" / f"{stream}.log").read_bytes() == attempt_marker(2)


# -- LogCap ----------------------------------------------------------------------------------------


def marker(cap: int) -> bytes:
    return CAP_MARKER % cap


def test_no_file_and_small_files_are_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "stdout.log"
    cap = LogCap(path, 100)
    assert cap.enforce() is False
    path.write_bytes(b"x" * 100)  # exactly the cap is within it
    assert cap.enforce() is False
    assert path.read_bytes() == b"x" * 100 and cap.cut is False


def test_past_the_cap_the_file_is_cut_and_says_so(tmp_path: Path) -> None:
    path = tmp_path / "stdout.log"
    data = bytes(range(256)) * 4
    path.write_bytes(data)
    cap = LogCap(path, 300)

    assert cap.enforce() is True
    assert path.read_bytes() == data[:300] + marker(300)
    assert b"300 bytes" in marker(300) and marker(300).startswith(b"\n") and marker(300).endswith(b"\n")
    # Nothing new: nothing to do, and the marker is not repeated.
    assert cap.enforce() is False
    assert path.read_bytes() == data[:300] + marker(300)


def test_a_writer_that_keeps_appending_is_cut_back_each_time(tmp_path: Path) -> None:
    """The child holds the file O_APPEND: its writes land after our marker, and are dropped."""
    path = tmp_path / "stdout.log"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, b"a" * 150)
        cap = LogCap(path, 100)
        assert cap.enforce() is True
        os.write(fd, b"b" * 10)  # even one byte past cap + marker is cut
        assert path.stat().st_size == 100 + len(marker(100)) + 10
        assert cap.enforce() is True
        os.write(fd, b"c" * 5000)
        assert cap.enforce() is True
    finally:
        os.close(fd)
    data = path.read_bytes()
    assert data == b"a" * 100 + marker(100)
    assert data.count(b"log cut here") == 1


def test_a_file_that_shrank_is_not_touched(tmp_path: Path) -> None:
    path = tmp_path / "stdout.log"
    path.write_bytes(b"z" * 500)
    cap = LogCap(path, 100)
    assert cap.enforce() is True
    path.write_bytes(b"short")  # replaced by something smaller
    assert cap.enforce() is False
    assert path.read_bytes() == b"short"


@pytest.mark.parametrize("cap_bytes", [1, 4096, 1 << 20])
def test_the_cut_is_exactly_at_the_cap(tmp_path: Path, cap_bytes: int) -> None:
    path = tmp_path / "stdout.log"
    data = os.urandom(cap_bytes + 12345)
    path.write_bytes(data)
    assert LogCap(path, cap_bytes).enforce() is True
    assert path.read_bytes() == data[:cap_bytes] + marker(cap_bytes)


def test_a_size_given_is_trusted_without_a_stat(tmp_path: Path) -> None:
    path = tmp_path / "stdout.log"
    path.write_bytes(b"y" * 50)
    cap = LogCap(path, 10)
    assert not cap.enforce(size=5)  # under the cap by the size given: left alone
    assert path.stat().st_size == 50
    assert cap.enforce(size=50)
    assert path.read_bytes() == b"y" * 10 + CAP_MARKER % 10
