"""Spawning a run's command, and knowing later whether a pid is still that process.

A run is started in its own session and process group (STYLE point 5), with its log files handed
to it as stdout and stderr: no pipes to drain, so a chatty task never blocks, a dead worker cannot
SIGPIPE its tasks, and a grandchild holding the stream cannot delay the run's end.

What the supervisor records is `(pid, pgid, create_time)`; a pid alone is not an identity, because
the kernel reuses pids.

Linux only.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import logging
import os
import select
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from taskhub.errors import TaskHubError
from taskhub.runtime.identity import ProcessIdentity, create_time_of
from taskhub.runtime.libc_spawn import LibcSpawn
from taskhub.runtime.libc_spawn import load as load_libc_spawn
from taskhub.runtime.spawn_threads import SpawnThreads

logger = logging.getLogger(__name__)

_LOG_FLAGS = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
_LOG_MODE = 0o644
_LIBC = load_libc_spawn()
SPAWN_THREADS = 4  # spawns waiting for their child to exec at once; more only adds threads
SLOW_SPAWN_S = 0.005  # a spawn waiting longer for its child's exec means the CPUs are busy...
THREADED_FOR_S = 1.0  # ...so spawn from threads this long, then try inline again
_spawners: SpawnThreads | None = None


class SpawnError(TaskHubError):
    """The run's command could not be started."""


@dataclass(frozen=True)
class Spawned:
    """A started run: its child handle plus what the `started` event records."""

    process: Child
    pid: int
    pgid: int

    @property
    def create_time(self) -> float:
        return self.process.create_time

    @property
    def identity(self) -> ProcessIdentity:
        return ProcessIdentity(self.pid, self.create_time)


def default_python_bin_dir() -> str:
    """The directory of the Python running TaskHub, so `python3` in a task means this interpreter.

    Not resolved through symlinks: a venv's `bin/python` is a symlink, and resolving it would
    leave the venv.
    """
    return os.path.dirname(sys.executable)


def child_env(
    base: Mapping[str, str],
    *,
    run_id: str,
    attempt: int,
    run_dir: str | os.PathLike[str],
    artifacts_dir: str | os.PathLike[str],
    python_bin_dir: str | os.PathLike[str],
) -> dict[str, str]:
    """The environment of a run's command (SPEC section 2): `base` plus the TASKHUB_* run variables.

    `base` is passed in (usually the worker's environment) so nothing here reads `os.environ`.
    `TASKHUB_RUN_ID` is also how the reaper finds processes that left the process group.
    """
    env = dict(base)
    bin_dir = os.fspath(python_bin_dir)
    path = env.get("PATH") or os.defpath
    if path.split(os.pathsep, 1)[0] != bin_dir:
        path = bin_dir + os.pathsep + path
    env.update(
        TASKHUB_RUN_ID=run_id,
        TASKHUB_ATTEMPT=str(attempt),
        TASKHUB_RUN_DIR=os.fspath(run_dir),
        TASKHUB_ARTIFACTS_DIR=os.fspath(artifacts_dir),
        PYTHONUNBUFFERED="1",
        PATH=path,
    )
    return env


