"""Run folders made ahead of the claim, on a real file system, by the real thread."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from taskhub.runtime.folders_ahead import FoldersAhead
from tests.helpers.waiting import wait_until


@pytest.fixture
def ahead(tmp_path: Path) -> Iterator[FoldersAhead]:
    (tmp_path / "runs").mkdir()
    folders = FoldersAhead(tmp_path / "runs")
    yield folders
    folders.close()


def test_wanted_folders_are_made_with_empty_logs_and_taken_once(ahead: FoldersAhead) -> None:
    ahead.want(["r-1", "r-2"])
    wait_until(lambda: (ahead.runs_dir / "r-2" / "stderr.log").exists(), timeout=10, message="r-2's folder")
    for run_id in ("r-1", "r-2"):
        run_dir = ahead.runs_dir / run_id
        assert (run_dir / "artifacts").is_dir()
        assert (run_dir / "stdout.log").read_bytes() == b"" and (run_dir / "stderr.log").read_bytes() == b""
    assert wait_until(lambda: ahead.ready("r-1"), timeout=10, message="r-1 ready")
    assert not ahead.ready("r-1")  # once: a retry of the run must write its attempt marker itself
    assert not ahead.ready("r-3")  # never asked for


def test_asking_again_does_not_redo_or_unmake_anything(ahead: FoldersAhead) -> None:
    ahead.want(["r-1"])
    wait_until(lambda: ahead.ready("r-1"), timeout=10, message="r-1 ready")
    (ahead.runs_dir / "r-1" / "stdout.log").write_bytes(b"output of the run\n")
    ahead.want(["r-1", "r-2"])
    wait_until(lambda: ahead.ready("r-2"), timeout=10, message="r-2 ready")
    assert (ahead.runs_dir / "r-1" / "stdout.log").read_bytes() == b"output of the run\n"
    assert not ahead.ready("r-1")


def test_a_folder_that_cannot_be_made_is_not_ready(ahead: FoldersAhead) -> None:
    (ahead.runs_dir / "r-1").write_text("a file where the folder should be")
    ahead.want(["r-1", "r-2"])
    wait_until(lambda: ahead.ready("r-2"), timeout=10, message="r-2 ready")  # the thread went on
    assert not ahead.ready("r-1")  # the supervisor makes it (and reports the error) itself


def test_a_folder_another_worker_made_is_left_to_it(ahead: FoldersAhead) -> None:
    (ahead.runs_dir / "r-1").mkdir()  # another worker's thread got there first
    ahead.want(["r-1", "r-2"])
    wait_until(lambda: ahead.ready("r-2"), timeout=10, message="r-2 ready")
    assert not ahead.ready("r-1")  # so this worker's supervisor completes it if it claims r-1
    assert list((ahead.runs_dir / "r-1").iterdir()) == []
