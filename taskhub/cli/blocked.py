"""`blocked_by` for the run views the CLI prints: why each queued run has not started.

SPEC section 5 makes it part of the run view, REST and CLI `--json` alike. It is worked out here, on
this machine's database, by the very function the API uses (taskhub/api/views.py), so `taskhub show`
and `taskhub runs` say the same as the API whether or not one is running.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from taskhub.cli import tasks

if TYPE_CHECKING:
    from taskhub.projections.runs import RunView
    from taskhub.runtime.registry_loader import Registry
    from taskhub.settings import Settings

QUEUED = "queued"


async def blockers_of(
    s: Settings, views: Sequence[RunView], registry: Registry | None = None
) -> dict[str, list[dict[str, Any]]]:
    """run_id -> its blockers (as JSON values), for each queued run among `views`; `registry` is
    loaded from the tasks folder unless given."""
    queued = [v for v in views if v.status == QUEUED]
    if not queued:
        return {}
    import msgspec

    from taskhub.api.views import LiveWorkers, blockers
    from taskhub.events.follow import open_reader

    if registry is None:  # for max_concurrency, and tasks no longer there
        registry = await asyncio.to_thread(tasks.load_registry, s)
    reader = await open_reader(s.db_path)
    live, now = LiveWorkers(), time.time()
    out: dict[str, list[dict[str, Any]]] = {}
    try:
        for view in queued:
            found = await blockers(view, reader, registry, live, now)
            out[view.run_id] = msgspec.to_builtins(found or [])
    finally:
        await reader.close()
    return out


def with_blockers(records: list[dict[str, Any]], found: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Each record with `blocked_by`: its list while queued, null otherwise (as the API shows it)."""
    for record in records:
        record["blocked_by"] = found.get(record["run_id"]) if record.get("status") == QUEUED else None
    return records