async def spawn(
    argv: Sequence[str],
    *,
    cwd: str | os.PathLike[str] | None,
    env: Mapping[str, str],
    stdout_path: str | os.PathLike[str],
    stderr_path: str | os.PathLike[str],
    in_thread: bool | None = None,
    wait_s: float = 0.0,
) -> Spawned:
    """Start `argv` (no shell) in `cwd` (None: ours) in a new session, its output appended to the
    two log files (their directory must exist). Raises SpawnError when the files cannot be opened
    or the command cannot be executed.

    Returns once the child has exited or `wait_s` has passed (`process.exited.done()` says which).
    A spawn thread waits there for the exit of a short run, so it costs one hop back to the loop
    instead of two (~60 µs of CPU a run); `in_thread=False` waits inline, the loop blocked.

    posix_spawn returns once the child has exec'd. Waiting for that on the calling thread (the GIL
    released) costs least: ~0.1-0.2 ms on an idle machine, and no hop to a thread and back (~0.4 ms
    of CPU per run, measured). But when the CPUs are busy the new child may wait milliseconds for
    one, and the event loop with it (throughput fell to half). `in_thread=None` decides by the
    last spawns: inline while they are quick, from a spawn thread for a while after a slow one.
    """
    args = _checked_argv(argv)
    loop = asyncio.get_running_loop()
    started_at = time.time()
    try:
        if _LIBC is not None and (not _spawn_pace.threaded() if in_thread is None else not in_thread):
            # Inline while other slots may need the loop: the wait, if any, is the loop's.
            blocking_wait = wait_s if in_thread is False else 0.0
            started = _spawn_and_wait(_LIBC, args, cwd, env, stdout_path, stderr_path, blocking_wait)
            child = Child(started.pid, loop, started_at, pidfd=started.pidfd, status=started.status)
            if blocking_wait == 0.0 and wait_s > 0.0:
                await asyncio.wait((child.exited,), timeout=wait_s)
        elif _LIBC is not None:
            starting = _spawn_threads().submit(
                _spawn_and_wait, _LIBC, args, cwd, env, stdout_path, stderr_path, wait_s
            )
            try:
                started = await asyncio.shield(starting)
            except asyncio.CancelledError:
                starting.add_done_callback(_abandon)  # it starts anyway: do not leave it alive
                raise
            child = Child(started.pid, loop, started_at, pidfd=started.pidfd, status=started.status)
        else:
            child = Child.of_popen(_popen(args, cwd, env, stdout_path, stderr_path), loop, started_at)
            if wait_s > 0.0:
                await asyncio.wait((child.exited,), timeout=wait_s)
    except OSError as exc:
        raise SpawnError(_spawn_message(args, cwd, exc)) from exc
    except ValueError as exc:  # e.g. an embedded NUL byte in an argument
        raise SpawnError(f"cannot start {args[0]!r}: {exc}") from exc
    # With setsid the child leads a new group numbered by its pid. Asking getpgid() instead would
    # race with a command that has already exited and been reaped.
    return Spawned(child, child.pid, child.pid)


class Child:
    """A started command whose exit the event loop learns from a pidfd: no thread, no SIGCHLD.

    `exited` resolves to the return code (negative: killed by that signal), as asyncio's would.
    """

    def __init__(
        self,
        pid: int,
        loop: asyncio.AbstractEventLoop,
        spawned_at: float,
        popen: subprocess.Popen[bytes] | None = None,
        *,
        pidfd: int | None = None,
        status: int | None = None,
    ) -> None:
        """`status`: the child was already reaped (its wait status); `pidfd`: one already open."""
        self.pid = pid
        self.returncode: int | None = None
        self._spawned_at = spawned_at
        self._create_time: float | None = None
        self.exited: asyncio.Future[int] = loop.create_future()
        self._popen = popen  # held until reaped, so its finaliser never reaps our child behind us
        if status is not None:
            self._set(status)
            return
        if pidfd is None:
            try:
                pidfd = os.pidfd_open(pid)
            except OSError:  # no pidfds (kernel < 5.3, or a sandbox): a thread waits instead
                waiting = loop.run_in_executor(None, os.waitpid, pid, 0)
                waiting.add_done_callback(lambda f: self._set(f.result()[1]))
                return
        loop.add_reader(pidfd, self._reap, loop, pidfd)

    @classmethod
    def of_popen(cls, popen: subprocess.Popen[bytes], loop: asyncio.AbstractEventLoop, spawned_at: float) -> Child:
        return cls(popen.pid, loop, spawned_at, popen)

    @property
    def create_time(self) -> float:
        """The kernel's start time (what psutil reports, which the reaper matches a live process
        against), read from /proc when first asked; once the child is over, nobody can match it,
        and the spawn time stands in (a /proc read less per short run)."""
        if self._create_time is None:
            if self.returncode is not None:
                return self._spawned_at
            self._create_time = create_time_of(self.pid, fallback=self._spawned_at)
        return self._create_time

    def _reap(self, loop: asyncio.AbstractEventLoop, pidfd: int) -> None:
        try:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
        except ChildProcessError:  # reaped elsewhere: its status is lost
            logger.warning("spawn.reaped_elsewhere pid=%s", self.pid)
            pid, status = self.pid, 255 << 8
        if pid == 0:
            return  # not exited after all: keep watching
        loop.remove_reader(pidfd)
        os.close(pidfd)
        self._set(status)

    def _set(self, status: int) -> None:
        self.returncode = os.waitstatus_to_exitcode(status)
        if self._popen is not None:
            self._popen.returncode = self.returncode
            self._popen = None
        if not self.exited.done():
            self.exited.set_result(self.returncode)

    async def wait(self) -> int:
        return await asyncio.shield(self.exited)

    def send_signal(self, sig: int) -> None:
        if self.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


