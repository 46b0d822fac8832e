"""Spawning real processes: exact log bytes, environment, new session, spawn errors, identity."""

from __future__ import annotations

import asyncio
import errno
import json
import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import psutil
import pytest

from taskhub.errors import TaskHubError
from taskhub.runtime import process
from taskhub.runtime.identity import ProcessIdentity
from taskhub.runtime.process import (
    Spawned,
    SpawnError,
    child_env,
    default_python_bin_dir,
    make_descriptors_private,
    spawn,
)
from tests.helpers.processes import Janitor
from tests.helpers.waiting import wait_until_async

PY = sys.executable


@pytest.fixture
async def janitor() -> AsyncIterator[Janitor]:
    j = Janitor()
    yield j
    await j.cleanup()


async def run(
    janitor: Janitor, tmp_path: Path, argv: list[str], env: dict[str, str] | None = None, in_thread: bool = True
) -> Spawned:
    spawned = await spawn(
        argv,
        cwd=tmp_path,
        env=env if env is not None else dict(os.environ),
        stdout_path=tmp_path / "stdout.log",
        stderr_path=tmp_path / "stderr.log",
        in_thread=in_thread,
    )
    janitor.track(spawned.process)
    return spawned


async def finish(spawned: Spawned) -> int:
    return await asyncio.wait_for(spawned.process.wait(), timeout=30)


async def test_output_bytes_land_exactly_in_the_files(janitor: Janitor, tmp_path: Path) -> None:
    (tmp_path / "stdout.log").write_bytes(b"=== earlier attempt ===\n")  # append, never truncate
    code = (
        "import sys\n"
        "sys.stdout.buffer.write(bytes(range(256)) + b'\\r\\nno newline at end')\n"
        "sys.stderr.buffer.write(b'\\x00err\\xff')\n"
    )
    spawned = await run(janitor, tmp_path, [PY, "-c", code])
    assert await finish(spawned) == 0
    expected = b"=== earlier attempt ===\n" + bytes(range(256)) + b"\r\nno newline at end"
    assert (tmp_path / "stdout.log").read_bytes() == expected
    assert (tmp_path / "stderr.log").read_bytes() == b"\x00err\xff"


async def test_log_files_are_created_when_missing(janitor: Janitor, tmp_path: Path) -> None:
    spawned = await run(janitor, tmp_path, ["true"])
    assert await finish(spawned) == 0
    assert (tmp_path / "stdout.log").read_bytes() == b""
    assert (tmp_path / "stderr.log").read_bytes() == b""


async def test_stdin_is_dev_null(janitor: Janitor, tmp_path: Path) -> None:
    code = "import sys; data = sys.stdin.buffer.read(); print(len(data))"
    spawned = await run(janitor, tmp_path, [PY, "-c", code])
    assert await finish(spawned) == 0
    assert (tmp_path / "stdout.log").read_text() == "0\n"


async def test_parent_keeps_no_copy_of_the_log_descriptors(janitor: Janitor, tmp_path: Path) -> None:
    before = set(os.listdir("/proc/self/fd"))
    spawned = await run(janitor, tmp_path, ["true"])
    targets = {os.path.realpath(f"/proc/self/fd/{fd}") for fd in set(os.listdir("/proc/self/fd")) - before}
    assert str(tmp_path / "stdout.log") not in targets
    assert str(tmp_path / "stderr.log") not in targets
    assert await finish(spawned) == 0


async def test_child_runs_in_a_new_session_and_group(janitor: Janitor, tmp_path: Path) -> None:
    code = "import json, os; print(json.dumps([os.getpid(), os.getsid(0), os.getpgrp()]))"
    spawned = await run(janitor, tmp_path, [PY, "-c", code])
    assert await finish(spawned) == 0
    pid, sid, pgid = json.loads((tmp_path / "stdout.log").read_text())
    assert pid == sid == pgid == spawned.pid == spawned.pgid
    assert sid != os.getsid(0)


async def test_create_time_is_the_process_identity(janitor: Janitor, tmp_path: Path) -> None:
    spawned = await run(janitor, tmp_path, ["sleep", "60"])
    assert spawned.create_time == pytest.approx(psutil.Process(spawned.pid).create_time(), abs=0.01)
    assert spawned.identity.matches()
    assert ProcessIdentity.of(spawned.pid) == spawned.identity


