"""cgroup v2 containment for runs: one cgroup per run, killed whole with `cgroup.kill`.

Strictly best-effort: when the machine offers no writable cgroup v2 with `cgroup.kill`, every
function here says so (None / False) and TaskHub falls back to process groups and the env scan.
"""

from __future__ import annotations

import errno
import functools
import hashlib
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import psutil

logger = logging.getLogger(__name__)

ContainmentLevel = Literal["cgroup", "env-scan", "process-group"]
CGROUP_DIR_NAME = "taskhub"
_CGROUP_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}")
_logged_once: set[str] = set()


# --- containment level and cgroup v2 --------------------------------------------------------------


def containment_level() -> ContainmentLevel:
    """How well this machine lets TaskHub contain a run's processes; each level includes the next.

    "cgroup": a writable cgroup v2 with `cgroup.kill` (kernel 5.14+) is available to us;
    "env-scan": we can read process environments (/proc/<pid>/environ) to find strays;
    "process-group": only `killpg`, which misses processes that left the group.
    """
    if _cgroup_base() is not None:
        return "cgroup"
    try:
        psutil.Process().environ()
        return "env-scan"
    except (psutil.Error, OSError):
        return "process-group"


@dataclass(frozen=True)
class RunCgroup:
    """One run's cgroup v2, `<our cgroup>/taskhub/<run_id>`. Strictly best-effort: no method raises.

    The worker creates it before spawning and adds the child right after. Moving a pid costs ~0.1 ms
    but now and then 10-30 ms (the kernel synchronises every cgroup migration), so a latency-minded
    caller runs `add` in a thread. Children forked before `add` stay outside; the env scan still
    finds them. The reaper finds the cgroup by run id, so it must share the worker's own cgroup
    (true when both come from `bin/start.sh`; under systemd use `Delegate=yes` and one slice).
    """

    path: Path

    @classmethod
    def create(cls, run_id: str, runs_dir: Path | None = None) -> RunCgroup | None:
        base = _cgroup_base()
        if base is None or not _valid_name(run_id):
            return None
        path = base / cgroup_name(run_id, runs_dir)
        try:
            path.mkdir(exist_ok=True)
        except OSError as exc:
            _log_once("cgroup.create", "cgroup.unavailable action=create path=%s error=%s", path, exc)
            return None
        return cls(path)

    @classmethod
    def open(cls, run_id: str, runs_dir: Path | None = None) -> RunCgroup | None:
        """The run's existing cgroup, or None."""
        base = _cgroup_base()
        if base is None or not _valid_name(run_id):
            return None
        path = base / cgroup_name(run_id, runs_dir)
        return cls(path) if path.is_dir() else None

    def add(self, pid: int) -> bool:
        """Move `pid` into the cgroup; False if it is gone or the move failed."""
        return self._write("cgroup.procs", str(pid))

    def kill(self) -> bool:
        """SIGKILL every process in the cgroup, descendants included (`cgroup.kill`)."""
        return self._write("cgroup.kill", "1")

    def pids(self) -> list[int]:
        try:
            return [int(line) for line in (self.path / "cgroup.procs").read_text().split()]
        except (OSError, ValueError):
            return []

    def populated(self) -> bool:
        try:
            return "populated 1" in (self.path / "cgroup.events").read_text()
        except OSError:
            return False

    def remove(self) -> bool:
        """Remove the (empty) cgroup; False if it still has processes or is already gone."""
        try:
            self.path.rmdir()
            return True
        except OSError as exc:
            if exc.errno not in (errno.EBUSY, errno.ENOENT):
                _log_once("cgroup.remove", "cgroup.error action=remove path=%s error=%s", self.path, exc)
            return False

    def _write(self, name: str, value: str) -> bool:
        try:
            with open(self.path / name, "w") as f:
                f.write(value)
            return True
        except ProcessLookupError:  # adding a pid that has already exited
            return False
        except OSError as exc:
            _log_once(f"cgroup.{name}", "cgroup.error action=write file=%s error=%s", self.path / name, exc)
            return False


def cgroup_name(run_id: str, runs_dir: Path | None) -> str:
    """Run ids repeat across TaskHub homes: a home's runs get its own suffix on this machine."""
    if runs_dir is None:
        return run_id
    return f"{run_id}-{hashlib.sha256(str(runs_dir).encode()).hexdigest()[:12]}"


def _valid_name(run_id: str) -> bool:
    # A run id becomes a directory name: never let it climb out of the taskhub cgroup.
    if _CGROUP_NAME.fullmatch(run_id):
        return True
    _log_once("cgroup.name", "cgroup.bad_name run_id=%r", run_id)
    return False


@functools.lru_cache(maxsize=1)
def _cgroup_base() -> Path | None:
    """`<cgroup2 mount>/<our own cgroup>/taskhub` if we may create cgroups there, else None.

    Decided once per process. Our own cgroup is the natural delegate: we need write access to the
    common ancestor of where a child starts (ours) and where it goes (below ours).
    """
    mount = _cgroup2_mount()
    own = _own_cgroup()
    if mount is None or own is None:
        _log_once("cgroup.base", "cgroup.unavailable reason=no_cgroup2 mount=%s own=%s", mount, own)
        return None
    here = mount / own.lstrip("/")
    base = here / CGROUP_DIR_NAME
    try:
        base.mkdir(exist_ok=True)
    except OSError as exc:
        _log_once("cgroup.base", "cgroup.unavailable reason=not_writable path=%s error=%s", base, exc)
        return None
    if not (base / "cgroup.kill").exists():
        _log_once("cgroup.base", "cgroup.unavailable reason=no_cgroup_kill path=%s", base)
        return None
    if not os.access(here / "cgroup.procs", os.W_OK):
        _log_once("cgroup.base", "cgroup.unavailable reason=cannot_move path=%s", here)
        return None
    logger.info("cgroup.available base=%s", base)
    return base


def _cgroup2_mount() -> Path | None:
    try:
        with open("/proc/self/mountinfo") as f:
            for line in f:
                fields = line.split()
                sep = fields.index("-")
                if fields[sep + 1] == "cgroup2":
                    # mountinfo escapes spaces and the like as octal (\040)
                    return Path(fields[4].encode().decode("unicode_escape"))
    except (OSError, ValueError, IndexError):
        pass
    return None


def _own_cgroup() -> str | None:
    """Our cgroup v2 path (the `0::` line of /proc/self/cgroup)."""
    try:
        with open("/proc/self/cgroup") as f:
            for line in f:
                if line.startswith("0::"):
                    path = line[3:].strip()
                    return None if path.endswith(" (deleted)") else path
    except OSError:
        pass
    return None


def _log_once(key: str, message: str, *args: object) -> None:
    """Best-effort containment must not flood the log: say each kind of failure once."""
    if key not in _logged_once:
        _logged_once.add(key)
        logger.warning(message, *args)
