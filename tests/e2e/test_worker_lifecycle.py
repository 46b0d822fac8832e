"""Workers started, stopped and outnumbered: each test gets its own home and its own workers.

max_concurrency across several workers, graceful shutdown (drain, then stop what is left), the log
size cap, and two homes on one machine not touching each other's runs.
"""

from __future__ import annotations

import itertools
import signal
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest

from taskhub.runtime.run_files import CAP_MARKER
from tests.e2e.worker_fixtures import Hub, load_script, make_home, overlap_max, pids_from
from tests.helpers.processes import is_alive
from tests.helpers.waiting import wait_until


@pytest.fixture
def home_hub(tmp_path: Path) -> Iterator[Hub]:
    hub = Hub(make_home(tmp_path / "home"))
    yield hub
    hub.close()


def test_max_concurrency_holds_across_three_workers(home_hub: Hub) -> None:
    hub = home_hub
    run_ids = hub.submit_many("limited", [{"seconds": 0.3}] * 12)
    workers = [hub.start_worker(concurrency=2, worker_id=f"w-{i}") for i in range(3)]
    for worker in workers:
        worker.wait_ready()

    views = [hub.wait_done(run_id, timeout=30) for run_id in run_ids]

    assert [v.status for v in views] == ["succeeded"] * 12
    events = [e for e in hub.events() if e.run_id in set(run_ids)]
    # Walking the log in commit order: claims minus ends never exceed the task's limit of 2...
    assert overlap_max(events) == 2
    # ...and every run was claimed once and ended once.
    assert sum(e.type == "claimed" for e in events) == sum(e.type == "exited" for e in events) == 12
    assert {v.worker_id for v in views} <= {"w-0", "w-1", "w-2"}


def test_sigterm_lets_a_running_run_finish(home_hub: Hub) -> None:
    hub = home_hub
    worker = hub.start_worker(concurrency=1)
    worker.wait_ready()
    run_id = hub.submit("sleep", {"seconds": 2})
    hub.wait_status(run_id, ["running"], timeout=10)

    worker.signal(signal.SIGTERM)
    later = hub.submit("noop")  # submitted after SIGTERM: a stopping worker claims nothing new

    assert worker.wait(timeout=15) == 0, worker.output()
    view = hub.run(run_id)
    assert view.status == "succeeded", hub.describe(run_id)
    assert hub.run(later).status == "queued"
    stopped = [e for e in hub.events(types=["worker_stopped"]) if e.worker_id == worker.worker_id]
    assert len(stopped) == 1
    assert stopped[0].seq > hub.events(run_id, ["exited"])[0].seq


def test_drain_timeout_stops_the_run_as_worker_gone(home_hub: Hub, tmp_path: Path) -> None:
    hub = home_hub
    worker = hub.start_worker(concurrency=1, TASKHUB_DRAIN_S="0.5")
    worker.wait_ready()
    pids_file = tmp_path / "pids"
    run_id = hub.submit("tree", {"pids_file": str(pids_file)})  # runs until killed
    wait_until(lambda: "grandchild" in pids_from(pids_file), timeout=10, message="the tree to be in place")

    worker.signal(signal.SIGTERM)

    assert worker.wait(timeout=15) == 0, worker.output()
    view = hub.run(run_id)
    assert (view.status, view.failure_reason) == ("failed", "worker_gone"), hub.describe(run_id)
    assert hub.types(run_id)[-1] == "exited"
    assert not any(is_alive(pid) for pid in pids_from(pids_file).values())
    assert not hub.run_processes(run_id)
    assert [e.worker_id for e in hub.events(types=["worker_stopped"])] == [worker.worker_id]


