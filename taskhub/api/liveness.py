"""Is a worker alive? Checked against this host's process table, never trusted from the log alone."""

from __future__ import annotations

import socket

import psutil

from taskhub.projections.workers import WorkerView
from taskhub.runtime.identity import CREATE_TIME_TOLERANCE_S


def worker_alive(view: WorkerView) -> bool:
    """True when the worker has not stopped, runs on this host, and its pid is still the same process
    (same create time, so a reused pid does not count). A worker on another host is not alive to us:
    TaskHub is single-machine."""
    if view.stopped_at is not None or view.host != socket.gethostname():
        return False
    try:
        proc = psutil.Process(view.pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        if view.create_time <= 0:  # an old record without a create time: the pid is all we have
            return True
        return abs(proc.create_time() - view.create_time) <= CREATE_TIME_TOLERANCE_S
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return False
