"""The pid files bin/start.sh writes (`data/pids/<name>.pid`), and whether each still names a live
TaskHub process of that component (its command line says so), so a reused pid is never trusted."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import psutil


@dataclass(frozen=True)
class PidEntry:
    name: str  # api, reaper, worker-w-1 ...
    path: Path
    pid: int | None
    alive: bool


def component_of(name: str) -> str:
    return name.split("-", 1)[0]


def is_taskhub(pid: int, component: str) -> bool:
    try:
        cmdline = psutil.Process(pid).cmdline()
    except (psutil.Error, OSError):
        return False
    text = " ".join(cmdline)
    return "taskhub" in text and component in cmdline


def read_pidfiles(directory: Path) -> list[PidEntry]:
    out: list[PidEntry] = []
    for path in sorted(directory.glob("*.pid")):
        try:
            pid: int | None = int(path.read_text().strip())
        except (OSError, ValueError):
            pid = None
        alive = pid is not None and is_taskhub(pid, component_of(path.stem))
        out.append(PidEntry(path.stem, path, pid, alive))
    return out
