"""glibc's posix_spawn through ctypes, so that nothing else waits while the kernel starts a child.

posix_spawn is a vfork: the parent sleeps until the child has exec'd, and on a busy machine the
new child may wait milliseconds for a CPU. `os.posix_spawn` sleeps holding the GIL, which stalls
the event loop and the log writer with it (measured in the worker: 1.9 ms per spawn under load,
more than all its other work per run). A ctypes call releases the GIL, so from a small thread pool
only that thread waits. glibc's `posix_spawn_file_actions_addchdir_np` (2.29+) also starts the run
in its folder, which `os.posix_spawn` cannot.

`load()` returns None where any of this is missing (musl, old glibc): callers fall back to Popen.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import signal
from collections.abc import Mapping, Sequence
from typing import Any

log = logging.getLogger(__name__)

# Opaque glibc types, allocated with room to spare (x86-64 sizes: 80, 336 and 128 bytes).
_FILE_ACTIONS_BYTES = 512
_ATTR_BYTES = 1024
_SIGSET_BYTES = 256

_SETSIGDEF = 0x04
_SETSIGMASK = 0x08
_SETSID = 0x80
# Python ignores these, and an ignored signal stays ignored across exec: the command gets defaults.
_RESTORED_SIGNALS = (signal.SIGPIPE, signal.SIGXFSZ)


class LibcSpawn:
    """Starts commands in a new session with stdin /dev/null and the given stdout/stderr."""

    def __init__(self, libc: Any) -> None:
        self._libc = libc
        argtypes = [
            ctypes.POINTER(ctypes.c_int), ctypes.c_char_p, ctypes.c_void_p, ctypes.c_void_p,
            ctypes.POINTER(ctypes.c_char_p), ctypes.POINTER(ctypes.c_char_p),
        ]  # fmt: skip
        for name in ("posix_spawn", "posix_spawnp"):
            getattr(libc, name).argtypes = argtypes
        libc.posix_spawn_file_actions_addopen.argtypes = [
            ctypes.c_void_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_uint,
        ]  # fmt: skip
        libc.posix_spawn_file_actions_adddup2.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int]
        libc.posix_spawn_file_actions_addchdir_np.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
        libc.posix_spawnattr_setflags.argtypes = [ctypes.c_void_p, ctypes.c_short]
        # One set of attributes serves every spawn: posix_spawn only reads them.
        self._attr = ctypes.create_string_buffer(_ATTR_BYTES)
        empty, defaults = ctypes.create_string_buffer(_SIGSET_BYTES), ctypes.create_string_buffer(_SIGSET_BYTES)
        _check(libc.sigemptyset(empty), "sigemptyset")
        _check(libc.sigemptyset(defaults), "sigemptyset")
        for sig in _RESTORED_SIGNALS:
            _check(libc.sigaddset(defaults, int(sig)), "sigaddset")
        _check(libc.posix_spawnattr_init(self._attr), "posix_spawnattr_init", errno_in_result=True)
        _check(libc.posix_spawnattr_setsigmask(self._attr, empty), "setsigmask", errno_in_result=True)
        _check(libc.posix_spawnattr_setsigdefault(self._attr, defaults), "setsigdefault", errno_in_result=True)
        flags = _SETSIGDEF | _SETSIGMASK | _SETSID
        _check(libc.posix_spawnattr_setflags(self._attr, flags), "setflags", errno_in_result=True)

    def spawn(
        self, program: str, args: Sequence[str], env: Mapping[str, str], cwd: str, out_fd: int, err_fd: int,
        search_path: bool,
    ) -> int:  # fmt: skip
        """The new pid; OSError(errno) if it could not start, ValueError for a NUL in a string.
        With `search_path`, `program` is looked up in *this process's* PATH, as execvp does."""
        argv = _c_strings([_no_nul(os.fsencode(a)) for a in args])
        envp = _c_strings([_env_entry(k, v) for k, v in env.items()])
        path, where = _no_nul(os.fsencode(program)), _no_nul(os.fsencode(cwd))
        libc = self._libc
        actions = ctypes.create_string_buffer(_FILE_ACTIONS_BYTES)
        _check(libc.posix_spawn_file_actions_init(actions), "file_actions_init", errno_in_result=True)
        try:
            for err in (
                libc.posix_spawn_file_actions_addopen(actions, 0, os.devnull.encode(), os.O_RDONLY, 0),
                libc.posix_spawn_file_actions_adddup2(actions, out_fd, 1),
                libc.posix_spawn_file_actions_adddup2(actions, err_fd, 2),
                libc.posix_spawn_file_actions_addchdir_np(actions, where),
            ):
                _check(err, "file actions", errno_in_result=True)
            pid = ctypes.c_int()
            start = libc.posix_spawnp if search_path else libc.posix_spawn
            err = start(ctypes.byref(pid), path, actions, self._attr, argv, envp)  # the GIL is released here
            if err:
                raise OSError(err, os.strerror(err), program)
            return pid.value
        finally:
            libc.posix_spawn_file_actions_destroy(actions)


def load() -> LibcSpawn | None:
    """The binding, or None where glibc's posix_spawn with addchdir_np is not available."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        return LibcSpawn(libc)
    except (OSError, AttributeError, TypeError) as exc:
        log.info("spawn.libc_unavailable reason=%s (runs start through Popen)", exc)
        return None


def _c_strings(items: list[bytes]) -> Any:
    return (ctypes.c_char_p * (len(items) + 1))(*items, None)


_env_entries: dict[tuple[str, str], bytes] = {}  # most of a run's environment is the worker's own
ENV_CACHE_SIZE = 4096


def _env_entry(key: str, value: str) -> bytes:
    entry = _env_entries.get((key, value))
    if entry is None:
        if len(_env_entries) >= ENV_CACHE_SIZE:
            _env_entries.clear()  # the run-specific entries pile up; the rest comes back at once
        entry = _env_entries[key, value] = _no_nul(os.fsencode(key) + b"=" + os.fsencode(value))
    return entry


def _no_nul(item: bytes) -> bytes:
    if b"\0" in item:
        raise ValueError("embedded null byte")
    return item


def _check(result: int, what: str, errno_in_result: bool = False) -> None:
    if result != 0:
        err = result if errno_in_result else ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
