"""TaskHub: a single-machine task runner on an SQLite event log.

Kept import-cheap: `TaskSpec` is loaded on first use, so task scripts importing `taskhub.sdk`
do not pay for msgspec or the registry.
"""

from __future__ import annotations

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs ~10 ms per task script
if TYPE_CHECKING:
    from typing import Any

    from taskhub.registry import TaskSpec

__all__ = ["TaskSpec"]


def __getattr__(name: str) -> Any:
    if name == "TaskSpec":
        from taskhub.registry import TaskSpec

        return TaskSpec
    raise AttributeError(f"module 'taskhub' has no attribute {name!r}")
