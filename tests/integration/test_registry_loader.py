"""Loading real task files from a directory, hot reload through watchfiles, and the shipped examples."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from taskhub.errors import UnknownTask
from taskhub.registry import build_argv, params_schema
from taskhub.runtime.output_parser import ArtifactOut, ProgressOut, ResultOut, parse_line
from taskhub.runtime.registry_loader import Registry, load_tasks
from taskhub.runtime.registry_watch import RegistryWatcher

REPO = Path(__file__).resolve().parents[2]
DEADLINE_S = 15.0


def task_source(task_id: str, word: str = "hi", header: str = "") -> str:
    return textwrap.dedent(
        f"""\
        {header}
        import msgspec
        from taskhub import TaskSpec

        class Params(msgspec.Struct):
            times: int = 1

        def build_command(params: Params) -> list[str]:
            return ["echo", {word!r}, str(params.times)]

        task = TaskSpec(task_id={task_id!r}, name="T", params_model=Params, build_command=build_command)
        """
    )


def write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")  # hidden: the loader and watcher ignore it
    tmp.write_text(text)
    tmp.replace(path)


@pytest.fixture
def tasks_dir(tmp_path: Path) -> Path:
    d = tmp_path / "tasks"
    d.mkdir()
    return d


def test_good_and_bad_files_load_side_by_side(tasks_dir: Path) -> None:
    write(tasks_dir / "good.py", task_source("good"))
    write(tasks_dir / "missing_import.py", "import msgspec\nimport no_such_module_xyz\n")
    write(tasks_dir / "raises.py", "x = 1\nraise RuntimeError('boom at import')\n")
    write(tasks_dir / "syntax.py", "def broken(:\n")
    write(tasks_dir / "exits.py", "import sys\nsys.exit(3)\n")
    write(tasks_dir / "no_task.py", "X = 1\n")
    write(tasks_dir / "wrong_type.py", "task = {'task_id': 'x'}\n")
    write(tasks_dir / "bad_spec.py", task_source("Bad ID"))
    write(tasks_dir / "_private.py", "raise RuntimeError('never imported')\n")
    (tasks_dir / "notes.txt").write_text("not python")

    registry = load_tasks(tasks_dir)

    assert list(registry.tasks) == ["good"]
    good = registry.get("good")
    assert good.file == "tasks/good.py" and good.path == tasks_dir / "good.py"
    assert len(good.version) == 16 and int(good.version, 16) >= 0
    assert build_argv(good.spec, {"times": 2}) == ["echo", "hi", "2"]
    errors = {e.file: e.error for e in registry.errors}
    assert set(errors) == {
        f"tasks/{n}.py" for n in ("bad_spec", "exits", "missing_import", "no_task", "raises", "syntax", "wrong_type")
    }
    assert errors["tasks/missing_import.py"].startswith("ModuleNotFoundError: No module named 'no_such_module_xyz'")
    assert "tasks/missing_import.py, line 2: import no_such_module_xyz" in errors["tasks/missing_import.py"]
    assert errors["tasks/raises.py"] == (
        "RuntimeError: boom at import (tasks/raises.py, line 2: raise RuntimeError('boom at import'))"
    )
    assert errors["tasks/syntax.py"].startswith("SyntaxError:") and "line 1" in errors["tasks/syntax.py"]
    assert errors["tasks/exits.py"].startswith("SystemExit: 3")
    assert "no `task` defined" in errors["tasks/no_task.py"]
    assert errors["tasks/wrong_type.py"] == "`task` is a dict, not a TaskSpec"
    assert errors["tasks/bad_spec.py"].startswith("InvalidTaskSpec: task_id must match")
    with pytest.raises(UnknownTask):
        registry.get("raises")


def test_duplicate_task_id_first_file_by_name_wins(tasks_dir: Path) -> None:
    write(tasks_dir / "b_second.py", task_source("dup", word="second"))
    write(tasks_dir / "a_first.py", task_source("dup", word="first"))
    registry = load_tasks(tasks_dir)
    assert registry.get("dup").file == "tasks/a_first.py"
    assert [(e.file, e.error) for e in registry.errors] == [
        ("tasks/b_second.py", "duplicate task_id 'dup': already defined in tasks/a_first.py")
    ]


def test_pydantic_and_postponed_annotations(tasks_dir: Path) -> None:
    write(tasks_dir / "deferred.py", task_source("deferred", header="from __future__ import annotations"))
    write(
        tasks_dir / "pyd.py",
        textwrap.dedent(
            """\
            from __future__ import annotations
            from pydantic import BaseModel, Field
            from taskhub import TaskSpec

            class Params(BaseModel):
                target: str
                times: int = Field(1, ge=1)

            task = TaskSpec(task_id="pyd", name="Pydantic", params_model=Params,
                            build_command=lambda p: ["echo", p.target] * p.times)
            """
        ),
    )
    registry = load_tasks(tasks_dir)
    assert registry.errors == []
    assert build_argv(registry.get("deferred").spec, {"times": 3}) == ["echo", "hi", "3"]
    pyd = registry.get("pyd").spec
    assert build_argv(pyd, {"target": "x", "times": 2}) == ["echo", "x", "echo", "x"]
    assert params_schema(pyd)["properties"]["times"]["minimum"] == 1


def test_helpers_next_to_task_files_are_importable(tasks_dir: Path) -> None:
    write(tasks_dir / "_shared_helpers_q7.py", "WORD = 'shared'\n")
    write(tasks_dir / "uses_helper.py", "from _shared_helpers_q7 import WORD\n" + task_source("uses_helper"))
    assert load_tasks(tasks_dir).errors == []


def test_unchanged_files_are_not_imported_again(tasks_dir: Path) -> None:
    write(tasks_dir / "counted.py", task_source("counted"))
    first = load_tasks(tasks_dir).get("counted")
    again = load_tasks(tasks_dir).get("counted")
    assert again.spec is first.spec and again.version == first.version
    assert load_tasks(tasks_dir, fresh=True).get("counted").spec is not first.spec


def test_a_missing_directory_is_an_empty_registry(tmp_path: Path) -> None:
    registry = load_tasks(tmp_path / "nowhere")
    assert registry.tasks == {} and registry.errors == []


async def wait_until(condition: Callable[[], bool], what: str, timeout: float = DEADLINE_S) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.02)


@pytest.fixture
async def watcher(tasks_dir: Path) -> AsyncIterator[RegistryWatcher]:
    # A long rescan interval: the changes below must arrive through file system events.
    w = RegistryWatcher(tasks_dir, rescan_s=120, debounce_ms=50)
    runner = asyncio.create_task(w.run())
    # Arm check: rewrite a probe until the watcher reports it, so no later change predates the watch.
    n = 0
    deadline = time.monotonic() + DEADLINE_S
    while "probe" not in w.current.tasks:
        assert time.monotonic() < deadline, "the watcher never picked up the probe file"
        n += 1
        write(tasks_dir / "probe.py", task_source("probe", word=f"probe{n}"))
        await asyncio.sleep(0.1)
    (tasks_dir / "probe.py").unlink()
    await wait_until(lambda: "probe" not in w.current.tasks, "the probe to go")
    yield w
    w.stop()
    await asyncio.wait_for(runner, DEADLINE_S)


async def test_hot_reload_add_edit_delete(watcher: RegistryWatcher, tasks_dir: Path) -> None:
    seen: list[Registry] = []
    watcher.on_change = seen.append

    write(tasks_dir / "live.py", task_source("live", word="v1"))
    await wait_until(lambda: "live" in watcher.current.tasks, "live.py to load")
    v1 = watcher.current.get("live")
    assert build_argv(v1.spec, {}) == ["echo", "v1", "1"]

    write(tasks_dir / "live.py", task_source("live", word="v2"))
    await wait_until(lambda: watcher.current.get("live").version != v1.version, "the edit to load")
    assert build_argv(watcher.current.get("live").spec, {}) == ["echo", "v2", "1"]
    assert build_argv(v1.spec, {}) == ["echo", "v1", "1"]  # a held snapshot keeps its code

    write(tasks_dir / "broken.py", "raise ValueError('nope')\n")
    await wait_until(lambda: bool(watcher.current.errors), "the broken file's error")
    assert "live" in watcher.current.tasks

    (tasks_dir / "live.py").unlink()
    (tasks_dir / "broken.py").unlink()
    await wait_until(lambda: not watcher.current.tasks and not watcher.current.errors, "removal")
    assert seen and seen[-1] is watcher.current


async def test_a_file_name_that_is_not_utf8_does_not_stop_hot_reload(
    watcher: RegistryWatcher, tasks_dir: Path
) -> None:
    """watchfiles cannot report such a name and stops; the watcher notes it and watches again."""
    with open(os.path.join(os.fsencode(tasks_dir), b"odd-\xff.py"), "w") as f:
        f.write(task_source("odd"))
    await wait_until(lambda: "odd" in watcher.current.tasks, "the oddly named file's task")
    write(tasks_dir / "after.py", task_source("after"))
    await wait_until(lambda: "after" in watcher.current.tasks, "a file added after it")
    assert not watcher.current.errors


async def test_watcher_waits_for_a_missing_directory(tmp_path: Path) -> None:
    tasks_dir = tmp_path / "later"
    w = RegistryWatcher(tasks_dir, rescan_s=0.1, debounce_ms=50)
    assert w.current.tasks == {}
    runner = asyncio.create_task(w.run())
    try:
        tasks_dir.mkdir()
        write(tasks_dir / "late.py", task_source("late"))
        await wait_until(lambda: "late" in w.current.tasks, "the late directory's task")
    finally:
        w.stop()
        await asyncio.wait_for(runner, DEADLINE_S)


async def test_stop_before_run_has_started_still_stops_it(tasks_dir: Path) -> None:
    w = RegistryWatcher(tasks_dir)
    runner = asyncio.create_task(w.run())
    w.stop()
    await asyncio.wait_for(runner, DEADLINE_S)


def test_reload_can_be_called_directly(tasks_dir: Path) -> None:
    changes: list[Registry] = []
    w = RegistryWatcher(tasks_dir, on_change=changes.append)
    write(tasks_dir / "direct.py", task_source("direct"))
    assert "direct" in w.reload().tasks
    assert len(changes) == 1
    w.reload()
    assert len(changes) == 1  # nothing changed, no callback


# --- the shipped example tasks ---------------------------------------------------------------


def run_example(argv: list[str], artifacts: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"  # as the worker does
    env["TASKHUB_ARTIFACTS_DIR"] = str(artifacts)
    env["PYTHONUNBUFFERED"] = "1"
    return subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=60, check=False)


def structured(stdout: str) -> list[object]:
    return [p for p in (parse_line(x.encode()) for x in stdout.splitlines()) if p is not None]


def test_shipped_examples_load() -> None:
    registry = load_tasks(REPO / "tasks")
    assert registry.errors == []
    assert {"hello_world", "long_task", "fail_task", "sleep", "noop"} <= set(registry.tasks)


@pytest.fixture(scope="module")
def shipped() -> Registry:
    return load_tasks(REPO / "tasks")


def test_hello_world_greets(shipped: Registry, tmp_path: Path) -> None:
    argv = build_argv(shipped.get("hello_world").spec, {"target": "World", "times": 2})
    done = run_example(argv, tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[:2] == ["Hello, World!", "Hello, World!"]
    assert structured(done.stdout) == [ResultOut({"target": "World", "greetings": 2})]


def test_long_task_reports_progress_and_writes_its_artifact(shipped: Registry, tmp_path: Path) -> None:
    argv = build_argv(shipped.get("long_task").spec, {"steps": 4, "delay": 0})
    done = run_example(argv, tmp_path)
    assert done.returncode == 0, done.stderr
    events = structured(done.stdout)
    progress = [e for e in events if isinstance(e, ProgressOut)]
    assert [p.pct for p in progress] == [25.0, 50.0, 75.0, 100.0]
    assert progress[-1].message == "step 4/4"
    assert ArtifactOut("report.txt", "Summary of the steps run") in events
    assert isinstance(events[-1], ResultOut) and events[-1].value["steps"] == 4
    assert "steps: 4" in (tmp_path / "report.txt").read_text()


def test_fail_task_exits_with_its_code(shipped: Registry, tmp_path: Path) -> None:
    argv = build_argv(shipped.get("fail_task").spec, {"code": 3, "message": "kaboom"})
    done = run_example(argv, tmp_path)
    assert done.returncode == 3
    assert done.stderr.strip() == "kaboom"


def test_sleep_and_noop(shipped: Registry, tmp_path: Path) -> None:
    assert build_argv(shipped.get("sleep").spec, {"seconds": 0.05}) == ["sleep", "0.05"]
    assert build_argv(shipped.get("noop").spec, {}) == ["true"]
    for argv in (build_argv(shipped.get("sleep").spec, {"seconds": 0.01}), ["true"]):
        assert run_example(argv, tmp_path).returncode == 0
