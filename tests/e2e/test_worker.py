"""One real worker (4 slots) on a real SQLite file, running real tasks; the log says what happened.

Runs are submitted through the log API and results read only from events and projections. Every
wait has a deadline. The worker fixture is shared by the module (starting one costs ~0.5 s); each
test uses its own runs, and a test that leaves the worker dead fails the next check.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from taskhub.events.clock import parse_iso
from taskhub.runtime.run_files import attempt_marker
from tests.e2e.worker_fixtures import Hub, WorkerProcess, load_script, make_home, pids_from
from tests.helpers.processes import is_alive
from tests.helpers.waiting import wait_until


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    home = make_home(tmp_path_factory.mktemp("home"))
    # A broken file from the start: the worker must load everything else regardless.
    (home / "tasks" / "broken_at_start.py").write_text("import taskhub_e2e_no_such_module\n")
    hub = Hub(home)
    hub.start_worker(concurrency=4).wait_ready()
    yield hub
    hub.close()


@pytest.fixture(autouse=True)
def worker(hub: Hub) -> Iterator[WorkerProcess]:
    """The shared worker, checked to be still alive after each test."""
    worker = hub.workers[0]
    yield worker
    assert worker.proc.poll() is None, f"the worker died (rc {worker.proc.returncode}):\n{worker.output()}"


# -- plain runs ----------------------------------------------------------------------------------


def test_success_records_every_step_and_exact_bytes(hub: Hub) -> None:
    run_id = hub.submit("hello_world", {"target": "world", "times": 2})
    view = hub.wait_done(run_id)

    assert view.status == "succeeded", hub.describe(run_id)
    assert hub.types(run_id) == ["submitted", "claimed", "started", "result", "exited"]
    by_type = {e.type: e for e in hub.events(run_id)}
    claimed, started, exited = by_type["claimed"].data, by_type["started"].data, by_type["exited"].data
    assert claimed.attempt == 1 and by_type["claimed"].worker_id == "w-1"  # type: ignore[union-attr]
    assert started.fence == claimed.fence == exited.fence  # type: ignore[union-attr]
    assert started.pid == started.pgid and started.argv[:2] == ["python3", "tasks/scripts/hello.py"]  # type: ignore[union-attr]
    assert (exited.outcome, exited.exit_code, exited.signal) == ("succeeded", 0, None)  # type: ignore[union-attr]
    assert (view.exit_code, view.failure_reason, view.worker_id) == (0, None, "w-1")
    assert view.result == {"target": "world", "greetings": 2}
    result_line = json.dumps({"type": "result", "value": {"target": "world", "greetings": 2}})
    assert hub.log(run_id) == f"Hello, world!\nHello, world!\n::taskhub:: {result_line}\n".encode()
    assert hub.log(run_id, "stderr") == b""


def test_logs_hold_exactly_the_bytes_written(hub: Hub) -> None:
    run_id = hub.submit("emit_bytes")
    assert hub.wait_done(run_id).status == "succeeded", hub.describe(run_id)
    script = load_script("emit_bytes")
    assert hub.log(run_id) == script.STDOUT
    assert hub.log(run_id, "stderr") == script.STDERR


def test_task_sees_the_promised_environment(hub: Hub) -> None:
    run_id = hub.submit("show_env")
    view = hub.wait_done(run_id)
    assert view.status == "succeeded", hub.describe(run_id)
    env = view.result
    run_dir = hub.run_dir(run_id)
    assert env["TASKHUB_RUN_ID"] == run_id
    assert env["TASKHUB_ATTEMPT"] == "1"
    assert Path(env["TASKHUB_RUN_DIR"]) == run_dir
    assert Path(env["TASKHUB_ARTIFACTS_DIR"]).is_dir() and Path(env["TASKHUB_ARTIFACTS_DIR"]).parent == run_dir
    assert env["PYTHONUNBUFFERED"] == "1"
    assert Path(env["cwd"]) == hub.home
    assert env["stdin_is_devnull"] is True
    assert env["extra_fds"] == {}, env["extra_fds"]  # none of the worker's descriptors (posix_spawn keeps them)
    # PATH starts with the directory of the Python that runs TaskHub, so `python3` is that one.
    first = Path(env["PATH"].split(":")[0])
    assert first == Path(env["executable"]).parent


def test_non_zero_exit_fails_with_exit_code(hub: Hub) -> None:
    run_id = hub.submit("fail_task", {"code": 3, "message": "kaboom"})
    view = hub.wait_done(run_id)

    assert (view.status, view.exit_code, view.failure_reason) == ("failed", 3, "exit_code"), hub.describe(run_id)
    exited = hub.events(run_id, ["exited"])[0].data
    assert (exited.outcome, exited.exit_code, exited.signal) == ("failed", 3, None)  # type: ignore[union-attr]
    assert hub.types(run_id) == ["submitted", "claimed", "started", "exited"]  # max_attempts=1: no retry
    assert hub.log(run_id) == b"about to fail\n"
    assert hub.log(run_id, "stderr") == b"kaboom\n"


def test_spawn_error_fails_the_run_and_the_worker_carries_on(hub: Hub) -> None:
    run_id = hub.submit("missing_exe")
    view = hub.wait_done(run_id)

    assert (view.status, view.failure_reason) == ("failed", "spawn_error"), hub.describe(run_id)
    assert view.error and "taskhub-e2e-no-such-executable" in view.error
    assert hub.types(run_id) == ["submitted", "claimed", "exited"]  # nothing started
    exited = hub.events(run_id, ["exited"])[0].data
    assert exited.reason == "spawn_error" and exited.exit_code is None  # type: ignore[union-attr]
    assert b"taskhub-e2e-no-such-executable" in hub.log(run_id, "stderr")

    after = hub.submit("hello_world", {"target": "again"})
    assert hub.wait_done(after).status == "succeeded", hub.describe(after)


# -- stopping runs: timeout, cancel ----------------------------------------------------------------


def test_timeout_kills_the_whole_tree(hub: Hub, tmp_path: Path) -> None:
    pids_file = tmp_path / "pids"
    # Every process ignores SIGTERM: only the SIGKILL after the grace period stops them.
    run_id = hub.submit("tree_timeout", {"pids_file": str(pids_file), "ignore_term": True})
    wait_until(lambda: "grandchild" in pids_from(pids_file), timeout=10, message="the tree to be in place")
    view = hub.wait_done(run_id, timeout=15)

    assert (view.status, view.outcome, view.failure_reason) == ("failed", "timed_out", "timeout"), hub.describe(run_id)
    exited = hub.events(run_id, ["exited"])[0].data
    assert exited.duration_s >= 1.0  # type: ignore[union-attr]
    pids = pids_from(pids_file)
    assert set(pids) == {"parent", "child", "grandchild"}
    assert not any(is_alive(pid) for pid in pids.values()), pids
    assert not hub.run_processes(run_id)


def test_cancel_while_running_kills_grandchildren_too(hub: Hub, tmp_path: Path) -> None:
    pids_file = tmp_path / "pids"
    run_id = hub.submit("tree", {"pids_file": str(pids_file)})
    wait_until(lambda: "grandchild" in pids_from(pids_file), timeout=10, message="the tree to be in place")
    assert hub.run(run_id).status == "running"
    assert len(hub.run_processes(run_id)) == 3

    hub.cancel(run_id, reason="changed my mind")
    view = hub.wait_done(run_id, timeout=10)

    assert view.status == "cancelled", hub.describe(run_id)
    assert hub.types(run_id) == ["submitted", "claimed", "started", "cancel_requested", "exited"]
    assert hub.events(run_id, ["exited"])[0].data.outcome == "cancelled"  # type: ignore[union-attr]
    assert not any(is_alive(pid) for pid in pids_from(pids_file).values())
    assert not hub.run_processes(run_id)


# -- retries ---------------------------------------------------------------------------------------


def test_retry_then_success(hub: Hub) -> None:
    run_id = hub.submit("flaky", {"fail_attempts": 1})
    view = hub.wait_status(run_id, ["succeeded", "failed", "cancelled"], timeout=15)
    assert (view.status, view.attempt, view.max_attempts) == ("succeeded", 2, 3), hub.describe(run_id)

    assert hub.types(run_id) == [
        "submitted",
        "claimed",
        "started",
        "exited",
        "retry_scheduled",
        "claimed",
        "started",
        "exited",
    ]
    first_exit = hub.events(run_id, ["exited"])[0]
    retry = hub.events(run_id, ["retry_scheduled"])[0]
    second_claim = hub.events(run_id, ["claimed"])[1]
    assert retry.data.next_attempt == 2  # type: ignore[union-attr]
    not_before = parse_iso(retry.data.not_before)  # type: ignore[union-attr]
    assert not_before >= parse_iso(first_exit.ts) + 0.99  # backoff of at least a second
    assert parse_iso(second_claim.ts) >= not_before - 0.01  # and the second claim waited for it
    assert second_claim.data.attempt == 2  # type: ignore[union-attr]

    marker = attempt_marker(2)
    assert marker == b"=== taskhub: attempt 2 ===\n"
    assert hub.log(run_id) == b"attempt 1 failing\n" + marker + b"attempt 2 ok\n"
    assert hub.log(run_id, "stderr") == b"attempt 1 error\n" + marker


# -- structured output -----------------------------------------------------------------------------


def test_progress_artifact_and_result(hub: Hub) -> None:
    run_id = hub.submit("long_task", {"steps": 4, "delay": 0.05})
    view = hub.wait_done(run_id)

    assert view.status == "succeeded", hub.describe(run_id)
    progress = [e.data for e in hub.events(run_id, ["progress"])]
    assert progress and progress[-1].pct == 100.0 and progress[-1].message == "step 4/4"  # type: ignore[union-attr]
    assert view.progress is not None and view.progress.pct == 100.0
    assert [a.name for a in view.artifacts] == ["report.txt"]
    assert (hub.run_dir(run_id) / "artifacts" / "report.txt").read_text().startswith("steps: 4\n")
    assert view.result["steps"] == 4
    assert hub.log(run_id).count(b"::taskhub::") == 4 + 2  # structured lines stay in the log


def test_progress_flood_is_coalesced(hub: Hub) -> None:
    run_id = hub.submit("progress_flood", {"count": 10_000})
    view = hub.wait_done(run_id)

    assert view.status == "succeeded", hub.describe(run_id)
    progress = [e.data for e in hub.events(run_id, ["progress"])]
    assert 1 <= len(progress) <= 6, [p.pct for p in progress]  # type: ignore[union-attr]
    assert progress[-1].pct == 100.0 and progress[-1].message == "10000/10000"  # type: ignore[union-attr]
    assert view.progress is not None and view.progress.pct == 100.0
    assert hub.log(run_id).count(b"\n") == 10_000


def test_sdk_from_a_script(hub: Hub) -> None:
    run_id = hub.submit("sdk_task")
    view = hub.wait_done(run_id)

    assert view.status == "succeeded", hub.describe(run_id)
    progress = [(e.data.pct, e.data.message, e.data.extra) for e in hub.events(run_id, ["progress"])]  # type: ignore[union-attr]
    assert progress[0] == (10.0, "starting", {"stage": "warmup"})
    assert progress[-1] == (100.0, "done", {"stage": "final"})
    assert [(a.name, a.description) for a in view.artifacts] == [("out.txt", "the output")]
    assert (hub.run_dir(run_id) / "artifacts" / "out.txt").read_text() == "made by sdk_task\n"
    assert view.result == {"ok": True, "items": [1, 2, 3]}
    # Malformed and unknown structured lines are plain log lines and make no event.
    expected = ["artifact", "claimed", "exited", "progress", "result", "started", "submitted"]
    assert sorted(set(hub.types(run_id))) == expected
    log = hub.log(run_id)
    assert b"::taskhub:: {not json\n" in log and b'::taskhub:: {"type": "no_such_type"}\n' in log


# -- a chatty task ---------------------------------------------------------------------------------


def test_fifty_megabytes_all_logged_and_worker_stays_responsive(hub: Hub) -> None:
    big = hub.submit("big_output", {"mib": 50})
    stdout = hub.run_dir(big) / "stdout.log"
    wait_until(lambda: stdout.exists() and stdout.stat().st_size > 0, timeout=10, message="big_output to start writing")

    # While it writes, a short run on another slot goes through promptly.
    submitted = time.monotonic()
    short = hub.submit("hello_world", {"target": "meanwhile"})
    assert hub.wait_done(short, timeout=5).status == "succeeded", hub.describe(short)
    short_latency = time.monotonic() - submitted
    assert hub.run(big).status == "running", "the big run ended before the short one: no overlap was tested"
    assert short_latency < 2.0

    view = hub.wait_done(big, timeout=60)
    assert view.status == "succeeded", hub.describe(big)
    data = hub.log(big)
    assert len(data) == 50 * 1024 * 1024
    assert data == load_script("big_output").content(50)


# -- fencing ---------------------------------------------------------------------------------------


def test_stale_fence_after_a_reap_makes_the_worker_kill_its_group(hub: Hub, tmp_path: Path) -> None:
    pids_file = tmp_path / "pids"
    run_id = hub.submit("tree", {"pids_file": str(pids_file)})
    wait_until(lambda: "grandchild" in pids_from(pids_file), timeout=10, message="the tree to be in place")
    fence = hub.run(run_id).fence

    reaped = hub.reap(run_id)  # as if the reaper had found the lease expired; kills nothing itself
    assert (reaped.status, reaped.failure_reason) == ("failed", "lease_expired")

    refused = hub.wait_event(run_id, "refused", timeout=10)  # the next heartbeat is refused
    assert refused.data.fence == fence and refused.worker_id == "w-1"  # type: ignore[union-attr]
    wait_until(lambda: not hub.run_processes(run_id), timeout=10, message=f"the processes of {run_id} to die")
    assert not any(is_alive(pid) for pid in pids_from(pids_file).values())
    view = hub.run(run_id)
    assert (view.status, view.failure_reason) == ("failed", "lease_expired")
    types = hub.types(run_id)
    assert "exited" not in types and types.count("reaped") == 1, types

    after = hub.submit("hello_world", {"target": "after the reap"})
    assert hub.wait_done(after).status == "succeeded", hub.describe(after)


# -- the task registry, live -----------------------------------------------------------------------

HOT_TASK = """\
import msgspec

