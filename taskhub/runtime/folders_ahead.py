"""Run folders made ahead of the claim, in a thread of their own.

Creating a run's folders and log files (four inodes) is the slowest part of starting it: ~40 µs an
inode normally, and ten times that on an ext4 without a journal after many files were deleted (the
kernel skips recently freed inodes one by one). The worker asks for the folders of the runs at the
head of the queue while its current runs are busy; by the time it claims one, its folder is usually
there, and the event loop only opens two existing files. A folder made for a run that another
worker claims is not wasted: that worker finds it in place. A run cancelled while queued keeps an
empty folder.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Iterable
from pathlib import Path

from taskhub.runtime.run_files import ensure_logs, prepare_run_dir

log = logging.getLogger(__name__)

REMEMBERED = 4096  # run ids asked for, kept so a run at the head is not asked for on every look


class FoldersAhead:
    """Call `want()` from the event loop with the next run ids; `ready()` says if one is made."""

    def __init__(self, runs_dir: Path) -> None:
        self.runs_dir = runs_dir
        self._asked: dict[str, None] = {}  # insertion-ordered, trimmed to REMEMBERED
        self._made: set[str] = set()
        self._queue: queue.SimpleQueue[list[str] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._work, name="taskhub-run-folders", daemon=True)
        self._thread.start()

    def want(self, run_ids: Iterable[str]) -> None:
        new = [run_id for run_id in run_ids if run_id not in self._asked]
        if not new:
            return
        for run_id in new:
            self._asked[run_id] = None
        while len(self._asked) > REMEMBERED:
            oldest = next(iter(self._asked))
            del self._asked[oldest]
            self._made.discard(oldest)
        self._queue.put(new)

    def ready(self, run_id: str) -> bool:
        """True (once) if the run's first-attempt folder and empty logs were made ahead."""
        if run_id in self._made:
            self._made.discard(run_id)
            return True
        return False

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=5)

    def _work(self) -> None:
        while (run_ids := self._queue.get()) is not None:
            for run_id in run_ids:
                run_dir = self.runs_dir / run_id
                if run_dir.exists():  # another worker made it first; the supervisor checks it
                    continue
                try:
                    prepare_run_dir(run_dir, 1)
                    ensure_logs(run_dir)
                except OSError as exc:  # the supervisor will try again, and report what fails
                    log.warning("worker.folder_ahead_failed run_id=%s error=%s", run_id, exc)
                    continue
                self._made.add(run_id)