async def test_create_time_of_a_run_over_before_anyone_asked(janitor: Janitor, tmp_path: Path) -> None:
    """Nobody can match a process that is gone: its spawn time stands in, without a /proc read."""
    before = time.time()
    spawned = await run(janitor, tmp_path, ["true"])
    assert await finish(spawned) == 0
    assert before <= spawned.create_time <= time.time()
    tick = 1 / os.sysconf("SC_CLK_TCK")
    ticks_since_boot = (spawned.create_time - psutil.boot_time()) / tick
    assert abs(ticks_since_boot - round(ticks_since_boot)) > 1e-6  # not the kernel's clock-tick start time


async def test_create_time_of_a_live_run_is_the_kernels(janitor: Janitor, tmp_path: Path) -> None:
    """Asked while the process lives: psutil's create time, which the reaper matches against."""
    spawned = await run(janitor, tmp_path, ["sleep", "5"])
    try:
        assert spawned.create_time == psutil.Process(spawned.pid).create_time()
    finally:
        spawned.process.kill()
        await finish(spawned)


def test_child_env_has_the_run_variables(tmp_path: Path) -> None:
    base = {"PATH": "/usr/bin:/bin", "HOME": "/root", "TASKHUB_RUN_ID": "r-stale"}
    env = child_env(
        base,
        run_id="r-abc",
        attempt=2,
        run_dir=tmp_path / "r-abc",
        artifacts_dir=tmp_path / "r-abc" / "artifacts",
        python_bin_dir="/opt/py/bin",
    )
    assert env["TASKHUB_RUN_ID"] == "r-abc"
    assert env["TASKHUB_ATTEMPT"] == "2"
    assert env["TASKHUB_RUN_DIR"] == str(tmp_path / "r-abc")
    assert env["TASKHUB_ARTIFACTS_DIR"] == str(tmp_path / "r-abc" / "artifacts")
    assert env["PYTHONUNBUFFERED"] == "1"
    assert env["PATH"] == "/opt/py/bin:/usr/bin:/bin"
    assert env["HOME"] == "/root"
    assert base["TASKHUB_RUN_ID"] == "r-stale"  # the base is not modified
    again = child_env(env, run_id="r-abc", attempt=2, run_dir="d", artifacts_dir="a", python_bin_dir="/opt/py/bin")
    assert again["PATH"] == env["PATH"]  # not prepended twice
    no_path = child_env({}, run_id="r-x", attempt=1, run_dir="d", artifacts_dir="a", python_bin_dir="/b")
    assert no_path["PATH"].startswith("/b:")


async def test_the_child_sees_its_environment_and_our_python(janitor: Janitor, tmp_path: Path) -> None:
    env = child_env(
        dict(os.environ),
        run_id="r-envcheck",
        attempt=1,
        run_dir=tmp_path,
        artifacts_dir=tmp_path / "artifacts",
        python_bin_dir=default_python_bin_dir(),
    )
    code = (
        "import json, os, sys\n"
        "keys = ['TASKHUB_RUN_ID', 'TASKHUB_ATTEMPT', 'TASKHUB_RUN_DIR', 'TASKHUB_ARTIFACTS_DIR',"
        " 'PYTHONUNBUFFERED']\n"
        "print(json.dumps({'env': {k: os.environ.get(k) for k in keys}, 'exe': sys.executable,"
        " 'cwd': os.getcwd()}))\n"
    )
    spawned = await run(janitor, tmp_path, ["python3", "-c", code], env=env)  # resolved through PATH
    assert await finish(spawned) == 0, (tmp_path / "stderr.log").read_text()
    seen = json.loads((tmp_path / "stdout.log").read_text())
    assert seen["env"] == {
        "TASKHUB_RUN_ID": "r-envcheck",
        "TASKHUB_ATTEMPT": "1",
        "TASKHUB_RUN_DIR": str(tmp_path),
        "TASKHUB_ARTIFACTS_DIR": str(tmp_path / "artifacts"),
        "PYTHONUNBUFFERED": "1",
    }
    assert os.path.dirname(seen["exe"]) == default_python_bin_dir()
    assert seen["cwd"] == str(tmp_path)