from taskhub import TaskSpec


class Params(msgspec.Struct):
    pass


def build_command(params: Params) -> list[str]:
    return ["python3", "-c", "print({word!r})"]


task = TaskSpec(task_id={task_id!r}, name="Hot", params_model=Params, build_command=build_command)
"""


def test_hot_reload_of_a_task_file(hub: Hub) -> None:
    path = hub.home / "tasks" / "hot_reload.py"
    path.write_text(HOT_TASK.format(task_id="hot_reload", word="first"))
    first = hub.submit("hot_reload")
    assert hub.wait_done(first).status == "succeeded", hub.describe(first)
    assert hub.log(first) == b"first\n"

    # Edit the command, then submit straight away: the run is built against the new version
    # (`submitted` records it), so it must run the new command.
    path.write_text(HOT_TASK.format(task_id="hot_reload", word="second"))
    second = hub.submit("hot_reload")
    view = hub.wait_done(second)
    assert view.status == "succeeded", hub.describe(second)
    assert view.argv == ["python3", "-c", "print('second')"], (view.task_version, view.argv)
    assert hub.log(second) == b"second\n"


def test_broken_task_files_do_not_stop_the_others(hub: Hub) -> None:
    tasks = hub.home / "tasks"
    (tasks / "broken_syntax.py").write_text("def oops(:\n")
    (tasks / "broken_raises.py").write_text("raise RuntimeError('broken on purpose')\n")
    (tasks / "broken_no_task.py").write_text("x = 1\n")
    (tasks / "broken_exits.py").write_text("import sys\nsys.exit(3)\n")
    (tasks / "after_broken.py").write_text(HOT_TASK.format(task_id="after_broken", word="still loading"))

    fresh = hub.submit("after_broken")  # a task added beside the broken ones
    old = hub.submit("hello_world", {"target": "neighbours"})  # and one that was there all along
    assert hub.wait_done(fresh).status == "succeeded", hub.describe(fresh)
    assert hub.log(fresh) == b"still loading\n"
    assert hub.wait_done(old).status == "succeeded", hub.describe(old)