@dataclass(frozen=True)
class _Started:
    pid: int
    pidfd: int | None  # open, for the loop to watch; None once reaped (or without pidfds)
    status: int | None  # the wait status if the child already exited and was reaped


def _spawn_and_wait(
    libc: LibcSpawn, args: list[str], cwd: str | os.PathLike[str] | None, env: Mapping[str, str],
    stdout_path: str | os.PathLike[str], stderr_path: str | os.PathLike[str], wait_s: float,
) -> _Started:  # fmt: skip
    """Spawn, then wait up to `wait_s` for the child to exit (the GIL released) and reap it."""
    pid = _libc_spawn(libc, args, cwd, env, stdout_path, stderr_path)
    if wait_s <= 0.0:
        return _Started(pid, None, None)
    try:
        pidfd = os.pidfd_open(pid)
    except OSError:  # no pidfds: the Child waits in a thread instead
        return _Started(pid, None, None)
    try:
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        if poller.poll(wait_s * 1000):
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                os.close(pidfd)
                return _Started(pid, None, status)
    except BaseException:
        os.close(pidfd)
        raise
    return _Started(pid, pidfd, None)


def _libc_spawn(
    libc: LibcSpawn, args: list[str], cwd: str | os.PathLike[str] | None, env: Mapping[str, str],
    stdout_path: str | os.PathLike[str], stderr_path: str | os.PathLike[str],
) -> int:  # fmt: skip
    """In a spawn thread: the GIL is released while the kernel gets the child to exec."""
    program = args[0]
    # posix_spawnp searches the worker's own PATH: when it is the run's, as in a worker (which
    # puts its Python first on PATH at start), let it do the search. Otherwise we do it.
    search = os.sep not in program and env.get("PATH") == os.environ.get("PATH")
    where = "." if cwd is None else os.fspath(cwd)
    target = program if search else _resolve(program, env)
    out_fd, err_fd = _open_logs(stdout_path, stderr_path)
    try:
        started = time.monotonic()
        pid = libc.spawn(target, args, env, where, out_fd, err_fd, search)
        _spawn_pace.took(time.monotonic() - started)
        return pid
    finally:
        # The child holds its own copies now; ours would only keep the files open.
        os.close(out_fd)
        os.close(err_fd)


class _SpawnPace:
    """Whether spawns should go to threads: for THREADED_FOR_S after one waited over SLOW_SPAWN_S."""

    def __init__(self) -> None:
        self._threaded_until = 0.0

    def threaded(self) -> bool:
        return time.monotonic() < self._threaded_until

    def took(self, seconds: float) -> None:
        if seconds > SLOW_SPAWN_S:
            self._threaded_until = time.monotonic() + THREADED_FOR_S


_spawn_pace = _SpawnPace()


def _spawn_threads() -> SpawnThreads:
    global _spawners
    if _spawners is None:
        _spawners = SpawnThreads(SPAWN_THREADS, "taskhub-spawn")
    return _spawners