async def test_missing_executable_is_a_spawn_error(tmp_path: Path) -> None:
    with pytest.raises(SpawnError, match="executable not found: 'no-such-program-xyz'") as info:
        await spawn(
            ["no-such-program-xyz", "--flag"],
            cwd=tmp_path,
            env=dict(os.environ),
            stdout_path=tmp_path / "stdout.log",
            stderr_path=tmp_path / "stderr.log",
        )
    assert isinstance(info.value, TaskHubError)


async def test_spawn_errors_say_what_went_wrong(tmp_path: Path) -> None:
    not_executable = tmp_path / "script.sh"
    not_executable.write_text("#!/bin/sh\necho hi\n")
    not_executable.chmod(stat.S_IRUSR | stat.S_IWUSR)
    cases: list[tuple[object, Path, Path, str]] = [
        ([str(not_executable)], tmp_path, tmp_path, "permission denied"),
        (["true"], tmp_path / "missing-dir", tmp_path, "working directory"),
        ([], tmp_path, tmp_path, "empty"),
        ("true --flag", tmp_path, tmp_path, "argv list"),
        (["true", 3], tmp_path, tmp_path, "must be a string"),
        (["true", "a\0b"], tmp_path, tmp_path, "null byte"),
        (["true"], tmp_path, tmp_path / "no-such-run-dir", "cannot open log file"),
    ]
    fds_before = len(os.listdir("/proc/self/fd"))
    for argv, cwd, log_dir, message in cases:
        with pytest.raises(SpawnError, match=message):
            await spawn(
                argv,  # type: ignore[arg-type]  # deliberately malformed in some cases
                cwd=cwd,
                env=dict(os.environ),
                stdout_path=log_dir / "stdout.log",
                stderr_path=log_dir / "stderr.log",
            )
    assert len(os.listdir("/proc/self/fd")) == fds_before  # no descriptor leaked on any failure


async def test_identity_of_a_dead_process_never_matches(janitor: Janitor, tmp_path: Path) -> None:
    spawned = await run(janitor, tmp_path, ["true"])
    identity = spawned.identity
    assert await finish(spawned) == 0
    assert not identity.matches()
    assert not identity.reused()  # gone is not reused
    assert ProcessIdentity.of(spawned.pid) is None


async def test_identity_with_another_create_time_does_not_match(janitor: Janitor, tmp_path: Path) -> None:
    spawned = await run(janitor, tmp_path, ["sleep", "60"])
    wrong = ProcessIdentity(spawned.pid, spawned.create_time - 100.0)
    assert not wrong.matches()
    assert wrong.reused()
    assert spawned.identity.matches()
    assert not spawned.identity.reused()


@pytest.mark.parametrize("way", ["libc in a thread", "libc inline", "Popen fallback"])
async def test_each_way_in_reports_exit_codes_signals_and_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, way: str
) -> None:
    """glibc's posix_spawn (from a spawn thread, or inline) where it is available; Popen where not."""
    libc, in_thread = way != "Popen fallback", way != "libc inline"
    if not libc:
        monkeypatch.setattr(process, "_LIBC", None)
    else:
        assert process._LIBC is not None  # this machine has glibc >= 2.29: the fast way must be used
    monkeypatch.chdir("/")
    janitor = Janitor()

    async def start(argv: list[str], env: dict[str, str] | None = None) -> Spawned:
        return await run(janitor, tmp_path, argv, env, in_thread=in_thread)

    try:
        code = await start([PY, "-c", "import os, sys; print(os.getcwd()); sys.exit(7)"])
        assert (code.process._popen is None) is libc
        assert await finish(code) == 7
        assert (tmp_path / "stdout.log").read_text() == f"{tmp_path}\n"  # started in its folder
        killed = await start(["sleep", "60"])
        os.killpg(killed.pgid, signal.SIGTERM)
        assert await finish(killed) == -signal.SIGTERM
        assert killed.process.returncode == -signal.SIGTERM
        # Found (or not) through the run's PATH, whether or not it is the worker's own.
        for env in (dict(os.environ), {**os.environ, "PATH": f"{tmp_path}/bin:/usr/bin:/bin"}):
            echo = await start(["echo", "found"], env)
            assert await finish(echo) == 0
            with pytest.raises(SpawnError, match="executable not found: 'no-such-program-xyz'"):
                await start(["no-such-program-xyz"], env)
        assert (tmp_path / "stdout.log").read_text().endswith("found\nfound\n")
        with pytest.raises(SpawnError, match="working directory"):
            await spawn(
                ["true"],
                cwd=tmp_path / "gone",
                env=dict(os.environ),
                stdout_path=tmp_path / "o.log",
                stderr_path=tmp_path / "e.log",
            )
    finally:
        await janitor.cleanup()


