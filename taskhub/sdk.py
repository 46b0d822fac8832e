"""Helpers a task script may import to emit structured events (SPEC section 3).

Each call prints one `::taskhub:: {json}` line on stdout and flushes, so the worker sees it at
once even when stdout is a file. Stdlib only: importing this must stay cheap.
"""

from __future__ import annotations

import json
import sys

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: typing costs ~10 ms to import
if TYPE_CHECKING:
    from typing import Any

PREFIX = "::taskhub::"


def _emit(payload: dict[str, Any]) -> None:
    # json.dumps escapes newlines, so the payload is always exactly one line.
    line = f"{PREFIX} {json.dumps(payload, separators=(',', ':'), allow_nan=False)}\n"
    sys.stdout.write(line)
    sys.stdout.flush()


def progress(pct: float | None = None, message: str | None = None, **fields: Any) -> None:
    """Report progress: `pct` from 0 to 100, a short `message`, and any other JSON fields."""
    if "type" in fields:
        raise ValueError("'type' is reserved in progress fields")
    payload: dict[str, Any] = {"type": "progress", **fields}
    if pct is not None:
        payload["pct"] = pct
    if message is not None:
        payload["message"] = message
    _emit(payload)


def artifact(name: str, description: str | None = None) -> None:
    """Announce `name`, a file the script wrote into $TASKHUB_ARTIFACTS_DIR."""
    payload: dict[str, Any] = {"type": "artifact", "name": name}
    if description is not None:
        payload["description"] = description
    _emit(payload)


def result(value: Any) -> None:
    """Set the run's result: any JSON value."""
    _emit({"type": "result", "value": value})