def test_log_cap_cuts_the_file_and_says_so(home_hub: Hub) -> None:
    hub = home_hub
    cap = 100_000
    worker = hub.start_worker(concurrency=1, TASKHUB_LOG_CAP_BYTES=str(cap))
    worker.wait_ready()
    # The result comes a moment after the flood: one written in the instant of a cut can still be
    # cut unread (the window between the cap's last stat and its truncate; see LogCap.enforce).
    run_id = hub.submit("big_output", {"mib": 40, "result": True, "result_after_s": 0.3})
    stdout = hub.run_dir(run_id) / "stdout.log"

    sizes: list[int] = []

    def finished() -> bool:
        if stdout.exists():
            sizes.append(stdout.stat().st_size)
        return hub.run(run_id).status in ("succeeded", "failed")

    wait_until(finished, timeout=60, message=f"{run_id} to finish")

    view = hub.run(run_id)
    assert view.status == "succeeded", hub.describe(run_id)
    marker = CAP_MARKER % cap
    data = stdout.read_bytes()
    assert data.endswith(marker)
    assert len(data) == cap + len(marker)
    assert data[:cap] == load_script("big_output").content(40)[:cap]  # the task's own first bytes
    # While it wrote 40 MiB, the file was cut back again and again (every 50 ms while it overflows:
    # ~5 MiB at 100 MB/s), never growing to even half of that.
    assert max(sizes) < 20 * 1024 * 1024, max(sizes)
    assert sum(1 for a, b in itertools.pairwise(sizes) if b < a) >= 2, "not cut again and again"
    # The log is cut, but what the task says on stdout past the cap still counts: its result.
    assert view.result == "done", hub.types(run_id)


def test_homes_do_not_touch_each_others_runs(tmp_path: Path) -> None:
    """Run ids are `r-<seq>`, unique per database only: each home here has its own `r-1`.

    Home one's r-1 is a process tree that runs until killed. Home two's r-1 ends normally, and
    home three's r-1 is cancelled: neither may touch home one's processes.
    """
    one, two, three = (Hub(make_home(tmp_path / name), first_seq=1) for name in ("one", "two", "three"))
    try:
        pids_one, pids_three = tmp_path / "pids-one", tmp_path / "pids-three"
        run_one = one.submit("tree", {"pids_file": str(pids_one)})
        run_two = two.submit("hello_world", {"target": "neighbour"})
        run_three = three.submit("tree", {"pids_file": str(pids_three)})
        assert run_one == run_two == run_three
        one.start_worker(concurrency=1).wait_ready()
        wait_until(lambda: "grandchild" in pids_from(pids_one), timeout=10, message="home one's tree")

        def one_alive() -> dict[str, bool]:
            return {role: is_alive(pid) for role, pid in pids_from(pids_one).items()}

        everyone = {"parent": True, "child": True, "grandchild": True}
        two.start_worker(concurrency=1).wait_ready()
        assert two.wait_done(run_two).status == "succeeded", two.describe(run_two)
        assert one_alive() == everyone, "a run ending in one home killed the run with the same id in another"

        three.start_worker(concurrency=1).wait_ready()
        wait_until(lambda: "grandchild" in pids_from(pids_three), timeout=10, message="home three's tree")
        three.cancel(run_three)
        assert three.wait_done(run_three).status == "cancelled", three.describe(run_three)
        assert one_alive() == everyone, "cancelling a run in one home killed the run with the same id in another"
        assert one.run(run_one).status == "running", one.describe(run_one)
    finally:
        for hub in (one, two, three):
            hub.close()


def test_idle_workers_answer_a_submitted_run_with_one_claim_between_them(home_hub: Hub) -> None:
    """Of the idle workers a commit wakes, only the one holding the claim turn (ClaimTurn) claims;
    each of the others used to try a claim transaction too, which all but one found empty."""
    hub = home_hub
    workers = [hub.start_worker(concurrency=1, worker_id=f"w-{i}") for i in range(3)]
    for worker in workers:
        worker.wait_ready()
    lock = hub.home / "data" / "taskhub.db-lock"

    def write_transactions() -> int:  # the write gate draws one ticket per write transaction
        return int(struct.unpack_from("Q", lock.read_bytes(), 8)[0])

    runs = 15
    before = write_transactions()
    for _ in range(runs):
        hub.wait_done(hub.submit("noop"), timeout=30)
    spent = write_transactions() - before
    # Per run: the submit, one claim, one end; a follower's once-a-second poll may add a few.
    assert spent <= 3 * runs + 6, spent