async def test_no_cwd_means_ours(janitor: Janitor, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    spawned = await spawn(
        ["pwd"], cwd=None, env=dict(os.environ), stdout_path=tmp_path / "out.log", stderr_path=tmp_path / "err.log"
    )
    janitor.track(spawned.process)
    assert await finish(spawned) == 0
    assert (tmp_path / "out.log").read_text() == f"{tmp_path}\n"


def test_spawn_works_with_our_own_stdio_closed(tmp_path: Path) -> None:
    """The log files then open as descriptors 0-2, which the child's streams are dup'ed onto."""
    code = (
        "import asyncio, os, sys\n"
        "from taskhub.runtime.process import spawn\n"
        "async def main():\n"
        "    d = sys.argv[1]\n"
        "    os.close(0); os.close(1)  # the lowest free descriptors now\n"
        "    s = await spawn(['sh', '-c', 'echo out; echo err >&2'], cwd=d, env=dict(os.environ),"
        " stdout_path=d + '/o.log', stderr_path=d + '/e.log')\n"
        "    return await s.process.wait()\n"
        "sys.exit(asyncio.run(main()))\n"
    )
    done = subprocess.run([PY, "-c", code, str(tmp_path)], stderr=subprocess.PIPE, timeout=60, check=False)
    assert done.returncode == 0, done.stderr.decode()
    assert (tmp_path / "o.log").read_text() == "out\n" and (tmp_path / "e.log").read_text() == "err\n"


@pytest.mark.parametrize("wait_s", [0.0, 1.0], ids=["spawn only", "spawn, then wait for the exit"])
async def test_a_spawn_cancelled_midway_leaves_no_process(tmp_path: Path, wait_s: float) -> None:
    marker = f"{time.time() % 1000 + 1000:.6f}"  # a sleep length no other process uses
    fds = _open_fds()
    starting = asyncio.ensure_future(
        spawn(
            ["sleep", marker],
            cwd=tmp_path,
            env=dict(os.environ),
            stdout_path=tmp_path / "o.log",
            stderr_path=tmp_path / "e.log",
            in_thread=True,
            wait_s=wait_s,
        )
    )
    await asyncio.sleep(0)  # the spawn thread has it now
    starting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await starting
    # Let the spawn thread finish starting the child (a fresh pool serves the tests after this one).
    await asyncio.to_thread(process._spawn_threads().shutdown)
    process._spawners = None

    def sleepers() -> list[psutil.Process]:
        return [p for p in psutil.process_iter(["cmdline"]) if p.info["cmdline"] == ["sleep", marker]]

    await wait_until_async(lambda: not sleepers(), timeout=10, message="the abandoned child to be killed")
    assert not [c for c in psutil.Process().children() if c.status() == psutil.STATUS_ZOMBIE]  # and reaped
    assert _open_fds() == fds  # its pidfd closed too


def _open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


WAYS = ["libc from a thread", "libc inline, the loop waits", "libc inline, the loop free", "Popen fallback"]


async def _spawn_way(
    way: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, argv: list[str], wait_s: float
) -> Spawned:
    in_thread: bool | None = {WAYS[0]: True, WAYS[1]: False, WAYS[2]: None, WAYS[3]: True}[way]
    if way == WAYS[3]:
        monkeypatch.setattr(process, "_LIBC", None)
    if way == WAYS[2]:
        monkeypatch.setattr(process._spawn_pace, "_threaded_until", 0.0)  # spawns are quick: inline
    out, err = tmp_path / "o.log", tmp_path / "e.log"
    return await spawn(argv, cwd=tmp_path, env=dict(os.environ), stdout_path=out, stderr_path=err, in_thread=in_thread,
                       wait_s=wait_s)  # fmt: skip


@pytest.mark.parametrize("way", WAYS)
async def test_a_spawn_that_waits_returns_a_quick_exit_already_seen(
    janitor: Janitor, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, way: str
) -> None:
    fds = _open_fds()
    spawned = await _spawn_way(way, tmp_path, monkeypatch, [PY, "-c", "import sys; sys.exit(5)"], wait_s=30.0)
    janitor.track(spawned.process)
    assert spawned.process.exited.done() and spawned.process.returncode == 5
    assert not [c for c in psutil.Process().children() if c.pid == spawned.pid]  # reaped, no zombie
    assert _open_fds() == fds  # no pidfd left open


@pytest.mark.parametrize("way", WAYS)
async def test_a_spawn_that_waits_gives_up_on_a_long_run(
    janitor: Janitor, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, way: str
) -> None:
    fds = _open_fds()
    spawned = await _spawn_way(way, tmp_path, monkeypatch, ["sleep", "30"], wait_s=0.05)
    janitor.track(spawned.process)
    assert not spawned.process.exited.done()
    spawned.process.kill()
    assert await finish(spawned) == -signal.SIGKILL  # the loop still sees its end
    assert _open_fds() == fds


async def test_descriptors_a_worker_inherited_do_not_reach_its_runs(janitor: Janitor, tmp_path: Path) -> None:
    read_end, write_end = os.pipe()
    try:
        os.set_inheritable(write_end, True)  # as a careless parent would leave it
        make_descriptors_private()
        assert not os.get_inheritable(write_end)
        spawned = await run(janitor, tmp_path, ["ls", "/proc/self/fd"])
        assert await finish(spawned) == 0
        assert str(write_end) not in (tmp_path / "stdout.log").read_text().split()
    finally:
        os.close(read_end)
        os.close(write_end)


async def test_spawns_go_to_threads_for_a_while_after_a_slow_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(process, "THREADED_FOR_S", 0.2)
    pace = process._SpawnPace()
    pace.took(process.SLOW_SPAWN_S / 10)
    assert not pace.threaded()  # quick spawns: inline costs least
    pace.took(process.SLOW_SPAWN_S * 2)  # the child waited for a CPU
    assert pace.threaded()
    await wait_until_async(lambda: not pace.threaded(), timeout=10, message="inline again")


@pytest.mark.parametrize("in_thread", [True, False])
async def test_a_nul_in_the_environment_is_a_spawn_error(tmp_path: Path, in_thread: bool) -> None:
    with pytest.raises(SpawnError, match="null byte"):
        await spawn(
            ["true"],
            cwd=tmp_path,
            env={**os.environ, "BAD": "a\0b"},
            stdout_path=tmp_path / "o.log",
            stderr_path=tmp_path / "e.log",
            in_thread=in_thread,
        )


async def test_exit_is_seen_without_pidfds(janitor: Janitor, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_pidfds(pid: int, flags: int = 0) -> int:
        raise OSError(errno.ENOSYS, "pidfd_open is not available")

    monkeypatch.setattr(os, "pidfd_open", no_pidfds)  # an old kernel or a sandbox
    spawned = await run(janitor, tmp_path, [PY, "-c", "import sys; sys.exit(3)"])
    assert await finish(spawned) == 3


async def test_a_waiter_cancelled_leaves_the_exit_for_others(janitor: Janitor, tmp_path: Path) -> None:
    spawned = await run(janitor, tmp_path, ["sleep", "0.2"])
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(spawned.process.wait(), timeout=0.01)
    assert await finish(spawned) == 0
    assert spawned.process.exited.result() == 0


@pytest.mark.parametrize("libc", [True, False], ids=["libc posix_spawn", "Popen fallback"])
async def test_sigpipe_is_not_ignored_in_the_child(
    janitor: Janitor, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, libc: bool
) -> None:
    """Python ignores SIGPIPE, and an ignored signal stays ignored across exec: the command must
    get the default back, or `yes | head` in a task would never end."""
    if not libc:
        monkeypatch.setattr(process, "_LIBC", None)
    spawned = await run(janitor, tmp_path, ["cat", "/proc/self/status"])
    assert await finish(spawned) == 0
    [ignored] = [
        line.split()[1] for line in (tmp_path / "stdout.log").read_text().splitlines() if line.startswith("SigIgn:")
    ]
    assert not int(ignored, 16) & (1 << (signal.SIGPIPE - 1))
