"""A process tree that tries to outlive its run: parent -> child -> grandchild that calls setsid().

    python tree.py PIDS_FILE [--ignore-term] [--orphan]

Each process appends `role pid pgid sid` to PIDS_FILE once it is in place, then waits for a
signal forever. The grandchild leaves the process group (setsid), so only the environment scan
or a cgroup can find it. --ignore-term: every process ignores SIGTERM (only SIGKILL stops it).
--orphan: the child exits once the grandchild is recorded (a double fork), so the grandchild is
reparented away from the run's tree.
"""

from __future__ import annotations

import os
import signal
import sys


def record(path: str, role: str) -> None:
    line = f"{role} {os.getpid()} {os.getpgrp()} {os.getsid(0)}\n".encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)  # one small O_APPEND write: lines from the three never interleave
    finally:
        os.close(fd)


def wait_forever() -> None:
    while True:
        signal.pause()


def main(argv: list[str]) -> None:
    path = argv[0]
    if "--ignore-term" in argv:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # inherited across fork
    record(path, "parent")
    if os.fork() == 0:
        record(path, "child")
        read_end, write_end = os.pipe()
        if os.fork() == 0:
            os.close(read_end)
            os.setsid()
            record(path, "grandchild")
            os.close(write_end)  # tells the child the grandchild is recorded
            wait_forever()
        os.close(write_end)
        os.read(read_end, 1)  # EOF once the grandchild has recorded itself
        if "--orphan" in argv:
            os._exit(0)
        wait_forever()
    wait_forever()


if __name__ == "__main__":
    main(sys.argv[1:])