def _abandon(starting: asyncio.Future[_Started]) -> None:
    """A spawn whose caller went away: kill and reap what it started."""
    if starting.cancelled() or starting.exception() is not None:
        return
    started = starting.result()
    with contextlib.suppress(ProcessLookupError):
        os.killpg(started.pid, signal.SIGKILL)  # the group: a reaped leader may have left children
    if started.pidfd is not None:
        os.close(started.pidfd)
    if started.status is None:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(started.pid, 0)


def _popen(
    args: list[str], cwd: str | os.PathLike[str] | None, env: Mapping[str, str],
    stdout_path: str | os.PathLike[str], stderr_path: str | os.PathLike[str],
) -> subprocess.Popen[bytes]:  # fmt: skip
    out_fd, err_fd = _open_logs(stdout_path, stderr_path)
    try:
        return subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=out_fd, stderr=err_fd, cwd=cwd, env=env, start_new_session=True
        )
    finally:
        os.close(out_fd)
        os.close(err_fd)


def _resolve(program: str, env: Mapping[str, str]) -> str:
    """`program` looked up in the run's PATH (not the worker's), as exec would."""
    if os.sep in program:
        return program
    found = shutil.which(program, path=env.get("PATH", os.defpath))
    if found is None:
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), program)
    return found


def put_on_path_first(bin_dir: str) -> None:
    """Make `bin_dir` lead this process's PATH as it leads every run's (see child_env)."""
    path = os.environ.get("PATH") or os.defpath
    if path.split(os.pathsep, 1)[0] != bin_dir:
        os.environ["PATH"] = bin_dir + os.pathsep + path


def make_descriptors_private() -> None:
    """Mark every inherited descriptor above stderr close-on-exec: posix_spawn keeps what is not."""
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd > 2:
            with contextlib.suppress(OSError):
                os.set_inheritable(fd, False)


def _checked_argv(argv: Sequence[str]) -> list[str]:
    if isinstance(argv, (str, bytes)):
        raise SpawnError("the command must be an argv list, not a string")
    args = list(argv)
    if not args:
        raise SpawnError("the command is empty")
    bad = [a for a in args if not isinstance(a, str)]
    if bad:
        raise SpawnError(f"every argument must be a string, got {bad[0]!r}")
    return args


def _open_logs(stdout_path: str | os.PathLike[str], stderr_path: str | os.PathLike[str]) -> tuple[int, int]:
    out_fd = _open_log(stdout_path)
    try:
        return out_fd, _open_log(stderr_path)
    except BaseException:
        os.close(out_fd)
        raise


def _open_log(path: str | os.PathLike[str]) -> int:
    try:
        fd = os.open(path, _LOG_FLAGS, _LOG_MODE)
    except OSError as exc:
        raise SpawnError(f"cannot open log file {os.fspath(path)!r}: {exc.strerror}") from exc
    if fd <= 2:  # our own stdio was closed: keep it free, the child's streams are dup'ed onto 0-2
        moved = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 3)
        os.close(fd)
        fd = moved
    return fd


def _spawn_message(args: list[str], cwd: str | os.PathLike[str] | None, exc: OSError) -> str:
    program = args[0]
    if cwd is not None and not os.path.isdir(cwd):  # posix_spawn says only ENOENT
        return f"cannot use working directory {os.fspath(cwd)!r}: {os.strerror(errno.ENOENT)}"
    # Popen names the working directory in `filename` when chdir() failed in the child.
    if (
        cwd is not None
        and exc.filename is not None
        and os.fspath(exc.filename) == os.fspath(cwd)
        and program != exc.filename
    ):
        return f"cannot use working directory {os.fspath(cwd)!r}: {exc.strerror}"
    if isinstance(exc, FileNotFoundError):
        return f"executable not found: {program!r}"
    if isinstance(exc, PermissionError):
        return f"permission denied executing {program!r}"
    return f"cannot start {program!r}: {exc.strerror or exc}"
