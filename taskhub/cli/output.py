"""Printing: aligned tables, JSON records, colour only on a terminal, a progress bar on stderr."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable, Sequence
from typing import Any, TextIO

_CODES = {"red": "31", "green": "32", "yellow": "33", "blue": "34", "magenta": "35", "cyan": "36", "dim": "2"}


def colour_enabled(stream: TextIO | None = None) -> bool:
    """Colours only for a terminal, and never when NO_COLOR is set (https://no-color.org)."""
    stream = stream or sys.stdout
    return stream.isatty() and "NO_COLOR" not in os.environ


class Style:
    def __init__(self, enabled: bool | None = None) -> None:
        self.enabled = colour_enabled() if enabled is None else enabled

    def __call__(self, text: str, colour: str | None) -> str:
        if not self.enabled or colour is None or colour not in _CODES:
            return text
        return f"\x1b[{_CODES[colour]}m{text}\x1b[0m"


STATUS_COLOURS = {
    "queued": "blue",
    "claimed": "cyan",
    "running": "cyan",
    "cancelling": "yellow",
    "succeeded": "green",
    "failed": "red",
    "cancelled": "yellow",
}


def to_builtins(obj: Any) -> Any:
    import msgspec  # lazily: `taskhub --help` should not pay for it

    return msgspec.to_builtins(obj)


def print_json(obj: Any, out: TextIO | None = None) -> None:
    """One JSON document per call, on one line (jq- and json.loads-friendly)."""
    out = out or sys.stdout
    import msgspec

    out.write(msgspec.json.encode(to_builtins(obj)).decode() + "\n")
    out.flush()


def table(rows: Iterable[Sequence[object]], headers: Sequence[str], colours: Sequence[str | None] = ()) -> str:
    """Left-aligned columns; `colours` colours a whole row each (widths ignore escape codes)."""
    style = Style()
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        for i, value in enumerate(row):
            widths[i] = max(widths[i], len(value))
    lines = ["  ".join(style(h.upper().ljust(w), "dim") for h, w in zip(headers, widths, strict=True)).rstrip()]
    for n, row in enumerate(cells):
        line = "  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip()
        lines.append(style(line, colours[n] if n < len(colours) else None))
    return "\n".join(lines)


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def short_ts(ts: str | None) -> str:
    """`2026-11-28T06:30:00.123456Z` -> `2026-11-28 06:30:00`: enough for a table."""
    return ts[:19].replace("T", " ") if ts else "-"


class ProgressBar:
    """A one-line bar on stderr, drawn only when stderr is a terminal, at most ~10 times a second."""

    WIDTH = 30

    def __init__(self, label: str, stream: TextIO | None = None) -> None:
        self.label = label
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty()
        self._last = 0.0
        self._drawn = False

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if done < total and now - self._last < 0.1:
            return
        self._last = now
        frac = min(done / total, 1.0) if total > 0 else 1.0
        filled = int(frac * self.WIDTH)
        bar = "#" * filled + "-" * (self.WIDTH - filled)
        self.stream.write(f"\r{self.label} [{bar}] {frac:6.1%} {done:,}/{total:,}")
        self.stream.flush()
        self._drawn = True

    def close(self) -> None:
        if self._drawn:
            self.stream.write("\r\x1b[K")
            self.stream.flush()


def err(message: str) -> None:
    sys.stderr.write(message.rstrip("\n") + "\n")
    sys.stderr.flush()
