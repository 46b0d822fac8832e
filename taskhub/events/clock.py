"""Time as the log writes it: UTC ISO 8601 strings, converted to and from epoch seconds."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timezone

Clock = Callable[[], float]  # epoch seconds; injected so tests never monkeypatch time


def system_clock() -> float:
    return time.time()


def iso(epoch: float) -> str:
    """`2026-01-02T03:04:05.678901Z`: always six fraction digits, so text order is time order.

    isoformat() is the strftime("%Y-%m-%dT%H:%M:%S.%fZ") of the same datetime at two thirds the cost.
    """
    return datetime.fromtimestamp(epoch, tz=timezone.utc).isoformat(timespec="microseconds")[:-6] + "Z"


def parse_iso(text: str) -> float:
    """Parse an ISO 8601 time; a naive time is taken as UTC. Raises ValueError when malformed."""
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.timestamp()
